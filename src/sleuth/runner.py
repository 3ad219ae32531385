"""THE one place that spawns processes (with its private half, :mod:`sleuth._spawn`).

* argv lists only, never a shell;
* every child gets its own session/process group and ``stdin=/dev/null``;
* a timeout or a cancel stops the whole group: SIGTERM, then SIGKILL after ``kill_grace_s``;
  nothing a trial started survives it: the group is swept when the leader exits, and descendants
  that left the group (``setsid``, double forks, daemons) are found through :mod:`sleuth.reaper`
  (sleuth is their subreaper) and stopped the same way, then reaped;
* stdout/stderr go straight to files, so memory stays bounded whatever the workload prints;
  only small tails are read back;
* a spec with a ``hook`` (a container client) is bound per run to its trial dir and device; what
  the hook says outlives the process (a container) is removed by its cleanup command at once when
  the trial is stopped (timeout, cancel, Ctrl-C) or the client dies of a signal, and, after a
  kill -9 of sleuth, by :func:`reap_orphans` (the command waits in ``.sleuth-cleanup.json`` in the
  trial dir while the trial runs).

A trial runs whole in :func:`run_trial`, which is :func:`start_trial` (the trial dir, its output
files, the spawn; returns at once with a :class:`Running`) then :func:`await_trial` (the wait, the
timeout and the kill sequence) and :func:`finish_trial` (tails, metrics, the result).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sleuth import _spawn, reaper
from sleuth._spawn import Cleanup, cancel, kill_all, reset_cancel
from sleuth.errors import InfrastructureError
from sleuth.model import MetricValue, RunPlan, SeriesSummary, TrialResult, TrialSpec
from sleuth.scan import fd_tail, metrics_from_files, read_metrics_json

__all__ = [
    "ProcessGroup",
    "Running",
    "ToolResult",
    "await_trial",
    "cancel",
    "finish_trial",
    "kill_all",
    "reap_orphans",
    "reset_cancel",
    "run_tool",
    "run_trial",
    "spawn_group",
    "start_trial",
]

_HOST = os.uname().nodename  # gethostname() without importing socket (start-up)
_OUT_FLAGS = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
#: set when this process has spawned its first trial: a bisection loads its console and its report
#: while that one runs, not before it starts (:attr:`sleuth.bisect.trials.TestPool.on_first_wait`)
FIRST_SPAWNED = threading.Event()
#: a hooked trial's cleanup command, in its trial dir while it runs (read by :func:`reap_orphans`)
CLEANUP_FILE = ".sleuth-cleanup.json"
#: a cluster backend's client (``srun``) runs as a trial of its own in this subdirectory of the trial
#: dir (its output, the spec file, the node's result); its cleanup record there is read too
CLIENT_DIR = ".sleuth-client"


def _arm(tdir: str, plan: RunPlan) -> None:
    """Record the cleanup in the trial dir before the spawn: a resume after a kill -9 runs it."""
    tmp = f"{tdir}/{CLEANUP_FILE}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"argv": list(plan.cleanup), "env": dict(plan.cleanup_env)}, fh)
    os.replace(tmp, f"{tdir}/{CLEANUP_FILE}")


def _mkdir(path: str) -> None:
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


class Running:
    """A trial from :func:`start_trial`: its process runs (``proc``), or it never started (``error``).

    Its output files stay open until :func:`finish_trial` (or :meth:`close`).
    """

    __slots__ = (
        "cleanup",
        "closed",
        "deadline",
        "device",
        "err_fd",
        "error",
        "grace",
        "live",
        "marker",
        "out_fd",
        "plan",
        "proc",
        "spec",
        "started_at",
        "t0",
        "tdir",
        "timed_out",
        "trial_dir",
    )  # fmt: skip

    def __init__(self, spec: TrialSpec, trial_dir: Path, tdir: str, *, device: str | None,
                 plan: RunPlan | None, marker: bytes, cleanup: Cleanup | None) -> None:  # fmt: skip
        self.spec = spec
        self.trial_dir = trial_dir
        #: ``trial_dir`` absolute, as a string
        self.tdir = tdir
        self.device = device
        self.plan = plan
        self.marker = marker
        self.grace = spec.kill_grace_s
        self.cleanup = cleanup
        self.out_fd = -1
        self.err_fd = -1
        self.started_at = time.time()
        self.t0 = time.monotonic()
        #: when the trial times out (``time.monotonic()``), None without a timeout
        self.deadline: float | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.live: _spawn.Live | None = None
        self.error: str | None = None
        self.timed_out = False
        self.closed = False

    @property
    def pid(self) -> int:
        """The trial's process (its group leader); -1 when it never started."""
        return self.proc.pid if self.proc is not None else -1

    def close(self) -> None:
        """Close the output files, forget the process, remove the cleanup record (once)."""
        if self.closed:
            return
        self.closed = True
        if self.proc is not None:
            _spawn.forget(self.proc.pid)
        for fd in (self.out_fd, self.err_fd):
            if fd >= 0:
                os.close(fd)
        if self.cleanup is not None:
            with contextlib.suppress(OSError):
                os.unlink(f"{self.tdir}/{CLEANUP_FILE}")


