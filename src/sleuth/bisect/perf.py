"""Performance mode: is a candidate like the good end or like the (slower) bad end?

Values are first turned so that larger is worse (``direction`` says which way is better).  Both
ends are sampled first (``end_samples`` runs each); the ends must differ by more than
``threshold`` percent of the good end's mean, in the bad direction, with a one-sided Welch test
at ``alpha`` (:func:`check_ends`).  A candidate is then run ``min_samples`` times and more only
while :func:`classify` says AMBIGUOUS, up to ``max_samples``:

* BAD when its mean is closer to the bad end's than to the good end's, more than ``threshold``
  percent worse than the good end, and worse than the good end's sample by a Welch test;
* GOOD when it is closer to the good end and better than the bad end's sample by a Welch test
  (or within the threshold of the good end and better than the bad end);
* at ``max_samples`` the nearer end decides (the verdict says it was forced).

Pure functions of the samples; the driver owns the runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from statistics import fmean, variance

__all__ = ["Direction", "PerfSpec", "Verdict", "check_ends", "classify", "welch_p"]


class Direction(Enum):
    """Which way is better for the metric."""

    LOWER = "lower"  # e.g. step time, latency, memory
    HIGHER = "higher"  # e.g. throughput, accuracy


class Verdict(Enum):
    """What the samples of one candidate say."""

    GOOD = "good"
    BAD = "bad"
    AMBIGUOUS = "ambiguous"
    #: decided at ``max_samples`` by the nearer end, not by the test
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
    threshold: float = 5.0
    alpha: float = 0.01
    end_samples: int = 5
    min_samples: int = 3
    max_samples: int = 10

    def worse(self, values: Sequence[float]) -> list[float]:
        """The values turned so that larger is worse."""
        sign = 1.0 if self.direction is Direction.LOWER else -1.0
        return [sign * v for v in values]


def welch_p(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided Welch p-value for "mean(x) > mean(y)" (1.0 when it cannot be computed)."""
    if len(x) < 2 or len(y) < 2:
        return 1.0
    mx, my = fmean(x), fmean(y)
    vx, vy = variance(x) / len(x), variance(y) / len(y)
    if vx + vy == 0.0:
        return 0.0 if mx > my else 1.0
    from scipy.stats import t as student_t

    t = (mx - my) / math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / ((vx**2 / (len(x) - 1) if vx else 0.0) + (vy**2 / (len(y) - 1) if vy else 0.0))
    return float(student_t.sf(t, df))


def _margin(spec: PerfSpec, good: Sequence[float]) -> float:
    return abs(fmean(good)) * spec.threshold / 100.0


def check_ends(spec: PerfSpec, good: Sequence[float], bad: Sequence[float]) -> str | None:
    """None when the bad end is measurably worse than the good end, else why not."""
    if len(good) < 2 or len(bad) < 2:
        return f"metric {spec.name!r} was measured fewer than twice at an end"
    g, b = spec.worse(good), spec.worse(bad)
    gap = fmean(b) - fmean(g)
    pct = 100.0 * gap / abs(fmean(g)) if fmean(g) else math.inf
    if gap <= _margin(spec, g):
        return (
            f"the bad end is {pct:+.1f}% on {spec.name!r} ({spec.direction.value} is better), "
            f"not beyond the {spec.threshold:g}% threshold"
        )
    if welch_p(b, g) >= spec.alpha:
        return f"the ends differ by {pct:+.1f}% on {spec.name!r} but the samples are too noisy to tell"
    return None


def classify(spec: PerfSpec, good: Sequence[float], bad: Sequence[float], cand: Sequence[float]) -> Verdict:
    """The verdict on ``cand`` given the end samples (see the module docstring)."""
    g, b, c = spec.worse(good), spec.worse(bad), spec.worse(cand)
    if not c:
        return Verdict.AMBIGUOUS
    mg, mb, mc = fmean(g), fmean(b), fmean(c)
    nearer_bad = abs(mc - mb) < abs(mc - mg)
    if len(c) >= spec.min_samples:
        if nearer_bad and mc - mg > _margin(spec, g) and welch_p(c, g) < spec.alpha:
            return Verdict.BAD
        better_than_bad = welch_p(b, c) < spec.alpha
        if better_than_bad and (not nearer_bad or mc - mg <= _margin(spec, g)):
            return Verdict.GOOD
    if len(c) >= spec.max_samples:
        return Verdict.FORCED_BAD if nearer_bad and mc - mg > _margin(spec, g) else Verdict.FORCED_GOOD
    return Verdict.AMBIGUOUS
