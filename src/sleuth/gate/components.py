"""The components ``gate check`` judges a metric by: each turns its history into one :class:`Finding`.

Each gives PASS / FAIL / INCONCLUSIVE / INSUFFICIENT with its numbers (INSUFFICIENT with how many
more runs it needs):

* **budget** on the median of the last ``runs`` run values: with ``rule: bound`` PASS when the
  order-statistic upper bound of the median is within budget (``<=``), FAIL when the lower bound is
  over it, INCONCLUSIVE between; with ``rule: median`` the sample median decides (``<=`` passes;
  an even count averages the two middle values).
* **regression** (time metrics): the last ``recent_runs`` runs against the ``baseline_runs`` runs
  before them, each run one value (its median): a one-sided two-sample t test in the "worse"
  direction (:func:`~sleuth.gate.robust.run_shift`; the run is the unit, since a run's samples share
  its runner and are not independent), its p-values adjusted across metrics by Benjamini-Hochberg,
  and the change of the mean with its interval.  FAIL when significant (``q`` at most ``alpha`` and
  the policy's ``fdr``) *and* the change is at least ``min_effect``; INCONCLUSIVE when the change is
  that large but not significant; PASS otherwise.
* **counter**: every sample of the latest run equals the reference (the median of the runs before
  it, or the ``--baseline`` file's value) within ``tolerance``; any other value FAILs.
* **baseline** (time metrics with a ``--baseline`` entry that has a tolerance): the latest run's
  value is not worse than the file's by more than the tolerance.

Each is a pure function of the history it is given (oldest first), so :mod:`sleuth.gate.checks`
can ask it again as of earlier runs (confirmations).  Comparisons are made where nothing overflows
(:func:`~sleuth.gate.robust.downscale`), and a number beyond what a float holds is null in the details.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sleuth.gate.model import Verdict
from sleuth.gate.policy import BudgetSpec, MetricPolicy, RegressionSpec, Tolerance
from sleuth.gate.robust import downscale, median, median_bounds, median_runs_needed, run_shift

__all__ = ["Finding"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One component's verdict on one metric."""

    check: str
    verdict: Verdict
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)
    needed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "check": self.check,
            "verdict": self.verdict.value,
            "summary": self.summary,
            "runs_needed": self.needed,
            **dict(self.details),
        }


def _worse_by(delta: float, direction: str) -> float:
    """A change expressed so that positive means worse."""
    return delta if direction == "lower" else -delta


def _budget(values: Sequence[float], spec: BudgetSpec) -> Finding:
    vals = list(values)[-spec.runs :]
    n = len(vals)
    limit = spec.max if spec.max is not None else spec.min
    assert limit is not None
    side = "<=" if spec.max is not None else ">="
    base = {"budget": limit, "side": side, "rule": spec.rule, "n": n, "runs": spec.runs}
    if n < spec.runs:
        return Finding(
            "budget",
            Verdict.INSUFFICIENT,
            f"{n} of {spec.runs} runs for the median budget",
            base,
            spec.runs - n,
        )
    med = median(vals)
    mb = median_bounds(vals, spec.confidence)
    details = {**base, "median": med}
    if mb is not None:
        details.update(lower=mb.lower, upper=mb.upper, coverage=mb.coverage, rank=mb.rank)

    def within(x: float) -> bool:
        return x <= limit if spec.max is not None else x >= limit

    if spec.rule == "median":
        ok = within(med)
        text = f"median {med:g} {side} {limit:g}" if ok else f"median {med:g} breaks {side} {limit:g}"
        return Finding("budget", Verdict.PASS if ok else Verdict.FAIL, text, details)
    if mb is None:
        need = median_runs_needed(spec.confidence)
        return Finding(
            "budget",
            Verdict.INSUFFICIENT,
            f"{n} runs bound no median at {spec.confidence:.0%}; raise runs to {need}",
            details,
            need - n,
        )
    near, far = (mb.upper, mb.lower) if spec.max is not None else (mb.lower, mb.upper)
    cov = f"{mb.coverage:.1%}"
    if within(near):
        return Finding(
            "budget", Verdict.PASS, f"median {med:g}, {cov} bound {near:g} {side} {limit:g}", details
        )
    if not within(far):
        return Finding(
            "budget", Verdict.FAIL, f"median {med:g}, {cov} bound {far:g} breaks {side} {limit:g}", details
        )
    return Finding(
        "budget",
        Verdict.INCONCLUSIVE,
        f"median {med:g}; its {cov} bounds [{mb.lower:g}, {mb.upper:g}] straddle the budget {limit:g}",
        details,
    )


