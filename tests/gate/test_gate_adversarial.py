"""``sleuth gate record`` against hostile input: secrets in result files and artifact metadata,
artifact metadata that points outside its folder, and a kill -9 in the middle of an ingest."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.badinput import assert_no_secret

from .conftest import DATA

GO = DATA / "go-bench.txt"

#: hyperfine --export-json keeps the whole command line as the benchmark's name
HYPERFINE_WITH_SECRETS = {
    "results": [
        {
            "command": "curl --api-key=abcdefgh12 https://user:hunter2pass@host.example/x",
            "times": [1.0, 1.1, 1.2],
        },
        {"command": "python bench.py --token hf_PlantedToken0123456789", "times": [2.0, 2.1]},
    ]
}

#: ``sleuth gate record`` of run 1 of suite ``s``, without provenance
RECORD_1 = ["gate", "record", "--suite", "s", "--run-id", "1", "--no-provenance"]


def test_secrets_in_benchmark_names_are_hidden(sleuth: Callable, store_url: str, tmp_path: Path) -> None:
    f = tmp_path / "hyperfine.json"
    f.write_text(json.dumps(HYPERFINE_WITH_SECRETS))
    r = sleuth("gate", "record", "--suite", "s", "--run-id", "1", "--db", store_url, "--json", f)
    assert r.rc == 0, r.stderr
    runs = sleuth("gate", "runs", "--suite", "s", "--db", store_url, "--json")
    assert runs.rc == 0, runs.stderr
    names = [s["metric"] for s in runs.json()["runs"][0]["samples"]]
    assert names == [
        "curl --api-key=<redacted> <redacted>",  # an argument holding a URL password goes whole
        "python bench.py --token <redacted>",
    ]
    hist = [tmp_path / "hist", tmp_path / "hist-dir"]
    for secret in ("abcdefgh12", "hunter2pass", "hf_PlantedToken0123456789"):
        assert_no_secret(secret, r.stdout, r.stderr, runs.stdout, runs.stderr, roots=hist)


def _artifact(root: Path, meta: dict[str, object], files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "sleuth-gate.json").write_text(json.dumps({"schema": 1, **meta}))
    return root


def test_secrets_in_artifact_metadata_are_hidden(sleuth: Callable, store_url: str, tmp_path: Path) -> None:
    """Metadata written by hand or by an older producing job may hold raw values: none is stored."""
    meta = {
        "suite": "s",
        "run_id": "a1",
        "branch": "https://u:branchpw99@git.example/repo",
        "files": ["go.txt"],
        "provenance": {
            "runner": {
                "GITHUB_TOKEN": "plainsecretvalue1",
                "RUNNER_NAME": "r1 ghp_abcdefghijklmnopqrstuvwxyz",
            },
            "env": {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"},
            "host": {"hostname": "gpu-box-1"},
        },
    }
    _artifact(tmp_path / "art" / "bench-1", meta, {"go.txt": GO.read_text()})
    r = sleuth("gate", "record", "--from-dir", tmp_path / "art", "--db", store_url, "--json")
    assert r.rc == 0, r.stderr
    runs = sleuth("gate", "runs", "--suite", "s", "--db", store_url, "--json")
    (run,) = runs.json()["runs"]
    assert run["provenance"]["host"]["hostname"] == "gpu-box-1"  # the rest is kept
    assert run["provenance"]["runner"]["RUNNER_NAME"] == "r1 <redacted>"
    assert run["provenance"]["runner"]["GITHUB_TOKEN"] == "<redacted>"
    hist = [tmp_path / "hist", tmp_path / "hist-dir"]
    for secret in ("branchpw99", "plainsecretvalue1", "ghp_abcdefghijklmnopqrstuvwxyz", "wJalrXUtnFEMIK7M"):
        assert_no_secret(secret, r.stdout, r.stderr, runs.stdout, runs.stderr, roots=hist)


def test_artifact_metadata_cannot_name_a_file_outside_its_folder(sleuth: Callable, tmp_path: Path) -> None:
    """An artifact is downloaded from CI (a fork's pull request, say): it may only name its own files."""
    outside = tmp_path / "private.csv"
    outside.write_text("private_metric,42\n")
    _artifact(tmp_path / "art" / "a", {"suite": "s", "run_id": "a", "files": [str(outside)]}, {})
    _artifact(tmp_path / "art" / "b", {"suite": "s", "run_id": "b", "files": ["../../private.csv"]}, {})
    link = _artifact(tmp_path / "art" / "c", {"suite": "s", "run_id": "c", "files": ["data.csv"]}, {})
    (link / "data.csv").symlink_to(outside)
    db = f"dir://{tmp_path / 'd'}"
    r = sleuth("gate", "record", "--from-dir", tmp_path / "art", "--db", db, "--json")
    assert r.rc == 3, r.stderr  # nothing recorded
    doc = r.json()
    assert doc["recorded"] == []
    reasons = {Path(s["path"]).name: s["reason"] for s in doc["skipped"]}
    assert set(reasons) == {"a", "b", "c"}
    assert all("outside" in why for why in reasons.values()), reasons
    assert not (tmp_path / "d").exists() or not list((tmp_path / "d").rglob("*.json"))


def test_kill_9_mid_ingest_twice_then_record_again_keeps_one_whole_run(tmp_path: Path) -> None:
    """SQLite: the run is one transaction; two kill -9 in the middle, then two records, give one run."""
    import os
    import signal
    import time

    big = tmp_path / "big.csv"
    with big.open("w") as fh:
        for i in range(60_000):
            fh.write(f"m{i % 50},{i * 0.5}\n")
    db = tmp_path / "h.db"
    argv = [sys.executable, "-m", "sleuth", "gate", "record", "--suite", "s", "--run-id", "1",
            "--no-provenance", "--db", f"sqlite:///{db}", str(big)]  # fmt: skip
    killed = 0
    for _ in range(2):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
        deadline = time.monotonic() + 60
        while not db.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the store is being created: the insert comes next
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait()
    outs = [subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=120) for _ in range(2)]
    assert [o.returncode for o in outs] == [0, 0], outs[-1].stderr
    assert "already recorded" in outs[1].stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from gate_runs").fetchone() == (1,)
        assert conn.execute("select count(*) from gate_samples").fetchone() == (60_000,)
    assert killed >= 1 or outs[0].stdout.startswith("already")


