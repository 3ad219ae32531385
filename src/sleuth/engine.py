"""The trial engine: a backend runs trials, an oracle judges them, the run dir keeps them.

Every room (run, bisect, matrix, ...) submits ``TrialSpec`` s under an id and consumes judged
``Trial`` s as they finish, in completion order, never in rounds.  Each finished trial is on disk
(``<subdir>/<id>/{stdout,stderr,result.json}``) and journaled as a ``trial`` event before it is
yielded, so a crash after that point never loses it.

A trial may be *prepared* first (a checkout, a build, a venv): ``submit(..., prepare=f)`` runs
``f(trial_dir)`` in the backend's worker, so preparations run in parallel, and runs the spec it
returns.  ``f`` raising :class:`Untestable` makes the trial a SKIP, an
:class:`~sleuth.errors.InfrastructureError` an ERROR, with the exception's text as the reason; such
a trial never ran, has no output files, and is written and journaled like any other.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

from sleuth.backends import Backend
from sleuth.errors import InfrastructureError
from sleuth.journal import RunDir
from sleuth.model import Outcome, Trial, TrialResult, TrialSpec
from sleuth.oracle import Oracle

__all__ = ["Engine", "Prepare", "Untestable"]

#: makes a trial ready in the worker thread: ``prepare(trial_dir)`` returns the spec to run
Prepare = Callable[[Path], TrialSpec]


class Untestable(Exception):
    """Raised by a ``prepare`` function: this trial cannot be tested (a failed build); SKIP it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Engine:
    """Submit trials; iterate over judged trials as they complete."""

    def __init__(
        self,
        backend: Backend,
        oracle: Oracle,
        run_dir: RunDir,
        *,
        scrub: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.backend = backend
        self.oracle = oracle
        self.run_dir = run_dir
        #: applied to each trial record before it is written (``Secrets.scrub``: argv may hold a token)
        self._scrub = scrub
        #: future -> (submission number, trial id, subdir, journal extras, spec, trial dir)
        self._pending: dict[Future[TrialResult], tuple[int, str, str, dict[str, Any], TrialSpec, Path]] = {}
        self._submitted = 0
        #: finished futures not yet yielded, in submission order
        self._done: deque[Future[TrialResult]] = deque()

    @property
    def pending(self) -> int:
        """Trials submitted and not yet yielded."""
        return len(self._pending)

    def submit(self, spec: TrialSpec, trial_id: str, subdir: str = "trials", *,
               prepare: Prepare | None = None, **extra: Any) -> None:  # fmt: skip
        """Queue one trial; ``extra`` is copied into its journal event (e.g. ``cell=...``).

        With ``prepare``, the worker runs ``prepare(trial_dir)`` first and then the spec it returns
        (``spec`` only describes a trial that never ran); see the module docstring.
        """
        trial_dir = self.run_dir.path / subdir / trial_id  # the runner creates it
        fut = self.backend.submit(spec, trial_dir, prepare=prepare)
        self._pending[fut] = (self._submitted, trial_id, subdir, extra, spec, trial_dir)
        self._submitted += 1

    def judge(self, result: TrialResult) -> Trial:
        """Apply the oracle."""
        j = self.oracle.judge(result)
        return Trial(result=result, outcome=j.outcome, signature=j.signature, reason=j.reason)

    def next_completed(self) -> Trial:
        """The next judged trial to finish (written and journaled); blocks.  Needs :attr:`pending`."""
        trial = self._next()
        if trial is None:
            raise LookupError("no trial is pending")
        return trial

    def completed(self) -> Iterator[Trial]:
        """Yield judged trials in completion order until none is pending."""
        while (trial := self._next()) is not None:
            yield trial

    def _next(self) -> Trial | None:
        while self._pending:
            if not self._done:
                done, _ = wait(list(self._pending), return_when=FIRST_COMPLETED)
                self._done.extend(sorted(done, key=lambda f: self._pending[f][0]))  # submission order
            fut = self._done.popleft()
            _, trial_id, subdir, extra, spec, trial_dir = self._pending.pop(fut)
            if fut.cancelled():
                continue
            try:
                trial = self.judge(fut.result())
            except Untestable as exc:
                trial = _unrun(spec, trial_dir, Outcome.SKIP, exc.reason)
            except InfrastructureError as exc:
                trial = _unrun(spec, trial_dir, Outcome.ERROR, str(exc))
            record = trial.to_dict() if self._scrub is None else self._scrub(trial.to_dict())
            self.run_dir.write_json(f"{subdir}/{trial_id}/result.json", record)
            self.run_dir.journal.append("trial", subdir=subdir, **extra, trial=record)
            return trial
        return None

    def cancel_all(self) -> None:
        """Stop running trials, drop queued ones."""
        self.backend.cancel_all()
        self._pending.clear()
        self._done.clear()

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unrun(spec: TrialSpec, trial_dir: Path, outcome: Outcome, reason: str) -> Trial:
    """The trial of a candidate whose preparation said it cannot be tested."""
    result = TrialResult(
        spec=spec,
        trial_dir=trial_dir,
        rc=None,
        signal=None,
        timed_out=False,
        started_at=time.time(),
        wall_s=0.0,
        stdout_path=trial_dir / "stdout",
        stderr_path=trial_dir / "stderr",
        error=reason if outcome is Outcome.ERROR else None,
    )
    return Trial(result=result, outcome=outcome, reason=reason)
