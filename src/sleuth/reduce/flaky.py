"""How many trials a candidate gets when the failure is flaky, and what that costs in errors.

A candidate is accepted at its first reproducing trial: a reproduction with the baseline's
signature is evidence that cannot come from a candidate that never fails, so acceptance has no
false positives (unless the oracle itself has them).  It is rejected after ``n`` trials without
one, where ``n = ceil(ln(1 - confidence) / ln(1 - p))`` for the reproduction rate ``p``: a
candidate that reproduces as often as the original is then wrongly rejected with probability
``(1 - p) ** n <= 1 - confidence``.  ``p`` starts as the baseline's measured rate and is updated
with every accepted candidate (its trials up to the first reproduction are a geometric sample), since
a reduction may change how often the failure shows (shrinkray#16).  The same miss probability at the
rate's lower confidence bound is reported too, so a user sees how much the estimate matters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sleuth.stats import wilson

__all__ = ["MAX_PER_CANDIDATE", "RateTracker", "evaluate", "reduce_in_process", "trials_for"]

#: the most trials one candidate gets (a rate near 0 would ask for thousands)
MAX_PER_CANDIDATE = 60


def trials_for(rate: float, confidence: float, cap: int = MAX_PER_CANDIDATE) -> int:
    """Trials before rejecting, so a candidate reproducing at ``rate`` is missed w.p. <= 1 - confidence."""
    if rate >= 1.0:
        return 1
    if rate <= 0.0:
        return cap
    return max(1, min(cap, math.ceil(math.log(1.0 - confidence) / math.log(1.0 - rate))))


@dataclass(slots=True)
class RateTracker:
    """The reproduction rate seen so far: the baseline, plus every accepted candidate's trials.

    ``fixed`` (``trials_per_candidate: N`` in the spec) pins the trials per candidate; the rate is
    still tracked and reported.  ``original`` keeps the baseline's own count (reproduced, trials):
    the rate of the original, reported beside the pooled one.
    """

    reproduced: int
    trials: int
    confidence: float
    fixed: int | None = None
    original: tuple[int, int] = field(init=False)
    #: the fewest trials a rejected candidate got (the rate, and so the trials, change as it runs)
    fewest_rejected: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.original = (self.reproduced, self.trials)

    @property
    def rate(self) -> float:
        """Reproductions / trials (0 when nothing ran)."""
        return self.reproduced / self.trials if self.trials else 0.0

    def interval(self) -> tuple[float, float]:
        """The rate's Wilson interval at the run's confidence."""
        return wilson(self.reproduced, self.trials, self.confidence)

    @property
    def per_candidate(self) -> int:
        """Trials a candidate gets before it is rejected."""
        if self.fixed is not None:
            return self.fixed
        return trials_for(self.rate, self.confidence)

    def accepted(self, trials_used: int) -> None:
        """A candidate reproduced on its ``trials_used``-th trial."""
        self.reproduced += 1
        self.trials += trials_used

    def rejected(self, trials_used: int) -> None:
        """A candidate was rejected after ``trials_used`` trials without a reproduction."""
        if self.fewest_rejected is None or trials_used < self.fewest_rejected:
            self.fewest_rejected = trials_used

    def miss_probability(self) -> tuple[float, float]:
        """P(rejecting a candidate that reproduces like the original): at the rate, at its lower bound;
        for the rejected candidate that got the fewest trials when one did with fewer than now."""
        n = min(self.per_candidate, self.fewest_rejected or self.per_candidate)
        lo = self.interval()[0]
        return ((1.0 - self.rate) ** n, (1.0 - lo) ** n)

    def describe(self) -> dict[str, Any]:
        """The JSON form for the summary."""
        at_rate, at_low = self.miss_probability()
        lo, hi = self.interval()
        k, n = self.original
        o_lo, o_hi = wilson(k, n, self.confidence)
        return {
            "original": {
                "reproduced": k,
                "trials": n,
                "reproduction_rate": round(k / n, 4) if n else 0.0,
                "reproduction_rate_ci": [round(o_lo, 4), round(o_hi, 4)],
            },
            "reproduction_rate": round(self.rate, 4),
            "reproduction_rate_ci": [round(lo, 4), round(hi, 4)],
            "confidence": self.confidence,
            "trials_per_candidate": self.per_candidate,
            "per_candidate_from": "spec" if self.fixed is not None else "measured rate",
            "fewest_trials_rejected": self.fewest_rejected,
            "miss_probability": round(at_rate, 6),
            "miss_probability_at_low_rate": round(at_low, 6),
        }


def evaluate(trial: Callable[[], bool], tracker: RateTracker) -> tuple[bool, int]:
    """One candidate judged by the rule of the module docstring, one trial at a time, in process.

    Returns (reproduced, trials used); the driver applies the same rule with trials in parallel.
    """
    n = tracker.per_candidate
    for k in range(1, n + 1):
        if trial():
            tracker.accepted(k)
            return True, k
    return False, n


def reduce_in_process(reduction: Any, trial: Callable[[dict[str, Any]], bool], tracker: RateTracker,
                      *, max_trials: int = 100_000) -> tuple[dict[str, Any], int, int]:  # fmt: skip
    """Drive a :class:`~sleuth.reduce.fixpoint.Reduction` with an in-process trial function.

    Returns (final point, candidates tested, trials); candidates are cached by point, as the
    driver caches them by content hash.  For tests, simulations and the benchmark.
    """
    cache: dict[str, bool] = {}
    calls = trials = 0
    while not reduction.done and trials < max_trials:
        for q in reduction.propose(1):
            key = repr(sorted(q.point.items()))
            if key not in cache:
                calls += 1
                cache[key], used = evaluate(partial(trial, dict(q.point)), tracker)
                trials += used
            reduction.observe(q, cache[key])
    return reduction.result(), calls, trials
