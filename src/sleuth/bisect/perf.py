"""Performance mode: ``--metric NAME --direction --threshold``, and what a search learned per candidate.

Values are turned so that larger is worse (``direction`` says which way is better).  The search
itself is :mod:`sleuth.bisect.perfrun` and :mod:`sleuth.bisect.perfcompare` (the runs),
:mod:`sleuth.bisect.seqtest` (the sequential rank test of the ends) and
:mod:`sleuth.bisect.perfsearch` (the posterior over the step); they import numpy and scipy, so
this module does not: the CLI imports it on every bisection.

:func:`classify` is the per-candidate rule of the stages that bisect on verdicts (merged branches,
the blame probes of several repositories): a candidate runs until the one-step model puts it on
one side with probability ``1 - eps``, or ``max_samples`` runs force the likelier side.
``PerfSpec.fixed`` is the fixed-repeat baseline the simulation compares against: every candidate
runs exactly ``fixed`` times and the nearer end (by median) decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from statistics import median
from typing import Any

__all__ = ["Direction", "PerfSpec", "PerfState", "Verdict", "classify"]


class Direction(Enum):
    """Which way is better for the metric."""

    LOWER = "lower"  # e.g. step time, latency, memory
    HIGHER = "higher"  # e.g. throughput, accuracy


class Verdict(Enum):
    """What the samples of one candidate say."""

    GOOD = "good"
    BAD = "bad"
    AMBIGUOUS = "ambiguous"
    #: decided at ``max_samples`` by the likelier side, not at the confidence asked for
    FORCED_GOOD = "forced_good"
    FORCED_BAD = "forced_bad"

    @property
    def is_bad(self) -> bool:
        """BAD or FORCED_BAD."""
        return self in (Verdict.BAD, Verdict.FORCED_BAD)


@dataclass(frozen=True, slots=True)
class PerfSpec:
    """``--metric NAME --direction --threshold`` and the sampling budget."""

    name: str
    direction: Direction = Direction.LOWER
    #: the smallest regression that matters, in percent of the good end's median
    threshold: float = 5.0
    #: runs of one probed candidate at most (the ends: the last look of the sequential test)
    max_samples: int = 30
    #: the fixed-repeat baseline: every candidate runs this many times (None: sequential)
    fixed: int | None = None

    def worse(self, values: Sequence[float]) -> list[float]:
        """The values turned so that larger is worse."""
        sign = 1.0 if self.direction is Direction.LOWER else -1.0
        return [sign * v for v in values]


@dataclass(slots=True)
class PerfState:
    """What the performance search learned, for the report: per candidate, the ends, the steps."""

    #: label -> probability that the candidate is on the bad side of the step it was searched for
    p_bad: dict[str, float] = field(default_factory=dict)
    #: the comparisons of two candidates (the ends, a side of a step): ``{"ref", "other", "decision", ...}``
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    #: every step found (indices and labels): ``{"first_bad", "last_good", "confidence", "shift_pct", ...}``
    steps: list[dict[str, Any]] = field(default_factory=list)
    #: how the answer was chosen among several steps, or why there is none
    note: str = ""


def classify(spec: PerfSpec, good: Sequence[float], bad: Sequence[float], cand: Sequence[float],
             eps: float = 0.0125) -> Verdict:  # fmt: skip
    """The verdict on ``cand`` given the end samples (values as measured; see the module docstring)."""
    g, b, c = spec.worse(good), spec.worse(bad), spec.worse(cand)
    if not c or not g or not b:
        return Verdict.AMBIGUOUS
    if spec.fixed is not None:
        if len(c) < spec.fixed:
            return Verdict.AMBIGUOUS
        mc = median(c)
        return Verdict.BAD if abs(mc - median(b)) < abs(mc - median(g)) else Verdict.GOOD
    from sleuth.bisect.perfsearch import resolution_for, side_probability

    p = side_probability(g, c, b, resolution_for(spec.threshold, g))
    if p >= 1 - eps:
        return Verdict.BAD
    if p <= eps:
        return Verdict.GOOD
    if len(c) >= spec.max_samples:
        return Verdict.FORCED_BAD if p > 0.5 else Verdict.FORCED_GOOD
    return Verdict.AMBIGUOUS
