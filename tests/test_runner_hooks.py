"""The runner's per-run hook (what container environments use), against real processes.

A hook binds a spec to its trial dir and device at run time and names a cleanup for what outlives
the process (a container).  The cleanup here is a real program that writes a file, so each test
sees whether, when and how often it ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sleuth.model import RunPlan, TrialSpec
from sleuth.runner import CLEANUP_FILE, kill_all, reap_orphans, reset_cancel, run_trial

#: ignores SIGTERM (as a shell does as a container's PID 1) and says where it runs
STUBBORN = (
    "import os, pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "pathlib.Path(sys.argv[1], 'pid').write_text(str(os.getpid())); time.sleep(60)"
)
#: logs when it ran and with which STORE, then kills what the trial's pid file names (as rm -f does)
CLEANUP = (
    "import os, pathlib, signal, sys, time; open(sys.argv[1], 'a').write(f'{time.monotonic()} "
    "{os.environ.get(\"STORE\")}\\n'); p = pathlib.Path(sys.argv[2], 'pid'); "
    "p.exists() and os.kill(int(p.read_text()), signal.SIGKILL)"
)


@dataclass(frozen=True)
class Hook:
    """Runs ``code`` with the trial dir and device as arguments; the cleanup appends to ``log``."""

    code: str
    log: Path
    error_rc: int | None = None

    def bind(self, spec: TrialSpec, trial_dir: Path, device: str | None) -> RunPlan:
        argv = (sys.executable, "-c", self.code, str(trial_dir), str(device))
        cleanup = (sys.executable, "-c", CLEANUP, str(self.log), str(trial_dir))
        return RunPlan(spec=spec.with_argv(argv), cleanup=cleanup, cleanup_env={"STORE": "mine"})

    def own_error(self, rc: int | None, stderr_tail: str) -> str | None:
        return f"client: {stderr_tail.strip()}" if rc == self.error_rc else None


def hooked(hook: Hook, **kw: object) -> TrialSpec:
    return TrialSpec(argv=("placeholder",), env=dict(os.environ), hook=hook, **kw)  # type: ignore[arg-type]


def cleanups(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_bind_gets_the_trial_dir_and_device(tmp_path: Path) -> None:
    code = "import sys; print(sys.argv[1], sys.argv[2])"
    hook = Hook(code, tmp_path / "log")
    r = run_trial(hooked(hook), tmp_path / "t", device="3")
    assert r.rc == 0 and r.stdout_tail.split() == [str(tmp_path / "t"), "3"]
    assert r.spec.argv[0] == sys.executable  # the result records what ran
    assert cleanups(hook.log) == []  # it ended by itself: nothing to remove
    assert not (tmp_path / "t" / CLEANUP_FILE).exists()


def test_timeout_runs_the_cleanup_at_once(tmp_path: Path) -> None:
    hook = Hook(STUBBORN, tmp_path / "log")
    t0 = time.monotonic()
    r = run_trial(hooked(hook, timeout_s=0.5, kill_grace_s=30.0), tmp_path / "t")
    assert r.timed_out
    lines = cleanups(hook.log)
    assert len(lines) == 1, lines
    ran_at = float(lines[0].split()[0])
    assert ran_at - t0 < 25  # before the 30 s grace would have ended in SIGKILL
    assert time.monotonic() - t0 < 25  # and it ended the stubborn process
    assert not (tmp_path / "t" / CLEANUP_FILE).exists()


def test_the_cleanup_waits_in_the_trial_dir_while_the_trial_runs(tmp_path: Path) -> None:
    hook = Hook("import time; time.sleep(1.5)", tmp_path / "log")
    seen: list[dict[str, object]] = []

    def watch() -> None:
        path = tmp_path / "t" / CLEANUP_FILE
        for _ in range(100):
            if path.exists():
                seen.append(json.loads(path.read_text()))
                return
            time.sleep(0.02)

    w = threading.Thread(target=watch)
    w.start()
    r = run_trial(hooked(hook), tmp_path / "t")
    w.join()
    assert r.rc == 0
    assert seen and seen[0]["env"] == {"STORE": "mine"}
    assert seen[0]["argv"][-2:] == [str(hook.log), str(tmp_path / "t")]  # type: ignore[index]
    assert not (tmp_path / "t" / CLEANUP_FILE).exists()


def test_kill_all_runs_every_cleanup_once(tmp_path: Path) -> None:
    hook = Hook(STUBBORN, tmp_path / "log")
    results = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(run_trial(hooked(hook), tmp_path / f"t{i}")))
        for i in range(2)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(
        (tmp_path / f"t{i}" / CLEANUP_FILE).exists() for i in range(2)
    ):
        time.sleep(0.02)
    time.sleep(0.3)
    try:
        kill_all(grace_s=0.5)
    finally:
        for t in threads:
            t.join(20)
        reset_cancel()
    assert len(results) == 2
    lines = cleanups(hook.log)
    assert len(lines) == 2, lines  # one per trial, though the worker saw its client die too
    assert all(line.endswith(" mine") or line.endswith(f" {os.environ.get('STORE')}") for line in lines)


def test_reap_orphans_runs_what_a_killed_sleuth_left(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "candidates" / "0001-x" / "run-1").mkdir(parents=True)
    left = run / "candidates" / "0001-x" / "run-1" / CLEANUP_FILE
    log = tmp_path / "log"
    argv = [sys.executable, "-c", CLEANUP, str(log), str(tmp_path)]
    left.write_text(json.dumps({"argv": argv, "env": {"STORE": "theirs"}}))
    (run / "junk").mkdir()
    (run / "junk" / CLEANUP_FILE).write_text("{torn")
    reap_orphans(run)
    assert [ln.split()[1] for ln in cleanups(log)] == ["theirs"]  # with the env it recorded
    assert not left.exists()
    reap_orphans(run)
    assert len(cleanups(log)) == 1  # once


def test_reap_orphans_finds_records_past_a_workload_tree_1000_deep(tmp_path: Path) -> None:
    """A trial that left a directory tree 1,000 deep in its trial dir: the resume's search for
    cleanup records (rglob) recursed into a RecursionError; now it does not enter trial dirs."""
    run = tmp_path / "run"
    deep = run / "trials" / "0001"
    deep.mkdir(parents=True)
    for _ in range(1000):  # mkdir(parents=True) recurses too
        deep /= "d"
        deep.mkdir()
    (run / "trials" / "0001" / "stdout").write_text("")
    (run / "trials" / "0002").mkdir()
    (run / "trials" / "0002" / "stdout").write_text("")
    left = run / "trials" / "0002" / CLEANUP_FILE
    log = tmp_path / "log"
    left.write_text(json.dumps({"argv": [sys.executable, "-c", CLEANUP, str(log), str(tmp_path)], "env": {}}))
    try:
        reap_orphans(run)
        assert len(cleanups(log)) == 1
        assert not left.exists()
    finally:  # pytest removes old temp dirs with shutil.rmtree, which recurses too
        subprocess.run(["rm", "-rf", str(run)], check=True)


def test_own_error_is_an_error_not_a_verdict(tmp_path: Path) -> None:
    hook = Hook(
        "import sys; sys.stderr.write('runtime broke'); sys.exit(125)", tmp_path / "log", error_rc=125
    )
    r = run_trial(hooked(hook), tmp_path / "t")
    assert r.rc == 125 and r.error == "client: runtime broke"
    ok = Hook("import sys; sys.exit(125)", tmp_path / "log", error_rc=7)
    assert run_trial(hooked(ok), tmp_path / "u").error is None


def test_a_client_killed_by_a_signal_is_cleaned_up(tmp_path: Path) -> None:
    hook = Hook("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", tmp_path / "log")
    r = run_trial(hooked(hook), tmp_path / "t")
    assert r.signal == 9
    assert len(cleanups(hook.log)) == 1
