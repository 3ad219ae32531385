"""The flag shim: ``--mitigation-axis --environment-axis --trials ... -- CMD`` build the same recipe a
file would (one cell per mitigation stack x environment), validated by the same models.

``--mitigation-axis a,b+c`` gives the stacks ``[a]`` and ``[b, c]``; ``none`` (the baseline) is
added first when missing, so every environment has its own baseline.
``--environment-axis host,venv:PIN PIN,docker:IMAGE,pyxis:IMAGE,NAME`` names registered
environments or spells one out (``venv:`` takes space-separated pins; it becomes an alias named
``venv-<pins>-<digest>`` in the recipe).  The command comes after ``--`` (an argv, as ``sleuth
run`` takes it) or as ``--workload-cmd 'CMD'`` (split like a shell would); ``--workload`` takes a
named workload (plugin) or a command string.  Every mistake names the flag, never the recipe key
it turns into.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
import shutil
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sleuth.errors import UsageError
from sleuth.matrix.plan import RESERVED, name_problem, short_name
from sleuth.matrix.recipe import regex_problem
from sleuth.model import MAX_TRIALS, NAME_HINT, timeout_over_max
from sleuth.registry import KINDS
from sleuth.secrets import scrub_text

__all__ = ["ShimFlags", "build_recipe"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ShimFlags:
    """The recipe-content flags of ``sleuth matrix``."""

    workload_cmd: str | None = None
    #: the command given after ``--``
    command: tuple[str, ...] = ()
    #: ``--env NAME=VALUE`` pairs, for every cell (``workload.env``)
    env: tuple[tuple[str, str], ...] = ()
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
    #: ``--workload``: a named workload (plugin), or a command string
    workload: str | None = None
    baseline_cell: str | None = None

    def given(self) -> list[str]:
        """The fields that were set (the CLI names each as the user typed it)."""
        return [k for k in self.__slots__ if getattr(self, k) not in (None, ())]


def _items(flag: str, values: tuple[str, ...]) -> list[str]:
    """The comma-separated items of a repeatable flag; an empty item is an error naming the flag."""
    items: list[str] = []
    for v in values:
        for item in v.split(","):
            if not item.strip():
                raise UsageError(
                    f"{flag} {v!r}: an empty item",
                    hint="separate names with single commas, e.g. "
                    + (
                        "tf32_off,nccl_p2p_off+nccl_ib_off"
                        if flag == "--mitigation-axis"
                        else "host,venv:PIN"
                    ),
                )
            items.append(item.strip())
    return items


def _stacks(flags: ShimFlags, mitigations: Collection[str]) -> list[list[str]]:
    stacks: list[list[str]] = []
    for item in _items("--mitigation-axis", flags.mitigation_axis):
        parts = [m.strip() for m in item.split("+")]
        if not all(parts):
            raise UsageError(
                f"--mitigation-axis {item!r}: an empty name in a stack",
                hint="stack with a+b, e.g. tf32_off+nccl_p2p_off",
            )
        for m in parts:
            if m not in mitigations:
                raise UsageError(f"--mitigation-axis: unknown mitigation {m!r} (see sleuth mitigations)")
        if len(set(parts)) != len(parts):
            raise UsageError(f"--mitigation-axis {item!r}: a mitigation is stacked twice")
        stack = [m for m in parts if m != "none"] or ["none"]
        if any(sorted(stack) == sorted(s) for s in stacks):
            raise UsageError(f"--mitigation-axis: the stack {item!r} is given twice")
        stacks.append(stack)
    return stacks


def _env_entry(item: str, environments: Collection[str]) -> tuple[dict[str, Any] | None, str]:
    """(the spec to register under the label, or None for a registered name; the label)."""
    kind, sep, value = item.partition(":")
    if not sep:
        if item in KINDS:
            raise UsageError(f"--environment-axis {item!r}: {item} needs a value, e.g. {item}:IMAGE")
        if item not in environments:
            raise UsageError(f"--environment-axis: unknown environment {item!r} (see sleuth environments)")
        return None, item
    if kind not in KINDS:
        raise UsageError(
            f"--environment-axis {scrub_text(item)!r}: unknown kind {kind!r} (use one of {', '.join(KINDS)})"
        )
    if not value.strip():
        raise UsageError(f"--environment-axis {item!r}: {kind} needs a value after the colon")
    spec: dict[str, Any] = {kind: value.split() if kind == "venv" else value.strip()}
    # the name is written everywhere: URL credentials and tokens in a pin must not reach it
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", scrub_text(value.strip())).strip("._-")[:32]
    digest = hashlib.blake2b(item.encode(), digest_size=3).hexdigest()
    return spec, f"{kind}-{slug}-{digest}" if slug else f"{kind}-{digest}"


def _check_values(flags: ShimFlags) -> None:
    """Check the scalar flags here, so an error names the flag (not the recipe key it becomes)."""
    if flags.trials is not None and not 1 <= flags.trials <= MAX_TRIALS:
        raise UsageError(f"--trials {flags.trials}: must be between 1 and {MAX_TRIALS}")
    for flag, value in (("--timeout", flags.timeout), ("--confound-threshold", flags.threshold)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise UsageError(f"{flag} {value:g}: must be a positive number")
    too_long = None if flags.timeout is None else timeout_over_max(flags.timeout)
    if too_long is not None:  # the one wording: sleuth run's and sleuth bisect's too
        raise UsageError(f"--timeout {too_long}")
    for flag, pattern in (("--fail-regex", flags.fail_regex), ("--step-time-regex", flags.step_time_regex)):
        problem = None if pattern is None else regex_problem(pattern, one_group=flag == "--step-time-regex")
        if problem is not None:
            syntax, detail = problem
            raise UsageError(f"{flag} {pattern!r}: {'invalid regex: ' if syntax else ''}{detail}")
    for flag, name in (("--ticket", flags.ticket), ("--name", flags.name)):
        why = None if name is None else name_problem(name)
        if name is not None and why is not None:
            shown = repr(name) if len(name) <= 60 else repr(name[:40] + "...")
            raise UsageError(
                f"{flag} {shown}: {why}",
                hint=NAME_HINT,
            )


def _plugin(flags: ShimFlags) -> str | None:
    """``--workload NAME``: the plugin it names, or None when it is a command string."""
    from sleuth.workloads import available, is_reference

    value = flags.workload
    if value is None:
        return None
    if not value.strip():
        raise UsageError("--workload '': give a workload plugin's name or a command")
    if value in available() or is_reference(value):
        if flags.command or flags.workload_cmd is not None:
            raise UsageError(
                f"--workload {value}: a named workload builds its own command; drop the command",
                hint="give the command after -- (or --workload-cmd) instead of a plugin",
            )
        return value
    words = value.split()
    if len(words) == 1 and shutil.which(words[0]) is None and not Path(words[0]).exists():
        raise UsageError(
            f"--workload {value!r}: neither a workload plugin nor a command",
            hint=f"installed plugins: {', '.join(available()) or 'none'}; a command goes after --",
        )
    return None


def _command(flags: ShimFlags) -> list[str] | str:
    """The workload's command: the argv after ``--``, or the one string of ``--workload-cmd`` (or a
    ``--workload`` that is no plugin), which runs by ``/bin/sh -c`` as a recipe's string command does
    (``'make data && python train.py'``, ``$HOME`` and globs mean what they mean in a shell)."""
    given = [f for f, v in (("after --", flags.command), ("--workload-cmd", flags.workload_cmd),
                            ("--workload", flags.workload)) if v]  # fmt: skip
    if len(given) > 1:
        raise UsageError(f"give the command once, not both {given[0]} and {given[1]}")
    if flags.workload is not None:
        flags = replace(flags, workload_cmd=flags.workload)
    if flags.command:
        if not flags.command[0].strip():
            raise UsageError(
                "the command after -- is empty", hint="e.g. sleuth matrix ... -- python train.py"
            )
        return list(flags.command)
    if flags.workload_cmd is None:
        raise UsageError(
            "give --recipe FILE, or the command after -- with the axes",
            hint="e.g. sleuth matrix --mitigation-axis tf32_off --trials 20 -- python train.py",
        )
    flag = "--workload" if flags.workload is not None else "--workload-cmd"
    try:
        words = shlex.split(flags.workload_cmd)  # a quote left open is an error before any trial runs
    except ValueError as exc:
        raise UsageError(f"{flag} {flags.workload_cmd!r}: {exc}") from None
    if not words:
        raise UsageError(f"{flag}: empty command")
    return flags.workload_cmd


def _cell_name(stack: list[str], label: str | None, taken: set[str]) -> str:
    base = "baseline" if stack == ["none"] else "-".join(stack)
    name = short_name(base if label is None else f"{base}.{label}")
    if name in taken or name in RESERVED:
        raise UsageError(f"--mitigation-axis: two cells would be named {name!r}")
    taken.add(name)
    return name


def build_recipe(
    flags: ShimFlags, *, mitigations: Collection[str], environments: Collection[str], seed: int | None
) -> dict[str, Any]:
    """The recipe data the flags describe (validated later like a file); UsageError naming the flag."""
    _check_values(flags)
    plugin = _plugin(flags)
    command = _command(flags) if plugin is None else []
    if flags.mitigation_axis and not "".join(flags.mitigation_axis).strip():
        raise UsageError(
            "--mitigation-axis '': no mitigation given",
            hint="name at least one, e.g. --mitigation-axis tf32_off (see sleuth mitigations)",
        )
    stacks = _stacks(flags, mitigations)
    if ["none"] not in stacks:
        stacks.insert(0, ["none"])
    if flags.environment_axis and not "".join(flags.environment_axis).strip():
        raise UsageError("--environment-axis '': no environment given", hint="e.g. --environment-axis host")
    env_items = _items("--environment-axis", flags.environment_axis) or ["host"]
    if len(set(env_items)) != len(env_items):
        dup = next(e for e in env_items if env_items.count(e) > 1)
        raise UsageError(f"--environment-axis: {scrub_text(dup)!r} is given twice")
    envs = [_env_entry(item, environments) for item in env_items]
    aliases = {label: spec for spec, label in envs if spec is not None}
    cells: list[dict[str, Any]] = []
    taken: set[str] = set()
    for _, label in envs:
        for stack in stacks:
            name = _cell_name(stack, label if len(envs) > 1 else None, taken)
            cells.append({"name": name, "mitigations": stack, "environment": label})
    workload: dict[str, Any] = {"plugin": plugin} if plugin is not None else {"command": command}
    if flags.fail_regex is not None:
        workload["oracle"] = {"kind": "regex", "pattern": flags.fail_regex, "stream": flags.stream or "both"}
    elif flags.stream is not None:
        raise UsageError("--stream needs --fail-regex")
    elif plugin is None:
        workload["oracle"] = {"kind": "exit_code"}
    if flags.env:
        workload["env"] = dict(flags.env)
    if flags.step_time_regex is not None:
        workload["step_time"] = {"regex": flags.step_time_regex}
    if flags.timeout is not None:
        workload["timeout"] = flags.timeout
    if flags.name is not None:
        workload["name"] = flags.name
    data: dict[str, Any] = {"schema_version": 1, "workload": workload, "cells": cells}
    if aliases:
        data["environments"] = aliases
    if flags.ticket is not None:
        data["ticket"] = flags.ticket
    if flags.trials is not None:
        data["trials"] = flags.trials
    confound: dict[str, Any] = {}
    if flags.threshold is not None:
        confound["threshold"] = flags.threshold
    if flags.baseline_cell is not None:
        names = [c["name"] for c in cells]
        if flags.baseline_cell not in names:
            raise UsageError(
                f"--baseline-cell {flags.baseline_cell!r}: no such cell (the cells: {', '.join(names)})"
            )
        confound["baseline_cell"] = flags.baseline_cell
    if confound:
        data["confound"] = confound
    if seed is not None:
        data["seed"] = seed
    return data
