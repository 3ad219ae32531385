"""Running candidate tests for the driver: the trial engine, the journal, and replay on resume.

:class:`TestPool` prepares and runs each test through the trial engine (checkout/build/venv/image in
the backend's worker, then the runner and the oracle) and journals every judged test as a ``test``
event before the search sees it.  Each test has an identity, its trial directory
``candidates/<index>-<label>/run-N`` (the N-th test of that candidate in this search), and the
journal is the truth about it, once:

* built with the ``test`` events of an interrupted run, the pool serves a test whose trial
  directory already has a journaled result from the journal, keyed by that directory (never by
  order), and does not journal it again;
* a test whose ``result.json`` was written but whose ``test`` event was not (a kill in between) is
  journaled when the pool starts (phase ``recovered``), once, and served like the others;
* new tests continue the numbering: ``seq`` after the largest journaled one, ``run-N`` per candidate;
* a journaled ERROR (the test could not run: uv could not download, a checkout failed) is no evidence
  about the candidate: its record stays, and a resume tests that candidate again as its next
  ``run-N`` (a SKIP, the candidate's own build failure, is served like any result).

``on_test`` hears every test once, in the order they happened: a resume's journaled tests (an ERROR
passed over too) as the pool is built, marked ``replayed``, then each new one as it is collected; a
journaled test the search asks for again is served without being shown twice.

The search is deterministic given the order of its observations, so replayed results are served
in journal order and a resumed search retraces the interrupted one (with ``--jobs`` > 1 it may
branch off where results that finished together were told together; journaled results are still
served whenever their trial comes up, and the answer of a deterministic test is the same).  The
backend is injected (``backend=``) by the CLI (made before the run dir) and for simulation; by
default it is the one ``Options.backend`` names (local unless ``--backend`` said otherwise).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.backends.choice import BackendChoice
from sleuth.bisect.candidates import Candidate, Source, candidate_key
from sleuth.bisect.counted import CountedBackend
from sleuth.bisect.policy import FlakyMode
from sleuth.engine import Engine, Untestable
from sleuth.journal import RunDir
from sleuth.model import Outcome, Trial, TrialSpec
from sleuth.oracle import Oracle, same_failure

if TYPE_CHECKING:
    from sleuth.backends import Backend
    from sleuth.bisect.perf import PerfSpec

__all__ = ["Options", "TestEvent", "TestPool"]

#: how long :meth:`TestPool.next_event` waits for the first test's process before calling
#: ``on_first_wait`` anyway (a Ray backend spawns it on another process; a build may come first)
FIRST_WAIT_S = 0.25


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
    #: what dispatches the tests (``--backend``, ``--backend-opt``)
    backend: BackendChoice = field(default_factory=BackendChoice)


@dataclass(frozen=True, slots=True, kw_only=True)
class TestEvent:
    """One judged test of one candidate, as journaled."""

    #: the test's number in this search (journal order; a resume continues it)
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
    #: another test had finished when this one was collected: the search hears both before it
    #: proposes (journaled, so a resume proposes at the same points)
    more: bool = False
    #: the pool's number for the submission this answers (not journaled)
    ticket: int = -1
    #: served from the journal of an interrupted run, not run again (not journaled)
    replayed: bool = False

    @classmethod
    def from_journal(cls, d: dict[str, Any]) -> TestEvent:
        """A journaled ``test`` event as shown again on resume (``replayed``)."""
        return cls(seq=int(d.get("seq", -1)), index=int(d.get("index", -1)), label=str(d.get("label", "")),
                   run=int(d.get("run", 0)), phase=str(d.get("phase", "")), outcome=Outcome(d["outcome"]),
                   counted=Outcome(d.get("counted", d["outcome"])), signature=d.get("signature"),
                   reason=str(d.get("reason", "")), trial_dir=str(d.get("trial_dir", "")),
                   value=d.get("value"), more=bool(d.get("more")), replayed=True)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The journal form."""
        d: dict[str, Any] = {f: getattr(self, f) for f in _JOURNALED}
        d["outcome"], d["counted"] = self.outcome.value, self.counted.value
        return d


_JOURNALED = ("seq", "index", "label", "run", "phase", "outcome", "counted", "signature", "reason",
              "trial_dir", "value", "more")  # fmt: skip

#: (outcome, signature, reason, metric value)
Raw = tuple[Outcome, str | None, str, float | None]


@dataclass(frozen=True, slots=True)
class _Meta:
    """What a submitted test is: the driver's ticket, the candidate, its run and its round."""

    ticket: int
    index: int
    label: str
    phase: str
    run: int
    trial_dir: str
    round: int


