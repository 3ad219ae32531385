"""The statistics gates need beyond :mod:`sleuth.stats`: exact order statistics, a CV upper bound,
Benjamini-Hochberg, and the Hodges-Lehmann shift with its distribution-free interval.

Conventions: every bound is one-sided unless its name says otherwise; ``conf`` is its coverage;
"no answer yet" is ``None`` (never an exception), with the number of observations still needed
where one can be computed.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = [
    "MedianBounds",
    "Shift",
    "benjamini_hochberg",
    "binom_half_cdf",
    "cv",
    "cv_runs_needed",
    "cv_upper_bound",
    "downscale",
    "hodges_lehmann",
    "mean",
    "median",
    "median_bounds",
    "median_runs_needed",
    "mwu_null_cdf",
    "mwu_p",
    "order_stat_rank",
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


@lru_cache(maxsize=256)
def _mwu_counts(m: int, n: int) -> tuple[float, ...]:
    """Counts of U = 0..mn over all C(m+n, m) arrangements: the Gaussian binomial [m+n, m]_q."""
    import numpy as np

    m, n = min(m, n), max(m, n)
    c = np.zeros(m * n + 1)
    c[0] = 1.0
    for i in range(1, m + 1):
        # times (1 - q^(n+i)), then divided by (1 - q^i): [n+i, i]_q from [n+i-1, i-1]_q
        top = i * n
        if n + i <= top:
            c[n + i : top + 1] -= c[: top + 1 - n - i].copy()
        for k in range(i, top + 1):
            c[k] += c[k - i]
    total = c.sum()
    return tuple((c / total).tolist())


def mwu_null_cdf(u: int, m: int, n: int) -> float:
    """P(U <= u) for the Mann-Whitney U of samples of sizes m and n (no ties), exactly."""
    if u < 0:
        return 0.0
    probs = _mwu_counts(m, n)
    return min(1.0, math.fsum(probs[: u + 1]))


#: exact Mann-Whitney quantiles up to this many pairs; beyond, the normal approximation
_EXACT_PAIRS = 40_000
#: the exact null under ties while (smaller sample + 1) x (its largest doubled rank sum, at most
#: 2 x smaller x all points) x (all points) stays under this
_EXACT_TIES_WORK = 20_000_000


def mwu_p(x: Sequence[float], y: Sequence[float], alternative: str) -> float:
    """One-sided Mann-Whitney p-value: ``alternative`` "greater" (``x`` tends to exceed ``y``) or "less".

    Without ties, SciPy's (exact for small samples, else normal).  With ties (integer timings, a
    baseline of equal values) the exact permutation null of the midrank sum, counted by dynamic
    programming while that is cheap: SciPy's normal approximation is far too hopeful there (one
    new value above ten equal ones got p = 0.002, where every arrangement is as likely: 1/11).
    1.0 when either sample is empty.
    """
    if not x or not y:
        return 1.0
    import numpy as np
    from scipy.stats import mannwhitneyu, rankdata

    both = [*x, *y]
    n_all, small = len(both), min(len(x), len(y))
    ties = len(set(both)) < n_all
    if (
        not ties
        or not all(map(math.isfinite, both))
        or (small + 1) * n_all * n_all * small > _EXACT_TIES_WORK
    ):
        return float(mannwhitneyu(x, y, alternative=alternative).pvalue)
    doubled = (2.0 * rankdata(both)).astype(np.int64)  # midranks are multiples of 1/2
    top = int(np.sort(doubled)[-small:].sum())
    # c[j, t]: how many j-subsets of the points have doubled rank sum t
    c = np.zeros((small + 1, top + 1))
    c[0, 0] = 1.0
    for i, w in enumerate(doubled.tolist()):
        rows = min(i + 1, small)
        c[1 : rows + 1, w:] += c[:rows, : top + 1 - w].copy()
    dist = c[small]
    r_x = int(doubled[: len(x)].sum())
    if len(x) == small:  # the subsets are x's: P(R_x >= r_x) or P(R_x <= r_x)
        tail = dist[r_x:] if alternative == "greater" else dist[: r_x + 1]
    else:  # the subsets are y's, R_y = total - R_x
        r_y = int(doubled.sum()) - r_x
        tail = dist[: r_y + 1] if alternative == "greater" else dist[r_y:]
    return min(1.0, float(tail.sum() / dist.sum()))


def _mwu_critical(m: int, n: int, conf: float) -> int:
    """The largest ``c`` with ``P(U < c) <= (1 - conf) / 2`` (0 when none): the interval's depth."""
    alpha2 = (1.0 - conf) / 2.0
    if m * n <= _EXACT_PAIRS:
        probs = _mwu_counts(m, n)
        acc, c = 0.0, 0
        while c < len(probs) and acc + probs[c] <= alpha2 + 1e-15:
            acc += probs[c]
            c += 1
        return c
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1.0 - alpha2)
    return max(0, math.floor(m * n / 2.0 - z * math.sqrt(m * n * (m + n + 1) / 12.0)))


