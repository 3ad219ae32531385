"""The gate's statistics: exact order statistics, the CV bound, Benjamini-Hochberg, the run-level shift test.

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
    median,
    median_bounds,
    median_runs_needed,
    order_stat_rank,
    run_shift,
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


# --- the run-level shift test ----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy's, on near-equal data
@settings(max_examples=200, deadline=None)
@given(
    st.lists(finite, min_size=2, max_size=15),
    st.lists(finite, min_size=2, max_size=6),
    st.sampled_from(["greater", "less"]),
)
def test_run_shift_is_the_pooled_two_sample_t_test(
    base: list[float], recent: list[float], worse: str
) -> None:
    from scipy.stats import ttest_ind

    assume(np.std(base + recent) > 1e-6 * (1 + max(abs(x) for x in base + recent)))
    s = run_shift(base, recent, worse=worse, conf=0.9)
    assert s is not None
    ref = ttest_ind(recent, base, equal_var=True, alternative=worse)
    assert s.p == pytest.approx(float(ref.pvalue), rel=1e-6, abs=1e-12)
    assert s.df == len(base) + len(recent) - 2
    assert s.lower <= s.estimate <= s.upper
    assert s.estimate == pytest.approx(np.mean(recent) - np.mean(base), rel=1e-9, abs=1e-6)


def test_one_recent_run_is_judged_by_the_prediction_interval() -> None:
    base = [100.0, 101.0, 99.0, 100.5, 99.5]
    s = run_shift(base, [103.0], worse="greater", conf=0.9)
    sd = float(np.std(base, ddof=1))
    t = (103.0 - np.mean(base)) / (sd * math.sqrt(1 + 1 / 5))
    from scipy.stats import t as student

    assert s is not None and s.df == 4 and s.spread == pytest.approx(sd)
    assert s.p == pytest.approx(float(student.sf(t, 4)))
    assert run_shift([1.0], [2.0], worse="greater", conf=0.9) is None  # no degrees of freedom


def test_no_spread_at_all_makes_any_worsening_certain() -> None:
    s = run_shift([120.0] * 10, [125.0], worse="greater", conf=0.9)
    assert s is not None and s.p == 0.0 and s.estimate == 5.0 and s.lower == s.upper == 5.0
    s = run_shift([120.0] * 10, [115.0], worse="greater", conf=0.9)
    assert s is not None and s.p == 1.0
    s = run_shift([120.0] * 10, [120.0], worse="less", conf=0.9)
    assert s is not None and s.p == 1.0


#: finite floats without subnormals: a subnormal (5e-324) keeps a few bits, so the small side's own
#: spread is rounded there and scaling by a power of two is no longer exact (hypothesis found
#: base [0.0, 5e-324]: the scaled run's spread was right, the tiny one's off by its rounding)
normal = st.floats(
    min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, allow_subnormal=False
)


@given(st.lists(normal, min_size=2, max_size=10), st.lists(normal, min_size=1, max_size=4))
@example([-1e6, 1e6], [1e6])
@example([-999999.9993250974, -999999.9993401761], [999999.0000587851])  # failed with a scale of 1e302
def test_run_shift_scales_to_the_float_limit(base: list[float], recent: list[float]) -> None:
    s = run_shift(base, recent, worse="greater", conf=0.9)
    # values near the float limit (1e6 * 2**1000 is about 1e307): no square may overflow.  A power of
    # two scales every value exactly; with 1e302 each value was rounded, and a spread 1e-10 of the
    # values' size (two runs 1e6 and 1e6 + 1e-4) came out 3e-6 off, which is the input's rounding,
    # not run_shift's
    c = 2.0**1000
    big = run_shift([x * c for x in base], [x * c for x in recent], worse="greater", conf=0.9)
    assert s is not None and big is not None
    assert big.p == pytest.approx(s.p, rel=1e-9, abs=1e-12)
    assert math.isfinite(big.spread) and big.spread == pytest.approx(s.spread * c, rel=1e-9, abs=1e-300)


def test_run_to_run_noise_is_not_taken_for_a_change_seeded() -> None:
    """Runs of 10 samples whose level moves 2% from run to run (a shared CI runner): pooling the
    samples as independent made one null metric in six FAIL; the run-level test holds its level."""
    rng = np.random.default_rng(11)
    reps, hits, found = 4000, 0, 0
    for _ in range(reps):
        levels = 100 * (1 + 0.02 * rng.standard_normal(11))
        runs = [float(np.median(lv * (1 + 0.01 * rng.standard_normal(10)))) for lv in levels]
        s = run_shift(runs[:10], runs[10:], worse="greater", conf=0.9)
        assert s is not None
        hits += s.p <= 0.05
        s = run_shift(runs[:10], [runs[10] * 1.10], worse="greater", conf=0.9)  # a real 10% change
        assert s is not None
        found += s.p <= 0.05
    assert abs(hits / reps - 0.05) < 0.015, hits / reps
    assert found / reps > 0.9, found / reps


def test_tolerance_past_the_float_range() -> None:
    from sleuth.gate.policy import parse_tolerance

    tol = parse_tolerance("150%")  # limit 2.25e308 and gap 3e308: both inf before halving
    assert not tol.allows(-1.5e308, 1.5e308) and tol.allows(-1e307, 1.5e308)
    assert tol.excess(1.5e308, -1.5e308, 1.5e308) and not tol.excess(1.5e308, -0.7e308, 1.5e308)
    assert parse_tolerance("300%").allows(-1.5e308, 1.5e308)
