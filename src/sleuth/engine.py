"""The trial engine: a backend runs trials, an oracle judges them, the run dir keeps them.

Every room (run, bisect, matrix, ...) submits ``TrialSpec`` s under an id and consumes judged
``Trial`` s as they finish, in completion order, never in rounds.  Each finished trial is on disk
(``<subdir>/<id>/{stdout,stderr,result.json}``) and journaled as a ``trial`` event before it is
yielded, so a crash after that point never loses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from sleuth.backends import Backend
from sleuth.journal import RunDir
from sleuth.model import Trial, TrialResult, TrialSpec
from sleuth.oracle import Oracle

__all__ = ["Engine"]


class Engine:
    """Submit trials; iterate over judged trials as they complete."""

    def __init__(self, backend: Backend, oracle: Oracle, run_dir: RunDir) -> None:
        self.backend = backend
        self.oracle = oracle
        self.run_dir = run_dir
        self._pending: dict[Future[TrialResult], tuple[str, str, dict[str, Any]]] = {}

    @property
    def pending(self) -> int:
        """Trials submitted and not yet yielded."""
        return len(self._pending)

    def submit(self, spec: TrialSpec, trial_id: str, subdir: str = "trials", **extra: Any) -> None:
        """Queue one trial; ``extra`` is copied into its journal event (e.g. ``cell=...``)."""
        trial_dir = self.run_dir.path / subdir / trial_id  # the runner creates it
        fut = self.backend.submit(spec, trial_dir)
        self._pending[fut] = (trial_id, subdir, extra)

    def judge(self, result: TrialResult) -> Trial:
        """Apply the oracle."""
        j = self.oracle.judge(result)
        return Trial(result=result, outcome=j.outcome, signature=j.signature, reason=j.reason)

    def completed(self) -> Iterator[Trial]:
        """Yield judged trials in completion order until none is pending."""
        while self._pending:
            done, _ = wait(list(self._pending), return_when=FIRST_COMPLETED)
            for fut in done:
                trial_id, subdir, extra = self._pending.pop(fut)
                if fut.cancelled():
                    continue
                trial = self.judge(fut.result())
                record = trial.to_dict()
                self.run_dir.write_json(f"{subdir}/{trial_id}/result.json", record)
                self.run_dir.journal.append("trial", subdir=subdir, **extra, trial=record)
                yield trial

    def cancel_all(self) -> None:
        """Stop running trials, drop queued ones."""
        self.backend.cancel_all()
        self._pending.clear()

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
