"""Several axes to a fixpoint: reduce one axis at a time, repeat until no axis moves.

Round one takes the axes in a static order of what usually makes every later trial cheaper (world
size, step windows and counts, shards, then contents and sets).  Later rounds order them by the
trial time their last move saved (time before / time after, measured by the driver), and skip an
axis whose last search ended at a point where nothing else has moved since.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sleuth.reduce.listmin import ListShrink
from sleuth.reduce.numeric import ChoiceShrink, Monotone, NumericShrink, Strategy, WindowShrink

__all__ = ["AxisPlan", "Query", "Reduction"]

#: static first-round order by axis kind (lower first)
PRIOR = {
    "world_size": 0,
    "window": 1,
    "int": 2,
    "choice": 3,
    "file_set": 4,
    "file_lines": 5,
    "env_set": 6,
    "arg_set": 7,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class AxisPlan:
    """What the pure layer needs of one axis: its search kind and initial value."""

    name: str
    #: int | choice | window | world_size | file_lines | file_set | env_set | arg_set
    kind: str
    initial: Any
    floor: int = 0
    monotone: str = "unknown"
    pinned: bool = False

    @property
    def is_list(self) -> bool:
        """A set/line axis: its value is a tuple of kept indices."""
        return self.kind in ("file_lines", "file_set", "env_set", "arg_set")

    def strategy(self, value: Any, *, one_minimal: bool, revisit: bool = False) -> Strategy | None:
        """A fresh search from ``value``; None when nothing smaller exists."""
        if self.is_list:
            return ListShrink(tuple(value), one_minimal=one_minimal) if value else None
        if self.kind == "choice":
            return ChoiceShrink(int(value)) if value > 0 else None
        mono: Monotone = (
            "true" if self.monotone == "true" else "false" if self.monotone == "false" else "unknown"
        )
        if self.kind == "window":
            s, e = value
            return WindowShrink(s, e, mono) if e - s > 1 else None
        if value <= self.floor:
            return None
        return NumericShrink(int(value), self.floor, mono, confirm=revisit)


@dataclass(frozen=True, slots=True)
class Query:
    """One candidate point: ``axis`` set to ``value``, every other axis at the current point."""

    seq: int
    axis: str
    value: Any
    point: Mapping[str, Any]
    round: int


@dataclass(slots=True)
class _Move:
    axis: str
    round: int
    before: Any
    after: Any
    seconds_before: float | None
    seconds_after: float | None


@dataclass(slots=True)
class Reduction:
    """The multi-axis search (ask/tell).

    Invariants: :attr:`point` was observed to reproduce (or is the initial point); only the axis
    being searched differs between a query and :attr:`point`; done when a whole round moved nothing.
    """

    axes: list[AxisPlan]
    one_minimal: bool = False
    point: dict[str, Any] = field(default_factory=dict)
    round: int = 1
    moves: list[_Move] = field(default_factory=list)
    stale: int = 0
    _order: list[str] = field(default_factory=list)
    _pos: int = 0
    _strategy: Strategy | None = None
    _axis: str | None = None
    _moved_this_round: bool = False
    _clean: set[str] = field(default_factory=set)
    _queries: dict[int, tuple[Strategy, str]] = field(default_factory=dict)
    _seq: int = 0
    _seconds: dict[str, list[float]] = field(default_factory=dict)
    _done: bool = False
    _hints: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.point = {a.name: a.initial for a in self.axes}
        self._order = [
            a.name for a in sorted(self.axes, key=lambda a: (PRIOR.get(a.kind, 9), self.axes.index(a)))
        ]

    def _plan(self, name: str) -> AxisPlan:
        return next(a for a in self.axes if a.name == name)

    def _key(self, point: Mapping[str, Any]) -> str:
        return repr(sorted(point.items()))

    def seconds(self, point: Mapping[str, Any]) -> float | None:
        """Median trial time measured at ``point``."""
        got = self._seconds.get(self._key(point))
        return statistics.median(got) if got else None

    def _finish_axis(self) -> None:
        assert self._strategy is not None
        assert self._axis is not None
        new = self._strategy.result()
        old = self.point[self._axis]
        if new != old:
            before = self.seconds(self.point)
            self.point = {**self.point, self._axis: new}
            self.moves.append(_Move(self._axis, self.round, old, new, before, self.seconds(self.point)))
            self._moved_this_round = True
            self._clean = set()
        self._clean.add(self._axis)
        self._strategy, self._axis = None, None

    def _next_axis(self) -> bool:
        """Start the next axis to search; False when the reduction is over."""
        while True:
            if self._pos >= len(self._order):
                if not self._moved_this_round:
                    self._done = True
                    return False
                self.round += 1
                self._pos, self._moved_this_round = 0, False
                self._order = self._reorder()
            name = self._order[self._pos]
            self._pos += 1
            plan = self._plan(name)
            if plan.pinned or name in self._clean:
                continue
            strat = plan.strategy(self.point[name], one_minimal=self.one_minimal, revisit=self.round > 1)
            if strat is None:
                self._clean.add(name)
                continue
            self._strategy, self._axis = strat, name
            if name in self._hints:
                strat.hint(self._hints[name])
            return True

    def _reorder(self) -> list[str]:
        saving: dict[str, float] = {}
        for m in self.moves:
            if m.seconds_before and m.seconds_after:
                saving[m.axis] = m.seconds_before / m.seconds_after
        return sorted(self._order, key=lambda n: -saving.get(n, 1.0))

    @property
    def current_axis(self) -> str | None:
        """The axis being searched."""
        return self._axis

    def _advance(self) -> None:
        """Finish searches that are done and start the next axis, until one has work."""
        while not self._done:
            if self._strategy is None and not self._next_axis():
                return
            assert self._strategy is not None
            if not self._strategy.done:
                return
            self._finish_axis()

    def propose(self, n: int) -> list[Query]:
        """Up to ``n`` points to test now (all on the current axis)."""
        out: list[Query] = []
        while len(out) < n:
            self._advance()
            if self._strategy is None or self._axis is None:
                break
            values = self._strategy.propose(n - len(out))
            if not values:
                break
            for v in values:
                q = Query(self._seq, self._axis, v, {**self.point, self._axis: v}, self.round)
                self._queries[self._seq] = (self._strategy, self._axis)
                self._seq += 1
                out.append(q)
        return out

    def observe(self, query: Query, reproduces: bool, seconds: float | None = None) -> bool:
        """The verdict on ``query``; False when it came too late to matter."""
        if seconds is not None:
            self._seconds.setdefault(self._key(query.point), []).append(seconds)
        strat, _ = self._queries.pop(query.seq, (None, ""))
        if strat is None or strat is not self._strategy:
            self.stale += 1
            return False
        used = strat.observe(query.value, reproduces)
        if not used:
            self.stale += 1
        return used

    def hint(self, query: Query, step: int) -> None:
        """A reproducing trial of ``query`` logged its failure at ``step``."""
        strat, _ = self._queries.get(query.seq, (None, ""))
        if strat is not None and strat is self._strategy:
            strat.hint(step)

    def hint_axis(self, axis: str, step: int) -> None:
        """A failure was logged at ``step``: tell the search of ``axis`` now, or when it starts."""
        self._hints[axis] = step
        if self._axis == axis and self._strategy is not None:
            self._strategy.hint(step)

    def note_seconds(self, point: Mapping[str, Any], seconds: float) -> None:
        """A trial time measured at ``point`` (the baseline, cache hits)."""
        self._seconds.setdefault(self._key(point), []).append(seconds)

    @property
    def done(self) -> bool:
        """A whole round moved nothing (see :meth:`propose`)."""
        self._advance()
        return self._done

    def result(self) -> dict[str, Any]:
        """The smallest point observed to reproduce (the current axis at its best so far)."""
        if self._strategy is not None and self._axis is not None:
            return {**self.point, self._axis: self._strategy.result()}
        return dict(self.point)
