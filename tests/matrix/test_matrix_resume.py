"""The journal is the truth, once: kill -9 at random moments, resume up to three times, and every
trial is journaled exactly once, agrees with its files, and the answer is an uninterrupted run's."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import chaos
from tests.badinput import tree_state
from tests.matrix.conftest import default_signals, recipe_data

TRIALS = 5


def _data() -> dict[str, Any]:
    data = recipe_data(trials=TRIALS)
    data["cells"] = data["cells"][:3]
    data["workload"]["env"].update({"WORK_FAIL_P": "0.5", "WORK_SLEEP": "0.2"})
    return data


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in (run_dir / "journal.jsonl").read_text().splitlines() if ln.strip()]


def _finished(run_dir: Path) -> bool:
    ends = [e for e in _events(run_dir) if e["event"] == "end"]
    return bool(ends) and not ends[-1]["interrupted"]


def _start_and_kill(
    argv: list[str], env: dict[str, str], cwd: Path, after: float, output: Path
) -> Path | None:
    """Run ``argv``, SIGKILL it ``after`` seconds after it first wrote to its run dir's journal (a
    resume's first event, or a new run's start); the run dir."""
    sizes = {p: p.stat().st_size for p in output.glob("*/*/*/journal.jsonl")}
    proc = subprocess.Popen(default_signals(argv), env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    journal = None
    while time.monotonic() < deadline and proc.poll() is None:
        grown = [p for p in output.glob("*/*/*/journal.jsonl") if p.stat().st_size > sizes.get(p, 0)]
        if grown:
            journal = grown[0]
            break
        time.sleep(0.01)
    if journal is None:  # it ended before we saw it write: the run dir is still the one there is
        journal = next(iter(output.glob("*/*/*/journal.jsonl")), None)
    time.sleep(after)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return journal.parent if journal else None


@pytest.mark.parametrize("seed", [5 + 12 * i for i in chaos.seeds(3)])
def test_kill_9_and_resume_three_times_journals_each_trial_once(
    seed: int, sleuth: Callable[..., Any], write_recipe: Callable[..., Path], tmp_path: Path,
    sleuth_env: dict[str, str],
) -> None:  # fmt: skip
    rng = random.Random(seed)
    recipe = write_recipe(_data())
    reference = sleuth("matrix", "--recipe", recipe, "--jobs", "2", "--json", "--output", tmp_path / "ref")
    assert reference.rc in (0, 3), reference.stderr
    output = tmp_path / "runs"
    base = [sys.executable, "-m", "sleuth", "matrix"]
    run_dir = _start_and_kill([*base, "--recipe", str(recipe), "--jobs", "2"], sleuth_env, tmp_path,
                              rng.uniform(0.0, 1.2), output)  # fmt: skip
    assert run_dir is not None
    resumes, kills = 0, 1
    while resumes < 3 and not _finished(run_dir):
        _start_and_kill([*base, "resume", str(run_dir)], sleuth_env, tmp_path, rng.uniform(0.0, 0.8), output)
        resumes += 1
        kills += not _finished(run_dir)
    final = sleuth("matrix", "resume", run_dir, "--json")
    assert final.rc == reference.rc, final.stderr
    doc = final.json()

    events = _events(run_dir)
    trials = [e for e in events if e["event"] == "trial"]
    keys = Counter((e["cell"], e["index"]) for e in trials)
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]  # never re-appended
    on_disk = {
        (p.parents[2].name, int(p.parent.name)): json.loads(p.read_text())
        for p in run_dir.glob("cells/*/trials/*/result.json")
    }
    assert set(on_disk) == set(keys)  # one event per trial directory with a result, and no more
    for e in trials:
        assert e["trial"]["outcome"] == on_disk[(e["cell"], e["index"])]["outcome"]
    assert [c["counts"]["total"] for c in doc["cells"]] == [TRIALS] * 3  # the planned trials, exactly
    assert sum(1 for e in events if e["event"] == "end" and not e["interrupted"]) == 1
    # the answer is the uninterrupted run's, trial by trial (the workload is deterministic per trial)
    ref = reference.json()
    assert [c["classification"] for c in doc["cells"]] == [c["classification"] for c in ref["cells"]]
    for mine, theirs in zip(doc["cells"], ref["cells"], strict=True):
        assert [(t["index"], t["outcome"]) for t in mine["trials"]] == [
            (t["index"], t["outcome"]) for t in theirs["trials"]
        ]
    chaos.record("matrix", seed=seed, kills=kills, resumes=resumes + 1, trials=3 * TRIALS, journaled=len(trials),
                 lost=0, invented=0)  # fmt: skip


def test_resuming_a_finished_matrix_changes_nothing(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path]
) -> None:
    res = sleuth("matrix", "--recipe", write_recipe(_data()), "--json")
    run_dir = Path(res.json()["run_dir"])
    before = tree_state(run_dir)
    again = sleuth("matrix", "resume", run_dir)
    assert again.rc == res.rc
    assert f"{run_dir}: this matrix has finished; nothing to run" in again.stderr
    assert "matrix: cellwork" in again.stdout
    as_json = sleuth("matrix", "resume", run_dir, "--json")
    assert as_json.json()["already_finished"] is True
    assert as_json.json()["cells"] == res.json()["cells"]
    assert tree_state(run_dir) == before  # no second end event, no resume event, no rewritten report
    assert sum(1 for e in _events(run_dir) if e["event"] == "end") == 1


def test_replay_keys_trials_by_cell_and_index_not_by_order(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path]
) -> None:
    res = sleuth("matrix", "--recipe", write_recipe(_data()), "--json", "--jobs", "2")
    run_dir = Path(res.json()["run_dir"])
    journal = run_dir / "journal.jsonl"
    lines = journal.read_text().splitlines()
    head = [ln for ln in lines if json.loads(ln)["event"] not in {"trial", "end"}]
    trials = [ln for ln in lines if json.loads(ln)["event"] == "trial"]
    random.Random(1).shuffle(trials)
    kept = trials[:8]
    # as if killed after eight trials, finishing in another order, one of them journaled twice
    journal.write_text("\n".join([*head, *kept, kept[0]]) + "\n")
    again = sleuth("matrix", "resume", run_dir, "--json")
    assert again.rc == res.rc, again.stderr
    events = _events(run_dir)
    new = [e for e in events if e["event"] == "trial"][9:]
    assert len(new) == 3 * TRIALS - 8  # only the missing ones ran

    def outcomes(doc: dict[str, Any]) -> list[list[tuple[int, str, str | None]]]:
        return [[(t["index"], t["outcome"], t["signature"]) for t in c["trials"]] for c in doc["cells"]]

    assert outcomes(again.json()) == outcomes(res.json())
    assert [c["counts"] for c in again.json()["cells"]] == [c["counts"] for c in res.json()["cells"]]


def test_an_early_stop_lost_by_a_kill_is_found_again_on_resume(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path]
) -> None:
    """``--until-decided``: a kill -9 after the trial event that decided a look and before its
    ``cell_stopped`` event lost the stop; the resumed cell, past that look, ran on (15 trials where
    the uninterrupted run stopped at 10, another p).  Resume applies the rule again to the journal."""
    data = recipe_data(trials=20, until_decided=True)
    data["cells"] = [{"name": "baseline"}, {"name": "fix", "extra_env": {"WORK_FAIL_P": "0"}}]
    res = sleuth("matrix", "--recipe", write_recipe(data), "--json")  # one job: the seeded order
    assert res.rc == 0, res.stderr
    ref = res.json()
    assert [c["counts"]["total"] for c in ref["cells"]] == [20, 10]  # fix stopped at its 50% look
    run_dir = Path(ref["run_dir"])
    journal = run_dir / "journal.jsonl"
    lines = journal.read_text().splitlines()
    cut = next(i for i, ln in enumerate(lines) if json.loads(ln)["event"] == "cell_stopped")
    journal.write_text("\n".join(lines[:cut]) + "\n")  # as a kill -9 just before the stop leaves it
    kept = {(e["cell"], e["index"]) for e in map(json.loads, lines[:cut]) if e["event"] == "trial"}
    for trial in run_dir.glob("cells/*/trials/*"):
        if (trial.parents[1].name, int(trial.name)) not in kept:
            shutil.rmtree(trial)
    again = sleuth("matrix", "resume", run_dir, "--json")
    assert again.rc == 0, again.stderr
    doc = again.json()
    assert [c["counts"]["total"] for c in doc["cells"]] == [20, 10]
    for key in ("classification", "p_value", "p_adjusted"):
        assert [c[key] for c in doc["cells"]] == [c[key] for c in ref["cells"]], key
    stops = [e for e in _events(run_dir) if e["event"] == "cell_stopped"]
    assert [(e["cell"], e["indices"]) for e in stops] == [("fix", list(range(1, 11)))]