def test_values_near_the_float_limit_give_a_baseline_the_gate_reads_back(
    sleuth: Callable, tmp_path: Path
) -> None:
    """Each value is finite, the mean of two is not: the median must not overflow into an
    ``Infinity`` that ``baseline capture`` writes and ``check --baseline`` then rejects."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    for i in range(3):
        f = tmp_path / f"r{i}.csv"
        f.write_text("huge,1.7e308\nhuge,1.6e308\nsmall,1\nsmall,2\n")
        r = sleuth("gate", "record", "--suite", "s", "--run-id", str(i), "--no-provenance", "--db", db, f)
        assert r.rc == 0, r.stderr
    base = tmp_path / "b.json"
    r = sleuth("gate", "baseline", "capture", "--suite", "s", "-o", base, "--db", db)
    assert r.rc == 0, r.stderr
    doc = json.loads(base.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in {base}"))
    assert (
        doc["metrics"]["huge"]["value"] == pytest.approx(1.65e308) and doc["metrics"]["small"]["value"] == 1.5
    )
    assert doc["metrics"]["huge"]["cv"] == 0.0  # the same value in every run: no overflow on the way
    d = sleuth("gate", "baseline", "diff", base, "--db", db, "--json")
    assert d.rc == 0, d.stderr
    g = sleuth("gate", "graduate", "--suite", "s", "--last", "3", "--json", "--db", db)
    assert g.rc == 0, g.stderr
    assert {m["metric"]: m["verdict"] for m in g.json()["metrics"]} == {"huge": "OK", "small": "OK"}


def _record_csvs(sleuth: Callable, db: str, tmp_path: Path, rows: list[str]) -> None:
    for i, text in enumerate(rows):
        f = tmp_path / f"r{i}.csv"
        f.write_text(text)
        r = sleuth("gate", "record", "--suite", "s", "--run-id", f"r{i}", "--no-provenance", "--db", db, f)
        assert r.rc == 0, r.stderr


def test_a_change_past_the_float_range_fails_the_counter_and_baseline_checks(
    sleuth: Callable, tmp_path: Path
) -> None:
    """From 1.5e308 to -1.5e308 is 3e308 (past the float range: inf), the 150 % limit 2.25e308 too;
    ``inf > inf`` is False, so both checks passed, exit 0."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    _record_csvs(
        sleuth, db, tmp_path, ["cnt,1.5e308\ntime,1.5e308\n"] * 4 + ["cnt,-1.5e308\ntime,-1.5e308\n"]
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        'metrics:\n  cnt: {kind: counter, tolerance: "150%"}\n'
        "  time: {kind: time, direction: higher, regression: null}\n"
    )
    base = tmp_path / "baselines.json"
    base.write_text(json.dumps({"metrics": {"time": {"value": 1.5e308, "tolerance": "150%"}}}))
    r = sleuth("gate", "check", "--suite", "s", "--policy", policy, "--baseline", base, "--db", db, "--json")
    verdicts = {m["metric"]: [(f["check"], f["verdict"]) for f in m["findings"]] for m in r.json()["metrics"]}
    assert verdicts == {"cnt": [("counter", "FAIL")], "time": [("baseline", "FAIL")]}
    assert r.rc == 1, r.stderr


