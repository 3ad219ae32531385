"""Compact per-trial data of ``sleuth run``: what the summary needs, not the trial records.

A run of 100,000 trials must not hold 100,000 records (issue 9: memory independent of the trial
count).  :class:`Tally` keeps, per counted trial, one outcome byte and one wall time; per metric,
its values in a float array; per signature, a count and the first trial that showed it.  The
records themselves stay on disk (journal, ``result.json``) and are streamed into ``summary.json``.

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

__all__ = ["Tally", "describe", "exit_code_of"]

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
        self._metrics: dict[str, tuple[array[float], list[int]]] = {}  # name -> (finite values, [nonfinite])
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
        for name, value in (record.get("metrics") or {}).items():
            self.metric_names.add(name)
            values, nonfinite = self._metrics.setdefault(name, (array("d"), [0]))
            for x in _floats(value):
                if math.isfinite(x):
                    values.append(x)
                else:
                    nonfinite[0] += 1
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
        metrics: dict[str, dict[str, Any]] = {}
        for name, (values, nonfinite) in sorted(self._metrics.items()):
            m = describe(array("d", values))
            if nonfinite[0]:  # NaN/inf values are counted, not averaged
                m["nonfinite"] = nonfinite[0]
            metrics[name] = m
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
