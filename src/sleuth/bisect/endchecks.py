"""The end checks of the driver's loop: when the good and bad ends are tested, and how they are judged.

An end check is an observation like any other (the strategy is told it), but the loop treats its
result apart: the bad end must fail, and its failure signature defines "bad"; the good end must
pass.  :class:`EndChecks` is where the checks of one :meth:`~sleuth.bisect.driver.Driver._loop`
stand, and decides the next one:

* **checked ends** (``--flaky auto`` or a given P): the bad end in the first wave, rerun while it
  passes up to :func:`bad_end_budget` runs; the good end beside it when ``--jobs`` > 1, and with
  one slot only when no search probe passed (a test that always fails stops after three tests) or
  when the answer's last good is the good end;
* **lazy ends** (``--flaky off``, as ``git bisect run`` trusts its ends): an end is tested only
  when the answer rests on it (the bad end also as soon as a test could not run at all: an ERROR
  everywhere stops after two tests); the first failure of the search is the target until the bad end
  gives its own signature, and when two failures disagree the search waits for the bad end and is
  told again (:meth:`EndChecks.rebuilt`) if the bad end sides with the later one.

A misbehaving end stops the search with ``not_found`` (:func:`ends_failed`).  Separate from the
driver because this is the one part of the loop with its own state and rules; the loop itself
only asks it what to start and hands it the ends' results.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sleuth.bisect.policy import BAD_END_RETRIES, lazy_budget
from sleuth.bisect.strategies import Bisection, Query, SearchResult, SearchStatus, Strategy
from sleuth.errors import InfrastructureError
from sleuth.model import Outcome
from sleuth.oracle import same_failure

if TYPE_CHECKING:
    from sleuth.bisect.driver import Driver
    from sleuth.bisect.policy import FlakyMode
    from sleuth.bisect.trials import TestEvent

__all__ = ["BAD", "GOOD", "EndChecks", "bad_end_budget", "ends_failed", "not_found"]

#: roles of the end checks in the loop
GOOD, BAD = "good", "bad"


def bad_end_budget(mode: FlakyMode) -> int:
    """Runs of a bad end that passed before giving up (``--flaky off`` trusts one run).

    The user says it is bad: with a flaky test one pass proves nothing.  The number of runs makes
    a miss unlikely (< 1% for the given p; 0.4% at p = 0.5 under auto).
    """
    if mode.auto:
        return 1 + BAD_END_RETRIES
    if mode.p is not None and mode.p < 1.0:
        return 1 + min(30, math.ceil(math.log(0.01) / math.log1p(-mode.p)) - 1)
    return 1


def not_found(note: str) -> SearchResult:
    """The answer of a search that cannot go on: no first bad, no confidence, the reason."""
    return SearchResult(
        status=SearchStatus.NOT_FOUND, first_bad=None, last_good=None, confidence=0.0, note=note
    )


def ends_failed(
    good: TestEvent | None, bad: TestEvent | None, *, flipped: bool, runs: int = 1
) -> SearchResult:
    """``not_found`` naming the end that misbehaved (the good end that did not pass, else the bad end).

    ``flipped`` (``find_fix``) names them the new and the old end; an end that could not be tested
    at all is an infrastructure error, not an answer.
    """
    names = ("the new end", "the old end") if flipped else ("the good end", "the bad end")
    if good is not None and good.outcome is not Outcome.PASS:
        what, ev, want = names[0], good, "pass"
    else:
        assert bad is not None
        what, ev, want = names[1], bad, "fail"
    if ev.outcome is Outcome.ERROR:
        raise InfrastructureError(f"{what} {ev.label} could not be tested: {ev.reason}")
    times = f" in {runs} runs" if want == "fail" and runs > 1 else ""
    return not_found(
        f"{what} {ev.label} did not {want}{times} ({ev.outcome.value}: {ev.reason or 'no detail'})"
    )


class EndChecks:
    """Where the end checks of one loop stand, and which to start next (see the module docstring).

    It starts checks through the driver's ``_end_check`` and reads its pool (``inflight``,
    ``signature``, ``labels``, ``opt``); it sets ``signature`` when the bad end gives it, and the
    driver's ``strategy`` when it rebuilds the search.
    """

    __slots__ = ("bad_out", "bad_runs", "budget", "d", "disputed", "errored", "first", "good", "good_out",
                 "lazy", "passed", "provisional", "rebuild", "searched", "told")  # fmt: skip

    def __init__(self, driver: Driver, *, budget: int, checked: bool, lazy: bool = False) -> None:
        self.d = driver
        self.budget = budget
        self.bad_out = 0
        self.bad_runs = 0
        self.good: TestEvent | None = None
        self.good_out = checked
        #: a search probe above the good end passed / how many search outcomes counted
        self.passed = False
        self.searched = 0
        #: ``--flaky off``: an end is tested only when the answer rests on it (see :meth:`start_due`)
        self.lazy = lazy
        #: lazy: the target is the first failure's signature (``first``), until the bad end gives its own
        self.provisional = False
        self.first: str | None = None
        #: lazy: a failure disagreed with the provisional target; results wait for the bad end
        self.disputed = False
        #: lazy: a test could not run at all (ERROR): the bad end is tested at once, so that a test
        #: that cannot run anywhere stops after two tests instead of running every candidate
        self.errored = False
        #: lazy: the bad end's signature is not the provisional one; the search is told again
        self.rebuild = False
        #: lazy: every (query, event) told to the search, for a rebuild
        self.told: list[tuple[Query, TestEvent]] = []

    def submit(self, strat: Strategy, jobs: int, first_wave: bool) -> None:
        """Start the end checks that are due while the search runs."""
        d = self.d
        if self.lazy:  # only when two failures disagree or a test errored; else at the answer (start_due)
            if (
                (self.disputed or self.errored)
                and not self.bad_out
                and not self.bad_runs
                and d.inflight < jobs
            ):
                self.bad_out += 1
                d._end_check(strat, BAD)
            return
        if first_wave:
            self.bad_out += 1
            d._end_check(strat, BAD)
            if jobs >= 2:
                self.good_out = True
                d._end_check(strat, GOOD)
            return
        if d.signature is None and self.bad_runs:  # the bad end passed so far: rerun it
            free = jobs - d.inflight
            while free > 0 and self.bad_runs + self.bad_out < self.budget and self._room(strat):
                self.bad_out += 1
                d._end_check(strat, BAD, "bad end retry")
                free -= 1
        # no probe passed yet: a test that always fails stops here, after three tests
        if (
            self.good is None
            and not self.good_out
            and self.searched
            and not self.passed
            and d.inflight < jobs
        ):
            self.good_out = True
            d._end_check(strat, GOOD)

    def _room(self, strat: Strategy) -> bool:
        """``--max-tests`` (end checks included) allows one more test besides those running."""
        cap = self.d.opt.max_tests
        return cap is None or strat.tests + self.d.inflight < cap

    def start_due(self, strat: Strategy) -> bool:
        """Nothing is running: start the end check the answer rests on, if any (True if one started)."""
        n = len(self.d.labels)
        cap = self.d.opt.max_tests
        if cap is not None and strat.tests >= cap:  # --max-tests holds for the end checks too
            return False
        res = strat.result()
        # lazy ends: the bad end when the answer is the bad end, or no clean answer (skips in the
        # way: an end that cannot be tested says more than "ambiguous")
        if (
            self.lazy
            and not (self.bad_runs or self.bad_out)
            and (res.first_bad == n - 1 or res.status is not SearchStatus.FOUND)
        ):
            self.bad_out += 1
            self.d._end_check(strat, BAD)
            return True
        if self.good is None and not self.good_out and self._needs_good_end(strat):
            self.good_out = True
            self.d._end_check(strat, GOOD)
            return True
        return False

    def _needs_good_end(self, strat: Strategy) -> bool:
        """The good end must be checked: no probe passed, or the answer rests on it."""
        if not self.passed:
            return True
        res = strat.result()
        return res.last_good == 0

    def must_wait(self, ev: TestEvent) -> bool:
        """Lazy ends: the first failure is the target until the bad end says otherwise.

        True when ``ev`` must wait for the bad end: it fails otherwise than the first failure did
        (or an earlier one did), so which of them is "bad" is the bad end's to say.
        """
        if self.disputed:
            return True
        if ev.outcome is Outcome.ERROR:
            self.errored = True
        if ev.outcome is not Outcome.FAIL:
            return False
        if not self.provisional and not self.bad_runs:  # the first failure of the search
            self.first, self.provisional = ev.signature, True
            return False
        if self.provisional and not self.d.opt.any_failure and not same_failure(ev.signature, self.first):
            self.disputed = True
            return True
        return False

    def rebuilt(self) -> Strategy:
        """Lazy ends, the bad end disagreed with the first failure: the search again, recounted."""
        d = self.d
        n = len(d.labels)
        new = Bisection(n, max_tests=lazy_budget(d.opt.max_tests))
        new.exclude(d._skipped(n))
        told = [(q, d._recount(ev)) for q, ev in self.told]
        for q, ev in told:
            new.observe(q, ev.counted)
        self.told, self.rebuild = told, False
        for q in d._in_flight():
            new.expect(q)
        d.strategy = new
        return new

    def judge(self, role: tuple[str, Query], ev: TestEvent, strat: Strategy) -> SearchResult | None:
        """Judge one end check; a result when the ends misbehave (the search stops)."""
        d = self.d
        what, q = role
        if what == GOOD:
            self.good_out = False
            self.good = ev
            if ev.outcome is not Outcome.PASS:
                return ends_failed(ev, None, flipped=d._flip)
            strat.observe(q, Outcome.PASS)
            return None
        self.bad_out -= 1
        self.bad_runs += 1
        if self.provisional:  # lazy ends: the bad end's failure is the target from now on
            if ev.outcome is not Outcome.FAIL:
                return ends_failed(None, ev, flipped=d._flip)
            d.signature, self.provisional, self.disputed = ev.signature, False, False
            self.rebuild = not d.opt.any_failure and not same_failure(self.first, ev.signature)
            ev = d._recount(ev)
        if ev.outcome is Outcome.FAIL and d.signature is None:
            d.signature = ev.signature
            ev = d._recount(ev)
        if ev.outcome is Outcome.ERROR:
            return ends_failed(None, ev, flipped=d._flip)
        if ev.counted is Outcome.PASS and not d.opt.flaky.auto and d.opt.flaky.p == 1.0:
            return ends_failed(None, ev, flipped=d._flip)
        strat.observe(q, ev.counted)  # passes of the bad end are evidence of flakiness
        if (
            d.signature is None
            and not self.bad_out
            and (self.bad_runs >= self.budget or not self._room(strat))
        ):
            return ends_failed(None, ev, flipped=d._flip, runs=self.bad_runs)
        if d.signature is None and ev.outcome is not Outcome.PASS:
            return ends_failed(None, ev, flipped=d._flip)  # a skip or an untestable bad end
        return None
