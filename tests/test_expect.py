"""``sleuth.expect``: a metric typo is caught before it costs a run (issue 7)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sleuth.expect import check_metrics, metric_regex_problem, ran_to_completion, wanted_metrics
from sleuth.model import MetricSpec, TrialResult, TrialSpec
from sleuth.oracle import OracleConfig, Threshold


@pytest.mark.parametrize(
    "pattern",
    ["step", "loss", r"step=\d+", r"\d+ms", r"loss: \S+ done", "e5"],
)
def test_a_regex_that_can_never_yield_a_number_is_named(pattern: str) -> None:
    assert metric_regex_problem(pattern) is not None


@pytest.mark.parametrize(
    "pattern",
    [
        "42",
        "nan",
        "inf",
        r"[0-9.]+",
        r"\d+",
        r"-?\d+(\.\d+)?",
        r"loss=([0-9.]+)",
        r"s?\d+",
        "a|1",
        r"\d+\.\d*",
        "",
    ],
)
def test_a_regex_that_may_yield_a_number_is_left_to_the_first_trial(pattern: str) -> None:
    assert metric_regex_problem(pattern) is None


@given(st.text(alphabet="ab1.=+-*?[]()\\ds", max_size=12))
def test_a_regex_named_as_hopeless_never_yields_a_number(pattern: str) -> None:
    """Soundness: whatever a flagged regex matches, its value is not a number."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "possible nested set": a random pattern, not ours
        try:
            rx = re.compile(pattern)
        except re.error:
            return
    if metric_regex_problem(pattern) is None:
        return
    for text in ("1", "12.5", "step=12", "a1", "1s", "ab", "-3", "1e5", "nan"):
        for m in rx.finditer(text):
            value = m.group(1) if rx.groups else m.group(0)
            if value:
                with pytest.raises(ValueError, match="could not convert"):
                    float(value)


def test_check_metrics_names_the_flag_and_lists_what_was_seen() -> None:
    wanted = wanted_metrics(
        (
            MetricSpec(name="step_ms", pattern=re.compile("x(1)")),
            MetricSpec(name="a", pattern=re.compile("(1)"), series=True),
        ),
        OracleConfig(
            thresholds=(
                Threshold(name="nope", limit=3, above=True),
                Threshold(name="loss", limit=1, above=False),
            )
        ),
    )
    assert wanted == [
        ("--metric", "step_ms"),
        ("--metric-series", "a"),
        ("--fail-above", "nope"),
        ("--fail-below", "loss"),
    ]
    msg = check_metrics({"loss", "step_ms"}, wanted)
    assert (
        msg
        == "--metric-series a: no trial produced a metric 'a' (nor --fail-above nope); metrics seen: loss, step_ms"
    )
    assert check_metrics({"loss", "step_ms", "a", "nope"}, wanted) is None
    assert (
        check_metrics(set(), [("--fail-above", "x")])
        == "--fail-above x: no trial produced a metric 'x'; metrics seen: none"
    )


def test_ran_to_completion_means_exit_0_on_its_own(tmp_path: Path) -> None:
    def result(**kw: object) -> TrialResult:
        base: dict[str, object] = dict(
            spec=TrialSpec(argv=("x",)),
            trial_dir=tmp_path,
            rc=0,
            signal=None,
            timed_out=False,
            started_at=0.0,
            wall_s=0.0,
            stdout_path=tmp_path / "o",
            stderr_path=tmp_path / "e",
        )
        return TrialResult(**{**base, **kw})  # type: ignore[arg-type]

    assert ran_to_completion(result())
    assert not ran_to_completion(result(rc=1))
    assert not ran_to_completion(result(rc=None, signal=9))
    assert not ran_to_completion(result(timed_out=True))
    assert not ran_to_completion(result(rc=None, error="command not found: x"))
