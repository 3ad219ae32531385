"""THE one place that spawns processes.

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
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth import reaper
from sleuth.errors import InfrastructureError
from sleuth.model import MetricValue, RunPlan, SeriesSummary, TrialResult, TrialSpec
from sleuth.scan import fd_tail, metrics_from_files, read_metrics_json

__all__ = [
    "ProcessGroup",
    "ToolResult",
    "cancel",
    "kill_all",
    "reap_orphans",
    "reset_cancel",
    "run_tool",
    "run_trial",
    "spawn_group",
]

_HOST = os.uname().nodename  # gethostname() without importing socket (start-up)
_OUT_FLAGS = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
#: a hooked trial's cleanup command, in its trial dir while it runs (read by :func:`reap_orphans`)
CLEANUP_FILE = ".sleuth-cleanup.json"
_CLEANUP_TIMEOUT_S = 60.0


@dataclass(slots=True)
class _Live:
    proc: subprocess.Popen[bytes]
    #: ``SLEUTH_TRIAL_DIR=<dir>`` (what marks the trial's descendants), None for a tool
    marker: bytes | None
    grace_s: float
    #: a hooked trial's cleanup (argv, the client's env), run once (see the module docstring)
    cleanup: tuple[tuple[str, ...], dict[str, str]] | None = None
    cleaned: bool = False


_live: dict[int, _Live] = {}
_live_lock = threading.Lock()
#: spawns whose pid is not registered in ``_live`` yet: no zombie may be reaped meanwhile
_spawning = 0
_cancelled = threading.Event()


def _owned(pid: int) -> bool:
    return pid in _live


def _no_spawn_in_flight() -> bool:
    return _spawning == 0


def _spawn(argv: Sequence[str], marker: bytes | None, grace_s: float,
           cleanup: tuple[tuple[str, ...], dict[str, str]] | None = None, **kw: object) -> tuple[
    subprocess.Popen[bytes], bool]:  # fmt: skip
    """Popen in a new session, registered in ``_live``; returns (proc, cancelled meanwhile)."""
    global _spawning
    reaper.enable()
    with _live_lock:
        _spawning += 1
    try:
        proc = subprocess.Popen(list(argv), start_new_session=True, **kw)  # type: ignore[call-overload]
    except BaseException:
        with _live_lock:
            _spawning -= 1
        raise
    with _live_lock:
        _spawning -= 1
        _live[proc.pid] = _Live(proc, marker, grace_s, cleanup)
        # kill_all() sets the flag before it looks at _live: a child spawned while it ran
        # (Ctrl-C between the caller's check and this line) is stopped by the caller, not left running
        cancelled = _cancelled.is_set()
    return proc, cancelled


_found: dict[tuple[str, str], str] = {}
_devnull: int | None = None


def _stdin() -> int:
    """One ``/dev/null`` descriptor for every trial's stdin (Popen would open one per trial)."""
    global _devnull
    if _devnull is None:
        _devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _devnull


def _executable(name: str, env: Mapping[str, str]) -> str | None:
    """``name`` looked up on the child's PATH, as exec would, remembered: Popen would otherwise
    join every PATH entry with it for each trial.  None for a path or a name not found."""
    if os.sep in name:
        return None
    key = (name, env.get("PATH", os.defpath))
    hit = _found.get(key)
    if hit is None:
        hit = shutil.which(name, path=key[1])
        if hit is None or not os.path.isabs(hit):  # a relative PATH entry depends on the trial's cwd
            return None
        _found[key] = hit
    return hit


def _forget(pid: int) -> None:
    with _live_lock:
        _live.pop(pid, None)


def _stop(proc: subprocess.Popen[bytes], marker: bytes | None, grace_s: float) -> None:
    """Stop the trial's group and its escapees: SIGTERM, up to ``grace_s``, SIGKILL; returns as soon
    as all of it is gone (zombies are reaped, not waited on)."""
    markers = (marker,) if marker is not None else ()
    reaper.stop(
        (proc.pid,),
        markers,
        grace_s,
        owned=_owned,
        reap_allowed=_no_spawn_in_flight,
        done=lambda: proc.poll() is not None,
    )
    proc.wait()


