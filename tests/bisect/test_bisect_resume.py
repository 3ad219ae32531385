"""The journal is the truth, once: replay by trial id, no re-journaling, kill -9 at random moments."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sleuth.bisect.candidates import ListSource
from sleuth.bisect.driver import Driver
from sleuth.bisect.policy import FlakyMode
from sleuth.bisect.sim import SimBackend
from sleuth.bisect.trials import Options
from sleuth.bisect.trials import TestPool as Pool
from sleuth.journal import RunDir, read_journal
from sleuth.model import TrialSpec
from sleuth.oracle import OracleConfig, StandardOracle
from tests import chaos

ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
ORACLE = StandardOracle(OracleConfig())
SPEC = TrialSpec(argv=("simulated",))


def journaled_tests(run_dir: Path) -> list[dict[str, Any]]:
    return [e for e in read_journal(run_dir / "journal.jsonl") if e["event"] == "test"]


class Refuse(SimBackend):
    """A simulated backend that must not run the trials the journal already has."""

    def __init__(self, fails: Any, forbidden: set[str]) -> None:
        super().__init__(2, fails)
        self.forbidden = forbidden
        self.ran: list[str] = []

    def submit(self, spec: TrialSpec, trial_dir: Path, **kw: Any) -> Any:
        rel = "/".join(trial_dir.parts[-3:])
        assert rel not in self.forbidden, f"{rel} ran again"
        self.ran.append(rel)
        return super().submit(spec, trial_dir, **kw)


def test_replay_is_keyed_by_trial_dir_not_by_finishing_order(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "bisect", "t")
    # run-2 of candidate 9 finished (and was journaled) before its run-1
    journal = [
        {"seq": 0, "index": 9, "label": "9", "run": 2, "phase": "search", "outcome": "fail", "counted": "fail",
         "signature": "exit 1: AssertionError: bug", "reason": "", "trial_dir": "candidates/0009-9/run-2"},
        {"seq": 1, "index": 9, "label": "9", "run": 1, "phase": "search", "outcome": "pass", "counted": "pass",
         "signature": None, "reason": "", "trial_dir": "candidates/0009-9/run-1"},
    ]  # fmt: skip
    backend = Refuse(lambda i: True, {"candidates/0009-9/run-1", "candidates/0009-9/run-2"})
    pool = Pool(ListSource("x"), SPEC, ORACLE, rd, Options(jobs=2), replay=journal, backend=backend)
    first, second = pool.submit(9, "9", "search"), pool.submit(9, "9", "search")
    got = {ev.ticket: ev for ev in (pool.next_event(), pool.next_event())}
    assert (got[first].run, got[first].outcome.value, got[first].seq) == (1, "pass", 1)
    assert (got[second].run, got[second].outcome.value, got[second].seq) == (2, "fail", 0)
    assert all(ev.replayed for ev in got.values())
    # the third run is new: it runs, continues the numbering, and is the only journal line added
    pool.submit(9, "9", "search")
    third = pool.next_event()
    assert (third.run, third.seq, third.replayed) == (3, 2, False)
    assert backend.ran == ["candidates/0009-9/run-3"]
    assert [e["trial_dir"] for e in journaled_tests(rd.path)] == ["candidates/0009-9/run-3"]
    rd.close()


def test_a_journaled_error_is_tested_again_on_resume_and_a_skip_is_not(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "bisect", "t")
    # candidate 4 could not be tested (uv could not download); 6 does not install (its own build)
    journal = [
        {"seq": 0, "index": 4, "label": "4", "run": 1, "phase": "search", "outcome": "error", "counted": "skip",
         "signature": None, "reason": "uv could not reach the index", "trial_dir": "candidates/0004-4/run-1"},
        {"seq": 1, "index": 6, "label": "6", "run": 1, "phase": "search", "outcome": "skip", "counted": "skip",
         "signature": None, "reason": "does not install", "trial_dir": "candidates/0006-6/run-1"},
    ]  # fmt: skip
    backend = Refuse(lambda i: i >= 5, {"candidates/0004-4/run-1", "candidates/0006-6/run-1"})
    pool = Pool(ListSource("x"), SPEC, ORACLE, rd, Options(), replay=journal, backend=backend)
    pool.submit(4, "4", "search")
    again = pool.next_event()
    assert (again.run, again.outcome.value, again.replayed, again.seq) == (2, "pass", False, 2)
    pool.submit(6, "6", "search")
    skip = pool.next_event()
    assert (skip.outcome.value, skip.replayed) == ("skip", True)
    assert backend.ran == ["candidates/0004-4/run-2"]
    # append-only: the ERROR's record stays, the new test follows it
    assert [e["trial_dir"] for e in journaled_tests(rd.path)] == ["candidates/0004-4/run-2"]
    rd.close()


def _search(run_dir: RunDir, replay: list[dict[str, Any]] | None, forbidden: set[str], seed: int) -> Driver:
    rng = random.Random(seed)
    backend = Refuse(lambda i: i >= 23 and rng.random() < 0.6, forbidden)
    labels = [str(i) for i in range(40)]
    driver = Driver(ListSource("x"), SPEC, ORACLE, run_dir, Options(jobs=2, flaky=FlakyMode(True)),
                    replay=replay, labels=labels, backend=backend)  # fmt: skip
    driver.run()
    return driver


def test_resuming_twice_neither_duplicates_nor_invents_tests(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "bisect", "t")
    whole = _search(rd, None, set(), seed=3)
    journal = journaled_tests(rd.path)
    assert len(journal) == len(whole.events)
    dirs = {e["trial_dir"] for e in journal}
    # a resume of the whole journal runs nothing, journals nothing, and tells the same story
    for _ in range(2):
        again = _search(rd, journaled_tests(rd.path), dirs, seed=3)
        assert journaled_tests(rd.path) == journal
        assert [(e.trial_dir, e.outcome) for e in again.events] == [
            (e.trial_dir, e.outcome) for e in whole.events
        ]
        assert all(e.replayed for e in again.events)
    rd.close()


def test_a_result_written_but_not_journaled_is_journaled_once_on_resume(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "bisect", "t")
    _search(rd, None, set(), seed=5)
    lines = (rd.path / "journal.jsonl").read_text().splitlines(keepends=True)
    last = max(i for i, x in enumerate(lines) if json.loads(x)["event"] == "test")
    lost = json.loads(lines[last])
    (rd.path / "journal.jsonl").write_text("".join(lines[:last]))  # killed between result.json and event
    rd.close()
    rd = RunDir.open(rd.path)
    replay = journaled_tests(rd.path)
    _search(rd, replay, {e["trial_dir"] for e in replay} | {lost["trial_dir"]}, seed=5)
    counts = Counter(e["trial_dir"] for e in journaled_tests(rd.path))
    assert counts[lost["trial_dir"]] == 1 and max(counts.values()) == 1
    rec = next(e for e in journaled_tests(rd.path) if e["trial_dir"] == lost["trial_dir"])
    assert rec["phase"] == "recovered" and rec["outcome"] == lost["outcome"] and rec["label"] == lost["label"]
    rd.close()


# --- through the CLI: a real repository, kill -9 at random moments ------------------------------------

TEST = 'sleep 0.25; test "$(cat bug)" = 0 || { echo "AssertionError: bug" >&2; exit 1; }'
LIST_TEST = (
    'sleep 0.25; [ "$SLEUTH_CANDIDATE" -lt {culprit} ] || {{ echo "AssertionError: bug" >&2; exit 1; }}'
)


def make_repo(root: Path, n: int, culprit: int) -> list[str]:
    """``n`` commits; ``bug`` holds 1 from commit ``culprit`` on."""
    repo = root / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=ENV)
    stream = []
    for i in range(n):
        bug = "1\n" if i >= culprit else "0\n"
        msg = f"c{i}"
        stream.append(f"commit refs/heads/main\nmark :{i + 1}\ncommitter t <t@t> {1_700_000_000 + i} +0000\n"
                      f"data {len(msg)}\n{msg}\n" + ("" if i == 0 else f"from :{i}\n")
                      + f"M 644 inline bug\ndata {len(bug)}\n{bug}\n")  # fmt: skip
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input="".join(stream), text=True,
                   check=True, env=ENV)  # fmt: skip
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "main"], check=True, env=ENV)
    out = subprocess.run(["git", "-C", str(repo), "rev-list", "--reverse", "main"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return out.split()


def _start(argv: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "sleuth", *argv], cwd=cwd, stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**ENV, "SLEUTH_CACHE": str(cwd / "cache")})  # fmt: skip


def _kill_at(proc: subprocess.Popen[bytes], at: float) -> bool:
    """SIGKILL sleuth (not its tests: they are in their own sessions) at ``at`` s; False if it ended."""
    deadline = time.monotonic() + at
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def _check_journal(run_dir: Path) -> None:
    """One test event per trial dir with a result.json; each agrees with it; none without one."""
    events = journaled_tests(run_dir)
    counts = Counter(e["trial_dir"] for e in events)
    assert all(c == 1 for c in counts.values()), [d for d, c in counts.items() if c > 1]
    results = {p.parent.relative_to(run_dir).as_posix(): json.loads(p.read_text())
               for p in run_dir.glob("candidates/*/run-*/result.json")}  # fmt: skip
    assert set(counts) == set(results), set(counts) ^ set(results)
    for e in events:
        assert e["outcome"] == results[e["trial_dir"]]["outcome"], e


@pytest.mark.slow
@pytest.mark.parametrize("seed", chaos.seeds(1))
@pytest.mark.parametrize("kind", ["git", "list"])
def test_kill_9_at_random_moments_and_resume_up_to_three_times(tmp_path: Path, kind: str, seed: int) -> None:
    n, culprit = 48, 31
    if kind == "git":
        shas = make_repo(tmp_path, n, culprit)
        truth = shas[culprit]
        argv = ["bisect", "git", "--repo", "repo", "--good", shas[0], "--bad", shas[-1]]
        cmd = ["sh", "-c", TEST]
    else:
        (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(n)))
        truth = str(culprit)
        argv = ["bisect", "list", "l.txt"]
        cmd = ["sh", "-c", LIST_TEST.format(culprit=culprit)]
    rng = random.Random(f"{kind}-kills" if seed == 0 else f"{kind}-kills-{seed}")
    tests = journaled = 0
    kills = resumes = 0
    for attempt in range(3):
        out = tmp_path / f"o{attempt}"
        log = tmp_path / f"log{attempt}"
        proc = _start([*argv, "--jobs", "2", "--output", str(out), "--json", "--", *cmd], tmp_path, log)
        kills += _kill_at(proc, rng.uniform(0.4, 1.6))
        run_dirs = list(out.glob(f"bisect/{kind}/*"))
        if not run_dirs:  # killed before the run dir existed: nothing to resume
            continue
        (run_dir,) = run_dirs
        for _ in range(rng.randint(1, 3)):  # resumes, each killed too unless it finishes first
            resume = _start(["bisect", "resume", str(run_dir), "--json"], tmp_path, log)
            kills += _kill_at(resume, rng.uniform(0.3, 1.2))
            resumes += 1
            _check_journal(run_dir)
        final = subprocess.run([sys.executable, "-m", "sleuth", "bisect", "resume", str(run_dir), "--json"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=240,
                               env={**ENV, "SLEUTH_CACHE": str(tmp_path / "cache")})  # fmt: skip
        assert final.returncode == 0, final.stderr
        d = json.loads(final.stdout)
        assert d["status"] == "found" and d["first_bad"]["label"] == truth
        _check_journal(run_dir)
        assert d["tests"] <= len(journaled_tests(run_dir))
        tests, journaled = tests + d["tests"], journaled + len(journaled_tests(run_dir))
    assert kills >= 4 and resumes >= 3  # the moments were inside the runs, not after them
    chaos.record(f"bisect {kind}", seed=seed, kills=kills, resumes=resumes, trials=tests, journaled=journaled,
                 lost=0, invented=0)  # fmt: skip


def _sleuth(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sleuth", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**ENV, "SLEUTH_CACHE": str(cwd / "cache")})  # fmt: skip


def test_a_finished_run_resumed_is_untouched_and_says_its_answer(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(30)))
    first = _sleuth("bisect", "list", "l.txt", "--flaky", "off", "--output", "o", "--json", "--", "sh", "-c",
                    LIST_TEST.format(culprit=17), cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    run_dir = Path(json.loads(first.stdout)["run_dir"])
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    again = _sleuth("bisect", "resume", str(run_dir), "--json", cwd=tmp_path)
    assert again.returncode == 0 and json.loads(again.stdout) == json.loads(first.stdout)
    plain = _sleuth("bisect", "resume", str(run_dir), cwd=tmp_path)
    assert plain.returncode == 0 and "nothing to resume" in plain.stderr and "17" in plain.stdout
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    # an answer that is not "found" keeps its exit code too
    (tmp_path / "m.txt").write_text("".join(f"{i}\n" for i in range(30)))
    miss = _sleuth("bisect", "list", "m.txt", "--flaky", "off", "--output", "o", "--json", "--", "true",
                   cwd=tmp_path)  # fmt: skip
    assert miss.returncode == 3
    again = _sleuth("bisect", "resume", json.loads(miss.stdout)["run_dir"], "--json", cwd=tmp_path)
    assert again.returncode == 3 and json.loads(again.stdout)["status"] == "not_found"


def test_resume_of_another_verbs_run_dir_names_the_verb(tmp_path: Path) -> None:
    ran = _sleuth("run", "--trials", "1", "--output", "o", "--json", "--", "true", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    (run_dir,) = [p.parent for p in (tmp_path / "o").rglob("journal.jsonl")]
    matrix = tmp_path / "m"
    matrix.mkdir()
    (matrix / "journal.jsonl").write_text(json.dumps({"event": "start", "t": 0, "verb": "matrix"}) + "\n")
    for d, verb in ((run_dir, "sleuth run --resume"), (matrix, "sleuth matrix resume")):
        before = sorted(p.name for p in d.iterdir())
        res = _sleuth("bisect", "resume", str(d), cwd=tmp_path)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and verb in res.stderr
        assert sorted(p.name for p in d.iterdir()) == before


def _interrupted_with_an_error(tmp_path: Path) -> Path:
    """A finished list bisection cut back to its first three tests, the second an ERROR (as a kill
    after them leaves it): its resume replays two, runs that candidate again, then runs new ones."""
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(30)))
    first = _sleuth("bisect", "list", "l.txt", "--flaky", "off", "--output", "o", "--json", "--", "sh", "-c",
                    LIST_TEST.format(culprit=17), cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    run_dir = Path(json.loads(first.stdout)["run_dir"])
    kept, tests = [], 0
    for line in (run_dir / "journal.jsonl").read_text().splitlines():
        ev = json.loads(line)
        if ev["event"] == "end" or tests == 3:
            break
        if ev["event"] == "test":
            tests += 1
            if tests == 2:
                ev = {
                    **ev,
                    "outcome": "error",
                    "counted": "skip",
                    "signature": None,
                    "reason": "checkout failed",
                }
        kept.append(json.dumps(ev))
    (run_dir / "journal.jsonl").write_text("\n".join(kept) + "\n")
    journaled = {json.loads(line).get("trial_dir") for line in kept}
    for tdir in run_dir.glob("candidates/*/run-*"):  # not journaled: never ran
        if tdir.relative_to(run_dir).as_posix() not in journaled:
            shutil.rmtree(tdir)
    return run_dir


def test_a_resume_shows_the_journaled_tests_first_marked_replayed_then_the_new_ones(tmp_path: Path) -> None:
    """The search asks for the ERROR's candidate again before the third journaled test: it was
    printed before the replayed tests, and the JSON's evidence listed that candidate before them."""
    import pty

    run_dir = _interrupted_with_an_error(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, symlinks=True)
    master, slave = pty.openpty()
    env = {**ENV, "SLEUTH_CACHE": str(tmp_path / "cache"), "COLUMNS": "200", "TERM": "xterm"}
    with subprocess.Popen([sys.executable, "-m", "sleuth", "bisect", "resume", str(run_dir)], cwd=tmp_path,
                          stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env) as proc:  # fmt: skip
        os.close(slave)
        out = b""
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            out += data
        assert proc.wait(timeout=120) == 0, out
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.decode())
    shown = [(int(m[1]), "(replayed)" in m[0]) for m in re.finditer(r"(?m)^ *(\d+) search .*$", text)]
    assert shown == [(0, True), (1, True), (2, True), (3, False), (4, False), (5, False)], text
    assert re.search(r"(?m)^ *1 search +\S+ +ERROR \(counted skip\) \(replayed\)", text), text

    res = _sleuth("bisect", "resume", str(copy), "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    tests = sorted(journaled_tests(copy), key=lambda e: e["seq"])
    in_order = list(dict.fromkeys(e["label"] for e in tests if e["outcome"] != "error"))
    assert list(json.loads(res.stdout)["evidence"]) == in_order


def test_a_run_dir_copied_without_its_links_resumes_and_keeps_the_copied_folders(tmp_path: Path) -> None:
    """``cp -r`` / ``copytree`` makes first-bad and last-good real folders: the resume's report
    unlinked them and died with IsADirectoryError (a traceback)."""
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(30)))
    first = _sleuth("bisect", "list", "l.txt", "--flaky", "off", "--output", "o", "--json", "--", "sh", "-c",
                    LIST_TEST.format(culprit=17), cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    run_dir = Path(json.loads(first.stdout)["run_dir"])
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)  # links followed: first-bad is a folder now
    assert (copy / "first-bad").is_dir() and not (copy / "first-bad").is_symlink()
    lines = (copy / "journal.jsonl").read_text().splitlines(keepends=True)
    (copy / "journal.jsonl").write_text("".join(ln for ln in lines if '"event": "end"' not in ln))
    (copy / "summary.json").unlink()  # as a kill -9 before the end leaves it
    kept = {p.relative_to(copy): p.read_bytes() for p in (copy / "first-bad").rglob("*") if p.is_file()}
    again = _sleuth("bisect", "resume", str(copy), "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert json.loads(again.stdout)["first_bad"] == json.loads(first.stdout)["first_bad"]
    assert {
        p.relative_to(copy): p.read_bytes() for p in (copy / "first-bad").rglob("*") if p.is_file()
    } == kept


#: fails from the line named in the file ``culprit`` (read at each test: a resume can see another)
MOVING_TEST = '[ "$SLEUTH_CANDIDATE" -lt "$(cat culprit)" ] || { echo "AssertionError: bug" >&2; exit 1; }'


@pytest.mark.parametrize("links", [True, False], ids=["cp -r (links kept)", "copytree (links followed)"])
def test_a_resume_of_a_copy_that_finds_another_answer_refreshes_first_bad_and_last_good(
    tmp_path: Path, links: bool
) -> None:
    """Before, a folder left by a copy that followed the links kept naming the old answer while
    summary.json named the resume's; now the links follow summary.json and the folder is moved aside."""
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(30)))
    (tmp_path / "culprit").write_text("17\n")
    first = _sleuth("bisect", "list", "l.txt", "--flaky", "off", "--output", "o", "--json", "--", "sh", "-c",
                    MOVING_TEST, cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    old = json.loads(first.stdout)
    copy = tmp_path / "copy"
    shutil.copytree(old["run_dir"], copy, symlinks=links)
    assert (copy / "first-bad").is_symlink() is links
    old_files = {p.relative_to(copy / "first-bad"): p.read_bytes() for p in (copy / "first-bad").rglob("*")
                 if p.is_file()}  # fmt: skip
    # as a kill -9 after the first test leaves it: that test's event and logs, nothing after them
    events = read_journal(copy / "journal.jsonl")
    cut = next(i for i, e in enumerate(events) if e["event"] == "test") + 1
    for e in events[cut:]:
        if e["event"] == "test":
            shutil.rmtree(copy / e["trial_dir"])
    (copy / "journal.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events[:cut]))
    (copy / "summary.json").unlink()
    (tmp_path / "culprit").write_text("12\n")  # the test changed: the resume finds another answer
    again = _sleuth("bisect", "resume", str(copy), "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    new = json.loads(again.stdout)
    assert new["status"] == "found" and new["first_bad"]["label"] != old["first_bad"]["label"], new
    for name, key in (("first-bad", "first_bad"), ("last-good", "last_good")):
        assert os.readlink(copy / name) == new[key]["dir"]
        moved = copy / f"{name}.copied"
        assert moved.is_dir() is not links  # the copy's folder is kept aside, never deleted
        if not links:
            assert (
                f"note: {copy / name} was not a link" in again.stderr
                and f"moved to {name}.copied" in again.stderr
            )
    if not links:
        assert {
            p.relative_to(copy / "first-bad.copied"): p.read_bytes()
            for p in (copy / "first-bad.copied").rglob("*")
            if p.is_file()
        } == old_files
    assert "Traceback" not in again.stderr
