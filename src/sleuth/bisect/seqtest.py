"""Sequential two-sample rank tests: has a metric regressed by more than a threshold?

Values are oriented so that larger is worse.  :func:`compare` looks at two samples once: the
Hodges-Lehmann shift (the median of all pairwise differences, in percent of the reference's
median) with its distribution-free 95% interval, and two one-sided Mann-Whitney tests:

* ``p_worse``: is the other sample stochastically larger (worse) than the reference?
* ``p_within``: is it stochastically smaller than the reference shifted by the threshold?

A look decides REGRESSED when ``p_worse <= alpha`` and the shift is at least half the threshold
(a significant but negligible change is not a regression the user asked about), SAME when
``p_within <= alpha``; otherwise MORE samples are needed.  :class:`Sequential` runs the looks on a
growing schedule of sample sizes (:data:`LOOKS`) and says UNDECIDED at the last one.  The error
rates of the whole sequence (several looks) are measured by simulation (docs/bisect.md): the
threshold's indifference zone is (0, threshold); a change of 0 is called REGRESSED, and one of the
threshold called SAME, rarely.

Ranks make the test indifferent to the noise's shape (Gaussian, log-normal, two clusters) and an
outlier moves it by one rank.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
from scipy.stats import mannwhitneyu, norm

__all__ = ["LOOKS", "Comparison", "Decision", "Sequential", "compare", "median_ci", "shift_ci"]

#: per-end sample sizes at which the ends are compared
LOOKS = (6, 9, 12, 16, 20, 25, 30, 40)
#: the level of each look's one-sided tests
ALPHA = 0.005


class Decision(Enum):
    """What one look at two samples says."""

    REGRESSED = "regressed"
    SAME = "same"
    MORE = "more"
    #: the last look and still MORE
    UNDECIDED = "undecided"


@dataclass(frozen=True, slots=True)
class Comparison:
    """One look: the decision, the shift with its interval, the two p-values."""

    decision: Decision
    shift_pct: float
    ci_pct: tuple[float, float]
    p_worse: float
    p_within: float
    n_ref: int
    n_other: int

    def describe(self, what: str = "the bad end") -> str:
        """``+4.8% (95% CI +3.1..+6.4%, 12 and 12 runs)``."""
        lo, hi = self.ci_pct
        return (f"{what} is {self.shift_pct:+.1f}% (95% CI {lo:+.1f}..{hi:+.1f}%, "
                f"{self.n_ref} and {self.n_other} runs)")  # fmt: skip


def _p_greater(x: np.ndarray, y: np.ndarray) -> float:
    """One-sided Mann-Whitney p-value for "x is stochastically larger than y"."""
    if len(x) == 0 or len(y) == 0:
        return 1.0
    if np.ptp(np.concatenate([x, y])) == 0.0:
        return 1.0
    return float(mannwhitneyu(x, y, alternative="greater").pvalue)


def shift_ci(ref: Sequence[float], other: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Hodges-Lehmann shift of ``other`` over ``ref`` and its distribution-free interval (Moses)."""
    a, b = np.asarray(ref, dtype=float), np.asarray(other, dtype=float)
    d = np.sort(np.subtract.outer(b, a).ravel())
    n, m = len(a), len(b)
    hl = float(np.median(d))
    z = float(norm.ppf(0.5 + level / 2))
    k = math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))
    if k < 1:
        return hl, float(d[0]), float(d[-1])
    return hl, float(d[k - 1]), float(d[len(d) - k])


def compare(
    ref: Sequence[float], other: Sequence[float], threshold_pct: float, *, alpha: float = ALPHA
) -> Comparison:
    """One look at ``other`` against ``ref`` (larger is worse); see the module docstring."""
    a, b = np.asarray(ref, dtype=float), np.asarray(other, dtype=float)
    scale = abs(float(np.median(a))) or 1.0
    hl, lo, hi = shift_ci(ref, other)
    theta = scale * threshold_pct / 100.0
    p_worse = _p_greater(b, a)
    p_within = _p_greater(a + theta, b) if threshold_pct > 0 else 1.0
    pct = 100.0 / scale
    shift = hl * pct
    if p_worse <= alpha and shift >= threshold_pct / 2:
        decision = Decision.REGRESSED
    elif p_within <= alpha:
        decision = Decision.SAME
    else:
        decision = Decision.MORE
    return Comparison(decision, shift, (lo * pct, hi * pct), p_worse, p_within, len(a), len(b))


@dataclass(frozen=True, slots=True)
class Sequential:
    """The looks of a sequential comparison: the sizes, the level, the cap."""

    looks: tuple[int, ...] = LOOKS
    alpha: float = ALPHA

    def target(self, have: int) -> int:
        """Samples per side at the next look after ``have``."""
        for n in self.looks:
            if n > have:
                return n
        return self.looks[-1]

    def look(self, ref: Sequence[float], other: Sequence[float], threshold_pct: float) -> Comparison:
        """Compare at the current sizes; MORE becomes UNDECIDED at the last look."""
        c = compare(ref, other, threshold_pct, alpha=self.alpha)
        if c.decision is Decision.MORE and min(len(ref), len(other)) >= self.looks[-1]:
            return Comparison(Decision.UNDECIDED, c.shift_pct, c.ci_pct, c.p_worse, c.p_within,
                              c.n_ref, c.n_other)  # fmt: skip
        return c


def median_ci(xs: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """The median and a distribution-free interval for it (order statistics; the range when n < 6)."""
    s = np.sort(np.asarray(xs, dtype=float))
    n = len(s)
    med = float(np.median(s))
    if n < 6:
        return med, float(s[0]), float(s[-1])
    from scipy.stats import binom

    j = int(binom.ppf((1 - level) / 2, n, 0.5))  # P(Bin(n, 1/2) < j) <= (1 - level) / 2
    j = max(j, 1)
    return med, float(s[j - 1]), float(s[n - j])