@dataclass(frozen=True, slots=True)
class Shift:
    """Hodges-Lehmann shift ``b - a`` with a two-sided distribution-free interval (``conf``)."""

    estimate: float
    lower: float
    upper: float
    conf: float


def hodges_lehmann(a: Sequence[float], b: Sequence[float], conf: float = 0.95) -> Shift | None:
    """Median of all differences ``b_j - a_i`` and the interval between the order statistics of
    those differences that invert the Mann-Whitney test (Hollander & Wolfe, ch. 4).

    The interval covers the true shift with probability >= ``conf`` when both samples come from
    one continuous distribution up to a shift; it is exact (Gaussian binomial) up to 40000 pairs
    and normal-approximated beyond.  With too few points for any interval, it is the whole line.
    None when either sample is empty.  Past 4 million pairs the order statistics are selected by
    counting (:func:`_kth_difference`): the same floats, without holding them all.
    """
    if not a or not b:
        return None
    import numpy as np

    f = downscale([*a, *b])  # differences and their medians computed where they cannot overflow
    x, y = np.sort(np.asarray(a, dtype=np.float64) * f), np.sort(np.asarray(b, dtype=np.float64) * f)
    mn = x.size * y.size
    if mn <= _MATERIALIZED_PAIRS:
        d = np.sort((y[None, :] - x[:, None]).ravel())

        def kth(k: int) -> float:
            return float(d[k - 1])

    else:  # 10 runs of 100k pytest-benchmark rounds: 10^11 differences would not fit in memory

        def kth(k: int) -> float:
            return _kth_difference(x, y, k)

    half = (mn + 1) // 2
    mid = kth(half) if mn % 2 else (kth(half) + kth(half + 1)) / 2.0  # as np.median
    est = mid / f  # beyond the float range (+-inf) only when the shift itself is
    c = _mwu_critical(len(a), len(b), conf)
    if c < 1:
        return Shift(estimate=est, lower=-math.inf, upper=math.inf, conf=conf)
    return Shift(estimate=est, lower=kth(c) / f, upper=kth(mn - c + 1) / f, conf=conf)


#: pairwise differences sorted in memory up to this many (32 MB); beyond, selected by counting
_MATERIALIZED_PAIRS = 4_000_000


def _kth_difference(x: Any, y: Any, k: int) -> float:
    """The ``k``-th smallest (1-based) of the ``len(x) * len(y)`` float differences ``y_j - x_i``
    (``x``, ``y`` sorted), without forming them: a bisection over the floats in between (at most
    64 steps, each counting in O(len * log len)), exact: the same differences, rounded the same."""
    lo_t, hi_t = float(y[0] - x[-1]), float(y[-1] - x[0])  # the smallest and the largest difference
    if _count_le(x, y, lo_t) >= k:
        return lo_t
    lo, hi = _ordered(lo_t), _ordered(hi_t)  # count(lo) < k <= count(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _count_le(x, y, _unordered(mid)) >= k:
            hi = mid
        else:
            lo = mid
    return _unordered(hi)


def _count_le(x: Any, y: Any, t: float) -> int:
    """How many ``y_j - x_i <= t``, searching the longer array once per element of the shorter."""
    import numpy as np

    if x.size <= y.size:  # y_j - x_i grows with j: per x_i, the first j where it exceeds t
        rows, cols, sign, strict = x, y, 1.0, False
    else:  # y_j - x_i <= t  <=>  x_i - y_j >= -t (IEEE subtraction is sign-symmetric)
        rows, cols, sign, strict = y, x, -1.0, True
    thresh = sign * t
    lo = np.zeros(rows.size, dtype=np.int64)
    hi = np.full(rows.size, cols.size, dtype=np.int64)
    while True:  # per row, the number of cols with cols - row below thresh (< when strict, else <=)
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        diff = cols[np.minimum(mid, cols.size - 1)] - rows
        below = diff < thresh if strict else diff <= thresh
        lo = np.where(active & below, mid + 1, lo)
        hi = np.where(active & ~below, mid, hi)
    below_total = int(lo.sum())
    return below_total if sign > 0 else x.size * y.size - below_total


def _ordered(v: float) -> int:
    """A float as an integer that sorts as the floats do (-0.0 and 0.0 alike)."""
    i = int(struct.unpack("<q", struct.pack("<d", v))[0])
    return i if i >= 0 else -(i & 0x7FFF_FFFF_FFFF_FFFF)


def _unordered(i: int) -> float:
    bits = i if i >= 0 else (-i) | -0x8000_0000_0000_0000
    (v,) = struct.unpack("<d", struct.pack("<q", bits))
    return float(v)
