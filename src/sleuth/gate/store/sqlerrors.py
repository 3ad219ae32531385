"""A SQL store's failures as one line each, and whose they are: the user's ``--db`` (exit 2) or the
machine's (exit 4).

A SQLite file that a path keeps from opening (a name too long, a folder on the way that is a file, a
location that cannot be written: :mod:`sleuth.gate.store.paths`) or a file that is no database is
the user's input.  Anything else is the machine's, and passes: a database locked past SQLite's busy
timeout, a full disk, a server gone or refusing, no file handles left.
"""

from __future__ import annotations

from sleuth.errors import InfrastructureError, SleuthError, UsageError
from sleuth.gate.model import clean_cut
from sleuth.gate.store.base import StoreURL

__all__ = ["failure", "one_line", "quiet_driver"]

#: SQLite's primary result code for a file that is not a database
_SQLITE_NOTADB = 26


def failure(exc: Exception, url: StoreURL, *, write: bool) -> SleuthError:
    """The error to raise for the database error ``exc`` on ``url`` (``write``: while writing)."""
    if url.kind == "sqlite":
        from sleuth.gate.store.paths import path_problem

        orig = getattr(exc, "orig", None)
        code = getattr(orig, "sqlite_errorcode", None)
        if (code is not None and code & 0xFF == _SQLITE_NOTADB) or "file is not a database" in str(orig):
            return UsageError(
                f"--db {url.display}: {url.path} is not a SQLite database",
                hint="give the history file 'sleuth gate record' made, or a new path",
            )
        problem = path_problem(url, write=write)
        if problem is not None:
            return UsageError(f"--db {url.display}: {problem[0]}", hint=problem[1])
    return InfrastructureError(f"--db {url.display}: {one_line(exc)}")


def one_line(exc: Exception) -> str:
    """A database error on one line, without SQLAlchemy's background link."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    first = " ".join(text.split("\n", maxsplit=1)[0].split())
    return clean_cut(first, 300)  # hidden, then cut: cut first, a secret's start stayed


def quiet_driver() -> None:
    """psycopg logs a warning of its own when a failed statement ends its pipeline ("error ignored
    terminating <psycopg.Pipeline ... host=... database=...>"); with no logging set up, Python printed
    it on stderr beside the one error line that says what failed."""
    import logging

    log = logging.getLogger("psycopg")
    if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
        log.addHandler(logging.NullHandler())