def _run_cleanup(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Run a cleanup command to its end (bounded); it runs even after a cancel, unlike a tool."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=dict(env), timeout=_CLEANUP_TIMEOUT_S,
                       start_new_session=True, check=False)  # fmt: skip


def _cleanup_once(live: _Live | None) -> None:
    """The live trial's cleanup, unless it ran already (kill_all and the worker both get here)."""
    if live is None or live.cleanup is None:
        return
    with _live_lock:
        if live.cleaned:
            return
        live.cleaned = True
    _run_cleanup(*live.cleanup)


def _at_once(calls: Sequence[tuple[Any, ...]]) -> None:
    """``f(*args)`` for each ``(f, *args)``, each in its own thread; returns when all have ended."""
    threads = [threading.Thread(target=c[0], args=c[1:], daemon=True) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(_CLEANUP_TIMEOUT_S)


def _arm(tdir: str, plan: RunPlan) -> None:
    """Record the cleanup in the trial dir before the spawn: a resume after a kill -9 runs it."""
    tmp = f"{tdir}/{CLEANUP_FILE}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"argv": list(plan.cleanup), "env": dict(plan.cleanup_env)}, fh)
    os.replace(tmp, f"{tdir}/{CLEANUP_FILE}")


def _spawn_error(argv: Sequence[str], cwd: str | None, exc: OSError) -> str:
    if cwd is not None and not os.path.isdir(cwd):
        return f"working directory not found: {cwd}"
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {argv[0]}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {argv[0]} (is it executable?)"
    return f"could not start {argv[0]}: {exc.strerror or exc}"


def _mkdir(path: str) -> None:
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


def run_trial(spec: TrialSpec, trial_dir: Path, *, device: str | None = None) -> TrialResult:
    """Run one trial to completion (or timeout) with its output in ``trial_dir``.

    A workload failure is data in the result; only a spawn failure sets ``error``.  When it
    returns, nothing the trial started is left running (see the module docstring).
    """
    tdir = os.path.abspath(trial_dir)
    _mkdir(tdir)
    out_name, err_name = f"{tdir}/stdout", f"{tdir}/stderr"
    plan: RunPlan | None = None
    if spec.hook is not None:
        plan = spec.hook.bind(spec, trial_dir, device)
        spec = plan.spec
    env = dict(spec.env)
    env["SLEUTH_TRIAL_DIR"] = tdir
    env["SLEUTH_TRIAL_ID"] = trial_dir.name
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device
        env["HIP_VISIBLE_DEVICES"] = device
    marker = b"SLEUTH_TRIAL_DIR=" + os.fsencode(tdir)
    grace = spec.kill_grace_s
    cleanup = None
    if plan is not None and plan.cleanup:  # without the marker: a cleanup is never taken for the trial's
        cleanup = (plan.cleanup, {k: v for k, v in env.items() if k != "SLEUTH_TRIAL_DIR"})
    started_at = time.time()
    t0 = time.monotonic()
    rc: int | None = None
    sig: int | None = None
    timed_out = False
    error: str | None = None
    out_fd = os.open(out_name, _OUT_FLAGS, 0o666)
    try:
        err_fd = os.open(err_name, _OUT_FLAGS, 0o666)
    except BaseException:
        os.close(out_fd)
        raise
    try:
        if _cancelled.is_set():
            error = "cancelled before start"
        else:
            if cleanup is not None:
                assert plan is not None
                _arm(tdir, plan)
            exe = _executable(spec.argv[0], env) if spec.argv else None
            try:
                try:
                    proc, cancelled = _spawn(
                        spec.argv, marker, grace, cleanup, executable=exe,
                        stdin=_stdin(), stdout=out_fd, stderr=err_fd, cwd=spec.cwd, env=env,
                    )  # fmt: skip
                except FileNotFoundError:
                    if exe is None:
                        raise
                    _found.pop((spec.argv[0], env.get("PATH", os.defpath)), None)  # moved since
                    proc, cancelled = _spawn(
                        spec.argv, marker, grace, cleanup,
                        stdin=_stdin(), stdout=out_fd, stderr=err_fd, cwd=spec.cwd, env=env,
                    )  # fmt: skip
            except OSError as exc:
                error = _spawn_error(spec.argv, spec.cwd, exc)
            else:
                live = _live.get(proc.pid)
                try:
                    if cancelled:
                        _cleanup_once(live)
                        _stop(proc, marker, grace)
                        error = "cancelled"
                    try:
                        proc.wait(timeout=spec.timeout_s)
                    except subprocess.TimeoutExpired:
                        timed_out = True
                        _cleanup_once(live)  # at once: the client's SIGTERM may not reach PID 1
                    # what is left (the group after a timeout, stragglers, escaped daemons) stops now
                    _stop(proc, marker, grace)
                finally:
                    _forget(proc.pid)
                code = proc.returncode
                if code is not None and code < 0:
                    sig = -code
                    _cleanup_once(live)  # the client was killed: its container may still run
                else:
                    rc = code
        wall = time.monotonic() - t0
        # read the tails back through the open descriptors: no extra opens on the hot path
        out_tail, err_tail = fd_tail(out_fd), fd_tail(err_fd)
    finally:
        os.close(out_fd)
        os.close(err_fd)
        if cleanup is not None:
            with contextlib.suppress(OSError):
                os.unlink(f"{tdir}/{CLEANUP_FILE}")
    if plan is not None and error is None and not timed_out:
        hook = plan.spec.hook
        error = hook.own_error(rc, err_tail) if hook is not None else None
    out_path, err_path = trial_dir / "stdout", trial_dir / "stderr"
    metrics: dict[str, MetricValue] = {}
    series: dict[str, SeriesSummary] = {}
    if spec.metrics:
        metrics, series = metrics_from_files(spec.metrics, out_path, err_path, series_dir=trial_dir)
    file_metrics: dict[str, MetricValue] = {}
    file_series: dict[str, SeriesSummary] = {}
    if os.path.exists(f"{tdir}/metrics.json"):  # a stat, not a raised FileNotFoundError per trial
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
        timed_out=timed_out,
        started_at=started_at,
        wall_s=wall,
        stdout_path=out_path,
        stderr_path=err_path,
        stdout_tail=out_tail,
        stderr_tail=err_tail,
        metrics=metrics,
        series=series,
        host=_HOST,
        error=error,
        device=device,
    )


