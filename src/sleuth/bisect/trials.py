"""Running candidate tests for the driver: a thread pool, the journal, and replay on resume.

:class:`TestPool` prepares and runs each test in a worker thread (checkout/build/venv/image,
then the runner and the oracle) and journals every judged test as a ``test`` event before the
search sees it.  Built with the ``test`` events of an interrupted run, it serves a test whose
candidate already has an unused journaled result from the journal (in journal order) instead of
running it, so completed tests never run twice.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sleuth.backends.local import LocalBackend
from sleuth.bisect.candidates import Candidate, Source, candidate_key
from sleuth.bisect.perf import PerfSpec
from sleuth.bisect.policy import FlakyMode
from sleuth.bisect.strategies import Query
from sleuth.engine import Engine, Untestable
from sleuth.journal import RunDir
from sleuth.model import Outcome, Trial, TrialSpec
from sleuth.oracle import Oracle, same_failure

__all__ = ["Options", "TestEvent", "TestPool"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """How to search (the CLI's flags, validated)."""

    jobs: int = 1
    #: device ids: each running test gets one as CUDA_VISIBLE_DEVICES/HIP_VISIBLE_DEVICES
    gpus: tuple[str, ...] = ()
    flaky: FlakyMode = field(default_factory=lambda: FlakyMode(auto=True))
    confidence: float = 0.95
    any_failure: bool = False
    check_ends: bool = True
    max_tests: int | None = None
    #: performance mode: classify candidates by this metric instead of the exit code
    perf: PerfSpec | None = None
    #: search for the first candidate where the failure goes away (the old end fails, the new passes)
    find_fix: bool = False
    #: labels known to be untestable (``--skip REV``): never tested, counted as SKIP
    skip: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TestEvent:
    """One judged test of one candidate, as journaled."""

    seq: int
    index: int
    label: str
    run: int
    phase: str
    outcome: Outcome
    #: what the search counted: an other-signature FAIL counts as SKIP unless --any-failure
    counted: Outcome
    signature: str | None
    reason: str
    trial_dir: str
    #: the performance metric of this run (performance mode only)
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The journal form."""
        d: dict[str, Any] = {f: getattr(self, f) for f in self.__slots__}
        d["outcome"], d["counted"] = self.outcome.value, self.counted.value
        return d


#: (outcome, signature, reason, metric value)
Raw = tuple[Outcome, str | None, str, float | None]
#: (query, label, phase, run, trial dir, round)
_Meta = tuple[Query, str, str, int, str, int]


class TestPool:
    """Submit candidate tests, collect them as they finish (or from the journal), journal them."""

    def __init__(self, source: Source, spec: TrialSpec, oracle: Oracle, run_dir: RunDir, options: Options, *,
                 replay: list[dict[str, Any]] | None = None,
                 on_test: Callable[[TestEvent], None] | None = None) -> None:  # fmt: skip
        self.source = source
        self.spec = spec
        self.oracle = oracle
        self.run_dir = run_dir
        self.opt = options
        self.on_test = on_test
        self.events: list[TestEvent] = []
        self.signature: str | None = None
        self._seq = 0
        self._runs: dict[str, int] = defaultdict(int)
        self._cache: dict[str, deque[tuple[int, Raw]]] = defaultdict(deque)
        for pos, ev in enumerate(replay or []):
            raw = (Outcome(ev["outcome"]), ev.get("signature"), ev.get("reason", ""), ev.get("value"))
            self._cache[ev["label"]].append((pos, raw))
        self.engine = Engine(LocalBackend(max(1, options.jobs), options.gpus), oracle, run_dir)
        #: trial dir -> what the engine's trial is the test of
        self._running: dict[Path, _Meta] = {}
        #: the round of the latest-starting test collected so far (see :attr:`rounds`)
        self._round_done = 0
        self.rounds = 0
        self._ready: list[tuple[int, Raw, _Meta]] = []

    def submit(self, index: int, label: str, phase: str) -> Query:
        """Start one test of ``label`` (``index`` -1 for a candidate outside the list)."""
        q = Query(self._seq, index)
        self._seq += 1
        self._runs[label] += 1
        run = self._runs[label]
        key = (
            candidate_key(Candidate(index, label))
            if index >= 0
            else "probe-" + candidate_key(Candidate(0, label))
        )
        key = key.replace("/", "_").replace(":", "_")
        meta = (q, label, phase, run, f"candidates/{key}/run-{run}", self._round_done + 1)
        if self._cache[label]:
            pos, raw = self._cache[label].popleft()
            self._ready.append((pos, raw, meta))
        else:
            self._running[self.run_dir.path / meta[4]] = meta
            prepare = partial(self._prepare, Candidate(index, label))
            self.engine.submit(self.spec, f"run-{run}", f"candidates/{key}", prepare=prepare, test=q.seq)
        return q

    def _prepare(self, cand: Candidate, trial_dir: Path) -> TrialSpec:
        """In the worker: make ``cand`` ready (its directory holds the build, the runs beneath)."""
        cand_dir = trial_dir.parent
        cand_dir.mkdir(parents=True, exist_ok=True)
        prepared = self.source.prepare(cand, self.spec, cand_dir)  # InfrastructureError: ERROR
        if prepared.spec is None:
            raise Untestable(prepared.skip_reason)
        return prepared.spec

    def _raw(self, trial: Trial) -> Raw:
        value: float | None = None
        if self.opt.perf is not None:
            got = trial.result.metrics.get(self.opt.perf.name)
            if isinstance(got, tuple):
                value = float(got[-1]) if got else None
            elif got is not None:
                value = float(got)
        return (trial.outcome, trial.signature, trial.reason, value)

    @property
    def inflight(self) -> int:
        """Tests submitted and not yet collected."""
        return self.engine.pending + len(self._ready)

    def next_event(self) -> TestEvent:
        """The next finished test (journal replays first, then in completion order; ties by number)."""
        if self._ready:
            self._ready.sort(key=lambda r: r[0])
            _, raw, meta = self._ready.pop(0)
        else:
            trial = self.engine.next_completed()
            meta = self._running.pop(trial.result.trial_dir)
            raw = self._raw(trial)
        (q, label, phase, run, tdir, rnd) = meta
        # rounds: a test starts one round after the latest round whose result it could have used,
        # so tests of equal duration take ``rounds`` test-times of wall time (the bench's unit)
        self._round_done = max(self._round_done, rnd)
        self.rounds = max(self.rounds, rnd)
        outcome, sig, reason, value = raw
        counted = Outcome.SKIP if outcome is Outcome.ERROR else outcome
        if (outcome is Outcome.FAIL and self.signature and not same_failure(sig, self.signature)
                and not self.opt.any_failure):  # fmt: skip
            counted = Outcome.SKIP
        ev = TestEvent(
            seq=q.seq,
            index=q.index,
            label=label,
            run=run,
            phase=phase,
            outcome=outcome,
            counted=counted,
            signature=sig,
            reason=reason,
            trial_dir=tdir,
            value=value,
        )
        self.run_dir.journal.append("test", **ev.to_dict())
        self.events.append(ev)
        if self.on_test is not None:
            self.on_test(ev)
        return ev

    def run_now(self, items: list[tuple[int, str]], phase: str) -> list[TestEvent]:
        """Run a batch (up to ``jobs`` at a time) and return its events in submission order."""
        out = []
        pending = list(items)
        while pending or self.inflight:
            while pending and self.inflight < max(1, self.opt.jobs):
                self.submit(*pending.pop(0), phase)
            out.append(self.next_event())
        return sorted(out, key=lambda e: e.seq)

    def shutdown(self) -> None:
        """Stop the workers (tests still running are abandoned)."""
        self.engine.close()
