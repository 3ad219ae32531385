"""The runner against real processes: exit codes, signals, timeouts that kill whole trees, big output."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sleuth.errors import InfrastructureError
from sleuth.model import MetricSpec, Stream, TrialSpec
from sleuth.runner import run_tool, run_trial
from tests.conftest import pid_alive, program


def spec(*argv: str, **kw: object) -> TrialSpec:
    return TrialSpec(argv=tuple(argv), env=dict(os.environ), **kw)  # type: ignore[arg-type]


def test_exit_code_and_output_files(tmp_path: Path) -> None:
    r = run_trial(spec(sys.executable, program("exit_with.py"), "3", "hello", "world"), tmp_path / "t1")
    assert r.rc == 3 and r.signal is None and not r.timed_out and r.error is None
    assert r.stdout_path.read_text() == "hello world\n"
    assert "stderr line" in r.stderr_tail
    assert r.wall_s > 0 and r.started_at > 0


def test_signal_is_reported(tmp_path: Path) -> None:
    r = run_trial(spec(sys.executable, program("segv.py")), tmp_path / "t")
    assert r.rc is None and r.signal == signal.SIGSEGV


def test_command_not_found_is_an_error_not_a_crash(tmp_path: Path) -> None:
    r = run_trial(spec("definitely-not-a-command-xyz"), tmp_path / "t")
    assert r.error == "command not found: definitely-not-a-command-xyz"
    assert r.rc is None


@pytest.mark.parametrize(
    ("first_line", "said"),
    [
        (b"#!/nonexistent/python3\n", "its interpreter /nonexistent/python3 (the #! line) was not found"),
        (b"#!/bin/sh\r\n", "its #! line ends with a carriage return (CRLF line endings); save it with LF"),
    ],
    ids=["missing-interpreter", "crlf"],
)
def test_a_script_whose_interpreter_cannot_be_found_says_so(
    tmp_path: Path, first_line: bytes, said: str
) -> None:
    """exec gives ENOENT for a script whose #! interpreter is missing (or is "/bin/sh\\r": a script
    saved with Windows line endings), and the trial said "command not found: ./train.sh" of a file
    that is right there."""
    work = tmp_path / "work"
    work.mkdir()
    script = work / "train.sh"
    script.write_bytes(first_line + b"echo hi\n")
    script.chmod(0o755)
    r = run_trial(spec("./train.sh", cwd=str(work)), tmp_path / "t1")
    assert r.error == f"./train.sh: {said}"
    on_path = spec("train.sh")
    on_path = TrialSpec(argv=on_path.argv, env={**on_path.env, "PATH": f"{work}{os.pathsep}{os.defpath}"})
    assert run_trial(on_path, tmp_path / "t2").error == f"train.sh: {said}"


_NO_FDS_LEFT = """
import os, resource, sys
from pathlib import Path
from sleuth.model import TrialSpec
from sleuth.runner import run_trial
spec = TrialSpec(argv=("true",), env=dict(os.environ))
run_trial(spec, Path(sys.argv[1]) / "warm")
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
for fd in held[-2:]:  # room for the trial's stdout and stderr, none for the spawn's pipe
    os.close(fd)
try:
    r = run_trial(spec, Path(sys.argv[1]) / "t")
    print("result", r.error)
except OSError as exc:
    print("raised", exc.errno)
