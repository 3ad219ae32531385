"""Performance mode's runs, and two candidates compared by them (phase 1 of :mod:`sleuth.bisect.perfrun`).

:class:`PerfCompare` keeps the runs of one performance search on the
:class:`~sleuth.bisect.driver.Driver`'s test pool (submit, collect, journal, replay): each run's
value turned so that larger is worse, the runs that gave none, the runs still out, the budget.
:meth:`PerfCompare._compare` runs two candidates (the ends first; phase ``end samples``)
alternately up to the next look of :class:`~sleuth.bisect.seqtest.Sequential` (free slots run ahead
to the look after), and each look decides REGRESSED, SAME or MORE (UNDECIDED at the last look, or
when the budget runs out first).  :class:`~sleuth.bisect.perfrun.PerfRun` extends it with the
search for the step and the check for another one.

Invariants: every value of a candidate is kept, in the order it came, and the search under way
(``_active``) is told each run of its range; runs never go past ``budget`` (those out included), and
a comparison runs no candidate past the last look; the first run that completes decides whether the
metric exists (without it: a usage error naming the metrics it did produce, and nothing more runs);
an end with :data:`END_MISSES` runs that gave no value, or another candidate with that many and no
value at all, stops the comparison (:class:`EndsFailed`); every comparison recorded is journaled
(``perf compare``) and kept in ``PerfState.comparisons``.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from sleuth.bisect.perf import PerfSpec, PerfState
from sleuth.bisect.seqtest import Comparison, Decision, Sequential, compare
from sleuth.errors import UsageError
from sleuth.expect import check_metrics

if TYPE_CHECKING:
    from sleuth.bisect.driver import Driver
    from sleuth.bisect.perfsearch import StepSearch
    from sleuth.bisect.trials import TestEvent

__all__ = ["END_MISSES", "EndsFailed", "PerfCompare", "default_budget"]

#: runs of an end without a value before the range is given up
END_MISSES = 3


def default_budget(n: int) -> int:
    """Runs a search may use without ``--max-tests``: both ends' last looks and 30 a bisection step."""
    return 2 * Sequential().looks[-1] + 30 * math.ceil(math.log2(max(n - 1, 2)))


