"""The bisection driver: end checks, strategy loop, journal, resume by replay.

The driver owns the loop of DESIGN §3: it asks the strategy for as many probes as there are free
slots, prepares and runs each in a worker thread (checkout/build/venv/image, then the runner and
the oracle), and tells the strategy every outcome as it arrives.  Every test is journaled as a
``test`` event before the strategy sees it.

Resume replays: the driver runs the same logic again, and a test whose candidate already has an
unused journaled result takes that result instead of running (results are served in journal
order), so completed tests never run twice and a deterministic search ends where the
uninterrupted one would have.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sleuth.bisect.candidates import Candidate, ImageSource, Source, candidate_key, parse_date
from sleuth.bisect.flaky import FlakyBisection
from sleuth.bisect.policy import AUTO_RERUNS, FlakyMode, choose_strategy
from sleuth.bisect.strategies import Bisection, Query, SearchResult, SearchStatus, Strategy
from sleuth.errors import InfrastructureError
from sleuth.journal import RunDir
from sleuth.model import Outcome, Trial, TrialSpec
from sleuth.oracle import Oracle

__all__ = ["Driver", "Options", "TestEvent"]

log = logging.getLogger(__name__)
_GALLOP_DAYS = 512


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """How to search (the CLI's flags, validated)."""

    jobs: int = 1
    flaky: FlakyMode = field(default_factory=lambda: FlakyMode(auto=True))
    confidence: float = 0.95
    any_failure: bool = False
    check_ends: bool = True
    max_tests: int | None = None


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

    def to_dict(self) -> dict[str, Any]:
        """The journal form."""
        return {
            "seq": self.seq,
            "index": self.index,
            "label": self.label,
            "run": self.run,
            "phase": self.phase,
            "outcome": self.outcome.value,
            "counted": self.counted.value,
            "signature": self.signature,
            "reason": self.reason,
            "trial_dir": self.trial_dir,
        }


_Raw = tuple[Outcome, str | None, str]


class Driver:
    """Run one bisection over a source's candidates."""

    def __init__(
        self,
        source: Source,
        spec: TrialSpec,
        oracle: Oracle,
        run_dir: RunDir,
        options: Options,
        *,
        replay: list[dict[str, Any]] | None = None,
        on_test: Callable[[TestEvent], None] | None = None,
        labels: list[str] | None = None,
    ) -> None:
        self.source = source
        self.spec = spec
        self.oracle = oracle
        self.run_dir = run_dir
        self.opt = options
        self.on_test = on_test
        self.labels: list[str] = []
        self._known_labels = labels
        self.events: list[TestEvent] = []
        self.signature: str | None = None
        self.rounds = 0
        self._seq = 0
        self._runs: dict[str, int] = defaultdict(int)
        self._cache: dict[str, deque[tuple[int, _Raw]]] = defaultdict(deque)
        for pos, ev in enumerate(replay or []):
            raw = (Outcome(ev["outcome"]), ev.get("signature"), ev.get("reason", ""))
            self._cache[ev["label"]].append((pos, raw))
        self._pool = ThreadPoolExecutor(max_workers=max(1, options.jobs), thread_name_prefix="sleuth-bisect")
        self._futures: dict[Future[_Raw], tuple[Query, str, str, int, str]] = {}
        self._ready: list[tuple[int, _Raw, tuple[Query, str, str, int, str]]] = []
        self._alias: dict[int, Query] = {}
        self.strategy: Strategy | None = None

    # -- running tests -------------------------------------------------------------------------

    def _submit(self, index: int, label: str, phase: str) -> Query:
        q = Query(self._seq, index)
        self._seq += 1
        self._runs[label] += 1
        run = self._runs[label]
        key = candidate_key(Candidate(index, label)) if index >= 0 else f"probe-{label}"[:60]
        key = key.replace("/", "_").replace(":", "_")
        meta = (q, label, phase, run, f"candidates/{key}/run-{run}")
        if self._cache[label]:
            pos, raw = self._cache[label].popleft()
            self._ready.append((pos, raw, meta))
        else:
            fut = self._pool.submit(self._execute, Candidate(index, label), self.run_dir.path / meta[4])
            self._futures[fut] = meta
        return q

    def _execute(self, cand: Candidate, trial_dir: Path) -> _Raw:
        cand_dir = trial_dir.parent
        cand_dir.mkdir(parents=True, exist_ok=True)
        from sleuth.runner import run_trial

        try:
            prepared = self.source.prepare(cand, self.spec, cand_dir)
        except InfrastructureError as exc:
            return (Outcome.ERROR, None, str(exc))
        if prepared.spec is None:
            return (Outcome.SKIP, None, prepared.skip_reason)
        result = run_trial(prepared.spec.with_env({"SLEUTH_TRIAL_ID": trial_dir.name}), trial_dir)
        j = self.oracle.judge(result)
        trial = Trial(result=result, outcome=j.outcome, signature=j.signature, reason=j.reason)
        self.run_dir.write_json(
            str(trial_dir.relative_to(self.run_dir.path) / "result.json"), trial.to_dict()
        )
        return (j.outcome, j.signature, j.reason)

    @property
    def inflight(self) -> int:
        """Tests submitted and not yet collected."""
        return len(self._futures) + len(self._ready)

    def _next(self) -> TestEvent:
        if self._ready:
            self._ready.sort(key=lambda r: r[0])
            _, raw, meta = self._ready.pop(0)
        else:
            done, _ = wait(list(self._futures), return_when=FIRST_COMPLETED)
            fut = min(done, key=lambda f: self._futures[f][0].seq)
            meta = self._futures.pop(fut)
            raw = fut.result()
        (q, label, phase, run, tdir) = meta
        outcome, sig, reason = raw
        counted = Outcome.SKIP if outcome is Outcome.ERROR else outcome
        if outcome is Outcome.FAIL and self.signature and sig != self.signature and not self.opt.any_failure:
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
        )
        self.run_dir.journal.append("test", **ev.to_dict())
        self.events.append(ev)
        if self.on_test is not None:
            self.on_test(ev)
        return ev

    def _run_now(self, items: list[tuple[int, str]], phase: str) -> list[TestEvent]:
        """Run a batch (up to ``jobs`` at a time) and return its events in submission order."""
        out = []
        pending = list(items)
        while pending or self.inflight:
            while pending and self.inflight < max(1, self.opt.jobs):
                self._submit(*pending.pop(0), phase)
            out.append(self._next())
        return sorted(out, key=lambda e: e.seq)

    # -- the search ----------------------------------------------------------------------------

    def _gallop(self, src: ImageSource) -> list[TestEvent]:
        """No known-good date: step back 1, 2, 4 ... days from the end until one passes."""
        end = parse_date(src.end, "--end-date")
        found: list[TestEvent] = []
        step = 1
        while step <= _GALLOP_DAYS:
            day = end - timedelta(days=step)
            (ev,) = self._run_now([(-1, src.tag(day))], "gallop")
            found.append(ev)
            if ev.counted is Outcome.PASS:
                src.start = day.isoformat()
                return found
            step *= 2
        return found

    def run(self) -> tuple[SearchResult, Strategy | None]:
        """Search; return the result and the strategy (None when the ends did not behave)."""
        try:
            return self._search()
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _search(self) -> tuple[SearchResult, Strategy | None]:
        src = self.source
        gallop: list[TestEvent] = []
        if isinstance(src, ImageSource) and not src.start:
            bad = self._run_now([(-1, src.tag(parse_date(src.end, "--end-date")))], "bad end")[0]
            if bad.outcome is not Outcome.FAIL:
                return self._ends_failed(None, bad), None
            self.signature = bad.signature
            gallop = self._gallop(src)
            if not gallop or gallop[-1].counted is not Outcome.PASS:
                return _not_found(f"no passing image in the {_GALLOP_DAYS} days before the end"), None
        if self._known_labels:
            self.labels = list(self._known_labels)
        else:
            self.labels = src.resolve()
            self.run_dir.journal.append("candidates", labels=self.labels, source=src.config())
        n = len(self.labels)
        if n < 2:
            return _not_found("fewer than two candidates in the range"), None
        ends: list[Outcome] = []
        seen: list[tuple[int, Outcome]] = []
        if gallop:  # the gallop already found a passing start and a failing end
            ends = [Outcome.FAIL]
            seen = [(0, Outcome.PASS)]
            seen += [(self.labels.index(e.label), e.counted) for e in gallop[:-1] if e.label in self.labels]
        elif self.opt.check_ends:
            items = [(0, self.labels[0]), (n - 1, self.labels[-1])]
            good, bad = self._run_now(items, "end check")
            if good.outcome is not Outcome.PASS or bad.outcome is not Outcome.FAIL:
                return self._ends_failed(good, bad), None
            self.signature = bad.signature
            ends = [bad.counted]
            seen = [(0, Outcome.PASS)]
        if self.opt.flaky.auto and ends:
            reruns = self._run_now([(n - 1, self.labels[-1])] * AUTO_RERUNS, "flakiness check")
            ends += [e.counted for e in reruns if e.counted is not Outcome.SKIP]
        strat = choose_strategy(
            n, self.opt.flaky, ends, confidence=self.opt.confidence, max_tests=self.opt.max_tests
        )
        self.run_dir.journal.append("strategy", kind=type(strat).__name__, flaky=self.opt.flaky.describe())
        seen += [(n - 1, o) for o in ends]
        for i, o in seen:
            strat.observe(Query(self._seq, i), o)
            self._seq += 1
        return self._loop(strat, seen), strat

    def _loop(self, strat: Strategy, seen: list[tuple[int, Outcome]]) -> SearchResult:
        while True:
            free = max(1, self.opt.jobs) - self.inflight
            if free > 0 and not strat.done:
                qs = strat.propose(free)
                if qs:
                    self.rounds += 1
                for q in qs:
                    sub = self._submit(q.index, self.labels[q.index], "search")
                    self._alias[sub.seq] = q
            if not self.inflight:
                break
            ev = self._next()
            q = self._alias.pop(ev.seq)
            strat.observe(q, ev.counted)
            seen.append((ev.index, ev.counted))
            if isinstance(strat, Bisection) and strat.contradictions and self.opt.flaky.auto:
                strat = self._to_flaky(strat, seen)
        self.strategy = strat
        return strat.result()

    def _to_flaky(self, old: Bisection, seen: list[tuple[int, Outcome]]) -> Strategy:
        """A contradiction under ``--flaky auto``: replay everything into the Bayesian search."""
        log.info("contradicting outcomes: switching to the flaky search")
        self.run_dir.journal.append("strategy", kind="FlakyBisection", flaky="auto", why="contradiction")
        new = choose_strategy(old.n, self.opt.flaky, [Outcome.PASS], confidence=self.opt.confidence)
        for j, (i, o) in enumerate(seen):
            new.observe(Query(j, i), o)
        for q in list(old.pending.values()):
            assert isinstance(new, FlakyBisection)
            new.pending[q.seq] = q
        return new

    def _ends_failed(self, good: TestEvent | None, bad: TestEvent) -> SearchResult:
        if good is not None and good.outcome is not Outcome.PASS:
            what, ev = "the good end", good
        else:
            what, ev = "the bad end", bad
        if ev.outcome is Outcome.ERROR:
            raise InfrastructureError(f"{what} {ev.label} could not be tested: {ev.reason}")
        want = "pass" if what == "the good end" else "fail"
        return _not_found(
            f"{what} {ev.label} did not {want} ({ev.outcome.value}: {ev.reason or 'no detail'})"
        )


def _not_found(note: str) -> SearchResult:
    return SearchResult(
        status=SearchStatus.NOT_FOUND, first_bad=None, last_good=None, confidence=0.0, note=note
    )
