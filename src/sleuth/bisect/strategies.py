"""Pure bisection strategies with the ask/tell interface of DESIGN §3.

Candidates are indices ``0 .. n-1``, oldest first.  Index 0 is the known-good end and ``n-1``
the known-bad end (the driver checks both before searching).  The hypothesis "f" means
"candidate f is the first bad one"; f ranges over ``1 .. n-1``.

A strategy never runs anything: :meth:`propose` hands out up to ``k`` queries for ``k`` free
slots, :meth:`observe` takes one outcome (in any order, while other queries are still out),
:attr:`done` says when to stop and :meth:`result` says what was found.  The same observations in
the same order always give the same proposals, which is what makes resume-by-replay exact.

Invariants of :class:`Bisection` (deterministic tests):

* ``lo < hi`` always; ``lo`` is the newest PASS, ``hi`` the oldest FAIL;
* a SKIP candidate is never proposed again, so untestable clusters cannot stall the search;
* when it is done, every candidate strictly between ``lo`` and ``hi`` is SKIP, so the first bad
  is exactly one of ``(lo, hi]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from itertools import pairwise
from typing import Protocol

from sleuth.model import Outcome

__all__ = [
    "Bisection",
    "Query",
    "SearchResult",
    "SearchStatus",
    "Strategy",
    "spread",
]


@dataclass(frozen=True, slots=True, order=True)
class Query:
    """One test to run: candidate ``index``; ``seq`` numbers the queries a strategy handed out."""

    seq: int
    index: int


class SearchStatus(Enum):
    """How a search ended (the ``status`` field of ``summary.json``)."""

    FOUND = "found"
    #: only skipped candidates separate the last good from the first bad
    AMBIGUOUS = "ambiguous"
    #: the ends did not behave (good fails / bad passes): nothing to find in this range
    NOT_FOUND = "not_found"
    #: contradicting results, or the test budget ran out before the requested confidence
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchResult:
    """What a strategy concluded."""

    status: SearchStatus
    first_bad: int | None
    last_good: int | None
    #: "the first bad is one of": ``first_bad`` alone when found, the skipped block plus it otherwise
    suspects: tuple[int, ...] = ()
    confidence: float = 1.0
    note: str = ""


class Strategy(Protocol):
    """The ask/tell contract every search algorithm follows."""

    @property
    def done(self) -> bool:
        """True when no more queries are needed."""
        ...

    @property
    def tests(self) -> int:
        """How many outcomes were observed."""
        ...

    def propose(self, k: int) -> list[Query]:
        """Up to ``k`` queries to run now (fewer, or none, when nothing useful is left)."""
        ...

    def exclude(self, indices: list[int]) -> None:
        """Candidates never to test (``--skip``): untestable from the start, no test counted."""
        ...

    def expect(self, query: Query) -> None:
        """A test the strategy did not propose (an end check) is in flight; :meth:`observe` ends it."""
        ...

    def observe(self, query: Query, outcome: Outcome) -> None:
        """Record the outcome of a query handed out before (or replayed from a journal)."""
        ...

    def result(self) -> SearchResult:
        """The answer so far."""
        ...


def spread(lo: int, hi: int, pending: Iterable[int], k: int) -> list[int]:
    """``k`` target points in ``(lo, hi)`` that best split the gaps left by ``pending`` probes.

    Points are allotted to gaps one at a time, each to the gap whose largest piece is largest,
    then placed evenly inside their gap: from scratch that is the ``j/(k+1)`` grid, and with
    probes still out a new probe goes to the middle of the widest gap.
    """
    bounds = sorted({lo, hi, *(p for p in pending if lo < p < hi)})
    gaps = list(pairwise(bounds))
    alloc = [0] * len(gaps)
    for _ in range(k):
        best = max(range(len(gaps)), key=lambda g: ((gaps[g][1] - gaps[g][0]) / (alloc[g] + 1), -g))
        if gaps[best][1] - gaps[best][0] < 2 + alloc[best]:
            break
        alloc[best] += 1
    points: list[int] = []
    for (a, b), m in zip(gaps, alloc, strict=True):
        points.extend(a + round(j * (b - a) / (m + 1)) for j in range(1, m + 1))
    return points


@dataclass(slots=True)
class Bisection:
    """Deterministic bisection (a bad candidate always fails), with skips and parallel probes."""

    n: int
    lo: int = 0
    hi: int = -1
    skipped: set[int] = field(default_factory=set)
    tested: dict[int, Outcome] = field(default_factory=dict)
    pending: dict[int, Query] = field(default_factory=dict)
    contradictions: list[tuple[int, Outcome]] = field(default_factory=list)
    #: the test budget (``--max-tests``), the ends' checks included; ``None``: unbounded
    max_tests: int | None = None
    _seq: int = 0
    _tests: int = 0

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError("a bisection needs at least two candidates (a good and a bad end)")
        if self.hi < 0:
            self.hi = self.n - 1

    @property
    def tests(self) -> int:
        """How many outcomes were observed."""
        return self._tests

    def _open(self, i: int, busy: set[int]) -> bool:
        return self.lo < i < self.hi and i not in self.skipped and i not in self.tested and i not in busy

    def _nearest_open(self, target: int, lo: int, hi: int, busy: set[int]) -> int | None:
        for d in range(max(target - lo, hi - target) + 1):
            for i in (target - d, target + d):
                if lo < i < hi and self._open(i, busy):
                    return i
        return None

    @property
    def done(self) -> bool:
        """True when nothing between the last good and the first bad is left to test (or no budget left)."""
        if self.pending:
            return False
        return self._room() == 0 or self._finished()

    def _finished(self) -> bool:
        return not any(self._open(i, set()) for i in range(self.lo + 1, self.hi))

    def _room(self) -> int | None:
        """Tests the budget still allows (those in flight counted), ``None`` without one."""
        if self.max_tests is None:
            return None
        return max(0, self.max_tests - self._tests - len(self.pending))

    def exclude(self, indices: list[int]) -> None:
        """Candidates never to test (``--skip``): skipped from the start, no test counted."""
        self.skipped.update(i for i in indices if 0 < i < self.n - 1)

    def expect(self, query: Query) -> None:
        """A test the strategy did not propose is in flight (it counts as busy)."""
        self.pending[query.seq] = query

    def propose(self, k: int) -> list[Query]:
        """Evenly spaced probes over the unknown range, each snapped to the nearest testable candidate."""
        room = self._room()
        if room is not None:
            k = min(k, room)
        busy = {q.index for q in self.pending.values()}
        out: list[Query] = []
        # skipped candidates split the range like probes still out: the next probe goes to the
        # middle of the widest stretch, away from untestable clusters
        walls = busy | {i for i in self.skipped if self.lo < i < self.hi}
        bounds = sorted({self.lo, self.hi, *(b for b in walls if self.lo < b < self.hi)})
        for target in spread(self.lo, self.hi, walls, k):
            gap = next((a, b) for a, b in pairwise(bounds) if a < target < b)
            i = self._nearest_open(target, *gap, busy)
            if i is None:
                i = self._nearest_open(target, self.lo, self.hi, busy)
            if i is None:
                continue
            busy.add(i)
            q = Query(self._seq, i)
            self._seq += 1
            self.pending[q.seq] = q
            out.append(q)
        return out

    def speculate(self, limit: int = 2) -> list[int]:
        """Candidates the next probe can be, whatever the tests in flight say (to prepare them early).

        Each test in flight, oldest first, is supposed to pass and then to fail, and the probe this
        search would propose next is noted; at most ``limit`` distinct candidates.
        """
        out: dict[int, None] = {}
        for q in sorted(self.pending.values()):
            for outcome in (Outcome.PASS, Outcome.FAIL):
                twin = Bisection(self.n, self.lo, self.hi, set(self.skipped), dict(self.tested))
                twin.pending = dict(self.pending)
                twin.observe(q, outcome)
                out.update(dict.fromkeys(p.index for p in twin.propose(1)))
        return list(out)[:limit]

    def observe(self, query: Query, outcome: Outcome) -> None:
        """Narrow the range with a PASS or FAIL; remember a SKIP (ERROR counts as SKIP)."""
        self.pending.pop(query.seq, None)
        self._seq = max(self._seq, query.seq + 1)
        self._tests += 1
        i = query.index
        if outcome in (Outcome.SKIP, Outcome.ERROR):
            if i not in self.tested:
                self.skipped.add(i)
            return
        self.tested.setdefault(i, outcome)
        if outcome is Outcome.PASS:
            if i >= self.hi:
                self.contradictions.append((i, outcome))
            else:
                self.lo = max(self.lo, i)
        elif i <= self.lo:
            self.contradictions.append((i, outcome))
        else:
            self.hi = min(self.hi, i)

    def result(self) -> SearchResult:
        """FOUND when ``lo`` and ``hi`` touch, AMBIGUOUS when only skips separate them."""
        suspects = tuple(range(self.lo + 1, self.hi + 1))
        why = None
        if self.contradictions:
            i, o = self.contradictions[0]
            why = f"candidate {i} gave {o.value} against its neighbours: the test looks flaky"
        elif self.pending or not self._finished():
            spent = not self.pending and self._room() == 0
            why = (
                f"the test budget (--max-tests) ran out with {len(suspects)} candidates left: "
                "the first bad is one of them"
                if spent
                else "the search was stopped before it finished"
            )
        if why is not None:
            return SearchResult(status=SearchStatus.INCONCLUSIVE, first_bad=self.hi, last_good=self.lo,
                                suspects=suspects, confidence=0.0, note=why)  # fmt: skip
        status = SearchStatus.FOUND if len(suspects) == 1 else SearchStatus.AMBIGUOUS
        return SearchResult(
            status=status, first_bad=self.hi, last_good=self.lo, suspects=suspects, confidence=1.0
        )