def start_trial(spec: TrialSpec, trial_dir: Path, *, device: str | None = None) -> Running:
    """Create ``trial_dir`` and its output files and spawn the trial; returns at once.

    A spawn failure, or a cancel (:func:`kill_all`) before or while it starts, gives a
    :class:`Running` that is already over (its ``error`` says why).  Pass it to :func:`await_trial`.
    """
    tdir = os.path.abspath(trial_dir)
    _mkdir(tdir)
    plan: RunPlan | None = None
    if spec.hook is not None:
        plan = spec.hook.bind(spec, trial_dir, device)
        spec = plan.spec
    env = dict(spec.env)
    env["SLEUTH_TRIAL_DIR"] = tdir
    env["SLEUTH_TRIAL_ID"] = trial_dir.name
    if spec.cwd is not None:  # not sleuth's own: make's $(PWD) or os.environ["PWD"] would name the caller's
        env["PWD"] = os.path.abspath(spec.cwd)
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device
        env["HIP_VISIBLE_DEVICES"] = device
    cleanup = None
    if plan is not None and plan.cleanup:  # without the marker: a cleanup is never taken for the trial's
        cleanup = (plan.cleanup, {k: v for k, v in env.items() if k != "SLEUTH_TRIAL_DIR"})
    marker = b"SLEUTH_TRIAL_DIR=" + os.fsencode(tdir)
    r = Running(spec, trial_dir, tdir, device=device, plan=plan, marker=marker, cleanup=cleanup)
    try:
        r.out_fd = os.open(f"{tdir}/stdout", _OUT_FLAGS, 0o666)
        r.err_fd = os.open(f"{tdir}/stderr", _OUT_FLAGS, 0o666)
        if _spawn.cancelled():
            r.error = "cancelled before start"
            return r
        if cleanup is not None:
            assert plan is not None
            _arm(tdir, plan)
        _spawn_into(r, env)
    except BaseException:
        r.close()
        raise
    return r


