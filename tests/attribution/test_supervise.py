"""sleuth supervise with real subprocess workloads: restarts, stops, signals, timeouts, four nodes."""

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
from typing import Any

import pytest

from tests.attribution.conftest import Served
from tests.conftest import wait_dead
from tests.signals import signal_once_there, sleuth_proc

W = Path(__file__).parent / "workloads"
OOM = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."
XID = "NVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the bus."


def supervise(
    tmp: Path, *args: str, timeout: float = 120, log_dir: str = "sup"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sleuth", "supervise", "--log-dir", str(tmp / log_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp,
        env={**os.environ, "COLUMNS": "200"},
    )


def cycles(d: Path) -> list[dict[str, Any]]:
    return [
        e for e in map(json.loads, (d / "cycles.jsonl").read_text().splitlines()) if e["event"] == "cycle"
    ]


def events(d: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (d / "cycles.jsonl").read_text().splitlines()]


def test_restarts_until_success_with_cycle_env_and_logs(tmp_path: Path) -> None:
    env_log = tmp_path / "env.jsonl"
    r = supervise(
        tmp_path,
        "--max-restarts",
        "4",
        "--",
        sys.executable,
        str(W / "cycler.py"),
        "--until",
        "2",
        "--line",
        XID,
        "--env-log",
        str(env_log),
    )
    assert r.returncode == 0, r.stderr
    seen = [json.loads(x) for x in env_log.read_text().splitlines()]
    assert seen == [
        {"cycle": 0, "restarts_left": 4},
        {"cycle": 1, "restarts_left": 3},
        {"cycle": 2, "restarts_left": 2},
    ]
    got = cycles(tmp_path / "sup")
    assert [c["outcome"] for c in got] == ["restart", "restart", "done"]
    assert got[0]["attribution"]["root"]["signature"] == "nvidia.xid.79"
    for i in range(3):
        text = (tmp_path / "sup" / f"cycle-{i:03d}" / "output.log").read_text()
        assert f"cycle {i} starting" in text
    assert "fallen off the bus" in (tmp_path / "sup" / "cycle-000" / "output.log").read_text()
    assert "fallen off the bus" not in (tmp_path / "sup" / "cycle-002" / "output.log").read_text()


def test_enforce_stops_on_a_deterministic_failure(tmp_path: Path) -> None:
    r = supervise(
        tmp_path, "--mode", "enforce", "--", sys.executable, str(W / "cycler.py"), "--line", OOM, "--rc", "7"
    )
    assert r.returncode == 7, r.stderr
    got = cycles(tmp_path / "sup")
    assert len(got) == 1 and got[0]["outcome"] == "stop" and got[0]["decided_by"] == "catalog"
    assert got[0]["attribution"]["decision"]["action"] == "STOP"


def test_shadow_records_stop_and_restarts_until_the_budget(tmp_path: Path) -> None:
    r = supervise(tmp_path, "--max-restarts", "2", "--", sys.executable, str(W / "cycler.py"), "--line", OOM)
    assert r.returncode == 1, r.stderr
    got = cycles(tmp_path / "sup")
    assert [c["outcome"] for c in got] == ["restart", "restart", "stop"]
    assert all(c["attribution"]["decision"]["action"] == "STOP" for c in got)
    assert all(c["attribution"]["decision"]["effective_action"] == "RESTART" for c in got)
    assert "restart budget exhausted" in got[-1]["reason"]


def test_stops_after_cycles_without_progress(tmp_path: Path) -> None:
    r = supervise(
        tmp_path,
        "--max-restarts",
        "10",
        "--progress-regex",
        r"iteration \d+",
        "--max-no-progress-cycles",
        "2",
        "--",
        sys.executable,
        str(W / "cycler.py"),
        "--line",
        "Segmentation fault (core dumped)",
    )
    assert r.returncode == 1
    got = cycles(tmp_path / "sup")
    assert [c["outcome"] for c in got] == ["restart", "stop"] and got[-1]["progress"] is False
    assert "without progress" in got[-1]["reason"]
    # with progress every cycle, the same failure keeps restarting (each retry budget starts over)
    r = supervise(
        tmp_path,
        "--max-restarts",
        "3",
        "--progress-regex",
        r"iteration \d+",
        "--max-no-progress-cycles",
        "2",
        "--",
        sys.executable,
        str(W / "cycler.py"),
        "--line",
        XID,
        "--progress",
        log_dir="sup2",
    )
    assert [c["outcome"] for c in cycles(tmp_path / "sup2")] == ["restart", "restart", "restart", "stop"]
    assert "restart budget exhausted" in cycles(tmp_path / "sup2")[-1]["reason"]


