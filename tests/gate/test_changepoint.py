"""Change points: deterministic, calibrated, robust to AR(1) noise and spikes, incremental."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import lfilter

from sleuth.gate import cpnull
from sleuth.gate._cpnull_table import TABLE
from sleuth.gate.changepoint import Incremental, Settings, detect, segment_test


def _ar(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    e = rng.standard_normal(n + 200)
    return lfilter([1.0], [1.0, -rho], e)[200:] * math.sqrt(1 - rho * rho)


def _step(n: int = 60, at: int = 30, size: float = 4.0, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    x = 100.0 + rng.standard_normal(n)
    x[at:] += size
    return x.tolist()


def test_a_step_is_found_where_it_is_with_medians_and_p_value() -> None:
    (cp,) = detect(_step())
    assert abs(cp.index - 30) <= 1
    assert cp.before == pytest.approx(100.0, abs=1.0) and cp.after == pytest.approx(104.0, abs=1.0)
    assert 0 < cp.p_value <= 0.01
    assert set(cp.to_dict()) == {"index", "before", "after", "p_value"}


def test_several_steps_including_an_up_then_down_bump() -> None:
    rng = np.random.default_rng(3)
    x = 100.0 + rng.standard_normal(200)
    x[50:] += 5
    x[120:140] += 5  # a 20-point bump
    x[140:] -= 5
    found = [cp.index for cp in detect(x.tolist())]
    for truth in (50, 120, 140):
        assert any(abs(f - truth) <= 2 for f in found), (truth, found)
    assert len(found) == 3


def test_same_input_same_answer_across_processes() -> None:
    x = _step(n=300, at=123, size=1.5, seed=5)
    here = [cp.to_dict() for cp in detect(x)]
    code = (
        "import json, sys; from sleuth.gate.changepoint import detect; "
        "print(json.dumps([c.to_dict() for c in detect(json.loads(sys.stdin.read()))]))"
    )
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code], input=json.dumps(x), capture_output=True, text=True, check=True
        )
        assert json.loads(out.stdout) == here


def test_constant_short_and_empty_series_have_no_change_point() -> None:
    assert detect([5.0] * 50) == []
    assert detect([1.0, 2.0, 3.0]) == []
    assert detect([]) == []
    assert segment_test([1.0] * 9) == (0, 1.0)


def test_integer_counter_step_is_found_despite_ties() -> None:
    x = [3.0] * 25 + [4.0] * 25
    (cp,) = detect(x)
    assert cp.index == 25 and (cp.before, cp.after) == (3.0, 4.0)


def test_non_finite_points_are_skipped_and_indices_kept() -> None:
    x = _step()
    x[10] = math.nan
    x[40] = math.inf
    (cp,) = detect(x)
    assert abs(cp.index - 30) <= 1


def test_spikes_do_not_make_change_points_seeded() -> None:
    rng = np.random.default_rng(11)
    false = points = 0
    for _ in range(40):
        x = 100.0 * (1 + 0.02 * rng.standard_normal(150))
        hit = rng.random(150) < 0.03
        x[hit] *= 1 + rng.uniform(0.2, 0.6, hit.sum())
        false += len(detect(x.tolist()))
        points += 150
    assert 1000 * false / points <= 1.0


def test_a_burst_shorter_than_min_segment_is_not_a_segment() -> None:
    rng = np.random.default_rng(12)
    for _ in range(10):
        x = 100.0 + rng.standard_normal(80)
        x[40:43] += 20  # 3 slow runs in a row
        assert detect(x.tolist(), Settings(min_segment=5)) == []


@pytest.mark.parametrize("rho", [0.3, 0.6])
def test_ar1_noise_does_not_flood_alerts_seeded(rho: float) -> None:
    """<= 1 false change point per 1000 points from 100 points on (30-point series: see docs/gate.md)."""
    rng = np.random.default_rng(13)
    false = points = 0
    for n, reps in ((100, 100), (300, 30)):
        for _ in range(reps):
            false += len(detect(_ar(rng, n, rho).tolist()))
            points += n
    assert 1000 * false / points <= 1.0, (rho, 1000 * false / points)


def test_ar1_short_series_false_alarms_stay_bounded_seeded() -> None:
    """At 30 points an AR(1) 0.6 runner is hard to tell from a step: fewer than 1 in 10 series."""
    rng = np.random.default_rng(21)
    false = sum(len(detect(_ar(rng, 30, 0.6).tolist())) for _ in range(150))
    assert false / 150 <= 0.1


def test_segment_test_is_calibrated_under_the_null_seeded() -> None:
    rng = np.random.default_rng(14)
    for n in (12, 40, 150):
        ps = [segment_test((100 + rng.standard_normal(n)).tolist())[1] for _ in range(600)]
        for alpha in (0.05, 0.1):
            rate = float(np.mean(np.asarray(ps) <= alpha))
            assert rate <= alpha + 0.03, (n, alpha, rate)


def test_segment_test_has_power_against_a_2_sigma_step() -> None:
    rng = np.random.default_rng(15)
    hits = 0
    for _ in range(100):
        x = rng.standard_normal(60)
        x[30:] += 2.0
        hits += segment_test(x.tolist())[1] <= 0.01
    assert hits >= 90


def test_shipped_table_matches_a_fresh_permutation_run() -> None:
    fresh = cpnull.build_table([20, 64], permutations=4000)
    for n in (20, 64):
        for level_i, level in enumerate(cpnull.TABLE_LEVELS):
            if level < 0.01:
                continue  # 4000 permutations cannot pin the far tail
            assert fresh[n][level_i] == pytest.approx(TABLE[n][level_i], rel=0.06), (n, level)


def test_table_p_values_are_conservative_at_a_discrete_atom() -> None:
    # n = 10: the largest statistic is shared by every level from 0.005 down; its p is not 0.0005
    qs = TABLE[10]
    assert cpnull._table_p(qs[-1], qs) >= 0.005
    assert cpnull._table_p(0.0, qs) == 1.0
    assert cpnull._table_p(qs[-1] + 10, TABLE[cpnull.grid_length(200)]) == cpnull.TABLE_LEVELS[-1]


def test_other_min_segment_and_ties_use_seeded_runtime_permutations() -> None:
    x = _step(n=40, at=20, size=3.0, seed=2)
    a = segment_test(x, Settings(min_segment=4))
    b = segment_test(x, Settings(min_segment=4))
    assert a == b and a[1] <= 0.01
    ties = [1.0, 2.0] * 10 + [2.0, 3.0] * 10
    assert segment_test(ties)[1] == segment_test(ties)[1]


def test_grid_length_rounds_up() -> None:
    for n in (10, 40, 41, 100, 999, 2000):
        g = cpnull.grid_length(n)
        assert g >= n and (n <= 40 or g <= math.ceil(n * 1.07))
    assert all(n in TABLE for n in cpnull.table_lengths())


# --- incremental --------------------------------------------------------------------------------


def test_incremental_reports_a_step_once_soon_after_it() -> None:
    x = _step(n=90, at=50, size=4.0, seed=7)
    det = Incremental()
    reports = []
    for i, v in enumerate(x):
        for cp in det.extend([v]):
            reports.append((i, cp.index))
    assert len(reports) == 1
    seen_at, index = reports[0]
    assert abs(index - 50) <= 1
    assert seen_at - 50 <= 8  # confirmed a few points after the change


def test_incremental_state_round_trips() -> None:
    x = _step(n=120, at=70, size=4.0, seed=8)
    a = Incremental()
    a.extend(x[:60])
    b = Incremental.from_dict(json.loads(json.dumps(a.to_dict())))
    assert [cp.index for cp in a.extend(x[60:])] == [cp.index for cp in b.extend(x[60:])]
    assert a.to_dict() == b.to_dict()


def test_incremental_start_equals_offline_and_then_continues() -> None:
    x = _step(n=100, at=40, size=4.0, seed=9)
    det, found = Incremental.start(x)
    assert [c.index for c in found] == [c.index for c in detect(x)]
    assert det.seen == 100
    more = (np.asarray(x[-30:]) + 6.0).tolist()
    new = det.extend(more)
    assert len(new) == 1 and abs(new[0].index - 100) <= 1


def test_incremental_work_is_bounded_by_the_window() -> None:
    det = Incremental(settings=Settings(window=50))
    det.extend((100 + np.random.default_rng(1).standard_normal(500)).tolist())
    assert len(det.values) <= 50 and det.seen == 500


def test_settings_are_validated() -> None:
    for bad in ({"alpha": 0}, {"alpha": 1.5}, {"min_segment": 1}, {"window": 10}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Settings(**bad)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=-5, max_value=5) | st.floats(min_value=-1e3, max_value=1e3), max_size=60)
)
def test_midranks_equal_scipy_rankdata(xs: list[float]) -> None:
    from scipy.stats import rankdata

    assert cpnull.midranks(xs).tolist() == rankdata(xs).tolist()


@settings(max_examples=25, deadline=None)
@given(
    st.permutations(range(36)), st.integers(min_value=1, max_value=4), st.integers(min_value=0, max_value=9)
)
def test_incremental_state_after_any_recording_order_is_the_from_scratch_one(
    order: list[int], batch: int, seed: int
) -> None:
    """Runs recorded in any order (a backfilled run has an older time than those seen, so the store
    puts it in the middle): whenever the series no longer starts with what the state saw, the
    answer and the state are the from-scratch ones; otherwise the state extends; and the state's
    points are always the series' own.  (The state kept its positions and slid them onto the wrong
    runs: a change point one run off, or never reported.)"""
    from sleuth.gate.service import Series, changepoints

    x = _step(n=36, at=18, size=6.0, seed=seed)
    s = Settings()
    state: dict | None = None
    model: Incremental | None = None
    seen: list[int] = []
    for k in range(0, len(order), batch):
        now = sorted(seen + order[k : k + batch])  # the store reads runs in time order
        series = Series(tuple(x[i] for i in now), tuple(f"r{i}" for i in now))
        found, state = changepoints(series, s, state=state, incremental=True)
        if model is not None and now[: len(seen)] == seen:
            want = model.extend(list(series.values[len(seen) :]))
        else:
            model, want = Incremental.start(series.values, s)
        assert found == want
        assert {k: v for k, v in state.items() if k != "series"} == model.to_dict()
        assert state["values"] == [series.values[i] for i in state["positions"]]
        seen = now
    _, scratch_state = changepoints(series, s, incremental=True)
    fresh = Incremental.start(series.values, s)[0].to_dict()
    assert {k: v for k, v in scratch_state.items() if k != "series"} == fresh  # type: ignore[union-attr]


def test_a_state_from_before_fingerprints_is_kept_when_its_tail_fits() -> None:
    from sleuth.gate.service import Series, changepoints

    x = _step(n=40, at=25, size=6.0, seed=3)
    first = Series(tuple(x[:30]), tuple(map(str, range(30))))
    _, state = changepoints(first, Settings(), incremental=True)
    assert state is not None
    old = {k: v for k, v in state.items() if k != "series"}  # as an older sleuth wrote it
    whole = Series(tuple(x), tuple(map(str, range(40))))
    new, _ = changepoints(whole, Settings(), state=old, incremental=True)
    assert new == Incremental.from_dict(old).extend(x[30:])  # extended, not rebuilt
