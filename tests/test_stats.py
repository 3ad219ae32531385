"""Statistics against hand-computed values and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sleuth import stats


def test_wilson_matches_hand_computation() -> None:
    # k=3, n=10, z=1.959964: centre=(0.3+z^2/20)/(1+z^2/10), half=z*sqrt(0.021+z^2/400)/(1+z^2/10)
    z = 1.959963984540054
    denom = 1 + z * z / 10
    centre = (0.3 + z * z / 20) / denom
    half = z * math.sqrt(0.3 * 0.7 / 10 + z * z / 400) / denom
    lo, hi = stats.wilson(3, 10)
    assert lo == pytest.approx(centre - half, abs=1e-12) and hi == pytest.approx(centre + half, abs=1e-12)
    assert (round(lo, 4), round(hi, 4)) == (0.1078, 0.6032)


def test_default_level_z_is_the_normal_quantile_to_the_last_bit() -> None:
    # the 95% z is a constant (no statistics import at start-up): the same float statistics computes
    from statistics import NormalDist

    for conf in (0.95, 0.9, 0.99):
        assert stats._z(conf) == NormalDist().inv_cdf(0.5 + conf / 2.0)
    assert stats.wilson(7, 40) == stats.wilson(7, 40, conf=0.95)


def test_wilson_edges() -> None:
    assert stats.wilson(0, 0) == (0.0, 1.0)
    assert stats.wilson(0, 20)[0] == 0.0
    assert stats.wilson(20, 20)[1] == 1.0


@given(st.integers(1, 500), st.data())
def test_wilson_contains_the_estimate(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    lo, hi = stats.wilson(k, n)
    assert 0 <= lo <= k / n <= hi <= 1


def test_clopper_pearson_is_wider_than_wilson() -> None:
    w = stats.wilson(3, 10)
    c = stats.clopper_pearson(3, 10)
    assert c[0] < w[0] and c[1] > w[1]
    assert c == pytest.approx((0.06673951, 0.65245285), abs=1e-6)


def _hypergeom_two_sided(a: int, n1: int, c: int, n2: int) -> float:
    """Fisher's two-sided p by summing hypergeometric tables no more likely than the observed one."""
    k = a + c
    n = n1 + n2

    def prob(x: int) -> float:
        return math.comb(n1, x) * math.comb(n2, k - x) / math.comb(n, k)

    p_obs = prob(a)
    return sum(prob(x) for x in range(max(0, k - n2), min(k, n1) + 1) if prob(x) <= p_obs * (1 + 1e-7))


@pytest.mark.parametrize(
    ("a", "n1", "c", "n2"), [(0, 20, 7, 20), (1, 10, 9, 10), (3, 20, 5, 20), (0, 5, 0, 5)]
)
def test_fisher_matches_explicit_hypergeometric_sum(a: int, n1: int, c: int, n2: int) -> None:
    assert stats.fisher_exact(a, n1, c, n2) == pytest.approx(_hypergeom_two_sided(a, n1, c, n2), rel=1e-9)


def test_fisher_one_sided() -> None:
    # P(X <= 0) for 0/20 vs 7/20: C(20,0)C(20,7)/C(40,7)
    expected = math.comb(20, 7) / math.comb(40, 7)
    assert stats.fisher_exact(0, 20, 7, 20, alternative="less") == pytest.approx(expected, rel=1e-9)


def test_describe_and_percentile() -> None:
    d = stats.describe([4.0, 1.0, 3.0, 2.0])
    assert d is not None
    assert (d.n, d.median, d.min, d.max, d.mean) == (4, 2.5, 1.0, 4.0, 2.5)
    assert d.p90 == pytest.approx(3.7)
    assert d.std == pytest.approx(math.sqrt(5 / 3))
    assert stats.describe([]) is None
    assert math.isnan(stats.percentile([], 50))


def test_describe_values_near_the_float_limit() -> None:
    """A workload's garbage step times (1e200, 1e308) overflowed the sum or the squares: the matrix
    report crashed with a traceback after every trial had run, and again on each resume."""
    d = stats.describe([1e200, 3e200])
    assert d is not None and d.mean == pytest.approx(2e200) and d.std == pytest.approx(math.sqrt(2) * 1e200)
    big = stats.describe([1.5e308, 1.7e308, -1e308])
    assert (
        big is not None
        and big.mean == pytest.approx(1.5e308 / 3 + 1.7e308 / 3 - 1e308 / 3)
        and math.isfinite(big.std)
    )
    tiny = stats.describe([3e-320, 5e-320])  # subnormals keep their mean
    assert tiny is not None and tiny.mean == pytest.approx(4e-320, rel=0.01)


def test_bootstrap_ratio_ci_is_deterministic_and_brackets() -> None:
    a = [2.0 + 0.01 * i for i in range(30)]
    b = [1.0 + 0.01 * i for i in range(30)]
    r1 = stats.bootstrap_ratio_ci(a, b, seed=3)
    r2 = stats.bootstrap_ratio_ci(a, b, seed=3)
    assert r1 == r2
    ratio, lo, hi = r1
    assert ratio == pytest.approx(2.145 / 1.145)
    assert lo <= ratio <= hi and lo > 1.5
    assert all(math.isnan(x) for x in stats.bootstrap_ratio_ci([], b))


def test_sprt_decides_both_ways() -> None:
    t = stats.SPRT(p0=0.1, p1=0.5)
    for _ in range(50):
        if t.update(True):
            break
    assert t.decision == "h1"
    u = stats.SPRT(p0=0.1, p1=0.5)
    for _ in range(100):
        if u.update(False):
            break
    assert u.decision == "h0" and u.n < 100


def test_sprt_error_rates_by_simulation() -> None:
    import random

    rng = random.Random(7)
    wrong = 0
    runs = 400
    for _ in range(runs):
        t = stats.SPRT(p0=0.1, p1=0.4, alpha=0.05, beta=0.05)
        while t.decision is None:
            t.update(rng.random() < 0.1)
        wrong += t.decision == "h1"
    assert wrong / runs < 0.08  # alpha = 0.05 (Wald's bound), with slack for 400 runs


def test_trials_to_separate() -> None:
    n = stats.trials_to_separate(0.3, 0.05)
    assert n is not None and 30 < n < 60
    assert stats.trials_to_separate(0.2, 0.2) is None


def test_trials_to_separate_extreme_rates_enough_for_fishers_test() -> None:
    """A matrix cell that timed out 3 of 3 (0%) against a baseline failing 3 of 3 (100%) was told
    "about 2 trials per cell would settle it": the normal approximation.  Fisher's exact test, the
    one the cells are judged by, needs 4 (0/4 against 4/4: p = 0.029)."""
    assert stats.trials_to_separate(1.0, 0.0) == 4
    assert stats.fisher_exact(0, 3, 3, 3) > 0.05 > stats.fisher_exact(0, 4, 4, 4)
    for p_a, p_b in ((0.9, 0.1), (1.0, 0.5), (0.05, 0.0)):
        n = stats.trials_to_separate(p_a, p_b)
        assert n is not None and stats.fisher_exact(round(p_a * n), n, round(p_b * n), n) < 0.05
