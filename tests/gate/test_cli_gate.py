"""``sleuth gate`` end to end as a subprocess, the same commands against SQLite, a directory and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from .conftest import DATA

GO = DATA / "go-bench.txt"


def _csv_runs(
    tmp: Path, values: list[float], *, metric: str = "install_s", counter: list[int] | None = None
) -> list[Path]:
    out = []
    for i, v in enumerate(values):
        p = tmp / f"run{i:02d}.csv"
        lines = [f"{metric},{v},s"]
        if counter is not None:
            lines.append(f"allocs,{counter[i]},count")
        p.write_text("metric,value,unit\n" + "\n".join(lines) + "\n")
        out.append(p)
    return out


def _record_all(
    sleuth: Callable, db: str, files: list[Path], suite: str = "s", start: int = 0, *, tmp: Path | None = None
) -> None:
    """Record run ``r{i}`` per file in one ``record --from-dir`` call (the artifact layout, written by hand)."""
    tree = (tmp or files[0].parent) / f"artifacts-{suite}-{start}"
    for i, f in enumerate(files, start):
        folder = tree / f"bench-raw-{i}"
        folder.mkdir(parents=True)
        shutil.copy(f, folder / f.name)
        meta = {
            "suite": suite,
            "run_id": f"r{i:02d}",
            "created_at": f"2025-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
            "status": "success",
            "branch": "main",
            "files": [f.name],
        }
        (folder / "sleuth-gate.json").write_text(json.dumps(meta))
    r = sleuth("gate", "record", "--from-dir", tree, "--json", "--db", db)
    assert r.rc == 0, r.stderr
    assert len(r.json()["recorded"]) == len(files)


def test_record_graduate_check_changepoints_runs_on_every_store(
    sleuth: Callable, store_url: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    values = [round(280 + 5 * float(x), 2) for x in rng.standard_normal(12)]
    _record_all(sleuth, store_url, _csv_runs(tmp_path, values, counter=[3] * 12))
    runs = sleuth("gate", "runs", "--suite", "s", "--db", store_url, "--json").json()
    assert [r["run_id"] for r in runs["runs"]] == [f"r{i:02d}" for i in range(12)]

    grad = sleuth(
        "gate", "graduate", "--suite", "s", "--target-cv", "1%", "--mode", "hard", "--json", "--db", store_url
    )
    by = {m["metric"]: m for m in grad.json()["metrics"]}
    assert by["allocs"]["verdict"] == "OK" and by["allocs"]["cv"] == 0.0
    assert by["install_s"]["verdict"] == "OVER"  # CV ~1.8 %
    assert grad.rc == 1

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "metrics:\n  install_s:\n    budget: {max: 300, runs: 10, rule: median}\n    regression: null\n"
        "  allocs:\n    kind: counter\n"
    )
    chk = sleuth("gate", "check", "--suite", "s", "--policy", policy, "--json", "--db", store_url)
    assert chk.rc == 0, chk.stdout + chk.stderr
    doc = chk.json()
    assert doc["counts"]["PASS"] == 2 and doc["exit_code"] == 0

    cp = sleuth("gate", "changepoints", "--suite", "s", "--metric", "install_s", "--json", "--db", store_url)
    assert cp.rc == 0 and cp.json()["change_points"] == []


def test_tracecore_style_go_bench_flow(sleuth: Callable, store_url: str, tmp_path: Path) -> None:
    """12 runs of go test -bench -count=10 output: record, graduate the counter, check a median budget."""
    example = Path(__file__).parents[2] / "examples" / "gate-tracecore"
    files = sorted((example / "runs").glob("run-*.txt"))
    assert len(files) == 12
    _record_all(sleuth, store_url, files, suite="detectors", tmp=tmp_path)
    grad = sleuth(
        "gate",
        "graduate",
        "--suite",
        "detectors",
        "--metric",
        "*:allocs/event",
        "--mode",
        "hard",
        "--json",
        "--db",
        store_url,
    )
    assert grad.rc == 0, grad.stdout
    assert {m["verdict"] for m in grad.json()["metrics"]} == {"OK"}
    chk = sleuth(
        "gate",
        "check",
        "--suite",
        "detectors",
        "--policy",
        example / "policy.yaml",
        "--json",
        "--db",
        store_url,
    )
    doc = chk.json()
    budget = next(
        f
        for m in doc["metrics"]
        if m["metric"] == "BenchmarkDetector:ns/op"
        for f in m["findings"]
        if f["check"] == "budget"
    )
    assert budget["n"] == 10 and budget["verdict"] in ("PASS", "INCONCLUSIVE", "FAIL")
    assert chk.rc == doc["exit_code"]


def test_regression_and_change_point_are_found(sleuth: Callable, store_url: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    values = [round(100 + float(x), 3) for x in rng.standard_normal(30)]
    values = values[:20] + [v + 8 for v in values[20:]]  # a step at run 20
    files = _csv_runs(tmp_path, values, metric="step_ms")
    for i, f in enumerate(files):  # a second metric that regressed in the last 3 runs
        f.write_text(f.read_text() + f"latest_ms,{100 + (i % 3) + (9 if i >= 27 else 0)},ms\n")
    _record_all(sleuth, store_url, files)
    cp = sleuth(
        "gate",
        "changepoints",
        "--suite",
        "s",
        "--metric",
        "step_ms",
        "--json",
        "--db",
        store_url,
        "--fail-on-change",
    )
    assert cp.rc == 1
    (found,) = cp.json()["change_points"]
    assert abs(found["index"] - 20) <= 1 and found["run_id"] == f"r{found['index']:02d}"
    assert found["after"] > found["before"] + 5 and found["p_value"] <= 0.01
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics:\n  latest_ms:\n    regression: {baseline_runs: 10, recent_runs: 3}\n")
    chk = sleuth("gate", "check", "--suite", "s", "--policy", policy, "--json", "--db", store_url)
    assert chk.rc == 1
    (reg,) = chk.json()["metrics"][0]["findings"]
    assert reg["verdict"] == "FAIL" and reg["q_value"] <= 0.05 and reg["shift_interval"][0] > 0


def test_incremental_changepoints_keep_state_in_the_store(
    sleuth: Callable, store_url: str, tmp_path: Path
) -> None:
    values = [100.0, 100.5, 99.5, 100.2, 99.8] * 5 + [110.0, 110.4, 109.6, 110.2, 109.9, 110.1, 110.3]
    files = _csv_runs(tmp_path, values, metric="m")
    _record_all(sleuth, store_url, files[:25])
    args = (
        "gate",
        "changepoints",
        "--suite",
        "s",
        "--metric",
        "m",
        "--incremental",
        "--json",
        "--db",
        store_url,
    )
    assert sleuth(*args).json()["change_points"] == []
    for i in range(25, len(values)):
        _record_all(sleuth, store_url, files[i : i + 1], start=i)
        out = sleuth(*args).json()["change_points"]
        if out:
            assert out[0]["index"] == 25
            break
    else:
        pytest.fail("the step was never reported")
    assert sleuth(*args).json()["change_points"] == []  # reported once


def test_no_history_is_insufficient_exit_3_and_creates_nothing(sleuth: Callable, tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics:\n  m: {}\n")
    db = f"sqlite:///{tmp_path / 'h' / 'x.db'}"
    grad = sleuth("gate", "graduate", "--suite", "s", "--mode", "hard", "--db", db)
    assert grad.rc == 3 and "INSUFFICIENT" in grad.stdout
    assert sleuth("gate", "graduate", "--suite", "s", "--db", db).rc == 0  # soft mode
    chk = sleuth("gate", "check", "--suite", "s", "--policy", policy, "--json", "--db", db)
    assert chk.rc == 3
    (m,) = chk.json()["metrics"]
    assert m["verdict"] == "INSUFFICIENT" and m["runs_needed"] == 11
    cp = sleuth("gate", "changepoints", "--suite", "s", "--metric", "m", "--db", db, "--json")
    assert cp.rc == 3 and cp.json()["verdict"] == "INSUFFICIENT" and cp.json()["runs_needed"] == 10
    inc = sleuth("gate", "changepoints", "--suite", "s", "--metric", "m", "--incremental", "--db", db)
    assert inc.rc == 3 and "INSUFFICIENT" in inc.stdout  # no history, so no state to keep: nothing made
    assert not (tmp_path / "h").exists()


def test_default_store_is_sqlite_under_dot_sleuth(sleuth: Callable, tmp_path: Path) -> None:
    r = sleuth("gate", "record", "--suite", "s", "--run-id", "1", "--no-provenance", GO)
    assert r.rc == 0 and (tmp_path / ".sleuth" / "history.db").is_file()
    env_db = f"dir://{tmp_path / 'envdb'}"
    r = sleuth(
        "gate",
        "record",
        "--suite",
        "s",
        "--run-id",
        "2",
        "--no-provenance",
        GO,
        env={"SLEUTH_GATE_DB": env_db},
    )
    assert r.rc == 0 and (tmp_path / "envdb" / "s" / "2.json").is_file()


def test_record_defaults_from_github_actions_and_provenance(sleuth: Callable, tmp_path: Path) -> None:
    from tests.badinput import assert_no_secret

    token = "ghp_abcdefghijklmnopqrstuvwxyz123456"
    env = {
        "GITHUB_RUN_ID": "777",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_SHA": "abc123",
        "GITHUB_REF_NAME": "main",
        "RUNNER_NAME": f"gpu-runner-1 {token}",
        "GITHUB_TOKEN": token,
    }
    db = f"dir://{tmp_path / 'd'}"
    r = sleuth("gate", "record", "--suite", "s", GO, "--status", "failure", "--db", db, env=env)
    assert r.rc == 0, r.stderr
    doc = json.loads((tmp_path / "d" / "s" / "777-2.json").read_text())
    assert (doc["commit"], doc["branch"], doc["status"]) == ("abc123", "main", "failure")
    assert doc["provenance"]["runner"]["RUNNER_NAME"].startswith("gpu-runner-1 ")  # kept, the token hidden
    assert "gpu" in doc["provenance"] and "host" in doc["provenance"]
    assert_no_secret(token, r.stdout, r.stderr, roots=[tmp_path / "d"])


def test_record_counts_garbage_and_keeps_a_run_without_samples(sleuth: Callable, tmp_path: Path) -> None:
    noisy = tmp_path / "noisy.txt"
    noisy.write_text("starting\n" + GO.read_text() + "panic: something\n\x00\x07\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    db = f"dir://{tmp_path / 'd'}"
    r = sleuth(
        "gate", "record", "--suite", "s", "--run-id", "1", "--no-provenance", "--json", "--db", db, noisy
    )
    (rec,) = r.json()["recorded"]
    assert rec["skipped_lines"] == 3 and rec["metrics"] == 10
    r = sleuth(
        "gate",
        "record",
        "--suite",
        "s",
        "--run-id",
        "2",
        "--status",
        "failure",
        "--no-provenance",
        "--db",
        db,
        empty,
    )
    assert r.rc == 0 and "no samples" in r.stdout
    again = sleuth("gate", "record", "--suite", "s", "--run-id", "1", "--no-provenance", "--db", db, noisy)
    assert again.rc == 0 and "already recorded" in again.stdout


def test_emit_metadata_then_from_dir_with_missing_artifacts(
    sleuth: Callable, store_url: str, tmp_path: Path
) -> None:
    dl = tmp_path / "download"
    for i in range(4):
        out = tmp_path / f"bench-{i}.txt"
        shutil.copy(GO, out)
        r = sleuth(
            "gate",
            "record",
            "--emit-metadata",
            dl / f"bench-raw-{100 + i}",
            "--suite",
            "det",
            "--run-id",
            str(100 + i),
            "--created-at",
            f"2025-02-01T00:00:0{i}Z",
            "--branch",
            "main",
            "--no-provenance",
            out,
        )
        assert r.rc == 0, r.stderr
    (dl / "bench-raw-200").mkdir()  # gh run download left an empty folder (expired artifact)
    (dl / "stray").mkdir()
    (dl / "stray" / "out.txt").write_text("no metadata here\n")
    (dl / "bench-raw-101" / "sleuth-gate.json").write_text("{broken")
    (dl / "bench-raw-103" / "bench-3.txt").unlink()  # listed file missing
    r = sleuth("gate", "record", "--from-dir", dl, "--json", "--db", store_url)
    assert r.rc == 0, r.stderr
    doc = r.json()
    assert sorted(x["run_id"] for x in doc["recorded"]) == ["100", "102"]
    reasons = " ".join(s["reason"] for s in doc["skipped"])
    assert len(doc["skipped"]) == 4
    assert (
        "empty" in reasons
        and "no sleuth-gate.json" in reasons
        and "unreadable" in reasons
        and "listed" in reasons
    )
    again = sleuth("gate", "record", "--from-dir", dl, "--json", "--db", store_url).json()
    assert again["recorded"] == [] and sorted(again["already_recorded"]) == ["det/100", "det/102"]
    runs = sleuth("gate", "runs", "--suite", "det", "--json", "--db", store_url).json()["runs"]
    assert [r["branch"] for r in runs] == ["main", "main"]


def test_byte_order_marks_in_metadata_csv_series_and_baseline(sleuth: Callable, tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    art = tmp_path / "dl" / "a"
    art.mkdir(parents=True)
    (art / "r.csv").write_bytes(b"m,1\n")
    (art / "sleuth-gate.json").write_bytes(bom + b'{"suite": "s", "run_id": "1", "files": ["r.csv"]}')
    db = f"dir://{tmp_path / 'd'}"
    r = sleuth("gate", "record", "--from-dir", tmp_path / "dl", "--json", "--db", db)
    assert r.rc == 0 and [x["run_id"] for x in r.json()["recorded"]] == ["1"], r.stdout
    (tmp_path / "s.csv").write_bytes(
        bom + b"run,latency\n" + b"".join(b"r%d,%d\n" % (i, i) for i in range(12))
    )
    r = sleuth("gate", "changepoints", "--csv", tmp_path / "s.csv", "--column", "latency", "--json")
    assert r.rc == 0 and r.json()["n"] == 12, r.stderr
    (tmp_path / "b.json").write_bytes(bom + b'{"suite": "s", "metrics": {"m": {"value": 1}}}')
    r = sleuth("gate", "baseline", "diff", tmp_path / "b.json", "--db", db)
    assert r.rc == 0 and "same" in r.stdout, r.stderr


def test_from_dir_times_with_zones_order_the_history(
    sleuth: Callable, store_url: str, tmp_path: Path
) -> None:
    # metadata written by hand or by another tool: a zone offset, with and without fractions
    times = {"a": "2025-01-01T10:00:00+05:00", "b": "2025-01-01T06:00:00Z", "c": "2025-01-01T07:00:00.5Z"}
    times["d"] = "2025-01-01T07:00:00Z"
    for run_id, when in times.items():
        art = tmp_path / "dl" / run_id
        art.mkdir(parents=True)
        (art / "r.csv").write_text("m,1\n")
        meta = {"suite": "s", "run_id": run_id, "created_at": when, "files": ["r.csv"]}
        (art / "sleuth-gate.json").write_text(json.dumps(meta))
    assert sleuth("gate", "record", "--from-dir", tmp_path / "dl", "--db", store_url).rc == 0
    runs = sleuth("gate", "runs", "--suite", "s", "--json", "--db", store_url).json()["runs"]
    assert [r["run_id"] for r in runs] == ["a", "b", "d", "c"]  # 05:00Z, 06:00Z, 07:00Z, 07:00:00.5Z
    assert runs[0]["created_at"] == "2025-01-01T05:00:00.000000Z"


def test_names_from_flags_and_policy_keys_drive_no_terminal_and_keep_junit_valid(
    sleuth: Callable, tmp_path: Path
) -> None:
    # a --metric pattern or an exact policy key without data is a row under its own name
    db = f"dir://{tmp_path / 'd'}"
    (tmp_path / "r.csv").write_text("m,1\n")
    assert (
        sleuth("gate", "record", "--suite", "s", "--run-id", "1", "--no-provenance", "--db", db, "r.csv").rc
        == 0
    )
    (tmp_path / "p.yaml").write_text('metrics:\n  "k\\x1b\\x07": {kind: counter}\n')  # no '[': a glob
    runs = [
        ("graduate", "--metric", "x\x1b[2Jy", "--junit", "g.xml"),
        ("check", "--policy", "p.yaml", "--junit", "c.xml"),
    ]
    for argv in runs:
        r = sleuth("gate", *argv, "--suite", "s", "--db", db)
        assert r.rc in (0, 3) and "\x1b" not in r.stdout and "\x07" not in r.stdout, r.stdout
        assert "\ufffd" in r.stdout
    for name in ("g.xml", "c.xml"):
        ET.parse(tmp_path / name)  # a control character made it not well-formed


def test_emit_metadata_lists_a_file_named_twice_once(sleuth: Callable, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("m,1\nm,2\n")
    out = tmp_path / "dl" / "x"
    r = sleuth("gate", "record", "--emit-metadata", out, "--suite", "s", "--run-id", "1", "a.csv", "a.csv")
    assert r.rc == 0 and json.loads((out / "sleuth-gate.json").read_text())["files"] == ["a.csv"]
    db = f"dir://{tmp_path / 'd'}"
    (rec,) = sleuth("gate", "record", "--from-dir", tmp_path / "dl", "--json", "--db", db).json()["recorded"]
    assert rec["samples"] == 2


def test_emit_metadata_from_a_pipe(sleuth_env: dict[str, str], tmp_path: Path) -> None:
    # `record --emit-metadata out <(go test -bench .)`: the pipe was read, then copied: a traceback
    import subprocess
    import sys

    out = tmp_path / "dl" / "x"
    argv = [sys.executable, "-m", "sleuth", "gate", "record", "--emit-metadata", str(out), "--suite", "s"]
    argv += ["--run-id", "1", "--no-provenance", "/dev/stdin"]
    r = subprocess.run(argv, input="m,1\nm,2\n", capture_output=True, text=True, env=sleuth_env, timeout=60)
    assert r.returncode == 0 and "1 metric(s)" in r.stdout, r.stderr
    assert (out / "stdin").read_text() == "m,1\nm,2\n"
    argv = [sys.executable, "-m", "sleuth", "gate", "record", "--from-dir", str(tmp_path / "dl"), "--json"]
    r2 = subprocess.run(
        [*argv, "--db", f"dir://{tmp_path / 'd'}"],
        capture_output=True,
        text=True,
        env=sleuth_env,
        timeout=60,
    )
    (rec,) = json.loads(r2.stdout)["recorded"]
    assert rec["samples"] == 2


def test_from_dir_with_nothing_usable_exits_3(sleuth: Callable, tmp_path: Path) -> None:
    (tmp_path / "dl" / "a").mkdir(parents=True)
    r = sleuth("gate", "record", "--from-dir", tmp_path / "dl", "--db", f"dir://{tmp_path / 'd'}")
    assert r.rc == 3 and "0 recorded" in r.stdout


def test_markdown_step_summary_and_junit(sleuth: Callable, tmp_path: Path) -> None:
    db = f"dir://{tmp_path / 'd'}"
    _record_all(sleuth, db, _csv_runs(tmp_path, [100.0 + 3 * (i % 2) for i in range(10)]))  # CV ~1.5 %
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    md, junit = tmp_path / "out" / "grad.md", tmp_path / "grad.xml"
    r = sleuth(
        "gate",
        "graduate",
        "--suite",
        "s",
        "--markdown",
        md,
        "--junit",
        junit,
        "--db",
        db,
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert r.rc == 0
    text = md.read_text()
    assert "| `install_s` |" in text and "OVER" in text
    assert summary.read_text().startswith("# earlier step\n") and text in summary.read_text()
    root = ET.parse(junit).getroot()
    (case,) = root.iter("testcase")
    assert (
        case.get("name") == "install_s" and case.find("skipped") is not None
    )  # soft mode: OVER is not a failure
    r = sleuth("gate", "graduate", "--suite", "s", "--mode", "hard", "--junit", junit, "--db", db)
    assert r.rc == 1 and ET.parse(junit).getroot().find("testsuite").get("failures") == "1"  # type: ignore[union-attr]


def test_changepoints_on_any_csv(sleuth: Callable, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    vals = np.r_[100 + rng.standard_normal(40), 106 + rng.standard_normal(40)]
    csv = tmp_path / "series.csv"
    csv.write_text(
        "run,latency,other\n" + "".join(f"r{i},{v:.4f},1\n" for i, v in enumerate(vals)) + "r80,oops,1\n"
    )
    r = sleuth("gate", "changepoints", "--csv", csv, "--column", "latency", "--json")
    assert r.rc == 0
    doc = r.json()
    (cp,) = doc["change_points"]
    assert set(cp) == {"index", "before", "after", "p_value"} and abs(cp["index"] - 40) <= 1
    assert doc["non_numeric"] == 1 and doc["n"] == 81
    again = sleuth("gate", "changepoints", "--csv", csv, "--column", "latency", "--json")
    assert again.json() == doc
    state = tmp_path / "state.json"
    first = sleuth(
        "gate",
        "changepoints",
        "--csv",
        csv,
        "--column",
        "latency",
        "--incremental",
        "--state",
        state,
        "--json",
    )
    assert len(first.json()["change_points"]) == 1 and state.is_file()
    second = sleuth(
        "gate",
        "changepoints",
        "--csv",
        csv,
        "--column",
        "latency",
        "--incremental",
        "--state",
        state,
        "--json",
    )
    assert second.json()["change_points"] == []


def test_baseline_capture_diff_and_check(sleuth: Callable, store_url: str, tmp_path: Path) -> None:
    _record_all(sleuth, store_url, _csv_runs(tmp_path, [100.0] * 10, counter=[3] * 10))
    base = tmp_path / "baselines.json"
    r = sleuth("gate", "baseline", "capture", "--suite", "s", "-o", base, "--db", store_url)
    assert r.rc == 0
    doc = json.loads(base.read_text())
    assert doc["metrics"]["allocs"]["value"] == 3.0 and doc["metrics"]["install_s"]["runs"] == 10
    assert sleuth("gate", "baseline", "diff", base, "--db", store_url).rc == 0
    doc["metrics"]["allocs"]["value"] = 2.0
    base.write_text(json.dumps(doc))
    d = sleuth("gate", "baseline", "diff", base, "--json", "--db", store_url)
    assert d.rc == 1
    moved = {m["metric"]: m for m in d.json()["metrics"]}
    assert moved["allocs"]["status"] == "moved" and moved["install_s"]["status"] == "same"
    doc["metrics"]["allocs"]["tolerance"] = "1"
    base.write_text(json.dumps(doc))
    assert sleuth("gate", "baseline", "diff", base, "--db", store_url).rc == 0  # within 1
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics:\n  allocs: {kind: counter}\n")
    chk = sleuth(
        "gate", "check", "--suite", "s", "--policy", policy, "--baseline", base, "--json", "--db", store_url
    )
    assert chk.rc == 0 and chk.json()["metrics"][0]["findings"][0]["reference_from"] == "baseline file"
    # re-capture keeps the hand-edited tolerance
    assert sleuth("gate", "baseline", "capture", "--suite", "s", "-o", base, "--db", store_url).rc == 0
    assert json.loads(base.read_text())["metrics"]["allocs"]["tolerance"] == "1"


def test_schema_of_the_policy_file(sleuth: Callable) -> None:
    r = sleuth("schema", "gate-policy")
    assert r.rc == 0 and "metrics" in r.json()["properties"]


def test_gate_help_lists_the_subcommands(sleuth: Callable) -> None:
    r = sleuth("gate", "--help")
    assert r.rc == 0
    for sub in ("record", "graduate", "check", "changepoints", "baseline", "runs"):
        assert sub in r.stdout
    assert "gate" in sleuth("--help").stdout


def test_incremental_changepoints_after_a_backfilled_run_are_the_from_scratch_ones(
    sleuth: Callable, store_url: str, tmp_path: Path
) -> None:
    # run r10 is recorded last, with its own (older) time: the store puts it in the middle
    values = [100.0, 100.5, 99.5, 100.2, 99.8] * 6 + [110.0, 110.4, 109.6, 110.2, 109.9] * 3
    files = _csv_runs(tmp_path, values, metric="m")
    _record_all(sleuth, store_url, files[:10])
    _record_all(sleuth, store_url, files[11:], start=11)
    args = ("gate", "changepoints", "--suite", "s", "--metric", "m", "--json", "--db", store_url)
    (cp,) = sleuth(*args, "--incremental").json()["change_points"]
    assert cp["run_id"] == "r30" and cp["index"] == 29
    _record_all(sleuth, store_url, files[10:11], start=10)
    inc = sleuth(*args, "--incremental").json()["change_points"]
    assert inc == sleuth(*args).json()["change_points"]  # the state was rebuilt: the whole series once more
    assert [(c["index"], c["run_id"]) for c in inc] == [(30, "r30")]  # not slid onto r29
    assert sleuth(*args, "--incremental").json()["change_points"] == []  # and then reported once


def test_a_large_table_shows_the_rows_that_need_a_look_and_counts_the_rest(
    sleuth: Callable, tmp_path: Path
) -> None:
    # 250 steady metrics and one noisy one: the terminal and the job summary list the noisy one and
    # count the others (nobody reads 251 rows; GitHub drops a summary over 1 MiB), --json lists all
    files = []
    for i in range(10):
        p = tmp_path / f"run{i:02d}.csv"
        rows = [f"m{j:03d},{100.0 + 0.001 * (i % 2)},s" for j in range(250)]
        rows.append(f"noisy,{100.0 + 3 * (i % 2)},s")
        p.write_text("metric,value,unit\n" + "\n".join(rows) + "\n")
        files.append(p)
    db = f"dir://{tmp_path / 'd'}"
    _record_all(sleuth, db, files)
    md, summary = tmp_path / "grad.md", tmp_path / "summary.md"
    r = sleuth(
        "gate",
        "graduate",
        "--suite",
        "s",
        "--markdown",
        md,
        "--db",
        db,
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert r.rc == 0, r.stderr
    assert "noisy" in r.stdout and "m000" not in r.stdout
    assert "250 metric(s) not shown (250 OK); --json lists every one" in r.stdout
    text = md.read_text()
    assert "| `noisy` |" in text and "`m000`" not in text and "250 metric(s) not shown (250 OK)" in text
    assert summary.read_text() == text + "\n"
    doc = sleuth("gate", "graduate", "--suite", "s", "--json", "--db", db).json()
    assert len(doc["metrics"]) == 251
