"""The reader of sleuth's output goes away: the terminal hung up, or a pipe's reader closed.

A terminal that goes away (SIGHUP: the window or the ssh session closed) makes every later write to
it fail with EIO, which read as a disk error, and a verb stopping its trials must not fail on a
progress line.  :func:`remember` notes which of stdout and stderr are a terminal when sleuth starts
(once hung up, ``isatty`` itself fails); :func:`detach` points those at /dev/null, from a signal
handler, before the interrupt unwinds.

A pipe's reader that goes away (``sleuth reduce ... | head -2``, a CI log reader cancelled) is an
interrupt too, the same in every verb: :func:`reader_gone` points the pipes nobody reads at
/dev/null and stops sleuth as a Ctrl-C does (the handler the verb installed for SIGINT, else for
SIGTERM), so the verb's own interrupt path runs: children stopped, journal ended, the summary
written as for an interrupt, exit 130.  It is reached from :func:`watch` (a thread that wakes when
a reader closes, so a verb that prints nothing for an hour, or ``--json`` that prints only at the
end, stops at once), from :func:`guard`'s sys.stdout and sys.stderr (a write that fails with EPIPE)
and from rich's ``on_broken_pipe`` (whose default exits 1 on the spot, leaving the run dir open).
It stops only while the verb runs (:func:`arm` .. :func:`done`): a reader gone before it started
stops it as it starts (nothing runs), one gone after it returned changes nothing (its code stands).
"""

from __future__ import annotations

import io
import os
import select
import signal
import stat
import threading
from typing import Any

__all__ = ["arm", "detach", "done", "guard", "reader_gone", "remember", "stopped_it", "watch"]

_ttys: tuple[int, ...] = ()
_lock = threading.Lock()
#: a reader went away before the verb was armed (it stops as soon as it is)
_pending = False
#: a reader that goes away stops the verb (once: a second "Ctrl-C" would cut the stopping short);
#: not before :func:`arm` (the verb's handlers are not in place) nor after :func:`done`
_armed = False
#: the verb was stopped because a reader went away (the CLI says so beside ``interrupted``)
_stopped_it = False


def remember() -> None:
    """Note which of stdout and stderr are a terminal now."""
    global _ttys
    _ttys = tuple(fd for fd in (1, 2) if os.isatty(fd))


def detach() -> None:
    """What would be printed on the terminal goes to /dev/null from now on."""
    _to_null(_ttys)


def _to_null(fds: tuple[int, ...]) -> None:
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(null, fd)
    finally:
        os.close(null)


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _unread(fd: int) -> bool:
    """``fd`` is a pipe (or socket) whose reader is gone (poll reports POLLERR or POLLHUP)."""
    if not _is_pipe(fd):
        return False
    poller = select.poll()
    poller.register(fd, 0)
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))


def reader_gone(fd: int | None = None) -> None:
    """A write to ``fd`` failed with EPIPE (or the watch saw its reader close): stdout and stderr
    where nobody reads them (``fd`` always) go to /dev/null, and sleuth stops as a Ctrl-C does
    (at once when armed, else when :func:`arm` is called)."""
    global _pending
    _to_null(tuple(f for f in (1, 2) if f == fd or _unread(f)))
    with _lock:
        _pending = True
        if not _armed:
            return
    _stop()


def _stop() -> None:
    """Once: the verb's own handler of SIGINT (else SIGTERM), called here in the main thread (a held
    signal gate only notes it) or sent to the main thread from another one, so that a blocking wait
    there returns for it.  With neither handled by Python (ignored), nothing is stopped: the verb
    goes on, printing nowhere."""
    global _armed, _stopped_it
    with _lock:
        if not _armed:
            return
        _armed, _stopped_it = False, True
    main = threading.main_thread()
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if callable(handler):
            if threading.current_thread() is main:
                handler(sig, None)
            elif main.ident is not None:
                signal.pthread_kill(main.ident, sig)
            return


def arm() -> None:
    """The verb starts (the CLI catches an interrupt from here on): a reader that went away stops it
    now, one that goes away later then."""
    global _armed, _stopped_it
    with _lock:
        _armed, _stopped_it = True, False
        gone = _pending
    if gone:
        _stop()


def stopped_it() -> bool:
    """The verb now ending was stopped because a reader of its output went away."""
    return _stopped_it


def done() -> None:
    """The verb has returned: a reader that goes away now stops nothing (its code is chosen)."""
    global _armed, _pending
    with _lock:
        _armed = _pending = False


def watch() -> None:
    """Watch stdout and stderr where they are pipes: when a reader closes, :func:`reader_gone`."""
    fds = [fd for fd in (1, 2) if _is_pipe(fd)]
    if fds:
        threading.Thread(target=_watch, args=(fds,), name="sleuth-reader", daemon=True).start()


def _watch(fds: list[int]) -> None:
    poller = select.poll()
    for fd in fds:
        poller.register(fd, 0)  # no events asked: poll wakes only for POLLERR, POLLHUP, POLLNVAL
    left = set(fds)
    while left:
        for fd, _ev in poller.poll():
            poller.unregister(fd)
            left.discard(fd)
            if _unread(fd):
                reader_gone(fd)


class _Guarded(io.FileIO):
    """stdout's or stderr's file: a write that fails with EPIPE is :func:`reader_gone`."""

    def write(self, data: Any, /) -> int:  # any buffer, as FileIO.write takes
        try:
            return super().write(data)
        except BrokenPipeError:
            reader_gone(self.fileno())
            return memoryview(data).nbytes


def guard() -> None:
    """Make sys.stdout and sys.stderr take a write that fails with EPIPE as :func:`reader_gone`
    (every print of every verb: click.echo, rich, a JSON document), not as an error that unwinds the
    verb past its summary and leaves "Exception ignored ... BrokenPipeError" at exit.  Each keeps its
    buffering (``python -u``: none)."""
    import sys

    for name, fd in (("stdout", 1), ("stderr", 2)):
        old = getattr(sys, name)
        if not isinstance(old, io.TextIOWrapper):
            continue
        try:
            old.flush()
        except BrokenPipeError:
            _to_null((fd,))
        raw = _Guarded(fd, "w", closefd=False)
        buffered = isinstance(old.buffer, io.BufferedWriter)
        new = io.TextIOWrapper(
            io.BufferedWriter(raw) if buffered else raw,
            encoding=old.encoding,
            errors=old.errors,
            line_buffering=old.line_buffering,
            write_through=old.write_through,
        )
        setattr(sys, name, new)
