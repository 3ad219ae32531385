"""Finding and stopping what a trial leaves behind: sleuth as the child subreaper (Linux).

A trial runs in its own session, and a timeout or a cancel stops that process group.  Descendants
that leave the group (``setsid``, a double fork, a daemon) used to escape to init.  With
``PR_SET_CHILD_SUBREAPER`` every orphan of a trial's tree is re-parented to this process instead
(to its main thread's child list), so, after a trial's leader has exited, each descendant still
alive is either our direct child or below one.  A trial's own are recognised by the
``SLEUTH_TRIAL_DIR=<its dir>`` entry the runner puts in its environment (grandchildren inherit it),
and the subtrees below them are taken whole.  Nothing else is ever signalled: a child of ours
without that marker is left alone, and zombies are reaped only when they are adopted orphans
(another session than ours, not a child the runner is waiting for, no spawn in flight).

Without ``/proc`` (not Linux) every function here finds nothing and the runner falls back to
stopping the process group only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable

__all__ = ["alive", "enable", "escapees", "group_alive", "reap_zombies", "stop", "subtree"]

_PR_SET_CHILD_SUBREAPER = 36
_enabled: bool | None = None
_enable_lock = threading.Lock()
_children_fd: int | None = None
_children_pid = -1


def enable() -> bool:
    """Make this process the child subreaper (once); True when it is (Linux only)."""
    global _enabled
    if _enabled is not None:
        return _enabled
    with _enable_lock:
        if _enabled is None:
            _enabled = _prctl_subreaper()
    return _enabled


def _prctl_subreaper() -> bool:
    if not os.path.isdir("/proc/self/task"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _read(path: str, limit: int = 1 << 20) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.read(fd, limit)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _forked() -> None:
    global _children_fd, _children_pid
    if _children_fd is not None:  # it lists the parent's children
        with contextlib.suppress(OSError):
            os.close(_children_fd)
    _children_fd, _children_pid = None, -1


os.register_at_fork(after_in_child=_forked)


def adopted() -> list[int]:
    """Our main thread's children: orphans re-parented to us land there (one read, no scan)."""
    global _children_fd, _children_pid
    if _children_pid == -1:  # first call, or a fork since
        pid = os.getpid()
        with contextlib.suppress(OSError):
            _children_fd = os.open(f"/proc/{pid}/task/{pid}/children", os.O_RDONLY | os.O_CLOEXEC)
        _children_pid = pid
    if _children_fd is None:
        return []
    try:
        data = os.pread(_children_fd, 1 << 20, 0)  # seq_file: a read at offset 0 lists afresh
    except OSError:
        return []
    return [int(p) for p in data.split()]


def stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, process group, session) of ``pid``, or None when it is gone."""
    data = _read(f"/proc/{pid}/stat", 4096)
    if not data:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3])
    except (IndexError, ValueError):
        return None


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie is dead)."""
    st = stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _children_of(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        out.extend(int(p) for p in _read(f"/proc/{pid}/task/{tid}/children").split())
    return out


def subtree(pids: Iterable[int]) -> list[int]:
    """``pids`` and all their descendants (breadth first)."""
    seen: dict[int, None] = {}
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen[pid] = None
        todo.extend(_children_of(pid))
    return list(seen)


def _has_marker(pid: int, markers: Collection[bytes]) -> bool:
    environ = _read(f"/proc/{pid}/environ", 1 << 24)
    return bool(environ) and any(entry in markers for entry in environ.split(b"\0"))


def escapees(
    markers: Collection[bytes], owned: Callable[[int], bool], children: list[int] | None = None
) -> list[int]:
    """Live processes of the trials marked ``markers`` that left their trial: our adopted children
    carrying one of the markers (and not ``owned`` by a waiting Popen), with their subtrees.
    ``children``: :func:`adopted`, when the caller has just read it."""
    if not markers:
        return []
    kids = adopted() if children is None else children
    roots = [pid for pid in kids if not owned(pid) and _has_marker(pid, markers)]
    return [pid for pid in subtree(roots) if alive(pid)] if roots else []


def reap_zombies(
    owned: Callable[[int], bool],
    *,
    allowed: Callable[[], bool] = lambda: True,
    children: list[int] | None = None,
) -> int:
    """``waitpid`` the adopted orphans that have exited; returns how many.

    Only zombies in another session than ours (every trial runs in its own) and not ``owned``
    (a child some Popen will wait for) are taken, and only while ``allowed()`` (no spawn in flight
    whose pid is not yet registered).
    """
    n = 0
    me = os.getsid(0)
    for pid in adopted() if children is None else children:
        if owned(pid):
            continue
        st = stat(pid)
        if st is None or st[0] != "Z" or st[3] == me or not allowed():
            continue
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                n += 1
    return n


def group_alive(pgid: int) -> bool:
    """True while the process group has a member that is not a zombie."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return True
    for pid in pids:
        st = stat(pid)
        if st is not None and st[2] == pgid and st[0] not in ("Z", "X"):
            return True
    return False


#: processes we signalled as escapees; reaped when they are our zombies (now, or once re-parented)
_doomed: set[int] = set()
_doomed_lock = threading.Lock()
_sweeper: threading.Thread | None = None


def _doom(pids: Iterable[int], owned: Callable[[int], bool], allowed: Callable[[], bool]) -> None:
    """Remember ``pids`` until they are reaped; a daemon thread finishes what a stop could not
    (a SIGKILLed process that took long to die, a child re-parented to us later)."""
    global _sweeper
    with _doomed_lock:
        _doomed.update(pids)
        if _sweeper is None and _doomed:
            _sweeper = threading.Thread(
                target=_sweep_forever, args=(owned, allowed), name="sleuth-reaper", daemon=True
            )
            _sweeper.start()


def _sweep_doomed(owned: Callable[[int], bool], allowed: Callable[[], bool]) -> None:
    me = os.getpid()
    with _doomed_lock:
        pids = list(_doomed)
    for pid in pids:
        st = stat(pid)
        if st is None:
            with _doomed_lock:
                _doomed.discard(pid)
            continue
        if st[0] != "Z" or st[1] != me or owned(pid) or not allowed():
            continue  # alive, or not ours (yet): its parent dies too and we adopt it
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _sweep_forever(owned: Callable[[int], bool], allowed: Callable[[], bool]) -> None:
    while True:
        time.sleep(0.2)
        if _doomed:
            _sweep_doomed(owned, allowed)


def _outside(pids: Iterable[int], groups: Collection[int]) -> list[int]:
    """The ``pids`` that are not in one of the process ``groups`` (those are signalled as a group)."""
    out = []
    for pid in pids:
        st = stat(pid)
        if st is not None and st[2] not in groups:
            out.append(pid)
    return out


def _signal(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop(
    groups: Collection[int],
    markers: Collection[bytes],
    grace_s: float,
    *,
    owned: Callable[[int], bool],
    reap_allowed: Callable[[], bool] = lambda: True,
    done: Callable[[], bool] = lambda: True,
    term: bool = True,
) -> None:
    """SIGTERM the process ``groups`` and the escapees of ``markers``, wait up to ``grace_s`` for
    them to be gone (zombies reaped, not waited on), then SIGKILL what is left.

    Returns as soon as everything is gone and ``done()`` (e.g. "the leaders are reaped") holds.
    A process of one of ``groups`` is signalled with its group, never on its own: one forked
    there after the SIGTERM is the workload's own shutdown (a trap's saver), and has the grace to
    end.  ``term=False``: they have had their signal (a stop under way in another thread); only
    the wait, then the SIGKILL.
    """
    # each check is made before the scan for escapees: what exited before it has its orphans
    # re-parented to us by then, so the scan sees them
    finished = done()
    live_groups = [g for g in groups if group_alive(g)]
    children = adopted()
    found = escapees(markers, owned, children)
    if not found and not live_groups and finished:  # the common case: one read of /proc, no more
        if any(not owned(p) for p in children):
            reap_zombies(owned, allowed=reap_allowed, children=children)
        return
    if term:
        for g in live_groups:
            _signal_group(g, signal.SIGTERM)
        _signal(_outside(found, groups), signal.SIGTERM)
    _doom(found, owned, reap_allowed)
    deadline = time.monotonic() + grace_s
    delay = 0.001
    while True:
        reap_zombies(owned, allowed=reap_allowed)
        finished = done()
        live_groups = [g for g in live_groups if group_alive(g)]
        found = [p for p in found if alive(p)]
        fresh = [p for p in escapees(markers, owned) if p not in found]
        if term:
            _signal(_outside(fresh, groups), signal.SIGTERM)
        _doom(fresh, owned, reap_allowed)
        found += fresh
        if not live_groups and not found and finished:
            reap_zombies(owned, allowed=reap_allowed)
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
    for g in live_groups:
        _signal_group(g, signal.SIGKILL)
    # a SIGKILLed parent's children are orphaned after it dies: sweep until nothing is left
    until = time.monotonic() + 1.0
    while True:
        live_groups = [g for g in live_groups if group_alive(g)]
        for g in live_groups:
            _signal_group(g, signal.SIGKILL)
        found = escapees(markers, owned)
        _signal(found, signal.SIGKILL)
        _doom(found, owned, reap_allowed)
        reap_zombies(owned, allowed=reap_allowed)
        _sweep_doomed(owned, reap_allowed)
        if (not found and not live_groups) or time.monotonic() >= until:
            return
        time.sleep(0.005)
