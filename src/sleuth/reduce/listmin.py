"""Pure strategies for a list axis (lines of a file, files of a directory, env vars, arguments).

A candidate is the tuple of kept item indices (of the original list), in order.  Two passes:

* :class:`BlockDeletion`: from the end of the list towards its start, find the largest block just
  before the cursor whose deletion still reproduces (:class:`~sleuth.reduce.search.Gallop`, its
  first probe sized by the gaps between needed items seen so far), delete it, and step over the item
  that stopped it.  ``k`` needed items out of ``n`` cost about ``k log2(n / k)`` tests, close to the
  ``log2 C(n, k)`` lower bound, where ddmin needs ``O(k^2 log n)``.
* :class:`OneMinimal`: try deleting each remaining item alone, repeated until a sweep removes
  nothing (``--one-minimal``); the result is then 1-minimal.

:class:`ListShrink` runs the first, then the second when asked.
"""

from __future__ import annotations

from sleuth.reduce.search import Gallop

__all__ = ["BlockDeletion", "ListShrink", "OneMinimal", "minimize"]

Kept = tuple[int, ...]


class BlockDeletion:
    """Delete blocks from the end towards the start, one galloping search per kept item.

    Invariants: :attr:`current` reproduced (or is the initial list); only a candidate observed to
    reproduce ever becomes current; the cursor only moves towards the start, so the pass ends after
    at most ``len(initial)`` searches.  With a monotone predicate (a superset of a reproducing list
    reproduces) every kept item is needed: deleting it alone was tested, or implied, not to
    reproduce.
    """

    def __init__(self, initial: Kept) -> None:
        self.current: Kept = tuple(initial)
        self._cursor = len(self.current)
        self._gaps: list[int] = []
        self._search: Gallop | None = None
        self._frame: Kept = ()
        self._pending: dict[Kept, int] = {}
        #: counters: searches run, items found needed, stale observations
        self.searches = 0
        self.needed = 0
        self.stale = 0

    def _candidate(self, d: int) -> Kept:
        c, j = self._frame, self._cursor
        return c[: j - d] + c[j:]

    def _start(self) -> Gallop | None:
        if self._search is not None:
            return self._search
        if self._cursor <= 0:
            return None
        self._frame = self.current
        # no gap seen yet: try the whole prefix, then bisect; later: the mean gap so far
        guess = self._cursor if not self._gaps else max(1, round(sum(self._gaps) / len(self._gaps)))
        self._search = Gallop(self._cursor, guess)
        self.searches += 1
        return self._search

    def _settle(self) -> None:
        s = self._search
        if s is None or not s.done:  # probes still out are stale from here on
            return
        d = s.result()
        j = self._cursor
        self.current = self._frame[: j - d] + self._frame[j:]
        self._gaps.append(d)
        self._cursor = j - d - 1  # the item before the deleted block is needed
        if self._cursor >= 0 and d < j:
            self.needed += 1
        self._cursor = max(self._cursor, 0)
        self._search = None
        self._pending.clear()

    def propose(self, n: int) -> list[Kept]:
        """Up to ``n`` candidate lists."""
        out: list[Kept] = []
        while len(out) < n:
            self._settle()
            s = self._start()
            if s is None:
                break
            ds = s.propose(n - len(out))
            if not ds:
                break
            for d in ds:
                cand = self._candidate(d)
                self._pending[cand] = d
                out.append(cand)
        return out

    def observe(self, value: object, reproduces: bool) -> bool:
        """A verdict on one candidate list."""
        assert isinstance(value, tuple)
        d = self._pending.pop(value, None)
        if d is None or self._search is None:
            self.stale += 1
            return False
        used = self._search.observe(d, reproduces)
        if reproduces and used and len(value) < len(self.current):
            self.current = value  # best so far, in case the budget ends the search here
        self._settle()
        return used

    @property
    def done(self) -> bool:
        """The cursor reached the start."""
        self._settle()
        return self._search is None and self._cursor <= 0

    def result(self) -> Kept:
        """The shortest list observed to reproduce."""
        return self.current


