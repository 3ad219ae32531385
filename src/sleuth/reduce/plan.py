"""A validated spec made concrete: the plan's axes with their items, and any point turned into a candidate.

:class:`Plan` is a spec resolved against the files, the registry and the environment
(:func:`sleuth.reduce.resolve.resolve` makes one, checking everything ``--dry-run`` checks); its
axes (:class:`RuntimeAxis`) hold what each ranges over.  :func:`materialize` turns a point (axis ->
value) into a :class:`Candidate`: argv, the variables it sets, its files, and a content hash that
keys the outcome cache (two points that run the same thing share one verdict).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.reduce.fixpoint import AxisPlan
from sleuth.reduce.spec import NumericAxis, ReduceSpec, WindowAxis, WorldSizeAxis

__all__ = ["PLACEHOLDER", "Candidate", "Plan", "RuntimeAxis", "materialize"]

#: a ``{NAME}`` placeholder of the workload's command, filled by an axis
PLACEHOLDER = re.compile(r"\{([A-Z_][A-Z0-9_]*)\}")


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


def materialize(plan: Plan, point: Mapping[str, Any]) -> Candidate:
    """The argv, variables and files of ``point``, and its content hash."""
    values = _values(plan, point)
    splice = {a.name: [a.items[i] for i in point[a.name]] for a in plan.axes if a.kind == "arg_set"}

    def sub(text: str) -> str:
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)

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
            m = PLACEHOLDER.fullmatch(part)
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
