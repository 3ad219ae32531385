"""``sleuth supervise --kill-grace``: how the workload is stopped, read from the workload's own evidence.

Every way supervise stops the workload (a signal to supervise, what a cycle's leader leaves running
when it exits) sends SIGTERM to its process group, waits the grace, then sends SIGKILL.  The
workload (``workloads/graceful.py``) writes down each signal it gets, and a "saved" file when it
ends its own way; no test asserts a duration.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import pid_alive, wait_dead
from tests.signals import signal_once_there, sleuth_proc

GRACEFUL = Path(__file__).parent / "workloads" / "graceful.py"


def _argv(tmp_path: Path, grace: str, d: Path, *workload: str) -> list[str]:
    return ["supervise", "--log-dir", str(tmp_path / "sup"), "--max-restarts", "0", "--kill-grace", grace,
            "--", sys.executable, str(GRACEFUL), str(d), *workload]  # fmt: skip


def _signalled(tmp_path: Path, sig: int, grace: str, d: Path, *workload: str) -> tuple[int, str]:
    """Supervise the workload, send ``sig`` to supervise once the workload runs; (exit status, stderr)."""
    proc = sleuth_proc(_argv(tmp_path, grace, d, *workload), dict(os.environ), tmp_path,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    _, err = signal_once_there(proc, d / "leader.pid", sig)
    return proc.returncode, err


def _ran(tmp_path: Path, grace: str, d: Path, *workload: str) -> tuple[int, str]:
    res = subprocess.run([sys.executable, "-m", "sleuth", *_argv(tmp_path, grace, d, *workload)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)  # fmt: skip
    return res.returncode, res.stderr


def _cycles(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "sup" / "cycles.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == "cycle"]


def _signals(d: Path, name: str) -> list[str]:
    f = d / f"{name}.signals"
    return f.read_text().splitlines() if f.exists() else []


def _pid(d: Path, name: str) -> int:
    return int((d / f"{name}.pid").read_text())


def test_ctrl_c_with_a_short_grace_kills_a_helper_that_ignores_sigint(tmp_path: Path, evidence: Path) -> None:
    # Ctrl-C was slow when the workload's helpers ignore SIGINT: they are stopped only after the
    # grace.  The leader dies of the forwarded SIGINT; the helper ignores it, gets SIGTERM after the
    # grace, starts a save far longer than the grace, and is SIGKILLed before it ends
    rc, err = _signalled(tmp_path, signal.SIGINT, "0.2", evidence,
                         "die", "die", "--helper", "ignore", "save:4")  # fmt: skip
    assert rc == 128 + signal.SIGINT, err
    assert _signals(evidence, "helper") == ["SIGTERM"]
    assert not (evidence / "helper.saved").exists()
    assert wait_dead(_pid(evidence, "helper"))
    got = _cycles(tmp_path)
    assert len(got) == 1 and got[0]["outcome"] == "signalled", got


def test_ctrl_c_a_workload_that_ignores_sigterm_is_killed_after_the_grace(
    tmp_path: Path, evidence: Path
) -> None:
    # the forwarded SIGINT, then after the grace a SIGTERM it records and survives, then SIGKILL
    rc, err = _signalled(tmp_path, signal.SIGINT, "0.2", evidence, "record", "record")
    assert rc == 128 + signal.SIGKILL, err
    assert _signals(evidence, "leader") == ["SIGINT", "SIGTERM"]
    assert wait_dead(_pid(evidence, "leader"))


def test_a_long_grace_lets_the_workload_save_on_sigterm(tmp_path: Path, evidence: Path) -> None:
    # the forwarded SIGTERM starts its save; the grace outlasts the save, so it ends its own way
    rc, err = _signalled(tmp_path, signal.SIGTERM, "600", evidence, "record", "save:1")
    assert rc == 7, err
    assert _signals(evidence, "leader") == ["SIGTERM"]
    assert (evidence / "leader.saved").read_text() == "saved\n"
    got = _cycles(tmp_path)
    assert len(got) == 1 and got[0]["outcome"] == "signalled" and got[0]["rc"] == 7, got


def test_a_helper_a_failed_cycle_leaves_gets_sigterm_and_the_grace_to_save(
    tmp_path: Path, evidence: Path
) -> None:
    # the leader fails and exits; the helper it left in its group was SIGKILLed there and then, its
    # checkpoint lost.  It now gets SIGTERM and the grace, as a trial's leftovers do under sleuth run
    rc, err = _ran(tmp_path, "600", evidence, "die", "die", "--helper", "record", "save:1", "--exit", "1")
    assert rc == 1, err
    assert _signals(evidence, "helper") == ["SIGTERM"]
    assert (evidence / "helper.saved").read_text() == "saved\n"
    got = _cycles(tmp_path)
    assert len(got) == 1 and got[0]["outcome"] == "stop" and got[0]["rc"] == 1, got


def test_a_helper_a_failed_cycle_leaves_that_ignores_sigterm_is_killed_after_the_grace(
    tmp_path: Path, evidence: Path
) -> None:
    rc, err = _ran(tmp_path, "0.2", evidence, "die", "die", "--helper", "record", "record", "--exit", "1")
    assert rc == 1, err
    assert _signals(evidence, "helper") == ["SIGTERM"]
    assert wait_dead(_pid(evidence, "helper"))


def test_a_rerun_after_kill_9_gives_what_was_left_running_sigterm_and_the_grace(
    tmp_path: Path, evidence: Path
) -> None:
    # kill -9 of supervise leaves its workload running (a leader and the helper in its group, both
    # saving a checkpoint on SIGTERM); the rerun on the same log dir SIGKILLed them at once, their
    # traps never ran.  They now get SIGTERM and the rerun's --kill-grace, as every other stop does
    proc = sleuth_proc(_argv(tmp_path, "600", evidence, "record", "save:1", "--helper", "record", "save:1"),
                       dict(os.environ), tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        signal_once_there(proc, evidence / "leader.pid", signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    left = [_pid(evidence, "leader"), _pid(evidence, "helper")]
    assert all(map(pid_alive, left))  # kill -9 leaves the workload running: the rerun must stop it
    res = subprocess.run([sys.executable, "-m", "sleuth", "supervise", "--log-dir", str(tmp_path / "sup"),
                          "--kill-grace", "600", "--", sys.executable, "-c", "pass"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    for name in ("leader", "helper"):
        assert _signals(evidence, name) == ["SIGTERM"], name
        assert (evidence / f"{name}.saved").read_text() == "saved\n", name
    assert not any(map(pid_alive, left))  # gone before the rerun's first cycle, not just signalled
    assert "stopped 1 workload process group(s) left running by a killed supervisor" in res.stderr
    assert [c["outcome"] for c in _cycles(tmp_path)] == ["lost", "done"]