def test_a_regression_test_near_the_float_limit_reads_valid_json_and_no_warning(
    sleuth: Callable, tmp_path: Path
) -> None:
    """Baseline 1.4e308-1.5e308, recent about -1.6e308 (an improvement for lower-is-better): the shift
    (-3e308) is past the float range; it is reported as null (not Infinity, which is not JSON), with
    no numpy overflow warning on stderr."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    _record_csvs(
        sleuth,
        db,
        tmp_path,
        ["reg,1.5e308\nreg,1.4e308\nreg,1.45e308\n"] * 6 + ["reg,-1.5e308\nreg,-1.7e308\n"],
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        'metrics:\n  reg: {regression: {baseline_runs: 6, recent_runs: 1, min_effect: "150%"}}\n'
    )
    r = sleuth("gate", "check", "--suite", "s", "--policy", policy, "--db", db, "--json")
    assert r.rc == 0 and "Warning" not in r.stderr, r.stderr
    doc = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the --json output"))
    (f,) = doc["metrics"][0]["findings"]
    assert (
        f["verdict"] == "PASS" and f["shift"] is None and f["relative_shift"] == pytest.approx(-2.1, abs=0.01)
    )


def test_a_value_that_is_not_finite_in_the_sql_store_is_skipped_not_a_nan_pass(
    sleuth: Callable, tmp_path: Path
) -> None:
    """``record`` refuses inf; a store written by another tool may hold it.  inf - inf made the
    shift NaN, ``NaN >= min_effect`` is False, and a clear regression passed."""
    db = tmp_path / "h.db"
    _record_csvs(
        sleuth,
        f"sqlite:///{db}",
        tmp_path,
        ["reg,1.0\nreg,1.1\nreg,1.2\n"] * 6 + ["reg,5\nreg,5.1\nreg,5.2\n"],
    )
    with sqlite3.connect(db) as conn:
        conn.execute("update gate_samples set value = 9e999 where value in (1.2, 5.2)")
    policy = tmp_path / "policy.yaml"
    policy.write_text("metrics:\n  reg: {regression: {baseline_runs: 6, recent_runs: 1}}\n")
    r = sleuth("gate", "check", "--suite", "s", "--policy", policy, "--db", f"sqlite:///{db}", "--json")
    (f,) = r.json()["metrics"][0]["findings"]
    assert (f["verdict"], f["samples_recent"], f["samples_baseline"]) == ("FAIL", 2, 12)
    assert (f["n_recent"], f["n_baseline"]) == (1, 6)  # runs, each judged by its median
    assert r.rc == 1, r.stderr


@pytest.mark.parametrize("where", ["a-dir", "missing-dir/summary.md"])
def test_a_step_summary_that_cannot_be_appended_to_is_a_usage_error(
    sleuth: Callable, tmp_path: Path, where: str
) -> None:
    from tests.badinput import assert_usage_error, tree_state

    (tmp_path / "a-dir").mkdir()
    before = tree_state(tmp_path)
    r = sleuth(
        "gate", "graduate", "--suite", "s", "--markdown", tmp_path / "out.md", "--db", f"dir://{tmp_path / 'd'}",
        env={"GITHUB_STEP_SUMMARY": str(tmp_path / where)},
    )  # fmt: skip
    assert_usage_error(
        r.rc, r.stdout, r.stderr, ["GITHUB_STEP_SUMMARY", where], before=before, after=tree_state(tmp_path)
    )


def test_emit_metadata_writes_no_secret_from_flags_or_ci_variables(sleuth: Callable, tmp_path: Path) -> None:
    env = {
        "GITHUB_HEAD_REF": "https://u:headref-pw9@git.example/r",
        "RUNNER_NAME": "r ghp_abcdefghijklmnopqrstuvwxyz",
    }
    r = sleuth(
        "gate", "record", "--emit-metadata", tmp_path / "out", "--suite", "s", "--run-id", "1",
        "--commit", "sk-abcdefghijklmnop1234", GO, "--json", env=env,
    )  # fmt: skip
    assert r.rc == 0, r.stderr
    meta = json.loads((tmp_path / "out" / "sleuth-gate.json").read_text())
    # a branch is a name, judged by its words: the URL's password hidden, the rest kept
    assert meta["branch"] == "https://<redacted>@git.example/r"
    assert meta["provenance"]["runner"]["RUNNER_NAME"] == "r <redacted>"
    for secret in ("headref-pw9", "ghp_abcdefghijklmnopqrstuvwxyz", "sk-abcdefghijklmnop1234"):
        assert_no_secret(secret, r.stdout, r.stderr, roots=[tmp_path / "out"])


def test_a_file_over_the_read_limit_never_gives_a_cut_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the limit the file is read no further: the line the limit cuts is dropped, not parsed as
    ``m,0.1`` from ``m,0.123456``."""
    from sleuth.gate import ingest

    f = tmp_path / "big.csv"
    f.write_text("a,1.5\nb,0.123456\nc,7\n")
    monkeypatch.setattr(ingest, "_MAX_BYTES", len("a,1.5\nb,0.1"))
    got = ingest.read_files([f])
    assert {s.metric: s.values for s in got.samples} == {"a": (1.5,)}


