"""``gate graduate``: is a metric stable enough across runs to turn its gate from soft to hard?

Per metric, over the last N runs (each run's value is the median of its samples): the CV and its
one-sided upper confidence bound (:func:`~sleuth.gate.robust.cv_upper_bound`).  OK only when the
*bound* is below the target (a point estimate under the target graduates a metric whose true CV is
exactly the target about half the time at n = 10); OVER when the point estimate is at or above
it; INSUFFICIENT otherwise, with how many more runs would settle it if the CV stayed where it is.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sleuth.gate.model import Graduation, Run
from sleuth.gate.robust import cv, cv_runs_needed, cv_upper_bound
from sleuth.gate.robust import mean as robust_mean
from sleuth.model import printable

__all__ = ["GraduationResult", "graduate", "metric_names", "metric_values", "selected"]


@dataclass(frozen=True, slots=True)
class GraduationResult:
    """One metric's graduation verdict with its numbers."""

    metric: str
    unit: str
    verdict: Graduation
    runs: int
    mean: float | None
    cv: float | None
    upper: float | None
    target: float
    conf: float
    #: more runs needed before a verdict (INSUFFICIENT); None when no number of runs would do
    needed: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form (fractions, not percent)."""
        return {
            "metric": self.metric,
            "unit": self.unit,
            "verdict": self.verdict.value,
            "runs": self.runs,
            "mean": self.mean,
            "cv": self.cv,
            "cv_upper": self.upper if self.upper is None or math.isfinite(self.upper) else None,
            "target_cv": self.target,
            "confidence": self.conf,
            "runs_needed": self.needed,
            "reason": self.reason,
        }


def metric_names(runs: Sequence[Run], patterns: Sequence[str] = ()) -> list[str]:
    """Metric names seen in ``runs`` (first-seen order), filtered by glob ``patterns`` when given."""
    seen: dict[str, None] = {}
    for r in runs:
        for m in r.metrics():
            seen.setdefault(m)
    return [n for n in seen if selected(n, patterns)]


def selected(name: str, patterns: Sequence[str] = ()) -> bool:
    """Whether a metric name is one of ``patterns`` or matches one as a glob (every name does when
    there are none): ``test_parse[case1]`` is a pytest id, and as a glob it would not match itself."""
    return not patterns or name in patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def metric_values(runs: Sequence[Run], metric: str, last: int) -> list[float]:
    """The values of the ``last`` most recent runs (oldest first) that have ``metric``."""
    return [v for v in (r.value(metric) for r in runs) if v is not None][-last:]


def _one(metric: str, runs: Sequence[Run], last: int, target: float, conf: float) -> GraduationResult:
    values = metric_values(runs, metric, last)
    unit = next((s.unit for r in reversed(runs) if (s := r.sample(metric)) is not None), "")
    n = len(values)
    mean = robust_mean(values) if n else None
    c = cv(values)
    up = cv_upper_bound(c, n, conf) if n >= 2 else math.nan

    def result(verdict: Graduation, needed: int | None, reason: str) -> GraduationResult:
        return GraduationResult(
            metric=metric,
            unit=unit,
            verdict=verdict,
            runs=n,
            mean=mean,
            cv=None if math.isnan(c) else c,
            upper=None if math.isnan(up) else up,
            target=target,
            conf=conf,
            needed=needed,
            reason=reason,
        )

    if n < last:
        return result(Graduation.INSUFFICIENT, last - n, f"{n} run(s) have this metric, --last needs {last}")
    if math.isnan(c):
        return result(Graduation.INSUFFICIENT, None, "CV undefined: the mean is <= 0")
    if c >= target:
        return result(Graduation.OVER, None, f"CV {c:.3%} >= target {target:.3%}")
    if up < target:
        return result(Graduation.OK, 0, f"{conf:.0%} upper bound {up:.3%} < target {target:.3%}")
    total = cv_runs_needed(c, target, conf)
    needed = None if total is None else max(1, total - n)
    more = "never at this CV" if needed is None else f"about {needed} more run(s) at this CV"
    return result(
        Graduation.INSUFFICIENT,
        needed,
        f"CV {c:.3%} < target but its {conf:.0%} upper bound {up:.3%} is not: {more}",
    )


def graduate(
    runs: Sequence[Run],
    *,
    metrics: Sequence[str] = (),
    last: int = 10,
    target: float = 0.01,
    conf: float = 0.95,
) -> list[GraduationResult]:
    """One result per metric of the ``last`` most recent ``runs`` (oldest first), over the ``last``
    most recent runs that have it (a metric that one run in five records reaches further back).

    ``metrics`` are glob patterns; a pattern that matches nothing still yields an INSUFFICIENT
    row under its own name, so a typo or a first run is never a silent pass.
    """
    names = metric_names(list(runs)[-last:], metrics)
    for p in metrics:
        if not any(selected(n, [p]) for n in names):
            names.append(printable(p))  # shown under its own name: no terminal escapes, valid XML
    return [_one(name, runs, last, target, conf) for name in names]