def _spawn_into(r: Running, env: dict[str, str]) -> None:
    spec = r.spec
    exe = _spawn.executable(spec.argv[0], env) if spec.argv else None
    kw = {"stdin": _spawn.stdin(), "stdout": r.out_fd, "stderr": r.err_fd, "cwd": spec.cwd, "env": env}
    try:
        try:
            proc, live, cancelled = _spawn.spawn(
                spec.argv, r.marker, r.grace, r.cleanup, executable=exe, **kw
            )
        except FileNotFoundError:
            if exe is None:
                raise
            _spawn.forget_executable(spec.argv[0], env)  # moved since
            proc, live, cancelled = _spawn.spawn(spec.argv, r.marker, r.grace, r.cleanup, **kw)
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):  # sleuth's own limit, not the trial's: the run
            raise  # stops (raise the limit, resume: the trial runs then), no ERROR result is recorded
        if exc.errno == errno.EAGAIN:  # the fork: the user's process limit (ulimit -u, pids.max), the same
            raise OSError(
                errno.EAGAIN, f"the process limit is reached: could not start {spec.argv[0]}"
            ) from exc
        r.error = _spawn.spawn_error(spec.argv, spec.cwd, exc, env.get("PATH", os.defpath))
        return
    r.proc, r.live = proc, live
    if not FIRST_SPAWNED.is_set():
        FIRST_SPAWNED.set()
    if spec.timeout_s is not None:
        r.deadline = time.monotonic() + spec.timeout_s
    if cancelled:  # Ctrl-C landed while it was being spawned
        _spawn.cleanup_once(live)
        _spawn.stop(proc, r.marker, r.grace)
        r.error = "cancelled"


def await_trial(r: Running) -> TrialResult:
    """Wait for the trial of :func:`start_trial` to end: past its deadline, its cleanup runs and its
    group and escapees are stopped (SIGTERM, the grace, SIGKILL); what it left is stopped either way.
    Returns :func:`finish_trial`'s result."""
    proc = r.proc
    if proc is not None:
        try:
            left = None if r.deadline is None else max(0.0, r.deadline - time.monotonic())
            try:
                proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                r.timed_out = True
                _spawn.cleanup_once(r.live)  # at once: the client's SIGTERM may not reach PID 1
            # what is left (the group after a timeout, stragglers, escaped daemons) stops now
            _spawn.stop(proc, r.marker, r.grace, r.live)
        except BaseException:  # Ctrl-C: once forgotten, kill_all and the exit hook no longer reach it
            try:
                _spawn.cleanup_once(r.live)
                _spawn.stop(proc, r.marker, r.grace, r.live)
            finally:
                r.close()
            raise
    return finish_trial(r)


def finish_trial(r: Running) -> TrialResult:
    """The result of a trial whose process is reaped and whose leftovers are stopped; closes it."""
    rc: int | None = None
    sig: int | None = None
    try:
        if r.proc is not None:
            _spawn.forget(r.proc.pid)  # reaped: kill_all must not signal its (reusable) pid
            code = r.proc.returncode
            if code is not None and code < 0:
                sig = -code
                _spawn.cleanup_once(r.live)  # the client was killed: its container may still run
            else:
                rc = code
        wall = time.monotonic() - r.t0
        # read the tails back through the open descriptors: no extra opens on the hot path
        env = r.spec.env
        out_tail, err_tail = _public(fd_tail(r.out_fd), env), _public(fd_tail(r.err_fd), env)
    finally:
        r.close()
    spec, trial_dir, error = r.spec, r.trial_dir, r.error
    if r.plan is not None and error is None and not r.timed_out:
        hook = r.plan.spec.hook
        error = hook.own_error(rc, err_tail) if hook is not None else None
    out_path, err_path = trial_dir / "stdout", trial_dir / "stderr"
    metrics: dict[str, MetricValue] = {}
    series: dict[str, SeriesSummary] = {}
    if spec.metrics:
        metrics, series = metrics_from_files(spec.metrics, out_path, err_path, series_dir=trial_dir)
    file_metrics: dict[str, MetricValue] = {}
    file_series: dict[str, SeriesSummary] = {}
    # access(): a path lookup that answers a bool (exists() is a stat whose FileNotFoundError, raised
    # and caught per trial, cost as much again); only whether the name resolves matters here
    if os.access(f"{r.tdir}/metrics.json", os.F_OK):
        file_metrics, file_series, _problem = read_metrics_json(trial_dir / "metrics.json")
    for name, value in file_metrics.items():  # a regex metric of the same name wins
        if name not in metrics:
            metrics[name] = value
            if name in file_series:
                series[name] = file_series[name]
    return TrialResult(
        spec=spec,
        trial_dir=trial_dir,
        rc=rc,
        signal=sig,
        timed_out=r.timed_out,
        started_at=r.started_at,
        wall_s=wall,
        stdout_path=out_path,
        stderr_path=err_path,
        stdout_tail=out_tail,
        stderr_tail=err_tail,
        metrics=metrics,
        series=series,
        host=_HOST,
        error=error,
        device=r.device,
    )


