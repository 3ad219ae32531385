"""``sleuth run --resume``: the journal is the truth, once (issue 8 row 1).

A run killed with SIGKILL at random moments and resumed (and killed again while resuming) ends
with exactly one ``trial`` event per trial directory that has a ``result.json``, each agreeing
with that file; no trial that had a result is run again; the final counts are the planned ones and
equal what an uninterrupted run gives.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests import chaos
from tests.signals import sleuth_proc

PY = sys.executable
TRIALS = 24

#: each trial marks its start (id and pid), prints one line, sleeps, and fails iff its id is listed
SCRIPT = (
    ': > "$MARKS/$SLEUTH_TRIAL_ID-$$"; echo "run $SLEUTH_TRIAL_ID $$"; sleep 0.1; '
    'case " $FAILS " in *" $SLEUTH_TRIAL_ID "*) echo "boom $SLEUTH_TRIAL_ID" >&2; exit 1;; esac'
)


def _start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return sleuth_proc(["run", *args], env, cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _events(rd: Path) -> list[dict]:
    if not (rd / "journal.jsonl").exists():  # killed between the run dir's mkdir and its journal
        return []
    # a kill -9 may cut the last line (no newline yet): it is not an event
    complete = (rd / "journal.jsonl").read_text().split("\n")[:-1]
    return [json.loads(line) for line in complete if line.strip()]


def _with_result(rd: Path) -> dict[str, str]:
    """Trial id -> outcome of every trial dir that has a result.json."""
    out = {}
    for d in sorted((rd / "trials").glob("*")) if (rd / "trials").is_dir() else []:
        if (d / "result.json").is_file():
            out[d.name] = json.loads((d / "result.json").read_text())["outcome"]
    return out


def _marks(marks: Path) -> Counter[str]:
    return Counter(p.name.split("-")[0] for p in marks.iterdir())


def _setup(tmp_path: Path, sleuth_env: dict[str, str], seed: int) -> tuple[dict[str, str], Path, set[str]]:
    rng = random.Random(seed)
    fails = {f"{i:04d}" for i in range(1, TRIALS + 1) if rng.random() < 0.3}
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**sleuth_env, "MARKS": str(marks), "FAILS": " ".join(sorted(fails))}
    return env, marks, fails


@pytest.mark.parametrize("seed", chaos.seeds(6))
def test_kill_9_at_random_moments_and_resume_up_to_three_times(sleuth_env, tmp_path: Path, seed: int) -> None:
    env, marks, fails = _setup(tmp_path, sleuth_env, seed)
    rng = random.Random(1000 + seed)

    def launch(rd: Path | None) -> subprocess.Popen[bytes]:
        args = ["--resume", str(rd)] if rd else ["-n", str(TRIALS), "-j", "3", "--", "sh", "-c", SCRIPT]
        return _start(args, env, tmp_path)

    had_result: dict[str, int] = {}  # trial id -> its start marks when it first had a result
    rd: Path | None = None
    proc = launch(None)
    kills = rng.randint(1, 3)  # the first run and up to two resumes are killed; the last resume finishes
    killed = 0
    for attempt in range(kills + 1):
        last = attempt == kills
        if not last:
            # a moment inside the run: once this process has started a trial of its own (start-up
            # included, most moments would fall after a short run ended), then up to 0.6 s later
            started = sum(_marks(marks).values())
            deadline = time.monotonic() + 30
            while (
                proc.poll() is None and sum(_marks(marks).values()) == started and time.monotonic() < deadline
            ):
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.6))
            killed += proc.poll() is None
            proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=120)
        runs = sorted((tmp_path / "runs" / "run").glob("*/*"))
        if runs and not any(e["event"] == "start" for e in _events(runs[0])):
            shutil.rmtree(runs[0])  # killed between the run dir's mkdir and its start event: start over
            runs = []
        rd = runs[0] if runs else None
        if rd is not None:
            counts = _marks(marks)
            for tid in _with_result(rd):
                had_result.setdefault(tid, counts[tid])
        if not last:
            proc = launch(rd)
    assert rc in (0, 1) and rd is not None, rc
    results = _with_result(rd)
    trial_events = [e for e in _events(rd) if e["event"] == "trial"]
    journaled = Counter(e["trial"]["id"] for e in trial_events)
    # exactly one trial event per trial dir with a result, agreeing with it
    assert journaled == Counter(results.keys()), (journaled, results)
    for e in trial_events:
        assert e["trial"]["outcome"] == results[e["trial"]["id"]]
    # a trial that had a result was never started again
    counts = _marks(marks)
    rerun = {tid: (n, counts[tid]) for tid, n in had_result.items() if counts[tid] != n}
    assert not rerun, f"trials run again after they had a result: {rerun}"
    # the answer is the uninterrupted one: every planned trial, each with its own outcome
    summary = json.loads((rd / "summary.json").read_text())
    assert summary["summary"]["trials"] == TRIALS and "interrupted" not in summary["summary"]
    assert {t["id"] for t in summary["trials"] if t["outcome"] == "fail"} == fails
    assert summary["summary"]["fail"] == len(fails)
    # a rerun trial's stdout is its own, not appended to the killed attempt's
    for tid in results:
        lines = (rd / "trials" / tid / "stdout").read_text().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"run {tid} "), (tid, lines)
    assert [e["event"] for e in _events(rd)].count("end") >= 1
    chaos.record("run", seed=seed, kills=killed, resumes=kills, trials=TRIALS, journaled=len(trial_events),
                 lost=0, invented=0, rerun=0)  # fmt: skip


def _finished_run(sleuth, tmp_path: Path, *args: str) -> Path:
    res = sleuth("run", "-n", "3", "--json", *args, "--", PY, "-c", "import sys; sys.exit(1)")
    assert res.rc == 1, res.stderr
    return Path(res.json()["run_dir"])


def test_resuming_a_finished_run_is_a_no_op_that_says_so(sleuth, tmp_path: Path) -> None:
    rd = _finished_run(sleuth, tmp_path)
    journal = (rd / "journal.jsonl").read_bytes()
    summary = (rd / "summary.json").read_bytes()
    res = sleuth("run", "--resume", rd)
    assert res.rc == 1, res.stderr  # the run's own exit code
    assert "already finished" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert (rd / "journal.jsonl").read_bytes() == journal, "a finished run's journal was appended to"
    assert (rd / "summary.json").read_bytes() == summary
    doc = sleuth("run", "--resume", rd, "--json")
    assert doc.rc == 1 and doc.json()["summary"]["fail"] == 3
    assert (rd / "journal.jsonl").read_bytes() == journal


def test_a_result_whose_event_was_lost_is_journaled_not_run_again(sleuth, tmp_path: Path) -> None:
    """kill -9 between result.json and the journal append: the trial ran; resume journals it."""
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {"MARKS": str(marks), "FAILS": "0002"}
    res = sleuth("run", "-n", "3", "--json", "--", "sh", "-c", SCRIPT, env=env)
    rd = Path(res.json()["run_dir"])
    events = (rd / "journal.jsonl").read_text().splitlines()
    start = [e for e in events if json.loads(e)["event"] == "start"]
    # as if killed right after trial 0002's result.json was written: no event for 0002 or 0003
    (rd / "journal.jsonl").write_text("\n".join([*start, events[1]]) + "\n")
    shutil.rmtree(rd / "trials" / "0003")
    (rd / "summary.json").unlink()
    again = sleuth("run", "--resume", rd, "--json", env=env)
    assert again.rc == 1, again.stderr
    assert _marks(marks) == Counter({"0001": 1, "0002": 1, "0003": 2})
    trial_events = [e for e in _events(rd) if e["event"] == "trial"]
    assert sorted(e["trial"]["id"] for e in trial_events) == ["0001", "0002", "0003"]
    assert next(e for e in trial_events if e["trial"]["id"] == "0002").get("adopted") is True
    assert again.json()["summary"]["fail"] == 1


def test_a_trial_killed_while_running_is_rerun_with_fresh_output(sleuth, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {"MARKS": str(marks), "FAILS": ""}
    rd = Path(sleuth("run", "-n", "2", "--json", "--", "sh", "-c", SCRIPT, env=env).json()["run_dir"])
    lines = (rd / "journal.jsonl").read_text().splitlines()
    (rd / "journal.jsonl").write_text("\n".join(lines[:2]) + "\n")  # start, trial 0001
    t2 = rd / "trials" / "0002"
    (t2 / "result.json").unlink()  # it was running: output files, no result
    (t2 / "stdout").write_text("stale line of the killed attempt\n")
    (t2 / "stray.tmp").write_text("x")
    res = sleuth("run", "--resume", rd, "--json", env=env)
    assert res.rc == 0, res.stderr
    out = (t2 / "stdout").read_text().splitlines()
    assert len(out) == 1 and out[0].startswith("run 0002 "), out
    assert not (t2 / "stray.tmp").exists()
    assert [e["trial"]["id"] for e in _events(rd) if e["event"] == "trial"] == ["0001", "0002"]


def test_replay_keys_results_by_trial_id_not_by_order(sleuth, tmp_path: Path) -> None:
    """An older sleuth re-appended replayed results (out of order, twice): each id counts once."""
    rd = _finished_run(sleuth, tmp_path)
    lines = (rd / "journal.jsonl").read_text().splitlines()
    events = [json.loads(x) for x in lines]
    trials = [x for x, e in zip(lines, events, strict=True) if e["event"] == "trial"]
    start = [x for x, e in zip(lines, events, strict=True) if e["event"] == "start"]
    # trial 0003 missing, 0002 journaled twice and before 0001
    (rd / "journal.jsonl").write_text("\n".join([*start, trials[1], trials[0], trials[1]]) + "\n")
    shutil.rmtree(rd / "trials" / "0003")
    res = sleuth("run", "--resume", rd, "--json")
    doc = res.json()
    assert doc["summary"]["trials"] == 3 and doc["summary"]["fail"] == 3, doc["summary"]
    assert [t["id"] for t in doc["trials"]] == ["0001", "0002", "0003"]
    new = [e for e in _events(rd) if e["event"] == "trial"][3:]
    assert [e["trial"]["id"] for e in new] == ["0003"], "replayed results were journaled again"


def test_resuming_an_interrupted_until_fail_run_stops_at_its_failure(sleuth, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {"MARKS": str(marks), "FAILS": "0003"}
    res = sleuth("run", "--until-fail", "--max-trials", "10", "--json", "--", "sh", "-c", SCRIPT, env=env)
    assert res.rc == 1
    rd = Path(res.json()["run_dir"])
    lines = (rd / "journal.jsonl").read_text().splitlines()
    (rd / "journal.jsonl").write_text(
        "\n".join(line for line in lines if '"event": "end"' not in line) + "\n"
    )
    again = sleuth("run", "--resume", rd, "--json", env=env)
    assert again.rc == 1 and again.json()["summary"]["until_fail"]["first_fail"] == "0003"
    assert _marks(marks) == Counter({"0001": 1, "0002": 1, "0003": 1}), "resume ran trials past the failure"


def test_an_interrupted_warm_up_resumes_with_its_own_ids(sleuth, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {"MARKS": str(marks), "FAILS": ""}
    rd = Path(
        sleuth("run", "-n", "2", "--warmup", "2", "--json", "--", "sh", "-c", SCRIPT, env=env).json()[
            "run_dir"
        ]
    )
    lines = (rd / "journal.jsonl").read_text().splitlines()
    (rd / "journal.jsonl").write_text("\n".join(lines[:2]) + "\n")  # start, warm-up w0001
    (rd / "warmup" / "w0002" / "result.json").unlink()  # w0002 was running
    shutil.rmtree(rd / "trials")
    res = sleuth("run", "--resume", rd, "--json", env=env)
    assert res.rc == 0, res.stderr
    assert _marks(marks) == Counter({"w0001": 1, "w0002": 2, "0001": 2, "0002": 2})
    doc = res.json()
    assert doc["summary"]["warmup"]["trials"] == 2 and doc["summary"]["trials"] == 2
    assert [t["id"] for t in doc["warmup_trials"]] == ["w0001", "w0002"]


@pytest.mark.parametrize(
    "environment",
    [{"kind": "venv"}, {"kind": "container", "image": "x"}, {"kind": "vm"}, ["host"]],
    ids=["venv-without-pins", "container-without-runtime", "unknown-kind", "not-an-object"],
)
def test_a_start_event_with_a_malformed_environment_is_one_line(sleuth, tmp_path: Path, environment) -> None:
    """An edited journal whose environment lacks what its kind needs ended ``--resume`` with a
    traceback (``KeyError: 'pins'``) instead of the one line that names the journal."""
    rd = _finished_run(sleuth, tmp_path)
    lines = (rd / "journal.jsonl").read_text().splitlines()
    start = json.loads(lines[0])
    start["config"]["environment"] = environment
    kept = [json.dumps(start)] + [ln for ln in lines[1:] if '"event": "end"' not in ln]
    (rd / "journal.jsonl").write_text("\n".join(kept) + "\n")
    before = (rd / "journal.jsonl").read_bytes()
    res = sleuth("run", "--resume", rd)
    assert res.rc == 2 and "Traceback" not in res.stderr, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "journal.jsonl" in line and "environment" in line, line
    assert (rd / "journal.jsonl").read_bytes() == before


def _killed_at_second_trial(sleuth, tmp_path: Path, *args: str) -> Path:
    """A run of 3 whose second trial kills sleuth (kill -9 of its parent), once: a run dir to resume."""
    mark = tmp_path / "killed"
    script = f'[ "$SLEUTH_TRIAL_ID" = 0002 ] && [ ! -e {mark} ] && : > {mark} && kill -9 "$PPID"; true'
    res = sleuth("run", "-n", "3", "--output", "o", *args, "--", "sh", "-c", script)
    assert res.rc == -signal.SIGKILL, res.stderr
    (rd,) = (tmp_path / "o").glob("run/*/*")
    return rd


def test_resume_with_its_working_directory_gone_changes_nothing(sleuth, tmp_path: Path) -> None:
    """The run's --cwd (a scratch checkout) was removed: resume ran every missing trial as an ERROR
    ("working directory not found") and finished the run, so it could not be resumed once restored."""
    work = tmp_path / "work"
    work.mkdir()
    rd = _killed_at_second_trial(sleuth, tmp_path, "--cwd", str(work))
    work.rmdir()
    before = (rd / "journal.jsonl").read_bytes()
    res = sleuth("run", "--resume", rd)
    assert res.rc == 2, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert f"working directory {work} is gone" in line
    assert (rd / "journal.jsonl").read_bytes() == before
    work.mkdir()
    again = sleuth("run", "--resume", rd, "--json")
    assert again.rc == 0 and again.json()["summary"]["pass"] == 3, again.stderr


def test_resume_with_its_oracle_file_gone_changes_nothing(sleuth, tmp_path: Path) -> None:
    """The --oracle file was moved: resume reaped, journaled 'resume' and printed the header before
    the oracle's import error."""
    oracle = tmp_path / "judge.py"
    oracle.write_text("def judge(result):\n    return None\n")
    rd = _killed_at_second_trial(sleuth, tmp_path, "--oracle", f"{oracle}:judge")
    oracle.rename(tmp_path / "moved.py")
    before = (rd / "journal.jsonl").read_bytes()
    res = sleuth("run", "--resume", rd)
    assert res.rc == 2 and res.stdout == "", res.stdout + res.stderr
    assert "judge.py" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert (rd / "journal.jsonl").read_bytes() == before


def test_a_module_oracle_from_where_the_run_started_is_found_by_a_resume_elsewhere(
    sleuth, tmp_path: Path
) -> None:
    """``--oracle judge_mod:judge`` is found in the current directory; ``--resume`` from another one
    said "cannot import judge_mod" (a file.py reference is made absolute, a module one cannot be)."""
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir()
    elsewhere.mkdir()
    (start / "judge_mod.py").write_text("def judge(result):\n    return None\n")
    mark = tmp_path / "killed"
    script = f'[ "$SLEUTH_TRIAL_ID" = 0002 ] && [ ! -e {mark} ] && : > {mark} && kill -9 "$PPID"; true'
    res = sleuth("run", "-n", "3", "--output", tmp_path / "o", "--oracle", "judge_mod:judge", "--", "sh", "-c",
                 script, cwd=start)  # fmt: skip
    assert res.rc == -signal.SIGKILL, res.stderr
    (rd,) = (tmp_path / "o").glob("run/*/*")
    again = sleuth("run", "--resume", rd, "--json", cwd=elsewhere)
    assert again.rc == 0, again.stderr
    assert again.json()["summary"]["pass"] == 3
