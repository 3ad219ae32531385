"""A terminal that goes away (SIGHUP: the window or the ssh session closed).

Every later write to it fails with EIO, which read as a disk error, and a verb stopping its trials
must not fail on a progress line.  :func:`remember` notes which of stdout and stderr are a terminal
when sleuth starts (once hung up, ``isatty`` itself fails); :func:`detach` points those at
/dev/null, from a signal handler, before the interrupt unwinds.
"""

from __future__ import annotations

import os

__all__ = ["detach", "remember"]

_ttys: tuple[int, ...] = ()


def remember() -> None:
    """Note which of stdout and stderr are a terminal now."""
    global _ttys
    _ttys = tuple(fd for fd in (1, 2) if os.isatty(fd))


def detach() -> None:
    """What would be printed on the terminal goes to /dev/null from now on."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in _ttys:
            os.dup2(null, fd)
    finally:
        os.close(null)
