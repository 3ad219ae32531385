"""Ctrl-C at each stage of a reduction (while a candidate runs, while the bundle is written) and
kill -9 twice with two resumes: exit 130, no workload left running, and the resumed run ends with
a whole bundle, every journaled trial run once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.reduce.conftest import KNOBS_MINIMUM, doc, env_with_path, knobs_spec
from tests.reduce.test_resume import journal_trials
from tests.signals import sleuth_proc

#: writes its pid to $PIDS, sleeps $NAP seconds unless its file is the original (the baseline is
#: quick), fails when its file holds "needle"
SLOW = """\
import os, sys, time
with open(os.environ["PIDS"], "a") as fh:
    fh.write(f"{os.getpid()}\\n")
text = open(sys.argv[1]).read()
if text.count("\\n") < 13:
    time.sleep(float(os.environ.get("NAP", "0")))
if "needle" in text:
    print("boom")
    raise SystemExit(1)
"""


def _slow_spec(tmp_path: Path, nap: float) -> Path:
    (tmp_path / "w.py").write_text(SLOW)
    (tmp_path / "lines.txt").write_text("".join(f"l{i}\n" for i in range(12)) + "needle\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "slow",
        "workload": {"command": [sys.executable, "w.py", "{LINES}"], "timeout": 60,
                     "env": {"PIDS": str(tmp_path / "pids"), "NAP": str(nap)}},
        "oracle": {"kind": "exit_code"},
        "budget": {"baseline_trials": 1},
        "axes": [{"name": "LINES", "kind": "file_lines", "path": "lines.txt"}],
    }))  # fmt: skip
    return spec


def _wait_for(cond: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 120
    while not cond():
        assert proc.poll() is None, f"sleuth ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _alive(pids_file: Path) -> list[int]:
    """The workloads still running (a zombie waiting for init to reap it is not running)."""
    alive = []
    for line in pids_file.read_text().split():
        try:
            stat = Path(f"/proc/{line}/stat").read_text()
        except OSError:
            continue
        if stat.rpartition(")")[2].split()[0] != "Z":
            alive.append(int(line))
    return alive


def _interrupt_when(
    tmp_path: Path, spec: Path, cond: Callable[[Path], bool], what: str, *extra: str, settle: float = 0.0
) -> tuple[int, str, Path]:
    proc = sleuth_proc(["reduce", "--spec", str(spec), *extra], env_with_path(tmp_path), tmp_path,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    runs = tmp_path / "runs" / "reduce" / "slow"
    try:
        _wait_for(lambda: runs.is_dir() and any(cond(d) for d in runs.iterdir()), proc, what)
        time.sleep(settle)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out + err, next(runs.iterdir())


def _resume_whole(cli, run: Path) -> dict:
    res = cli("reduce", "resume", run, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    d = doc(res)
    assert d["status"] == "reduced" and d["final"]["axes"]["LINES"] == ["needle"]
    assert (run / "shrunken" / "inputs" / "lines.txt").read_text() == "needle\n"
    assert (run / "shrunken" / "run_repro.sh").is_file() and (run / "SHIP.md").is_file()
    trials = journal_trials(run)
    assert len(trials) == len(set(trials)), "a journaled trial ran again"
    return d


def test_ctrl_c_while_a_candidate_runs(cli, tmp_path: Path) -> None:
    spec = _slow_spec(tmp_path, nap=30)
    pids = tmp_path / "pids"
    # the baseline has failed (judged) and a candidate's workload is asleep
    rc, err, run = _interrupt_when(
        tmp_path, spec, lambda d: (d / "journal.jsonl").is_file() and len(journal_trials(d)) >= 1 and pids.is_file() and len(pids.read_text().split()) >= 2,
        "a candidate to start",
    )  # fmt: skip
    assert rc == 130, err[-2000:]
    assert "Traceback" not in err
    assert _alive(pids) == []
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    # the scratch copies (links back into the workload's directory) do not outlive the run
    assert not list(run.glob("candidates/*/work"))
    assert "sleuth reduce resume" in err


def test_ctrl_c_while_the_bundle_is_written_then_resume(cli, tmp_path: Path) -> None:
    spec = _slow_spec(tmp_path, nap=0)
    for i in range(400):  # something to copy into inputs/
        (tmp_path / "data" / f"d{i // 100}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / f"d{i // 100}" / f"f{i}").write_text("x\n")
    rc, err, run = _interrupt_when(tmp_path, spec, lambda d: (d / "shrunken").is_dir(), "the bundle")
    assert rc in (0, 130), err[-2000:]  # 0: the bundle was written before the signal landed
    assert "Traceback" not in err
    assert _alive(tmp_path / "pids") == []
    if rc == 130:
        assert f"sleuth reduce resume {run}" in err  # the summary was not written: say how to go on
        _resume_whole(cli, run)


def _kill_9_when(argv: list[str], tmp_path: Path, runs: Path, n: int) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "sleuth", *argv], cwd=tmp_path, env=env_with_path(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        dirs = sorted(runs.glob("*")) if runs.is_dir() else []
        if dirs and (dirs[-1] / "journal.jsonl").is_file() and len(journal_trials(dirs[-1])) >= n:
            break
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # sleuth and its running workloads, as a crash would
    proc.wait(timeout=30)


@pytest.mark.slow
def test_kill_9_twice_and_resume_twice(cli, tmp_path: Path) -> None:
    spec = knobs_spec(tmp_path)
    full = doc(cli("reduce", "--spec", spec, "--json", "--name", "full"))
    runs = tmp_path / "runs" / "reduce" / "knobs"
    _kill_9_when(["reduce", "--spec", str(spec)], tmp_path, runs, 4)
    run = sorted(runs.glob("*"))[-1]
    first = journal_trials(run)
    _kill_9_when(["reduce", "resume", str(run)], tmp_path, runs, len(first) + 4)
    second = journal_trials(run)
    assert second[: len(first)] == first and len(second) > len(first)
    res = cli("reduce", "resume", run, "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    got = doc(res)
    assert got["final"]["axes"] == full["final"]["axes"] == KNOBS_MINIMUM
    after = journal_trials(run)
    assert len(after) == len(set(after)) == full["trials"], "a journaled trial ran again or was lost"
    assert after[: len(second)] == second


#: fails naming a word a --scrub pattern hides; a candidate sleeps while the $GATE file exists
SCRUBBED_FAILURE = """\
import os, sys, time
text = open(sys.argv[1]).read()
if text.count("\\n") < 13 and os.path.exists(os.environ["GATE"]):
    time.sleep(30)