def test_decision_timeout_restarts_and_a_late_stop_is_dropped(tmp_path: Path) -> None:
    """The analyzer answers STOP only once the supervisor has recorded cycle 0's outcome (its decision
    is late, whatever the load), and the next cycle finishes only once that late STOP is logged."""
    cycles_file = tmp_path / "sup" / "cycles.jsonl"
    slow = tmp_path / "slow.py"
    slow.write_text(
        "import json, sys, time\nsys.stdin.read()\n"
        "def decided():\n"
        f"    with open({str(cycles_file)!r}) as fh:\n"
        "        return any(json.loads(ln).get('event') == 'cycle' for ln in fh if ln.endswith('\\n'))\n"
        "deadline = time.monotonic() + 60\n"
        "while not decided() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print(json.dumps({'action': 'STOP', 'reason': 'slow analyzer'}))\n"
    )
    r = supervise(
        tmp_path,
        "--mode",
        "enforce",
        "--decision-timeout",
        "1",
        "--source-timeout",
        "30",
        "--command-source",
        f"{sys.executable} {slow}",
        "--",
        sys.executable,
        str(W / "cycler.py"),
        "--until",
        "1",
        "--line",
        XID,
        "--wait-event",
        "late_decision",
        "--events",
        str(cycles_file),
    )
    assert r.returncode == 0, r.stderr
    evs = events(tmp_path / "sup")
    got = [e for e in evs if e["event"] == "cycle"]
    assert got[0]["outcome"] == "restart" and got[0]["decided_by"] == "default"
    assert "no decision within 1s" in got[0]["reason"]
    late = [e for e in evs if e["event"] == "late_decision"]
    assert late and late[0]["cycle"] == 0 and late[0]["action"] == "STOP" and late[0]["dropped"]
    assert got[-1]["outcome"] == "done"


