"""Statistics every room shares.  Pure functions; numpy/scipy are imported lazily (start-up time).

Intervals are two-sided at ``conf`` (default 0.95).  Every function documents what it returns for
empty input instead of raising, because "no data" is an answer sleuth reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "SPRT",
    "Distribution",
    "bootstrap_ratio_ci",
    "clopper_pearson",
    "describe",
    "fisher_exact",
    "mann_whitney_p",
    "percentile",
    "trials_to_separate",
    "wilson",
]


def _normal_quantile(q: float) -> float:
    from statistics import NormalDist  # with fractions and decimal: kept out of every verb's start-up

    return NormalDist().inv_cdf(q)


#: ``_normal_quantile(0.5 + conf / 2)`` of the default level, as ``statistics`` computes it: every run's
#: summary asks for it, and ``statistics`` (with ``fractions`` and ``decimal``) costs each verb ~3 ms
_Z_95 = 1.9599639845400536


def _z(conf: float) -> float:
    return _Z_95 if conf == 0.95 else _normal_quantile(0.5 + conf / 2.0)


def wilson(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n; (0, 1) when n == 0."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= k <= n:
        raise ValueError(f"k={k} must lie in [0, n={n}]")
    z = _z(conf)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    # exact ends: no observed failures means the lower bound is 0, all failures the upper is 1
    return (0.0 if k == 0 else lo, 1.0 if k == n else hi)


def clopper_pearson(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for k/n; (0, 1) when n == 0."""
    if n <= 0:
        return (0.0, 1.0)
    from scipy.stats import beta

    alpha = 1.0 - conf
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return (lo, hi)


def fisher_exact(a_fail: int, a_n: int, b_fail: int, b_n: int, alternative: str = "two-sided") -> float:
    """Fisher's exact test p-value for failure counts of two groups (a vs b).

    ``alternative="less"`` asks whether a's failure rate is lower than b's.
    """
    from scipy.stats import fisher_exact as _fe

    table = [[a_fail, a_n - a_fail], [b_fail, b_n - b_fail]]
    if a_n == 0 or b_n == 0:
        return 1.0
    return float(_fe(table, alternative=alternative).pvalue)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Distribution:
    """Summary statistics of a sample."""

    n: int
    median: float
    p90: float
    min: float
    max: float
    mean: float
    std: float

    def to_dict(self) -> dict[str, float | int]:
        """JSON form."""
        return {
            "n": self.n,
            "median": self.median,
            "p90": self.p90,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "std": self.std,
        }


def describe(values: Sequence[float]) -> Distribution | None:
    """Summary of ``values``; None when empty.  ``std`` is the sample standard deviation (ddof=1)."""
    if not values:
        return None
    n = len(values)
    try:
        scale = 1.0
        mean = math.fsum(values) / n
        var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    except OverflowError:
        # in units of the largest magnitude: a sum or a square of values near the float limit (a
        # workload's garbage step time, 1e200) overflowed and crashed the report after every trial
        scale = max(abs(v) for v in values)
        mean = math.fsum(v / scale for v in values) / n
        var = math.fsum((v / scale - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return Distribution(
        n=n,
        median=percentile(values, 50),
        p90=percentile(values, 90),
        min=min(values),
        max=max(values),
        mean=mean * scale,
        std=math.sqrt(var) * scale,
    )


def bootstrap_ratio_ci(
    a: Sequence[float],
    b: Sequence[float],
    *,
    conf: float = 0.95,
    n_boot: int = 5000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Ratio of medians median(a)/median(b) with a percentile-bootstrap interval.

    Returns ``(ratio, lo, hi)``; NaNs when either sample is empty or b's median is 0.
    Deterministic for a given seed.
    """
    if not a or not b:
        return (math.nan, math.nan, math.nan)
    import numpy as np

    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    mb = float(np.median(xb))
    if mb == 0:
        return (math.nan, math.nan, math.nan)
    ratio = float(np.median(xa)) / mb
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, len(xa), size=(n_boot, len(xa)))
    ib = rng.integers(0, len(xb), size=(n_boot, len(xb)))
    ma = np.median(xa[ia], axis=1)
    mbs = np.median(xb[ib], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = ma / mbs
    ratios = ratios[np.isfinite(ratios)]
    alpha = 1.0 - conf
    lo, hi = np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
    return (ratio, float(lo), float(hi))


def mann_whitney_p(a: Sequence[float], b: Sequence[float], alternative: str = "two-sided") -> float:
    """Mann-Whitney U test p-value; 1.0 when either sample is empty."""
    if not a or not b:
        return 1.0
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(a, b, alternative=alternative).pvalue)


def trials_to_separate(p_a: float, p_b: float, *, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Trials per group a two-proportion test needs to tell p_a from p_b (normal approximation).

    At least the trials at which the expected table itself is significant by Fisher's exact test
    (two-sided, ``alpha``), the test the rates are judged by: at extreme rates the approximation
    is far too hopeful (1.0 against 0.0 gave 2 trials, and 0/3 against 3/3 still has p = 0.1).
    None when the rates are equal (no finite number settles it).
    """
    if p_a == p_b:
        return None
    za = _z(1 - alpha)
    zb = _normal_quantile(power)
    pbar = (p_a + p_b) / 2
    num = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))
    n = math.ceil((num / abs(p_a - p_b)) ** 2)
    if min(p_a, 1 - p_a, p_b, 1 - p_b) * n >= 5:  # every expected count 5 or more: it holds
        return n
    limit = 10 * n + 100  # the expected table's p falls with n; the bound only guards the loop
    while n < limit and fisher_exact(round(p_a * n), n, round(p_b * n), n) >= alpha:
        n += 1
    return n


@dataclass(slots=True)
class SPRT:
    """Wald's sequential probability ratio test for a Bernoulli rate: H0 p = p0 against H1 p = p1.

    Feed observations with :meth:`update`; :attr:`decision` becomes ``"h0"`` or ``"h1"`` once the
    log-likelihood ratio crosses a boundary (error rates ``alpha`` for rejecting H0 wrongly,
    ``beta`` for accepting it wrongly), else stays None.
    """

    p0: float
    p1: float
    alpha: float = 0.05
    beta: float = 0.05
    llr: float = 0.0
    n: int = 0
    decision: str | None = None

    def __post_init__(self) -> None:
        if not (0 < self.p0 < 1 and 0 < self.p1 < 1) or self.p0 == self.p1:
            raise ValueError("SPRT needs 0 < p0 != p1 < 1")

    @property
    def upper(self) -> float:
        """Crossing this accepts H1."""
        return math.log((1 - self.beta) / self.alpha)

    @property
    def lower(self) -> float:
        """Crossing this accepts H0."""
        return math.log(self.beta / (1 - self.alpha))

    def update(self, success: bool) -> str | None:
        """Add one Bernoulli observation (``True`` = event); return the decision so far."""
        if self.decision is not None:
            return self.decision
        self.n += 1
        if success:
            self.llr += math.log(self.p1 / self.p0)
        else:
            self.llr += math.log((1 - self.p1) / (1 - self.p0))
        if self.llr >= self.upper:
            self.decision = "h1"
        elif self.llr <= self.lower:
            self.decision = "h0"
        return self.decision
