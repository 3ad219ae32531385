"""The gate's statistics: exact order statistics, the CV bound, Benjamini-Hochberg, Hodges-Lehmann.

Property tests (hypothesis) check each definition against a brute-force one; seeded simulations
check the stated coverage.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scipy.stats import chi2

from sleuth.gate.robust import (
    benjamini_hochberg,
    binom_half_cdf,
    cv,
    cv_runs_needed,
    cv_upper_bound,
    hodges_lehmann,
    median,
    median_bounds,
    median_runs_needed,
    mwu_null_cdf,
    mwu_p,
    order_stat_rank,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


# --- median and order statistics -----------------------------------------------------------------


def test_median_even_count_averages_the_two_middle_values() -> None:
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([300.0, 290.0, 310.0, 300.0]) == 300.0
    assert median([5.0]) == 5.0
    assert math.isnan(median([]))


@given(st.lists(finite, min_size=1, max_size=50))
def test_median_splits_the_sample_in_half(xs: list[float]) -> None:
    m = median(xs)
    assert sum(x <= m for x in xs) >= len(xs) / 2
    assert sum(x >= m for x in xs) >= len(xs) / 2
    assert m == float(np.median(xs)) or math.isclose(m, float(np.median(xs)), rel_tol=1e-12, abs_tol=1e-9)


@given(st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=60))
def test_binom_half_cdf_is_the_binomial_sum(k: int, n: int) -> None:
    want = sum(math.comb(n, i) for i in range(0, min(k, n) + 1)) / 2**n
    assert binom_half_cdf(k, n) == pytest.approx(want, rel=1e-12, abs=0)


@given(st.integers(min_value=1, max_value=80), st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99]))
def test_order_stat_rank_is_the_smallest_rank_with_coverage(n: int, conf: float) -> None:
    k = order_stat_rank(n, conf)
    if k is None:
        assert binom_half_cdf(n - 1, n) < conf  # even the maximum does not cover
    else:
        assert binom_half_cdf(k - 1, n) >= conf
        assert k == 1 or binom_half_cdf(k - 2, n) < conf


def test_order_stat_rank_known_values() -> None:
    # n=10: x(8) covers 94.5 %, short of 95 %; x(9) covers 98.9 %
    assert order_stat_rank(10, 0.95) == 9
    assert order_stat_rank(10, 0.94) == 8
    assert binom_half_cdf(7, 10) == pytest.approx(0.9453125)
    assert median_runs_needed(0.95) == 5  # 1 - 2^-5 = 0.969
    assert median_runs_needed(0.99) == 7


def test_median_bounds_single_run_and_empty_give_none() -> None:
    assert median_bounds([], 0.95) is None
    assert median_bounds([1.0], 0.95) is None
    assert median_bounds([1.0] * 4, 0.95) is None
    mb = median_bounds(list(map(float, range(1, 11))), 0.95)
    assert mb is not None and (mb.lower, mb.upper, mb.rank) == (2.0, 9.0, 9)
    assert mb.median == 5.5


def test_median_bounds_cover_the_true_median_seeded() -> None:
    rng = np.random.default_rng(11)
    for n in (5, 10, 17):
        x = rng.lognormal(0.0, 1.0, size=(4000, n))  # true median 1.0
        hits_hi = hits_lo = 0
        for row in x:
            mb = median_bounds(row.tolist(), 0.95)
            assert mb is not None
            hits_hi += mb.upper >= 1.0
            hits_lo += mb.lower <= 1.0
        cov = median_bounds(x[0].tolist(), 0.95).coverage  # type: ignore[union-attr]
        for hits in (hits_hi, hits_lo):
            assert abs(hits / 4000 - cov) < 0.02, (n, hits / 4000, cov)


# --- CV and its upper bound -----------------------------------------------------------------------


def test_cv_undefined_cases() -> None:
    assert math.isnan(cv([]))
    assert math.isnan(cv([1.0]))
    assert math.isnan(cv([-1.0, 1.0]))  # mean 0
    assert cv([3.0, 3.0, 3.0]) == 0.0
    assert cv([0.0, 0.0, 0.0]) == 0.0  # a constant is stable whatever its mean
    assert cv([-2.0, -2.0]) == 0.0
    assert cv([2.0, 4.0]) == pytest.approx(math.sqrt(2.0) / 3.0)


def test_cv_upper_bound_factor_at_n_10_and_20() -> None:
    # small CV: the chi-square bound on sigma, factor sqrt((n-1)/chi2_0.05(n-1))
    for n, factor in ((10, 1.645), (20, 1.37)):
        assert cv_upper_bound(1e-4, n) / 1e-4 == pytest.approx(factor, abs=0.005)
    assert cv_upper_bound(0.0, 10) == 0.0
    assert math.isnan(cv_upper_bound(0.01, 1))


@settings(deadline=None)
@given(st.floats(min_value=1e-5, max_value=0.3), st.integers(min_value=2, max_value=200))
def test_cv_upper_bound_is_above_the_estimate_and_falls_with_n(c: float, n: int) -> None:
    up = cv_upper_bound(c, n)
    assert up > c
    assert cv_upper_bound(c, n + 1) <= up + 1e-15
    u = chi2.ppf(0.05, n - 1)
    want = c / math.sqrt(((u + 2) / n - 1) * c * c + u / (n - 1))
    assert up == pytest.approx(want, rel=1e-12)


def test_cv_upper_bound_covers_the_true_cv_seeded() -> None:
    rng = np.random.default_rng(7)
    for n in (5, 10, 30):
        for true_cv in (0.005, 0.02, 0.1):
            x = 100.0 * (1.0 + true_cv * rng.standard_normal((5000, n)))
            c = x.std(axis=1, ddof=1) / x.mean(axis=1)
            covered = np.mean([cv_upper_bound(float(v), n) >= true_cv for v in c])
            assert 0.93 <= covered <= 0.97, (n, true_cv, covered)


@settings(deadline=None)
@given(st.floats(min_value=1e-4, max_value=0.05), st.floats(min_value=1.05, max_value=5.0))
def test_cv_runs_needed_is_the_first_n_below_target(c: float, ratio: float) -> None:
    target = c * ratio
    n = cv_runs_needed(c, target)
    if n is None:
        assert cv_upper_bound(c, 100_000) >= target
        return
    assert cv_upper_bound(c, n) < target
    assert n == 2 or cv_upper_bound(c, n - 1) >= target


def test_cv_runs_needed_never_when_at_or_over_target() -> None:
    assert cv_runs_needed(0.01, 0.01) is None
    assert cv_runs_needed(0.02, 0.01) is None


def test_false_graduation_point_rule_vs_bound_rule_seeded() -> None:
    """At n = 10 and a true CV exactly at the 1 % target: the point rule graduates ~half the time."""
    rng = np.random.default_rng(3)
    x = 100.0 * (1.0 + 0.01 * rng.standard_normal((20000, 10)))
    c = x.std(axis=1, ddof=1) / x.mean(axis=1)
    point = float(np.mean(c < 0.01))
    bound = float(np.mean([cv_upper_bound(float(v), 10) < 0.01 for v in c]))
    assert 0.5 < point < 0.62  # ~0.56 (chi-square)
    assert bound <= 0.06  # the bound's 95 % coverage


# --- Benjamini-Hochberg ---------------------------------------------------------------------------


def _bh_reference(ps: list[float], alpha: float) -> set[int]:
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    k = max((r for r in range(1, m + 1) if ps[order[r - 1]] <= alpha * r / m), default=0)
    return set(order[:k])


@given(
    st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=40), st.sampled_from([0.01, 0.05, 0.2])
)
def test_bh_rejects_exactly_the_step_up_set(ps: list[float], alpha: float) -> None:
    m = len(ps)
    # p = r alpha / m exactly: `m p / r <= alpha` and `p <= alpha r / m` round apart (3 * 0.2 / 3 is
    # 0.20000000000000004); the rule is the same, a tie on the threshold is decided by rounding
    assume(all(abs(p * m / r - alpha) > 1e-12 for r in range(1, m + 1) for p in ps))
    q = benjamini_hochberg(ps)
    assert {i for i, v in enumerate(q) if v <= alpha} == _bh_reference(ps, alpha)
    assert all(qi >= pi - 1e-15 and qi <= 1.0 for pi, qi in zip(ps, q, strict=True))
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    assert all(q[a] <= q[b] + 1e-15 for a, b in itertools.pairwise(order))


def test_bh_controls_the_false_discovery_rate_seeded() -> None:
    rng = np.random.default_rng(5)
    fdp = []
    for _ in range(2000):
        null = rng.uniform(size=18)
        real = rng.uniform(0, 0.001, size=2)
        q = benjamini_hochberg([*null.tolist(), *real.tolist()])
        rejected = [i for i, v in enumerate(q) if v <= 0.05]
        false = sum(i < 18 for i in rejected)
        fdp.append(false / max(1, len(rejected)))
    assert np.mean(fdp) <= 0.05 * 18 / 20 + 0.01


# --- Mann-Whitney null and Hodges-Lehmann ---------------------------------------------------------


@pytest.mark.parametrize(("m", "n"), [(1, 1), (1, 5), (3, 4), (5, 5), (4, 7)])
def test_mwu_null_cdf_matches_enumeration(m: int, n: int) -> None:
    counts = [0] * (m * n + 1)
    for xs in itertools.combinations(range(m + n), m):
        ys = [i for i in range(m + n) if i not in xs]
        counts[sum(x < y for x in xs for y in ys)] += 1
    total = sum(counts)
    for u in range(m * n + 1):
        assert mwu_null_cdf(u, m, n) == pytest.approx(sum(counts[: u + 1]) / total, abs=1e-12)


def test_mwu_null_cdf_matches_scipy_exact() -> None:
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(1)
    for m, n in ((6, 9), (10, 12)):
        a, b = rng.normal(size=m), rng.normal(size=n) + 0.5
        res = mannwhitneyu(a, b, alternative="less", method="exact")
        u = int(res.statistic)
        assert mwu_null_cdf(u, m, n) == pytest.approx(res.pvalue, rel=1e-9)


@settings(deadline=None)
@given(
    st.lists(finite, min_size=1, max_size=12),
    st.lists(finite, min_size=1, max_size=12),
    st.floats(min_value=-1e3, max_value=1e3),
)
def test_hodges_lehmann_is_shift_equivariant(a: list[float], b: list[float], c: float) -> None:
    s1 = hodges_lehmann(a, b)
    s2 = hodges_lehmann(a, [x + c for x in b])
    assert s1 is not None and s2 is not None
    assert s2.estimate == pytest.approx(s1.estimate + c, abs=1e-6 * (1 + abs(c) + abs(s1.estimate)))
    assert s1.lower <= s1.estimate <= s1.upper
    d = sorted(y - x for x in a for y in b)
    assert s1.estimate == pytest.approx(float(np.median(d)))


@given(
    st.lists(st.floats(min_value=-1, max_value=1), min_size=1, max_size=8),
    st.lists(st.floats(min_value=-1, max_value=1), min_size=1, max_size=8),
)
@example([-0.5], [0.4, 0.5, 0.6, 0.7])  # the two middle differences are finite, their sum is not
def test_hodges_lehmann_scales_to_the_float_limit(a: list[float], b: list[float]) -> None:
    """Times 2**1023 (exact): differences past the float range must not turn the estimate into
    inf or NaN where the true shift is within it."""
    c = 2.0**1023
    s, big = hodges_lehmann(a, b, conf=0.8), hodges_lehmann([x * c for x in a], [x * c for x in b], conf=0.8)
    assert s is not None and big is not None
    for x, y in ((s.estimate, big.estimate), (s.lower, big.lower), (s.upper, big.upper)):
        assert y == (x * c if math.isfinite(x * c) else math.copysign(math.inf, x))


def test_tolerance_past_the_float_range() -> None:
    from sleuth.gate.policy import parse_tolerance

    tol = parse_tolerance("150%")  # limit 2.25e308 and gap 3e308: both inf before halving
    assert not tol.allows(-1.5e308, 1.5e308) and tol.allows(-1e307, 1.5e308)
    assert tol.excess(1.5e308, -1.5e308, 1.5e308) and not tol.excess(1.5e308, -0.7e308, 1.5e308)
    assert parse_tolerance("300%").allows(-1.5e308, 1.5e308)


def test_hodges_lehmann_interval_is_the_whole_line_when_too_small() -> None:
    s = hodges_lehmann([1.0, 2.0], [3.0])
    assert s is not None and s.lower == -math.inf and s.upper == math.inf
    assert hodges_lehmann([], [1.0]) is None


def test_hodges_lehmann_interval_covers_the_true_shift_seeded() -> None:
    rng = np.random.default_rng(9)
    for m, n, exact in ((10, 8, True), (250, 200, False)):  # exact quantiles, then the normal approximation
        covered = 0
        reps = 1500 if exact else 300
        for _ in range(reps):
            a = rng.standard_t(3, size=m)
            b = rng.standard_t(3, size=n) + 2.0
            s = hodges_lehmann(a.tolist(), b.tolist(), conf=0.9)
            assert s is not None
            covered += s.lower <= 2.0 <= s.upper
        assert covered / reps >= 0.87, (m, n, covered / reps)


@settings(max_examples=150, deadline=None)
@given(
    x=st.lists(st.integers(0, 3), min_size=1, max_size=4),
    y=st.lists(st.integers(0, 3), min_size=1, max_size=6),
    alt=st.sampled_from(["greater", "less"]),
)
def test_mwu_p_with_ties_is_the_exact_permutation_p(x: list[int], y: list[int], alt: str) -> None:
    from scipy.stats import rankdata

    ranks = rankdata([*x, *y])
    r_x = sum(ranks[: len(x)])
    sums = [sum(ranks[i] for i in idx) for idx in itertools.combinations(range(len(ranks)), len(x))]
    hits = [s >= r_x - 1e-9 if alt == "greater" else s <= r_x + 1e-9 for s in sums]
    fx, fy = [float(v) for v in x], [float(v) for v in y]
    assert mwu_p(fx, fy, alt) == pytest.approx(sum(hits) / len(sums), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    a=st.lists(st.one_of(st.integers(-4, 4).map(float), finite), min_size=1, max_size=20),
    b=st.lists(st.one_of(st.integers(-4, 4).map(float), finite), min_size=1, max_size=20),
    conf=st.sampled_from([0.8, 0.9, 0.95]),
)
@example(a=[1e308, -1e308], b=[1e308, 0.0], conf=0.8)  # scaled first: no difference overflows
def test_hodges_lehmann_by_counting_is_the_sorted_one(a: list[float], b: list[float], conf: float) -> None:
    """Past 4 million pairs the differences are selected by counting, not sorted: the same floats."""
    from sleuth.gate import robust

    sorted_ = hodges_lehmann(a, b, conf)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(robust, "_MATERIALIZED_PAIRS", 0)
        assert hodges_lehmann(a, b, conf) == sorted_


def test_hodges_lehmann_of_a_billion_differences_fits_in_2_gib() -> None:
    """10 runs of 10,000 pytest-benchmark rounds against 10,000 new ones: the sorted differences
    took 7.5 GiB (a MemoryError here, an OOM kill on a CI runner)."""
    import resource
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from sleuth.gate.robust import hodges_lehmann\n"
        "rng = np.random.default_rng(0)\n"
        "a, b = rng.normal(100, 1, 100_000).tolist(), rng.normal(101, 1, 10_000).tolist()\n"
        "s = hodges_lehmann(a, b, conf=0.9)\n"
        "print(round(s.estimate, 1), s.lower < s.estimate < s.upper)\n"
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    env = {"OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=limit, env=env, timeout=600
    )
    assert (r.returncode, r.stdout) == (0, "1.0 True\n"), r.stderr[-500:]
