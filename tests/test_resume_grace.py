"""A resume after a kill -9 of sleuth stops the trials the killed run left running as sleuth stops its
own: SIGTERM, the kill grace the run recorded, then SIGKILL (they were SIGKILLed at once, so a trap
that saves a checkpoint never ran).

The trial is a process tree (``sh`` and the ``tests/programs/saves_on_term.py`` it started): the
saver writes ``ready`` once its SIGTERM handler is set, ``term`` on SIGTERM and ``saved`` after a
save longer than the default grace (5 s), so only the run's own grace (60 s) lets it save.  Every
assertion is on those files, never on a duration.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from tests.conftest import CliResult, pid_alive
from tests.signals import kill_9_once_ready

SAVES = Path(__file__).parent / "programs" / "saves_on_term.py"
#: longer than the default grace: a resume that gave the default would kill the save
SAVE_S = "6"


def _tree(d: Path) -> list[str]:
    """The trial: a shell and the saver it waits for; once the saver has run, it succeeds at once."""
    script = f'[ -e {d}/ready ] && exit 0; "$0" {SAVES} {d} {SAVE_S} & echo $! > {d}/pid; wait'
    return ["sh", "-c", script, sys.executable]


def _saved(res: CliResult, d: Path, saver: int, rc: int = 0) -> None:
    assert res.rc == rc and "Traceback" not in res.stderr, res.stderr
    assert (d / "term").exists(), "the resume did not send SIGTERM"
    assert (d / "saved").exists(), "the resume killed the trial before its save ended"
    assert not pid_alive(saver)


def test_run_resume_gives_the_trial_left_running_the_runs_grace(
    sleuth, sleuth_env: dict[str, str], tmp_path: Path, evidence: Path
) -> None:
    saver = kill_9_once_ready(["run", "-n", "1", "--kill-grace", "60", "--", *_tree(evidence)],
                                         sleuth_env, tmp_path, evidence)  # fmt: skip
    (run_dir,) = (p.parent for p in (tmp_path / "runs").rglob("journal.jsonl"))
    res = sleuth("run", "--resume", run_dir)
    _saved(res, evidence, saver)
    events = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert {"event": "reaped", "process_groups": 1}.items() <= next(
        e for e in events if e["event"] == "reaped"
    ).items()


def test_matrix_resume_gives_the_trial_left_running_the_recipes_grace(
    sleuth, sleuth_env: dict[str, str], tmp_path: Path, evidence: Path
) -> None:
    recipe = tmp_path / "recipe.yaml"
    workload = {"name": "saves", "command": _tree(evidence), "kill_grace": 60}
    recipe.write_text(yaml.safe_dump({"schema_version": 1, "seed": 1, "workload": workload, "trials": 1,
                                      "cells": [{"name": "baseline", "mitigations": ["none"]}]}))  # fmt: skip
    saver = kill_9_once_ready(["matrix", "--recipe", str(recipe)], sleuth_env, tmp_path, evidence)
    (run_dir,) = (p.parent for p in (tmp_path / "runs").rglob("journal.jsonl"))
    res = sleuth("matrix", "resume", run_dir)
    _saved(res, evidence, saver)


def test_reduce_resume_gives_the_trial_left_running_the_specs_grace(
    sleuth, sleuth_env: dict[str, str], tmp_path: Path, evidence: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "saves", "workload": {"command": [*_tree(evidence), "{N}"], "kill_grace": 60},
        "oracle": {"kind": "regex", "pattern": "never printed"}, "budget": {"baseline_trials": 1},
        "axes": [{"name": "N", "kind": "param", "initial": 4, "floor": 1}],
    }))  # fmt: skip
    saver = kill_9_once_ready(["reduce", "--spec", str(spec), "--output", str(tmp_path / "out")],
                                         sleuth_env, tmp_path, evidence)  # fmt: skip
    (run_dir,) = (tmp_path / "out" / "reduce" / "saves").iterdir()
    res = sleuth("reduce", "resume", run_dir)
    _saved(res, evidence, saver, rc=3)  # the rerun prints nothing: not reproducible


def test_bisect_resume_gives_the_test_left_running_the_runs_grace(
    sleuth, sleuth_env: dict[str, str], tmp_path: Path, evidence: Path
) -> None:
    (tmp_path / "l.txt").write_text("a\nb\nc\n")
    argv = ["bisect", "list", "l.txt", "--flaky", "off", "--jobs", "1", "--kill-grace", "60", "--output",
            str(tmp_path / "out"), "--", *_tree(evidence)]  # fmt: skip
    saver = kill_9_once_ready(argv, sleuth_env, tmp_path, evidence)
    (run_dir,) = (p.parent for p in (tmp_path / "out").rglob("journal.jsonl"))
    res = sleuth("bisect", "resume", run_dir)
    assert (evidence / "term").exists() and (evidence / "saved").exists(), res.stderr
    assert "Traceback" not in res.stderr and not pid_alive(saver), res.stderr
