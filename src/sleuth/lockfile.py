"""An exclusive lock that dies with its process: :func:`lock_file` (a run dir's, a service's database).

* ``flock`` on a file of its own (created if need be), taken without waiting: a second holder gets a
  one-line ``UsageError`` naming what is busy and what to do, never a wait;
* held for as long as the returned file is open; the kernel drops it when the process dies, so a
  kill -9 never leaves anything locked and there is no stale lock file to clean.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO

from sleuth.errors import UsageError

__all__ = ["lock_file"]


def lock_file(path: Path, what: str, busy: str, hint: str) -> IO[str]:
    """An exclusive lock on ``path`` (created if need be) for as long as the returned file is open;
    it dies with the process, so a kill -9 leaves nothing locked.  When another process holds it:
    ``UsageError("{what}: {busy}", hint)``; when it cannot be opened, one naming ``what`` too."""
    try:
        fh = open(path, "a")  # noqa: SIM115 - the caller keeps it open while it holds the lock
    except OSError as exc:
        raise UsageError(f"{what}: cannot lock {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise UsageError(f"{what}: {busy}", hint=hint) from None
    return fh
