"""A Ctrl-C while a resume takes up what a killed sleuth left running (``reap_orphans``: SIGTERM,
the run's kill grace, SIGKILL) is honoured: what is left gets SIGKILL at once, and the verb ends as
on any Ctrl-C before its first trial (``interrupted``, exit 130; supervise: its own signalled
status), the run dir resumable.

The leftover trial (``tests/programs/shrugs_term.py``) shrugs SIGTERM off and the grace is 600 s,
so a take-up that waited out the grace would hang the test (its ``communicate`` timeout is a hang
guard, not a timing claim).  Every assertion is on an exit code, the output, and the leftover pid.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import pid_alive
from tests.signals import kill_9_once_ready, signal_once_there, sleuth_proc

SHRUGS = Path(__file__).parent / "programs" / "shrugs_term.py"
GRACE = "600"


def _trial(d: Path) -> list[str]:
    return [sys.executable, str(SHRUGS), str(d)]


def _interrupt_the_take_up(
    args: list[str], env: dict[str, str], cwd: Path, d: Path, sig: int = signal.SIGINT
) -> tuple[int, str]:
    """Start ``sleuth ARGS`` (a resume), send ``sig`` once its take-up has SIGTERMed the leftover
    (the leftover wrote ``term``); its exit code and output (stdout, then stderr)."""
    with sleuth_proc(args, env, cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            out, err = signal_once_there(proc, d / "term", sig, timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("the take-up waited out the kill grace after the signal")
    assert (d / "term").exists(), err
    return proc.returncode, out + err


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]


def test_run_resume_interrupted_while_taking_up_kills_the_leftover_and_stays_resumable(
    sleuth, sleuth_env: dict[str, str], tmp_path: Path, evidence: Path
) -> None:
    argv = ["run", "-n", "1", "--kill-grace", GRACE, "--output", str(tmp_path / "runs"), "--"]
    leftover = kill_9_once_ready([*argv, *_trial(evidence)], sleuth_env, tmp_path, evidence)
    (run_dir,) = (p.parent for p in (tmp_path / "runs").rglob("journal.jsonl"))
    rc, out = _interrupt_the_take_up(["run", "--resume", str(run_dir)], sleuth_env, tmp_path, evidence)
    # as any interrupt before the first trial: the summary (0 of 1 trials, interrupted), exit 130
    assert rc == 130 and "(interrupted)" in out and "Traceback" not in out, out
    assert not pid_alive(leftover), out
    assert json.loads((run_dir / "summary.json").read_text())["summary"]["interrupted"] is True
    assert not any(e["event"] == "trial" for e in _events(run_dir))  # nothing ran
    res = sleuth("run", "--resume", run_dir)  # the trial runs now (and passes: it started before)
    assert res.rc == 0, res.stderr
    assert sum(e["event"] == "trial" for e in _events(run_dir)) == 1


def test_run_resume_sigterm_while_taking_up_is_an_interrupt_too(
    sleuth_env: dict[str, str], tmp_path: Path, evidence: Path
) -> None:
    argv = ["run", "-n", "1", "--kill-grace", GRACE, "--output", str(tmp_path / "runs"), "--"]
    leftover = kill_9_once_ready([*argv, *_trial(evidence)], sleuth_env, tmp_path, evidence)
    (run_dir,) = (p.parent for p in (tmp_path / "runs").rglob("journal.jsonl"))
    rc, out = _interrupt_the_take_up(["run", "--resume", str(run_dir)], sleuth_env, tmp_path, evidence,
                                     signal.SIGTERM)  # fmt: skip
    assert rc == 130 and "(interrupted)" in out and "Traceback" not in out, out
    assert not pid_alive(leftover), out


def test_matrix_resume_interrupted_while_taking_up_kills_the_leftover_and_stays_resumable(
    sleuth, sleuth_env: dict[str, str], tmp_path: Path, evidence: Path
) -> None:
    recipe = tmp_path / "recipe.yaml"
    workload = {"name": "shrugs", "command": _trial(evidence), "kill_grace": int(GRACE)}
    recipe.write_text(yaml.safe_dump({"schema_version": 1, "seed": 1, "workload": workload, "trials": 1,
                                      "cells": [{"name": "baseline", "mitigations": ["none"]}]}))  # fmt: skip
    argv = ["matrix", "--recipe", str(recipe), "--output", str(tmp_path / "runs")]
    leftover = kill_9_once_ready(argv, sleuth_env, tmp_path, evidence)
    (run_dir,) = (p.parent for p in (tmp_path / "runs").rglob("journal.jsonl"))
    rc, out = _interrupt_the_take_up(["matrix", "resume", str(run_dir)], sleuth_env, tmp_path, evidence)
    assert rc == 130 and out.endswith("interrupted\n") and "Traceback" not in out, out
    assert not pid_alive(leftover), out
    assert not any(e["event"] == "trial" for e in _events(run_dir))
    res = sleuth("matrix", "resume", run_dir, "--json")
    assert res.rc == 0, res.stderr
    assert sum(e["event"] == "trial" for e in _events(run_dir)) == 1


def test_supervise_rerun_interrupted_while_taking_up_kills_the_leftover_and_starts_no_cycle(
    sleuth_env: dict[str, str], tmp_path: Path, evidence: Path
) -> None:
    argv = ["supervise", "--log-dir", str(tmp_path / "sup"), "--max-restarts", "0", "--kill-grace", GRACE,
            "--", *_trial(evidence)]  # fmt: skip
    leftover = kill_9_once_ready(argv, sleuth_env, tmp_path, evidence)
    rc, out = _interrupt_the_take_up(argv, sleuth_env, tmp_path, evidence)
    # as a Ctrl-C before any cycle: no cycle starts, the signal's status
    assert rc == 128 + signal.SIGINT and "Traceback" not in out, out
    assert "got signal 2 before cycle 1 started; not started" in out
    assert not pid_alive(leftover), out
    lines = (tmp_path / "sup" / "cycles.jsonl").read_text().splitlines()
    cycles = [e for e in map(json.loads, lines) if e["event"] == "cycle"]
    assert [c["outcome"] for c in cycles] == ["lost"], cycles


def test_reduce_resume_interrupted_while_taking_up_kills_the_leftover(
    sleuth_env: dict[str, str], tmp_path: Path, evidence: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "shrugs", "workload": {"command": [*_trial(evidence), "{N}"], "kill_grace": int(GRACE)},
        "oracle": {"kind": "regex", "pattern": "never printed"}, "budget": {"baseline_trials": 1},
        "axes": [{"name": "N", "kind": "param", "initial": 4, "floor": 1}],
    }))  # fmt: skip
    argv = ["reduce", "--spec", str(spec), "--output", str(tmp_path / "out")]
    leftover = kill_9_once_ready(argv, sleuth_env, tmp_path, evidence)
    (run_dir,) = (tmp_path / "out" / "reduce" / "shrugs").iterdir()
    rc, out = _interrupt_the_take_up(["reduce", "resume", str(run_dir)], sleuth_env, tmp_path, evidence)
    assert rc == 130 and out.endswith("interrupted\n") and "Traceback" not in out, out
    assert not pid_alive(leftover), out
    assert not (run_dir / "summary.json").exists()  # not finished: a resume goes on


def test_bisect_resume_interrupted_while_taking_up_kills_the_leftover(
    sleuth_env: dict[str, str], tmp_path: Path, evidence: Path
) -> None:
    (tmp_path / "l.txt").write_text("a\nb\nc\n")
    argv = ["bisect", "list", "l.txt", "--flaky", "off", "--jobs", "1", "--kill-grace", GRACE, "--output",
            str(tmp_path / "out"), "--", *_trial(evidence)]  # fmt: skip
    leftover = kill_9_once_ready(argv, sleuth_env, tmp_path, evidence)
    (run_dir,) = (p.parent for p in (tmp_path / "out").rglob("journal.jsonl"))
    rc, out = _interrupt_the_take_up(["bisect", "resume", str(run_dir)], sleuth_env, tmp_path, evidence)
    assert rc == 130 and out.endswith("interrupted\n") and "Traceback" not in out, out
    assert not pid_alive(leftover), out
    assert not any(e["event"] == "end" for e in _events(run_dir))
