"""Parsers of benchmark output, on real tool output (tests/gate/data, see its README) and on garbage."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth.gate.formats import parse
from sleuth.gate.ingest import read_files

from .conftest import DATA


def _samples(p):  # metric -> (unit, values)
    return {s.metric: (s.unit, list(s.values)) for s in p.samples}


def test_go_bench_text_every_line_and_unit() -> None:
    text = (DATA / "go-bench.txt").read_text()
    p = parse(text)
    assert p.format == "go" and p.skipped == 0
    got = _samples(p)
    # expected straight from the file: every Benchmark line, every value/unit pair, -N suffix dropped
    want: dict[str, list[float]] = {}
    for line in text.splitlines():
        m = re.match(r"^(Benchmark\S*?)-\d+\s+\d+\s+(.*)$", line)
        if m:
            toks = m.group(2).split()
            for v, u in zip(toks[::2], toks[1::2], strict=True):
                want.setdefault(f"{m.group(1)}:{u}", []).append(float(v))
    assert {k: v for k, (_, v) in got.items()} == want
    assert got["BenchmarkDetector:allocs/event"] == ("allocs/event", [3.0, 3.0, 3.0])
    assert got["BenchmarkParse/small:ns/op"][0] == "ns/op"
    assert len(got["BenchmarkParse/large:B/op"][1]) == 3  # -count=3


def test_go_cpu_list_keeps_one_metric_per_gomaxprocs() -> None:
    # `go test -bench . -cpu 1,2,4` (Go prints no suffix for 1): three configurations were one metric
    text = "".join(
        f"BenchmarkX{sfx}  100  {ns} ns/op\n" for sfx, ns in [("", 100), ("-2", 55), ("-4", 30)] * 2
    )
    text += "BenchmarkY-8  100  5 ns/op\nBenchmarkParse/size-1024  10  7 ns/op\nBenchmarkParse/size-2048  10  9 ns/op\n"
    assert _samples(parse(text)) == {
        "BenchmarkX-1:ns/op": ("ns/op", [100.0, 100.0]),
        "BenchmarkX-2:ns/op": ("ns/op", [55.0, 55.0]),
        "BenchmarkX-4:ns/op": ("ns/op", [30.0, 30.0]),
        "BenchmarkY:ns/op": ("ns/op", [5.0]),  # one GOMAXPROCS: the suffix goes, as before
        # a one-core runner prints no suffix: two sub-benchmarks were merged as "size" at -1024, -2048
        "BenchmarkParse/size-1024:ns/op": ("ns/op", [7.0]),
        "BenchmarkParse/size-2048:ns/op": ("ns/op", [9.0]),
    }


def test_go_test_json_events() -> None:
    p = parse((DATA / "go-bench-json.txt").read_text())
    got = _samples(p)
    assert p.format == "go" and p.skipped == 0
    assert got["BenchmarkDetector:ns/op"][1] == [142.3, 172.2]
    assert got["BenchmarkParse/large:allocs/op"][1] == [2.0, 2.0]


def test_go_garbage_lines_are_counted_not_fatal() -> None:
    text = (DATA / "go-bench.txt").read_text()
    noisy = (
        "some log line\n"
        + text
        + "BenchmarkBroken-2  100  12 ns/op  oops\n\x00\x01binary junk\nBenchmarkX-4 10 abc ns/op\n"
    )
    p = parse(noisy)
    assert p.format == "go"
    assert p.skipped == 4
    assert _samples(p) == _samples(parse(text))
    assert "some log line" in p.examples[0]


def test_pytest_benchmark_raw_rounds() -> None:
    doc = json.loads((DATA / "pytest-benchmark.json").read_text())
    p = parse((DATA / "pytest-benchmark.json").read_text())
    assert p.format == "pytest-benchmark" and p.skipped == 0
    got = _samples(p)
    for b in doc["benchmarks"]:
        assert got[b["fullname"]] == ("s", b["stats"]["data"])


def test_pytest_benchmark_without_saved_data_uses_the_median() -> None:
    doc = json.loads((DATA / "pytest-benchmark.json").read_text())
    for b in doc["benchmarks"]:
        del b["stats"]["data"]
    got = _samples(parse(json.dumps(doc)))
    assert got["test_pb.py::test_fib"] == ("s", [doc["benchmarks"][0]["stats"]["median"]])


def test_google_benchmark_repetitions_not_aggregates() -> None:
    doc = json.loads((DATA / "gbench.json").read_text())
    p = parse((DATA / "gbench.json").read_text())
    assert p.format == "google-benchmark" and p.skipped == 0
    got = _samples(p)
    its = [
        b for b in doc["benchmarks"] if b["run_type"] == "iteration" and b["run_name"] == "BM_StringCopy/8"
    ]
    assert got["BM_StringCopy/8:real_time"] == ("ns", [b["real_time"] for b in its])
    assert got["BM_StringCopy/8:cpu_time"][1] == [b["cpu_time"] for b in its]
    assert got["BM_StringCopy/8:bytes"][1] == [8.0, 8.0, 8.0]  # a user counter
    assert not any("_mean" in k or "_cv" in k for k in got)


def test_google_benchmark_aggregates_only_uses_the_median() -> None:
    doc = json.loads((DATA / "gbench.json").read_text())
    doc["benchmarks"] = [b for b in doc["benchmarks"] if b["run_type"] == "aggregate"]
    med = next(
        b for b in doc["benchmarks"] if b.get("aggregate_name") == "median" and b["run_name"] == "BM_Empty"
    )
    got = _samples(parse(json.dumps(doc)))
    assert got["BM_Empty:real_time"][1] == [med["real_time"]]


def test_google_benchmark_error_entry_is_skipped() -> None:
    doc = json.loads((DATA / "gbench.json").read_text())
    doc["benchmarks"].append(
        {
            "name": "BM_Bad",
            "run_name": "BM_Bad",
            "run_type": "iteration",
            "error_occurred": True,
            "error_message": "boom",
        }
    )
    p = parse(json.dumps(doc))
    assert p.skipped == 1 and "BM_Bad:real_time" not in _samples(p)


def test_hyperfine_times() -> None:
    doc = json.loads((DATA / "hyperfine.json").read_text())
    got = _samples(parse((DATA / "hyperfine.json").read_text()))
    assert got == {r["command"]: ("s", r["times"]) for r in doc["results"]}


def test_sleuth_run_json_metrics_and_wall_time() -> None:
    doc = json.loads((DATA / "sleuth-run.json").read_text())
    p = parse((DATA / "sleuth-run.json").read_text())
    assert p.format == "sleuth-run"
    got = _samples(p)
    assert got["step_ms"][1] == [t["metrics"]["step_ms"] for t in doc["trials"]]
    assert got["wall_s"] == ("s", [t["wall_s"] for t in doc["trials"]])


def test_sleuth_run_error_trials_measure_nothing() -> None:
    doc = json.loads((DATA / "sleuth-run.json").read_text())
    doc["trials"][0]["outcome"] = "error"
    got = _samples(parse(json.dumps(doc)))
    assert len(got["wall_s"][1]) == len(doc["trials"]) - 1


def test_generic_csv_header_comments_units_and_garbage() -> None:
    text = (
        "metric,value,unit\n# a comment\nstep,1.5,ms\nstep,2.5,ms\nloss,0.1\n\nnot,a,number,row\nstep,abc\n"
    )
    p = parse(text)
    assert p.format == "csv"
    assert _samples(p) == {"step": ("ms", [1.5, 2.5]), "loss": ("", [0.1])}
    assert p.skipped == 2


def test_generic_json_shapes() -> None:
    a = parse(
        json.dumps([{"metric": "m", "value": [1, 2], "unit": "s"}, {"metric": "n", "value": 3}, {"oops": 1}])
    )
    assert _samples(a) == {"m": ("s", [1.0, 2.0]), "n": ("", [3.0])} and a.skipped == 1
    b = parse(json.dumps({"metrics": [{"metric": "m", "value": 1}]}))
    assert _samples(b) == {"m": ("", [1.0])}
    c = parse(json.dumps({"m": 1, "n": [2, 3], "bad": "x", "flag": True}))
    assert _samples(c) == {"m": ("", [1.0]), "n": ("", [2.0, 3.0])} and c.skipped == 2


def test_non_finite_values_are_not_samples() -> None:
    p = parse('[{"metric": "m", "value": [1, NaN, Infinity]}]')
    assert _samples(p) == {"m": ("", [1.0])} and p.skipped == 1


def test_truncated_json_counts_one_skipped_entry() -> None:
    text = (DATA / "hyperfine.json").read_text()
    p = parse(text[: len(text) // 2])
    assert p.samples == () and p.skipped == 1


def test_empty_and_binary_files_are_not_errors(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "bin.dat").write_bytes(bytes(range(256)) * 4)
    got = read_files([tmp_path / "empty.txt", tmp_path / "bin.dat"])
    assert got.samples == ()
    assert got.skipped >= 1
    assert [f["file"] for f in got.files] == ["empty.txt", "bin.dat"]


def test_a_byte_order_mark_is_not_data(tmp_path: Path) -> None:
    # Windows editors and PowerShell's Out-File start UTF-8 with a BOM: a JSON file became garbage
    bom = b"\xef\xbb\xbf"
    (tmp_path / "r.json").write_bytes(bom + b'[{"metric": "a", "value": 1}]')
    (tmp_path / "b.txt").write_bytes(bom + b"BenchmarkX-8  100  12 ns/op\n")
    (tmp_path / "h.csv").write_bytes(bom + b"metric,value\nc,3\n")
    got = read_files([tmp_path / "r.json", tmp_path / "b.txt", tmp_path / "h.csv"])
    assert {s.metric: s.values for s in got.samples} == {
        "a": (1.0,),
        "BenchmarkX:ns/op": (12.0,),
        "c": (3.0,),
    }
    assert [f["format"] for f in got.files] == ["json", "go", "csv"] and got.skipped == 0


def test_csv_names_quoted_as_csv_writers_quote_them() -> None:
    # csv.writer and pandas quote a name holding a comma or a quote: it was skipped as garbage, and a
    # quoted pytest id kept its quotes (so --metric and policy keys never matched it)
    text = '"sort -t, -k2",0.51,s\n"say ""hi""",2\n"tests/t.py::test_x[case1]",3\n"unclosed,4\n'
    p = parse(text, "csv")
    assert _samples(p) == {
        "sort -t, -k2": ("s", [0.51]),
        'say "hi"': ("", [2.0]),
        "tests/t.py::test_x[case1]": ("", [3.0]),
    }
    assert p.skipped == 1


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("m,1\nm,2\n")
    (tmp_path / "b.csv").write_text("m,3\n")
    got = read_files([tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "." / "a.csv"])
    assert {s.metric: s.values for s in got.samples} == {"m": (1.0, 2.0, 3.0)}  # not 1, 2, 3, 1, 2
    assert [f["file"] for f in got.files] == ["a.csv", "b.csv"]


