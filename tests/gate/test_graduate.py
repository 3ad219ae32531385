"""``graduate``: CV over the last N runs, OK only when the upper bound is below the target."""

from __future__ import annotations

import numpy as np
import pytest

from sleuth.gate.graduate import graduate
from sleuth.gate.model import Graduation
from sleuth.gate.robust import cv_runs_needed, cv_upper_bound

from .helpers import run, series


def test_empty_history_is_insufficient_only_for_named_metrics() -> None:
    assert graduate([], last=10) == []
    (r,) = graduate([], metrics=["allocs"], last=10)
    assert r.verdict is Graduation.INSUFFICIENT and r.needed == 10 and r.runs == 0


def test_single_run_needs_the_rest_of_the_window() -> None:
    (r,) = graduate(series("m", [5.0]), last=10)
    assert r.verdict is Graduation.INSUFFICIENT and r.needed == 9 and r.cv is None


def test_zero_variance_counter_graduates() -> None:
    (r,) = graduate(series("allocs", [3.0] * 10), last=10, target=0.01)
    assert r.verdict is Graduation.OK and r.cv == 0.0 and r.upper == 0.0


def test_cv_exactly_at_target_is_over() -> None:
    vals = [99.0, 101.0] * 5
    c = float(np.std(vals, ddof=1) / np.mean(vals))
    (r,) = graduate(series("m", vals), last=10, target=c)
    assert r.verdict is Graduation.OVER


def test_point_estimate_under_target_but_bound_over_is_insufficient_with_runs_needed() -> None:
    vals = [100.0, 100.8] * 5  # CV ~0.42 %, upper bound ~0.69 %
    (r,) = graduate(series("m", vals), last=10, target=0.006)
    assert r.verdict is Graduation.INSUFFICIENT
    assert r.cv is not None and r.cv < 0.006 < r.upper  # type: ignore[operator]
    total = cv_runs_needed(r.cv, 0.006)
    assert total is not None and r.needed == total - 10
    assert cv_upper_bound(r.cv, 10 + r.needed) < 0.006


def test_only_the_last_n_runs_count() -> None:
    noisy = [50.0, 150.0, 80.0, 120.0]
    stable = [100.0] * 10
    (r,) = graduate(series("m", noisy + stable), last=10)
    assert r.verdict is Graduation.OK and r.runs == 10


def test_run_value_is_the_median_of_its_samples() -> None:
    runs = [run(i, {"m": [100.0, 100.0, 100.0, 500.0]}) for i in range(10)]  # one outlier per run
    (r,) = graduate(runs, last=10)
    assert r.mean == 100.0 and r.verdict is Graduation.OK


def test_metric_globs_select_and_unmatched_patterns_are_insufficient() -> None:
    runs = [run(i, {"a:allocs/op": 3.0, "a:ns/op": 100.0 + i}) for i in range(10)]
    res = graduate(runs, metrics=["*:allocs/op", "missing"], last=10)
    assert [r.metric for r in res] == ["a:allocs/op", "missing"]
    assert res[1].verdict is Graduation.INSUFFICIENT and res[1].runs == 0


def test_constant_zero_counter_graduates() -> None:
    # Go's "0 B/op  0 allocs/op": the mean is 0, yet nothing varies; it stayed INSUFFICIENT for ever
    (r,) = graduate(series("allocs", [0.0] * 10), last=10, target=0.01)
    assert r.verdict is Graduation.OK and r.cv == 0.0 and r.upper == 0.0


def test_a_pytest_id_selects_itself() -> None:
    runs = [*series("t::x[case1]", [3.0] * 10), *series("t::x[a]", [2.0] * 10, start=10)]
    (r,) = graduate(runs, metrics=["t::x[case1]"], last=10)
    assert (r.metric, r.runs, r.verdict) == ("t::x[case1]", 10, Graduation.OK)


def test_non_positive_mean_cannot_graduate() -> None:
    (r,) = graduate(series("delta", [-1.0, 1.0] * 5), last=10)
    assert r.verdict is Graduation.INSUFFICIENT and r.needed is None and "mean" in r.reason


@pytest.mark.parametrize(("true_cv", "max_rate"), [(0.01, 0.06), (0.012, 0.03)])
def test_seeded_false_graduation_rate_of_the_bound_rule(true_cv: float, max_rate: float) -> None:
    rng = np.random.default_rng(17)
    graduated = 0
    reps = 2000
    for _ in range(reps):
        vals = (100.0 * (1 + true_cv * rng.standard_normal(10))).tolist()
        (r,) = graduate(series("m", vals), last=10, target=0.01)
        graduated += r.verdict is Graduation.OK
    assert graduated / reps <= max_rate
