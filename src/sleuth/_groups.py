"""A private part of :mod:`sleuth.runner`: long-lived children in their own group, :func:`spawn_group`.

For what runs beside sleuth rather than as a trial (``sleuth supervise``'s workload, MCP servers):
:func:`spawn_group` returns at once with a :class:`ProcessGroup`.

* the child is spawned through :mod:`sleuth._spawn` (its own session and group), so it counts as
  running for :func:`sleuth._spawn.kill_all` until ``terminate``/``kill_group`` forgets it;
* a signal sent through the group reaches every process of it; stopping it is SIGTERM, the grace,
  SIGKILL, and stragglers left in the group are SIGKILLed;
* with a ``trial_dir``, the descendants that left the group (``setsid``, daemons) carry its
  ``SLEUTH_TRIAL_DIR`` marker and are stopped with it, as a trial's are (:mod:`sleuth.reaper`);
* its output goes to a file (appended) or /dev/null; with ``pipes``, its stdin and stdout are
  pipes that the caller writes and reads.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sleuth import _spawn, reaper
from sleuth.errors import InfrastructureError

__all__ = ["ProcessGroup", "spawn_group"]


def _poll_until_none(left_alive: Callable[[], bool], timeout: float) -> bool:
    """Poll ``left_alive`` (reaping the orphans sleuth adopted between polls, 1 ms doubling to 50 ms)
    until it is False or ``timeout`` seconds passed; True when nothing is left."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while left_alive():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        reaper.reap_zombies(_spawn.owned, allowed=_spawn.no_spawn_in_flight)
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.05)
    return True


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
        return _poll_until_none(lambda: self._proc.poll() is None or reaper.group_alive(self.pid), timeout)

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
        return _poll_until_none(
            lambda: reaper.group_alive(self.pid) or bool(reaper.escapees(markers, _spawn.owned)), timeout
        )

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
