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

Its private parts, re-exported here (import them from this module): :mod:`sleuth._orphans` (the
cleanup records, :func:`reap_orphans`), :mod:`sleuth._tools` (:func:`run_tool`, infrastructure
commands) and :mod:`sleuth._groups` (:func:`spawn_group`, long-lived children in their own group).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from sleuth import _spawn
from sleuth._groups import ProcessGroup, spawn_group
from sleuth._orphans import CLEANUP_FILE, CLIENT_DIR, arm_cleanup, reap_orphans
from sleuth._spawn import Cleanup, cancel, kill_all, reset_cancel
from sleuth._tools import ToolResult, run_tool
from sleuth.model import MetricValue, RunPlan, SeriesSummary, TrialResult, TrialSpec
from sleuth.scan import fd_tail, metrics_from_files, read_metrics_json

__all__ = [
    "CLEANUP_FILE",
    "CLIENT_DIR",
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
            arm_cleanup(tdir, plan)
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


if __name__ == "__main__":  # a trial on a cluster node (sleuth.remote)
    import sys

    from sleuth.remote import main

    raise SystemExit(main(sys.argv[1:]))
