"""The bisection driver: end checks, the strategy loop, performance sampling, multi-repo blame.

The driver owns the loop of DESIGN §3: it asks the strategy for as many probes as there are free
slots, runs each through :class:`~sleuth.bisect.trials.TestPool`, and tells the strategy every
outcome as it arrives.  Resume replays: the driver runs the same logic again and the pool serves
journaled results, so a deterministic search ends where the uninterrupted one would have.

Performance mode (``Options.perf``) samples both ends first, then reruns a probed candidate while
:func:`~sleuth.bisect.perf.classify` says AMBIGUOUS; the strategy only sees the verdict (BAD =
FAIL).  With several repositories, a FOUND stage is settled by a blame probe (see
:mod:`sleuth.bisect.git`): a pass blames the stage's primary, a fail starts the next stage.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sleuth.bisect.auto import AutoBisection
from sleuth.bisect.candidates import Source, parse_date
from sleuth.bisect.flaky import FlakyBisection
from sleuth.bisect.git import GitSource, MultiGitSource
from sleuth.bisect.packaged import ImageSource
from sleuth.bisect.perf import Verdict, check_ends, classify
from sleuth.bisect.policy import AUTO_RERUNS, BAD_END_RETRIES, choose_strategy
from sleuth.bisect.strategies import Bisection, Query, SearchResult, SearchStatus, Strategy
from sleuth.bisect.trials import Options, TestEvent, TestPool
from sleuth.errors import InfrastructureError
from sleuth.journal import RunDir
from sleuth.model import Outcome, TrialSpec
from sleuth.oracle import Oracle

__all__ = ["Driver", "Options", "TestEvent"]

log = logging.getLogger(__name__)
_GALLOP_DAYS = 512


class Driver(TestPool):
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
        super().__init__(source, spec, oracle, run_dir, options, replay=replay, on_test=on_test)
        self.labels: list[str] = []
        #: every candidate of every stage (merged branches, later repositories), in order
        self.seen_labels: dict[str, None] = {}
        self._known_labels = labels
        self._alias: dict[int, Query] = {}
        self.strategy: Strategy | None = None
        #: performance mode: metric samples and the verdict per label
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.verdicts: dict[str, Verdict] = {}
        self._ends: tuple[str, str] = ("", "")
        #: multi-repo: ``{"culprit_repo", "first_bad", "last_good"}`` (composite labels) once settled
        self.blame: dict[str, str] | None = None

    def _gallop(self, src: ImageSource) -> list[TestEvent]:
        """No known-good date: step back 1, 2, 4 ... days from the end until one passes."""
        end = parse_date(src.end, "--end-date")
        found: list[TestEvent] = []
        step = 1
        while step <= _GALLOP_DAYS:
            day = end - timedelta(days=step)
            (ev,) = self.run_now([(-1, src.tag(day))], "gallop")
            found.append(ev)
            if ev.counted is Outcome.PASS:
                src.start = day.isoformat()
                return found
            step *= 2
        return found

    def run(self) -> tuple[SearchResult, Strategy | None]:
        """Search; return the result and the strategy (None when the ends did not behave)."""
        try:
            res, strat = self._search()
            if isinstance(self.source, MultiGitSource) and strat is not None:
                res = self._settle_blame(self.source, res, strat)
            if isinstance(self.source, GitSource) and not self.source.first_parent and strat is not None:
                res = self._descend_merges(self.source, res, strat)
            return res, self.strategy if strat is not None else None
        finally:
            self.shutdown()

    def _search(self) -> tuple[SearchResult, Strategy | None]:
        src = self.source
        gallop: list[TestEvent] = []
        if isinstance(src, ImageSource) and not src.start:
            bad = self.run_now([(-1, src.tag(parse_date(src.end, "--end-date")))], "bad end")[0]
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
        self.seen_labels.update(dict.fromkeys(self.labels))
        n = len(self.labels)
        if n < 2:
            return _not_found("fewer than two candidates in the range"), None
        if self.opt.perf is not None:
            return self._perf_ends(n)
        ends: list[Outcome] = []
        seen: list[tuple[int, Outcome]] = []
        if gallop:  # the gallop already found a passing start and a failing end
            ends = [Outcome.FAIL]
            seen = [(0, Outcome.PASS)]
            seen += [(self.labels.index(e.label), e.counted) for e in gallop[:-1] if e.label in self.labels]
        elif self.opt.check_ends:
            good, bad = self.run_now([(0, self.labels[0]), (n - 1, self.labels[-1])], "end check")
            bad_runs = [bad]
            if good.outcome is Outcome.PASS and bad.outcome is Outcome.PASS:
                bad_runs += self._retry_bad_end(n)
            failing = next((e for e in bad_runs if e.outcome is Outcome.FAIL), None)
            if good.outcome is not Outcome.PASS or failing is None:
                return self._ends_failed(good, bad, runs=len(bad_runs)), None
            self.signature = failing.signature
            # passes of the bad end are evidence of flakiness: they go to the strategy as observations
            ends = [e.outcome for e in bad_runs if e.outcome in (Outcome.PASS, Outcome.FAIL)]
            seen = [(0, Outcome.PASS)]
        # two candidates (and one repository): the ends are the answer, flaky or not
        needs_check = n > 2 or isinstance(src, MultiGitSource)
        if self.opt.flaky.auto and ends and needs_check:
            reruns = self.run_now([(n - 1, self.labels[-1])] * AUTO_RERUNS, "flakiness check")
            ends += [e.counted for e in reruns if e.counted is not Outcome.SKIP]
        strat = choose_strategy(
            n, self.opt.flaky, ends, confidence=self.opt.confidence, max_tests=self.opt.max_tests
        )
        self.run_dir.journal.append("strategy", kind=type(strat).__name__, flaky=self.opt.flaky.describe())
        seen += [(n - 1, o) for o in ends]
        return self._seeded(strat, seen), strat

    def _retry_bad_end(self, n: int) -> list[TestEvent]:
        """Rerun a bad end that passed until it fails (flaky modes only; ``--flaky off`` trusts one run).

        The user says it is bad: with a flaky test one pass proves nothing.  The number of reruns makes
        a miss unlikely (< 1% for the given p; 0.4% at p = 0.5 under auto).
        """
        mode = self.opt.flaky
        if mode.auto:
            budget = BAD_END_RETRIES
        elif mode.p is not None and mode.p < 1.0:
            budget = min(30, math.ceil(math.log(0.01) / math.log1p(-mode.p)) - 1)
        else:
            return []
        out: list[TestEvent] = []
        while len(out) < budget:
            batch = min(max(1, self.opt.jobs), budget - len(out))
            out += self.run_now([(n - 1, self.labels[-1])] * batch, "bad end retry")
            if any(e.outcome is Outcome.FAIL for e in out):
                break
        return out

    def _seeded(self, strat: Strategy, seen: list[tuple[int, Outcome]]) -> SearchResult:
        self.seen_labels.update(dict.fromkeys(self.labels))
        # the strategy numbers its own queries; the test numbers (``self._seq``) count real tests only
        for j, (i, o) in enumerate(seen):
            strat.observe(Query(j, i), o)
        return self._loop(strat, seen)

    def _perf_ends(self, n: int) -> tuple[SearchResult, Strategy | None]:
        """Sample both ends; they must differ beyond the threshold; then bisect by verdicts."""
        assert self.opt.perf is not None
        k = self.opt.perf.end_samples
        self._ends = (self.labels[0], self.labels[-1])
        for ev in self.run_now([(0, self.labels[0])] * k + [(n - 1, self.labels[-1])] * k, "end samples"):
            if ev.value is not None:
                self.samples[ev.label].append(ev.value)
        why = check_ends(self.opt.perf, self.samples[self.labels[0]], self.samples[self.labels[-1]])
        if why is not None and self.opt.check_ends:
            return _not_found(why), None
        strat = Bisection(n)
        self.run_dir.journal.append("strategy", kind="Bisection", flaky="perf")
        return self._seeded(strat, [(0, Outcome.PASS), (n - 1, Outcome.FAIL)]), strat

    def _perf_outcome(self, ev: TestEvent) -> Outcome | None:
        """The verdict as PASS/FAIL, SKIP without a value, None while ambiguous."""
        assert self.opt.perf is not None
        if ev.value is None:
            return Outcome.SKIP
        self.samples[ev.label].append(ev.value)
        good, bad = (self.samples[x] for x in self._ends)
        v = classify(self.opt.perf, good, bad, self.samples[ev.label])
        if v is Verdict.AMBIGUOUS:
            return None
        self.verdicts[ev.label] = v
        return Outcome.FAIL if v.is_bad else Outcome.PASS

    def _loop(self, strat: Strategy, seen: list[tuple[int, Outcome]]) -> SearchResult:
        while True:
            free = max(1, self.opt.jobs) - self.inflight
            if free > 0 and not strat.done:
                qs = strat.propose(free)
                phase = (
                    "last-good check" if isinstance(strat, AutoBisection) and strat.verifying else "search"
                )
                for q in qs:
                    self._alias[self.submit(q.index, self.labels[q.index], phase).seq] = q
            if not self.inflight:
                break
            ev = self.next_event()
            q = self._alias.pop(ev.seq)
            counted = ev.counted
            if self.opt.perf is not None:
                verdict = self._perf_outcome(ev)
                if verdict is None:  # ambiguous: one more sample of the same candidate
                    self._alias[self.submit(q.index, ev.label, "search").seq] = q
                    continue
                counted = verdict
            strat.observe(q, counted)
            seen.append((ev.index, counted))
        self.strategy = strat
        return strat.result()

    def _descend_merges(self, src: GitSource, res: SearchResult, strat: Strategy) -> SearchResult:
        """A first bad merge whose first parent passes: search the merged branch that fails.

        The merged parents are tested in order; the first that fails is searched along its own
        first parents from its merge base (a new stage, journaled like the first).  When every
        parent passes, the merge itself is the first bad.
        """
        while res.status is SearchStatus.FOUND and res.first_bad is not None and res.last_good is not None:
            merge, first = self.labels[res.first_bad], self.labels[res.last_good]
            others = src.parents(merge)[1:]
            if not others:
                break
            failing, untested = None, []
            for q in others:
                got = self._probe(q, strat, "merged parent")
                if got is Outcome.FAIL:
                    failing = q
                    break
                if got is not Outcome.PASS:
                    untested.append(q)
            if failing is None:
                if untested:
                    why = f"merge {merge}: its merged parent {untested[0]} could not be tested"
                    return replace(res, status=SearchStatus.AMBIGUOUS, confidence=0.0, note=why)
                return replace(
                    res, note=f"every parent of the merge {merge} passes: the merge itself is the first bad"
                )
            self.labels = src.merged_branch(first, failing)
            self.run_dir.journal.append("candidates", labels=self.labels, merge=merge)
            n = len(self.labels)
            flaky = isinstance(strat.inner if isinstance(strat, AutoBisection) else strat, FlakyBisection)
            strat = choose_strategy(n, self.opt.flaky, [Outcome.FAIL, *([Outcome.PASS] if flaky else [])],
                                    confidence=self.opt.confidence, max_tests=self.opt.max_tests)  # fmt: skip
            res = self._seeded(strat, [(0, Outcome.PASS), (n - 1, Outcome.FAIL)])
        return res

    def _probe(self, label: str, strat: Strategy, phase: str = "blame") -> Outcome:
        """Judge one candidate outside the list: sampled in perf mode, rerun when the test is flaky."""
        if self.opt.perf is not None:
            while True:
                (ev,) = self.run_now([(-1, label)], phase)
                got = self._perf_outcome(ev)
                if got is not None:
                    return got
        runs = 1
        inner = strat.inner if isinstance(strat, AutoBisection) else strat
        if isinstance(inner, FlakyBisection):  # a bad one passes all r runs with <= 1 - confidence
            p = min(max(inner.p_estimate(), 0.1), 0.99)
            runs = min(10, math.ceil(math.log(1 - self.opt.confidence) / math.log(1 - p)))
        outcome = Outcome.SKIP
        for _ in range(runs):
            (ev,) = self.run_now([(-1, label)], phase)
            if ev.counted is Outcome.FAIL:
                return Outcome.FAIL
            if ev.counted is Outcome.PASS:
                outcome = Outcome.PASS
        return outcome

    def _settle_blame(self, src: MultiGitSource, res: SearchResult, strat: Strategy) -> SearchResult:
        """Test the older primary with the newer others; pass blames it, fail moves to the next repo."""
        k = 0
        while res.status is SearchStatus.FOUND and res.first_bad is not None and res.last_good is not None:
            lo, hi = self.labels[res.last_good], self.labels[res.first_bad]
            probe = src.blame_probe(k, lo, hi)
            got = Outcome.PASS if probe is None else self._probe(probe, strat)
            if got is Outcome.PASS:
                self.blame = {"culprit_repo": src.repos[k].name, "first_bad": hi, "last_good": lo}
                break
            if got is not Outcome.FAIL or probe is None:
                return SearchResult(status=SearchStatus.INCONCLUSIVE, first_bad=res.first_bad,
                                    last_good=res.last_good, suspects=res.suspects, confidence=0.0,
                                    note=f"the blame probe {probe} could not be tested")  # fmt: skip
            k, self.labels = src.next_stage(k, lo, probe)
            self.run_dir.journal.append("candidates", labels=self.labels, stage=k, primary=src.repos[k].name)
            n = len(self.labels)
            flaky = isinstance(strat.inner if isinstance(strat, AutoBisection) else strat, FlakyBisection)
            strat = choose_strategy(n, self.opt.flaky, [Outcome.FAIL, *([Outcome.PASS] if flaky else [])],
                                    confidence=self.opt.confidence, max_tests=self.opt.max_tests)  # fmt: skip
            res = self._seeded(strat, [(0, Outcome.PASS), (n - 1, Outcome.FAIL)])
        return res

    def _ends_failed(self, good: TestEvent | None, bad: TestEvent, runs: int = 1) -> SearchResult:
        if good is not None and good.outcome is not Outcome.PASS:
            what, ev = "the good end", good
        else:
            what, ev = "the bad end", bad
        if ev.outcome is Outcome.ERROR:
            raise InfrastructureError(f"{what} {ev.label} could not be tested: {ev.reason}")
        want = "pass" if what == "the good end" else "fail"
        times = f" in {runs} runs" if what == "the bad end" and runs > 1 else ""
        return _not_found(
            f"{what} {ev.label} did not {want}{times} ({ev.outcome.value}: {ev.reason or 'no detail'})"
        )


def _not_found(note: str) -> SearchResult:
    return SearchResult(
        status=SearchStatus.NOT_FOUND, first_bad=None, last_good=None, confidence=0.0, note=note
    )
