"""``sleuth report`` on ``sleuth reduce`` run dirs: real reductions, the real CLI, a real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from sleuth.report import build_page, reduce, write_report
from sleuth.report.page import Table
from sleuth.report.source import RunDirView
from tests.conftest import CliResult
from tests.report.conftest import external_refs, parse, visible_text

#: fails from N = 7 up (the smoke test's workload)
PARAM = {
    "name": "param",
    "workload": {"command": "test {N} -lt 7 || { echo boom at {N} >&2; exit 1; }", "shell": True},
    "budget": {"baseline_trials": 1},
    "axes": [{"name": "N", "kind": "param", "initial": 100}],
}


def _reduce(sleuth: Callable[..., CliResult], tmp_path: Path, spec: Mapping[str, Any]) -> tuple[Path, Any]:
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(dict(spec)))
    result = sleuth("reduce", "--spec", tmp_path / "spec.yaml", "--json")
    assert result.rc == 0, result.stderr[-2000:]
    doc = result.json()
    return Path(doc["run_dir"]), doc


def _moves(summary: Mapping[str, Any]) -> str:
    """The headline's 'what went from what to what', from the summary the run wrote."""
    shown = []
    for name, row in summary["axes"].items():
        was, now = row["initial"], row["final"]
        if isinstance(was, list):
            shown.append(f"{name} {len(was)} -> {len(now)} items")
        else:
            shown.append(f"{name} {was} -> {now}")
    return ", ".join(shown)


def _original(summary: Mapping[str, Any]) -> str:
    orig = summary["flaky"]["original"]
    return f"the original reproduced {orig['reproduced']}/{orig['trials']} (95% CI {orig['reproduction_rate_ci']})"


def _page(sleuth: Callable[..., CliResult], run_dir: Path) -> str:
    made = sleuth("report", run_dir)
    assert made.rc == 0, made.stderr
    return (run_dir / "report.html").read_text(encoding="utf-8")


def test_a_reduced_run_says_what_shrank_with_its_confidence_its_figure_log_and_commands(
    sleuth: Callable[..., CliResult], tmp_path: Path, browser: Callable[[Path], str]
) -> None:
    run_dir, summary = _reduce(sleuth, tmp_path, PARAM)
    _page(sleuth, run_dir)
    dom = browser(run_dir / "report.html")
    text = visible_text(dom)
    headline = " ".join(" ".join(parse(dom).by_id["headline"]).split())
    assert headline.startswith(f"reduced: {_moves(summary)}; {_original(summary)}")
    assert f"{summary['oracle_calls']} candidates tested, {summary['trials']} trials" in text
    assert 'class="headline good"' in dom
    # the progress figure is inline SVG and nothing is fetched
    assert [t for t, _ in parse(dom).tags].count("svg") == 1
    assert external_refs(dom) == []
    # the final reproduction's own log, the reproducer and the bundle command
    final = summary["axes"]["N"]["final"]
    assert f"boom at {final}" in text
    assert f"sleuth bundle {run_dir}" in text and f"sh {run_dir}/shrunken/run_repro.sh" in text
    assert "shrunken/run_repro.sh" in text and "exec /bin/sh -c" in text
    # every step of the trace is a row: the baseline, then each candidate tried
    assert "1 baseline the original reproduces" in text
    assert f"Command: sleuth reduce --spec {tmp_path / 'spec.yaml'}" in text


def _flaky_lines(tmp_path: Path) -> dict[str, Any]:
    """A file axis (20 lines, two needed) and N; it reproduces on every other call only (two trials
    per candidate always see it)."""
    lines = [f"line{i:02d}" for i in range(20)]
    lines[5], lines[15] = "alpha", "omega"
    (tmp_path / "lines.txt").write_text("\n".join(lines) + "\n")
    count = tmp_path / "calls"
    script = (
        f"c=$(cat {count} 2>/dev/null || echo 0); echo $((c + 1)) > {count}; "
        "grep -qx alpha {LINES} && grep -qx omega {LINES} && test {N} -ge 7 && test $((c % 2)) -eq 1 "
        "&& { echo boom >&2; exit 1; }; exit 0"
    )
    return {
        "name": "lines",
        "workload": {"command": script, "shell": True},
        "budget": {"baseline_trials": 2, "trials_per_candidate": 2},
        "axes": [{"name": "N", "kind": "param", "initial": 20}, {"name": "LINES", "kind": "file_lines",
                                                                  "path": "lines.txt"}],
    }  # fmt: skip


