"""A validated spec made concrete: axes with their items, and any point turned into a candidate.

Everything ``--dry-run`` checks happens here (files exist inside the cwd, placeholders match axes,
mitigations and the environment are known), so a dry run and a real run fail the same way, with
one line naming the spec file and the key path.  :func:`materialize` turns a point (axis -> value)
into a :class:`Candidate`: argv, the variables it sets, its files, and a content hash that keys the
outcome cache (two points that run the same thing share one verdict).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.errors import ConfigError, UsageError
from sleuth.model import check_name
from sleuth.reduce.fixpoint import AxisPlan
from sleuth.reduce.spec import NumericAxis, ReduceSpec, WindowAxis, WorldSizeAxis
from sleuth.reduce.tree import walk
from sleuth.secrets import REDACTED

__all__ = ["Candidate", "Plan", "RuntimeAxis", "materialize", "resolve"]

_PLACEHOLDER = re.compile(r"\{([A-Z_][A-Z0-9_]*)\}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeAxis:
    """One axis with what it ranges over (lines, files, variables, arguments, choices)."""

    name: str
    #: the spec's kind: param | env | file_lines | file_set | env_set | arg_set | window | world_size
    kind: str
    spec: Any
    items: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    path: str = ""
    #: a file_lines file whose last line has no final newline (it gets none while it is kept last)
    open_end: bool = False

    def search(self) -> AxisPlan:
        """The pure layer's view of this axis."""
        s = self.spec
        mono = "unknown" if getattr(s, "monotone", "unknown") == "unknown" else str(s.monotone).lower()
        if self.kind in ("file_lines", "file_set", "env_set", "arg_set"):
            return AxisPlan(
                name=self.name, kind=self.kind, initial=tuple(range(len(self.items))), pinned=s.pinned
            )
        if isinstance(s, WindowAxis):
            return AxisPlan(
                name=self.name, kind="window", initial=(s.start, s.end), monotone=mono, pinned=s.pinned
            )
        if isinstance(s, WorldSizeAxis):
            return AxisPlan(
                name=self.name,
                kind="world_size",
                initial=s.initial,
                floor=s.floor,
                monotone=mono,
                pinned=s.pinned,
            )
        assert isinstance(s, NumericAxis)
        if s.type == "choice":
            return AxisPlan(
                name=self.name, kind="choice", initial=self.choices.index(str(s.initial)), pinned=s.pinned
            )
        return AxisPlan(
            name=self.name, kind="int", initial=s.initial, floor=s.floor, monotone=mono, pinned=s.pinned
        )

    def render(self, value: Any) -> Any:
        """The value as people read it: a number, a choice, a window, or the kept items."""
        if self.kind in ("file_lines", "file_set", "env_set", "arg_set"):
            return [self.items[i] for i in value]
        return self.plain(value)

    def brief(self, value: Any) -> Any:
        """Like :meth:`render`, but a long list as ``{"kept", "of", "ranges"}`` (the trace)."""
        if self.kind in ("file_lines", "file_set", "env_set", "arg_set") and len(value) > 20:
            return {"kept": len(value), "of": len(self.items), "ranges": _ranges(value)}
        return self.render(value)

    def plain(self, value: Any) -> Any:
        """A scalar axis's value as people read it."""
        if self.choices:
            return self.choices[value]
        if self.kind == "window":
            return list(value)
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A spec resolved against the files, the registry and the environment."""

    spec: ReduceSpec
    source: str
    spec_text: str
    name: str
    cwd: Path
    axes: tuple[RuntimeAxis, ...]
    #: variables the mitigations set (``append`` pieces already joined)
    mitigation_env: Mapping[str, str] = field(default_factory=dict)
    #: sha256 of every file of each file_set axis, by relative path
    file_hashes: Mapping[str, str] = field(default_factory=dict)

    def axis(self, name: str) -> RuntimeAxis:
        """The axis called ``name``."""
        return next(a for a in self.axes if a.name == name)

    def initial_point(self) -> dict[str, Any]:
        """Every axis at its initial value."""
        return {a.name: a.search().initial for a in self.axes}

    @property
    def world_size(self) -> RuntimeAxis | None:
        """The world_size axis, if any."""
        return next((a for a in self.axes if a.kind == "world_size"), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A point made concrete."""

    argv: tuple[str, ...]
    #: the variables the workload sets (on top of the inherited environment)
    env: Mapping[str, str]
    #: relative path -> text (file_lines) or tuple of kept relative file paths (file_set)
    files: Mapping[str, str | tuple[str, ...]]
    key: str
    #: ranks the launcher starts (a world_size axis), else None
    world_size: int | None = None

    @property
    def short(self) -> str:
        """The first 12 hex digits of the key (names the candidate's directory)."""
        return self.key[:12]