def test_read_files_merges_a_metric_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("m,1\n")
    (tmp_path / "b.csv").write_text("m,2\nn,3\n")
    got = read_files([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert {s.metric: s.values for s in got.samples} == {"m": (1.0, 2.0), "n": (3.0,)}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_parses_without_raising(text: str) -> None:
    p = parse(text)
    assert p.skipped >= 0
    for s in p.samples:
        assert all(math.isfinite(v) for v in s.values)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=20,
    )
)
def test_any_json_document_parses_without_raising(doc: object) -> None:
    for wrapped in (
        doc,
        {"benchmarks": doc},
        {"results": doc},
        {"trials": doc, "summary": {}},
        {"benchmarks": doc, "context": {}},
    ):
        text = json.dumps(wrapped)
        parse(text)


def test_go_sub_benchmark_suffix_is_its_name_unless_the_file_agrees() -> None:
    # a one-core runner prints no -GOMAXPROCS: a lone size-1024 sub-benchmark was recorded as "size"
    one_core = "BenchmarkParse/size-1024  10  7 ns/op\nBenchmarkParse/size-1024  10  8 ns/op\nBenchmarkY  10  5 ns/op\n"
    assert set(_samples(parse(one_core))) == {"BenchmarkParse/size-1024:ns/op", "BenchmarkY:ns/op"}
    # the same benchmarks on an 8-core runner: the suffix every line shares goes
    eight = "BenchmarkParse/size-1024-8  10  7 ns/op\nBenchmarkY-8  10  5 ns/op\n"
    assert set(_samples(parse(eight))) == {"BenchmarkParse/size-1024:ns/op", "BenchmarkY:ns/op"}
    # sub-benchmarks only, each ending in another -N: names; all ending in -4: GOMAXPROCS 4
    subs = "BenchmarkA/n-10  10  1 ns/op\nBenchmarkB/n-20  10  2 ns/op\n"
    assert set(_samples(parse(subs))) == {"BenchmarkA/n-10:ns/op", "BenchmarkB/n-20:ns/op"}
    subs4 = "BenchmarkA/n-4  10  1 ns/op\nBenchmarkB/m-4  10  2 ns/op\n"
    assert set(_samples(parse(subs4))) == {"BenchmarkA/n:ns/op", "BenchmarkB/m:ns/op"}
    # a sub-benchmark whose suffixes are the -cpu list of the top-level ones: one metric per GOMAXPROCS
    cpu = "".join(
        f"Benchmark{n}{s}  10  {i} ns/op\n"
        for i, (n, s) in enumerate([(n, s) for n in ("X", "P/small") for s in ("", "-2")])
    )
    assert set(_samples(parse(cpu))) == {
        "BenchmarkX-1:ns/op",
        "BenchmarkX-2:ns/op",
        "BenchmarkP/small-1:ns/op",
        "BenchmarkP/small-2:ns/op",
    }


