"""What the ``sleuth reduce`` page (:mod:`sleuth.report.reduce`) reads from a run dir: the spec's axes
and their kinds, the search's steps (``reduction_trace.jsonl``, else the journal's ``baseline`` and
``candidate`` events), and how an axis's value is sized and shown.

A run dir's odd value is shown as it is or left out, never a crash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sleuth.report.source import RunDirView

__all__ = [
    "LISTS",
    "as_dict",
    "as_list",
    "axis_kinds",
    "best_so_far",
    "read_spec",
    "read_steps",
    "show_value",
    "taken",
    "value_size",
]

#: the axis kinds whose value is a list of items
LISTS = ("file_lines", "file_set", "env_set", "arg_set")


def as_dict(x: Any) -> dict[str, Any]:
    """``x`` when it is an object, else {} (a run dir's odd value never crashes the page)."""
    return x if isinstance(x, dict) else {}


def as_list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def read_spec(view: RunDirView) -> dict[str, Any]:
    """The run's spec (``spec.yaml``, scrubbed), or {} when it is gone or unreadable."""
    import yaml

    try:
        data = yaml.safe_load((view.path / "spec.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return view.scrub(data) if isinstance(data, dict) else {}


def axis_kinds(spec: Mapping[str, Any]) -> dict[str, str]:
    """Axis name -> kind (``choice`` for a ``type: choice`` axis: it has no size)."""
    axes = spec.get("axes")
    out: dict[str, str] = {}
    for a in axes if isinstance(axes, list) else []:
        if isinstance(a, dict) and isinstance(a.get("name"), str):
            out[a["name"]] = "choice" if a.get("type") == "choice" else str(a.get("kind", ""))
    return out


def value_size(kind: str, value: Any) -> float | None:
    """A value's size: the number, the items kept, the window's length; None when it has none."""
    if kind == "choice":
        return None
    if kind == "window" and isinstance(value, list) and len(value) == 2:
        return float(value[1] - value[0]) if all(isinstance(v, int) for v in value) else None
    if isinstance(value, list):
        return float(len(value))
    if isinstance(value, dict) and isinstance(value.get("kept"), int):
        return float(value["kept"])
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def show_value(kind: str, value: Any, *, brief: bool = False) -> str:
    """A value as a cell (``brief``: a list as its count, for the headline)."""
    if kind == "window" and isinstance(value, list) and len(value) == 2:
        return f"[{value[0]}, {value[1]})"
    if isinstance(value, dict) and "kept" in value:
        return f"{value['kept']} of {value.get('of', '?')} items ({str(value.get('ranges', ''))[:60]})"
    long = isinstance(value, list) and (len(value) > 6 or len(str(value)) > 80)
    return (
        f"{len(value)} items"
        if isinstance(value, list) and (brief or (kind in LISTS and long))
        else str(value)
    )


def read_steps(view: RunDirView) -> tuple[list[dict[str, Any]], bool]:
    """The search's steps and whether they carry values: the trace, else the journal's candidates."""
    from sleuth.errors import SleuthError
    from sleuth.journal import read_journal

    try:
        trace = read_journal(view.path / "reduction_trace.jsonl")
    except SleuthError:  # damaged: the journal has the steps too
        trace = []
    if trace:
        return [view.scrub(r) for r in trace if isinstance(r, dict)], True
    steps: list[dict[str, Any]] = []
    # a resume journals the original again and each step it replays again: those repeat a step an
    # earlier process journaled (one it did not get to journal, its trials only, stays)
    before: Counter[tuple[Any, ...]] = Counter()  # steps journaled by the earlier processes
    mine: Counter[tuple[Any, ...]] = Counter()  # by the process journaling now
    for e in view.events:
        if e.get("event") == "baseline":
            before, mine = before + mine, Counter()
            if any(x["phase"] == "baseline" and x["hash"] == e.get("candidate") for x in steps):
                continue
            verdict = "reproduces" if e.get("reproduced") else "does_not_reproduce"
            keys = ("values", "trials", "outcomes", "signature")
            kept: dict[str, Any] = {k: e[k] for k in keys if k in e}
            steps.append({"phase": "baseline", "hash": e.get("candidate"), "verdict": verdict, **kept})
        elif e.get("event") == "candidate":
            key = (str(e.get("round")), str(e.get("axis")), str(e.get("hash")))
            if e.get("replayed") is True and before[key] > 0:
                before[key] -= 1
                continue
            mine[key] += 1
            steps.append(dict(e))
    # a journal written before steps carried their values (or a resume of one) has some without
    return steps, any(isinstance(s.get("values"), dict) for s in steps)


def best_so_far(steps: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each axis's original value and its value at the best point so far (the last accepted step on
    it), as ``summary.json``'s ``axes`` has them; {} when the original's values are not known."""
    base = next(
        (s["values"] for s in steps if s.get("phase") == "baseline" and isinstance(s.get("values"), dict)),
        None,
    )
    if base is None:
        return {}
    now = dict(base)
    for s in steps:
        values, axis = as_dict(s.get("values")), s.get("axis")
        if s.get("phase") == "search" and taken(s) and isinstance(axis, str) and axis in values:
            now[axis] = values[axis]
    return {
        n: {"initial": v, "final": now[n], "moved": now[n] != v} | ({} if now[n] != v else {"why": "not yet"})
        for n, v in base.items()
    }


def taken(step: Mapping[str, Any]) -> bool:
    """An accepted step the search moved to (one that came too late was not used)."""
    return step.get("verdict") == "reproduces" and not step.get("speculative_wasted")