def kill_all(grace_s: float | None = None) -> int:
    """Stop every running trial and tool (Ctrl-C); no new trial starts afterwards.

    SIGTERM to every group and escaped descendant, SIGKILL after ``grace_s`` (default: the
    largest ``kill_grace_s`` of the running trials) to what is left; returns as soon as all of it
    is gone, so a Ctrl-C ends sleuth within the grace.  Returns how many were running.
    """
    _cancelled.set()
    with _live_lock:
        lives = list(_live.values())
    if not lives:
        return 0
    grace = grace_s if grace_s is not None else max(lv.grace_s for lv in lives)
    _at_once([(_cleanup_once, lv) for lv in lives if lv.cleanup is not None])  # containers first: at once
    reaper.stop(
        [lv.proc.pid for lv in lives],
        [lv.marker for lv in lives if lv.marker is not None],
        grace,
        owned=_owned,
        reap_allowed=_no_spawn_in_flight,
        # the leaders are reaped by the threads waiting for them; here "exited" is enough
        done=lambda: not any(reaper.alive(lv.proc.pid) for lv in lives),
    )
    return len(lives)


def _kill_at_exit() -> None:
    # sleuth ending for any reason (an exception, a second Ctrl-C) leaves nothing running
    _cancelled.set()
    deadline = time.monotonic() + 2.0
    while _spawning and time.monotonic() < deadline:  # a child spawned, its pid not registered yet
        time.sleep(0.005)
    with _live_lock:
        any_live = bool(_live)
    if any_live:
        kill_all(grace_s=1.0)


