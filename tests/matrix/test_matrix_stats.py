"""Per-cell statistics and classification against hand-computed values."""

from __future__ import annotations

import math
import random

import pytest

from sleuth.matrix.aggregate import CellStats, TrialRecord, aggregate, dominant_signature
from sleuth.matrix.classify import Classification, GroupSequential, classify, speed_confound
from sleuth.model import Outcome


def cell(
    name: str,
    n_pass: int,
    n_target: int,
    *,
    n_other: int = 0,
    n_error: int = 0,
    steps: tuple[float, ...] = (),
) -> CellStats:
    return CellStats(
        name=name,
        n_pass=n_pass,
        n_target=n_target,
        n_other=n_other,
        n_error=n_error,
        n_skip=0,
        step_times=steps,
    )


def fisher_two_sided(a: int, n_a: int, b: int, n_b: int) -> float:
    """Fisher's exact test by explicit hypergeometric sum: P(tables at most as likely as the observed)."""
    k, n = a + b, n_a + n_b

    def prob(x: int) -> float:
        return math.comb(n_a, x) * math.comb(n_b, k - x) / math.comb(n, k)

    observed = prob(a)
    lo, hi = max(0, k - n_b), min(k, n_a)
    return sum(prob(x) for x in range(lo, hi + 1) if prob(x) <= observed * (1 + 1e-7))


def test_fisher_matches_the_explicit_hypergeometric_sum() -> None:
    # 0/20 vs 8/20: only tables with x=0 (and the mirror x=8) are as extreme; by hand
    # P(x=0) = C(20,0)C(20,8)/C(40,8) = 125970/76904685 = 0.0016380
    assert fisher_two_sided(0, 20, 8, 20) == pytest.approx(2 * 125970 / 76904685, rel=1e-9)
    d = classify(cell("fix", 20, 0), cell("base", 12, 8))
    assert d.classification is Classification.FIXED
    assert d.p_value == pytest.approx(fisher_two_sided(0, 20, 8, 20), rel=1e-9)
    assert d.p_value == pytest.approx(0.003276, abs=1e-6)
    for a, na, b, nb in [(2, 8, 1, 8), (3, 30, 12, 30), (1, 10, 6, 11), (5, 5, 0, 7)]:
        p = classify(cell("c", na - a, a), cell("base", nb - b, b)).p_value
        assert p == pytest.approx(fisher_two_sided(a, na, b, nb), rel=1e-9)


def test_failure_rate_wilson_interval_by_hand() -> None:
    c = cell("c", 7, 3, n_error=2)
    assert c.failure_rate == pytest.approx(0.3)
    lo, hi = c.failure_rate_ci()
    # Wilson 3/10, z = 1.959964: centre 0.355508, half-width 0.247715
    assert (lo, hi) == (pytest.approx(0.107791, abs=1e-6), pytest.approx(0.603222, abs=1e-6))
    assert c.error_rate == pytest.approx(2 / 12)


def test_two_of_eight_versus_one_of_eight_is_not_a_fix() -> None:
    d = classify(cell("c", 7, 1), cell("base", 6, 2))
    assert d.classification is Classification.INCONCLUSIVE
    assert d.p_value == pytest.approx(1.0)
    # two-proportion normal approximation for 0.25 vs 0.125 at alpha 0.05, power 0.8, by hand:
    # (1.959964*sqrt(2*.1875*.8125) + 0.841621*sqrt(.25*.75+.125*.875))^2 / .125^2 = 151.9
    assert d.trials_needed == 152
    assert "152 trials per cell" in d.note


def test_worse() -> None:
    d = classify(cell("c", 6, 14), cell("base", 18, 2))
    assert d.classification is Classification.WORSE
    assert d.p_value == pytest.approx(fisher_two_sided(14, 20, 2, 20), rel=1e-9)


def test_a_nan_turned_into_an_oom_is_not_a_fix() -> None:
    base = cell("base", 12, 8)
    oom = CellStats(
        name="c", n_pass=0, n_target=0, n_other=20, n_error=0, n_skip=0, step_times=(),
        signature_counts={"exit 1: torch.OutOfMemoryError": 20},
    )  # fmt: skip
    d = classify(oom, base)
    assert d.classification is Classification.WORSE
    assert "torch.OutOfMemoryError" in d.note


def test_no_effect_needs_enough_trials() -> None:
    # powered to detect halving 0.4 -> 0.2: about 82 trials per cell, by the same formula
    assert classify(cell("c", 58, 42), cell("base", 60, 40)).classification is Classification.NO_EFFECT
    d = classify(cell("c", 6, 4), cell("base", 6, 4))
    assert d.classification is Classification.INCONCLUSIVE
    assert d.trials_needed == 82


