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

With ``interrupts`` (a signal gate, :class:`Interrupts`), a signal interrupts only the wait for a
trial and its judging: from the moment its ``result.json`` is written, a trial's journal line and
whatever the caller does with it (``sleuth run`` counts it) are one step that a Ctrl-C cannot
split; the signal raises KeyboardInterrupt when the caller next asks for a trial.

Tried and dropped (issue 9): judging and writing ``result.json`` in the worker's done-callback, so
the caller's thread only journals (1000 x ``true`` at ``--jobs 8``, interleaved A/B, 10 rounds:
0.750 s against 0.711 s on tmpfs, 1.78 against 1.70 s on disk), and a ``sleuth run`` queue window
of five times the slots instead of ``jobs + min(jobs, 8)`` (0.764 s against 0.678 s): the caller is
not the bottleneck.
"""

from __future__ import annotations

import heapq
import json
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sleuth._spawn import WAKE_S
from sleuth.backends import Backend
from sleuth.errors import InfrastructureError
from sleuth.journal import RunDir, atomic_write_text
from sleuth.model import Outcome, Trial, TrialResult, TrialSpec
from sleuth.oracle import Oracle

__all__ = ["Engine", "Interrupts", "Prepare", "Untestable"]

#: ``json.dumps(obj, default=str)`` without building an encoder per trial
_dumps = json.JSONEncoder(default=str).encode

#: makes a trial ready in the worker thread: ``prepare(trial_dir)`` returns the spec to run
Prepare = Callable[[Path], TrialSpec]


class Interrupts(Protocol):
    """When signals may interrupt (``sleuth.batch.SignalGate``): released, a signal raises
    KeyboardInterrupt; held, it is only noted, and :meth:`release` raises it."""

    def release(self) -> None:
        """Let signals interrupt; raise KeyboardInterrupt for one noted while held."""

    def hold(self) -> None:
        """Only note signals from now on."""


class Untestable(Exception):
    """Raised by a ``prepare`` function: this trial cannot be tested (a failed build); SKIP it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class _Pending:
    future: Future[TrialResult]
    trial_id: str
    subdir: str
    extra: dict[str, Any]
    spec: TrialSpec
    trial_dir: Path