def test_json_nested_past_the_recursion_limit_is_garbage_not_a_crash(
    sleuth: Callable, tmp_path: Path
) -> None:
    deep = '{"benchmarks": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (tmp_path / "deep.json").write_text(deep)
    db = f"dir://{tmp_path / 'd'}"
    r = sleuth(
        *RECORD_1,
        "--json",
        "--db",
        db,
        "deep.json",
    )
    assert r.rc == 0, r.stderr
    assert r.json()["recorded"][0]["skipped_lines"] == 1  # counted, like a truncated file
    art = _artifact(tmp_path / "art" / "a", {"suite": "s", "run_id": "2"}, {"go.txt": GO.read_text()})
    (art / "sleuth-gate.json").write_text(deep)
    r = sleuth("gate", "record", "--from-dir", tmp_path / "art", "--db", db, "--json")
    assert r.rc == 3, r.stderr
    assert [s["path"] for s in r.json()["skipped"]] == [str(art)]


def test_integers_past_the_float_range_or_the_digit_limit_are_garbage(
    sleuth: Callable, tmp_path: Path
) -> None:
    (tmp_path / "digits.json").write_text('{"m": ' + "1" * 5000 + "}")  # json.loads: ValueError
    (tmp_path / "range.json").write_text('{"m": [' + "1" * 400 + ', 2], "n": 3}')  # float(): OverflowError
    db = f"dir://{tmp_path / 'd'}"
    for i, name in enumerate(("digits.json", "range.json")):
        r = sleuth(
            "gate",
            "record",
            "--suite",
            "s",
            "--run-id",
            str(i),
            "--no-provenance",
            "--json",
            "--db",
            db,
            name,
        )
        assert r.rc == 0, r.stderr[-2000:]
        assert r.json()["recorded"][0]["skipped_lines"] == 1
    art = _artifact(tmp_path / "art" / "a", {"suite": "s", "run_id": "2"}, {"go.txt": GO.read_text()})
    (art / "sleuth-gate.json").write_text('{"suite": "s", "run_id": "2", "n": ' + "1" * 5000 + "}")
    r = sleuth("gate", "record", "--from-dir", tmp_path / "art", "--db", db, "--json")
    assert r.rc == 3 and [s["path"] for s in r.json()["skipped"]] == [str(art)], r.stderr[-2000:]