@dataclass(frozen=True, slots=True)
class _RegressionData:
    p: float
    details: dict[str, Any]
    worse_by: float
    limit: float


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _regression_data(
    series: Sequence[Sequence[float]], spec: RegressionSpec, direction: str
) -> _RegressionData | int:
    """The test's numbers, or how many more runs it needs."""
    need = spec.baseline_runs + spec.recent_runs
    if len(series) < need:
        return need - len(series)
    recent_runs, base_runs = series[-spec.recent_runs :], series[-need : -spec.recent_runs]
    recent, base = [median(run) for run in recent_runs], [median(run) for run in base_runs]
    ref = median(base)
    # judged in units where the change and the limit stay finite: near the float limit they would
    # overflow to inf, and inf >= inf holds whatever the true values are
    f = downscale([*base, *recent])
    worse_dir = "greater" if direction == "lower" else "less"
    conf = 1.0 - 2.0 * spec.alpha
    shift = run_shift([x * f for x in base], [x * f for x in recent], worse=worse_dir, conf=conf)
    assert shift is not None  # the policy asks for at least three runs
    p = shift.p
    worse = _worse_by(shift.estimate, direction)
    tol = spec.effect()
    limit = abs(ref * f) * tol.value if tol.relative else tol.value * f
    rel = (shift.estimate / abs(ref * f)) if ref else None
    details = {
        "p_value": p,
        "test": "t on run medians",
        "baseline_median": ref,
        "recent_median": median(recent),
        # JSON has no infinity: a change (or an interval side) beyond what a float holds is null
        "shift": _finite_or_none(shift.estimate / f),
        "shift_interval": [_finite_or_none(x / f) for x in (shift.lower, shift.upper)],
        "interval_confidence": shift.conf,
        "relative_shift": _finite_or_none(rel),
        "run_spread": _finite_or_none(shift.spread / f),
        "degrees_of_freedom": shift.df,
        "min_effect": str(tol),
        "n_recent": len(recent),
        "n_baseline": len(base),
        "samples_recent": sum(len(run) for run in recent_runs),
        "samples_baseline": sum(len(run) for run in base_runs),
    }
    return _RegressionData(p=p, details=details, worse_by=worse, limit=limit)


def _regression_finding(
    data: _RegressionData | int, q: float | None, spec: RegressionSpec, fdr: float
) -> Finding:
    if isinstance(data, int):
        total = spec.baseline_runs + spec.recent_runs
        return Finding("regression", Verdict.INSUFFICIENT, f"needs {total} runs with this metric", {}, data)
    assert q is not None
    level = min(spec.alpha, fdr)  # the metric's alpha, within the policy's false discovery rate
    d = {**data.details, "q_value": q, "level": level}
    rel, est = d["relative_shift"], d["shift"]
    shift = f"{rel:+.2%}" if rel is not None else f"{est:+g}" if est is not None else "beyond the float range"
    lo, hi = (f"{x:+.4g}" if x is not None else "unbounded" for x in d["shift_interval"])
    text = f"shift {shift} [{lo}, {hi}], p={data.p:.3g} q={q:.3g}"
    big = data.worse_by > 0 and data.worse_by >= data.limit
    if big and q <= level:
        return Finding("regression", Verdict.FAIL, f"regressed: {text}", d)
    if big:
        return Finding(
            "regression",
            Verdict.INCONCLUSIVE,
            f"worse by >= {d['min_effect']} but not significant: {text}",
            d,
        )
    return Finding("regression", Verdict.PASS, text, d)


def _counter(
    series: Sequence[Sequence[float]], pol: MetricPolicy, reference: float | None, tol: Tolerance
) -> Finding:
    if not series:
        return Finding("counter", Verdict.INSUFFICIENT, "no run has this metric", {}, 1)
    latest = series[-1]
    source = "baseline file"
    if reference is None:
        before = [median(run) for run in series[:-1][-pol.baseline_runs :] if run]
        if not before:
            return Finding("counter", Verdict.INSUFFICIENT, "no earlier run to compare with", {}, 1)
        reference = median(before)
        source = f"median of {len(before)} earlier run(s)"
    off = sorted({x for x in latest if not tol.allows(x, reference)})
    details = {
        "reference": reference,
        "reference_from": source,
        "tolerance": str(tol),
        "observed": sorted(set(latest)),
    }
    if not off:
        return Finding(
            "counter",
            Verdict.PASS,
            f"{median(latest):g} = reference {reference:g} (tolerance {tol})",
            details,
        )
    way = "up" if max(off, key=lambda x: abs(x - reference)) > reference else "down"
    return Finding(
        "counter",
        Verdict.FAIL,
        f"changed {way}: {', '.join(f'{x:g}' for x in off[:5])} vs {reference:g}",
        details,
    )


def _baseline(
    series: Sequence[Sequence[float]], entry: Mapping[str, Any], tol: Tolerance, direction: str
) -> Finding:
    if not series or not series[-1]:
        return Finding("baseline", Verdict.INSUFFICIENT, "no run has this metric", {}, 1)
    ref = float(entry["value"])
    value = median(series[-1])
    worse, better = (value, ref) if direction == "lower" else (ref, value)
    details = {"baseline": ref, "value": value, "tolerance": str(tol)}
    if tol.excess(worse, better, ref):
        return Finding(
            "baseline", Verdict.FAIL, f"{value:g} is worse than baseline {ref:g} beyond {tol}", details
        )
    return Finding("baseline", Verdict.PASS, f"{value:g} within {tol} of baseline {ref:g}", details)