class Engine:
    """Submit trials; iterate over judged trials as they complete.

    Its bookkeeping is O(trials in flight): nothing is kept of a trial once it is yielded, and a
    completion costs O(log in-flight) (each future's done-callback puts its number on a queue).
    Submit as slots free (:meth:`stream`, or ``while engine.pending < engine.slots: submit``) and
    memory does not depend on the number of trials.
    """

    def __init__(
        self,
        backend: Backend,
        oracle: Oracle,
        run_dir: RunDir,
        *,
        scrub: Callable[[dict[str, Any]], Any] | None = None,
        interrupts: Interrupts | None = None,
    ) -> None:
        self.backend = backend
        self.oracle = oracle
        self.run_dir = run_dir
        #: applied to each trial's record before it is written and journaled (``Secrets.scrub``)
        self.scrub = scrub
        #: held by the caller; released here only while waiting for a trial and judging it
        self.interrupts = interrupts
        self._root = str(run_dir.path)
        #: submission number -> what to write and journal when it finishes
        self._pending: dict[int, _Pending] = {}
        self._submitted = 0
        #: submission numbers of finished futures, put by the done-callbacks (any thread)
        self._finished: queue.SimpleQueue[int] = queue.SimpleQueue()
        #: finished and not yet yielded, smallest submission number first
        self._ready: list[int] = []

    @property
    def pending(self) -> int:
        """Trials submitted and not yet yielded."""
        return len(self._pending)

    @property
    def slots(self) -> int:
        """How many trials the backend runs at once."""
        return self.backend.slots()

    def submit(self, spec: TrialSpec, trial_id: str, subdir: str = "trials", *,
               prepare: Prepare | None = None, **extra: Any) -> None:  # fmt: skip
        """Queue one trial; ``extra`` is copied into its journal event (e.g. ``cell=...``).

        With ``prepare``, the worker runs ``prepare(trial_dir)`` first and then the spec it returns
        (``spec`` only describes a trial that never ran); see the module docstring.
        """
        trial_dir = Path(f"{self._root}/{subdir}/{trial_id}")  # the runner creates it
        seq = self._submitted
        self._submitted += 1
        fut = self.backend.submit(spec, trial_dir, prepare=prepare)
        self._pending[seq] = _Pending(fut, trial_id, subdir, extra, spec, trial_dir)
        put = self._finished.put
        fut.add_done_callback(lambda _f: put(seq))

    def stream(
        self,
        trials: Iterable[tuple[TrialSpec, str] | tuple[TrialSpec, str, Mapping[str, Any]]],
        subdir: str = "trials",
        *,
        window: int | None = None,
        **extra: Any,
    ) -> Iterator[Trial]:
        """Run ``(spec, trial_id)`` pairs, submitting as slots free, and yield them as they finish.

        An item may carry its own journal extras as a third element (``(spec, id, {"cell": c})``),
        laid over ``extra``.

        At most ``window`` (default: twice the backend's slots, so no worker waits for the next
        submission) are in flight; ``trials`` is read lazily, so it may be a generator of any length.
        """
        limit = window if window is not None else 2 * max(1, self.slots)
        source = iter(trials)
        exhausted = False
        while True:
            while not exhausted and len(self._pending) < limit:
                item = next(source, None)
                if item is None:
                    exhausted = True
                    break
                own = item[2] if len(item) > 2 else {}
                self.submit(item[0], item[1], subdir, **{**extra, **own})
            done = self._next()
            if done is None:
                return
            yield done[0]

    def judge(self, result: TrialResult) -> Trial:
        """Apply the oracle."""
        j = self.oracle.judge(result)
        return Trial(result=result, outcome=j.outcome, signature=j.signature, reason=j.reason)

    def next_completed(self, timeout: float | None = None) -> Trial:
        """The next judged trial to finish (written and journaled); blocks.  Needs :attr:`pending`.

        With ``timeout`` (seconds), raises :class:`TimeoutError` when none finished by then (the
        trials keep running: :meth:`cancel_all` stops them).
        """
        return self.next_record(timeout)[0]

    def next_record(self, timeout: float | None = None) -> tuple[Trial, dict[str, Any]]:
        """:meth:`next_completed`, with the trial's record as written and journaled (scrubbed)."""
        done = self._next(timeout)
        if done is None:
            raise LookupError("no trial is pending")
        return done

    def completed(self) -> Iterator[Trial]:
        """Yield judged trials in completion order until none is pending."""
        while (done := self._next()) is not None:
            yield done[0]

    def _wait(self, deadline: float | None, timeout: float | None) -> int:
        """The next finished trial's number, waited for in slices of ``_spawn.WAKE_S``.

        Blocks in C (a signal handler's exception, Ctrl-C, leaves no lock held behind), but never for
        long: the kernel may hand a process-wide SIGINT to a worker thread, which only flags it, and
        the main thread runs the handler when it next wakes (an endless wait slept through Ctrl-C
        for as long as the trials ran).
        """
        while True:
            left = WAKE_S if deadline is None else min(WAKE_S, max(0.0, deadline - time.monotonic()))
            try:
                return self._finished.get(timeout=left)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"no trial finished in {timeout:g}s") from None

    def _next(self, timeout: float | None = None) -> tuple[Trial, dict[str, Any]] | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        gate = self.interrupts
        while self._pending:
            if gate is not None:
                gate.release()  # a signal noted since the last trial raises here
            try:
                judged = self._judged(deadline, timeout)
            finally:
                if gate is not None:
                    gate.hold()  # a signal from here on raises when the caller next asks for a trial
            if judged is not None:
                return self._written(*judged)
        return None

    def _judged(self, deadline: float | None, timeout: float | None) -> tuple[Trial, _Pending] | None:
        """The next finished trial, judged (None: one that was dropped); may be interrupted."""
        if not self._ready:
            heapq.heappush(self._ready, self._wait(deadline, timeout))
        while True:  # several finished together: yield them in submission order
            try:
                heapq.heappush(self._ready, self._finished.get_nowait())
            except queue.Empty:
                break
        p = self._pending.pop(heapq.heappop(self._ready), None)
        if p is None:  # dropped by cancel_all
            return None
        try:
            trial = self.judge(p.future.result())
        except CancelledError:  # dropped by the backend (cancel_all, close)
            return None
        except Untestable as exc:
            trial = _unrun(p.spec, p.trial_dir, Outcome.SKIP, exc.reason)
        except InfrastructureError as exc:
            trial = _unrun(p.spec, p.trial_dir, Outcome.ERROR, str(exc))
        return trial, p

    def _written(self, trial: Trial, p: _Pending) -> tuple[Trial, dict[str, Any]]:
        """Write ``result.json`` and journal the trial (with ``interrupts``, not interrupted)."""
        scrub = self.scrub or self.run_dir.scrub  # result.json is written here, not through the run dir
        record = trial.to_dict() if scrub is None else scrub(trial.to_dict())
        encoded = _dumps(record)  # once, for both files
        # the workload's own result.json (file or directory) in $SLEUTH_TRIAL_DIR is kept aside
        atomic_write_text(f"{p.trial_dir}/result.json", encoded + "\n", aside=".workload")
        self.run_dir.journal.append_encoded("trial", {"trial": encoded}, subdir=p.subdir, **p.extra)
        return trial, record

    def cancel_all(self) -> None:
        """Stop running trials (within their kill grace), drop queued ones; never blocks longer."""
        self._pending.clear()
        self._ready.clear()
        self.backend.cancel_all()

    def close(self) -> None:
        """Release the backend (waits for nothing)."""
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
