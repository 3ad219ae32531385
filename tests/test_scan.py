"""Scanning big outputs: no match lost at a window edge (property-tested with tiny windows), a
match straddling the 4 MiB edge of a 50 MB line found, series kept bounded in memory and JSON."""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sleuth.model import SERIES_KEEP, MetricSpec, Outcome, Stream, Trial, TrialSpec
from sleuth.oracle import OracleConfig, build_oracle
from sleuth.runner import run_trial
from sleuth.scan import CHUNK, SeriesBuilder, find_first_line, iter_matches, metrics_from_files

# patterns whose matches are at most a few characters long (the overlap guarantees those)
PATTERNS = [
    r"loss is nan",
    r"^l\w{0,4}",
    r"\d{1,4}",
    r"s=(\d{1,3})",
    r"(?<=o)s\b",
    r"a$",
    r"nan\nl",
    r"x*",
    r"^$",
]
pieces = st.sampled_from(
    ["a", "b", " ", "\n", "l", "o", "s", "=", "0", "7", "é", "€", "loss is nan", "nan\nl"]
)
texts = st.lists(pieces, max_size=120).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=texts,
    pattern=st.sampled_from(PATTERNS),
    chunk=st.integers(1, 40),
    overlap=st.integers(12, 24),
)
def test_matches_are_those_of_the_whole_text_wherever_the_windows_fall(
    tmp_path: Path, text: str, pattern: str, chunk: int, overlap: int
) -> None:
    path = tmp_path / "out"
    path.write_text(text, encoding="utf-8")
    rx = re.compile(pattern, re.MULTILINE)
    got = [(m.group(0), m.groups()) for _t, m in iter_matches(path, rx, chunk_size=chunk, overlap=overlap)]
    assert got == [(m.group(0), m.groups()) for m in rx.finditer(text)]
    first = find_first_line([path], rx, chunk_size=chunk, overlap=overlap)
    m = rx.search(text)
    if m is None:
        assert first is None
    else:  # the line of the first match (as much of it as the window holds)
        assert first is not None and m.group(0) in first + "\n"
        line_start = text.rfind("\n", 0, m.start()) + 1
        assert text[line_start:].startswith(first) or first in text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(st.integers(-50, 50), min_size=1, max_size=80),
    chunk=st.integers(1, 30),
)
def test_a_series_streamed_through_small_windows_is_every_value_once(
    tmp_path: Path, values: list[int], chunk: int
) -> None:
    text = "".join(f"step loss={v}\n" for v in values)
    (tmp_path / "stdout").write_text(text)
    (tmp_path / "stderr").write_text("")
    spec = MetricSpec(name="loss", pattern=re.compile(r"loss=(-?\d+)"), series=True, stream=Stream.STDOUT)
    metrics, series = metrics_from_files(
        [spec], tmp_path / "stdout", tmp_path / "stderr", series_dir=tmp_path, chunk_size=chunk, overlap=16
    )
    assert metrics["loss"] == tuple(float(v) for v in values)
    full = [float(x) for x in (tmp_path / "metrics" / "loss.txt").read_text().split()]
    assert full == [float(v) for v in values]
    s = series["loss"]
    assert (s.n, s.first, s.last, s.min, s.max) == (
        len(values),
        values[0],
        values[-1],
        min(values),
        max(values),
    )


def _big_line_file(path: Path, size: int, at: int, needle: bytes) -> None:
    """One line of ``size`` bytes with ``needle`` at byte ``at``, written without holding it."""
    with open(path, "wb") as fh:
        block = b"x" * (1 << 20)
        written = 0
        while written < at:
            n = min(len(block), at - written)
            fh.write(block[:n])
            written += n
        fh.write(needle)
        written += len(needle)
        while written < size:
            n = min(len(block), size - written)
            fh.write(block[:n])
            written += n
        fh.write(b"\n")


