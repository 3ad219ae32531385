"""Risky user regexes (``.*Error`` on a long line, ``(a+)+b``) scan in linear time: RE2 finds where
each match starts, Python's ``re`` matches only there, and the matches are those of ``re`` alone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sleuth import scan
from sleuth.linear import Twin, twin
from sleuth.model import MetricSpec, Stream
from sleuth.scan import find_first_line, iter_matches, metrics_from_files

pytestmark = pytest.mark.skipif(twin(re.compile(".*x")) is None, reason="no google-re2 wheel here")

RISKY = [
    r".*Error",
    r".*?l(o+)s",
    r"(a+)+b",
    r"\d+\.\d+",
    r"(\w+)=(\S+)",
    r"[^\n]*é",
    r"(?i).*ERROR: (\w+)",
    r"\s+x\b",
    r"(?s)a.*?b",
    r"(?:^|,)\s*(\d+)$",
    r"\bo+|s\B",
    r"[A-Fa-f0-9]{2,}",
]
pieces = st.sampled_from(
    ["a", "b", "ab", " ", "\n", "\r", "\t", "\x0b", "\x1c", "l", "o", "s", "=", ",", "0", "7", ".",
     "é", "€", "٣", "Error", "error: x", "\u212a", "\u017f", "x"]  # Kelvin sign, long s: (?i) folds them in re
)  # fmt: skip
texts = st.lists(pieces, max_size=80).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, pattern=st.sampled_from(RISKY), chunk=st.integers(1, 40), overlap=st.integers(12, 24))
def test_the_matches_are_those_of_re_over_the_whole_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, text: str, pattern: str, chunk: int, overlap: int
) -> None:
    rx = re.compile(pattern, re.MULTILINE)
    tw = twin(rx)
    assert tw is not None
    monkeypatch.setattr(Twin, "locate", lambda _self, _data: True)  # short lines too: the twin locates
    path = tmp_path / "out"
    path.write_bytes(text.encode())
    got = [(m.span(), m.groups()) for _t, m in iter_matches(path, rx, chunk_size=chunk, overlap=overlap)]
    whole = [(m.span(), m.groups()) for m in rx.finditer(text)]
    if all(m.end() - m.start() <= overlap for m in rx.finditer(text)):  # the windows' guarantee
        assert [g for _s, g in got] == [g for _s, g in whole]
    big = [(m.span(), m.groups()) for _t, m in iter_matches(path, rx)]  # one window
    assert big == whole


@pytest.mark.parametrize("flags", [0, re.ASCII, re.IGNORECASE])
@pytest.mark.parametrize(
    "pattern", [r"\d", r"\w", r"\s", r"\D", r"\W", r"\S", r"[\d_]", r"[^\s]", r"x\b.", r".\Bx", r"[^a-c]"]
)
def test_classes_mean_the_same_in_the_twin_for_every_ascii_character(pattern: str, flags: int) -> None:
    rx = re.compile(pattern, flags)
    tw = twin(re.compile(f".*{pattern}", flags))  # made risky, so it has a twin
    assert tw is not None
    for code in range(128):
        for text in (chr(code), f"x{chr(code)}", f"{chr(code)}x", chr(code).upper()):
            assert (tw.rx.search(text.encode()) is not None) == (rx.search(text) is not None), (pattern, text)


class _NoSearch:
    """A pattern that ``re`` may only *match* at given positions: a search over the window (what
    takes ``re`` exponential time on ``(a+)+b``) fails the test at once."""

    def __init__(self, rx: re.Pattern[str]) -> None:
        self._rx = rx
        self.pattern, self.flags, self.groups = rx.pattern, rx.flags, rx.groups
        self.matched_at: list[int] = []

    def match(self, text: str, pos: int = 0) -> Any:
        self.matched_at.append(pos)
        return self._rx.match(text, pos)

    def finditer(self, *_a: Any) -> Any:
        raise AssertionError("re searched the whole window")

    search = finditer


@pytest.mark.parametrize(
    ("pattern", "text", "starts"),
    [
        (r"(a+)+b", "a" * 100_000 + "\n", []),  # exponential in re: years
        (r"(a+)+b", "a" * 50 + "b\n", [0]),
        (r".*Error", "\r 45%|████▌ | 10/20 [00:10<00:12, loss=0.5]" * 20_000, []),  # quadratic: minutes
        (r".*Error", "ok\n" + "x" * 200_000 + "Error\n", [3]),
    ],
)
def test_a_risky_pattern_is_only_matched_where_a_match_starts(
    tmp_path: Path, pattern: str, text: str, starts: list[int]
) -> None:
    path = tmp_path / "out"
    path.write_text(text, encoding="utf-8")
    rx = _NoSearch(re.compile(pattern, re.MULTILINE))
    found = [m.start() for _t, m in iter_matches(path, rx)]  # type: ignore[arg-type]
    assert found == starts == rx.matched_at


def test_fail_regex_and_metrics_on_a_progress_bar_line(tmp_path: Path) -> None:
    bar = "".join(f"\r{i}/40000 [00:10<00:12, loss={i / 1000:.3f}]" for i in range(40_000))
    (tmp_path / "stdout").write_text(bar + "\nRuntimeError: CUDA error\n", encoding="utf-8")
    (tmp_path / "stderr").write_text("")
    assert find_first_line([tmp_path / "stdout"], re.compile(r".*Error: (.*)", re.M)) == (
        "RuntimeError: CUDA error"
    )
    spec = MetricSpec(name="loss", pattern=re.compile(r".*loss=([0-9.]+)\]$", re.M), stream=Stream.STDOUT)
    metrics, _ = metrics_from_files([spec], tmp_path / "stdout", tmp_path / "stderr")
    assert metrics == {"loss": 39.999}


def test_a_safe_pattern_keeps_plain_re() -> None:
    assert twin(re.compile(r"loss=([0-9.]+)", re.M)) is None
    assert twin(re.compile(r"Traceback", re.M)) is None
    assert twin(re.compile(r"(?<=x).*y", re.M)) is None  # no RE2 twin for a look-behind
    assert scan.twin is twin