"""


def test_sleuth_out_of_file_descriptors_raises_and_is_no_trial_result(tmp_path: Path) -> None:
    """EMFILE at the spawn became the trial's ERROR ("could not start true: Too many open files"),
    journaled as its result, so a resume after raising the limit never ran it again."""
    import errno

    out = subprocess.run([sys.executable, "-c", _NO_FDS_LEFT, str(tmp_path)], capture_output=True, text=True,
                         timeout=60, check=True).stdout  # fmt: skip
    assert out.split() == ["raised", str(errno.EMFILE)], out


def test_a_run_out_of_file_descriptors_records_no_error_trial_and_resumes(sleuth, tmp_path: Path) -> None:
    """``ulimit -n 128`` and ``--jobs 100``: trials that could not be spawned were journaled as ERRORs
    (so the resume the message asked for kept them), and the message said "Too many open files;
    too many open files; raise the limit"."""
    args = ["run", "-n", "100", "-j", "100", "--output", str(tmp_path / "o"), "--", "sleep", "0.5"]
    argv = [sys.executable, "-m", "sleuth", *args]
    res = subprocess.run(["sh", "-c", 'ulimit -n 128 && exec "$@"', "sh", *argv], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert res.returncode == 4, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.lower().count("too many open files") == 1 and "ulimit -n 128" in line, line
    assert "limit of 128 open files" in line and "/trials/" not in line, line
    (rd,) = (tmp_path / "o").glob("run/*/*")
    assert '"outcome": "error"' not in (rd / "journal.jsonl").read_text()
    again = sleuth("run", "--resume", rd, "--json")
    assert again.rc == 0 and again.json()["summary"]["pass"] == 100, again.stderr


#: sleuth run whose descriptor table is full (for real: filled up to its RLIMIT_NOFILE) just as the
#: first trial's stderr file is opened, so that open is the one that fails with EMFILE
_FULL_AT_STDERR = """
import os, sys
from sleuth.cli import main
real_open = os.open
def full_open(path, flags, mode=0o777, **kw):
    if not str(path).endswith("/stderr"):
        return real_open(path, flags, mode, **kw)
    held = []
    try:
        while True:
            held.append(real_open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    try:
        return real_open(path, flags, mode, **kw)
    finally:
        for fd in held:
            os.close(fd)
os.open = full_open
sys.exit(main(sys.argv[1:]))
"""


def _soft_nofile(n: int) -> Callable[[], None]:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (n, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    return apply


def test_out_of_file_descriptors_names_the_limit_not_a_trial_file(tmp_path: Path, sleuth_env) -> None:
    """The line named the file being opened: "error: RUN/trials/0000/stderr: Too many open files;
    raise the limit (ulimit -n)": that file is fine, sleuth's own limit (not said) was reached."""
    argv = [sys.executable, "-c", _FULL_AT_STDERR, "run", "-n", "2", "--output", str(tmp_path / "o"), "--", "true"]  # fmt: skip
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=sleuth_env,
                         stdin=subprocess.DEVNULL, preexec_fn=_soft_nofile(96))  # fmt: skip
    assert res.returncode == 4, res.stderr
    (rd,) = (tmp_path / "o").glob("run/*/*")
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("error: Too many open files; "), line
    assert "stderr" not in line and "trials" not in line, line
    assert "its limit of 96 open files (ulimit -n 96): raise it, e.g. ulimit -n 4096" in line, line
    assert line.endswith(f"then resume: sleuth run --resume {rd}"), line


#: sleuth run with its fork (or its first worker thread) failing as at the process limit; RLIMIT_NPROC
#: does not apply to root, so the failure is made here, at the one place each comes from
_NO_PROCESSES_LEFT = """
import errno, sys, threading
from sleuth import _spawn
from sleuth.cli import main
real_spawn, real_start, calls = _spawn.spawn, threading.Thread.start, []
def spawn(*a, **kw):
    calls.append(1)
    if len(calls) > 2:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
    return real_spawn(*a, **kw)
def start(self):
    if self.name.startswith("sleuth-trial"):
        raise RuntimeError("can't start new thread")
    return real_start(self)
if sys.argv[1] == "fork":
    _spawn.spawn = spawn
else:
    threading.Thread.start = start
sys.exit(main(["run", "-n", "5", "--output", sys.argv[2], "--", "true"]))
"""


@pytest.mark.parametrize("what", ["fork", "thread"])
def test_a_run_at_the_process_limit_stops_records_no_error_trial_and_resumes(
    sleuth, tmp_path: Path, what: str
) -> None:
    """A fork failing with EAGAIN (``ulimit -u`` reached) made the trial an ERROR ("could not start
    true: Resource temporarily unavailable"), journaled, so a resume kept it; a worker thread that
    could not start was a traceback (RuntimeError: can't start new thread)."""
    res = subprocess.run([sys.executable, "-c", _NO_PROCESSES_LEFT, what, str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 4, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "the process limit is reached" in line and "ulimit -u" in line and "resume" in line, line
    (rd,) = (tmp_path / "o").glob("run/*/*")
    assert '"outcome": "error"' not in (rd / "journal.jsonl").read_text()
    again = sleuth("run", "--resume", rd, "--json")
    assert again.rc == 0 and again.json()["summary"]["pass"] == 5, again.stderr


def test_a_tool_at_the_process_limit_is_a_stop_not_an_infrastructure_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``git`` (a checkout in a bisect candidate's preparation) failing to fork with EAGAIN raised
    InfrastructureError, which the engine records as the candidate's ERROR; it is the machine's limit
    (RLIMIT_NPROC does not apply to root: the fork's failure is made here)."""
    import errno

    from sleuth import _spawn
    from sleuth.runner import run_tool

    def spawn(*_a: object, **_kw: object) -> None:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(_spawn, "spawn", spawn)
    with pytest.raises(OSError, match="the process limit is reached: could not start true") as info:
        run_tool(["true"])
    assert info.value.errno == errno.EAGAIN and not isinstance(info.value, InfrastructureError)


def test_a_tool_whose_spawning_thread_cannot_start_is_the_same_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """From the main thread a tool is spawned by a helper thread (a Ctrl-C inside Popen must not lose
    the child); at the process limit that thread cannot start ("can't start new thread", a
    RuntimeError), which must be the process limit's stop, not a traceback."""
    import errno
    import threading

    from sleuth import _spawn
    from sleuth.runner import run_tool

    def start(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(OSError, match="the process limit is reached: could not start true") as info:
        run_tool(["true"])
    assert info.value.errno == errno.EAGAIN and not isinstance(info.value, InfrastructureError)
    assert _spawn.no_spawn_in_flight()  # the count of spawns in flight is back to nothing


def test_missing_cwd_is_named(tmp_path: Path) -> None:
    r = run_trial(spec("true", cwd=str(tmp_path / "nope")), tmp_path / "t")
    assert r.error is not None and "working directory not found" in r.error


@pytest.mark.parametrize("stubborn", [False, True])
def test_timeout_kills_the_whole_tree(tmp_path: Path, stubborn: bool) -> None:
    pidfile = tmp_path / "pids"
    args = [sys.executable, program("hang.py"), str(pidfile)] + (["stubborn"] if stubborn else [])
    r = run_trial(spec(*args, timeout_s=1.5, kill_grace_s=0.5), tmp_path / "t")
    assert r.timed_out
    parent, grandchild = map(int, pidfile.read_text().split())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (pid_alive(parent) or pid_alive(grandchild)):
        time.sleep(0.05)
    assert not pid_alive(parent), "the workload survived its timeout"
    assert not pid_alive(grandchild), "a grandchild survived its trial's timeout"
    assert r.signal in (signal.SIGTERM, signal.SIGKILL)


def test_grandchildren_left_behind_are_swept(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = (
        "import subprocess,sys;"
        f"p=subprocess.Popen([sys.executable,'-c','import time; time.sleep(600)']);"
        f"open({str(pidfile)!r},'w').write(str(p.pid))"
    )
    r = run_trial(spec(sys.executable, "-c", script), tmp_path / "t")
    assert r.rc == 0
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    assert not pid_alive(pid)


def test_big_output_goes_to_disk_with_bounded_tails(tmp_path: Path) -> None:
    metric = MetricSpec(name="m", pattern=re.compile(r"metric=([0-9.]+)"), stream=Stream.STDOUT)
    r = run_trial(spec(sys.executable, program("spew.py"), "200", metrics=(metric,)), tmp_path / "t")
    assert r.rc == 0
    assert r.stdout_path.stat().st_size > 200 * 1_000_000
    assert len(r.stdout_tail) <= 8192
    assert r.stdout_tail.endswith("FATAL: done spewing\n")
    assert r.metrics == {"m": 42.5}


def test_metrics_last_match_series_and_metrics_json(tmp_path: Path) -> None:
    script = (
        "import json,os\n"
        "for i in range(3): print(f'loss={i}.5')\n"
        "json.dump({'tput': 7, 'curve': [1, 2]}, open(os.path.join(os.environ['SLEUTH_TRIAL_DIR'],'metrics.json'),'w'))\n"
    )
    ms = (
        MetricSpec(name="last", pattern=re.compile(r"loss=([0-9.]+)")),
        MetricSpec(name="all", pattern=re.compile(r"loss=([0-9.]+)"), series=True),
    )
    r = run_trial(spec(sys.executable, "-c", script, metrics=ms), tmp_path / "t")
    assert r.metrics == {"last": 2.5, "all": (0.5, 1.5, 2.5), "tput": 7.0, "curve": (1.0, 2.0)}


def test_device_env(tmp_path: Path) -> None:
    r = run_trial(
        spec(
            sys.executable,
            "-c",
            "import os;print(os.environ['CUDA_VISIBLE_DEVICES'],os.environ['HIP_VISIBLE_DEVICES'])",
        ),
        tmp_path / "t",
        device="3",
    )
    assert r.stdout_path.read_text().strip() == "3 3"
    assert r.device == "3"


def test_run_tool_captures_and_names_missing_programs(tmp_path: Path) -> None:
    t = run_tool(
        [sys.executable, "-c", "import sys; print('out'); print('bad thing', file=sys.stderr); sys.exit(2)"]
    )
    assert (t.rc, t.stdout, t.ok) == (2, "out\n", False)
    assert t.brief() == "bad thing"
    with pytest.raises(InfrastructureError, match="command not found: no-such-tool-xyz"):
        run_tool(["no-such-tool-xyz"])
    slow = run_tool([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5)
    assert slow.timed_out and not slow.ok


def test_kill_all_stops_running_trials_and_blocks_new_ones_until_reset(tmp_path: Path) -> None:
    import threading

    from sleuth import runner

    pidfile = tmp_path / "pids"
    box: dict[str, object] = {}
    th = threading.Thread(
        target=lambda: box.update(
            r=run_trial(spec(sys.executable, program("hang.py"), str(pidfile)), tmp_path / "a")
        )
    )
    th.start()
    deadline = time.monotonic() + 10
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert runner.kill_all(grace_s=0.5) == 1
    th.join(10)
    r = box["r"]
    assert r.signal in (signal.SIGTERM, signal.SIGKILL)  # type: ignore[attr-defined]
    blocked = run_trial(spec("true"), tmp_path / "b")
    assert blocked.error == "cancelled before start"
    runner.reset_cancel()
    assert run_trial(spec("true"), tmp_path / "c").rc == 0


def test_brief_names_the_error_not_a_trailing_hint() -> None:
    """uv ends with 'hint: ... retry on a newer uv'; the one-line error must carry the 'error:' line."""
    from sleuth.runner import ToolResult

    t = ToolResult(
        argv=("uv",),
        rc=2,
        stdout="",
        stderr="error: No interpreter found for Python 9.9\n\nhint: uv embeds available Python downloads\n",
        wall_s=0.1,
    )
    assert t.brief() == "error: No interpreter found for Python 9.9"
    only_hint = ToolResult(argv=("x",), rc=1, stdout="", stderr="hint: only this\n", wall_s=0.1)
    assert only_hint.brief() == "hint: only this"
    assert ToolResult(argv=("x",), rc=3, stdout="", stderr="", wall_s=0.1).brief() == "exit 3"


def test_a_cancel_while_a_trial_is_being_spawned_still_stops_it(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C landing between the cancel check and the child's registration used to leave the child
    running: kill_all() did not see it, and sleuth hung at exit waiting for the trial's thread."""
    import subprocess

    from sleuth import runner

    real_popen = subprocess.Popen

    def popen_then_ctrl_c(*args, **kwargs):  # type: ignore[no-untyped-def]
        proc = real_popen(*args, **kwargs)
        assert runner.kill_all(grace_s=0.5) == 0  # the new child is not registered yet
        return proc

    monkeypatch.setattr(runner.subprocess, "Popen", popen_then_ctrl_c)
    spec = TrialSpec(
        argv=(sys.executable, "-c", "import time; time.sleep(600)"), timeout_s=60, kill_grace_s=1
    )
    try:
        res = run_trial(spec, tmp_path / "t")
    finally:
        runner.reset_cancel()
    assert not res.timed_out  # stopped by the cancel, not by the 60 s timeout
    assert res.signal == signal.SIGTERM
    assert res.error == "cancelled"


def test_start_trial_returns_while_the_trial_runs_and_await_trial_finishes_it(tmp_path: Path) -> None:
    """The three steps of run_trial: the files exist and the process runs when start_trial returns;
    await_trial waits, stops past the deadline, and gives the result; nothing is left registered."""
    from sleuth import _spawn
    from sleuth.runner import await_trial, start_trial

    r = start_trial(spec(sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)",
                         timeout_s=1.0, kill_grace_s=1.0), tmp_path / "t")  # fmt: skip
    assert pid_alive(r.pid) and r.proc is not None and r.proc.returncode is None
    assert (tmp_path / "t" / "stdout").is_file() and (tmp_path / "t" / "stderr").is_file()
    assert _spawn.owned(r.pid)
    res = await_trial(r)
    assert res.timed_out and res.signal == signal.SIGTERM and res.stdout_tail == "up\n"
    assert 1.0 <= res.wall_s < 10
    assert not _spawn.owned(r.pid) and not pid_alive(r.pid) and r.closed


def test_a_trial_that_cannot_start_is_over_at_once_with_its_files(tmp_path: Path) -> None:
    from sleuth.runner import await_trial, start_trial

    r = start_trial(spec("/nonexistent/program"), tmp_path / "t")
    assert r.proc is None and r.pid == -1 and r.error == "command not found: /nonexistent/program"
    res = await_trial(r)
    assert (res.rc, res.error) == (None, "command not found: /nonexistent/program")
    assert (tmp_path / "t" / "stdout").read_bytes() == b"" and (tmp_path / "t" / "stderr").is_file()


def test_a_forked_child_sees_its_own_children_and_pid_not_the_parents(tmp_path: Path) -> None:
    """reaper and atomic keep the pid (a system call) across calls; a fork must reset both, or a
    forked child would list its parent's children as adopted and share its temp file names."""
    import subprocess

    from sleuth import atomic, reaper

    child = subprocess.Popen(["sleep", "30"])  # a child of this (the main) thread
    try:
        if child.pid not in reaper.adopted():
            pytest.skip("no /proc/<pid>/task/<pid>/children here")
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, then leave without running any cleanup of pytest's
            try:
                ok = child.pid not in reaper.adopted() and atomic._pid == os.getpid()
                atomic.atomic_write_text(tmp_path / "from-child.txt", "x")
                os.write(write, b"1" if ok else b"0")
            finally:
                os._exit(0)
        os.close(write)
        got = os.read(read, 1)
        os.close(read)
        os.waitpid(pid, 0)
        assert got == b"1"
        assert (tmp_path / "from-child.txt").read_text() == "x"
        assert child.pid in reaper.adopted() and atomic._pid == os.getpid()  # the parent's unchanged
    finally:
        child.kill()
        child.wait()


def _ctrl_c_during(setup: str, call: str, pidfile: Path) -> None:
    """Run ``call`` (after ``setup``) in a fresh Python, send it a Ctrl-C 1 s later, and check that the
    child whose shell wrote ``pidfile`` did not outlive it."""
    script = (
        "import os, signal, threading, sys\n"
        "from pathlib import Path\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        f"{setup}"
        "threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
        "try:\n"
        f"    {call}\n"
        "except KeyboardInterrupt:\n"
        "    os._exit(130)\n"
        "os._exit(0)\n"
    )
    res = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert res.returncode == 130
    assert not pid_alive(int(pidfile.read_text())), "the child outlived the Ctrl-C"


def test_a_ctrl_c_while_a_tool_runs_stops_the_tool(tmp_path: Path) -> None:
    """A tool (``uv pip install``, ``git clone``) must not outlive a Ctrl-C of the caller: run_tool
    forgets it on the way out, and then neither kill_all nor the exit hook would reach it."""
    pidfile = tmp_path / "tool.pid"
    setup = "from sleuth.runner import run_tool\n"
    _ctrl_c_during(setup, f"run_tool(['sh', '-c', 'echo $$ > {pidfile}; exec sleep 60'])", pidfile)


def test_a_ctrl_c_as_popen_returns_still_reaches_the_child(tmp_path: Path) -> None:
    """Under load a Ctrl-C (or SIGTERM) could land inside Popen just after the fork: the child's pid
    was lost with the unfinished Popen, and the child ran on after sleuth had exited (a SIGTERM to
    `sleuth env --python SLOW` as the probe started left the probe behind).  Here the signal lands
    as Popen returns, every time; the exit hook must find the child."""
    pidfile = tmp_path / "tool.pid"
    script = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "real_init = subprocess.Popen.__init__\n"
        "def init_then_ctrl_c(self, *args, **kwargs):\n"
        "    real_init(self, *args, **kwargs)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.5)\n"  # the handler runs in the main thread meanwhile
        "subprocess.Popen.__init__ = init_then_ctrl_c\n"
        "from sleuth.runner import run_tool\n"
        "try:\n"
        f"    run_tool(['sh', '-c', 'echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; exec sleep 60'])\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n"  # as the CLI does: the exit hook stops what is registered
    )
    res = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert res.returncode == 130
    deadline = time.monotonic() + 10
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not pidfile.exists():
        return  # stopped before its first line: nothing outlived the Ctrl-C
    pid = int(pidfile.read_text())
    alive = pid_alive(pid)
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "the child outlived the Ctrl-C"


def test_a_ctrl_c_while_a_trial_is_awaited_stops_the_trial(tmp_path: Path) -> None:
    """await_trial forgets the trial on the way out; a Ctrl-C reaching it (a caller awaiting in the
    main thread) must stop the trial first, or neither kill_all nor the exit hook would reach it."""
    pidfile = tmp_path / "trial.pid"
    setup = (
        "from sleuth.model import TrialSpec\n"
        "from sleuth.runner import await_trial, start_trial\n"
        f"argv = ('sh', '-c', 'echo $$ > {pidfile}; exec sleep 60')\n"
        "spec = TrialSpec(argv=argv, env=dict(os.environ), kill_grace_s=1.0)\n"
        f"r = start_trial(spec, Path({str(tmp_path / 't')!r}))\n"
    )
    _ctrl_c_during(setup, "await_trial(r)", pidfile)
