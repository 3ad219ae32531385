"""Nothing a trial starts survives it: processes that leave the trial's group (setsid, double
forks, daemons, nohup, SIGTERM-ignoring sessions) are found (sleuth is their subreaper), stopped
when the trial ends (normal exit, timeout or cancel) and reaped; other processes are never touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sleuth import reaper, runner
from sleuth.model import TrialSpec
from sleuth.runner import run_trial
from tests import chaos
from tests.conftest import program

SHAPES = [
    "bash-setsid-bg",
    "setsid-fork",
    "double-fork",
    "daemon",
    "nohup",
    "ignores-term",
    "session-forks-again",
    "new-group",
]
NEEDS = {"bash-setsid-bg": "bash", "setsid-fork": "setsid", "nohup": "nohup"}

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")


def _need(shape: str) -> None:
    tool = NEEDS.get(shape)
    if tool and shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def _pids(pidfile: Path) -> list[int]:
    return [int(p) for p in pidfile.read_text().split()] if pidfile.exists() else []


def _exists(pid: int) -> bool:
    """True while ``pid`` is in the process table, zombies included (a zombie was not reaped)."""
    return os.path.exists(f"/proc/{pid}")


def _survivors(pids: list[int], trial_dir: Path, wait: float = 5.0) -> list[int]:
    """What is still there after ``wait`` seconds of polling /proc (nothing, when all is well)."""
    deadline = time.monotonic() + wait
    while True:
        left = sorted({p for p in pids if _exists(p)} | set(chaos.marked(trial_dir)))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _spec(shape: str, pidfile: Path, then: str, **kw: float) -> TrialSpec:
    return TrialSpec(
        argv=(sys.executable, program("escape.py"), shape, str(pidfile), then),
        env=dict(os.environ),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_an_escapee_of_a_trial_that_exits_0_does_not_survive_it(tmp_path: Path, shape: str) -> None:
    _need(shape)
    pidfile = tmp_path / "pids"
    r = run_trial(_spec(shape, pidfile, "exit", kill_grace_s=1.0), tmp_path / "t")
    assert r.rc == 0 and not r.timed_out, r.stderr_tail
    pids = _pids(pidfile)
    assert pids, "the shape left nothing behind: the test proves nothing"
    assert _survivors(pids, tmp_path / "t") == []


@pytest.mark.parametrize("shape", SHAPES)
def test_an_escapee_of_a_trial_that_times_out_does_not_survive_it(tmp_path: Path, shape: str) -> None:
    _need(shape)
    pidfile = tmp_path / "pids"
    r = run_trial(_spec(shape, pidfile, "hang", timeout_s=2.0, kill_grace_s=1.0), tmp_path / "t")
    assert r.timed_out, r.stderr_tail
    pids = _pids(pidfile)
    assert pids, "the shape left nothing behind: the test proves nothing"
    assert _survivors(pids, tmp_path / "t") == []


def test_a_cancel_stops_the_escapees_of_every_running_trial(tmp_path: Path) -> None:
    boxes: list[dict[str, object]] = []
    threads = []
    for i, shape in enumerate(("double-fork", "ignores-term", "session-forks-again")):
        box: dict[str, object] = {}
        spec = _spec(shape, tmp_path / f"pids{i}", "hang", kill_grace_s=0.5)
        t = threading.Thread(target=lambda b=box, s=spec, d=tmp_path / f"t{i}": b.update(r=run_trial(s, d)))
        t.start()
        boxes.append(box)
        threads.append(t)
    deadline = time.monotonic() + 30
    need = {0: 1, 1: 1, 2: 2}
    while time.monotonic() < deadline and any(len(_pids(tmp_path / f"pids{i}")) < n for i, n in need.items()):
        time.sleep(0.02)
    try:
        assert runner.kill_all() == 3
    finally:
        for t in threads:
            t.join(30)
        runner.reset_cancel()
    for i in range(3):
        assert _survivors(_pids(tmp_path / f"pids{i}"), tmp_path / f"t{i}") == []


def test_processes_that_are_not_a_trials_are_never_touched(tmp_path: Path) -> None:
    """An orphan adopted by this process (we are the subreaper) without a trial's marker, and a
    child of ours in another session, both outlive a trial that leaves escapees behind."""
    reaper.enable()
    pidfile = tmp_path / "bystanders"
    # an orphan re-parented to us: its parent (setsid -f's sh) exits at once
    subprocess.run(["setsid", "-f", "sh", "-c", f'echo $$ >> "{pidfile}"; exec sleep 60'], check=True)
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(_pids(pidfile)) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        (orphan,) = _pids(pidfile)
        r = run_trial(_spec("double-fork", tmp_path / "pids", "exit", kill_grace_s=0.5), tmp_path / "t")
        assert r.rc == 0 and _survivors(_pids(tmp_path / "pids"), tmp_path / "t") == []
        assert reaper.alive(orphan), "an orphan that was never a trial's was killed"
        assert child.poll() is None, "a child of ours that was never a trial's was killed or reaped"
    finally:
        child.kill()
        child.wait()
        for pid in _pids(pidfile):
            os.kill(pid, 9)
        time.sleep(0.1)
        reaper.reap_zombies(lambda _p: False)


def test_a_tree_that_dies_at_the_first_sigterm_does_not_wait_out_the_grace(tmp_path: Path) -> None:
    """Its members become zombies (re-parented to us): they are reaped, not waited on until the
    grace is over.  A 60 s grace makes the difference plain without timing anything finely."""
    tree = "import subprocess,time; [subprocess.Popen(['sleep','1000']) for _ in range(3)]; time.sleep(1000)"
    t0 = time.monotonic()
    r = run_trial(
        TrialSpec(argv=(sys.executable, "-c", tree), env=dict(os.environ), timeout_s=1.0, kill_grace_s=60.0),
        tmp_path / "t",
    )
    assert r.timed_out and r.signal is not None
    assert time.monotonic() - t0 < 30, "the kill waited for the grace although the tree was gone"


@pytest.mark.parametrize("then", ["exit", "hang"])
def test_sleuth_run_leaves_no_survivor_of_any_shape(tmp_path: Path, sleuth, then: str) -> None:  # type: ignore[no-untyped-def]
    """Through the CLI, every shape at once (trial N takes shape N), four trials at a time, with
    normal exits and with ``--timeout 2``."""
    for tool in set(NEEDS.values()):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    pidfile = tmp_path / "pids"
    timeout = ["--timeout", "2"] if then == "hang" else []
    args = ["run", "--json", "--trials", str(len(SHAPES)), "--jobs", "4", "--kill-grace", "1", *timeout]
    res = sleuth(*args, "--", sys.executable, program("escape.py"), "by-trial-id", pidfile, then)
    assert res.rc == (1 if then == "hang" else 0), res.stderr  # timeouts are failures
    doc = res.json()
    assert [t["timed_out"] for t in doc["trials"]] == [then == "hang"] * len(SHAPES)
    run_dir = Path(doc["run_dir"])
    pids = [p for i in range(1, len(SHAPES) + 1) for p in _pids(Path(f"{pidfile}.{i}"))]
    assert len(pids) == len(SHAPES) + 1  # session-forks-again leaves two
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (any(map(_exists, pids)) or chaos.marked(run_dir, under=True)):
        time.sleep(0.05)
    assert [p for p in pids if _exists(p)] == [] and chaos.marked(run_dir, under=True) == []
    chaos.record("survivors", then=then, shapes=len(SHAPES), escapees=len(pids), survivors=0)


@pytest.mark.parametrize("shape", ["double-fork", "ignores-term"])
def test_a_process_group_with_a_trial_dir_stops_its_escapees_and_waits_for_them(
    tmp_path: Path, shape: str
) -> None:
    # sleuth supervise's workload: spawn_group(trial_dir=...) makes what leaves the group its own
    pidfile, tdir = tmp_path / "pids", tmp_path / "g"
    argv = [sys.executable, program("escape.py"), shape, str(pidfile), "exit"]
    group = runner.spawn_group(argv, env=dict(os.environ), trial_dir=str(tdir), grace_s=0.5)
    try:
        assert group.wait(60) == 0
        pids = _pids(pidfile)
        assert pids and all(reaper.alive(p) for p in pids), "the shape left nothing behind"
        assert not group.wait_gone(0)  # what left the group still runs
        assert group.terminate(0.5) == 0
        assert group.wait_gone(0)
        assert _survivors(pids, tdir) == []
    finally:
        group.kill_group()


def test_a_second_stop_keeps_the_first_ones_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sleuth's exit after a second Ctrl-C (which cut the first stop's wait) stops the same trials
    again: it must not give them the whole grace once more, only what is left of the first one's."""
    spec = _spec("ignores-term", tmp_path / "pids", "hang", kill_grace_s=60.0)
    box: dict[str, object] = {}
    t = threading.Thread(target=lambda: box.update(r=run_trial(spec, tmp_path / "t")))
    t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _pids(tmp_path / "pids"):
        time.sleep(0.02)
    graces: list[float] = []
    real_stop = reaper.stop
    monkeypatch.setattr(reaper, "stop", lambda pids, markers, grace, **kw: graces.append(grace))
    try:
        assert runner.kill_all() == 1  # the first stop: its wait "cut" (the spy returns at once)
        time.sleep(0.3)
        assert runner.kill_all() == 1  # the exit's stop of the same trial
        assert graces[0] == pytest.approx(60.0) and graces[1] <= 60.0 - 0.3, graces
    finally:
        monkeypatch.setattr(reaper, "stop", real_stop)
        runner.kill_all(grace_s=0.5)
        t.join(30)
        runner.reset_cancel()
    assert _survivors(_pids(tmp_path / "pids"), tmp_path / "t") == []
