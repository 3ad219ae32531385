"""Bounded retries with backoff for the service's database calls (SQLite locked, a dropped connection).

A database error that may pass (``OperationalError``: locked past the busy timeout, a disk I/O
error, a connection dropped) is tried again after a growing wait, at most ``Backoff.tries``
times.  Requests wait with ``asyncio.sleep`` and run each call in the thread pool, so neither
the event loop nor the other clients wait with them; the background worker schedules its next
try on a timer instead of sleeping in its thread.  When the tries are spent the caller is told
in one line (:class:`DatabaseUnavailable`: 503 to a client; an ``error`` record for an analysis).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

__all__ = ["Backoff", "DatabaseUnavailable", "call_with_retry", "is_transient"]

T = TypeVar("T")
log = logging.getLogger("sleuth.serve")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between tries: ``first_s``, then ``factor`` times longer each time, at most ``max_s``."""

    first_s: float = 0.25
    factor: float = 2.0
    max_s: float = 4.0
    tries: int = 6

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure (1-based)."""
        return float(min(self.max_s, self.first_s * self.factor ** max(0, failures - 1)))


class DatabaseUnavailable(Exception):
    """A database call that still failed after every try; ``str()`` is the one-line answer."""


def is_transient(exc: BaseException) -> bool:
    """True for a database error that may pass: locked, busy, a disk I/O error, a dropped connection."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def describe(exc: BaseException) -> str:
    """The driver's own words for a database error (one line, no SQL)."""
    orig = getattr(exc, "orig", None) or exc
    return str(orig).splitlines()[0][:200] if str(orig) else type(orig).__name__


async def call_with_retry(fn: Callable[..., T], *args: Any, backoff: Backoff, what: str) -> T:
    """``fn(*args)`` in the thread pool, tried again after a backoff while it fails transiently;
    :class:`DatabaseUnavailable` naming ``what`` once the tries are spent."""
    for failures in range(1, backoff.tries + 1):
        try:
            return await run_in_threadpool(fn, *args)
        except Exception as exc:
            if not is_transient(exc):
                raise
            if failures == backoff.tries:
                raise DatabaseUnavailable(
                    f"{what}: the database is unavailable ({describe(exc)}) after {failures} tries; "
                    "try again later"
                ) from exc
            log.warning("%s: database error (%s); try %d of %d", what, describe(exc), failures, backoff.tries)
            await asyncio.sleep(backoff.delay(failures))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
