"""The flag shim: ``--workload-cmd --mitigation-axis --environment-axis --trials ...`` build the same
recipe a file would (one cell per mitigation stack x environment), validated by the same models.

``--mitigation-axis a,b+c`` gives the stacks ``[a]`` and ``[b, c]``; ``none`` (the baseline) is
added first when missing.  ``--environment-axis host,venv:PIN PIN,docker:IMAGE,pyxis:IMAGE,NAME``
names registered environments or spells one out (``venv:`` takes space-separated pins).
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sleuth.errors import UsageError
from sleuth.matrix.recipe import regex_problem
from sleuth.model import check_name
from sleuth.registry import KINDS

__all__ = ["ShimFlags", "build_recipe"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ShimFlags:
    """The recipe-content flags of ``sleuth matrix``."""

    workload_cmd: str | None = None
    mitigation_axis: tuple[str, ...] = ()
    environment_axis: tuple[str, ...] = ()
    trials: int | None = None
    fail_regex: str | None = None
    stream: str | None = None
    step_time_regex: str | None = None
    timeout: float | None = None
    ticket: str | None = None
    name: str | None = None
    threshold: float | None = None

    def given(self) -> list[str]:
        """The flags that were set, as ``--flag-name``."""
        return [f"--{k.replace('_', '-')}" for k in self.__slots__ if getattr(self, k) not in (None, ())]


def _items(values: tuple[str, ...]) -> list[str]:
    return [item.strip() for v in values for item in v.split(",") if item.strip()]


def _env_entry(item: str, environments: Collection[str]) -> tuple[str | dict[str, Any], str]:
    kind, sep, value = item.partition(":")
    if not sep:
        if item in KINDS:
            raise UsageError(f"--environment-axis {item!r}: {item} needs a value, e.g. {item}:IMAGE")
        if item not in environments:
            raise UsageError(f"--environment-axis: unknown environment {item!r} (see sleuth environments)")
        return item, item
    if kind not in KINDS:
        raise UsageError(
            f"--environment-axis {item!r}: unknown kind {kind!r} (use one of {', '.join(KINDS)})"
        )
    if not value.strip():
        raise UsageError(f"--environment-axis {item!r}: {kind} needs a value after the colon")
    spec: dict[str, Any] = {kind: value.split() if kind == "venv" else value.strip()}
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", value.strip()).strip("._-")[:32]
    digest = hashlib.blake2b(item.encode(), digest_size=3).hexdigest()
    return spec, f"{kind}-{slug}-{digest}" if slug else f"{kind}-{digest}"


def _check_values(flags: ShimFlags) -> None:
    """Check the scalar flags here, so an error names the flag (not the recipe key it becomes)."""
    if flags.trials is not None and flags.trials < 1:
        raise UsageError(f"--trials {flags.trials}: must be at least 1")
    for flag, value in (("--timeout", flags.timeout), ("--confound-threshold", flags.threshold)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise UsageError(f"{flag} {value:g}: must be a positive number")
    for flag, pattern in (("--fail-regex", flags.fail_regex), ("--step-time-regex", flags.step_time_regex)):
        problem = None if pattern is None else regex_problem(pattern, one_group=flag == "--step-time-regex")
        if problem is not None:
            syntax, detail = problem
            raise UsageError(f"{flag} {pattern!r}: {'invalid regex: ' if syntax else ''}{detail}")
    for flag, name in (("--ticket", flags.ticket), ("--name", flags.name)):
        if name is not None and not check_name(name):
            raise UsageError(
                f"{flag} {name!r}: cannot name a directory",
                hint="use letters, digits, '_', '.', '-', not starting with '.' or '-'",
            )


def build_recipe(
    flags: ShimFlags, *, mitigations: Collection[str], environments: Collection[str], seed: int | None
) -> dict[str, Any]:
    """The recipe data the flags describe (validated later like a file); UsageError naming the flag."""
    _check_values(flags)
    if not flags.workload_cmd:
        raise UsageError(
            "give --recipe FILE, or --workload-cmd CMD with the axes", hint="see sleuth matrix --help"
        )
    try:
        command = shlex.split(flags.workload_cmd)
    except ValueError as exc:
        raise UsageError(f"--workload-cmd {flags.workload_cmd!r}: {exc}") from None
    if not command:
        raise UsageError("--workload-cmd: empty command")
    stacks: list[list[str]] = []
    for item in _items(flags.mitigation_axis):
        stack = [m.strip() for m in item.split("+") if m.strip()]
        for m in stack:
            if m not in mitigations:
                raise UsageError(f"--mitigation-axis: unknown mitigation {m!r} (see sleuth mitigations)")
        stacks.append(stack)
    if ["none"] not in stacks:
        stacks.insert(0, ["none"])
    env_items = _items(flags.environment_axis) or ["host"]
    envs = [_env_entry(item, environments) for item in env_items]
    cells = []
    for spec, label in envs:
        for stack in stacks:
            base = "baseline" if stack == ["none"] else "-".join(stack)
            name = base if len(envs) == 1 else f"{base}.{label}"
            cells.append({"name": name, "mitigations": stack, "environment": spec})
    oracle: dict[str, Any] = {"kind": "exit_code"}
    if flags.fail_regex is not None:
        oracle = {"kind": "regex", "pattern": flags.fail_regex, "stream": flags.stream or "both"}
    elif flags.stream is not None:
        raise UsageError("--stream needs --fail-regex")
    workload: dict[str, Any] = {"command": command, "oracle": oracle}
    if flags.step_time_regex is not None:
        workload["step_time"] = {"regex": flags.step_time_regex}
    if flags.timeout is not None:
        workload["timeout"] = flags.timeout
    if flags.name is not None:
        workload["name"] = flags.name
    data: dict[str, Any] = {"schema_version": 1, "workload": workload, "cells": cells}
    if flags.ticket is not None:
        data["ticket"] = flags.ticket
    if flags.trials is not None:
        data["trials"] = flags.trials
    if flags.threshold is not None:
        data["confound"] = {"threshold": flags.threshold}
    if seed is not None:
        data["seed"] = seed
    return data
