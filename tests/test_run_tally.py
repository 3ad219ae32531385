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
