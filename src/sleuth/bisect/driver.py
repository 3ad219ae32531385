"""The bisection driver: end checks, the strategy loop, performance sampling, multi-repo blame.

The driver owns the loop of DESIGN §3: whenever a slot is free it asks the strategy for as many
probes as there are free slots (the strategy knows the probes still out), runs each through
:class:`~sleuth.bisect.trials.TestPool`, and tells the strategy every outcome as it arrives.
Resume replays: the driver runs the same logic again and the pool serves journaled results, so a
deterministic search ends where the uninterrupted one would have.

End checks are observations like any other, run where they cost least (see :meth:`Driver._loop`):
the bad end first (it must fail; its failure signature defines "bad"), the good end beside it when
``--jobs`` > 1, and with one slot only when it matters: when no search probe passed after the first
one (a test that always fails is caught after three tests) or when the answer's last good is the
good end.  Free slots of the first wave carry search probes at once (and, under ``auto``, reruns of
the bad end); a result that arrives before the bad end's signature is known waits for it.

``Options.find_fix`` searches for the first candidate where the failure goes away: the strategy
sees the candidates newest first, so the old end (which must fail, and whose signature is the
target) is its bad end and the first fixed candidate is its last good; outcomes keep their
meaning and the flaky model its one-sided noise.  ``Options.skip`` labels are never tested: the
strategy treats them as untestable from the start.

Performance mode (``Options.perf``) is :class:`~sleuth.bisect.perfrun.PerfRun`: the ends compared
sequentially, then a posterior search for the step (see that module); later stages (merged
branches, blame probes) rerun a candidate while :func:`~sleuth.bisect.perf.classify` says
AMBIGUOUS and the strategy sees the verdict (BAD = FAIL).  With several repositories, a FOUND
stage is settled by a blame probe (see :mod:`sleuth.bisect.git`): a pass blames the stage's
primary, a fail starts the next stage.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sleuth.bisect.candidates import Source
from sleuth.bisect.policy import BAD_END_RETRIES, choose_strategy, make_strategy
from sleuth.bisect.strategies import Query, SearchResult, SearchStatus, Strategy
from sleuth.bisect.trials import Options, TestEvent, TestPool
from sleuth.errors import InfrastructureError, UsageError
from sleuth.journal import RunDir
from sleuth.model import Outcome, TrialSpec
from sleuth.oracle import Oracle, same_failure

if TYPE_CHECKING:
    from sleuth.backends import Backend
    from sleuth.bisect.git import GitSource, MultiGitSource
    from sleuth.bisect.perf import PerfState, Verdict

__all__ = ["Driver", "Options", "TestEvent"]

#: roles of the end checks in the loop
_GOOD, _BAD = "good", "bad"


def _is(source: object, module: str, name: str) -> bool:
    """``isinstance`` without importing the source modules a search does not use."""
    import sys

    mod = sys.modules.get(f"sleuth.bisect.{module}")
    return mod is not None and isinstance(source, getattr(mod, name))


def _flaky_inner(strat: Strategy) -> bool:
    from sleuth.bisect.auto import AutoBisection
    from sleuth.bisect.strategies import Bisection

    return not isinstance(strat.inner if isinstance(strat, AutoBisection) else strat, Bisection)


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
        backend: Backend | None = None,
    ) -> None:
        super().__init__(
            source, spec, oracle, run_dir, options, replay=replay, on_test=on_test, backend=backend
        )
        self.labels: list[str] = []
        #: every candidate of every stage (merged branches, later repositories), in order
        self.seen_labels: dict[str, None] = {}
        self._known_labels = labels
        #: ticket -> the strategy's query, or the role of an end check
        self._alias: dict[int, Query] = {}
        self._roles: dict[int, tuple[str, Query]] = {}
        self.strategy: Strategy | None = None
        #: performance mode: metric samples and the verdict per label
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.verdicts: dict[str, Verdict] = {}
        self.perf_state: PerfState | None = None
        self._ends: tuple[str, str] = ("", "")
        #: multi-repo: ``{"culprit_repo", "first_bad", "last_good"}`` (composite labels) once settled
        self.blame: dict[str, str] | None = None
        #: the strategy sees candidates newest first (``find_fix``)
        self._flip = False
        self._told = -1
        self._ends_misbehaved = False
        #: ``bisect images --source``: the commits stage's summary (:mod:`sleuth.bisect.chain`)
        self.chain: dict[str, Any] | None = None
        #: told a line when a new stage begins (the CLI prints it)
        self.on_stage: Callable[[str], None] | None = None

    # --- candidates in the strategy's order ------------------------------------------------------

    def _pos(self, i: int) -> int:
        """The position in :attr:`labels` of the strategy's candidate ``i``."""
        return len(self.labels) - 1 - i if self._flip else i

    def _tell(self, strat: Strategy, index: int, outcome: Outcome) -> None:
        """An observation the strategy did not ask for (a given end)."""
        strat.observe(Query(self._told, index), outcome)
        self._told -= 1

    def _end_check(self, strat: Strategy, role: str, phase: str = "end check") -> None:
        """Start a test of an end; the strategy knows it is in flight."""
        q = Query(self._told, 0 if role == _GOOD else len(self.labels) - 1)
        self._told -= 1
        strat.expect(q)
        self._roles[self._submit(q.index, phase)] = (role, q)

    def run(self) -> tuple[SearchResult, Strategy | None]:
        """Search; return the result and the strategy (None when the ends did not behave)."""
        try:
            res, strat = self._search()
            res = self.result_in_order(res)
            if strat is not None and self.source.kind == "images" and getattr(self.source, "sources", None):
                from sleuth.bisect.chain import continue_chain  # bisect images --source: the commits stage

                self.chain = continue_chain(self, res)
            if strat is not None and _is(self.source, "git", "MultiGitSource"):
                res = self._settle_blame(self.source, res, strat)  # type: ignore[arg-type]
            elif (strat is not None and _is(self.source, "git", "GitSource") and not self.opt.find_fix
                  and not self.source.first_parent):  # type: ignore[attr-defined]  # fmt: skip
                res = self._descend_merges(self.source, res, strat)  # type: ignore[arg-type]
            return res, self.strategy if strat is not None else None
        finally:
            self.shutdown()

    def _search(self) -> tuple[SearchResult, Strategy | None]:
        src = self.source
        gallop: list[TestEvent] = []
        if src.kind == "images" and (not getattr(src, "start", "x") or getattr(src, "step_back", False)):
            from sleuth.bisect.packaged import ImageSource

            assert isinstance(src, ImageSource)
            if self.opt.find_fix:
                raise UsageError("--find-fix needs --start-date with sleuth bisect images")
            from sleuth.bisect.images import image_ends

            got = image_ends(self, src)
            if isinstance(got, SearchResult):
                return got, None
            gallop = got
        stepped = bool(gallop) and getattr(src, "step_back", False)  # the start moved: new candidates
        if self._known_labels and not stepped:
            self.labels = list(self._known_labels)
        else:
            self.labels = src.resolve()
            self.run_dir.journal.append("candidates", labels=self.labels, source=src.config())
        self.seen_labels.update(dict.fromkeys(self.labels))
        n = len(self.labels)
        if n < 2:
            return _not_found("fewer than two candidates in the range"), None
        self._check_modes()
        self._flip = self.opt.find_fix
        skip = self._skipped(n)
        if self.opt.perf is not None:
            return self._perf_ends(n, skip)
        strat = make_strategy(n, self.opt.flaky, confidence=self.opt.confidence, max_tests=self.opt.max_tests)
        strat.exclude(skip)
        self.run_dir.journal.append("strategy", kind=type(strat).__name__, flaky=self.opt.flaky.describe(),
                                    find_fix=self.opt.find_fix)  # fmt: skip
        if gallop:  # the gallop already found a passing start and a failing end
            self._tell(strat, 0, Outcome.PASS)
            self._tell(strat, n - 1, Outcome.FAIL)
            for e in gallop[:-1]:
                if e.label in self.labels:
                    self._tell(strat, self.labels.index(e.label), e.counted)
            return self._loop(strat), strat
        if not self.opt.check_ends:
            return self._seeded(strat, [(0, Outcome.PASS), (n - 1, Outcome.FAIL)]), strat
        res = self._loop(strat, ends=True)
        return res, (None if self._ends_misbehaved else self.strategy)

    def _check_modes(self) -> None:
        """Combinations the driver cannot search (the CLI rejects them before a run dir exists)."""
        if self.opt.find_fix and self.opt.perf is not None:
            raise UsageError("--find-fix does not combine with performance mode (--metric NAME)")
        if self.opt.find_fix and _is(self.source, "git", "MultiGitSource"):
            raise UsageError("--find-fix works with one repository: give a single --repo PATH")

    def _skipped(self, n: int) -> list[int]:
        """``--skip`` labels as the strategy's indices (unknown labels are ignored; ends refused)."""
        if not self.opt.skip:  # no index of every label (10,000 of them is start-up time)
            return []
        where = {label: i for i, label in enumerate(self.labels)}
        out = []
        for label in self.opt.skip:
            i = where.get(label)
            if i is None:
                continue
            if i in (0, n - 1):
                end = "good" if (i == 0) != self.opt.find_fix else "bad"
                raise UsageError(f"--skip {label}: that is the {end} end, which the search needs to test")
            out.append(self._pos(i))
        return out

    def _seeded(self, strat: Strategy, given: list[tuple[int, Outcome]]) -> SearchResult:
        """Search with the ends' outcomes given (not tested)."""
        self.seen_labels.update(dict.fromkeys(self.labels))
        for i, o in given:
            self._tell(strat, i, o)
        return self._loop(strat)

    def _perf_ends(self, n: int, skip: list[int]) -> tuple[SearchResult, Strategy | None]:
        """Performance mode: the search of :mod:`sleuth.bisect.perfrun` (or the fixed-repeat baseline)."""
        from sleuth.bisect.strategies import Bisection

        assert self.opt.perf is not None
        self._ends = (self.labels[0], self.labels[-1])
        if self.opt.perf.fixed is not None:
            return self._perf_fixed(n, skip)
        from sleuth.bisect.perfrun import PerfRun

        run = PerfRun(self, skip)
        self.perf_state = run.state
        res = run.run()
        self.verdicts.update(run.verdicts())
        if res.status is SearchStatus.NOT_FOUND or res.first_bad is None or res.last_good is None:
            return res, None
        # later stages (merged branches, other repositories) bisect on verdicts from this answer
        strat = Bisection(n)
        self._tell(strat, res.last_good, Outcome.PASS)
        self._tell(strat, res.first_bad, Outcome.FAIL)
        self.strategy = strat
        return res, strat

    def _perf_fixed(self, n: int, skip: list[int]) -> tuple[SearchResult, Strategy | None]:
        """The baseline: every candidate runs ``fixed`` times, the ends are compared once."""
        from sleuth.bisect.seqtest import Decision, compare
        from sleuth.bisect.strategies import Bisection

        spec = self.opt.perf
        assert spec is not None
        assert spec.fixed is not None
        k = spec.fixed
        for ev in self.run_now([(0, self.labels[0])] * k + [(n - 1, self.labels[-1])] * k, "end samples"):
            if ev.value is not None:
                self.samples[ev.label].append(ev.value)
        good, bad = (spec.worse(self.samples[x]) for x in self._ends)
        if not good or not bad:
            return _not_found(f"metric {spec.name!r} was not measured at an end"), None
        c = compare(good, bad, spec.threshold, alpha=0.01)
        if c.decision is not Decision.REGRESSED and self.opt.check_ends:
            return _not_found(f"{c.describe()}: not found regressed in {k} runs of each end"), None
        strat = Bisection(n)
        strat.exclude(skip)
        self.run_dir.journal.append("strategy", kind="Bisection", flaky="perf", fixed=k)
        return self._seeded(strat, [(0, Outcome.PASS), (n - 1, Outcome.FAIL)]), strat

    def _perf_outcome(self, ev: TestEvent) -> Outcome | None:
        """The verdict as PASS/FAIL, SKIP without a value, None while ambiguous."""
        from sleuth.bisect.perf import Verdict, classify

        assert self.opt.perf is not None
        if ev.value is None or not math.isfinite(ev.value):
            return Outcome.SKIP
        self.samples[ev.label].append(ev.value)
        good, bad = (self.samples[x] for x in self._ends)
        v = classify(self.opt.perf, good, bad, self.samples[ev.label], eps=(1 - self.opt.confidence) / 4)
        if v is Verdict.AMBIGUOUS:
            return None
        self.verdicts[ev.label] = v
        return Outcome.FAIL if v.is_bad else Outcome.PASS

    # --- the loop -----------------------------------------------------------------------------------

    def _submit(self, i: int, phase: str) -> int:
        """Submit a test of the strategy's candidate ``i``; its ticket."""
        p = self._pos(i)
        return self.submit(p, self.labels[p], phase)

    def _bad_end_budget(self) -> int:
        """Runs of a bad end that passed before giving up (``--flaky off`` trusts one run).

        The user says it is bad: with a flaky test one pass proves nothing.  The number of runs makes
        a miss unlikely (< 1% for the given p; 0.4% at p = 0.5 under auto).
        """
        mode = self.opt.flaky
        if mode.auto:
            return 1 + BAD_END_RETRIES
        if mode.p is not None and mode.p < 1.0:
            return 1 + min(30, math.ceil(math.log(0.01) / math.log1p(-mode.p)) - 1)
        return 1

    def _loop(self, strat: Strategy, ends: bool = False) -> SearchResult:
        """Propose into free slots, collect, tell, until the strategy is done (see the module docstring).

        With ``ends``, the end checks run here: the bad end at once (and rerun while it passes, up to
        :meth:`_bad_end_budget` runs), the good end beside it or when it matters.  A misbehaving end
        stops everything with ``not_found``.
        """
        jobs = max(1, self.opt.jobs)
        lazy = ends and not self.opt.flaky.auto and self.opt.flaky.p == 1.0 and self.opt.perf is None
        end = _Ends(budget=self._bad_end_budget() if ends else 0, checked=not ends, lazy=lazy)
        held: list[tuple[Query, TestEvent]] = []
        first_wave = True
        while True:
            if ends:
                self._submit_ends(end, strat, jobs, first_wave)
            free = jobs - self.inflight
            # before the bad end's first result, free slots carry probes (their FAILs wait for its
            # signature); after a pass of it, only its reruns until one fails; while two failures
            # disagree (lazy ends), nothing until the bad end says which one is "bad"
            searching = (self.signature is not None or not ends or end.bad_runs == 0) and not end.disputed
            # results that finished together are all told before anything is proposed (``more``)
            if free > 0 and searching and not self.more and not strat.done:
                phase = "last-good check" if getattr(strat, "verifying", False) else "search"
                for q in strat.propose(free):
                    at_end = q.index == len(self.labels) - 1
                    self._alias[self._submit(q.index, "flakiness check" if at_end else phase)] = q
            first_wave = False
            if not self.inflight:
                if ends and self._end_due(strat, end):
                    continue
                break
            self._warm(strat)
            ev = self.next_event()
            role = self._roles.pop(ev.ticket, None)
            if role is not None:
                stop = self._end_result(role, ev, end, strat)
                if stop is not None:
                    self.cancel()
                    self._ends_misbehaved = True
                    return stop
                if end.rebuild:
                    strat = self._rebuild(end)
                if self.signature is not None and held and not end.disputed:
                    for q, old in held:
                        self._observe(strat, q, self._recount(old), end)
                    held.clear()
                continue
            q = self._alias.pop(ev.ticket)
            if lazy and self._lazy_signature(ev, end):
                held.append((q, ev))  # another failure than the first: the bad end decides
                continue
            if ends and not lazy and self.signature is None and ev.outcome is Outcome.FAIL:
                if q.index != len(self.labels) - 1:
                    held.append((q, ev))  # counted once the bad end says which failure is "bad"
                    continue
                self.signature = ev.signature  # a rerun of the bad end failed first
                ev = self._recount(ev)
            self._observe(strat, q, ev, end)
            if self.signature is not None and held and not end.disputed:
                for hq, old in held:
                    self._observe(strat, hq, self._recount(old), end)
                held.clear()
        if end.provisional and self.signature is None:  # lazy ends: no failure disagreed with the first
            self.signature = end.first
        self.strategy = strat
        return strat.result()

    def _warm(self, strat: Strategy) -> None:
        """While tests run: let the source prepare the candidates the next probe can be."""
        warm = getattr(self.source, "warm", None)
        speculate = getattr(strat, "speculate", None)
        if warm is not None and speculate is not None:
            out = tuple(
                self.labels[self._pos(q.index)]
                for q in [*self._alias.values(), *(q for _, q in self._roles.values())]
            )
            warm([self.labels[self._pos(i)] for i in speculate(max(2, min(4, self.opt.jobs)))], out)

    def _observe(self, strat: Strategy, q: Query, ev: TestEvent, end: _Ends) -> None:
        counted = ev.counted
        if self.opt.perf is not None:
            verdict = self._perf_outcome(ev)
            if verdict is None:  # ambiguous: one more sample of the same candidate
                self._alias[self._submit(q.index, "search")] = q
                return
            counted = verdict
        if 0 < q.index < len(self.labels) - 1:  # a probe between the ends (not a rerun of one)
            end.passed |= counted is Outcome.PASS
            end.searched += counted is not Outcome.SKIP
        if end.lazy:
            end.told.append((q, ev))
        strat.observe(q, counted)

    def _recount(self, ev: TestEvent) -> TestEvent:
        """A result that arrived before the signature, counted now that it is known."""
        counted = self.count(ev.outcome, ev.signature)
        if counted is ev.counted:
            return ev
        new = replace(ev, counted=counted)
        self.events[self.events.index(ev)] = new
        return new

    def _submit_ends(self, end: _Ends, strat: Strategy, jobs: int, first_wave: bool) -> None:
        """Start the end checks that are due (see :meth:`_loop`)."""
        if end.lazy:  # only when two failures disagree; the rest waits for the answer (_end_due)
            if end.disputed and not end.bad_out and not end.bad_runs and self.inflight < jobs:
                end.bad_out += 1
                self._end_check(strat, _BAD)
            return
        if first_wave:
            end.bad_out += 1
            self._end_check(strat, _BAD)
            if jobs >= 2:
                end.good_out = True
                self._end_check(strat, _GOOD)
            return
        if self.signature is None and end.bad_runs:  # the bad end passed so far: rerun it
            free = jobs - self.inflight
            while free > 0 and end.bad_runs + end.bad_out < end.budget:
                end.bad_out += 1
                self._end_check(strat, _BAD, "bad end retry")
                free -= 1
        # no probe passed yet: a test that always fails stops here, after three tests
        if end.good is None and not end.good_out and end.searched and not end.passed and self.inflight < jobs:
            end.good_out = True
            self._end_check(strat, _GOOD)

    def _end_due(self, strat: Strategy, end: _Ends) -> bool:
        """Nothing is running: start the end check the answer rests on, if any (True if one started)."""
        n = len(self.labels)
        res = strat.result()
        # lazy ends: the bad end when the answer is the bad end, or no clean answer (skips in the
        # way: an end that cannot be tested says more than "ambiguous")
        if (
            end.lazy
            and not (end.bad_runs or end.bad_out)
            and (res.first_bad == n - 1 or res.status is not SearchStatus.FOUND)
        ):
            end.bad_out += 1
            self._end_check(strat, _BAD)
            return True
        if end.good is None and not end.good_out and _needs_good_end(strat, end):
            end.good_out = True
            self._end_check(strat, _GOOD)
            return True
        return False

    def _lazy_signature(self, ev: TestEvent, end: _Ends) -> bool:
        """Lazy ends: the first failure is the target until the bad end says otherwise.

        True when ``ev`` must wait for the bad end: it fails otherwise than the first failure did
        (or an earlier one did), so which of them is "bad" is the bad end's to say.
        """
        if end.disputed:
            return True
        if ev.outcome is not Outcome.FAIL:
            return False
        if not end.provisional and not end.bad_runs:  # the first failure of the search
            end.first, end.provisional = ev.signature, True
            return False
        if end.provisional and not self.opt.any_failure and not same_failure(ev.signature, end.first):
            end.disputed = True
            return True
        return False

    def _rebuild(self, end: _Ends) -> Strategy:
        """Lazy ends, the bad end disagreed with the first failure: the search again, recounted."""
        from sleuth.bisect.strategies import Bisection

        n = len(self.labels)
        new = Bisection(n)
        new.exclude(self._skipped(n))
        told = [(q, self._recount(ev)) for q, ev in end.told]
        for q, ev in told:
            new.observe(q, ev.counted)
        end.told, end.rebuild = told, False
        for q in [*self._alias.values(), *(q for _, q in self._roles.values())]:
            new.expect(q)
        self.strategy = new
        return new

    def _end_result(
        self, role: tuple[str, Query], ev: TestEvent, end: _Ends, strat: Strategy
    ) -> SearchResult | None:
        """Judge one end check; a result when the ends misbehave (the search stops)."""
        what, q = role
        if what == _GOOD:
            end.good_out = False
            end.good = ev
            if ev.outcome is not Outcome.PASS:
                return self._ends_failed(ev, None)
            strat.observe(q, Outcome.PASS)
            return None
        end.bad_out -= 1
        end.bad_runs += 1
        if end.provisional:  # lazy ends: the bad end's failure is the target from now on
            if ev.outcome is not Outcome.FAIL:
                return self._ends_failed(None, ev)
            self.signature, end.provisional, end.disputed = ev.signature, False, False
            end.rebuild = not self.opt.any_failure and not same_failure(end.first, ev.signature)
            ev = self._recount(ev)
        if ev.outcome is Outcome.FAIL and self.signature is None:
            self.signature = ev.signature
            ev = self._recount(ev)
        if ev.outcome is Outcome.ERROR:
            return self._ends_failed(None, ev)
        if ev.counted is Outcome.PASS and not self.opt.flaky.auto and self.opt.flaky.p == 1.0:
            return self._ends_failed(None, ev)
        strat.observe(q, ev.counted)  # passes of the bad end are evidence of flakiness
        if self.signature is None and not end.bad_out and end.bad_runs >= end.budget:
            return self._ends_failed(None, ev, runs=end.bad_runs)
        if self.signature is None and ev.outcome is not Outcome.PASS:
            return self._ends_failed(None, ev)  # a skip or an untestable bad end
        return None

    # --- after the search: merges, several repositories ----------------------------------------------

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
            strat = self._next_stage(strat)
            res = self._seeded(strat, [(0, Outcome.PASS), (len(self.labels) - 1, Outcome.FAIL)])
        return res

    def _next_stage(self, strat: Strategy) -> Strategy:
        """The strategy of a new stage: flaky (p estimated anew) if the last one was."""
        flaky = _flaky_inner(strat)
        ends = [Outcome.FAIL, *([Outcome.PASS] if flaky else [])]
        return choose_strategy(len(self.labels), self.opt.flaky, ends, confidence=self.opt.confidence,
                               max_tests=self.opt.max_tests)  # fmt: skip

    def _probe(self, label: str, strat: Strategy, phase: str = "blame") -> Outcome:
        """Judge one candidate outside the list: sampled in perf mode, rerun when the test is flaky."""
        if self.opt.perf is not None:
            while True:
                (ev,) = self.run_now([(-1, label)], phase)
                got = self._perf_outcome(ev)
                if got is not None:
                    return got
        runs = 1
        if _flaky_inner(strat):  # a bad one passes all r runs with <= 1 - confidence
            from sleuth.bisect.auto import AutoBisection

            inner: Any = strat.inner if isinstance(strat, AutoBisection) else strat
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
            strat = self._next_stage(strat)
            res = self._seeded(strat, [(0, Outcome.PASS), (len(self.labels) - 1, Outcome.FAIL)])
        return res

    def _ends_failed(self, good: TestEvent | None, bad: TestEvent | None, runs: int = 1) -> SearchResult:
        names = ("the new end", "the old end") if self._flip else ("the good end", "the bad end")
        if good is not None and good.outcome is not Outcome.PASS:
            what, ev, want = names[0], good, "pass"
        else:
            assert bad is not None
            what, ev, want = names[1], bad, "fail"
        if ev.outcome is Outcome.ERROR:
            raise InfrastructureError(f"{what} {ev.label} could not be tested: {ev.reason}")
        times = f" in {runs} runs" if want == "fail" and runs > 1 else ""
        return _not_found(
            f"{what} {ev.label} did not {want}{times} ({ev.outcome.value}: {ev.reason or 'no detail'})"
        )

    def result_in_order(self, res: SearchResult) -> SearchResult:
        """``res`` with the strategy's indices turned into positions in :attr:`labels`.

        Under ``find_fix`` the strategy searched newest first: its last good is the first fixed
        candidate (reported as ``first_bad``: the first candidate showing the change) and its first
        bad the last failing one (``last_good``).
        """
        if not self._flip or res.first_bad is None or res.last_good is None:
            return res
        n = len(self.labels)
        return replace(res, first_bad=n - 1 - res.last_good, last_good=n - 1 - res.first_bad,
                       suspects=tuple(sorted(n - s for s in res.suspects)))  # fmt: skip