def test_loss_is_nan_straddling_the_chunk_edge_of_a_50_mb_line_fails_the_trial(tmp_path: Path) -> None:
    """Issue 8 row 7: the needle across the 4 MiB edge of one 50 MB line was missed (PASS)."""
    needle = b"loss is nan"
    out = tmp_path / "big.log"
    _big_line_file(out, 50_000_000, CHUNK - 5, needle)
    cat = (
        sys.executable,
        "-c",
        f"import shutil,sys; shutil.copyfileobj(open({str(out)!r},'rb'), sys.stdout.buffer)",
    )
    r = run_trial(TrialSpec(argv=cat, env=dict(os.environ)), tmp_path / "t")
    assert r.rc == 0 and r.stdout_path.stat().st_size == 50_000_001
    oracle = build_oracle(OracleConfig(fail_regex=re.compile("loss is nan", re.M)))
    j = oracle.judge(r)
    assert j.outcome is Outcome.FAIL, j
    assert "loss is nan" in j.reason and len(j.reason) < 400  # one bounded line, not 50 MB


def test_a_huge_series_is_written_in_full_and_kept_bounded_in_json(tmp_path: Path) -> None:
    """Issue 8 row 7: 7.5 M matches peaked at 1.1 GB and wrote a 90 MB result.json."""
    n = 300_000
    script = (
        "import sys\n"
        f"w = sys.stdout.write\nfor i in range({n}):\n    w(f'step {{i}} loss={{(i % 1000) / 10 + 1}}\\n')\n"
        "w('step x loss=nan\\n')\n"
    )
    spec = MetricSpec(name="loss", pattern=re.compile(r"loss=([0-9.]+|nan)"), series=True)
    r = run_trial(
        TrialSpec(argv=(sys.executable, "-c", script), env=dict(os.environ), metrics=(spec,)), tmp_path / "t"
    )
    assert r.rc == 0
    kept = r.metrics["loss"]
    assert isinstance(kept, tuple) and len(kept) <= SERIES_KEEP + 5
    s = r.series["loss"]
    assert (s.n, s.nonfinite, s.min, s.max, s.file) == (n + 1, 1, 1.0, 100.9, "metrics/loss.txt")
    assert math.isnan(s.last) and math.isnan(kept[-1])  # the last value is kept, NaN and all
    assert min(x for x in kept if math.isfinite(x)) == 1.0 and max(kept) == 100.9  # extremes kept
    assert s.mean is not None and abs(s.mean - 50.95) < 1e-6
    # the even sample has the whole series' median, near enough for step-time statistics
    assert abs(statistics.median(x for x in kept if math.isfinite(x)) - 50.95) < 2.0
    lines = (tmp_path / "t" / "metrics" / "loss.txt").read_text().split()
    assert len(lines) == n + 1 and lines[0] == "1.0" and lines[-1] == "nan"
    record = Trial(result=r, outcome=Outcome.PASS).to_dict()
    text = json.dumps(record)
    assert len(text) < 100_000  # bounded whatever n is
    assert record["series"]["loss"]["n"] == n + 1 and record["metrics"]["loss"][-1] == "nan"


def test_the_sample_holds_first_last_extremes_and_first_nonfinite_in_order() -> None:
    b = SeriesBuilder(keep=10)
    xs = [float(i % 97) for i in range(1000)]
    xs[500] = 1000.0
    xs[501] = -5.0
    xs[777] = math.inf
    for i in range(0, 1000, 64):
        b.add(xs[i : i + 64])
    kept, s = b.result(None)
    assert len(kept) <= 15
    assert kept[0] == xs[0] and kept[-1] == xs[-1]
    assert 1000.0 in kept and -5.0 in kept and math.inf in kept
    assert kept.index(1000.0) < kept.index(-5.0) < kept.index(math.inf)  # series order
    assert (s.n, s.min, s.max, s.nonfinite, s.kept) == (1000, -5.0, 1000.0, 1, len(kept))
