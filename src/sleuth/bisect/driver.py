"""The bisection driver: the strategy loop over a source's candidates, and what comes after it.

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
strategy treats them as untestable from the start.  A bad end whose reruns keep being skipped
(:data:`END_SKIPS` in a row, :data:`END_OTHERS` when they fail with another signature) stops the
search with ``not_found``: the flaky searches rerun it until runs pass or fail, and a skip is neither.

The driver's parts, each in its own module and each given the driver:

* :mod:`sleuth.bisect.opening` -- :func:`~sleuth.bisect.opening.open_search`, how a search opens:
  its candidates (after the gallop of images), its mode, its strategy and what it is told first;
* :mod:`sleuth.bisect.endchecks` -- :class:`~sleuth.bisect.endchecks.EndChecks`, when the loop
  tests the ends and how it judges them (checked and lazy ends);
* :mod:`sleuth.bisect.perfmode` -- performance mode (``Options.perf``): the first search is
  :class:`~sleuth.bisect.perfrun.PerfRun` (or the fixed-repeat baseline), and a later run is
  judged against the ends' samples;
* :mod:`sleuth.bisect.stages` -- after a git search: merged branches, and with several
  repositories the blame probe that settles a FOUND stage or starts the next one.

They use the pool and the driver's helpers (``_loop``, ``_end_check``, ``_tell``, ``_seeded``,
``_recount``, ``_skipped``, ``_in_flight``) as its own methods did; the state stays here, where the
report reads it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sleuth.bisect.candidates import Source
from sleuth.bisect.endchecks import GOOD, EndChecks, bad_end_budget, ends_failed, not_found
from sleuth.bisect.opening import is_source, open_search
from sleuth.bisect.strategies import Query, SearchResult, Strategy
from sleuth.bisect.trials import Options, TestEvent, TestPool
from sleuth.errors import UsageError
from sleuth.journal import RunDir
from sleuth.model import Outcome, TrialSpec
from sleuth.oracle import Oracle

if TYPE_CHECKING:
    from sleuth.backends import Backend
    from sleuth.bisect.perf import PerfState, Verdict

__all__ = ["Driver", "Options", "TestEvent"]

#: reruns of the bad end skipped in a row that stop the search (a bad end that cannot be rerun)
END_SKIPS = 3
#: ... when some of them failed with another signature than the first run's (0.5^8 < 0.4%)
END_OTHERS = 8


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
        #: the strategy of the loop under way and the candidates it searches (see :meth:`live`)
        self._live: tuple[Strategy, list[str]] | None = None
        #: performance mode: metric samples and the verdict per label
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.verdicts: dict[str, Verdict] = {}
        self.perf_state: PerfState | None = None
        #: performance mode: the first stage's ends, which every later run is classified against
        self.perf_ends: tuple[str, str] = ("", "")
        #: performance mode's first search, while it runs: its bracket so far (an interrupted summary's)
        self.perf_so_far: Callable[[], SearchResult] | None = None
        #: multi-repo: ``{"culprit_repo", "first_bad", "last_good"}`` (composite labels) once settled
        self.blame: dict[str, str] | None = None
        #: the strategy sees candidates newest first (``find_fix``)
        self._flip = False
        self._told = -1
        self._ends_misbehaved = False
        #: reruns of the bad end in a row that were skipped, of them other failures (:meth:`_bad_end_rerun`)
        self._end_skips = self._end_others = 0
        #: ``bisect images --source``: the commits stage's summary (:mod:`sleuth.bisect.chain`)
        self.chain: dict[str, Any] | None = None
        #: told a line when a new stage begins (the CLI prints it)
        self.on_stage: Callable[[str], None] | None = None

    # --- candidates in the strategy's order ------------------------------------------------------

    def _pos(self, i: int) -> int:
        """The position in :attr:`labels` of the strategy's candidate ``i``."""
        return len(self.labels) - 1 - i if self._flip else i

    def live(self) -> Strategy | None:
        """The strategy of the search under way (an interrupted run's summary names its bracket);
        None before the first loop, and once a new stage (a merged branch, the next repository) has
        its candidates but no loop yet: the last one's indices are not theirs."""
        if self._live is None or self._live[1] is not self.labels:
            return None
        return self._live[0]

    def _tell(self, strat: Strategy, index: int, outcome: Outcome) -> None:
        """An observation the strategy did not ask for (a given end)."""
        strat.observe(Query(self._told, index), outcome)
        self._told -= 1

    def _end_check(self, strat: Strategy, role: str, phase: str = "end check") -> None:
        """Start a test of an end; the strategy knows it is in flight."""
        q = Query(self._told, 0 if role == GOOD else len(self.labels) - 1)
        self._told -= 1
        strat.expect(q)
        self._roles[self._submit(q.index, phase)] = (role, q)

    def run(self) -> tuple[SearchResult, Strategy | None]:
        """Search; return the result and the strategy (None when the ends did not behave)."""
        try:
            res, strat = open_search(self)
            res = self.result_in_order(res)
            if strat is not None and self.source.kind == "images" and getattr(self.source, "sources", None):
                from sleuth.bisect.chain import continue_chain  # bisect images --source: the commits stage

                self.chain = continue_chain(self, res)
            if strat is not None and is_source(self.source, "multigit", "MultiGitSource"):
                from sleuth.bisect.stages import settle_blame

                res = settle_blame(self, self.source, res, strat)  # type: ignore[arg-type]
            elif (strat is not None and is_source(self.source, "git", "GitSource") and not self.opt.find_fix
                  and not self.source.first_parent):  # type: ignore[attr-defined]  # fmt: skip
                from sleuth.bisect.stages import descend_merges

                res = descend_merges(self, self.source, res, strat)  # type: ignore[arg-type]
            return res, self.strategy if strat is not None else None
        finally:
            self.shutdown()

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

    # --- the loop -----------------------------------------------------------------------------------

    def _submit(self, i: int, phase: str) -> int:
        """Submit a test of the strategy's candidate ``i``; its ticket."""
        p = self._pos(i)
        return self.submit(p, self.labels[p], phase)

    def _loop(self, strat: Strategy, ends: bool = False) -> SearchResult:
        """Propose into free slots, collect, tell, until the strategy is done (see the module docstring).

        With ``ends``, the end checks run here: the bad end at once (and rerun while it passes, up to
        :func:`~sleuth.bisect.endchecks.bad_end_budget` runs), the good end beside it or when it
        matters (:class:`~sleuth.bisect.endchecks.EndChecks`).  A misbehaving end stops everything
        with ``not_found``.
        """
        jobs = max(1, self.opt.jobs)
        lazy = ends and not self.opt.flaky.auto and self.opt.flaky.p == 1.0 and self.opt.perf is None
        end = EndChecks(
            self, budget=bad_end_budget(self.opt.flaky) if ends else 0, checked=not ends, lazy=lazy
        )
        held: list[tuple[Query, TestEvent]] = []
        first_wave = True
        self._live = (strat, self.labels)
        self._end_skips = self._end_others = 0  # a new stage (merged branch, next repository): its own end
        while True:
            if ends:
                end.submit(strat, jobs, first_wave)
            free = jobs - self.inflight
            # before the bad end's first result, free slots carry probes (their FAILs wait for its
            # signature); after a pass of it, only its reruns until one fails; while two failures
            # disagree (lazy ends), nothing until the bad end says which one is "bad"; after an ERROR
            # (lazy ends), nothing until the bad end says whether the test runs at all (two probes
            # that errored together left a slot that took a third)
            searching = (
                (self.signature is not None or not ends or end.bad_runs == 0)
                and not end.disputed
                and not (end.errored and end.bad_out)  # lazy: the bad end says first whether any test runs
            )
            # results that finished together are all told before anything is proposed (``more``)
            if free > 0 and searching and not self.more and not strat.done:
                phase = "last-good check" if getattr(strat, "verifying", False) else "search"
                for q in strat.propose(free):
                    at_end = q.index == len(self.labels) - 1
                    self._alias[self._submit(q.index, "flakiness check" if at_end else phase)] = q
            first_wave = False
            if not self.inflight:
                if ends and end.start_due(strat):
                    continue
                break
            self._warm(strat)
            ev = self.next_event()
            role = self._roles.pop(ev.ticket, None)
            if role is not None:
                stop = end.judge(role, ev, strat)
                if stop is not None:
                    self.cancel()
                    self._ends_misbehaved = True
                    return stop
                if end.rebuild:
                    strat = end.rebuilt()
                    self._live = (strat, self.labels)
                if self.signature is not None and held and not end.disputed:
                    for q, old in held:
                        self._observe(strat, q, self._recount(old), end)
                    held.clear()
                continue
            q = self._alias.pop(ev.ticket)
            if q.index == len(self.labels) - 1:  # a rerun of the bad end the search asked for
                stop = self._bad_end_rerun(ev)
                if stop is not None:
                    self.cancel()
                    self._ends_misbehaved = True
                    return stop
            if lazy and end.must_wait(ev):
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

    def _bad_end_rerun(self, ev: TestEvent) -> SearchResult | None:
        """``not_found`` once the bad end's reruns in a row counted as skips: :data:`END_SKIPS` that did
        not run the test, or :data:`END_OTHERS` that failed otherwise than its first run.

        The flaky searches rerun the bad end until enough runs passed or failed, and a skip is neither:
        a bad end that cannot run twice (a ``--build`` that fails in a checkout it already built, a
        test that exits 125, or crashes on the state its first run left, the second time) would be
        rerun for ever.  Another failure can be the test's second way to fail, so more of them are taken.
        """
        if ev.counted is not Outcome.SKIP:
            self._end_skips = self._end_others = 0
            return None
        self._end_skips += 1
        self._end_others += ev.outcome is Outcome.FAIL
        if self._end_skips < (END_OTHERS if self._end_others else END_SKIPS):
            return None
        if ev.outcome is Outcome.ERROR:  # it could not run at all: an infrastructure error, as at first
            return self._ends_failed(None, ev)
        what = "the old end" if self._flip else "the bad end"
        why = (ev.signature if ev.outcome is Outcome.FAIL else None) or ev.reason or "no detail"
        how = "failed otherwise than its first run" if self._end_others else "were skipped"
        return not_found(
            f"{what} {ev.label} could not be rerun: its last {self._end_skips} reruns {how} ({why}); the "
            "flaky search needs reruns of it: make the test (and --build) repeatable in one checkout, "
            "or give --flaky off"
        )

    def _warm(self, strat: Strategy) -> None:
        """While tests run: let the source prepare the candidates the next probe can be."""
        warm = getattr(self.source, "warm", None)
        speculate = getattr(strat, "speculate", None)
        if warm is not None and speculate is not None:
            out = tuple(self.labels[self._pos(q.index)] for q in self._in_flight())
            warm([self.labels[self._pos(i)] for i in speculate(max(2, min(4, self.opt.jobs)))], out)

    def _in_flight(self) -> list[Query]:
        """The queries of the tests running now: the strategy's, then the end checks'."""
        return [*self._alias.values(), *(q for _, q in self._roles.values())]

    def _observe(self, strat: Strategy, q: Query, ev: TestEvent, end: EndChecks) -> None:
        counted = ev.counted
        if self.opt.perf is not None:
            from sleuth.bisect.perfmode import perf_outcome

            verdict = perf_outcome(self, ev)
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

    def _ends_failed(self, good: TestEvent | None, bad: TestEvent | None, runs: int = 1) -> SearchResult:
        """:func:`~sleuth.bisect.endchecks.ends_failed` in this search's words (the gallop of images)."""
        return ends_failed(good, bad, flipped=self._flip, runs=runs)

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
