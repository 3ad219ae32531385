"""Change points in a benchmark history: deterministic, calibrated, robust to autocorrelated runners.

``detect(series)`` finds the indices where the level of a series moves, each with the medians of
the segments on either side and a p-value.  Method (details and the null in :mod:`.cpnull`):

1. **Test of one segment.**  A rank (Mann-Whitney) statistic maximised over the splits that leave
   ``min_segment`` points on each side, divided by an AR(1) long-run-variance factor read from the
   residuals after the best split, and calibrated by the permutation distribution of that same
   studentised maximum.  Ranks make it indifferent to heavy tails, skew, spikes and two-mode runners;
   the studentisation keeps slow-wandering (autocorrelated) runners from reading as steps; the
   permutation null pays for picking the best split.  Seeded: same input, same answer.
2. **Candidates.**  Binary segmentation (test the whole series, split where significant, test both
   sides again) finds long-range changes; the same test on sliding windows of ``4, 8 and 16 x
   min_segment`` points (stride a quarter window) finds short segments and up-then-down bumps that
   a single split of a long series cannot see.
3. **Pruning.**  Each candidate is re-tested on the segment between its neighbours, moved to that
   segment's best split, and the weakest is dropped while its p-value exceeds ``alpha``, until the
   set is stable.  So every reported change point is significant at ``alpha`` between its
   neighbours, and a burst shorter than ``min_segment`` points is never a segment of its own.

:class:`Incremental` keeps the state between CI runs: each new point re-runs the detection on the
points since the last change point (at most ``window``), so it costs O(window), not O(history).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sleuth.gate.cpnull import midranks, p_value, studentised_max
from sleuth.gate.robust import median

__all__ = ["ChangePoint", "Incremental", "Settings", "detect", "segment_test"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Knobs of the detector; the defaults keep false change points <= 1 per 1000 null points."""

    #: significance of each change point, on the segment between its neighbours
    alpha: float = 0.01
    #: the fewest points on each side of a change point; shorter bursts (spikes) never split
    min_segment: int = 5
    #: incremental mode: the most recent points searched for a new change point
    window: int = 200

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha}")
        if self.min_segment < 2:
            raise ValueError(f"min_segment must be at least 2, got {self.min_segment}")
        if self.window < 4 * self.min_segment:
            raise ValueError(f"window must be at least 4 * min_segment = {4 * self.min_segment}")


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """A change point: ``index`` is the first point of the new segment."""

    index: int
    before: float
    after: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"index", "before", "after", "p_value"}``."""
        return {"index": self.index, "before": self.before, "after": self.after, "p_value": self.p_value}


def segment_test(values: Sequence[float], settings: Settings = Settings()) -> tuple[int, float]:
    """The best split of one segment and its calibrated p-value: ``(k, p)``, k = left size.

    ``(0, 1.0)`` when the segment is shorter than ``2 * min_segment`` or constant.
    """
    m = settings.min_segment
    if len(values) < 2 * m:
        return (0, 1.0)
    ranks = midranks(values)
    stat, kstar = studentised_max(ranks[None, :], m)
    if stat[0] <= 0:
        return (0, 1.0)
    return (int(kstar[0]), p_value(float(stat[0]), ranks.tolist(), m))


def _binary_segmentation(values: Sequence[float], settings: Settings) -> list[int]:
    found: list[int] = []
    stack = [(0, len(values))]
    while stack:
        a, b = stack.pop()
        k, p = segment_test(values[a:b], settings)
        if k and p <= settings.alpha:
            found.append(a + k)
            stack.extend([(a, a + k), (a + k, b)])
    return found


def _windows(values: Sequence[float], settings: Settings) -> list[int]:
    found: list[int] = []
    n = len(values)
    for width in (4 * settings.min_segment, 8 * settings.min_segment, 16 * settings.min_segment):
        if 2 * width > n:  # a window must leave room for others: short series are tested whole
            break
        stride = max(1, width // 4)
        starts = list(range(0, n - width + 1, stride))
        if starts[-1] != n - width:
            starts.append(n - width)  # the newest points are always looked at
        for a in starts:
            k, p = segment_test(values[a : a + width], settings)
            if k and p <= settings.alpha:
                found.append(a + k)
    return found


def _prune(values: Sequence[float], candidates: list[int], settings: Settings) -> list[tuple[int, float]]:
    """Re-test each candidate between its neighbours; drop the weakest until all are significant."""
    cps = sorted(set(candidates))
    for _ in range(10 * len(cps) + 10):  # each round drops or moves a point; the bound is a safety net
        if not cps:
            return []
        edges = [0, *cps, len(values)]
        tested = []
        for i in range(1, len(edges) - 1):
            a, b = edges[i - 1], edges[i + 1]
            k, p = segment_test(values[a:b], settings)
            tested.append((p, a + k if k else edges[i]))
        worst = max(range(len(tested)), key=lambda i: (tested[i][0], i))
        if tested[worst][0] > settings.alpha:
            del cps[worst]
            continue
        moved = sorted({idx for _, idx in tested})
        if moved == cps:
            return [(idx, p) for p, idx in tested]
        cps = moved
    return [(idx, p) for p, idx in tested]


def _describe(values: Sequence[float], splits: list[tuple[int, float]]) -> list[ChangePoint]:
    edges = [0, *(i for i, _ in splits), len(values)]
    return [
        ChangePoint(
            index=i, before=median(values[edges[j] : i]), after=median(values[i : edges[j + 2]]), p_value=p
        )
        for j, (i, p) in enumerate(splits)
    ]


def _finite(series: Sequence[float]) -> tuple[list[float], list[int]]:
    """The finite values and their positions in ``series`` (NaN/inf points are skipped, not read)."""
    values, where = [], []
    for i, v in enumerate(series):
        if math.isfinite(v):
            values.append(float(v))
            where.append(i)
    return values, where


def _detect_values(values: list[float], settings: Settings) -> list[ChangePoint]:
    if len(values) < 2 * settings.min_segment:
        return []
    candidates = _binary_segmentation(values, settings) + _windows(values, settings)
    return _describe(values, _prune(values, candidates, settings))


def detect(series: Sequence[float], settings: Settings = Settings()) -> list[ChangePoint]:
    """Every change point of ``series`` (offline), in order; indices refer to ``series``."""
    values, where = _finite(series)
    return [replace(cp, index=where[cp.index]) for cp in _detect_values(values, settings)]


@dataclass(slots=True)
class Incremental:
    """Change points of a series that grows by a few points per CI run.

    :meth:`extend` appends points and returns the change points they confirm.  Each call searches
    only the points since the last change point (at most ``settings.window``), so it costs
    O(window) however long the history is; a change point once reported stays reported.
    :meth:`to_dict` / :meth:`from_dict` persist the state between runs.
    """

    settings: Settings = field(default_factory=Settings)
    #: the searched tail (finite values) and their positions in the caller's series
    values: list[float] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    change_points: list[ChangePoint] = field(default_factory=list)
    seen: int = 0

    def extend(self, points: Sequence[float]) -> list[ChangePoint]:
        """Append ``points``; return the change points confirmed by them (indices in the whole series)."""
        new, where = _finite(points)
        self.values.extend(new)
        self.positions.extend(self.seen + i for i in where)
        self.seen += len(points)
        if len(self.values) > self.settings.window:  # O(window): older points are never searched again
            cut = len(self.values) - self.settings.window
            del self.values[:cut]
            del self.positions[:cut]
        found = _detect_values(self.values, self.settings)
        if not found:
            return []
        # report only the newest change point: earlier ones inside the tail were either reported
        # before, or lie where the history is settled and an offline run is the place to look
        cp = found[-1]
        last = self.change_points[-1].index if self.change_points else -1
        if self.positions[cp.index] <= last:
            return []
        cp = replace(cp, index=self.positions[cp.index])
        self.change_points.append(cp)
        start = self.positions.index(cp.index)
        del self.values[:start]
        del self.positions[:start]
        return [cp]

    @classmethod
    def start(
        cls, series: Sequence[float], settings: Settings = Settings()
    ) -> tuple[Incremental, list[ChangePoint]]:
        """A detector that has seen ``series`` (one offline pass), and the change points it holds."""
        found = detect(series, settings)
        det = cls(settings=settings, change_points=list(found), seen=len(series))
        values, where = _finite(series)
        start = where.index(found[-1].index) if found else 0
        start = max(start, len(values) - settings.window)
        det.values, det.positions = values[start:], where[start:]
        return det, found

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the state (settings included, so a resumed detector answers the same)."""
        s = self.settings
        return {
            "settings": {"alpha": s.alpha, "min_segment": s.min_segment, "window": s.window},
            "values": list(self.values),
            "positions": list(self.positions),
            "seen": self.seen,
            "change_points": [cp.to_dict() for cp in self.change_points],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Incremental:
        """Rebuild a detector from :meth:`to_dict` output (KeyError/TypeError/ValueError when malformed)."""
        values = [float(v) for v in d["values"]]
        positions = [int(i) for i in d["positions"]]
        if len(values) != len(positions):
            raise ValueError("values and positions differ in length")
        return cls(
            settings=Settings(**d["settings"]),
            values=values,
            positions=positions,
            seen=int(d["seen"]),
            change_points=[ChangePoint(**cp) for cp in d["change_points"]],
        )
