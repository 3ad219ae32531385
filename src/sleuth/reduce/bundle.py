"""The shippable reproducer: ``shrunken/`` with its inputs, scripts, spec, matrix recipe and snapshot.

``shrunken/run_repro.sh`` needs nothing but a POSIX shell and the workload's own interpreter: it
exports the variables the workload sets, enters ``inputs/`` (the workload's cwd, with the reduced
files as real files) and runs the final argv.  ``verify.sh N`` runs it N times and reports the
reproduction rate.  ``spec.yaml`` is the input spec at the final values (reducible again from
``shrunken/``), ``recipe.yaml`` a ``sleuth matrix`` recipe with one baseline cell.  Secret values
are never written: a redacted variable, and a redacted piece of the command line, is taken from the
caller's shell by ``run_repro.sh``.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sleuth.journal import atomic_write_json, atomic_write_text
from sleuth.model import MAX_TIMEOUT_S
from sleuth.reduce.plan import Candidate, Plan
from sleuth.reduce.scrub import Scrubber
from sleuth.reduce.tree import copy_listed, listing, walk
from sleuth.secrets import REDACTED
from sleuth.signature import parse_signature

__all__ = ["INPUTS_LIMIT", "write_shrunken"]

#: the most bytes of the workload's cwd copied into ``inputs/``; above, only the files it names
INPUTS_LIMIT = 200 * 1024 * 1024
_VCS = {".git", ".hg", ".svn"}
_CACHES = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_SKIP = {*_VCS, *_CACHES, ".venv", "sleuth-runs"}


def _linked_out(p: Path, r: Path, root: Path, outside: list[str] | None) -> bool:
    """True for ``p`` whose real path ``r`` is outside ``root`` (its ``REL -> TARGET`` to ``outside``)."""
    if not r.is_relative_to(root) and outside is not None:
        outside.append(f"{p.relative_to(root) if p.is_relative_to(root) else p} -> {r}")
    return not r.is_relative_to(root)


def _left_out(d: str, name: str, skip: set[Path], root: Path, outside: list[str] | None = None) -> bool:
    """True for what ``inputs/`` never holds: caches, the output dir, any sleuth run dir (an older
    run's logs and ``secrets.json``), a symlink back to a directory above it or to itself (a loop),
    a symlinked file or directory outside ``root`` (``creds -> ~/.aws/credentials``, a dataset: not
    the workload's to ship; its ``REL -> TARGET`` goes to ``outside``), and what is neither a file
    nor a directory (a FIFO would block the copy forever)."""
    if name in _SKIP or name.endswith(".pyc"):
        return True
    p = Path(d, name)
    try:
        r = p.resolve()
    except (OSError, RuntimeError):  # ln -s self self: "Symlink loop"
        return True
    if any(r == s or r.is_relative_to(s) for s in skip):
        return True
    if not p.is_dir():
        return p.exists() and (not p.is_file() or _linked_out(p, r, root, outside))
    if p.is_symlink() and Path(d).resolve().is_relative_to(r):
        return True
    if _linked_out(p, r, root, outside):
        return True
    return (p / "journal.jsonl").is_file() and (p / ".lock").exists()


def _copy_file(src: Path, dest: Path, root: Path, outside: list[str]) -> None:
    """Copy the file ``src`` to ``dest``, unless it is linked from outside ``root`` (noted in ``outside``)."""
    if _linked_out(src, src.resolve(), root, outside):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)


def _set_bytes(cwd: Path, sets: set[Path], skip: set[Path]) -> int:
    """The bytes of the ``file_set`` folders, counted whole toward :data:`INPUTS_LIMIT` with the rest
    of the cwd, though only their kept files are copied (each folder listed once, not by the copy)."""
    total = 0
    top = cwd.resolve()
    for folder in sets:
        parts = folder.relative_to(cwd).parts
        if any(_left_out(str(cwd.joinpath(*parts[:i])), parts[i], skip, top) for i in range(len(parts))):
            continue
        for dirpath, dirnames, filenames in walk(folder):
            dirnames[:] = [d for d in dirnames if not _left_out(dirpath, d, skip, top)]
            total += sum(Path(dirpath, f).stat().st_size for f in filenames if Path(dirpath, f).is_file())
            if total > INPUTS_LIMIT:
                return total
    return total


def _under(path: Path, cwd: Path) -> Path | None:
    """``path`` relative to ``cwd`` (an absolute one into it too: run_repro.sh reads it in inputs/),
    or None when it leads elsewhere."""
    if path.is_absolute():
        for top in (cwd, cwd.resolve()):
            if path.is_relative_to(top):
                return path.relative_to(top)
        return None
    return None if ".." in path.parts else path


def copy_inputs(plan: Plan, cand: Candidate, dest: Path, *, output_root: Path) -> str:
    """The workload's cwd as real files, axis files at their final content; returns a note."""
    skip = {output_root.resolve()}
    note = "the workload's directory"
    top = plan.cwd.resolve()
    outside: list[str] = []
    # a file_set's directory is written below with its kept files only: not copied whole first
    sets = {plan.cwd / rel for rel, content in cand.files.items() if not isinstance(content, str)}

    def ignore(d: str, names: list[str]) -> set[str]:
        return {n for n in names if _left_out(d, n, skip, top, outside) or Path(d, n) in sets}

    # one walk sizes and lists the copy (None past the limit)
    extra = _set_bytes(plan.cwd, sets, skip)
    listed = listing(plan.cwd, ignore, limit=INPUTS_LIMIT - extra) if extra <= INPUTS_LIMIT else None
    if listed is not None:
        copy_listed(plan.cwd, dest, *listed)
    else:  # a large repository: only what the command names
        outside.clear()  # what the walk noted before it stopped
        dest.mkdir(parents=True)
        for arg in cand.argv:
            named = _under(Path(arg), plan.cwd)
            if named is not None and (plan.cwd / named).is_file():
                _copy_file(plan.cwd / named, dest / named, top, outside)
        note = f"only the files the command names (the workload's directory is over {INPUTS_LIMIT >> 20} MiB)"
    for rel, content in cand.files.items():
        target = dest / rel
        if isinstance(content, str):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode("utf-8"))
        else:
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for f in content:
                _copy_file(plan.cwd / rel / f, target / f, top, outside)
    if outside:
        note += f" (left out, linked from outside it: {', '.join(outside)})"
    return note


def _cwd_pattern(cwd: Path) -> re.Pattern[str]:
    """The workload's directory inside a value (as the spec gave it and resolved), ending a path
    component: ``/home/me/proj/train.py``, ``--data=/home/me/proj/data``, ``PYTHONPATH=/home/me/proj:``."""
    forms = sorted({str(cwd), str(cwd.resolve())} - {"/"}, key=len, reverse=True)  # "/": every path
    if not forms:
        return re.compile(r"(?!)")
    return re.compile("(?:" + "|".join(map(re.escape, forms)) + r")(?![^/:;,=\s])")


def _word(text: str, here: re.Pattern[str]) -> str:
    """``text`` as one shell word, the workload's directory in it read as ``"$here/inputs"``: the
    bundle's copy, so the reproducer runs the files it ships, on any machine."""
    out, last = "", 0
    for m in here.finditer(text):
        out += (shlex.quote(text[last : m.start()]) if m.start() > last else "") + '"$here/inputs"'
        last = m.end()
    rest = text[last:]
    return out + (shlex.quote(rest) if rest or not out else "")


def _portable(doc: dict[str, Any], here: re.Pattern[str]) -> dict[str, Any]:
    """``doc`` (a spec or a recipe) with the workload's directory in its ``workload`` section made
    ``.``: the bundle's spec and recipe run in ``inputs/``."""

    def walk(obj: Any) -> Any:
        if isinstance(obj, str):
            return here.sub(".", obj)
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    return {**doc, "workload": walk(doc["workload"])}


def _asked(name: str, value: str, scrubber: Scrubber) -> bool:
    """True for a variable of the workload whose value the bundle leaves out (taken from the shell)."""
    return name in scrubber.secrets.values or REDACTED in scrubber.text(value)


def _ask(var: str) -> str:
    """The shell word reading ``$var``, or stopping with a message when it is not set."""
    return f'"${{{var}:?{var} was redacted from this bundle: export it first}}"'


def _exports(env: Mapping[str, str], scrubber: Scrubber, here: re.Pattern[str]) -> list[str]:
    return [f"export {k}={_ask(k) if _asked(k, v, scrubber) else _word(v, here)}" for k, v in env.items()]


#: the variable ``run_repro.sh`` reads a redacted piece of the command line from (1, 2, ...)
SECRET_ARG_VAR = "REPRO_SECRET_{}"


def _command_line(
    argv: list[str], env: Mapping[str, str], scrubber: Scrubber, here: re.Pattern[str]
) -> tuple[str, list[str], list[str]]:
    """The shell words of ``argv`` with every redacted piece read from a variable, the comment
    lines that say which variable holds what, and the ``REPRO_SECRET_<n>`` variables it reads.
    Written as ``<redacted>``, a piece would be a shell redirection (``--key <redacted>``: "cannot
    open redacted"), and the script would not run at all.

    A piece equal to a redacted variable of the workload's own (exported above it) reads that one;
    each other distinct value gets ``REPRO_SECRET_<n>``.
    """
    by_value = {v: k for k, v in env.items() if _asked(k, v, scrubber)}
    names: dict[str, str] = {}
    words: list[str] = []
    asks: list[str] = []
    for i, arg in enumerate(argv):
        shown = scrubber.text(arg)
        if shown == arg:
            words.append(_word(arg, here))
            continue
        plain = shown.split(REDACTED)
        m = re.fullmatch("(.*?)".join(map(re.escape, plain)), arg, re.DOTALL)
        hidden = list(m.groups()) if m is not None else [arg]
        if m is None:  # cannot tell the pieces apart: the whole argument comes from the variable
            plain = ["", ""]
        word = ""
        for j, piece in enumerate(plain):
            word += _word(piece, here) if piece else ""
            if j < len(hidden):
                value = hidden[j]
                var = by_value.get(value) or names.get(value)
                if var is None:
                    var = names[value] = SECRET_ARG_VAR.format(len(names) + 1)
                    where = " ".join(shown.split())
                    asks.append(f"#   {var}: hidden in argument {i} of the command: {where[:160]}")
                word += _ask(var)
        words.append(word)
    if asks:
        asks.insert(0, "# Redacted from the command line: export these before running it")
    return " ".join(words), asks, list(names.values())


def _check(plan: Plan, target: str | None) -> str:
    """A shell condition on ``$rc`` and the captured ``$out`` files: the failure reproduced."""
    o = plan.spec.oracle
    if o.kind == "regex":
        files = {"stdout": '"$out/stdout"', "stderr": '"$out/stderr"', "both": '"$out/stdout" "$out/stderr"'}
        py = (
            "import re,sys; t=''.join(open(f,errors='replace').read() for f in sys.argv[2:]); "
            "sys.exit(0 if re.search(sys.argv[1], t, re.M) else 1)"
        )
        return f"python3 -c {shlex.quote(py)} {shlex.quote(o.pattern or '')} {files[o.stream]}"
    parts = parse_signature(target or "")
    head = parts.head
    cond = '[ "$rc" -ne 0 ]'
    if head.startswith("exit "):
        cond = f'[ "$rc" -eq {int(head.split()[1]) & 255} ]'
    kind = parts.kind_key
    if kind and not kind.startswith(("FAILED ", "ERROR ")):
        cond += f' && grep -qF {shlex.quote(kind)} "$out/stdout" "$out/stderr"'
    return cond


def write_shrunken(
    plan: Plan,
    cand: Candidate,
    final: Mapping[str, Any],
    run_path: Path,
    *,
    output_root: Path,
    scrubber: Scrubber,
    target: str | None,
    timeout: float | None,
    snapshot: dict[str, Any],
    header: list[str],
) -> dict[str, Any]:
    """Write ``shrunken/`` for candidate ``cand`` (the point ``final``); returns notes for SHIP.md."""
    out = run_path / "shrunken"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    note = copy_inputs(plan, cand, out / "inputs", output_root=output_root)
    argv = list(cand.argv)
    here = _cwd_pattern(plan.cwd)
    command, asks, extra = _command_line(argv, cand.env, scrubber, here)
    needed = [k for k, v in cand.env.items() if _asked(k, v, scrubber)] + extra
    comments = "".join(f"# {scrubber.text(h)}\n" for h in header)
    repro = (
        "#!/bin/sh\n# Minimal reproducer written by sleuth reduce.\n" + comments + "set -u\n"
        'here=$(cd "$(dirname "$0")" && pwd)\ncd "$here/inputs" || exit 2\n'
        + "".join(line + "\n" for line in [*_exports(cand.env, scrubber, here), *asks])
        + f"exec {command}\n"
    )
    atomic_write_text(out / "run_repro.sh", repro, mode=0o755)
    verify = (
        "#!/bin/sh\n# Run run_repro.sh N times (default 10); report how often the failure reproduced.\n"
        f"# The failure: {scrubber.text(target or f'output matches {plan.spec.oracle.pattern!r}')}\n"
        "set -u\n"
        # a value the bundle leaves out stops it here, not as "reproduced 0/N"
        + "".join(f": {_ask(v)}\n" for v in needed)
        + 'here=$(cd "$(dirname "$0")" && pwd)\nn=${1:-10}\nhits=0\ni=0\nout=$(mktemp -d)\n'
        # the workload's output (maybe a secret) does not outlive a Ctrl-C in /tmp
        "trap 'rm -rf \"$out\"' EXIT\ntrap 'exit 130' INT\ntrap 'exit 143' TERM\n"
        'while [ "$i" -lt "$n" ]; do\n  i=$((i + 1))\n'
        '  sh "$here/run_repro.sh" >"$out/stdout" 2>"$out/stderr"\n  rc=$?\n'
        f"  if {_check(plan, target)}; then hits=$((hits + 1)); fi\ndone\n"
        'echo "reproduced $hits/$n"\n[ "$hits" -gt 0 ]\n'
    )
    atomic_write_text(out / "verify.sh", verify, mode=0o755)
    atomic_write_text(
        out / "spec.yaml",
        yaml.safe_dump(scrubber.obj(_portable(final_spec(plan, final), here)), sort_keys=False),
    )
    atomic_write_text(
        out / "recipe.yaml",
        yaml.safe_dump(scrubber.obj(_portable(recipe(plan, cand, timeout), here)), sort_keys=False),
    )
    env_doc = {"argv": argv, "workload_env": dict(cand.env), "cwd": "inputs", "snapshot": snapshot}
    atomic_write_json(out / "env.json", scrubber.obj(env_doc))
    return {"inputs": note}


def final_spec(plan: Plan, final: Mapping[str, Any]) -> dict[str, Any]:
    """The input spec with every axis at its final value, its cwd the bundle's ``inputs/``."""
    data: dict[str, Any] = plan.spec.model_dump(mode="json", exclude_defaults=True)
    data.setdefault("workload", {})["cwd"] = "inputs"
    if data["workload"].get("timeout", 0) > MAX_TIMEOUT_S:  # an older sleuth's, kept by the resume
        data["workload"]["timeout"] = MAX_TIMEOUT_S  # a new spec: as new input, at most 30 days
    data["name"] = plan.name
    env = dict(plan.spec.workload.env)
    axes = []
    for raw, a in zip(data["axes"], plan.axes, strict=True):
        v = final[a.name]
        if a.kind == "env_set":
            dropped = {a.items[i] for i in range(len(a.items))} - {a.items[i] for i in v}
            env = {k: x for k, x in env.items() if k not in dropped}
        elif a.kind == "arg_set":
            raw["values"] = [a.items[i] for i in v] or raw["values"][:0]
        elif a.kind == "window":
            raw["start"], raw["end"] = v
        elif a.kind in ("param", "env", "world_size"):
            raw["initial"] = a.choices[v] if a.choices else v
        axes.append(raw)
    data["workload"]["env"] = env
    keep: list[dict[str, Any]] = []
    for x, a in zip(axes, plan.axes, strict=True):
        empty = not final[a.name] if a.kind in ("arg_set", "file_set") else False
        if a.kind == "env_set":
            empty = not [k for k in env if k not in x.get("keep", []) and k not in _env_axes(plan)]
        if not empty:
            keep.append(x)
        elif a.kind == "arg_set":  # its placeholder goes with it
            token = "{" + a.name + "}"
            cmd = data["workload"]["command"]
            data["workload"]["command"] = (
                cmd.replace(token, "") if isinstance(cmd, str) else [c for c in cmd if c != token]
            )
    data["axes"] = keep
    return data


def _env_axes(plan: Plan) -> set[str]:
    return {a.name for a in plan.axes if a.kind == "env"}


def recipe(plan: Plan, cand: Candidate, timeout: float | None) -> dict[str, Any]:
    """A ``sleuth matrix`` recipe (schema 1) for the reproducer: one baseline cell."""
    o = plan.spec.oracle
    oracle: dict[str, Any] = (
        {"kind": "regex", "pattern": o.pattern, "stream": o.stream}
        if o.kind == "regex"
        else {"kind": "exit_code"}
    )
    if o.kind == "python":
        oracle["callable"] = o.callable
    if o.skip_exit:
        oracle["skip_exit"] = list(o.skip_exit)
    env = {k: v for k, v in cand.env.items() if k not in plan.mitigation_env}
    workload: dict[str, Any] = {
        "name": plan.name,
        "command": list(cand.argv),
        "cwd": "inputs",
        "env": env,
        "oracle": oracle,
    }
    if timeout is not None:
        workload["timeout"] = round(min(timeout, MAX_TIMEOUT_S), 3)  # as new input (see final_spec)
    if plan.spec.workload.kill_grace is not None:
        workload["kill_grace"] = plan.spec.workload.kill_grace
    environment = plan.spec.environment
    cell: dict[str, Any] = {"name": "baseline", "mitigations": list(plan.spec.mitigations) or ["none"]}
    if environment != "host":
        cell["environment"] = environment if isinstance(environment, str) else environment.plain()
    return {"schema_version": 1, "workload": workload, "trials": 10, "cells": [cell]}