def _public(tail: str, env: Mapping[str, str]) -> str:
    """A tail as every copy of it may show it: URL credentials, token-shaped words and the values of
    secret variables of the trial's environment that the workload printed are hidden (its log files
    keep them; the tails go to results, journals and reports)."""
    if not tail:
        return tail
    from sleuth.secrets import env_secret_values, scrub_text  # only for a trial that printed something

    return scrub_text(tail, env_secret_values(env))


def run_trial(spec: TrialSpec, trial_dir: Path, *, device: str | None = None) -> TrialResult:
    """Run one trial to completion (or timeout) with its output in ``trial_dir``.

    A workload failure is data in the result; only a spawn failure sets ``error`` (sleuth out of file
    descriptors, EMFILE/ENFILE, or of processes, EAGAIN, raises instead: that is not the trial's
    doing).  When it returns, nothing the trial started is left running (see the module docstring).
    """
    return await_trial(start_trial(spec, trial_dir, device=device))


def reap_orphans(run_dir: Path) -> int:
    """SIGKILL the processes of trials of ``run_dir`` left running by a sleuth that died (kill -9).

    A trial is recognised by ``SLEUTH_TRIAL_DIR`` inside ``run_dir`` in its environment (the runner
    sets it for every child, and grandchildren inherit it), so no other process is ever touched.
    Call it only while holding the run dir (``RunDir`` locks it).  Linux only (``/proc``); returns
    how many process groups were killed.  First, the cleanup commands that hooked trials left in
    their trial dirs (``.sleuth-cleanup.json``: containers of the killed run) run, and are removed.
    """
    _reap_cleanups(run_dir)
    prefixes = tuple(
        f"SLEUTH_TRIAL_DIR={p}{os.sep}".encode() for p in {os.path.abspath(run_dir), str(run_dir.resolve())}
    )
    groups: set[int] = set()
    pids: list[int] = []
    me = os.getpgid(0)
    try:
        candidates = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in candidates:
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read()
            pgid = os.getpgid(pid)
        except OSError:  # gone, or not ours to read
            continue
        if pgid != me and any(v.startswith(prefixes) for v in environ.split(b"\0")):
            groups.add(pgid)
            pids.append(pid)
    for pgid in groups:
        reaper._signal_group(pgid, signal.SIGKILL)
    reaper._signal(pids, signal.SIGKILL)  # and those that left their group
    reaper.reap_zombies(_spawn.owned, allowed=_spawn.no_spawn_in_flight)
    return len(groups)


def _reap_cleanups(run_dir: Path) -> None:
    """Run the cleanups that a killed sleuth left in ``run_dir``'s trial dirs, then forget them."""
    jobs: list[tuple[Path, tuple[str, ...], dict[str, str]]] = []
    for path in _cleanup_records(run_dir):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            argv = tuple(str(a) for a in rec["argv"])
            env = {**os.environ, **{str(k): str(v) for k, v in dict(rec.get("env") or {}).items()}}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if argv:
            jobs.append((path, argv, env))
    _spawn.at_once([(_spawn.run_cleanup, a, e) for _, a, e in jobs])
    for path, _, _ in jobs:
        with contextlib.suppress(OSError):
            path.unlink()


