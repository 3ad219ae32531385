"""The compact per-trial data behind ``sleuth run``'s summary (issue 9: memory independent of --trials)."""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth import stats
from sleuth.run_tally import OTHER, Tally, describe, exit_code_of

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, max_size=300), st.sampled_from([1, 3, 7, 8192]))
def test_describe_equals_the_sorted_list_percentiles(values: list[float], chunk: int) -> None:
    import sleuth.run_tally as rt

    old, rt._CHUNK = rt._CHUNK, chunk  # small chunks exercise the lazy merge of sorted runs
    try:
        d = describe(array("d", values))
    finally:
        rt._CHUNK = old
    if not values:
        assert d == {"median": None, "p90": None, "min": None, "max": None, "n": 0}
        return
    assert d["n"] == len(values) and d["min"] == min(values) and d["max"] == max(values)
    assert d["median"] == pytest.approx(stats.percentile(values, 50), rel=1e-12, abs=1e-9)
    assert d["p90"] == pytest.approx(stats.percentile(values, 90), rel=1e-12, abs=1e-9)


def _rec(outcome: str, wall: float = 1.0, sig: str | None = None, **metrics: object) -> dict[str, object]:
    return {"outcome": outcome, "wall_s": wall, "signature": sig, "metrics": metrics}


def test_counts_rate_metrics_and_first_trial_of_each_signature() -> None:
    t = Tally(6)
    t.add(3, _rec("fail", 3.0, "exit 1: boom", loss="nan"))
    t.add(1, _rec("pass", 1.0, loss=0.5))
    t.add(5, _rec("fail", 5.0, "exit 1: boom", loss=[0.1, "inf", 0.2]))
    t.add(2, _rec("error", 99.0))
    t.add(6, _rec("fail", 2.0, "timeout"))
    s = t.summary(4)
    assert (s["trials"], s["pass"], s["fail"], s["error"], s["skip"]) == (5, 1, 3, 1, 0)
    assert s["failure_rate"] == pytest.approx(0.75)
    assert s["wall_s"]["max"] == 5.0, "an ERROR trial's wall time is not a measurement"
    assert s["metrics"]["loss"] == {
        "median": 0.2,
        "p90": 0.44,
        "min": 0.1,
        "max": 0.5,
        "n": 3,
        "nonfinite": 2,
    }
    assert s["signatures"] == {"exit 1: boom": 2, "timeout": 1}
    assert s["signature_first"] == {"exit 1: boom": "0003", "timeout": "0006"}
    assert t.first_fail == 3 and t.done(5) and not t.done(4) and t.outcome_of(2) == "error"


def test_a_trial_is_counted_once() -> None:
    t = Tally(2)
    t.add(1, _rec("pass"))
    with pytest.raises(ValueError, match="twice"):
        t.add(1, _rec("fail"))
    with pytest.raises(ValueError, match="outside"):
        t.add(3, _rec("pass"))


def test_distinct_signatures_are_bounded() -> None:
    t = Tally(1000)
    for n in range(1, 1001):
        t.add(n, _rec("fail", sig=f"exit 1: error mod_{n}x of a kind"))
    s = t.summary(4)
    assert len(s["signatures"]) == 200 and sum(s["signatures"].values()) == 1000
    assert s["signatures"][OTHER] == 801


@pytest.mark.parametrize(
    ("summary", "code"),
    [
        ({"fail": 0, "error": 0}, 0),
        ({"fail": 2, "error": 1}, 1),
        ({"fail": 0, "error": 1}, 4),
        ({"fail": 1, "interrupted": True}, 130),
        ({"fail": 1, "stopped": "--fail-above x: ..."}, 2),
    ],
)
def test_exit_codes(summary: dict[str, object], code: int) -> None:
    assert exit_code_of(summary) == code


def _series_rec(values: list[float], whole: int) -> dict[str, object]:
    """A trial record whose series ``loss`` kept ``values`` of a whole series of ``whole`` values."""
    return {"outcome": "pass", "wall_s": 1.0, "metrics": {"loss": values}, "series": {"loss": {"n": whole}}}


def test_series_values_pooled_over_trials_stay_bounded_and_say_what_they_summarise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sleuth.run_tally as rt

    monkeypatch.setattr(rt, "SAMPLE_MAX", 64)
    trials, keep = 300, 50
    t = Tally(trials)
    for n in range(1, trials + 1):
        t.add(n, _series_rec([float(n * 1000 + i) for i in range(keep)], whole=10_000))
        held = t._metrics["loss"].values
        assert len(held) < 2 * 64, f"after trial {n}: {len(held)} values held, over the bound"
    m = t.summary(4)["metrics"]["loss"]
    assert m["n"] == 64, "the median and p90 rest on the sample"
    assert m["pooled"] == trials * keep, "how many values the sample was drawn from"
    assert m["series_n"] == trials * 10_000, "how many values the trials' whole series had"
    assert (m["min"], m["max"]) == (1000.0, trials * 1000.0 + keep - 1), "min and max are exact"
    assert rt.basis(m) == f"64 of {trials * 10_000}"


def test_the_sample_is_seeded_and_independent_of_arrival_order(monkeypatch: pytest.MonkeyPatch) -> None:
    import sleuth.run_tally as rt

    monkeypatch.setattr(rt, "SAMPLE_MAX", 500)
    trials = 400
    recs = {
        n: _series_rec([float((n * 7919 + i * 104729) % 10007) for i in range(20)], 20) for n in range(1, 401)
    }
    summaries = []
    for order in (range(1, trials + 1), range(trials, 0, -1), sorted(recs, key=lambda n: (n * 37) % 401)):
        t = Tally(trials)
        for n in order:
            t.add(n, recs[n])
        summaries.append(t.summary(4)["metrics"]["loss"])
    assert summaries[0] == summaries[1] == summaries[2]
    m = summaries[0]
    assert (m["n"], m["pooled"], m["series_n"]) == (500, 8000, 8000)
    everything = [x for r in recs.values() for x in r["metrics"]["loss"]]  # type: ignore[index]
    assert m["median"] == pytest.approx(stats.percentile(everything, 50), rel=0.1), "a fair sample"
    assert m["p90"] == pytest.approx(stats.percentile(everything, 90), rel=0.1)


def test_a_pool_within_the_bound_is_summarised_in_full() -> None:
    t = Tally(3)
    for n in (1, 2, 3):
        t.add(n, _series_rec([float(n), float(n + 10)], whole=2))
    m = t.summary(4)["metrics"]["loss"]
    assert m == {"median": 7.0, "p90": 12.5, "min": 1.0, "max": 13.0, "n": 6, "series_n": 6}
    from sleuth.run_tally import basis

    assert basis(m) == "6"