class EndsFailed(Exception):
    """An end gave no value too often."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


class PerfCompare:
    """The runs of one performance search, and two candidates compared by them (see the module docstring)."""

    def __init__(self, driver: Driver, skip: list[int]) -> None:
        assert driver.opt.perf is not None
        self.d = driver
        self.spec: PerfSpec = driver.opt.perf
        self.n = len(driver.labels)
        self.seq = Sequential()
        #: index -> values turned so that larger is worse
        self.values: dict[int, list[float]] = defaultdict(list)
        self.misses: Counter[int] = Counter()
        self.untestable: set[int] = set(skip)
        self.pending: Counter[int] = Counter()
        self.state = PerfState()
        self.budget = driver.opt.max_tests or default_budget(self.n)
        self._checked = False
        #: the search under way: its first index and the search
        self._active: tuple[int, StepSearch] | None = None

    # --- runs -------------------------------------------------------------------------------------

    @property
    def runs(self) -> int:
        """Runs collected so far (every phase)."""
        return len(self.d.events)

    def _left(self) -> int:
        return self.budget - self.runs - sum(self.pending.values())

    def _submit(self, i: int, phase: str) -> None:
        self.pending[i] += 1
        self.d.submit(i, self.d.labels[i], phase)

    def _collect(self) -> TestEvent:
        """The next finished run: its value recorded, told to the search under way."""
        ev = self.d.next_event()
        i = ev.index
        self.pending[i] -= 1
        value = self._value(ev)
        if value is None:
            self.misses[i] += 1
            if not self.values[i] and 0 < i < self.n - 1:
                self.untestable.add(i)
        else:
            self.d.samples[ev.label].append(ev.value)  # type: ignore[arg-type]
            self.values[i].append(value)
        if self._active is not None:
            lo, search = self._active
            if 0 <= i - lo < search.n:
                search.observe(i - lo, value)
        return ev

    def _value(self, ev: TestEvent) -> float | None:
        """The run's value turned so that larger is worse; the metric check after the first complete run."""
        v = ev.value
        if v is not None and math.isfinite(v):
            self._checked = True
            return v if self.spec.direction.value == "lower" else -v
        if not self._checked:
            self._check_metric(ev)
        return None

    def _check_metric(self, ev: TestEvent) -> None:
        """A run that completed (exit 0) without the metric: a usage error listing the metrics it gave."""
        try:
            rec = json.loads((self.d.run_dir.path / ev.trial_dir / "result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        done = (
            rec.get("rc") == 0 and not rec.get("signal") and not rec.get("timed_out") and not rec.get("error")
        )
        if not done:
            return
        self._checked = True
        why = check_metrics(rec.get("metrics") or {}, [("--metric", self.spec.name)])
        if why is not None:
            self.d.cancel()
            raise UsageError(why, hint=f"nothing more ran; what did is in {self.d.run_dir.path}")

    def _free(self) -> int:
        """Slots a new run may take now (none while results that finished together are told)."""
        return 0 if self.d.more else max(1, self.d.opt.jobs) - self.d.inflight

    # --- 1. compare two candidates ----------------------------------------------------------------

    def _compare(self, a: int, b: int, phase: str, *, fresh: bool = False) -> Comparison:
        """Run ``a`` and ``b`` until a look decides (see the module docstring).

        ``fresh``: only runs made from now on count (the values that suggested the comparison were
        selected for looking different, and would decide it on their own).
        """
        looks = self.seq.looks
        base = {x: len(self.values[x]) if fresh else 0 for x in (a, b)}

        def have(x: int) -> int:
            return len(self.values[x]) - base[x]

        def vals(x: int) -> list[float]:
            return self.values[x][base[x] :]

        k = 0
        while True:
            look = looks[k]
            if min(have(a), have(b)) >= look:
                c = self.seq.look(vals(a), vals(b), self.spec.threshold)
                if c.decision is not Decision.MORE:
                    return c
                k += 1
                continue
            for x in (a, b):
                if x in (0, self.n - 1) and self.misses[x] >= END_MISSES:
                    which = "good" if x == a else "bad"
                    raise EndsFailed(f"the {which} end {self.d.labels[x]} gave no value of "
                                      f"{self.spec.name!r} in {self.misses[x]} runs")  # fmt: skip
                if self.misses[x] >= END_MISSES and not self.values[x]:
                    raise EndsFailed(f"{self.d.labels[x]} gave no value of {self.spec.name!r}")
            free = self._free()
            while free > 0 and self._left() > 0:
                # runs toward this look first, then the next (free slots run ahead), never past the last
                side = None
                for target in (look, looks[min(k + 1, len(looks) - 1)]):
                    short = [x for x in (a, b) if have(x) + self.pending[x] < target]
                    if short:
                        side = min(short, key=lambda x: (have(x) + self.pending[x], x != a))
                        break
                if side is None:
                    break
                self._submit(side, phase)
                free -= 1
            if not self.d.inflight:  # the budget ran out before the look
                return self._undecided(vals(a), vals(b))
            self._collect()

    def _undecided(self, a: list[float], b: list[float]) -> Comparison:
        if not a or not b:
            return Comparison(Decision.UNDECIDED, 0.0, (0.0, 0.0), 1.0, 1.0, len(a), len(b))
        c = compare(a, b, self.spec.threshold, alpha=self.seq.alpha)
        return Comparison(
            Decision.UNDECIDED, c.shift_pct, c.ci_pct, c.p_worse, c.p_within, c.n_ref, c.n_other
        )

    def _record(self, a: int, b: int, c: Comparison, why: str) -> dict[str, Any]:
        rec = {"ref": self.d.labels[a], "other": self.d.labels[b], "why": why, "decision": c.decision.value,
               "shift_pct": round(c.shift_pct, 3), "ci_pct": [round(x, 3) for x in c.ci_pct],
               "p_worse": c.p_worse, "p_within": c.p_within, "runs": [c.n_ref, c.n_other]}  # fmt: skip
        self.state.comparisons.append(rec)
        self.d.run_dir.journal.append("perf compare", **rec)
        return rec
