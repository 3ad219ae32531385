"""The statistics gates need beyond :mod:`sleuth.stats`: exact order statistics, a CV upper bound,
Benjamini-Hochberg, and the run-level shift test (:func:`run_shift`).

Conventions: every bound is one-sided unless its name says otherwise; ``conf`` is its coverage;
"no answer yet" is ``None`` (never an exception), with the number of observations still needed
where one can be computed.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "MedianBounds",
    "RunShift",
    "benjamini_hochberg",
    "binom_half_cdf",
    "cv",
    "cv_runs_needed",
    "cv_upper_bound",
    "downscale",
    "mean",
    "median",
    "median_bounds",
    "median_runs_needed",
    "order_stat_rank",
    "run_shift",
]

#: the most observations the runs-needed searches look at before answering "never"
_MAX_RUNS = 100_000
#: values up to this magnitude have pairwise differences, and means of two of those, within the float range
_QUARTER_MAX = sys.float_info.max / 4


def median(xs: Sequence[float]) -> float:
    """The sample median; an even count averages the two middle values; NaN when empty."""
    if not xs:
        return math.nan
    s = sorted(xs)
    h = len(s) // 2
    if len(s) % 2:
        return s[h]
    mid = (s[h - 1] + s[h]) / 2.0
    # near the float limit the sum overflows: halves first there (and only there: halving two
    # subnormals first rounds them to 0, below both)
    return mid if math.isfinite(mid) else s[h - 1] / 2.0 + s[h] / 2.0


def downscale(xs: Sequence[float]) -> float:
    """The factor that brings ``xs`` within a quarter of the float limit: 1.0 for ordinary values,
    a power of two (exact: it changes no digit) when one is larger.

    Scaled values have differences, and means of two differences, that stay finite; without it,
    values near the float limit give inf (the difference) or NaN (inf - inf).
    """
    big = max((abs(x) for x in xs), default=0.0)
    return 0.25 if big > _QUARTER_MAX else 1.0


def binom_half_cdf(k: int, n: int) -> float:
    """P(Binomial(n, 1/2) <= k), exactly (integer arithmetic, one rounding at the end)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    total: int = sum(math.comb(n, i) for i in range(k + 1))
    return total / (1 << n)


def order_stat_rank(n: int, conf: float) -> int | None:
    """The smallest rank ``k`` (1-based) with ``P(median <= x_(k)) >= conf``; None when no rank reaches it.

    ``P(x_(k) >= median) = P(at most k - 1 of n points lie below the median) = P(Bin(n, 1/2) <= k - 1)``
    for any continuous distribution, so ``x_(k)`` is a distribution-free upper bound on the median
    and, by symmetry, ``x_(n + 1 - k)`` a lower bound, each with exact coverage ``binom_half_cdf(k-1, n)``.
    """
    for k in range(1, n + 1):
        if binom_half_cdf(k - 1, n) >= conf:
            return k
    return None


def median_runs_needed(conf: float) -> int:
    """The fewest observations for which an order statistic bounds the median at ``conf``."""
    n = 1
    while binom_half_cdf(n - 1, n) < conf:  # the largest rank, x_(n), covers 1 - 2^-n
        n += 1
    return n


@dataclass(frozen=True, slots=True)
class MedianBounds:
    """One-sided bounds on the median from order statistics; ``coverage`` is exact (each side)."""

    median: float
    lower: float
    upper: float
    rank: int
    coverage: float


def median_bounds(xs: Sequence[float], conf: float = 0.95) -> MedianBounds | None:
    """``x_(n+1-k) <= median <= x_(k)``, each at coverage >= ``conf``; None when n is too small."""
    n = len(xs)
    k = order_stat_rank(n, conf) if n else None
    if k is None:
        return None
    s = sorted(xs)
    return MedianBounds(
        median=median(s), lower=s[n - k], upper=s[k - 1], rank=k, coverage=binom_half_cdf(k - 1, n)
    )


def cv(xs: Sequence[float]) -> float:
    """Coefficient of variation: sample standard deviation (n - 1) over the mean; NaN when undefined.

    Undefined: fewer than 2 values, or a mean <= 0 (a CV of a quantity that can be 0 or negative
    says nothing about its stability), except that values all equal have CV 0 whatever their mean:
    a counter that stays at ``0 allocs/op`` is as stable as one that stays at 3.
    """
    n = len(xs)
    if n < 2:
        return math.nan
    if min(xs) == max(xs):
        return 0.0
    try:
        return _cv(xs)
    except OverflowError:  # values near the float limit: the CV does not depend on their scale
        scale = max(abs(x) for x in xs)
        return _cv([x / scale for x in xs])


def _cv(xs: Sequence[float]) -> float:
    n = len(xs)
    mean = math.fsum(xs) / n
    if mean <= 0:
        return math.nan
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    return math.sqrt(var) / mean


def mean(xs: Sequence[float]) -> float:
    """The arithmetic mean (NaN when empty), without overflow for values near the float limit."""
    if not xs:
        return math.nan
    try:
        return math.fsum(xs) / len(xs)
    except OverflowError:
        return math.fsum(x / len(xs) for x in xs)