def _supervised(tmp_path: Path, workload: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    """``sleuth supervise`` around ``workload`` (which writes its pid to ``tmp_path/pid`` first), and that pid.
    A short grace: these tests are about where a signal goes, not about how long the workload has."""
    pid_file = tmp_path / "pid"
    argv = ["supervise", "--log-dir", str(tmp_path / "sup"), "--kill-grace", "0.5",
            "--", sys.executable, str(W / workload)]  # fmt: skip
    proc = sleuth_proc(  # SIGTERM and SIGHUP default, whatever the suite started with
        [*argv, str(pid_file), *args],
        dict(os.environ),
        tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc, int(pid_file.read_text())


def _forwarding(tmp_path: Path, sig: int) -> None:
    got_file = tmp_path / "got"
    proc, child = _supervised(tmp_path, "sleeper.py", str(got_file))
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert got_file.read_text() == signal.Signals(sig).name
    assert wait_dead(child)
    got = cycles(tmp_path / "sup")
    assert len(got) == 1 and got[0]["outcome"] == "signalled" and got[0]["signal"] == sig


def test_sigterm_is_forwarded_to_the_workload(tmp_path: Path) -> None:
    _forwarding(tmp_path, signal.SIGTERM)


def test_sigint_is_forwarded_to_the_workload(tmp_path: Path) -> None:
    _forwarding(tmp_path, signal.SIGINT)


def test_sighup_is_forwarded_to_the_workload(tmp_path: Path) -> None:
    # the terminal closed: the supervisor died of it and left the workload running
    _forwarding(tmp_path, signal.SIGHUP)


def test_a_workload_that_ignores_the_signal_is_killed_after_the_grace(tmp_path: Path) -> None:
    # it once waited for ever: Ctrl-C (or scancel's SIGTERM) never ended supervision
    proc, child = _supervised(tmp_path, "stubborn.py")
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            os.kill(child, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGKILL, err
    assert wait_dead(child)
    got = cycles(tmp_path / "sup")
    assert len(got) == 1 and got[0]["outcome"] == "signalled"


#: on SIGINT the leader starts the saver and exits at once; the saver writes its file a second after
#: the leader is gone.  A helper started before (``sleep``, SIGINT ignored as after ``&``) runs on.
_SAVING_TRAP = """\
trap '(while kill -0 $$ 2>/dev/null; do sleep 0.05; done; sleep 1; echo saved > "$1") & exit 130' INT
sleep 1000 &
echo $! > "$2/helper"
echo $$ > "$2/leader.tmp" && mv "$2/leader.tmp" "$2/leader"
wait
"""


def test_the_saver_a_trap_starts_on_the_forwarded_sigint_finishes_within_the_grace(tmp_path: Path) -> None:
    # the leader exited at once, and what it left in its group was SIGKILLed there and then: the
    # checkpoint its trap started saving was lost.  The whole workload now has the grace to end; what
    # is left then (the helper) is stopped.  The exit status stays the leader's own.
    saved, pids = tmp_path / "saved", tmp_path / "pids"
    pids.mkdir()
    argv = ["supervise", "--log-dir", str(tmp_path / "sup"), "--max-restarts", "0", "--",
            "bash", "-c", _SAVING_TRAP, "workload", str(saved), str(pids)]  # fmt: skip
    proc = sleuth_proc(argv, dict(os.environ), tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, start_new_session=True)  # fmt: skip
    try:
        _, err = signal_once_there(proc, pids / "leader")
    finally:
        for f in pids.iterdir():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(f.read_text()), signal.SIGKILL)
    assert proc.returncode == 130, err
    assert saved.read_text() == "saved\n"
    assert wait_dead(int((pids / "helper").read_text()))
    got = cycles(tmp_path / "sup")
    assert len(got) == 1 and got[0]["outcome"] == "signalled" and got[0]["rc"] == 130, got


def test_a_child_forked_after_the_forwarded_sigint_gets_sigterm_after_the_grace(tmp_path: Path) -> None:
    # the child its trap starts never got the SIGINT and does not end (a shell that forks just as the
    # signal lands is the same): the whole workload was SIGKILLed after the grace (137).  It is now
    # stopped as a trial is, SIGTERM first, and ends with its own status.  The grace is short (the
    # trap's child only has to be forked within it), not the default 5 s.
    pids = tmp_path / "pids"
    pids.mkdir()
    script = (
        "trap 'sleep 1000' INT\ntrap 'exit 3' TERM\nsleep 1000 &\n"
        'echo $$ > "$1/leader.tmp" && mv "$1/leader.tmp" "$1/leader"\nwait\n'
    )
    argv = ["supervise", "--log-dir", str(tmp_path / "sup"), "--max-restarts", "0", "--kill-grace", "1", "--",
            "bash", "-c", script, "workload", str(pids)]  # fmt: skip
    proc = sleuth_proc(argv, dict(os.environ), tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, start_new_session=True)  # fmt: skip
    try:
        _, err = signal_once_there(proc, pids / "leader")
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError, OSError):
            os.killpg(int((pids / "leader").read_text()), signal.SIGKILL)
    assert proc.returncode == 3, err
    got = cycles(tmp_path / "sup")
    assert len(got) == 1 and got[0]["outcome"] == "signalled" and got[0]["rc"] == 3, got


def test_service_unreachable_means_the_safe_default(tmp_path: Path) -> None:
    r = supervise(
        tmp_path,
        "--service",
        "http://127.0.0.1:9",
        "--decision-timeout",
        "2",
        "--",
        sys.executable,
        str(W / "cycler.py"),
        "--until",
        "1",
        "--line",
        OOM,
    )
    assert r.returncode == 0, r.stderr
    evs = events(tmp_path / "sup")
    assert any(e["event"] == "note" and "unreachable at trigger time" in e["text"] for e in evs)
    first = next(e for e in evs if e["event"] == "cycle")
    assert first["outcome"] == "restart" and "unreachable at read time" in first["reason"]


def test_four_nodes_follow_the_leader(tmp_path: Path, serve: Callable[..., Served]) -> None:
    s = serve("--gather", "1")
    procs = []
    for rank in range(4):
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sleuth",
                    "supervise",
                    "--nodes",
                    "4",
                    "--node-rank",
                    str(rank),
                    "--service",
                    s.url,
                    "--job-id",
                    "job4",
                    "--mode",
                    "enforce",
                    "--max-restarts",
                    "10",
                    "--decision-timeout",
                    "20",
                    "--log-dir",
                    str(tmp_path / f"node{rank}"),
                    "--",
                    sys.executable,
                    str(W / "node_job.py"),
                    str(rank),
                    "4",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tmp_path,
            )
        )
    results = [p.communicate(timeout=240) for p in procs]
    outcomes = []
    for rank, p in enumerate(procs):
        got = cycles(tmp_path / f"node{rank}")
        outcomes.append([c["outcome"] for c in got])
        # each node failed in exactly one cycle: its own (cycle == rank); elsewhere it was stopped by the job
        assert [c["failed_here"] for c in got] == [c["cycle"] == rank for c in got], results[rank][1]
    # Xid 79 is EXCLUDE_NODE with a same-root budget of 3: three restarts, then STOP, taken by all four
    assert outcomes == [["restart", "restart", "restart", "stop"]] * 4, outcomes
    assert procs[3].returncode == 1  # its own workload failed last
    assert [p.returncode for p in procs[:3]] == [128 + signal.SIGTERM] * 3
    for cycle in range(4):
        rec = s.call("GET", f"/v1/attributions/job4/{cycle}")[1]
        assert rec["outcome"]["action"] == ("STOP" if cycle == 3 else "RESTART")
        assert rec["root"]["signature"] == "nvidia.xid.79" and rec["root"]["file"].startswith(f"{cycle}/")