def test_error_and_baseline_rows() -> None:
    base = cell("base", 6, 4)
    broken = CellStats(name="b", n_pass=0, n_target=0, n_other=0, n_error=3, n_skip=0, step_times=(),
                       errors=("command not found: nope",))  # fmt: skip
    d = classify(broken, base)
    assert (d.classification, d.note) == (Classification.ERROR, "command not found: nope")
    assert classify(base, base).classification is Classification.BASELINE
    never = classify(cell("c", 10, 0), cell("base", 10, 0))
    assert never.classification is Classification.INCONCLUSIVE
    assert "neither" in never.note


def rec(outcome: Outcome, sig: str | None = None, step: float | None = None, i: int = 0) -> TrialRecord:
    return TrialRecord(
        cell="c", index=i, outcome=outcome, signature=sig, status="exit 0", wall_s=1.0, step_time=step
    )


def test_aggregate_counts_only_the_target_signature() -> None:
    records = [
        rec(Outcome.PASS, step=1.0),
        rec(Outcome.FAIL, "output: loss is nan", step=2.0),
        rec(Outcome.FAIL, "exit 1: MemoryError"),
        rec(Outcome.ERROR),
        rec(Outcome.PASS, step=3.0),
    ]
    s = aggregate("c", records, None, regex_oracle=True)
    assert (s.n_pass, s.n_target, s.n_other, s.n_error) == (2, 1, 1, 1)
    assert s.failure_rate == pytest.approx(1 / 4)
    assert s.other_rate == pytest.approx(1 / 4)
    assert s.error_rate == pytest.approx(1 / 5)
    assert s.step_times == (1.0, 2.0, 3.0)
    assert s.signature_counts == {"output: loss is nan": 1, "exit 1: MemoryError": 1}
    by_exit = aggregate("c", records, "exit 1: MemoryError", regex_oracle=False)
    assert (by_exit.n_target, by_exit.n_other) == (1, 1)
    assert by_exit.failure_rate == pytest.approx(1 / 4)


def test_dominant_signature() -> None:
    recs = [rec(Outcome.FAIL, "b"), rec(Outcome.FAIL, "a"), rec(Outcome.FAIL, "b"), rec(Outcome.PASS)]
    assert dominant_signature(recs) == "b"
    assert dominant_signature([rec(Outcome.FAIL, "b"), rec(Outcome.FAIL, "a")]) == "a"
    assert dominant_signature([rec(Outcome.PASS)]) is None


def test_step_time_from_a_journal_record() -> None:
    d = {"outcome": "pass", "rc": 0, "signal": None, "timed_out": False, "wall_s": 2.5,
         "metrics": {"step_time": [3.0, 1.0, 2.0, float("nan")]}, "signature": None}  # fmt: skip
    assert TrialRecord.from_dict("c", 0, d, "regex:x").step_time == 2.0
    assert TrialRecord.from_dict("c", 0, d, "wall_s").step_time == 2.5
    assert TrialRecord.from_dict("c", 0, {**d, "metrics": {"t": 4}}, "metric:t").step_time == 4.0
    assert TrialRecord.from_dict("c", 0, {**d, "signal": 11}, "wall_s").status == "signal 11"


def test_speed_confound() -> None:
    base = cell("base", 10, 0, steps=(1.0, 1.1, 0.9, 1.05, 0.95, 1.0))
    slow = cell("slow", 10, 0, steps=(4.0, 4.2, 3.9, 4.1, 4.0, 3.8))
    c = speed_confound(slow, base, threshold=1.15)
    assert c.flagged
    assert c.ratio == pytest.approx(4.0 / 1.0)
    assert c.ci is not None
    assert c.ci[0] > 1.15
    assert c.label == "speed (+300%)"
    same = speed_confound(cell("same", 10, 0, steps=(1.02, 0.98, 1.1, 0.9, 1.0)), base, threshold=1.15)
    assert not same.flagged
    assert same.label is None
    few = speed_confound(cell("few", 10, 0, steps=(9.0, 9.0)), base, threshold=1.15)
    assert few.ratio == pytest.approx(9.0)
    assert not few.flagged
    assert speed_confound(cell("none", 1, 0), base, threshold=1.15).ratio is None


def test_noisy_slowdown_below_the_threshold_is_not_flagged() -> None:
    base = cell("base", 1, 0, steps=(1.0, 1.3, 0.8, 1.2, 0.9, 1.1, 1.0))
    bit_slower = cell("c", 1, 0, steps=(1.2, 1.4, 0.9, 1.3, 1.0, 1.25, 1.1))
    c = speed_confound(bit_slower, base, threshold=1.15)
    assert c.ratio is not None
    assert c.ratio > 1.0
    assert not c.flagged