@lru_cache(maxsize=1024)
def _chi2_lower(n: int, conf: float) -> float:
    """The ``1 - conf`` quantile of chi-square with ``n - 1`` degrees of freedom."""
    from scipy.special import (
        chdtri,
    )  # the inverse upper tail; scipy.special imports fast, scipy.stats does not

    return float(chdtri(n - 1, conf))


def cv_upper_bound(cv_hat: float, n: int, conf: float = 0.95) -> float:
    """One-sided upper confidence bound on a normal population's CV (Vangel's modified McKay).

    ``cv_hat / sqrt(((u + 2) / n - 1) * cv_hat^2 + u / (n - 1))`` with ``u`` the ``1 - conf``
    quantile of chi-square with ``n - 1`` degrees of freedom (Vangel 1996, The American
    Statistician 50:21-26).  For a small CV it is ``cv_hat * sqrt((n - 1) / u)``, the chi-square
    bound on sigma with the mean treated as known: a factor 1.645 at n = 10 and 1.37 at n = 20.
    Assumes independent, normally distributed runs with a positive mean; accurate for CVs below
    about 0.33.  Infinite when the approximation breaks down (huge CV); NaN for n < 2.
    """
    if n < 2 or math.isnan(cv_hat):
        return math.nan
    if cv_hat == 0:
        return 0.0
    u = _chi2_lower(n, conf)
    den = ((u + 2.0) / n - 1.0) * cv_hat * cv_hat + u / (n - 1.0)
    return cv_hat / math.sqrt(den) if den > 0 else math.inf


def cv_runs_needed(cv_hat: float, target: float, conf: float = 0.95) -> int | None:
    """The fewest runs whose upper bound would fall below ``target`` if the CV stayed ``cv_hat``.

    None when that never happens (``cv_hat >= target``, or more than 100000 runs).
    """
    if math.isnan(cv_hat) or cv_hat >= target:
        return None
    lo, hi = 2, 2
    while cv_upper_bound(cv_hat, hi, conf) >= target:
        hi *= 2
        if hi > _MAX_RUNS:
            return None
    while lo < hi:  # the bound falls as n grows: bisect the first n below target
        mid = (lo + hi) // 2
        if cv_upper_bound(cv_hat, mid, conf) < target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order.

    ``q_(i) = min_{j >= i} min(1, m p_(j) / j)``: rejecting every ``q <= alpha`` controls the false
    discovery rate at ``alpha`` for independent (or positively dependent) tests.
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    q = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, m * pvalues[i] / rank)
        q[i] = min(1.0, running)
    return q


@dataclass(frozen=True, slots=True)
class RunShift:
    """Recent runs against the runs before them, one value a run: the change of the mean, its
    two-sided ``conf`` interval, and the one-sided p-value of "worse"."""

    estimate: float
    lower: float
    upper: float
    p: float
    #: degrees of freedom of the t distribution: runs in both groups less two
    df: int
    #: the pooled standard deviation of one run's value (run-to-run noise)
    spread: float
    conf: float


def run_shift(base: Sequence[float], recent: Sequence[float], *, worse: str, conf: float) -> RunShift | None:
    """Two-sample t test of ``recent`` against ``base`` (pooled variance), one value per run.

    A run is the unit: its samples share the runner, the build and the machine's state, so they are
    not independent of each other, and a test that pooled them took run-to-run noise for a change
    (a false FAIL for one metric in six at 2% run-to-run noise).  ``worse`` is ``"greater"`` (a larger
    value is worse) or ``"less"``.  With no spread at all (every run the same value) any change in the
    worse direction has p = 0.  None when there are fewer than three runs (no degrees of freedom).
    """
    n, k = len(base), len(recent)
    df = n + k - 2
    if n < 1 or k < 1 or df < 1:
        return None
    # in units near the largest magnitude, so that no square overflows; a power of two (exact),
    # applied in two halves since 2.0 ** 1024 is past the float range
    half = math.frexp(max(abs(x) for x in (*base, *recent)))[1] // 2
    down, up = 2.0**-half, 2.0**half
    b, r = [x * down * down for x in base], [x * down * down for x in recent]
    mb, mr = math.fsum(b) / n, math.fsum(r) / k
    ss = math.fsum((x - mb) ** 2 for x in b) + math.fsum((x - mr) ** 2 for x in r)
    spread = math.sqrt(ss / df)
    se = spread * math.sqrt(1.0 / n + 1.0 / k)
    est = mr - mb
    toward = est if worse == "greater" else -est
    if se == 0.0:
        p = 0.0 if toward > 0 else 1.0
        lo = hi = est
    else:
        from scipy.special import stdtr, stdtrit  # scipy.special imports fast, scipy.stats does not

        p = float(stdtr(df, -toward / se))
        q = float(stdtrit(df, 1.0 - (1.0 - conf) / 2.0))
        lo, hi = est - q * se, est + q * se
    return RunShift(estimate=est * up * up, lower=lo * up * up, upper=hi * up * up, p=p, df=df,
                    spread=spread * up * up, conf=conf)  # fmt: skip