atexit.register(_kill_at_exit)


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
    reaper.reap_zombies(_owned, allowed=_no_spawn_in_flight)
    return len(groups)


def _reap_cleanups(run_dir: Path) -> None:
    """Run the cleanups that a killed sleuth left in ``run_dir``'s trial dirs, then forget them."""
    jobs: list[tuple[Path, tuple[str, ...], dict[str, str]]] = []
    for path in run_dir.rglob(CLEANUP_FILE):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            argv = tuple(str(a) for a in rec["argv"])
            env = {**os.environ, **{str(k): str(v) for k, v in dict(rec.get("env") or {}).items()}}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if argv:
            jobs.append((path, argv, env))
    _at_once([(_run_cleanup, a, e) for _, a, e in jobs])
    for path, _, _ in jobs:
        with contextlib.suppress(OSError):
            path.unlink()


def cancel() -> None:
    """No trial starts from now on (until :func:`reset_cancel`); running ones are left alone."""
    _cancelled.set()


def reset_cancel() -> None:
    """Allow trials to start again after :func:`kill_all` (tests, long-lived services)."""
    _cancelled.clear()


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
) -> ToolResult:
    """Run an infrastructure command and capture its output.

    Raises ``InfrastructureError`` when the program does not exist; a non-zero exit is returned.
    """
    exe = argv[0]
    if os.sep not in exe and shutil.which(exe, path=(env or os.environ).get("PATH")) is None:
        raise InfrastructureError(f"command not found: {exe}", hint=f"install {exe} or put it on PATH")
    t0 = time.monotonic()
    try:
        proc, cancelled = _spawn(
            argv,
            None,
            2.0,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env) if env is not None else None,
        )
    except OSError as exc:
        raise InfrastructureError(_spawn_error(argv, str(cwd) if cwd else None, exc)) from exc
    timed_out = False
    try:
        if cancelled:  # Ctrl-C landed while this tool was being spawned
            _stop(proc, None, 2.0)
        try:
            out, err = proc.communicate(input=input_text.encode() if input_text else None, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop(proc, None, 2.0)
            out, err = proc.communicate()
    finally:
        _forget(proc.pid)
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

    ``wait``/``poll`` reap the leader; ``signal`` reaches the whole group (forwarding a Ctrl-C or a
    SIGTERM); ``terminate`` stops the group SIGTERM then SIGKILL; ``kill_group`` SIGKILLs what is left.
    With ``pipes=True``, ``stdin``/``stdout`` are the child's pipes (binary).
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
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

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process of the group (gone processes are ignored)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def terminate(self, grace_s: float = 5.0) -> int:
        """SIGTERM the group, SIGKILL it after ``grace_s``; the leader's return code."""
        _stop(self._proc, None, grace_s)
        self.kill_group()
        return self._proc.returncode

    def kill_group(self) -> None:
        """SIGKILL stragglers (grandchildren) still in the group; forget the child."""
        if reaper.group_alive(self.pid):
            self.signal(signal.SIGKILL)
        _forget(self.pid)
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
) -> ProcessGroup:
    """Start ``argv`` in its own process group and return at once (``sleuth supervise``, MCP servers).

    stdout and stderr go, interleaved, to ``output`` (appended) or, with ``pipes``, stdout to a pipe
    and stderr to ``output`` (or /dev/null); stdin is a pipe with ``pipes``, else /dev/null.  The
    child counts as running for :func:`kill_all` until ``terminate``/``kill_group`` is called.
    Raises ``InfrastructureError`` when it cannot start.
    """
    out = open(output, "ab") if output is not None else None  # noqa: SIM115 - closed below
    try:
        proc, _ = _spawn(
            argv,
            None,
            5.0,
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else (out if out is not None else subprocess.DEVNULL),
            stderr=out if out is not None else subprocess.DEVNULL,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            close_fds=True,
        )
    except OSError as exc:
        raise InfrastructureError(_spawn_error(argv, str(cwd) if cwd else None, exc)) from exc
    finally:
        if out is not None:
            out.close()  # the child holds its own descriptor
    return ProcessGroup(proc)
