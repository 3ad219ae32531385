"""Workloads that declare their axes in Python (entry-point group ``sleuth.workloads``).

A wrapped workload is a class with the spec's sections as attributes, axes typed with the spec's
own models (or plain mappings), and an optional predicate over the workload's result::

    class Train:
        name = "train"
        workload = {"command": ["python", "train.py", "--steps", "{STEPS}"]}
        axes = [NumericAxis(name="STEPS", kind="param", initial=5000, floor=1)]

        def predicate(self, result: TrialResult) -> bool | Outcome | None:
            return "NaN" not in result.stdout_tail      # False: the failure reproduced

``sleuth reduce --workload NAME`` loads it by entry-point name (or ``module:Class``,
``path/file.py:Class``) through the core protocol (:mod:`sleuth.workloads`, which ``sleuth
matrix`` uses too); ``--spec`` is then not needed.  The predicate is the oracle (``kind:
python``): True/PASS passes, False/FAIL fails, None keeps the built-in verdict.  A class without
a ``workload`` section that gives a command the core way (``entry``, ``command(params)``) runs
that command with its default ``params``, ``env``, ``timeout`` and ``kill_grace``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from sleuth.errors import ConfigError
from sleuth.model import TrialResult
from sleuth.workloads import ENTRY_POINT_WORKLOADS, NamedWorkload
from sleuth.workloads import load_workload as load_named

__all__ = ["ENTRY_POINT_WORKLOADS", "Wrapped", "load_workload"]

_SECTIONS = ("name", "workload", "oracle", "budget", "axes", "mitigations", "environment")


@dataclass(frozen=True, slots=True)
class Wrapped:
    """A loaded wrapped workload: its spec as data, its text, and its predicate."""

    ref: str
    data: dict[str, Any]
    text: str
    predicate: Callable[[TrialResult], Any] | None


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_defaults=True) | {"kind": getattr(value, "kind", None)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _workload_section(named: NamedWorkload) -> dict[str, Any] | None:
    """A ``workload`` section built the core way (command, env, timeout, kill grace), when the class
    has none; the launcher's parameters are a variable of its ``env`` (off the command line)."""
    try:
        command, params = named.launch(named.defaults)
    except ConfigError:
        return None
    section: dict[str, Any] = {"command": command}
    env = {**dict(named.section("env") or {}), **params}
    if env:
        section["env"] = env
    for key in ("timeout", "kill_grace"):  # checked with the rest of the spec
        value = named.section(key)
        if value is not None:
            section[key] = value
    return section


def load_workload(ref: str) -> Wrapped:
    """Load ``ref``; its sections become the spec (validated like a spec file, named by ``ref``)."""
    named = load_named(ref, "--workload")
    obj = named.obj
    data = {k: _plain(getattr(obj, k)) for k in _SECTIONS if getattr(obj, k, None) not in (None, "")}
    if "workload" not in data and "axes" in data:
        section = _workload_section(named)
        if section is not None:
            data["workload"] = section
    if "axes" not in data or "workload" not in data:
        raise ConfigError(
            f"workload {ref}: declare at least workload and axes",
            hint="without axes a named workload serves sleuth matrix only (workload: {plugin: NAME})",
        )
    predicate = getattr(obj, "predicate", None)
    if predicate is not None and not callable(predicate):
        raise ConfigError(f"workload {ref}: predicate is not callable")
    if predicate is not None:
        data.setdefault("oracle", {})
        if data["oracle"].get("kind", "python") != "python":
            raise ConfigError(f"workload {ref}: oracle.kind must be python (or absent) with a predicate")
        data["oracle"] = {**data["oracle"], "kind": "python", "callable": f"{ref}.predicate"}
    return Wrapped(ref=ref, data=data, text=yaml.safe_dump(data, sort_keys=False), predicate=predicate)