def _ranges(kept: Any) -> str:
    """``0-136,138,140-499``: kept indices as ranges."""
    out: list[str] = []
    for i in kept:
        if out and "-" not in out[-1].split(",")[-1] and int(out[-1]) == i - 1:
            out[-1] = f"{out[-1]}-{i}"
        elif out and "-" in out[-1] and int(out[-1].split("-")[1]) == i - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        else:
            out.append(str(i))
    return ",".join(out)


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
            items = tuple(k for k in w.env if k not in a.keep and k not in env_axes)
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
        for m in _PLACEHOLDER.finditer(part):
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


def _values(plan: Plan, point: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in plan.axes:
        v = point[a.name]
        if a.kind == "window":
            out[f"{a.name}_START"], out[f"{a.name}_END"] = str(v[0]), str(v[1])
        elif a.kind in ("file_lines", "file_set"):
            out[a.name] = a.path
        elif a.kind in ("param", "env"):
            out[a.name] = a.choices[v] if a.choices else str(v)
    return out


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


def materialize(plan: Plan, point: Mapping[str, Any]) -> Candidate:
    """The argv, variables and files of ``point``, and its content hash."""
    values = _values(plan, point)
    splice = {a.name: [a.items[i] for i in point[a.name]] for a in plan.axes if a.kind == "arg_set"}

    def sub(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    w = plan.spec.workload
    argv: list[str]
    if isinstance(w.command, str):
        text = w.command
        for name, args in splice.items():
            token = "{" + name + "}"
            text = (
                text.replace(token, shlex.join(args))
                if token in text
                else f"{text} {shlex.join(args)}".rstrip()
            )
        argv = ["/bin/sh", "-c", sub(text)]
    else:
        argv = []
        for part in w.command:
            m = _PLACEHOLDER.fullmatch(part)
            if m and m.group(1) in splice:
                argv += splice.pop(m.group(1))
            else:
                argv.append(sub(part))
        for args in splice.values():
            argv += args
    ws = plan.world_size
    if ws is not None:
        n = str(point[ws.name])
        argv = [p.replace("{N}", n) for p in ws.spec.launcher] + argv
    env: dict[str, str] = dict(w.env)
    for a in plan.axes:
        if a.kind == "env_set":
            kept = {a.items[i] for i in point[a.name]}
            env = {k: v for k, v in env.items() if k not in a.items or k in kept}
    env.update(plan.mitigation_env)
    env.update({a.name: values[a.name] for a in plan.axes if a.kind == "env"})
    files: dict[str, str | tuple[str, ...]] = {}
    for a in plan.axes:
        if a.kind == "file_lines":
            last = len(a.items) - 1 if a.open_end else -1
            files[a.path] = "".join(a.items[i] + ("" if i == last else "\n") for i in point[a.name])
        elif a.kind == "file_set":
            files[a.path] = tuple(a.items[i] for i in point[a.name])
    blob = {
        "argv": argv,
        "env": sorted(env.items()),
        "files": sorted(
            (
                p,
                hashlib.sha256(c.encode()).hexdigest()
                if isinstance(c, str)
                else [(r, plan.file_hashes[f"{p}/{r}"]) for r in c],
            )
            for p, c in files.items()
        ),
    }
    key = hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()
    size = int(point[ws.name]) if ws is not None else None
    return Candidate(argv=tuple(argv), env=env, files=files, key=key, world_size=size)
