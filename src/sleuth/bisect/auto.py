"""``--flaky auto`` after the bad end never passed: bisection that checks its own boundary.

A bad candidate that passes by chance misleads plain bisection without ever contradicting it:
every later probe lies above it.  But when the answer is wrong, the last good is always a bad
candidate (the first bad found fails, so it is at or after the culprit; if it is after, its
neighbour below is bad too).  So when the bisection is done, :class:`AutoBisection` reruns the
last good :data:`VERIFY_RUNS` times.  If a rerun fails, or any outcome contradicts the bisection,
the test is flaky: every observation so far is replayed into the Bayesian search
(:class:`~sleuth.bisect.flaky.FlakyBisection` with ``p`` estimated), which takes over, probes
still out included.  A deterministic test pays :data:`VERIFY_RUNS` extra runs for that check.
"""

from __future__ import annotations

from collections.abc import Callable

from sleuth.bisect.flaky import FlakyBisection
from sleuth.bisect.strategies import Bisection, Query, SearchResult, Strategy
from sleuth.model import Outcome

__all__ = ["VERIFY_RUNS", "AutoBisection"]

#: reruns of the last good before a deterministic answer is trusted
VERIFY_RUNS = 2


class AutoBisection:
    """Deterministic bisection plus a boundary check; turns into the Bayesian search when flaky."""

    def __init__(
        self, n: int, make_flaky: Callable[[], FlakyBisection], verify_runs: int = VERIFY_RUNS
    ) -> None:
        self.n = n
        self.inner: Bisection | FlakyBisection = Bisection(n)
        self._make_flaky = make_flaky
        self.verify_runs = verify_runs
        self.log: list[tuple[int, Outcome]] = []
        self._verify: dict[int, Query] = {}
        self._verified: dict[int, int] = {}
        self._seq = 0

    @property
    def flaky(self) -> bool:
        """True once the Bayesian search took over."""
        return isinstance(self.inner, FlakyBisection)

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
        return {**self.inner.pending, **self._verify}

    def _to_verify(self) -> int | None:
        inner = self.inner
        if not isinstance(inner, Bisection) or not inner.done or inner.contradictions:
            return None
        if inner.result().first_bad != inner.lo + 1 or inner.lo == 0:
            return None  # ambiguous (skips) or the checked good end: nothing to verify
        return inner.lo if self._verified.get(inner.lo, 0) < self.verify_runs else None

    @property
    def done(self) -> bool:
        """The inner search is done and, if deterministic, its last good was rerun."""
        if self._verify or not self.inner.done:
            return False
        return self._to_verify() is None

    def propose(self, k: int) -> list[Query]:
        """The inner search's probes, then the reruns of the last good."""
        if not self.inner.done:
            out = self.inner.propose(k)
            self._seq = max([self._seq, *(q.seq + 1 for q in out)])
            return out
        lo = self._to_verify()
        out = []
        while (
            lo is not None
            and len(out) < k
            and self._verified.get(lo, 0) + len(self._verify) < self.verify_runs
        ):
            q = Query(self._seq, lo)
            self._seq += 1
            self._verify[q.seq] = q
            out.append(q)
        return out

    def observe(self, query: Query, outcome: Outcome) -> None:
        """Record one outcome; a failing rerun or a contradiction hands over to the Bayesian search."""
        self._seq = max(self._seq, query.seq + 1)
        self.log.append((query.index, outcome))
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
        for j, (i, o) in enumerate(self.log):
            new.observe(Query(j, i), o)
        new._seq = max(new._seq, self._seq)
        for q in [*old.pending.values(), *self._verify.values()]:
            new.pending[q.seq] = q
        self._verify.clear()
        self.inner = new

    def result(self) -> SearchResult:
        """The inner search's answer."""
        return self.inner.result()


def _check(s: AutoBisection) -> Strategy:
    return s  # AutoBisection satisfies the Strategy protocol (checked by mypy)