@pytest.mark.parametrize(
    "bad",
    [
        {"provenance": "abc"},
        {"provenance": [1, 2]},
        {"commit": {"a": 1}},
        {"branch": 5},
        {"created_at": [1]},
        {"created_at": "yesterday"},
        {"files": "go.txt"},
        {"files": [1]},
        {"status": None},
    ],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
def test_metadata_of_the_wrong_type_skips_that_artifact_only(
    sleuth: Callable, store_url: str, tmp_path: Path, bad: dict[str, object]
) -> None:
    _artifact(
        tmp_path / "art" / "good",
        {"suite": "s", "run_id": "good", "files": ["go.txt"]},
        {"go.txt": GO.read_text()},
    )
    meta = {"suite": "s", "run_id": "bad", "files": ["go.txt"], **bad}
    _artifact(tmp_path / "art" / "bad", meta, {"go.txt": GO.read_text()})
    r = sleuth("gate", "record", "--from-dir", tmp_path / "art", "--db", store_url, "--json")
    assert r.rc == 0, r.stderr[-2000:]
    doc = r.json()
    assert [x["run_id"] for x in doc["recorded"]] == ["good"]
    (skip,) = doc["skipped"]
    assert skip["path"].endswith("bad") and next(iter(bad)) in skip["reason"]


def test_ctrl_c_mid_ingest_leaves_the_run_whole_or_absent(tmp_path: Path) -> None:
    import os
    import signal
    import time

    from tests.signals import sleuth_proc

    big = tmp_path / "big.csv"
    big.write_text("".join(f"m{i % 50},{i * 0.25}\n" for i in range(60_000)))
    db = tmp_path / "h.db"
    args = [
        *RECORD_1,
        "--db",
        f"sqlite:///{db}",
        str(big),
    ]
    proc = sleuth_proc(
        args, dict(os.environ), tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not db.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err  # 0: it had finished already
    assert "Traceback" not in err
    with sqlite3.connect(db) as conn:
        tables = {t for (t,) in conn.execute("select name from sqlite_master where type = 'table'")}
        runs = conn.execute("select count(*) from gate_runs").fetchone()[0] if "gate_runs" in tables else 0
        samples = conn.execute("select count(*) from gate_samples").fetchone()[0] if runs else 0
    assert (runs, samples) in ((0, 0), (1, 60_000))  # interrupted before the tables exist: none
    again = subprocess.run(
        [sys.executable, "-m", "sleuth", *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from gate_samples").fetchone() == (60_000,)


def test_control_characters_in_metric_names_reach_no_output(sleuth: Callable, tmp_path: Path) -> None:
    """A BEL or an ANSI escape in a benchmark name: the JUnit file stays well-formed XML and no
    terminal escape reaches the table, the markdown or the history."""
    import xml.etree.ElementTree as ET

    db = f"dir://{tmp_path / 'd'}"
    for i in range(3):
        f = tmp_path / f"r{i}.csv"
        f.write_text(f"m\x07x,{i + 1}\nok\x1b[31m,1\n")
        r = sleuth(
            "gate", "record", "--suite", "s", "--run-id", str(i), "--no-provenance", "--db", db, f,
            "--branch", "main\x1b[2J", "--commit", "abc\x07",
        )  # fmt: skip
        assert r.rc == 0, r.stderr
    junit, md = tmp_path / "j.xml", tmp_path / "m.md"
    r = sleuth(
        "gate", "graduate", "--suite", "s", "--last", "3", "--db", db, "--junit", junit, "--markdown", md
    )
    assert r.rc == 0, r.stderr
    names = {c.get("name") for c in ET.parse(junit).getroot().iter("testcase")}
    assert names == {"m\ufffdx", "ok\ufffd[31m"}
    runs = sleuth("gate", "runs", "--suite", "s", "--db", db)
    assert runs.rc == 0 and "main\ufffd[2J" in runs.stdout, runs.stderr
    stored = [json.loads(p.read_text()) for p in (tmp_path / "d").rglob("*.json")]
    for text in (r.stdout, runs.stdout, md.read_text(), json.dumps(stored, ensure_ascii=False)):
        assert "\x07" not in text and "\x1b" not in text


def test_a_last_past_the_sqlite_integer_range_reads_the_whole_history(
    sleuth: Callable, tmp_path: Path
) -> None:
    """``--last`` (or a policy's ``runs``) past 2**63: SQLite cannot bind it; the history has fewer."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    for i in range(3):
        r = sleuth("gate", "record", "--suite", "s", "--run-id", str(i), "--no-provenance", "--db", db, GO)
        assert r.rc == 0, r.stderr
    huge = str(10**21)
    r = sleuth("gate", "runs", "--suite", "s", "--last", huge, "--json", "--db", db)
    assert r.rc == 0, r.stderr[-2000:]
    assert len(r.json()["runs"]) == 3
    r = sleuth("gate", "graduate", "--suite", "s", "--last", huge, "--db", db)
    assert r.rc == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    (tmp_path / "p.yaml").write_text(
        f"metrics:\n  'BenchmarkParse*':\n    budget: {{max: 1, runs: {huge}}}\n"
    )
    r = sleuth("gate", "check", "--suite", "s", "--policy", tmp_path / "p.yaml", "--db", db)
    assert r.rc in (0, 1, 2, 3) and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_emit_metadata_refuses_two_files_of_the_same_name(sleuth: Callable, tmp_path: Path) -> None:
    """a/r.csv and b/r.csv would be copied onto one another: one run's samples lost, the other's doubled."""
    from tests.badinput import assert_usage_error, tree_state

    for d, line in (("a", "m,1\n"), ("b", "n,2\n")):
        (tmp_path / d).mkdir()
        (tmp_path / d / "r.csv").write_text(line)
    before = tree_state(tmp_path)
    r = sleuth(
        "gate", "record", "--emit-metadata", "out", "--suite", "s", "--run-id", "1", "a/r.csv", "b/r.csv"
    )
    assert_usage_error(
        r.rc, r.stdout, r.stderr, ["--emit-metadata", "r.csv"], before=before, after=tree_state(tmp_path)
    )


def test_an_interrupted_emit_into_a_reused_folder_leaves_no_stale_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old metadata would attribute the new, half-copied files to the old run id."""
    import shutil

    from sleuth.gate import ingest

    out = tmp_path / "out"
    f = tmp_path / "r.csv"
    f.write_text("m,1\n")
    ingest.write_metadata(out, {"suite": "s", "run_id": "1"}, [f])
    f.write_text("m,2\n")

    def interrupted(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # a Ctrl-C at this exact point cannot be timed from outside

    monkeypatch.setattr(shutil, "copyfile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ingest.write_metadata(out, {"suite": "s", "run_id": "2"}, [f])
    assert ingest.scan_artifacts(tmp_path / "out").artifacts == ()


def test_a_fifo_or_a_folder_named_like_the_metadata_file_is_skipped(sleuth: Callable, tmp_path: Path) -> None:
    """``open`` on a FIFO waits for a writer forever: a scan must not read one."""
    import os

    good = _artifact(tmp_path / "art" / "good", {"suite": "s", "run_id": "1"}, {"go.txt": GO.read_text()})
    (tmp_path / "art" / "fifo").mkdir()
    os.mkfifo(tmp_path / "art" / "fifo" / "sleuth-gate.json")
    (tmp_path / "art" / "dir" / "sleuth-gate.json").mkdir(parents=True)
    r = sleuth(
        "gate",
        "record",
        "--from-dir",
        tmp_path / "art",
        "--db",
        f"dir://{tmp_path / 'd'}",
        "--json",
        timeout=30,
    )
    assert r.rc == 0, r.stderr
    doc = r.json()
    assert [x["run_id"] for x in doc["recorded"]] == ["1"] and good.name == "good"
    assert {"fifo", "dir"} <= {Path(s["path"]).name for s in doc["skipped"]}


def test_a_change_too_large_for_a_float_is_null_in_json_and_no_percentage_in_text(
    sleuth: Callable, tmp_path: Path
) -> None:
    """``baseline diff --json`` divided 1e300 by 1e-300 and printed ``Infinity``: no JSON reader (jq,
    JavaScript, Go, Python's strict mode) takes the document.  Every --json and file is strict now.
    The table and the markdown printed ``+inf%``."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    base = tmp_path / "b.json"
    for i, value in enumerate(("1e-300", "1e300")):
        f = tmp_path / f"r{i}.csv"
        f.write_text(f"t,{value}\n")
        r = sleuth("gate", "record", "--suite", "s", "--run-id", f"r{i}", "--no-provenance", "--db", db, f)
        assert r.rc == 0, r.stderr
        if i == 0:
            assert sleuth("gate", "baseline", "capture", "--suite", "s", "-o", base, "--db", db).rc == 0
    d = sleuth("gate", "baseline", "diff", base, "--db", db, "--last", "1", "--json")
    assert d.rc in (0, 1), d.stderr
    doc = json.loads(d.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the --json output"))
    (row,) = doc["metrics"]
    assert row["status"] == "moved" and row["new"] == 1e300 and row["change"] is None
    # the table and the markdown summary said "+inf%", a measured change; they say why there is none
    md = tmp_path / "diff.md"
    t = sleuth("gate", "baseline", "diff", base, "--db", db, "--last", "1", "--markdown", md)
    assert t.rc == 1, t.stderr
    for text in (t.stdout, md.read_text()):
        assert "inf" not in text.replace("n/a (outside float range)", "")
        assert "n/a (outside float range)" in text


def test_a_change_point_past_the_float_range_is_no_percentage() -> None:
    """The change-point table and its markdown divided the two medians the same way."""
    from sleuth.gate.changepoint import ChangePoint
    from sleuth.gate.render import changepoints_markdown

    text = changepoints_markdown("s/t", 8, [ChangePoint(index=4, before=1e-300, after=1e300, p_value=0.001)])
    assert "| n/a (outside float range) |" in text and "inf" not in text.replace("float range", "")
    from sleuth.gate.render import change_text

    assert (change_text(2.0, 3.0), change_text(0.0, 1.0), change_text(None, 1.0)) == ("+50.00%", "-", "-")


def test_a_history_recorded_before_a_rule_shows_no_secret(sleuth: Callable, store_url: str) -> None:
    """A run stored with a secret in a metric name, a commit or its provenance (recorded by an older
    sleuth, whose rule did not hide it) is scrubbed on the way out of the store: no view repeats it."""
    from dataclasses import replace

    from sleuth.gate.model import Run, Sample
    from sleuth.gate.store import open_store

    old = Run(
        suite="s",
        run_id="old",
        created_at="2026-01-01T00:00:00+00:00",
        branch="main",
        samples=(Sample("bench --db-url x password=hunter2pw", (1.0, 2.0)),),
        provenance={"command": "run --token=ghp_abcdefghijklmnop12"},
    )
    store = open_store(store_url, create=True)
    try:
        assert store.add_run(old)
        assert store.add_run(replace(old, run_id="old2", created_at="2026-01-02T00:00:00+00:00"))
    finally:
        store.close()
    for argv in (("runs", "--json"), ("graduate", "--json", "--last", "2")):
        r = sleuth("gate", *argv, "--suite", "s", "--db", store_url)
        assert r.rc in (0, 1, 3), r.stderr
        assert_no_secret("hunter2pw", r.stdout, r.stderr)
        assert_no_secret("ghp_abcdefghijklmnop12", r.stdout, r.stderr)
    assert "password=<redacted>" in sleuth("gate", "runs", "--json", "--suite", "s", "--db", store_url).stdout


def test_a_fork_s_artifact_names_drive_no_terminal_and_start_no_workflow_command(
    sleuth: Callable, tmp_path: Path
) -> None:
    """The skipped lines repeat a folder name and the metadata's file names, which a fork controls."""
    _artifact(tmp_path / "dl" / "a", {"suite": "s", "run_id": "1", "files": ["x\n::error::pwned"]}, {})
    _artifact(tmp_path / "dl" / "b", {"suite": "s", "run_id": "2", "files": ["y\x1b]0;title\x07"]}, {})
    (tmp_path / "dl" / "c\x1b[31m").mkdir()
    (tmp_path / "dl" / "c\x1b[31m" / "x.txt").write_text("1\n")
    r = sleuth("gate", "record", "--from-dir", tmp_path / "dl", "--db", f"dir://{tmp_path / 'd'}")
    assert r.rc == 3 and r.stdout.count("skipped ") == 3, r.stdout
    assert not any(line.startswith("::") for line in r.stdout.splitlines())
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
