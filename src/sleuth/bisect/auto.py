"""``--flaky auto``: bisection while the test looks deterministic, the Bayesian search once it does not.

A bad candidate that passes by chance misleads plain bisection without ever contradicting it:
every later probe lies above it.  But when the answer is wrong, the last good is always a bad
candidate (the first bad found fails, so it is at or after the culprit; if it is after, its
neighbour below is bad too).  So :class:`AutoBisection` bisects, reruns the last good
:data:`VERIFY_RUNS` times, and then trusts the answer only if the flaky model, given every outcome
so far, puts at least ``confidence`` on it (:func:`sleuth.bisect.posterior.block_confidence`, with p
pessimistic as in the Bayesian search).  That is also the confidence it reports: never 1, since a
deterministic-looking record is what a flaky test shows too, now and then.

While the record stays deterministic-looking and the model is not yet confident, it goes on checking
(up to :data:`CHECK_CAP` checks): each check is a rerun of the last good (a PASS weighs against "the
answer is too late") or of the bad end (a FAIL is evidence that p is high), whichever would raise the
model's confidence more if the outcome is the deterministic one.  These are the probes the Bayesian
search would make here too, and the stop is the same; doing them here keeps a deterministic test
free of numpy (a tenth of a second) and of the search's probe choice.

If a rerun fails, the bad end passes, any outcome contradicts the bisection, or the checks run out,
every observation so far is replayed into the Bayesian search
(:class:`~sleuth.bisect.flaky.FlakyBisection`, made by ``make_flaky``), which takes over, probes
still out included.  The check itself runs nothing and needs no numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from sleuth.bisect.flaky import report_confidence
from sleuth.bisect.posterior import Model, block_confidence
from sleuth.bisect.strategies import Bisection, Query, SearchResult, Strategy
from sleuth.model import Outcome

if TYPE_CHECKING:
    from sleuth.bisect.flaky import FlakyBisection

__all__ = ["CHECK_CAP", "VERIFY_RUNS", "AutoBisection"]

#: reruns of the last good before the model is asked whether to trust a deterministic answer
VERIFY_RUNS = 1
#: reruns of the bad end before bisecting (evidence about p; a pass turns the search Bayesian)
RERUNS = 3
#: checks (reruns of the last good or the bad end) after the bisection before the Bayesian search
#: takes over (a deterministic test at N = 1000 needs about 8)
CHECK_CAP = 24


class AutoBisection:
    """Deterministic bisection plus a model check; turns into the Bayesian search when flaky."""

    def __init__(
        self,
        n: int,
        make_flaky: Callable[[], FlakyBisection],
        *,
        model: Model,
        confidence: float = 0.95,
        verify_runs: int | None = None,
        reruns: int | None = None,
        max_tests: int | None = None,
    ) -> None:
        self.n = n
        #: the test budget (``--max-tests``), the bisection's tests included
        self.max_tests = max_tests
        self.inner: Bisection | FlakyBisection = Bisection(n)
        self._make_flaky = make_flaky
        self.model = model
        self.confidence = confidence
        self.verify_runs = VERIFY_RUNS if verify_runs is None else verify_runs
        self.reruns = RERUNS if reruns is None else reruns
        self._extra: dict[int, Query] = {}
        self.log: list[tuple[int, Outcome]] = []
        self._excluded: list[int] = []
        self._verify: dict[int, Query] = {}
        self._verified: dict[int, int] = {}
        #: checks made after the bisection (reruns of the last good beyond ``verify_runs``, of the end)
        self._checks = 0
        self._seq = 0
        #: the model's confidence in the bisection's answer, once it was trusted
        self.trusted: float | None = None

    @property
    def flaky(self) -> bool:
        """True once the Bayesian search took over."""
        return not isinstance(self.inner, Bisection)

    @property
    def verifying(self) -> bool:
        """True while the probes handed out are reruns of the last good (not bisection steps)."""
        return not self.flaky and self.inner.done

    @property
    def tests(self) -> int:
        """How many outcomes were observed."""
        return len(self.log)

    @property
    def pending(self) -> dict[int, Query]:
        """Queries handed out and not observed yet."""
        return {**self.inner.pending, **self._verify, **self._extra}

    def expect(self, query: Query) -> None:
        """A test the driver runs on its own (an end check) is in flight."""
        self.inner.expect(query)

    def _last_good(self) -> int | None:
        """The bisection's last good when it is done and its answer can be checked by rerunning it."""
        inner = self.inner
        if not isinstance(inner, Bisection) or not inner.done or inner.contradictions:
            return None
        if inner.result().first_bad != inner.lo + 1 or inner.lo == 0:
            return None  # ambiguous (skips) or the checked good end: nothing to verify
        return inner.lo

    def _to_verify(self) -> int | None:
        lo = self._last_good()
        return lo if lo is not None and self._verified.get(lo, 0) < self.verify_runs else None

    def _confidence(self, extra: Sequence[tuple[int, Outcome]] = ()) -> float:
        """The model's confidence in the bisection's answer, with ``extra`` outcomes added."""
        inner = self.inner
        assert isinstance(inner, Bisection)
        counts = self.counts(self.log + list(extra))
        return block_confidence(self.n, counts, inner.lo, inner.hi, self.model)

    def _next_check(self, lo: int) -> int:
        """The check that raises the confidence more if it comes out deterministic: rerun the last
        good (expecting a PASS) or the bad end (expecting a FAIL); the checks still out count as done."""
        out = self._hoped()
        again = self._confidence([*out, (lo, Outcome.PASS)])
        end = self._confidence([*out, (self.n - 1, Outcome.FAIL)])
        return lo if again >= end else self.n - 1

    def counts(self, log: list[tuple[int, Outcome]] | None = None) -> dict[int, tuple[int, int]]:
        """``{candidate: (fails, passes)}`` of every outcome so far, or of ``log`` (a good end's fail
        is no evidence)."""
        out: dict[int, tuple[int, int]] = {}
        for i, o in self.log if log is None else log:
            if o is Outcome.PASS or (o is Outcome.FAIL and i > 0):
                f, p = out.get(i, (0, 0))
                out[i] = (f + (o is Outcome.FAIL), p + (o is Outcome.PASS))
        return out

    def _settle(self) -> None:
        """Bisection and reruns finished: trust the answer, or hand over to the Bayesian search."""
        inner = self.inner
        if not isinstance(inner, Bisection) or self.trusted is not None or self._verify:
            return
        # the budget spent before the answer was trusted: the Bayesian search says what it is worth
        room = self._room()
        spent = room is not None and room <= 0 and not self.pending
        if not inner.done or self._to_verify() is not None or self._extra:
            if spent:
                self._switch()
            return
        if inner.contradictions:
            self._switch()
            return
        conf = self._confidence()
        if conf >= self.confidence:
            self.trusted = conf
        elif spent or self._last_good() is None or self._checks >= CHECK_CAP:
            self._switch()

    def _room(self) -> int | None:
        """Tests the budget still allows, counting those out (None: no budget)."""
        return None if self.max_tests is None else self.max_tests - len(self.log) - len(self.pending)

    @property
    def done(self) -> bool:
        """The Bayesian search is done, or the bisection's answer was checked and trusted."""
        self._settle()
        if self.flaky:
            return self.inner.done
        return self.trusted is not None

    def exclude(self, indices: list[int]) -> None:
        """Candidates never to test (``--skip``)."""
        self._excluded += indices
        self.inner.exclude(indices)

    def propose(self, k: int) -> list[Query]:
        """Reruns of the bad end, the inner search's probes, then the reruns of the last good."""
        self._settle()
        out: list[Query] = []
        if not self.flaky:
            room = self._room()
            k = k if room is None else min(k, room)
            end = self.n - 1
            runs = sum(i == end for i, o in self.log if o is not Outcome.SKIP)
            runs += sum(q.index == end for q in self.pending.values())
            while len(out) < k and runs < 1 + self.reruns:
                q = Query(self._seq, end)
                self._seq += 1
                self._extra[q.seq] = q
                out.append(q)
                runs += 1
            k -= len(out)
        if self.flaky or not self.inner.done:
            more = self.inner.propose(k) if k > 0 else []
            self._seq = max([self._seq, *(q.seq + 1 for q in more)])
            return out + more
        lo = self._last_good()
        if lo is None:
            return out
        while len(out) < k and self._verified.get(lo, 0) + len(self._verify) < self.verify_runs:
            out.append(self._check(lo, lo))
        if self._verified.get(lo, 0) + len(self._verify) < self.verify_runs:
            return out
        # not confident yet: more checks, as long as the ones still out (taken as deterministic)
        # would not already be enough
        while len(out) < k and self.trusted is None and self._checks < CHECK_CAP:
            if self._confidence(self._hoped()) >= self.confidence:
                break
            out.append(self._check(self._next_check(lo), lo))
            self._checks += 1
        return out

    def _hoped(self) -> list[tuple[int, Outcome]]:
        """The checks still out, with the outcome a deterministic test gives them."""
        lo = self._last_good()
        return [(q.index, Outcome.PASS if q.index == lo else Outcome.FAIL) for q in self.pending.values()]

    def _check(self, index: int, lo: int) -> Query:
        """Hand out a rerun of the last good ``lo`` or of the bad end."""
        q = Query(self._seq, index)
        self._seq += 1
        (self._verify if index == lo else self._extra)[q.seq] = q
        return q

    def speculate(self, limit: int = 2) -> list[int]:
        """While bisecting: the candidates the next probe can be (see :meth:`Bisection.speculate`)."""
        inner = self.inner
        if not isinstance(inner, Bisection) or inner.done:
            return []
        return inner.speculate(limit)

    def observe(self, query: Query, outcome: Outcome) -> None:
        """Record one outcome; a failing rerun or a contradiction hands over to the Bayesian search."""
        self._seq = max(self._seq, query.seq + 1)
        self.log.append((query.index, outcome))
        self._extra.pop(query.seq, None)
        if query.seq in self._verify:
            del self._verify[query.seq]
            self._verified[query.index] = self._verified.get(query.index, 0) + 1
            if outcome is Outcome.FAIL:
                self._switch()
            return
        self.inner.observe(query, outcome)
        if isinstance(self.inner, Bisection) and self.inner.contradictions:
            self._switch()

    def _switch(self) -> None:
        old = self.inner
        new = self._make_flaky()
        new.exclude(self._excluded)
        for j, (i, o) in enumerate(self.log):
            new.observe(Query(j, i), o)
        new._seq = max(new._seq, self._seq)
        for q in [*old.pending.values(), *self._verify.values(), *self._extra.values()]:
            new.pending[q.seq] = q
        self._verify.clear()
        self._extra.clear()
        self.inner = new

    def result(self) -> SearchResult:
        """The Bayesian search's answer, or the bisection's with the model's confidence."""
        res = self.inner.result()
        if self.flaky or self.trusted is None:
            return res
        return replace(res, confidence=report_confidence(self.trusted))


def _check(s: AutoBisection) -> Strategy:
    return s  # AutoBisection satisfies the Strategy protocol (checked by mypy)