def test_a_flaky_file_axis_run_states_both_rates_then_cut_short_pages_from_its_journal(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    run_dir, summary = _reduce(sleuth, tmp_path, _flaky_lines(tmp_path))
    text = visible_text(_page(sleuth, run_dir))
    fl = summary["flaky"]
    assert f"reduced: {_moves(summary)}; {_original(summary)}" in text
    assert (
        f"{fl['reproduction_rate']} (95% CI {fl['reproduction_rate_ci']}) with the accepted candidates"
        in text
    )
    assert f"{fl['trials_per_candidate']} trial(s) per rejected candidate" in text
    assert f"miss probability {fl['miss_probability']}" in text
    assert "LINES file_lines 20 items" in text  # the axes table

    # what a kill -9 leaves: the journal cut before its end, no summary, trace, bundle or SHIP.md
    journal = (run_dir / "journal.jsonl").read_text().splitlines(keepends=True)
    accepted = [i for i, line in enumerate(journal) if '"verdict": "reproduces"' in line]
    kept = journal[: accepted[1] + 1]  # the second accepted step is the last event
    (run_dir / "journal.jsonl").write_text("".join(kept))
    for name in ("summary.json", "reduction_trace.jsonl", "SHIP.md"):
        (run_dir / name).unlink()
    shutil.rmtree(run_dir / "shrunken")
    page = _page(sleuth, run_dir)
    text = visible_text(page)
    tested = sum('"event": "candidate"' in line for line in kept)
    last = json.loads(kept[-1])
    assert f"Not finished (interrupted or still running): {tested} candidate(s) tested; best so far: " in text
    assert f"the last accepted candidate (axis {last['axis']})" in text
    assert 'class="headline unsure"' in page
    assert f"Candidate {last['hash'][:12]}, trial" in text and "boom" in text  # its log
    assert f"sleuth reduce resume {run_dir} continues" in text
    assert [t for t, _ in parse(page).tags].count("svg") == 1  # the verdicts by axis


def test_a_reduction_killed_early_has_a_page_and_its_raw_logs_reach_it_scrubbed_and_as_text(
    tmp_path: Path, sleuth_env: dict[str, str], sleuth: Callable[..., CliResult]
) -> None:
    secret, token = "hunter2-but-longer-value", "ghp_" + "Zx9" * 10
    evil = "<script>document.title='pwned'</script>"
    gate = tmp_path / "gate"
    gate.write_text("")
    spec = {
        "name": "killed",
        "workload": {
            # the candidates (N < 7) wait at the gate: the run is killed while one waits
            "command": f'echo "using $API_PASSWORD and {token} {evil}" >&2; test {{N}} -lt 7 && '
            f"while [ -e {gate} ]; do sleep 0.05; done; exit 1",
            "shell": True,
            "env": {"API_PASSWORD": secret},
        },
        "budget": {"baseline_trials": 1},
        "axes": [{"name": "N", "kind": "param", "initial": 100}],
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    proc = subprocess.Popen([sys.executable, "-m", "sleuth", "reduce", "--spec", "spec.yaml"], cwd=tmp_path,
                            env=sleuth_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        runs = tmp_path / "runs" / "reduce" / "killed"
        while time.monotonic() < deadline:
            dirs = sorted(runs.glob("*")) if runs.is_dir() else []
            if dirs and len(list(dirs[0].glob("candidates/*/t1"))) >= 2:  # the baseline and a candidate
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        gate.unlink()  # the waiting candidate ends
    (run_dir,) = dirs
    assert not (run_dir / "summary.json").exists()
    assert RunDirView.open(run_dir).verb == "reduce"
    events = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    baseline = next(e for e in events if e["event"] == "trial")
    assert secret in (run_dir / baseline["subdir"] / "t1" / "stderr").read_text()  # never scrubbed on disk
    page = _page(sleuth, run_dir)
    text = visible_text(page)
    assert (
        "Not finished (interrupted or still running): 0 candidate(s) tested; best so far: the original"
        in text
    )
    assert "using " in text and evil in text
    assert secret not in page and token not in page
    assert not [t for t, _ in parse(page).tags if t == "script"]


def test_a_run_dir_with_only_its_start_is_a_reduce_page(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    run_dir, _ = _reduce(sleuth, tmp_path, PARAM)
    journal = run_dir / "journal.jsonl"
    journal.write_text(journal.read_text().splitlines(keepends=True)[0])
    (run_dir / "summary.json").unlink()
    (run_dir / "reduction_trace.jsonl").unlink()
    page = build_page(RunDirView.open(run_dir))
    assert page.verb == "reduce"
    assert (
        page.headline
        == "Not finished (interrupted or still running): the original's trials are not all judged yet"
    )


def test_the_same_run_dir_gives_the_same_page_byte_for_byte(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    run_dir, _ = _reduce(sleuth, tmp_path, _flaky_lines(tmp_path))
    write_report(RunDirView.open(run_dir), run_dir / "a.html")
    write_report(RunDirView.open(run_dir), run_dir / "b.html")
    assert (run_dir / "a.html").read_bytes() == (run_dir / "b.html").read_bytes()


def test_a_long_search_cuts_its_steps_table(sleuth: Callable[..., CliResult], tmp_path: Path) -> None:
    values = [f"--a{i}" for i in range(196)]  # every one needed: each is tried alone and rejected
    spec = {
        "name": "long",
        "workload": {
            "command": ["sh", "-c", "test $# -lt 196 || { echo boom >&2; exit 1; }", "sh", "{FLAGS}"]
        },
        "budget": {"baseline_trials": 1},
        "axes": [{"name": "FLAGS", "kind": "arg_set", "values": values}],
    }
    run_dir, summary = _reduce(sleuth, tmp_path, spec)
    steps = len((run_dir / "reduction_trace.jsonl").read_text().splitlines())
    assert steps > 200
    text = visible_text(_page(sleuth, run_dir))
    assert f"200 of {steps} rows shown." in text
    assert f"not reduced: no axis could move; {_original(summary)}" in text


def test_a_cut_steps_table_keeps_the_accepted_steps(
    sleuth: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, _ = _reduce(sleuth, tmp_path, PARAM)
    trace = [json.loads(line) for line in (run_dir / "reduction_trace.jsonl").read_text().splitlines()]
    accepted = [i + 1 for i, r in enumerate(trace) if r["verdict"] == "reproduces" and r["phase"] == "search"]
    assert accepted and max(accepted) > 3  # an accepted step a cut by order alone would drop
    monkeypatch.setattr(reduce, "MAX_ROWS", 3)
    page = build_page(RunDirView.open(run_dir))
    (table,) = [
        b for s in page.sections if s.title == "Search steps" for b in s.blocks if isinstance(b, Table)
    ]
    assert table.cut == (3, len(trace))
    shown = [int(row[0]) for row in table.rows]
    assert shown[0] == 1 and set(accepted) <= set(shown) and shown == sorted(shown)


def test_a_reduction_stopped_by_its_budget_says_so_with_the_best_so_far_and_how_to_go_on(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    run_dir, summary = _reduce(sleuth, tmp_path, {**PARAM, "budget": {"baseline_trials": 1, "max_trials": 3}})
    assert summary["status"] == "budget_exhausted"
    page = _page(sleuth, run_dir)
    text = visible_text(page)
    moved = _moves({"axes": {n: r for n, r in summary["axes"].items() if r["moved"]}}) or "nothing moved"
    assert f"budget spent, best so far: {moved}; {_original(summary)}" in text
    assert 'class="headline unsure"' in page
    assert f"stopped: {summary['stopped']}" in text
    assert f"sleuth bundle {run_dir}" in text and f"sleuth reduce resume {run_dir} continues." in text


def test_an_unreadable_summary_is_said_and_the_page_comes_from_the_journal(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    run_dir, summary = _reduce(sleuth, tmp_path, PARAM)
    (run_dir / "summary.json").write_text(json.dumps(summary)[:40])  # cut short by a full disk
    page = visible_text(_page(sleuth, run_dir))  # before: exit 2, "summary.json: not readable as JSON"
    trace = (run_dir / "reduction_trace.jsonl").read_text().splitlines()
    searched = sum(1 for r in map(json.loads, trace) if r.get("phase") == "search")
    assert f"); from the journal: {searched} candidate(s) tested; best so far: " in page
    assert "summary.json is unreadable (" in page and "Not finished" not in page
