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
``path/file.py:Class``); ``--spec`` is then not needed.  The predicate is the oracle (``kind:
python``): True/PASS passes, False/FAIL fails, None keeps the built-in verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from sleuth.errors import ConfigError, UsageError
from sleuth.model import TrialResult

__all__ = ["ENTRY_POINT_WORKLOADS", "Wrapped", "load_workload"]

ENTRY_POINT_WORKLOADS = "sleuth.workloads"
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


def _find(ref: str) -> Any:
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=ENTRY_POINT_WORKLOADS) if ep.name == ref]
    if found:
        try:
            return found[0].load()
        except Exception as exc:  # a broken plugin is named, not a traceback
            raise UsageError(f"--workload {ref}: entry point {found[0].value} cannot load: {exc}") from exc
    if ":" not in ref:
        names = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_WORKLOADS))
        raise UsageError(f"--workload {ref!r}: no such entry point in {ENTRY_POINT_WORKLOADS}",
                         hint=f"known: {', '.join(names) or 'none'}; or give module:Class")  # fmt: skip
    from sleuth.oracle import load_callable

    return load_callable(ref, "--workload")


def load_workload(ref: str) -> Wrapped:
    """Load ``ref``; its sections become the spec (validated like a spec file, named by ``ref``)."""
    cls = _find(ref)
    try:
        obj = cls() if isinstance(cls, type) else cls
    except Exception as exc:
        raise UsageError(f"--workload {ref}: cannot create {cls!r}: {type(exc).__name__}: {exc}") from exc
    data = {k: _plain(getattr(obj, k)) for k in _SECTIONS if getattr(obj, k, None) is not None}
    if "axes" not in data or "workload" not in data:
        raise ConfigError(f"workload {ref}: declare at least workload and axes")
    predicate = getattr(obj, "predicate", None)
    if predicate is not None and not callable(predicate):
        raise ConfigError(f"workload {ref}: predicate is not callable")
    if predicate is not None:
        data.setdefault("oracle", {})
        if data["oracle"].get("kind", "python") != "python":
            raise ConfigError(f"workload {ref}: oracle.kind must be python (or absent) with a predicate")
        data["oracle"] = {**data["oracle"], "kind": "python", "callable": f"{ref}.predicate"}
    return Wrapped(ref=ref, data=data, text=yaml.safe_dump(data, sort_keys=False), predicate=predicate)