class _Ends:
    """Where the end checks of one loop stand."""

    __slots__ = ("bad_out", "bad_runs", "budget", "disputed", "first", "good", "good_out", "lazy", "passed",
                 "provisional", "rebuild", "searched", "told")  # fmt: skip

    def __init__(self, *, budget: int, checked: bool, lazy: bool = False) -> None:
        self.budget = budget
        self.bad_out = 0
        self.bad_runs = 0
        self.good: TestEvent | None = None
        self.good_out = checked
        #: a search probe above the good end passed / how many search outcomes counted
        self.passed = False
        self.searched = 0
        #: ``--flaky off``: an end is tested only when the answer rests on it (see :meth:`Driver._end_due`)
        self.lazy = lazy
        #: lazy: the target is the first failure's signature (``first``), until the bad end gives its own
        self.provisional = False
        self.first: str | None = None
        #: lazy: a failure disagreed with the provisional target; results wait for the bad end
        self.disputed = False
        #: lazy: the bad end's signature is not the provisional one; the search is told again
        self.rebuild = False
        #: lazy: every (query, event) told to the search, for a rebuild
        self.told: list[tuple[Query, TestEvent]] = []


def _needs_good_end(strat: Strategy, end: _Ends) -> bool:
    """The good end must be checked: no probe passed, or the answer rests on it."""
    if not end.passed:
        return True
    res = strat.result()
    return res.last_good == 0


def _not_found(note: str) -> SearchResult:
    return SearchResult(
        status=SearchStatus.NOT_FOUND, first_bad=None, last_good=None, confidence=0.0, note=note
    )