if "needle" in text:
    raise RuntimeError("auth failed for project zebrafishy")
"""


def test_ctrl_c_then_resume_with_a_scrubbed_failure_signature(cli, tmp_path: Path) -> None:
    """Ctrl-C scrubs the run dir (the journal too): the resumed run replayed the baseline as "...
    project <redacted>", judged every new trial ("... project zebrafishy") another failure, and
    ended not_reduced."""
    (tmp_path / "w.py").write_text(SCRUBBED_FAILURE)
    (tmp_path / "lines.txt").write_text("".join(f"l{i}\n" for i in range(12)) + "needle\n")
    gate = tmp_path / "gate"
    gate.touch()
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "slow",
        "workload": {"command": [sys.executable, "w.py", "{LINES}"], "timeout": 60, "env": {"GATE": str(gate)}},
        "budget": {"baseline_trials": 1},
        "axes": [{"name": "LINES", "kind": "file_lines", "path": "lines.txt"}],
    }))  # fmt: skip
    rc, err, run = _interrupt_when(
        tmp_path,
        spec,
        lambda d: (d / "journal.jsonl").is_file() and len(journal_trials(d)) >= 1,
        "the baseline",
        "--scrub",
        "zebra[a-z]+",
        settle=0.5,  # a candidate is asleep
    )
    assert rc == 130, err[-2000:]
    assert "zebrafishy" not in (run / "journal.jsonl").read_text()
    gate.unlink()
    res = cli("reduce", "resume", run, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    d = doc(res)
    assert d["status"] == "reduced" and d["final"]["axes"] == {"LINES": ["needle"]}, d["final"]
