"""Backends dispatch trials: ``local`` (embedded default), ``slurm``, ``ray``, or a plugin's.

A verb's ``--backend NAME`` / ``--backend-opt KEY=VALUE`` pick one by name
(:mod:`sleuth.backends.choice`: the entry-point group ``sleuth.backends``; docs/backends.md).

The contract (DESIGN §3): ``slots()`` says how many trials may run at once, ``submit(spec,
trial_dir)`` returns a future of the ``TrialResult``, ``cancel_all()`` stops everything running,
``close()`` releases the workers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol

from sleuth.errors import UsageError
from sleuth.model import TrialResult, TrialSpec

__all__ = ["Backend", "closed_on_error", "prepare_remote"]


class Backend(Protocol):
    """How trials are dispatched."""

    def slots(self) -> int:
        """How many trials may run at once."""
        ...

    def submit(
        self, spec: TrialSpec, trial_dir: Path, *, prepare: Callable[[Path], TrialSpec] | None = None
    ) -> Future[TrialResult]:
        """Start (or queue) one trial; its result arrives through the future.

        ``prepare(trial_dir)``, when given, runs in the worker before the trial (a checkout, a
        build) and returns the spec to run instead of ``spec``; what it raises, the future raises.
        """
        ...

    def cancel_all(self) -> None:
        """Stop every running trial and drop the queued ones."""
        ...

    def close(self) -> None:
        """Release the workers (waits for nothing)."""
        ...


def prepare_remote(
    spec: TrialSpec, trial_dir: Path, prepare: Callable[[Path], TrialSpec] | None, backend: str
) -> TrialSpec:
    """A cluster backend's trial spec: ``prepare`` run here (on the sleuth host), and a trial that
    runs ``srun`` itself (the pyxis environment) refused: it cannot run on a node of ``backend``."""
    if prepare is not None:
        spec = prepare(trial_dir)
    if spec.argv and os.path.basename(spec.argv[0]) == "srun":
        raise UsageError(
            f"this trial runs srun itself (the pyxis environment): "
            f"it cannot run inside the {backend} backend",
            hint="use --backend local with pyxis",
        )
    return spec


@contextlib.contextmanager
def closed_on_error(backend: Backend) -> Iterator[Backend]:
    """Close ``backend`` if what runs before its trials fails (a run dir not claimed, an environment
    not built); once the trials run, the engine closes it."""
    try:
        yield backend
    except BaseException:
        backend.close()
        raise
