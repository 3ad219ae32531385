"""THE one place that spawns processes.

* argv lists only, never a shell;
* every child gets its own session/process group and ``stdin=/dev/null``;
* a timeout or a cancel stops the whole group: SIGTERM, then SIGKILL after ``kill_grace_s``;
  grandchildren do not survive their trial (the group is swept when the leader exits);
* stdout/stderr go straight to files, so memory stays bounded whatever the workload prints;
  only small tails are read back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sleuth.errors import InfrastructureError
from sleuth.model import TrialResult, TrialSpec
from sleuth.scan import fd_tail, metrics_from_files, read_metrics_json

__all__ = [
    "ProcessGroup",
    "ToolResult",
    "kill_all",
    "reap_orphans",
    "reset_cancel",
    "run_tool",
    "run_trial",
    "spawn_group",
]

_HOST = socket.gethostname()
_live: dict[int, subprocess.Popen[bytes]] = {}
_live_lock = threading.Lock()
_cancelled = threading.Event()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stop_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the group, wait up to ``grace_s`` for it to empty, then SIGKILL what is left."""
    pgid = proc.pid
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            return
        time.sleep(0.02)
    _signal_group(pgid, signal.SIGKILL)
    proc.wait()


def _spawn_error(argv: Sequence[str], cwd: str | None, exc: OSError) -> str:
    if cwd is not None and not os.path.isdir(cwd):
        return f"working directory not found: {cwd}"
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {argv[0]}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {argv[0]} (is it executable?)"
    return f"could not start {argv[0]}: {exc.strerror or exc}"


def run_trial(spec: TrialSpec, trial_dir: Path, *, device: str | None = None) -> TrialResult:
    """Run one trial to completion (or timeout) with its output in ``trial_dir``.

    A workload failure is data in the result; only a spawn failure sets ``error``.
    """
    trial_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = trial_dir / "stdout", trial_dir / "stderr"
    env = dict(spec.env)
    env["SLEUTH_TRIAL_DIR"] = os.path.abspath(trial_dir)
    env["SLEUTH_TRIAL_ID"] = trial_dir.name
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device
        env["HIP_VISIBLE_DEVICES"] = device
    started_at = time.time()
    t0 = time.monotonic()
    rc: int | None = None
    sig: int | None = None
    timed_out = False
    error: str | None = None
    with open(out_path, "w+b") as out, open(err_path, "w+b") as err:
        if _cancelled.is_set():
            error = "cancelled before start"
        else:
            try:
                proc = subprocess.Popen(
                    list(spec.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd=spec.cwd,
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                error = _spawn_error(spec.argv, spec.cwd, exc)
            else:
                with _live_lock:
                    _live[proc.pid] = proc
                    # kill_all() sets the flag before it looks at _live: a child spawned while it ran
                    # (Ctrl-C between our check above and this line) is stopped here, not left running
                    cancelled = _cancelled.is_set()
                try:
                    if cancelled:
                        _stop_group(proc, spec.kill_grace_s)
                        error = "cancelled"
                    try:
                        proc.wait(timeout=spec.timeout_s)
                    except subprocess.TimeoutExpired:
                        timed_out = True
                        _stop_group(proc, spec.kill_grace_s)
                    if _group_alive(proc.pid):  # stragglers: grandchildren left behind
                        _signal_group(proc.pid, signal.SIGKILL)
                finally:
                    with _live_lock:
                        _live.pop(proc.pid, None)
                code = proc.returncode
                if code is not None and code < 0:
                    sig = -code
                else:
                    rc = code
        wall = time.monotonic() - t0
        # read the tails back through the open descriptors: no extra opens on the hot path
        out_tail, err_tail = fd_tail(out), fd_tail(err)
    metrics = metrics_from_files(spec.metrics, out_path, err_path) if spec.metrics else {}
    file_metrics, _problem = read_metrics_json(trial_dir / "metrics.json")
    metrics = {**file_metrics, **metrics}
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
        host=_HOST,
        error=error,
        device=device,
    )


def kill_all(grace_s: float = 2.0) -> int:
    """Stop every running trial's process group (Ctrl-C); no new trial starts afterwards.

    Returns how many trials were running.
    """
    _cancelled.set()
    with _live_lock:
        procs = list(_live.values())
    for p in procs:
        _signal_group(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        while time.monotonic() < deadline and (p.poll() is None or _group_alive(p.pid)):
            time.sleep(0.02)
        _signal_group(p.pid, signal.SIGKILL)
    return len(procs)


def reap_orphans(run_dir: Path) -> int:
    """SIGKILL the process groups of trials of ``run_dir`` left running by a sleuth that died (kill -9).

    A trial is recognised by ``SLEUTH_TRIAL_DIR`` inside ``run_dir`` in its environment (the runner
    sets it for every child, and grandchildren inherit it), so no other process is ever touched.
    Call it only while holding the run dir (``RunDir`` locks it).  Linux only (``/proc``); returns
    how many process groups were killed.
    """
    prefixes = tuple(
        f"SLEUTH_TRIAL_DIR={p}{os.sep}".encode() for p in {os.path.abspath(run_dir), str(run_dir.resolve())}
    )
    groups: set[int] = set()
    me = os.getpgid(0)
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read()
            pgid = os.getpgid(pid)
        except OSError:  # gone, or not ours to read
            continue
        if pgid != me and any(v.startswith(prefixes) for v in environ.split(b"\0")):
            groups.add(pgid)
    for pgid in groups:
        _signal_group(pgid, signal.SIGKILL)
    return len(groups)


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
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    except OSError as exc:
        raise InfrastructureError(_spawn_error(argv, str(cwd) if cwd else None, exc)) from exc
    with _live_lock:
        _live[proc.pid] = proc
        cancelled = _cancelled.is_set()
    timed_out = False
    try:
        if cancelled:  # Ctrl-C landed while this tool was being spawned
            _stop_group(proc, 2.0)
        try:
            out, err = proc.communicate(input=input_text.encode() if input_text else None, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop_group(proc, 2.0)
            out, err = proc.communicate()
    finally:
        with _live_lock:
            _live.pop(proc.pid, None)
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
        _signal_group(self.pid, sig)

    def terminate(self, grace_s: float = 5.0) -> int:
        """SIGTERM the group, SIGKILL it after ``grace_s``; the leader's return code."""
        _stop_group(self._proc, grace_s)
        self.kill_group()
        return self._proc.returncode

    def kill_group(self) -> None:
        """SIGKILL stragglers (grandchildren) still in the group; forget the child."""
        if _group_alive(self.pid):
            _signal_group(self.pid, signal.SIGKILL)
        with _live_lock:
            _live.pop(self.pid, None)
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
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else (out if out is not None else subprocess.DEVNULL),
            stderr=out if out is not None else subprocess.DEVNULL,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise InfrastructureError(_spawn_error(argv, str(cwd) if cwd else None, exc)) from exc
    finally:
        if out is not None:
            out.close()  # the child holds its own descriptor
    with _live_lock:
        _live[proc.pid] = proc
    return ProcessGroup(proc)