def _cleanup_records(run_dir: Path) -> Iterator[Path]:
    """The cleanup records under ``run_dir``, walked without recursion and without entering what a
    workload wrote in its trial dir (a directory with a ``stdout``): ``rglob`` walked its 100,000
    files on every resume, and a tree 1,000 deep there raised RecursionError (a traceback)."""
    top = os.fspath(run_dir)
    stack = [top]
    while stack:
        d = stack.pop()
        record = os.path.join(d, CLEANUP_FILE)
        if os.path.isfile(record):
            yield Path(record)
        if d != top and os.path.isfile(os.path.join(d, "stdout")):
            client = os.path.join(d, CLIENT_DIR, CLEANUP_FILE)  # a trial dir: only sleuth's own subdir
            if os.path.isfile(client):
                yield Path(client)
            continue
        try:
            with os.scandir(d) as entries:
                stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            continue


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A finished infrastructure command (git, uv, nvidia-smi), output captured in memory."""

    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str
    wall_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.rc == 0 and not self.timed_out

    def brief(self, limit: int = 300) -> str:
        """The last line of stderr (or stdout), for one-line error messages; trailing ``hint:``/
        ``help:``/``note:`` lines (uv, cargo-style tools) are skipped for the line that names the error."""
        text = [ln for ln in (self.stderr.strip() or self.stdout.strip()).splitlines() if ln.strip()]
        lines = [ln for ln in text if not ln.lstrip().lower().startswith(("hint:", "help:", "note:"))]
        last = (lines or text)[-1] if text else f"exit {self.rc}"
        return last.strip()[:limit]


def run_tool(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    input_text: str | None = None,
    pass_fds: Sequence[int] = (),
) -> ToolResult:
    """Run an infrastructure command and capture its output.

    Raises ``InfrastructureError`` when the program does not exist; a non-zero exit is returned.
    ``pass_fds``: descriptors the tool inherits, e.g. a lock that must stay held while it runs,
    even when sleuth is killed (``kill -9``) and the tool goes on alone.
    """
    exe = argv[0]
    if os.sep not in exe and shutil.which(exe, path=(env or os.environ).get("PATH")) is None:
        raise InfrastructureError(f"command not found: {exe}", hint=f"install {exe} or put it on PATH")
    t0 = time.monotonic()
    try:
        proc, _live, cancelled = _spawn.spawn(
            argv,
            None,
            2.0,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            pass_fds=tuple(pass_fds),
        )
    except OSError as exc:
        if exc.errno == errno.EAGAIN:  # the process limit: a stop (exit 4), not the candidate's ERROR
            raise OSError(errno.EAGAIN, f"the process limit is reached: could not start {argv[0]}") from exc
        raise InfrastructureError(_spawn.spawn_error(argv, str(cwd) if cwd else None, exc)) from exc
    timed_out = False
    try:
        if cancelled:  # Ctrl-C landed while this tool was being spawned
            _spawn.stop(proc, None, 2.0)
        try:
            out, err = proc.communicate(input=input_text.encode() if input_text else None, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _spawn.stop(proc, None, 2.0)
            out, err = proc.communicate()
    except BaseException:  # Ctrl-C: once forgotten, kill_all and the exit hook no longer reach it
        _spawn.stop(proc, None, 2.0)
        raise
    finally:
        _spawn.forget(proc.pid)
    return ToolResult(
        argv=tuple(argv),
        rc=proc.returncode if proc.returncode is not None else -1,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
        wall_s=time.monotonic() - t0,
        timed_out=timed_out,
    )


class ProcessGroup:
    """A long-lived child in its own process group, from :func:`spawn_group`.

    ``wait``/``poll`` reap the leader; ``wait_all`` waits for the whole group; ``signal`` reaches the
    whole group (forwarding a Ctrl-C or a SIGTERM); ``terminate`` stops the group SIGTERM then
    SIGKILL, and with a ``trial_dir`` the descendants that left the group too (as a trial's);
    ``kill_group`` SIGKILLs what is left in the group; ``wait_gone`` waits for what was killed to exit.
    With ``pipes=True``, ``stdin``/``stdout`` are the child's pipes (binary).
    """

    def __init__(self, proc: subprocess.Popen[bytes], marker: bytes | None = None) -> None:
        self._proc = proc
        self._marker = marker
        self.pid = proc.pid
        self.stdin = proc.stdin
        self.stdout = proc.stdout

    def poll(self) -> int | None:
        """The leader's return code (negative: killed by that signal), or None while it runs."""
        return self._proc.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds for the leader; its return code, or None when it still runs."""
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def wait_all(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the leader and every other process of the group to end
        (the orphans among them are reaped); True when none is left."""
        deadline = time.monotonic() + timeout
        delay = 0.001
        while self._proc.poll() is None or reaper.group_alive(self.pid):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            reaper.reap_zombies(_spawn.owned, allowed=_spawn.no_spawn_in_flight)
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)
        return True

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process of the group (gone processes are ignored)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def terminate(self, grace_s: float = 5.0) -> int:
        """SIGTERM the group (and the escaped descendants, with a ``trial_dir``), SIGKILL what is
        left after ``grace_s``; the leader's return code."""
        _spawn.stop(self._proc, self._marker, grace_s)
        self.kill_group()
        return self._proc.returncode

    def wait_gone(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every process of the group and, with a ``trial_dir``,
        every escaped descendant to have exited (one SIGKILLed while it frees much memory, a GPU's,
        takes its time); True when none is left.  It signals nothing."""
        markers = (self._marker,) if self._marker is not None else ()
        deadline = time.monotonic() + timeout
        delay = 0.001
        while reaper.group_alive(self.pid) or reaper.escapees(markers, _spawn.owned):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            reaper.reap_zombies(_spawn.owned, allowed=_spawn.no_spawn_in_flight)
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)
        return True

    def kill_group(self) -> None:
        """SIGKILL stragglers (grandchildren) still in the group, and with a ``trial_dir`` the escaped
        descendants; forget the child."""
        if reaper.group_alive(self.pid):
            self.signal(signal.SIGKILL)
        if self._marker is not None:  # after terminate none is left: one read of /proc
            reaper.stop((), (self._marker,), 0.0, owned=_spawn.owned, reap_allowed=_spawn.no_spawn_in_flight)
        _spawn.forget(self.pid)
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def spawn_group(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    output: Path | None = None,
    pipes: bool = False,
    grace_s: float = 5.0,
    trial_dir: str | None = None,
) -> ProcessGroup:
    """Start ``argv`` in its own process group and return at once (``sleuth supervise``, MCP servers).

    stdout and stderr go, interleaved, to ``output`` (appended) or, with ``pipes``, stdout to a pipe
    and stderr to ``output`` (or /dev/null); stdin is a pipe with ``pipes``, else /dev/null.  The
    child counts as running for :func:`kill_all` (which gives it ``grace_s`` between SIGTERM and
    SIGKILL) until ``terminate``/``kill_group`` is called.  ``trial_dir`` (absolute) is put in its
    environment as ``SLEUTH_TRIAL_DIR``, the marker that makes the descendants that leave the group
    (``setsid``, daemons) the group's own, as a trial's: ``terminate`` and :func:`kill_all` stop
    them with it, and :func:`reap_orphans` after a kill -9 of sleuth.
    Raises ``InfrastructureError`` when it cannot start.
    """
    marker = None
    if trial_dir is not None:
        env = {**(os.environ if env is None else env), "SLEUTH_TRIAL_DIR": trial_dir}
        marker = b"SLEUTH_TRIAL_DIR=" + os.fsencode(trial_dir)
    out = open(output, "ab") if output is not None else None  # noqa: SIM115 - closed below
    try:
        proc, _live, _ = _spawn.spawn(
            argv,
            marker,
            grace_s,
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else (out if out is not None else subprocess.DEVNULL),
            stderr=out if out is not None else subprocess.DEVNULL,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            close_fds=True,
        )
    except OSError as exc:
        raise InfrastructureError(_spawn.spawn_error(argv, str(cwd) if cwd else None, exc)) from exc
    finally:
        if out is not None:
            out.close()  # the child holds its own descriptor
    return ProcessGroup(proc, marker)


if __name__ == "__main__":  # a trial on a cluster node (sleuth.remote)
    import sys

    from sleuth.remote import main

    raise SystemExit(main(sys.argv[1:]))
