"""The backend of a :class:`sleuth.bisect.trials.TestPool`, counting the trials that finished and
were not collected yet (``TestEvent.more``: another test had finished when one was collected).

A simulated backend (one with ``advance()``, :class:`sleuth.bisect.sim.SimBackend`) finishes trials
only when asked: before the pool blocks for a result, :meth:`CountedBackend.ensure_finished` lets
virtual time run to the next finish.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sleuth.backends import Backend
    from sleuth.model import TrialSpec

__all__ = ["CountedBackend"]


class CountedBackend:
    """``inner``, counting trials that finished and were not collected yet (see the module)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._done = 0
        self._taken = 0

    @property
    def finished(self) -> int:
        """Finished and not collected."""
        with self._lock:
            return self._done - self._taken

    def _one_done(self, _fut: Future[Any]) -> None:
        with self._lock:
            self._done += 1

    def slots(self) -> int:
        """The backend's slots."""
        return self.inner.slots()

    def submit(self, spec: TrialSpec, trial_dir: Path, *,
               prepare: Callable[[Path], TrialSpec] | None = None) -> Future[Any]:  # fmt: skip
        """Submit to the backend and count the trial when it finishes."""
        fut = self.inner.submit(spec, trial_dir, prepare=prepare)
        fut.add_done_callback(self._one_done)
        return fut

    def ensure_finished(self) -> None:
        """A simulated backend: run virtual time to the next finish if nothing is finished."""
        advance = getattr(self.inner, "advance", None)
        if advance is not None and self.finished == 0:
            advance()

    def collected(self) -> None:
        """The engine handed one finished trial over."""
        with self._lock:
            self._taken += 1

    def reset(self) -> None:
        """After a cancel: nothing is pending."""
        with self._lock:
            self._taken = self._done

    def cancel_all(self) -> None:
        """Cancel in the backend."""
        self.inner.cancel_all()

    def close(self) -> None:
        """Close the backend."""
        self.inner.close()