def test_group_sequential_looks_and_alpha() -> None:
    rule = GroupSequential(alpha=0.05)
    assert rule.looks(20) == [5, 10, 15, 20]
    levels = [rule.alpha_at(n, 20) for n in rule.looks(20)]
    # the interim looks spend their shares; the last look's share is left to Holm at the end
    assert levels == [pytest.approx(0.005), pytest.approx(0.01), pytest.approx(0.01), None]
    assert rule.share_at(20, 20) == pytest.approx(0.5)
    assert sum(rule.share_at(n, 20) for n in rule.looks(20)) == pytest.approx(1.0)
    assert rule.alpha_at(7, 20) is None
    # few trials: fractions share looks, and the shares still sum to one
    assert rule.looks(2) == [1, 2]
    assert rule.alpha_at(1, 2) == pytest.approx(0.05 * 0.3)
    assert rule.share_at(2, 2) == pytest.approx(0.7)
    # the end spends the smallest last-look share of any cell (valid for every cell)
    assert rule.final_share([20, 2]) == pytest.approx(0.5)
    assert "Bonferroni" in rule.describe(0.5) and "Holm" in rule.describe(0.5)
    # with three cells each interim look is split three ways (Bonferroni across cells)
    three = GroupSequential(alpha=0.05, family=3)
    assert three.alpha_at(5, 20) == pytest.approx(0.005 / 3)


def test_group_sequential_stops_a_clear_fix_early() -> None:
    rule = GroupSequential(alpha=0.05)
    stop = rule.stop(cell("c", 10, 0), cell("base", 1, 9), planned=40)
    assert stop is not None
    level, p, lower = stop
    assert level == pytest.approx(0.005) and lower is True
    assert p == pytest.approx(fisher_two_sided(0, 10, 9, 10), rel=1e-9)
    assert rule.stop(cell("c", 6, 4), cell("base", 5, 5), planned=40) is None
    assert rule.stop(cell("c", 9, 0), cell("base", 1, 8), planned=40) is None  # not a look
    assert rule.stop(cell("c", 40, 0), cell("base", 1, 39), planned=40) is None  # the end: Holm's


def test_group_sequential_keeps_the_false_decision_rate_under_alpha() -> None:
    """Under H0 (equal rates) the chance of stopping with a decision at any look is at most alpha."""
    rule = GroupSequential(alpha=0.05)
    rng = random.Random(1234)
    planned, p, sims, decided = 24, 0.35, 600, 0
    for _ in range(sims):
        base_fails = [rng.random() < p for _ in range(planned)]
        cell_fails = [rng.random() < p for _ in range(planned)]
        for n in rule.looks(planned):
            b, c = sum(base_fails[:n]), sum(cell_fails[:n])
            look = rule.stop(cell("c", n - c, c), cell("base", n - b, b), planned)
            if look is not None:
                decided += 1
                break
    assert decided / sims <= 0.05


def test_error_and_skip_trials_have_no_step_time() -> None:
    """A trial that could not start (0.002 s) must not make a cell look faster."""

    def rec(i: int, outcome: Outcome, wall: float) -> TrialRecord:
        return TrialRecord(
            cell="c", index=i, outcome=outcome, signature=None, status="x", wall_s=wall, step_time=wall
        )

    records = [rec(1, Outcome.PASS, 2.0), rec(2, Outcome.FAIL, 3.0), rec(3, Outcome.ERROR, 0.002)]
    records.append(rec(4, Outcome.SKIP, 0.01))
    s = aggregate("c", records, None, False)
    assert s.step_times == (2.0, 3.0)
    d = s.step()
    assert d is not None and d.median == 2.5


def test_a_cell_that_ran_nothing_yet_is_inconclusive_not_an_error() -> None:
    """Interrupted before any of their trials finished: no cell failed to run."""
    nothing = cell("c", 0, 0)
    d = classify(nothing, cell("base", 6, 4))
    assert (d.classification, d.note) == (Classification.INCONCLUSIVE, "no trial has finished yet")
    assert classify(cell("d", 6, 0), nothing).note == "the baseline has no pass/fail trials"
    assert classify(nothing, nothing).note == "no baseline trial has finished yet"


def test_a_baseline_that_could_not_run_says_why() -> None:
    base = CellStats(name="base", n_pass=0, n_target=0, n_other=0, n_error=3, n_skip=0, step_times=(),
                     errors=("command not found: x",))  # fmt: skip
    d = classify(base, base)
    assert d.classification is Classification.BASELINE
    assert d.note == "the baseline could not run: command not found: x"
    assert classify(cell("base", 3, 1), cell("base", 3, 1)).note == ""
