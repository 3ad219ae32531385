"""Pure strategies for one numeric axis: integers, ordered choices, and a step window.

Every strategy has the same ask/tell shape: ``propose(n)`` hands out up to ``n`` candidate values,
``observe(value, reproduces)`` takes a verdict (in any order), ``done`` and ``result()`` (the best
value known to reproduce, also while the search runs).  The initial value is given as reproducing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from sleuth.reduce.search import Gallop

__all__ = ["ChoiceShrink", "NumericShrink", "Strategy", "WindowShrink", "shrink"]

Monotone = Literal["true", "false", "unknown"]


class Strategy(Protocol):
    """What the fixpoint asks of an axis strategy."""

    @property
    def done(self) -> bool:
        """Nothing left to try."""
        ...

    def propose(self, n: int) -> Sequence[object]:
        """Up to ``n`` values to test now."""
        ...

    def observe(self, value: object, reproduces: bool) -> bool:
        """A verdict; False when it no longer mattered (speculation overtaken)."""
        ...

    def result(self) -> object:
        """The best value known to reproduce."""
        ...

    def hint(self, step: int) -> None:
        """The failure was logged at ``step`` (``step_regex``); may jump the queue."""
        ...


class NumericShrink:
    """Smallest integer in ``[floor, initial]`` that reproduces.

    Order: the floor; then exponential probing up from the largest value known not to reproduce
    (floor + 1, 2, 4 ... steps) and bisection for the boundary below :attr:`best`; a ``hint``
    (a failure logged at step 137 makes 138 and 137 the next probes) jumps the queue.  Unless
    ``monotone == "true"``, a few untested values below the boundary are tried (3 when unknown,
    up to 12 when false); a reproducing one restarts the search below it.

    Invariants: :attr:`best` was observed to reproduce (or is the initial value); every value is
    proposed at most once; when done, ``best == floor`` or ``best - 1`` was observed not to
    reproduce (so with a monotone predicate the result is the exact boundary).
    """

    def __init__(
        self, initial: int, floor: int, monotone: Monotone = "unknown", *, confirm: bool = False
    ) -> None:
        self.best = initial
        self.floor = min(floor, initial)
        self.monotone = monotone
        self.tested: dict[int, bool] = {initial: True}
        self._pending: set[int] = set()
        self._priority: list[int] = [initial - 1] if confirm and initial > self.floor else []
        self._gallop: Gallop | None = None
        self._gbase = 0
        #: confirm mode (a later fixpoint round): when ``initial - 1`` does not reproduce, stop there
        self._confirm = confirm
        self._initial = initial
        self._checked: set[int] = {initial} if confirm else set()
        #: counters, for the trace and the tests
        self.proposed = 0
        self.stale = 0

    def _fresh(self, v: int) -> bool:
        return self.floor <= v < self.best and v not in self.tested and v not in self._pending

    def _floor_due(self) -> bool:
        if self._confirm and self.best == self._initial:  # the boundary may hold: check it first
            return False
        return self._fresh(self.floor)

    def _boundary(self) -> bool:
        return self.best == self.floor or self.tested.get(self.best - 1) is False

    def _check_list(self) -> list[int]:
        if self.monotone == "true" or self.best in self._checked:
            return []
        b, f = self.best, self.floor
        cands = [b - 2, (f + b) // 2, f + (b - f) // 4]
        if self.monotone == "false":
            cands += [b - 3, b - 4, *(b // k for k in (3, 4, 8))]
            cands += [1 << i for i in range(b.bit_length()) if (1 << i) < b]
            cands += [(1 << i) + 1 for i in range(b.bit_length()) if (1 << i) + 1 < b]
        fresh = sorted({c for c in cands if self._fresh(c)})
        return fresh[: 12 if self.monotone == "false" else 3]

    def _frame(self) -> Gallop:
        g = self._gallop
        if g is not None and self._gbase + g.hi == self.best:
            return g
        below = [v for v, r in self.tested.items() if not r and v < self.best]
        # no value below the best tested yet: speculate that the floor (proposed first) fails
        self._gbase = max(below) if below else self.floor
        self._gallop = Gallop(self.best - self._gbase - 1)
        return self._gallop

    def propose(self, n: int) -> list[int]:
        """Up to ``n`` values: hints, the floor, the boundary search, then checks below it."""
        out: list[int] = []
        self._priority = [v for v in self._priority if self._fresh(v)]
        while self._priority and len(out) < n:
            out.append(self._priority.pop(0))
        if len(out) < n and self._floor_due():
            out.append(self.floor)
        self._pending.update(out)
        if not self._boundary() and not self._priority and not (self._confirm and self.best == self._initial):
            g = self._frame()
            while len(out) < n:
                ks = g.propose(1)
                if not ks:
                    break
                v = self._gbase + ks[0]
                if v in self.tested:  # known from a hint or a check: no need to run it
                    g.observe(ks[0], not self.tested[v])
                    continue
                if v not in self._pending:
                    out.append(v)
                    self._pending.add(v)
        elif len(out) < n and not self._pending:
            checks = self._check_list()
            self._checked.add(self.best)
            out += checks[: n - len(out)]
            self._priority += checks[n - len(out) :]
            self._pending.update(out)
        self.proposed += len(out)
        return out

    def observe(self, value: object, reproduces: bool) -> bool:
        """Record a verdict on ``value``."""
        assert isinstance(value, int)
        self._pending.discard(value)
        self.tested[value] = reproduces
        g = self._gallop
        if g is not None and self._gbase < value < self._gbase + g.hi:
            g.observe(value - self._gbase, not reproduces)
        used = value < self.best
        if reproduces and used:
            self.best = value
        if not used:
            self.stale += 1
        return used

    def hint(self, step: int) -> None:
        """The failure happened at ``step``: ``step + 1`` steps may be enough."""
        for v in (step + 1, step):
            if self._fresh(v) and v not in self._priority:
                self._priority.append(v)

    @property
    def done(self) -> bool:
        """No pending probe and nothing left to propose."""
        if self._pending or any(self._fresh(v) for v in self._priority) or self._floor_due():
            return False
        return self._boundary() and not self._check_list()

    def result(self) -> int:
        """The smallest value observed to reproduce."""
        return self.best


class ChoiceShrink:
    """Earliest value of an ordered list that reproduces: indices ``0 .. initial-1`` in order.

    Invariants: :attr:`best` reproduced (or is the initial index); the result is the smallest index
    that reproduced once every smaller one was rejected.
    """

    def __init__(self, initial: int) -> None:
        self.best = initial
        self._next = 0
        self._pending: set[int] = set()
        self.rejected: set[int] = set()
        self.proposed = 0

    def propose(self, n: int) -> list[int]:
        """The next untested indices, in order."""
        out: list[int] = []
        while len(out) < n and self._next < self.best:
            out.append(self._next)
            self._next += 1
        self._pending.update(out)
        self.proposed += len(out)
        return out

    def observe(self, value: object, reproduces: bool) -> bool:
        """Record a verdict on index ``value``."""
        assert isinstance(value, int)
        self._pending.discard(value)
        if value >= self.best:
            return False
        if reproduces:
            self.best = value
            self._pending = {p for p in self._pending if p < value}
        else:
            self.rejected.add(value)
        return True

    def hint(self, step: int) -> None:
        """Choices take no hints."""

    @property
    def done(self) -> bool:
        """Every index below the best was tried."""
        return not self._pending and self._next >= self.best

    def result(self) -> int:
        """The earliest index observed to reproduce."""
        return self.best


class WindowShrink:
    """A step window ``(start, end)``: first the smallest ``end``, then the largest ``start``.

    Both phases are :class:`NumericShrink` searches (the start as ``end - 1 - start``, so the
    window narrows as the value falls); a hint at step ``s`` proposes ``end = s + 1``.
    Invariant: :meth:`result` is a window observed to reproduce (or the initial one).
    """

    def __init__(self, start: int, end: int, monotone: Monotone = "unknown") -> None:
        self.start, self.end = start, end
        self._start0 = start
        self._phase = 0
        self._inner: NumericShrink = NumericShrink(end, start + 1, monotone)
        self._monotone = monotone

    def _to_window(self, v: int) -> tuple[int, int]:
        return (self.start, v) if self._phase == 0 else (self.end - 1 - v, self.end)

    def _advance(self) -> None:
        if self._phase == 0 and self._inner.done:
            self.end = self._inner.result()
            self._phase = 1
            self._inner = NumericShrink(self.end - 1 - self.start, 0, self._monotone)

    def propose(self, n: int) -> list[tuple[int, int]]:
        """Windows to test now."""
        self._advance()
        return [self._to_window(v) for v in self._inner.propose(n)]

    def observe(self, value: object, reproduces: bool) -> bool:
        """Record a verdict on a window."""
        assert isinstance(value, tuple)
        s, e = value
        if self._phase == 0 and s == self.start:
            return self._inner.observe(e, reproduces)
        if self._phase == 1 and e == self.end:
            used = self._inner.observe(self.end - 1 - s, reproduces)
            self.start = self.end - 1 - self._inner.result()
            return used
        return False

    def hint(self, step: int) -> None:
        """A failure at ``step`` needs the window to reach ``step + 1``."""
        if self._phase == 0:
            self._inner.hint(step)

    @property
    def done(self) -> bool:
        """Both phases finished."""
        self._advance()
        return self._phase == 1 and self._inner.done

    def result(self) -> tuple[int, int]:
        """The narrowest window observed to reproduce."""
        if self._phase == 0:
            return (self.start, self._inner.result())
        return (self.end - 1 - self._inner.result(), self.end)


def shrink(initial: int, reproduces: object, floor: int = 0, monotone: Monotone = "unknown") -> int:
    """Run :class:`NumericShrink` with an in-process predicate, one probe at a time (tests, docs)."""
    assert callable(reproduces)
    s = NumericShrink(initial, floor, monotone)
    while not s.done:
        for v in s.propose(1):
            s.observe(v, bool(reproduces(v)))
    return s.result()
