"""kill -9 at seeded random moments, then ``sleuth reduce resume``: the same final result as an
uninterrupted run of the same deterministic workload, and no journaled trial is run again."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.reduce.conftest import KNOBS_MINIMUM, doc, env_with_path, knobs_spec


def journal_trials(run: Path) -> list[tuple[str, str]]:
    events = [json.loads(x) for x in (run / "journal.jsonl").read_text().splitlines() if x.endswith("}")]
    return [(e["subdir"], e["trial"]["id"]) for e in events if e.get("event") == "trial"]


def kill_after(spec: Path, tmp_path: Path, n_trials: int) -> Path:
    """Start a reduction, SIGKILL it once its journal holds ``n_trials`` trials; its run dir."""
    env = env_with_path(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "sleuth", "reduce", "--spec", str(spec), "--json"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    runs = tmp_path / "runs" / "reduce" / "knobs"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            dirs = sorted(runs.glob("*")) if runs.is_dir() else []
            if dirs and (dirs[-1] / "journal.jsonl").is_file() and len(journal_trials(dirs[-1])) >= n_trials:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    return sorted(runs.glob("*"))[-1]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 11])
def test_kill_9_then_resume_gives_the_uninterrupted_result(cli, tmp_path: Path, seed: int) -> None:
    spec = knobs_spec(tmp_path)
    full = doc(cli("reduce", "--spec", spec, "--json", "--name", "full"))
    assert full["final"]["axes"] == KNOBS_MINIMUM
    n = random.Random(seed).randrange(2, full["trials"] - 2)
    run = kill_after(spec, tmp_path, n)
    before = journal_trials(run)
    assert len(before) >= min(n, 2)
    res = cli("reduce", "resume", run, "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    got = doc(res)
    assert got["final"]["axes"] == full["final"]["axes"]
    assert got["trials"] == full["trials"] and got["oracle_calls"] == full["oracle_calls"]
    after = journal_trials(run)
    assert len(after) == len(set(after)), "a journaled trial ran again"
    assert after[: len(before)] == before
    assert len(after) == full["trials"]
    trace = [json.loads(x) for x in (run / "reduction_trace.jsonl").read_text().splitlines()]
    assert any(r.get("replayed") for r in trace[1:]) or len(before) <= 2


def test_resume_errors_are_one_line(cli, tmp_path: Path) -> None:
    res = cli("reduce", "resume", tmp_path / "nope")
    assert (
        res.returncode == 2 and "no such run dir" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    )
    (tmp_path / "empty").mkdir()
    res = cli("reduce", "resume", tmp_path / "empty")
    assert res.returncode == 2 and "not a sleuth reduce run dir" in res.stderr


def test_resume_refuses_a_changed_spec(cli, tmp_path: Path) -> None:
    spec = knobs_spec(tmp_path, budget={"baseline_trials": 1, "max_trials": 3})
    d = doc(cli("reduce", "--spec", spec, "--json"))
    spec.write_text(spec.read_text() + "\n# edited\n")
    res = cli("reduce", "resume", d["run_dir"], "--json")
    assert res.returncode == 2 and "changed since the run started" in res.stderr


def test_a_resume_counts_trials_against_the_spec_budget(cli, tmp_path: Path) -> None:
    """Progress after a resume says "trial N/<budget>" (it said "/0": a resume starts without the spec)."""
    from sleuth.reduce.spec import BudgetSpec

    spec = knobs_spec(tmp_path)
    run = kill_after(spec, tmp_path, 2)
    res = cli("reduce", "resume", run)
    assert res.returncode == 0, res.stderr[-3000:]
    budget = BudgetSpec().max_trials
    assert f"/{budget})" in res.stderr and "/0)" not in res.stderr, res.stderr[-2000:]


def test_resume_refuses_an_edited_input_file(cli, tmp_path: Path) -> None:
    """The file a file_lines axis shrinks was edited after the run started: resume went on silently
    over the new content (a summary whose "initial" the journaled trials never ran)."""
    spec = knobs_spec(tmp_path, budget={"baseline_trials": 1, "max_trials": 3})
    d = doc(cli("reduce", "--spec", spec, "--json"))
    lines = tmp_path / "lines.txt"
    original = lines.read_bytes()
    lines.write_bytes(original + b"one more\n")
    res = cli("reduce", "resume", d["run_dir"], "--json")
    assert res.returncode == 2 and res.stdout == "", res.stdout
    assert res.stderr.strip().splitlines() == [
        f"error: {d['run_dir']}: its input {lines} changed since the run started; "
        "restore it, or start a new reduction"
    ]
    lines.write_bytes(original)
    assert cli("reduce", "resume", d["run_dir"], "--json").returncode == 0
    # a run dir written before the inputs were recorded still resumes
    config = Path(d["run_dir"]) / "reduce.json"
    config.write_text(
        json.dumps({k: v for k, v in json.loads(config.read_text()).items() if k != "inputs_sha256"})
    )
    lines.write_bytes(original + b"one more\n")
    assert cli("reduce", "resume", d["run_dir"], "--json").returncode == 0


def test_a_run_dir_without_its_secrets_json_says_what_is_lost(cli, tmp_path: Path) -> None:
    """Resume and bundle said "export them in this shell", but neither reads the shell for them."""
    spec = knobs_spec(tmp_path, budget={"baseline_trials": 1, "max_trials": 3})
    d = doc(cli("reduce", "--spec", spec, "--json", "--scrub", "omega"))
    (Path(d["run_dir"]) / "secrets.json").unlink()
    for args in (["reduce", "resume", d["run_dir"]], ["bundle", d["run_dir"]]):
        res = cli(*args)
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip().splitlines() == [
            f"error: {d['run_dir']}: secrets.json is gone or lacks the --scrub patterns (kept to scrub "
            "everything the run writes); copy secrets.json back from where the reduction ran, or start "
            "a new reduction"
        ]


def test_a_run_killed_mid_search_journals_no_secret(cli, tmp_path: Path) -> None:
    """A failure that quotes the command's ``--password`` value: its signature reached the journal
    and every result.json as it was, until the scrub pass at the end, which a kill -9 skips."""
    spec = knobs_spec(tmp_path)
    data = yaml.safe_load(spec.read_text())
    data["workload"]["command"] += ["--password", "hunter2xyz"]
    spec.write_text(yaml.safe_dump(data))
    knobs = tmp_path / "knobs.py"
    knobs.write_text(
        knobs.read_text().replace(
            'print(f"boom at step {step}")\n        raise SystemExit(1)',
            'raise RuntimeError(f"boom at step {step} for hunter2xyz")',
        )
    )
    assert "hunter2xyz" in knobs.read_text()
    run = kill_after(spec, tmp_path, 6)
    assert len(journal_trials(run)) >= 6
    kept = [run / "journal.jsonl", *run.glob("candidates/*/t*/result.json")]
    assert not [p for p in kept if "hunter2xyz" in p.read_text()]


def test_a_scrub_pattern_matching_the_spec_path_keeps_the_run_resumable(cli, tmp_path: Path) -> None:
    """``--scrub acme`` for a project under ``~/acme-train/``: reduce.json held the spec's path as
    ``.../<redacted>-train/spec.yaml`` ("its spec ... is gone"), and the resume hint on the terminal
    named a run dir that does not exist."""
    proj = tmp_path / "acme-train"
    proj.mkdir()
    spec = knobs_spec(proj, budget={"baseline_trials": 1, "max_trials": 6})
    runs = tmp_path / "acme-runs"
    res = cli("reduce", "--spec", spec, "--scrub", "acme", env={"SLEUTH_OUTPUT": str(runs)})
    assert res.returncode == 0, res.stderr[-2000:]
    run = next((runs / "reduce" / "knobs").iterdir())
    assert f"bundle: {run}" in res.stdout
    assert "acme" not in (run / "reduce.json").read_text()
    again = cli("reduce", "resume", run, "--json", env={"SLEUTH_OUTPUT": str(runs)})
    assert again.returncode == 0, again.stderr[-2000:]
    assert doc(again)["status"] == "budget_exhausted"


def test_resuming_a_finished_reduction_runs_nothing_and_writes_nothing(cli, tmp_path: Path) -> None:
    """``sleuth reduce resume`` on a reduction that had ended searched again: it journaled a second
    ``resume``/``done``, rewrote summary.json, SHIP.md and the trace (with --jobs 2 its speculative
    probes even ran new trials, and the summary's counts changed).  As with bisect and matrix, a
    finished run is reported as it is, with its exit code."""
    spec = knobs_spec(tmp_path)
    first = doc(cli("reduce", "--spec", spec, "--json"))
    assert first["status"] == "reduced"
    run = Path(first["run_dir"])

    def files() -> dict[str, bytes]:
        return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}

    before = files()
    res = cli("reduce", "resume", run)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{run}: this reduction has finished; nothing to run (the summary follows)" in res.stderr
    assert "reduced: knobs" in res.stdout and f"bundle: {run}" in res.stdout
    again = cli("reduce", "resume", run, "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert doc(again) == {**first, "already_finished": True}
    assert files() == before
    # the spec is not needed to report a finished run
    spec.unlink()
    assert cli("reduce", "resume", run).returncode == 0


def test_a_reduce_run_dir_given_to_another_verbs_resume_names_reduce_resume(cli, tmp_path: Path) -> None:
    """``matrix resume`` said "not a sleuth matrix run dir (not a matrix run dir)" and ``bisect
    resume`` "its start event has no flags": neither named the command that resumes it."""
    spec = knobs_spec(tmp_path, budget={"baseline_trials": 1, "max_trials": 3})
    run = doc(cli("reduce", "--spec", spec, "--json"))["run_dir"]
    said = {
        ("matrix", "resume"): "a run dir of sleuth reduce, not of sleuth matrix",
        ("bisect", "resume"): "a run dir of sleuth reduce, not of sleuth bisect",
        ("run", "--resume"): "a run dir of sleuth reduce, not of sleuth run",  # said: no 'config' object
    }
    runs = doc(cli("run", "--trials", "1", "--output", tmp_path / "o", "--json", "--", "true"))["run_dir"]
    res = cli("reduce", "resume", runs)  # and the other way round: it said "no reduce.json"
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        f"error: {runs}: a run dir of sleuth run, not of sleuth reduce; resume it with: sleuth run --resume {runs}"
    ], res.stderr
    for (verb, how), what in said.items():
        message = f"{what}; resume it with: sleuth reduce resume {run}"
        res = cli(verb, how, run)
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip().splitlines() == [f"error: {run}: {message}"]