#: the value of $DEPLOY_TOKEN (no token shape: only its variable's name makes it secret)
_SHELL_SECRET = "Zq7deploySecretValue4242xxAB"
_TOKEN = "ghp_" + "K" * 36


def _straddling(secret: str, cut: int = 120, head: str = "") -> str:
    """Words (after ``head``), then ``secret`` from 10 characters before ``cut`` on."""
    pad = cut - 10 - len(head)
    return head + ("w " * cut)[: pad - 1] + " " + secret + " tail"


def test_skipped_line_examples_hide_a_secret_before_they_are_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    """A skipped line (or JSON entry) kept as an example is hidden by the rule, then cut to 120
    characters: cut first, the start of a secret that straddled the cut stayed (``ghp_KKKKKK``)."""
    monkeypatch.setenv("DEPLOY_TOKEN", _SHELL_SECRET)
    text = (DATA / "go-bench.txt").read_text()
    lines = [_straddling(_TOKEN), _straddling(_SHELL_SECRET)]
    go = parse("\n".join(lines) + "\n" + text)
    assert go.format == "go" and go.skipped == 2
    prefix = '{"metric": 1, "note": "'  # an entry without a value: skipped, kept as its JSON
    entry = {"metric": 1, "note": _straddling(_TOKEN, head=prefix)[len(prefix) :]}
    generic = parse(json.dumps({"metrics": [entry, {"metric": "m", "value": 1.0}]}))
    assert generic.skipped == 1 and json.dumps(entry).index(_TOKEN) < 120 < json.dumps(entry).index(" tail")
    examples = [*go.examples, *generic.examples]
    assert len(examples) == 3 and all(0 < len(x) <= 120 for x in examples), examples
    for x in examples:
        assert "<redac" in x, x
        for secret in (_TOKEN, _SHELL_SECRET):
            assert not any(secret[i : i + 6] in x for i in range(len(secret) - 5)), x
