"""The cells of a ``sleuth matrix`` run dir as its page reads them, and how their numbers are written.

A cell is a mapping shaped like a cell of ``matrix.json`` (schema ``sleuth.matrix/1``): a finished
matrix's are read as they are (every number and decision is the matrix's own); a matrix killed
before it wrote one, or still running, gets cells built from the journal's ``trial`` events by
:func:`journal_cells`, counted as the matrix counts them (:func:`sleuth.matrix.aggregate.aggregate`,
the target being the baseline's dominant failure or the oracle's pattern) and decided by nothing.
Numbers are written as ``matrix.md`` writes them: ``60% [31%, 83%]``, ``0.0108 (0.0325)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sleuth.report.source import RunDirView

__all__ = [
    "Cell",
    "classification",
    "counts",
    "is_baseline",
    "items",
    "journal_cells",
    "journal_doc",
    "num",
    "p_text",
    "pair",
    "ranked",
    "rate_text",
    "ratio_text",
    "resolved_recipe",
    "step_source",
]

Cell = Mapping[str, Any]


def num(x: Any) -> float | None:
    """``x`` as a finite float; None for anything else (a missing key, null, a string, NaN)."""
    ok = isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
    return float(x) if ok else None


def _pct(x: Any) -> str:
    v = num(x)
    return "-" if v is None else f"{100 * v:.0f}%"


def items(x: Any) -> list[Any]:
    """``x`` when it is a list, else [] (a document's list that is missing or odd)."""
    return x if isinstance(x, list) else []


def pair(x: Any) -> tuple[float, float] | None:
    """An interval ``[lo, hi]`` of finite numbers, or None."""
    if isinstance(x, list | tuple) and len(x) >= 2:
        lo, hi = num(x[0]), num(x[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def rate_text(c: Cell) -> str:
    """The target failure rate with its 95% interval: ``60% [31%, 83%]`` (``-`` without one)."""
    if num(c.get("failure_rate")) is None:
        return "-"
    ci = pair(c.get("failure_rate_ci"))
    return _pct(c["failure_rate"]) + ("" if ci is None else f" [{_pct(ci[0])}, {_pct(ci[1])}]")


def p_text(c: Cell) -> str:
    """Fisher's p and, in brackets, Holm-adjusted (the one compared with alpha)."""
    p, adj = num(c.get("p_value")), num(c.get("p_adjusted"))
    if p is None:
        return "-"
    return f"{p:.3g}" + ("" if adj is None else f" ({adj:.3g})")


def ratio_text(c: Cell) -> str:
    """The step time's median against the baseline's, with its 95% interval: ``3.96x [3.85, 4.08]``."""
    r, ci = num(c.get("step_time_ratio")), pair(c.get("step_time_ratio_ci"))
    if r is None:
        return "-"
    return f"{r:.2f}x" + ("" if ci is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]")


def classification(c: Cell) -> str:
    """``fixed``, ``worse``, ``inconclusive``, ...; '' for a cell not decided (an unfinished matrix)."""
    return str(c.get("classification") or "")


def is_baseline(c: Cell) -> bool:
    """The reference baseline or an environment's."""
    return c.get("role") in ("reference_baseline", "environment_baseline")


def counts(c: Cell) -> dict[str, int]:
    """The cell's outcome counts (``pass``, ``fail``, ``other_fail``, ``error``, ``skip``, ``total``)."""
    n = c.get("counts")
    return {str(k): v for k, v in n.items() if isinstance(v, int)} if isinstance(n, dict) else {}


def ranked(cells: Sequence[Cell], limit: int) -> list[Cell]:
    """At most ``limit`` of ``cells``, in their order; baselines, decided cells, then cells with a
    failure are kept first."""

    def rank(c: Cell) -> int:
        if is_baseline(c):
            return 0
        return 1 if classification(c) in ("fixed", "worse") else 2 if counts(c).get("fail") else 3

    keep = {id(c) for c in sorted(cells, key=rank)[:limit]}
    return [c for c in cells if id(c) in keep]


def resolved_recipe(view: RunDirView) -> dict[str, Any]:
    """The run dir's ``recipe.resolved.yaml`` (secrets already ``<redacted>``); {} when unreadable."""
    import yaml

    try:
        recipe = yaml.safe_load((view.path / "recipe.resolved.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return recipe if isinstance(recipe, dict) else {}


def step_source(workload: Mapping[str, Any]) -> str:
    """Where a recipe's workload takes step times from, named as ``sleuth.matrix.result.step_source`` does."""
    st = workload.get("step_time")
    st = st if isinstance(st, dict) else {}
    if st.get("regex"):
        return f"regex:{st['regex']}"
    return f"metric:{st['metric']}" if st.get("metric") else "wall_s"


def journal_doc(view: RunDirView) -> dict[str, Any]:
    """A ``matrix.json``-shaped document of an unfinished matrix: its workload from the resolved
    recipe, its cells from the journal (:func:`journal_cells`); no decision, no statistic but counts."""
    recipe = resolved_recipe(view)
    workload = recipe.get("workload")
    workload = workload if isinstance(workload, dict) else {}
    command = workload.get("command")
    return {
        "workload": workload.get("name"),
        "ticket": recipe.get("ticket"),
        "command": ["/bin/sh", "-c", command] if isinstance(command, str) else command,
        "workload_plugin": {"ref": workload["plugin"]} if workload.get("plugin") else None,
        "baseline": view.start.get("baseline"),
        "step_time_source": step_source(workload),
        "cells": journal_cells(view, recipe),
    }


def journal_cells(view: RunDirView, recipe: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per cell (the start event's order), what its journaled trials say; nothing decided."""
    from sleuth.matrix.aggregate import TrialRecord, aggregate, dominant_signature

    workload = recipe.get("workload")
    workload = workload if isinstance(workload, dict) else {}
    source = step_source(workload)
    planned = {str(c.get("name")): c for c in items(recipe.get("cells")) if isinstance(c, dict)}
    oracle = workload.get("oracle")
    regex = isinstance(oracle, dict) and oracle.get("kind") == "regex"
    baseline = str(view.start.get("baseline", ""))
    by_cell: dict[str, dict[int, tuple[Any, str]]] = {str(n): {} for n in items(view.start.get("cells"))}
    for e in view.events:
        cell, index, trial = e.get("cell"), e.get("index"), e.get("trial")
        if e.get("event") != "trial" or not isinstance(cell, str) or not isinstance(index, int):
            continue
        if isinstance(trial, dict) and index not in by_cell.setdefault(cell, {}):  # the first one counts
            odd = {k: None for k in ("signature", "error") if not isinstance(trial.get(k), str)}
            metrics = trial.get("metrics") if isinstance(trial.get("metrics"), dict) else {}
            try:
                record = TrialRecord.from_dict(cell, index, {**trial, **odd, "metrics": metrics}, source)
            except (KeyError, TypeError, ValueError):  # no outcome, an unknown one, a wall time not a number
                continue
            path = f"{e.get('subdir') or f'cells/{cell}/trials'}/{trial.get('id', f'{index:04d}')}"
            by_cell[cell][index] = record, path
    target = None if regex else dominant_signature(r for r, _ in by_cell.get(baseline, {}).values())
    cells = []
    for name, got in by_cell.items():
        records = [got[i] for i in sorted(got)]
        s = aggregate(name, [r for r, _ in records], target, regex)
        dist = s.step()
        n = {"pass": s.n_pass, "fail": s.n_fail, "other_fail": s.n_other, "error": s.n_error}
        cells.append(
            {
                "name": name,
                "role": "reference_baseline" if name == baseline else "cell",
                "mitigations": items(planned.get(name, {}).get("mitigations")),
                "counts": {**n, "skip": s.n_skip, "total": s.n_total},
                "failure_rate": s.failure_rate,
                "failure_rate_ci": list(s.failure_rate_ci()) if s.n_judged else None,
                "step_time_median": dist.median if dist else None,
                "signatures": dict(s.signature_counts),
                "trials": [
                    {
                        "index": r.index,
                        "path": path,
                        "outcome": r.outcome.value,
                        "signature": r.signature,
                        "step_time": r.step_time,
                    }
                    for r, path in records
                ],
            }
        )
    return cells
