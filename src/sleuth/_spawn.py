"""The private half of :mod:`sleuth.runner`: the one ``Popen`` call and the registry of live children.

Only :mod:`sleuth.runner` and its private parts (:mod:`sleuth._orphans`, :mod:`sleuth._tools`,
:mod:`sleuth._groups`) spawn through this module.  Every child sleuth starts goes through
:func:`spawn` (its own session, registered in ``_live`` until it is reaped and forgotten), so
:func:`kill_all` (Ctrl-C) and the exit hook reach every one of them; :func:`stop` is the
SIGTERM-grace-SIGKILL sequence over a child's group and its escaped descendants (:mod:`sleuth.reaper`).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sleuth import reaper

__all__ = ["WAKE_S", "cancel", "cancelled", "join", "kill_all", "reset_cancel"]

#: the longest a main-thread wait sleeps before looking for a signal (see :func:`join`)
WAKE_S = 0.25


def join(thread: threading.Thread) -> None:
    """``thread.join()`` in slices of :data:`WAKE_S`.  The kernel may hand a process-wide SIGINT to
    any thread that does not block it; Python then only flags it, and the main thread runs the
    handler (Ctrl-C's KeyboardInterrupt) when it next wakes: an endless join slept through it."""
    while thread.is_alive():
        thread.join(WAKE_S)


_CLEANUP_TIMEOUT_S = 60.0
#: a hooked trial's cleanup: (argv, the client's env)
Cleanup = tuple[tuple[str, ...], dict[str, str]]


@dataclass(slots=True)
class Live:
    """A registered child: what :func:`kill_all` needs to stop it."""

    proc: subprocess.Popen[bytes]
    #: ``SLEUTH_TRIAL_DIR=<dir>`` (what marks the trial's descendants), None for a tool
    marker: bytes | None
    grace_s: float
    #: a hooked trial's cleanup, run once (see :mod:`sleuth.runner`)
    cleanup: Cleanup | None = None
    cleaned: bool = False
    #: set by :func:`kill_all` when it has signalled the child: when its SIGKILL is due (``time.monotonic()``)
    stop_by: float | None = None


_live: dict[int, Live] = {}
_live_lock = threading.Lock()
#: spawns whose pid is not registered in ``_live`` yet: no zombie may be reaped meanwhile
_spawning = 0
_cancelled = threading.Event()


def owned(pid: int) -> bool:
    """True while ``pid`` is a registered child (some caller will reap it)."""
    return pid in _live


def no_spawn_in_flight() -> bool:
    """True when no child is between its fork and its registration."""
    return _spawning == 0


def cancelled() -> bool:
    """True after :func:`cancel`/:func:`kill_all` until :func:`reset_cancel`."""
    return _cancelled.is_set()


def spawn(argv: Sequence[str], marker: bytes | None, grace_s: float, cleanup: Cleanup | None = None,
          **kw: Any) -> tuple[subprocess.Popen[bytes], Live, bool]:  # fmt: skip
    """Popen in a new session, registered in ``_live``; returns (proc, its entry, cancelled meanwhile).

    Called from the main thread, another thread spawns while this one waits: the interrupt is raised
    in the main thread, and one landing inside Popen just after the fork lost the child's pid with
    the unfinished Popen (the child ran on after sleuth had exited).  The spawning thread registers
    the child whatever happens meanwhile, so :func:`kill_all` and the exit hook reach it.
    """
    global _spawning
    if threading.current_thread() is not threading.main_thread():  # trials: the backend's workers
        return _spawn(argv, marker, grace_s, cleanup, kw)
    done: list[tuple[subprocess.Popen[bytes], Live, bool] | BaseException] = []

    def spawn_here() -> None:
        global _spawning
        try:
            done.append(_spawn(argv, marker, grace_s, cleanup, kw))
        except BaseException as exc:  # raised in the caller's thread below
            done.append(exc)
        finally:
            with _live_lock:
                _spawning -= 1

    # counted from before the thread starts: an interrupt before it reached Popen must still find a
    # spawn in flight, so the exit hook waits for its child's pid instead of missing it
    with _live_lock:
        _spawning += 1
    helper = threading.Thread(target=spawn_here, name="sleuth-spawn")
    try:
        helper.start()
    except RuntimeError as exc:  # "can't start new thread": the process limit counts threads
        with _live_lock:
            _spawning -= 1
        raise OSError(errno.EAGAIN, f"the process limit is reached: could not start {argv[0]}") from exc
    join(helper)
    if isinstance(done[0], BaseException):
        raise done[0]
    return done[0]


def _spawn(argv: Sequence[str], marker: bytes | None, grace_s: float, cleanup: Cleanup | None,
           kw: dict[str, Any]) -> tuple[subprocess.Popen[bytes], Live, bool]:  # fmt: skip
    global _spawning
    reaper.enable()
    with _live_lock:
        _spawning += 1
    try:
        proc = subprocess.Popen(list(argv), start_new_session=True, **kw)
    except BaseException:
        with _live_lock:
            _spawning -= 1
        raise
    live = Live(proc, marker, grace_s, cleanup)
    with _live_lock:
        _spawning -= 1
        _live[proc.pid] = live
        # kill_all() sets the flag before it looks at _live: a child spawned while it ran
        # (Ctrl-C between the caller's check and this line) is stopped by the caller, not left running
        was_cancelled = _cancelled.is_set()
    return proc, live, was_cancelled


_found: dict[tuple[str, str], str] = {}
_devnull: int | None = None


def stdin() -> int:
    """One ``/dev/null`` descriptor for every trial's stdin (Popen would open one per trial)."""
    global _devnull
    if _devnull is None:
        _devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _devnull


def executable(name: str, env: Mapping[str, str]) -> str | None:
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


def forget_executable(name: str, env: Mapping[str, str]) -> None:
    """Drop a remembered lookup (the program moved since)."""
    _found.pop((name, env.get("PATH", os.defpath)), None)


def forget(pid: int) -> None:
    """The child is reaped: :func:`kill_all` no longer reaches it."""
    with _live_lock:
        _live.pop(pid, None)


def stop(
    proc: subprocess.Popen[bytes], marker: bytes | None, grace_s: float, live: Live | None = None
) -> None:
    """Stop the child's group and its escapees: SIGTERM, up to ``grace_s``, SIGKILL; returns as soon
    as all of it is gone (zombies are reaped, not waited on).  A child :func:`kill_all` is stopping
    (``live``) is not signalled again: what is left of it has until kill_all's SIGKILL to end (a
    trial whose leader exited on the SIGTERM while the saver its trap started runs on)."""
    term, grace = True, grace_s
    if live is not None and live.stop_by is not None:
        term, grace = False, max(0.0, live.stop_by - time.monotonic())
    reaper.stop(
        (proc.pid,),
        (marker,) if marker is not None else (),
        grace,
        owned=owned,
        reap_allowed=no_spawn_in_flight,
        done=lambda: proc.poll() is not None,
        term=term,
    )
    proc.wait()


def run_cleanup(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Run a cleanup command to its end (bounded); it runs even after a cancel, unlike a tool."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=dict(env), timeout=_CLEANUP_TIMEOUT_S,
                       start_new_session=True, check=False)  # fmt: skip


def cleanup_once(live: Live | None) -> None:
    """The live trial's cleanup, unless it ran already (kill_all and the trial's owner both get here)."""
    if live is None or live.cleanup is None:
        return
    with _live_lock:
        if live.cleaned:
            return
        live.cleaned = True
    run_cleanup(*live.cleanup)


def at_once(calls: Sequence[tuple[Any, ...]]) -> None:
    """``f(*args)`` for each ``(f, *args)``, each in its own thread; returns when all have ended."""
    threads = [threading.Thread(target=c[0], args=c[1:], daemon=True) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(_CLEANUP_TIMEOUT_S)


def _missing_interpreter(program: str, cwd: str | None, path: str | None) -> str | None:
    """Why ``program``, which exists, gave ENOENT: the interpreter its ``#!`` line names is missing."""
    found = os.path.join(cwd or "", program) if os.sep in program else shutil.which(program, path=path)
    try:
        with open(found or "", "rb") as fh:
            head = fh.readline(512)
    except OSError:  # not there after all (or not readable): "command not found" stands
        return None
    words = head[2:].lstrip(b" \t").split(b" ", 1) if head.startswith(b"#!") else []
    interp = words[0].rstrip(b"\n") if words else b""
    if not interp:
        return None
    if interp.endswith(b"\r"):  # saved with Windows line endings: the kernel looks for "/bin/sh\r"
        return f"{program}: its #! line ends with a carriage return (CRLF line endings); save it with LF"
    return f"{program}: its interpreter {os.fsdecode(interp)} (the #! line) was not found"


def spawn_error(argv: Sequence[str], cwd: str | None, exc: OSError, path: str | None = None) -> str:
    """One line saying why ``argv`` could not start (``path``: the PATH it was looked up on)."""
    if cwd is not None and not os.path.isdir(cwd):
        return f"working directory not found: {cwd}"
    if isinstance(exc, FileNotFoundError):
        return _missing_interpreter(argv[0], cwd, path) or f"command not found: {argv[0]}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {argv[0]} (is it executable?)"
    return f"could not start {argv[0]}: {exc.strerror or exc}"


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
    at_once([(cleanup_once, lv) for lv in lives if lv.cleanup is not None])  # containers first: at once
    now = time.monotonic()
    # their owners, seeing them exit, leave what is left to this stop (Live.stop_by); a second stop
    # (sleuth's exit after a second Ctrl-C cut the first one's wait) keeps the first's deadline for
    # what the first was stopping: the grace is not given again (a shorter ``grace_s`` shortens it)
    by = [lv.stop_by if lv.stop_by is not None and lv.stop_by < now + grace else now + grace for lv in lives]
    for lv, stop_by in zip(lives, by, strict=True):
        lv.stop_by = stop_by
    left = max(0.0, max(by) - now)
    reaper.stop(
        [lv.proc.pid for lv in lives],
        [lv.marker for lv in lives if lv.marker is not None],
        left,
        owned=owned,
        reap_allowed=no_spawn_in_flight,
        # the leaders are reaped by their owners (a waiting thread, the trial loop); "exited" is enough
        done=lambda: not any(reaper.alive(lv.proc.pid) for lv in lives),
    )
    return len(lives)


def _kill_at_exit() -> None:
    # sleuth ending for any reason (an exception, a second Ctrl-C) leaves nothing running; each child
    # has the verb's kill grace, as on Ctrl-C (a fixed second cut a checkpoint's save short)
    _cancelled.set()
    deadline = time.monotonic() + 2.0
    while _spawning and time.monotonic() < deadline:  # a child spawned, its pid not registered yet
        time.sleep(0.005)
    with _live_lock:
        any_live = bool(_live)
    if any_live:
        kill_all()


atexit.register(_kill_at_exit)


def cancel() -> None:
    """No trial starts from now on (until :func:`reset_cancel`); running ones are left alone."""
    _cancelled.set()


def reset_cancel() -> None:
    """Allow trials to start again after :func:`kill_all` (tests, long-lived services)."""
    _cancelled.clear()