class OneMinimal:
    """Delete single items, from the end, until a full sweep deletes nothing.

    Invariant: when done, deleting any one item of :attr:`current` was observed not to reproduce,
    so the result is 1-minimal (exactly, when the oracle is deterministic).
    """

    def __init__(self, initial: Kept) -> None:
        self.current: Kept = tuple(initial)
        self._order = list(reversed(self.current))
        self._failed: set[int] = set()
        self._pending: dict[Kept, int] = {}
        self.sweeps = 1
        self.stale = 0

    def _refill(self) -> None:
        if not self._order and not self._pending:
            remaining = [x for x in reversed(self.current) if x not in self._failed]
            if remaining:
                self._order, self.sweeps = remaining, self.sweeps + 1

    def propose(self, n: int) -> list[Kept]:
        """Up to ``n`` single deletions of the current list."""
        out: list[Kept] = []
        self._refill()
        while self._order and len(out) < n:
            x = self._order.pop(0)
            if x not in self.current:
                continue
            cand = tuple(i for i in self.current if i != x)
            self._pending[cand] = x
            out.append(cand)
        return out

    def observe(self, value: object, reproduces: bool) -> bool:
        """A verdict on one single deletion."""
        assert isinstance(value, tuple)
        x = self._pending.pop(value, None)
        if x is None or x not in self.current or not set(value) <= set(self.current):
            self.stale += 1
            return False
        if reproduces:
            self.current = tuple(i for i in self.current if i != x)
            # every earlier failure was against a longer list: it may succeed now
            self._failed.clear()
            self._pending.clear()
        else:
            self._failed.add(x)
        return True

    @property
    def done(self) -> bool:
        """Every item of the current list failed to go alone."""
        self._refill()
        return not self._order and not self._pending

    def result(self) -> Kept:
        """The current list."""
        return self.current


class ListShrink:
    """:class:`BlockDeletion` passes while one deletes something, then :class:`OneMinimal` when
    ``one_minimal``.

    A second block pass costs about one test per kept item; it finds items that were needed only
    while items deleted later were still there (a predicate that is not monotone: ``C=1`` breaks
    the failure unless ``D=1`` is set too).

    Invariant: :meth:`result` was observed to reproduce (or is the initial list).
    """

    def __init__(self, initial: Kept, *, one_minimal: bool = False) -> None:
        self.block = BlockDeletion(initial)
        self.sweep: OneMinimal | None = None
        self.one_minimal = one_minimal
        self.passes = 1
        self._start = tuple(initial)

    def _pass(self) -> BlockDeletion | OneMinimal:
        if self.sweep is not None:
            return self.sweep
        while self.block.done and len(self.block.result()) < len(self._start):
            self._start = self.block.result()
            self.block = BlockDeletion(self._start)
            self.passes += 1
        if self.one_minimal and self.block.done:
            self.sweep = OneMinimal(self.block.result())
            return self.sweep
        return self.block

    def propose(self, n: int) -> list[Kept]:
        """Candidates of the running pass."""
        return self._pass().propose(n)

    def observe(self, value: object, reproduces: bool) -> bool:
        """A verdict; stale when it belongs to a finished pass."""
        p = self._pass()
        return p.observe(value, reproduces)

    def hint(self, step: int) -> None:
        """Lists take no hints."""

    @property
    def done(self) -> bool:
        """Every pass finished."""
        return self._pass().done

    def result(self) -> Kept:
        """The shortest list observed to reproduce."""
        return self._pass().result()


def minimize(items: list[object], reproduces: object, *, one_minimal: bool = False) -> list[object]:
    """Run :class:`ListShrink` with an in-process predicate over kept items (tests, docs)."""
    assert callable(reproduces)
    s = ListShrink(tuple(range(len(items))), one_minimal=one_minimal)
    while not s.done:
        for cand in s.propose(1):
            s.observe(cand, bool(reproduces([items[i] for i in cand])))
    return [items[i] for i in s.result()]
