"""The speed confound over the whole step-time distribution: tails, and too few timings said aloud."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sleuth.matrix.aggregate import CellStats
from sleuth.matrix.result import analyze
from sleuth.matrix.speed import MIN_STEP_SAMPLES, TOO_FEW, quantile_ratios, speed_confound
from tests.matrix.conftest import recipe_data
from tests.matrix.test_matrix_multiple import plan_of, records


def timed(name: str, steps: list[float], n_judged: int | None = None) -> CellStats:
    n = len(steps) if n_judged is None else n_judged
    return CellStats(name=name, n_pass=n, n_target=0, n_other=0, n_error=0, n_skip=0, step_times=tuple(steps))


def jitter(rng: random.Random, n: int, scale: float = 1.0) -> list[float]:
    return [100.0 * scale * rng.uniform(0.95, 1.05) for _ in range(n)]


def test_a_slowdown_in_a_quarter_of_the_trials_is_flagged() -> None:
    """The bug: a quarter of the trials 3x slower has a median ratio of 1.00 and was not flagged."""
    rng = random.Random(3)
    base = timed("base", jitter(rng, 40))
    cell = timed("c", jitter(rng, 30) + jitter(rng, 10, 3.0))
    cf = speed_confound(cell, base, threshold=1.15, seed=1)
    assert cf.ratio == pytest.approx(1.0, abs=0.05)  # the median does not see it
    assert cf.ci is not None and cf.ci[0] < 1.15
    assert cf.p90_ratio is not None and cf.p90_ratio > 2.5
    assert cf.flagged and cf.by == "p90"
    assert cf.label == f"speed (p90 +{round((cf.p90_ratio - 1) * 100)}%)"
    assert cf.superiority == pytest.approx(0.5 + 0.25 / 2, abs=0.08)  # P(slower): a quarter of the time


def test_a_uniform_slowdown_is_flagged_by_the_median_and_noise_is_not() -> None:
    rng = random.Random(4)
    base = timed("base", jitter(rng, 20))
    slow = speed_confound(timed("c", jitter(rng, 20, 1.3)), base, threshold=1.15, seed=2)
    assert (
        slow.flagged
        and slow.by == "median"
        and slow.label == f"speed (+{round((slow.ratio or 0) * 100 - 100)}%)"
    )
    assert slow.superiority == pytest.approx(1.0)
    same = speed_confound(timed("c", jitter(rng, 20)), base, threshold=1.15, seed=2)
    assert not same.flagged and same.label is None and same.rank_p is not None and same.rank_p > 0.01


def test_too_few_timings_is_said_not_silent() -> None:
    """The bug: a cell with fewer than 3 timed trials was never flagged, and nothing said why."""
    base = timed("base", [100.0, 101.0, 99.0, 100.0])
    cf = speed_confound(timed("c", [400.0, 410.0], n_judged=5), base, threshold=1.15)
    assert MIN_STEP_SAMPLES == 3
    assert cf.too_few and not cf.flagged and cf.label == TOO_FEW == "too few timings"
    assert cf.ratio == pytest.approx(405 / 100)  # medians, shown without an interval
    assert (cf.n_cell, cf.n_base) == (2, 4)
    # a cell that ran nothing has nothing to say about speed
    assert speed_confound(timed("c", [], n_judged=0), base, threshold=1.15).label is None
    # in a matrix: the confound column and the cell's warnings say it
    plan = plan_of([{"name": "baseline"}, {"name": "c", "extra_env": {"X": "1"}}], trials=3)
    steps = {("c", 1): 1.0, ("c", 2): 1.0}
    recs = [
        replace(r, step_time=steps.get((r.cell, r.index)))
        for r in records("baseline", 0, 3) + records("c", 0, 3)
    ]
    res = analyze(plan, recs)
    row = res.cell("c")
    assert row.confound.label == "too few timings"
    assert any(w.startswith("too few timings: 2 here, 0 in baseline") for w in row.warnings)


def test_quantile_ratios_match_numpy() -> None:
    import numpy as np

    a, b = [1.0, 2.0, 3.0, 4.0, 10.0], [1.0, 1.0, 2.0, 2.0, 2.0]
    (r50, lo50, hi50), (r90, _, _) = quantile_ratios(a, b, seed=0, n_boot=200)
    assert r50 == pytest.approx(np.quantile(a, 0.5) / np.quantile(b, 0.5))
    assert r90 == pytest.approx(np.quantile(a, 0.9) / np.quantile(b, 0.9))
    assert lo50 <= r50 <= hi50
    assert quantile_ratios(a, b, seed=0, n_boot=200) == quantile_ratios(a, b, seed=0, n_boot=200)


def test_step_times_near_the_float_limit_still_give_a_report(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path]
) -> None:
    """Garbage step times (1e200: their squares overflow) crashed the report with a traceback after
    every trial had run, and every resume crashed the same way: the matrix could never be read."""
    data = recipe_data(trials=3)
    data["cells"] = data["cells"][:2]
    data["workload"]["env"].update({"WORK_STEP": "1e200", "WORK_FAIL_P": "0"})
    res = sleuth("matrix", "--recipe", write_recipe(data), "--json")
    assert res.rc == 3 and "Traceback" not in res.stderr and "Warning" not in res.stderr, res.stderr
    assert res.json()["cells"][0]["step_time"]["median"] == pytest.approx(1e200, rel=0.1)


@pytest.mark.parametrize(
    ("base_steps", "cell_steps", "why"),
    [
        ([0.0] * 4, [5.0, 5.5, 6.0, 5.0], "the baseline's median step time is 0"),
        ([0.0] * 2, [5.0, 6.0], "the baseline's median step time is 0"),  # too few timings: said first
        ([1e-300] * 4, [1e300] * 4, "1e+300 / 1e-300 is past the float range"),
    ],
)
def test_an_undefined_ratio_says_why(base_steps: list[float], cell_steps: list[float], why: str) -> None:
    """A baseline whose step times are 0 (or a ratio past the float range) gave a ratio of null in
    the JSON and nothing in the confound column: silence that reads as "no slowdown"."""
    from sleuth.matrix.output import _confound_json

    cf = speed_confound(timed("c", cell_steps), timed("base", base_steps), threshold=1.15, seed=1)
    assert cf.ratio is None and cf.undefined == why and _confound_json(cf)["ratio_undefined"] == why
    assert cf.label == (TOO_FEW if cf.too_few else f"ratio undefined: {why}")
