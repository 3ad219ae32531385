"""A spec resolved into a :class:`~sleuth.reduce.plan.Plan`: what each axis ranges over, every check made.

The checks ``--dry-run`` makes happen here (files exist inside the cwd, no two file axes overlap,
placeholders match axes, a bundle's ``<redacted>`` is not run as it is, the run's name can name a
directory) or beside it in :func:`sleuth.reduce.loading.load` (mitigations, the environment, the
oracle), so a dry run and a real run fail the same way, with one line naming the spec file and the
key path.  :func:`resolve` also reads what each axis ranges over: a ``file_lines`` file's lines, a
``file_set`` directory's files (each hashed for the outcome cache), the variables an ``env_set``
may drop.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from sleuth.errors import ConfigError, UsageError
from sleuth.model import check_name
from sleuth.reduce.plan import PLACEHOLDER, Plan, RuntimeAxis
from sleuth.reduce.spec import NumericAxis, ReduceSpec
from sleuth.reduce.tree import walk
from sleuth.secrets import REDACTED
from sleuth.workloads import PARAMS_VAR

__all__ = ["resolve"]


def _fail(source: str, where: str, msg: str, hint: str | None = None) -> ConfigError:
    return ConfigError(f"{source}: {where}: {msg}", hint=hint)


def _check_redacted(spec: ReduceSpec, source: str) -> None:
    """A bundle's ``shrunken/spec.yaml`` holds ``<redacted>`` where a secret was: run as it is, the
    workload gets that word and the failure does not reproduce (exit 3, for no visible reason)."""
    w = spec.workload
    places: list[tuple[str, str]] = [(f"workload.env.{k}", v) for k, v in w.env.items()]
    cmd = w.command
    places += (
        [("workload.command", cmd)]
        if isinstance(cmd, str)
        else [(f"workload.command[{i}]", c) for i, c in enumerate(cmd)]
    )
    for i, a in enumerate(spec.axes):
        if a.kind == "arg_set":
            places += [(f"axes[{i}].values[{j}]", v) for j, v in enumerate(a.values)]
    for where, value in places:
        if REDACTED in value:
            msg = f"holds {REDACTED} (a secret sleuth left out of the bundle)"
            raise _fail(source, where, msg, hint="put the real value back")


def _inside(cwd: Path, rel: str, source: str, where: str) -> Path:
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or not rel.strip():
        raise _fail(source, where, f"{rel!r} must be a path inside the workload's cwd (relative, no '..')")
    return cwd / p


def _no_overlap(
    seen: dict[tuple[str, ...], tuple[int, str, str]], path: str, kind: str, i: int, source: str
) -> None:
    """A file axis's path is neither another's nor inside another's ``file_set`` directory (or holding
    it): a scratch copy lays out one of them, and the other axis's candidates would run the original.
    ``seen``: the file axes so far, path parts -> (index, path, kind)."""
    parts = Path(path).parts
    for other, (j, theirs, their_kind) in seen.items():
        if parts[: len(other)] == other or other[: len(parts)] == parts:
            how = "is the same path as" if parts == other else "overlaps"
            msg = f"{path} ({kind}) {how} axes[{j}].path {theirs} ({their_kind})"
            hint = "give each file axis its own file or folder (a file_set over a folder without the other)"
            raise _fail(source, f"axes[{i}].path", msg, hint=hint)
    seen[parts] = (i, path, kind)


def _files_under(d: Path) -> list[str]:
    """The files under ``d`` (a symlink to a file too), relative, sorted as strings."""
    root, out = os.fspath(d), []
    for top, _dirs, files in walk(root):
        rel = os.path.relpath(top, root)
        out += [
            f if rel == "." else os.path.join(rel, f) for f in files if os.path.isfile(os.path.join(top, f))
        ]
    return sorted(out)


def resolve(
    spec: ReduceSpec,
    source: str,
    spec_text: str,
    *,
    base_dir: Path,
    mitigation_env: Mapping[str, str],
    name: str | None = None,
) -> Plan:
    """Check everything a run needs; ConfigError naming the file and key path on the first problem."""
    w = spec.workload
    cwd = Path(w.cwd) if w.cwd else base_dir
    cwd = (base_dir / cwd).resolve() if not cwd.is_absolute() else cwd
    if not cwd.is_dir():
        raise _fail(source, "workload.cwd", f"{cwd} is not a directory")
    names: dict[str, int] = {}
    #: a file axis's path (as parts) -> its axis index: two may not overlap
    file_paths: dict[tuple[str, ...], tuple[int, str, str]] = {}
    axes: list[RuntimeAxis] = []
    hashes: dict[str, str] = {}
    placeholders: set[str] = set()
    for i, a in enumerate(spec.axes):
        where = f"axes[{i}]"
        if a.name in names:
            raise _fail(source, f"{where}.name", f"{a.name!r} is used by axes[{names[a.name]}] too")
        names[a.name] = i
        if a.kind in ("world_size", "env_set") and any(x.kind == a.kind for x in axes):
            raise _fail(source, f"{where}.kind", f"only one {a.kind} axis is allowed")
        items: tuple[str, ...] = ()
        choices: tuple[str, ...] = ()
        path = ""
        open_end = False
        if a.kind == "file_lines":
            f = _inside(cwd, a.path, source, f"{where}.path")
            if not f.is_file():
                why = "not a regular file" if f.exists() or f.is_symlink() else f"no such file in {cwd}"
                raise _fail(source, f"{where}.path", f"{a.path}: {why}")
            try:
                items, open_end = _lines(f.read_bytes().decode("utf-8"))
            except UnicodeDecodeError as exc:
                bad = exc.object[exc.start]
                raise _fail(source, f"{where}.path",
                            f"{a.path}: not UTF-8 text (byte {bad:#04x} at offset {exc.start}); file_lines "
                            "shrinks UTF-8 text: save it as UTF-8, or shrink a directory with kind: file_set",
                            ) from None  # fmt: skip
            except OSError as exc:
                raise _fail(
                    source, f"{where}.path", f"{a.path}: cannot read: {exc.strerror or exc}"
                ) from None
            path = a.path
            _no_overlap(file_paths, path, a.kind, i, source)
            placeholders.add(a.name)
        elif a.kind == "file_set":
            d = _inside(cwd, a.path, source, f"{where}.path")
            if not d.is_dir():
                raise _fail(source, f"{where}.path", f"{a.path}: no such directory in {cwd}")
            items = tuple(_files_under(d))
            if not items:
                raise _fail(source, f"{where}.path", f"{a.path}: the directory holds no files")
            for rel in items:
                hashes[f"{a.path}/{rel}"] = hashlib.sha256((d / rel).read_bytes()).hexdigest()
            path = a.path
            _no_overlap(file_paths, path, a.kind, i, source)
            placeholders.add(a.name)
        elif a.kind == "env_set":
            unknown = [k for k in a.keep if k not in w.env]
            if unknown:
                raise _fail(source, f"{where}.keep", f"{unknown[0]!r} is not in workload.env")
            env_axes = {x.name for x in spec.axes if x.kind == "env"}
            # the launcher's parameters are the command's, not a setting the failure may not need
            items = tuple(k for k in w.env if k not in a.keep and k not in env_axes and k != PARAMS_VAR)
            if not items:
                raise _fail(source, f"{where}.kind", "workload.env has no variable this axis could drop")
        elif a.kind == "arg_set":
            items = tuple(a.values)
            placeholders.add(a.name)
        elif a.kind == "window":
            placeholders.update({f"{a.name}_START", f"{a.name}_END"})
        elif isinstance(a, NumericAxis):
            if a.type == "choice":
                choices = tuple(str(v) for v in a.values or [])
            if a.kind == "param":
                placeholders.add(a.name)
            elif a.name in w.env and w.env[a.name] != str(a.initial):  # the axis would win silently
                msg = f"{a.initial!r}, but workload.env sets {a.name} to another value"
                hint = f"the axis sets {a.name}: drop it from workload.env"
                raise _fail(source, f"{where}.initial", msg, hint=hint)
        axes.append(
            RuntimeAxis(
                name=a.name, kind=a.kind, spec=a, items=items, choices=choices, path=path, open_end=open_end
            )
        )
    _check_placeholders(spec, source, placeholders)
    _check_redacted(spec, source)
    run_name = name or spec.name or _workload_name(spec)
    if name is not None and not check_name(name):
        hint = "use letters, digits, '_', '.', '-'"
        raise UsageError(f"--name {name!r}: cannot name a directory", hint=hint)
    if not check_name(run_name):
        raise _fail(
            source, "name", f"{run_name!r} cannot name a directory", hint="use letters, digits, '_', '.', '-'"
        )
    return Plan(
        spec=spec,
        source=source,
        spec_text=spec_text,
        name=run_name,
        cwd=cwd,
        axes=tuple(axes),
        mitigation_env=dict(mitigation_env),
        file_hashes=hashes,
    )


def _check_placeholders(spec: ReduceSpec, source: str, known: set[str]) -> None:
    cmd = spec.workload.command
    parts = [cmd] if isinstance(cmd, str) else list(cmd)
    used: set[str] = set()
    for i, part in enumerate(parts):
        for m in PLACEHOLDER.finditer(part):
            if m.group(1) not in known:
                where = "workload.command" if isinstance(cmd, str) else f"workload.command[{i}]"
                raise _fail(
                    source,
                    where,
                    f"unknown placeholder {{{m.group(1)}}}",
                    hint=f"axes that fill placeholders: {', '.join(sorted(known)) or 'none'}",
                )
            used.add(m.group(1))
    for i, a in enumerate(spec.axes):
        need = (
            [f"{a.name}_START", f"{a.name}_END"]
            if a.kind == "window"
            else [a.name]
            if a.kind == "param"
            else []
        )
        for n in need:
            if n not in used:
                raise _fail(source, f"axes[{i}].name", f"no {{{n}}} placeholder in workload.command")


def _workload_name(spec: ReduceSpec) -> str:
    cmd = spec.workload.command
    argv = cmd.split() if isinstance(cmd, str) else cmd
    pick = next((a for a in argv[1:] if a.endswith((".py", ".sh"))), argv[0])
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(pick).stem).lstrip(".-")
    return stem or "workload"


def _lines(text: str) -> tuple[tuple[str, ...], bool]:
    """The lines of a file_lines file, split at "\\n" only (a CRLF line keeps its "\\r", a form feed
    stays inside its line: the initial point is the file byte for byte), and whether the last one
    has no final newline."""
    if not text:
        return (), False
    lines = text.split("\n")
    if lines[-1] == "":
        return tuple(lines[:-1]), False
    return tuple(lines), True