def test_a_job_id_reused_with_a_fresh_log_dir_is_refused(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    # the service's cycle 0 of job "run7" is yesterday's OOM: today's Xid in a fresh --log-dir was
    # deduplicated onto it and decided as that OOM
    s = serve("--gather", "0")
    fail = lambda line: ["--", sys.executable, "-c", f"print({line!r}); raise SystemExit(1)"]  # noqa: E731
    common = ["--service", s.url, "--job-id", "run7", "--max-restarts", "0"]
    first = supervise(tmp_path, *common, *fail(OOM), log_dir="day1")
    assert (
        first.returncode == 1
        and cycles(tmp_path / "day1")[0]["attribution"]["root"]["signature"] == "cuda.oom"
    )
    again = supervise(tmp_path, *common, *fail(XID), log_dir="day2")
    assert again.returncode == 2 and "--job-id run7" in again.stderr and "Traceback" not in again.stderr
    assert not (tmp_path / "day2").exists()
    go_on = supervise(tmp_path, *common, *fail(XID), log_dir="day1")  # that supervision's log dir
    assert go_on.returncode == 1, go_on.stderr
    assert cycles(tmp_path / "day1")[-1]["attribution"]["root"]["signature"] == "nvidia.xid.79"


def test_the_leader_rank_is_given_to_every_node_and_leads_alone(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    # `--leader` on node 3 alone left node 0 leading as well (it cannot know): two leaders
    alone = supervise(tmp_path, "--nodes", "4", "--node-rank", "3", "--leader", "--service",
                      "http://127.0.0.1:9", "--job-id", "j", "--", sys.executable, "-c", "pass")  # fmt: skip
    assert alone.returncode == 2 and "--leader-rank 3" in alone.stderr and "Traceback" not in alone.stderr
    assert not (tmp_path / "sup").exists()
    s = serve("--gather", "1")
    common = ["--nodes", "2", "--leader-rank", "1", "--service", s.url, "--job-id", "lead1"]
    common += ["--max-restarts", "1", "--decision-timeout", "20"]

    def node_args(rank: int) -> list[str]:
        job = [sys.executable, str(W / "node_job.py"), str(rank), "2"]
        return ["--node-rank", str(rank), "--log-dir", str(tmp_path / f"node{rank}"), "--", *job]

    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sleuth", "supervise", *common, *node_args(rank)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for rank in range(2)
    ]
    errs = [p.communicate(timeout=180)[1] for p in procs]
    # node 0 failed in cycle 0: node 1 alone decided and recorded it; node 0 followed
    rec = s.call("GET", "/v1/attributions/lead1/0")[1]
    assert rec["outcome"]["node"] == "1", errs
    assert cycles(tmp_path / "node0")[0]["decided_by"].startswith("leader"), errs[0]


@pytest.mark.parametrize("where", ["local", "service"])
def test_a_cycle_is_attributed_with_what_happened_since_it_started(
    tmp_path: Path, serve: Callable[..., Served], where: str
) -> None:
    """A log shared across restarts (a node's kernel log, a job log every run appends to, shown by
    the workload on failure) held cycle 0's Xid when cycle 1 died of an OOM: the Xid, the earliest,
    was blamed again (RESTART for a STOP), locally and on the service (which was not told when the
    cycle started)."""
    shared = tmp_path / "node.log"
    via = ["--service", serve("--gather", "0").url, "--job-id", "shared"] if where == "service" else []
    r = supervise(
        tmp_path,
        *via,
        "--max-restarts",
        "1",
        "--",
        *(sys.executable, str(W / "shared_log.py"), str(shared), XID, OOM),
    )
    assert r.returncode == 1, r.stderr
    got = cycles(tmp_path / "sup")
    assert [c["attribution"]["root"]["signature"] for c in got] == ["nvidia.xid.79", "cuda.oom"]
    assert got[1]["attribution"]["decision"]["action"] == "STOP"
