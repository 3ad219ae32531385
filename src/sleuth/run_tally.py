"""Compact per-trial data of ``sleuth run``: what the summary needs, not the trial records.

A run of 100,000 trials must not hold 100,000 records (issue 9: memory independent of the trial
count).  :class:`Tally` keeps, per counted trial, one outcome byte and one wall time; per metric,
a bounded pool of its values (:class:`_Pool`: every value up to ``SAMPLE_MAX``, then a seeded
sample of them, with exact counts, min and max); per signature, a count and the first trial that
showed it.  The records themselves stay on disk (journal, ``result.json``) and are streamed into
``summary.json``.

Results are keyed by trial number, never by arrival order; a trial is counted once (the journal
reader keeps the last record of a trial that an older sleuth journaled twice).
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Mapping
from typing import Any

from sleuth import stats
from sleuth.model import Outcome
from sleuth.oracle import same_failure

__all__ = ["Tally", "basis", "describe", "exit_code_of"]

_CODES = {o.value: i + 1 for i, o in enumerate(Outcome)}  # 0: not done
_OUTCOMES = {i: o for o, i in _CODES.items()}
#: distinct signatures kept by name; beyond this, failures are counted under one "other" entry
MAX_SIGNATURES = 200
OTHER = "(other signatures)"


def _floats(value: Any) -> list[float]:
    """Numbers of one metric value as journaled: a number, "nan"/"inf", or a list of them."""
    items = value if isinstance(value, list) else [value]
    out: list[float] = []
    for x in items:
        if isinstance(x, bool):
            continue
        if isinstance(x, int | float):
            out.append(float(x))
        elif isinstance(x, str):
            try:
                out.append(float(x))
            except ValueError:
                continue
    return out


#: the most values a metric's median and p90 rest on: beyond this many finite values (a series metric
#: over many trials), a seeded sample of this many of them (:class:`_Pool`)
SAMPLE_MAX = 65536
#: the sample's seed: the same trials give the same sample, whatever order they finished in
SAMPLE_SEED = 0x5EED_0F_5A4D_9E37


_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(n: int) -> int:
    """splitmix64 of trial number ``n`` and ``SAMPLE_SEED``: where the trial's keys start."""
    z = ((n ^ SAMPLE_SEED) + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _key(ident: int) -> int:
    """The sample key of value ``ident & 0xFFFFFFFF`` of trial ``ident >> 32`` (see :class:`_Pool`)."""
    return (_mix(ident >> 32) + (ident & 0xFFFFFFFF) * _GOLDEN) & _MASK


class _Pool:
    """The values of one metric over a run's trials, in memory bounded by ``SAMPLE_MAX``.

    Counts, the smallest and the largest value are exact.  The values themselves are a bottom-k
    sample: value ``i`` of trial ``n`` has the 64-bit key ``_mix(n) + i * golden ratio`` (a seeded
    hash of the trial, then a Weyl sequence: a trial's values spread evenly over the keys), and the
    pool keeps the ``SAMPLE_MAX`` values of smallest (key, trial, place): a sample that depends on
    the trials, not on the order they arrived in.  Up to ``2 * SAMPLE_MAX`` values nothing is
    hashed (a run of scalar metrics pays one id per value); then the pool shrinks to the
    ``SAMPLE_MAX`` smallest and admits only values whose key is not above the largest kept.  Pure
    Python: numpy's import would cost more memory than the pool.
    """

    __slots__ = ("bound", "hi", "ids", "lo", "nonfinite", "pooled", "series_n", "values")

    def __init__(self) -> None:
        self.values = array("d")  # finite values held
        self.ids = array("q")  # trial number << 32 | place in the trial's list, one per value
        self.pooled = 0  # finite values ever added
        self.nonfinite = 0
        self.lo, self.hi = math.inf, -math.inf
        self.series_n: int | None = None  # values in the trials' whole series (None: no series)
        self.bound: int | None = None  # after a shrink: the largest key kept

    def add(self, n: int, value: Any, series_n: Any) -> None:
        """Pool the journaled metric ``value`` of trial ``n``; ``series_n``: its whole series' length."""
        numbers = _floats(value)
        finite = [x for x in numbers if math.isfinite(x)]
        self.nonfinite += len(numbers) - len(finite)
        if finite:
            self.pooled += len(finite)
            low, high = min(finite), max(finite)
            self.lo, self.hi = min(self.lo, low), max(self.hi, high)
            base, bound = n << 32, self.bound
            if bound is None:
                self.values.extend(finite)
                self.ids.extend(range(base, base + len(finite)))
            else:
                start = _mix(n)
                for i in [i for i in range(len(finite)) if (start + i * _GOLDEN) & _MASK <= bound]:
                    self.values.append(finite[i])
                    self.ids.append(base | i)
        if isinstance(series_n, int) and not isinstance(series_n, bool):
            self.series_n = (self.series_n or 0) + series_n
        if len(self.values) >= 2 * SAMPLE_MAX:
            self._shrink()

    def _shrink(self) -> None:
        """Keep the ``SAMPLE_MAX`` values of smallest (key, id)."""
        ids = self.ids
        order = sorted(range(len(ids)), key=lambda j: (_key(ids[j]) << 64) | ids[j])[:SAMPLE_MAX]
        self.bound = _key(ids[order[-1]])
        order.sort()
        self.values = array("d", (self.values[j] for j in order))
        self.ids = array("q", (ids[j] for j in order))

    def summary(self) -> dict[str, Any]:
        """``describe`` of the sample, with the exact min and max and what the sample was drawn from."""
        if len(self.values) > SAMPLE_MAX:
            self._shrink()
        m = describe(array("d", self.values))
        if m["n"]:
            m["min"], m["max"] = self.lo, self.hi
        if self.pooled > m["n"]:  # median and p90 of a sample: say of how many values
            m["pooled"] = self.pooled
        if self.series_n is not None:
            m["series_n"] = self.series_n
        if self.nonfinite:  # NaN/inf values are counted, not averaged
            m["nonfinite"] = self.nonfinite
        return m


#: values sorted at a time by :func:`describe`; the sorted runs are then merged lazily
_CHUNK = 8192


def describe(values: array[float]) -> dict[str, Any]:
    """n, median, p90, min, max of ``values`` (sorted in place), without a list of float objects.

    ``stats.percentile`` sorts a list: 32 bytes per value, the largest allocation of a 100,000-trial
    run's summary.  Here sorted runs of ``_CHUNK`` values are merged lazily to the order statistics
    needed (same linear interpolation as ``stats.percentile``).
    """
    n = len(values)
    if n == 0:
        return {"median": None, "p90": None, "min": None, "max": None, "n": 0}
    for i in range(0, n, _CHUNK):
        values[i : i + _CHUNK] = array("d", sorted(values[i : i + _CHUNK]))
    wanted: dict[int, float] = {}
    points = [(n - 1) * q / 100.0 for q in (50, 90)]
    for pos in points:
        wanted[math.floor(pos)] = math.nan
        wanted[min(math.floor(pos) + 1, n - 1)] = math.nan
    view = memoryview(values)
    try:
        runs = [view[i : i + _CHUNK] for i in range(0, n, _CHUNK)]
        last = max(wanted)
        for k, x in enumerate(heapq.merge(*runs)):
            if k in wanted:
                wanted[k] = x
            if k >= last:
                break
        lo = min(r[0] for r in runs)
        hi = max(r[-1] for r in runs)
        del runs
    finally:
        view.release()

    def at(pos: float) -> float:
        a, b = wanted[math.floor(pos)], wanted[min(math.floor(pos) + 1, n - 1)]
        return a + (b - a) * (pos - math.floor(pos))

    return {"median": at(points[0]), "p90": at(points[1]), "min": lo, "max": hi, "n": n}


class Tally:
    """Counts, wall times, metric values and signatures of the trials of one run, by trial number."""

    def __init__(self, planned: int) -> None:
        self.planned = planned
        self._outcome = bytearray(planned)  # index n-1: the outcome code of trial n, 0 while not done
        self._wall = array("d", bytes(8 * planned))
        self._metrics: dict[str, _Pool] = {}
        self._sigs: list[list[Any]] = []  # [signature, count, first trial number]
        self.metric_names: set[str] = set()
        self.counts: dict[str, int] = {o.value: 0 for o in Outcome}
        self.first_fail: int | None = None

    def done(self, n: int) -> bool:
        """True when trial number ``n`` (1-based) has a result."""
        return 0 < n <= self.planned and self._outcome[n - 1] != 0

    def outcome_of(self, n: int) -> str | None:
        """The outcome (``"pass"`` ...) of trial number ``n``, None while it has none."""
        return _OUTCOMES.get(self._outcome[n - 1]) if 0 < n <= self.planned else None

    def add(self, n: int, record: Mapping[str, Any]) -> None:
        """Count the trial record (``Trial.to_dict()`` form) of trial number ``n``; again: replaced."""
        if not 0 < n <= self.planned:
            raise ValueError(f"trial {n} outside 1..{self.planned}")
        if self._outcome[n - 1]:
            raise ValueError(f"trial {n} counted twice")  # callers key results by trial id first
        outcome = str(record["outcome"])
        self._outcome[n - 1] = _CODES[outcome]
        self._wall[n - 1] = float(record.get("wall_s") or 0.0)
        self.counts[outcome] += 1
        series = record.get("series") or {}
        for name, value in (record.get("metrics") or {}).items():
            self.metric_names.add(name)
            pool = self._metrics.get(name) or self._metrics.setdefault(name, _Pool())
            whole = series.get(name) if isinstance(series, Mapping) else None
            pool.add(n, value, whole.get("n") if isinstance(whole, Mapping) else None)
        if outcome == Outcome.FAIL.value:
            if self.first_fail is None or n < self.first_fail:
                self.first_fail = n
            self._count_signature(record.get("signature"), n)

    def _count_signature(self, sig: Any, n: int) -> None:
        if not sig:
            return
        for entry in self._sigs:
            if same_failure(entry[0], sig) or (entry[0] == OTHER and len(self._sigs) >= MAX_SIGNATURES):
                entry[1] += 1
                entry[2] = min(entry[2], n)
                return
        self._sigs.append([str(sig) if len(self._sigs) < MAX_SIGNATURES - 1 else OTHER, 1, n])

    def summary(self, width: int) -> dict[str, Any]:
        """The summary data of ``summary.json`` (counts, rate with its interval, timing, metrics)."""
        c = self.counts
        n_pass, n_fail = c[Outcome.PASS.value], c[Outcome.FAIL.value]
        judged = n_pass + n_fail
        lo, hi = stats.wilson(n_fail, judged)
        err = _CODES[Outcome.ERROR.value]
        walls = array("d", (w for o, w in zip(self._outcome, self._wall, strict=True) if o and o != err))
        wall = describe(walls)
        del walls
        metrics = {name: pool.summary() for name, pool in sorted(self._metrics.items())}
        sigs = sorted(self._sigs, key=lambda e: (-e[1], e[2]))
        return {
            "trials": sum(c.values()),
            "pass": n_pass,
            "fail": n_fail,
            "skip": c[Outcome.SKIP.value],
            "error": c[Outcome.ERROR.value],
            "failure_rate": (n_fail / judged) if judged else None,
            "failure_rate_ci": [lo, hi],
            "wall_s": {k: wall[k] for k in ("median", "p90", "min", "max")},
            "metrics": metrics,
            "signatures": {e[0]: e[1] for e in sigs},
            "signature_first": {e[0]: f"{e[2]:0{width}d}" for e in sigs},
        }


def basis(metric: Mapping[str, Any]) -> str:
    """What a metric summary's median and p90 rest on: ``"612"``, or ``"65536 of 10000000"`` values
    when they are those of a sample (a series longer than the trial record keeps, or a pool beyond
    ``SAMPLE_MAX``)."""
    total = metric.get("series_n", metric.get("pooled", metric["n"]))
    return f"{metric['n']}" if total == metric["n"] else f"{metric['n']} of {total}"


def exit_code_of(summary: Mapping[str, Any]) -> int:
    """0 all passed (skips allowed), 1 any FAIL, 4 only infrastructure errors, 130 interrupted."""
    if summary.get("interrupted"):
        return 130
    if summary.get("stopped"):
        return 2
    if summary.get("fail"):
        return 1
    if summary.get("error"):
        return 4
    return 0