class TestPool:
    """Submit candidate tests, collect them as they finish (or from the journal), journal them once."""

    def __init__(self, source: Source, spec: TrialSpec, oracle: Oracle, run_dir: RunDir, options: Options, *,
                 replay: list[dict[str, Any]] | None = None,
                 on_test: Callable[[TestEvent], None] | None = None,
                 backend: Backend | None = None) -> None:  # fmt: skip
        self.source = source
        self.spec = spec
        self.oracle = oracle
        self.run_dir = run_dir
        self.opt = options
        self.on_test = on_test
        self.events: list[TestEvent] = []
        self.signature: str | None = None
        self._runs: dict[str, int] = defaultdict(int)
        #: trial dir -> (journal position, journaled event), for tests not served yet
        self._journaled: dict[str, tuple[int, dict[str, Any]]] = {}
        for pos, ev in enumerate(replay or []):
            key = ev.get("trial_dir")
            if isinstance(key, str) and key not in self._journaled:  # a duplicate of an old bug: ignored
                self._journaled[key] = (pos, ev)
        self._last_pos = len(replay or [])
        self._next_seq = 1 + max((int(ev.get("seq", -1)) for ev in replay or []), default=-1)
        self._tickets = 0
        if backend is None:
            from sleuth.backends.choice import make_backend

            backend = make_backend(options.backend, max(1, options.jobs), options.gpus)
        self._backend = CountedBackend(backend)
        self.engine = Engine(self._backend, oracle, run_dir)
        #: trial dir -> what the engine's trial is the test of
        self._running: dict[Path, _Meta] = {}
        #: the round of the latest-starting test collected so far (see :attr:`rounds`)
        self._round_done = 0
        self.rounds = 0
        #: served without running: (journal position, result, meta, journaled event or None)
        self._ready: list[tuple[int, Raw, _Meta, dict[str, Any] | None]] = []
        #: called once, when the pool first waits for a test and that test's process has started
        #: (:data:`FIRST_WAIT_S` at most): the CLI loads its console and the report while it runs,
        #: not before it starts (issue 9's start-up)
        self.on_first_wait: Callable[[], None] | None = None
        if replay is not None:
            self._recover()
            if on_test is not None:  # the history first, in journal order: it happened before
                for _, old in sorted(self._journaled.values(), key=lambda item: item[0]):
                    on_test(TestEvent.from_journal(old))

    def _recover(self) -> None:
        """Journal the tests that finished before a kill but were never journaled (``result.json``
        written, ``test`` event not): once, now, so the journal holds every test that ran."""
        for path in sorted(self.run_dir.path.glob("candidates/*/run-*/result.json")):
            tdir = path.parent.relative_to(self.run_dir.path).as_posix()
            if tdir in self._journaled:
                continue
            try:
                rec = json.loads(path.read_text(encoding="utf-8"))
                outcome = Outcome(rec["outcome"])
                run = int(path.parent.name.removeprefix("run-"))
                cand = path.parent.parent.name
                index = -1 if cand.startswith("probe-") else int(cand.partition("-")[0])
                label = rec["label"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not one of ours (or torn): it runs again if the search asks for it
            if not isinstance(label, str) or not label:
                continue
            counted = Outcome.SKIP if outcome is Outcome.ERROR else outcome
            ev = {"seq": self._next_seq, "index": index, "label": label, "run": run, "phase": "recovered",
                  "outcome": outcome.value, "counted": counted.value, "signature": rec.get("signature"),
                  "reason": rec.get("reason", ""), "trial_dir": tdir,
                  "value": self._value(rec.get("metrics") or {})}  # fmt: skip
            self._next_seq += 1
            self.run_dir.journal.append("test", **ev)
            self._last_pos += 1
            self._journaled[tdir] = (self._last_pos, ev)

    def submit(self, index: int, label: str, phase: str) -> int:
        """Start one test of ``label`` (``index`` -1 for a candidate outside the list); its ticket."""
        ticket = self._tickets
        self._tickets += 1
        key = (
            candidate_key(Candidate(index, label))
            if index >= 0
            else "probe-" + candidate_key(Candidate(0, label))
        )
        key = key.replace("/", "_").replace(":", "_")
        while True:  # a journaled ERROR is passed over: the candidate is tested again as its next run
            self._runs[label] += 1
            run = self._runs[label]
            meta = _Meta(
                ticket, index, label, phase, run, f"candidates/{key}/run-{run}", self._round_done + 1
            )
            old = self._journaled.pop(meta.trial_dir, None)
            if old is None or old[1].get("outcome") != Outcome.ERROR.value:
                break
        if old is not None:
            pos, ev = old
            raw = (Outcome(ev["outcome"]), ev.get("signature"), ev.get("reason", ""), ev.get("value"))
            self._ready.append((pos, raw, meta, ev))
            return ticket
        self._running[self.run_dir.path / meta.trial_dir] = meta
        prepare = partial(self._prepare, Candidate(index, label))
        self.engine.submit(self.spec, f"run-{run}", f"candidates/{key}", prepare=prepare, test=ticket)
        return ticket

    def _prepare(self, cand: Candidate, trial_dir: Path) -> TrialSpec:
        """In the worker: make ``cand`` ready (its directory holds the build, the runs beneath)."""
        cand_dir = trial_dir.parent
        cand_dir.mkdir(parents=True, exist_ok=True)
        prepared = self.source.prepare(cand, self.spec, cand_dir)  # InfrastructureError: ERROR
        if prepared.spec is None:
            raise Untestable(prepared.skip_reason)
        return replace(prepared.spec, label=cand.label)  # result.json names the candidate

    def _value(self, metrics: Any) -> float | None:
        if self.opt.perf is None:
            return None
        got = metrics.get(self.opt.perf.name)
        if isinstance(got, tuple | list):
            return float(got[-1]) if got else None
        return None if got is None else float(got)

    def _raw(self, trial: Trial) -> Raw:
        return (trial.outcome, trial.signature, trial.reason, self._value(trial.result.metrics))

    @property
    def inflight(self) -> int:
        """Tests submitted and not yet collected."""
        return self.engine.pending + len(self._ready)

    @property
    def more(self) -> bool:
        """When the last test was collected, another had finished too (see :attr:`TestEvent.more`)."""
        return bool(self.events) and self.events[-1].more

    def count(self, outcome: Outcome, signature: str | None) -> Outcome:
        """What the search counts: ERROR is SKIP; a FAIL with another signature is SKIP (not with
        --any-failure, nor before the bad end's signature is known)."""
        if outcome is Outcome.ERROR:
            return Outcome.SKIP
        if (outcome is Outcome.FAIL and self.signature is not None and not self.opt.any_failure
                and not same_failure(signature, self.signature)):  # fmt: skip
            return Outcome.SKIP
        return outcome

    def next_event(self) -> TestEvent:
        """The next finished test (journal replays first, in journal order, then in completion order)."""
        if self.on_first_wait is not None:
            hook, self.on_first_wait = self.on_first_wait, None
            if self._running and not self._ready:  # the hook's imports must not hold the spawn back
                from sleuth.runner import FIRST_SPAWNED

                FIRST_SPAWNED.wait(FIRST_WAIT_S)  # a remote backend spawns elsewhere: not forever
            hook()
        if self._ready:
            self._ready.sort(key=lambda r: r[0])
            _, raw, meta, old = self._ready.pop(0)
        else:
            self._backend.ensure_finished()
            trial = self.engine.next_completed()
            self._backend.collected()
            meta = self._running.pop(trial.result.trial_dir)
            raw, old = self._raw(trial), None
        # rounds: a test starts one round after the latest round whose result it could have used,
        # so tests of equal duration take ``rounds`` test-times of wall time
        self._round_done = max(self._round_done, meta.round)
        self.rounds = max(self.rounds, meta.round)
        outcome, sig, reason, value = raw
        if old is not None:
            seq, phase, more = (
                int(old.get("seq", -1)),
                str(old.get("phase", meta.phase)),
                bool(old.get("more")),
            )
        else:
            seq, phase, more = self._next_seq, meta.phase, self._backend.finished > 0
            self._next_seq += 1
        ev = TestEvent(seq=seq, index=meta.index, label=meta.label, run=meta.run, phase=phase,
                       outcome=outcome, counted=self.count(outcome, sig), signature=sig, reason=reason,
                       trial_dir=meta.trial_dir, value=value, more=more, ticket=meta.ticket,
                       replayed=old is not None)  # fmt: skip
        if old is None:
            self.run_dir.journal.append("test", **ev.to_dict())
        self.events.append(ev)
        if self.on_test is not None and old is None:  # a replayed test was shown when the pool was built
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
        return sorted(out, key=lambda e: e.ticket)

    def cancel(self) -> None:
        """Stop the tests still running and forget them (they are not journaled)."""
        self.engine.cancel_all()
        self._running.clear()
        self._ready.clear()
        self._backend.reset()

    def shutdown(self) -> None:
        """Stop the workers (tests still running are abandoned)."""
        self.engine.close()
