"""Performance mode's runs: compare the ends, search the step, look for a second one.

:class:`PerfRun` drives the :class:`~sleuth.bisect.driver.Driver`'s test pool (submit, collect,
journal, replay) in three kinds of phase, every one sequential and every one keeping ``--jobs``
slots busy with runs that help the decision under way.  The runs and phase 1 are
:class:`~sleuth.bisect.perfcompare.PerfCompare`'s, which :class:`PerfRun` extends:

1. **Compare** two candidates (the ends first; phase ``end samples``): runs alternate between the
   two up to the next look of :class:`~sleuth.bisect.seqtest.Sequential` (free slots run ahead to
   the look after), and each look decides REGRESSED, SAME or MORE (UNDECIDED at the last look).
   Only REGRESSED ends are searched; SAME is ``not_found``, UNDECIDED ``inconclusive``.
2. **Search** a range whose ends differ (phase ``search``) with
   :class:`~sleuth.bisect.perfsearch.StepSearch`, seeded with every value already measured in it.
   A probe that stays undecided and differs from *both* ends (both comparisons REGRESSED at
   ``MIDDLE_ALPHA``) sits between two steps: the range is split there, and each half whose ends a
   sequential comparison on fresh runs finds REGRESSED is searched (neither: the range, unsplit).
3. **Another step?** (phase ``step check``): once a step (last good L, first bad F) is found, the
   values already measured say whether L differs from the range's good end, or the bad end from F
   (one-sided Mann-Whitney at ``SCREEN_ALPHA``, shift at least half the threshold).  Only then does
   a sequential comparison spend runs, and a REGRESSED side is searched like the range.

With several steps the answer (``first_bad``) is the first whose level differs from the good end's
by the threshold (as ``git bisect`` would call the first "bad"), every step is in
``PerfState.steps`` and the note says which was chosen and why.  ``--metric NAME`` that the first
run to complete did not produce is a usage error that lists the metrics it did produce.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sleuth.bisect.perf import Verdict
from sleuth.bisect.perfcompare import EndsFailed, PerfCompare
from sleuth.bisect.perfsearch import StepResult, StepSearch, resolution_for
from sleuth.bisect.seqtest import Decision, compare
from sleuth.bisect.strategies import SearchResult, SearchStatus

if TYPE_CHECKING:
    from sleuth.bisect.driver import Driver

__all__ = ["MAX_STEPS", "PerfRun"]

#: steps one search reports at most
MAX_STEPS = 3
#: the level at which the values already measured suggest another step (runs are spent only then)
SCREEN_ALPHA = 0.05
#: the level at which an undecided probe differs from both ends (it lies between two steps)
MIDDLE_ALPHA = 0.001
#: an undecided probe is compared with both ends once it has this many values
MIDDLE_MIN = 10


class PerfRun(PerfCompare):
    """One performance search over the driver's candidates (see the module docstring)."""

    def __init__(self, driver: Driver, skip: list[int]) -> None:
        super().__init__(driver, skip)
        #: the search an interrupt stopped (its first index and the search)
        self._cut: tuple[int, StepSearch] | None = None
        #: ranges searched without a step found: (lo, hi, how the search ended)
        self.unresolved: list[tuple[int, int, StepResult]] = []

    # --- 2. search a range ------------------------------------------------------------------------

    def _search(self, lo: int, hi: int, *, split: bool = True) -> StepResult | int:
        """Search ``[lo, hi]`` for its step; an int is a probe between two steps (split there)."""
        m = hi - lo + 1
        search = StepSearch(m, confidence=self.d.opt.confidence, max_samples=self.spec.max_samples,
                            resolution=resolution_for(self.spec.threshold, self.values[lo]))  # fmt: skip
        for i in range(lo, hi + 1):
            for v in self.values.get(i, ()):
                search.observe(i - lo, v)
            for _ in range(self.pending[i]):
                search.expect(i - lo)
        search.exclude(i - lo for i in self.untestable if lo < i < hi)
        search.runs = 0
        search.max_runs = max(0, self._left())
        self._active = (lo, search)
        try:
            while True:
                free = self._free()
                if free > 0 and not search.done:
                    for li in search.propose(free):
                        self.pending[lo + li] += 1
                        self.d.submit(lo + li, self.d.labels[lo + li], "search")
                if not self.d.inflight:
                    break
                ev = self._collect()
                y = ev.index
                if lo < y < hi:
                    where = self._probe_check(search, lo, y, hi)
                    if where == "split" and split:
                        return y
                    if where == "flat":
                        self._p_bad(search, lo, hi)
                        lab, t = self.d.labels, self.spec.threshold
                        why = f"{lab[y]} is within {t:g}% of both {lab[lo]} and {lab[hi]}: no such step"
                        return StepResult("inconclusive", hi, lo, 0.0, tuple(range(lo + 1, hi + 1)), why)
        except BaseException:
            self._cut = self._active  # an interrupt: :meth:`so_far` reads its posterior
            raise
        finally:
            self._active = None
        self._p_bad(search, lo, hi)
        r = search.result()
        return StepResult(r.status, r.first_bad + lo, r.last_good + lo, r.confidence,
                          tuple(s + lo for s in r.suspects), r.note)  # fmt: skip

    def _p_bad(self, search: StepSearch, lo: int, hi: int) -> None:
        post = search.post()
        for i in post.tested:
            if lo < i + lo < hi:
                self.state.p_bad[self.d.labels[i + lo]] = round(post.cdf(i), 6)

    def _probe_check(self, search: StepSearch, lo: int, y: int, hi: int) -> str | None:
        """An undecided probe ``y`` that differs from both ends lies between two steps ("split"); one
        within the threshold of both says the range has no step beyond it ("flat")."""
        xs = self.values.get(y, [])
        if len(xs) < MIDDLE_MIN or len(xs) % 2:  # every other value: the checks cost scipy calls
            return None
        p = search.post().cdf(y - lo)
        if min(p, 1 - p) <= search.eps:
            return None
        t = self.spec.threshold
        left = compare(self.values[lo], xs, t, alpha=MIDDLE_ALPHA)
        right = compare(xs, self.values[hi], t, alpha=MIDDLE_ALPHA)
        if left.decision is Decision.REGRESSED and right.decision is Decision.REGRESSED:
            return "split"
        if left.decision is Decision.SAME and right.decision is Decision.SAME:
            return "flat"
        return None

    # --- 3. the whole search ----------------------------------------------------------------------

    def run(self) -> SearchResult:
        """Compare the ends, search, look for more steps; the answer."""
        n = self.n
        try:
            c = self._compare(0, n - 1, "end samples")
        except EndsFailed as exc:
            return _result(SearchStatus.NOT_FOUND, note=exc.note)
        self._record(0, n - 1, c, "the ends")
        what = f"on {self.spec.name!r} ({self.spec.direction.value} is better)"
        if c.decision is not Decision.REGRESSED and self.d.opt.check_ends:
            t = self.spec.threshold
            if c.decision is Decision.SAME:
                why = f"{c.describe()} {what}: not a regression beyond the {t:g}% threshold"
                return _result(SearchStatus.NOT_FOUND, note=why)
            why = f"{c.describe()} {what}: neither beyond the {t:g}% threshold nor within it at the last look"
            return _result(SearchStatus.INCONCLUSIVE, note=why)
        self.d.run_dir.journal.append("strategy", kind="StepSearch", flaky="perf")
        #: ranges to search: (lo, hi, whether a probe between two steps may split it)
        queue: list[tuple[int, int, bool]] = [(0, n - 1, True)]
        first: StepResult | None = None
        splits = 0
        while queue:
            lo, hi, may_split = queue.pop(0)
            out = self._search(lo, hi, split=may_split and splits < MAX_STEPS - 1)
            if isinstance(out, int):
                splits += 1
                lab = self.d.labels
                self.d.run_dir.journal.append("perf split", at=lab[out], lo=lab[lo], hi=lab[hi])
                # the probe was chosen for looking unlike both ends: each half is searched only when
                # fresh runs of its ends confirm a step in it, else the range is searched whole
                halves = [(a, b, True) for a, b in ((lo, out), (out, hi))
                          if self._confirm(a, b, f"a step between {lab[a]} and {lab[b]}?")]  # fmt: skip
                queue[:0] = halves or [(lo, hi, False)]
                continue
            first = first or out
            if out.status != "found":
                self.unresolved.append((lo, hi, out))
                continue
            self._add_step(out, lo, hi)
            if len(self.state.steps) + len(queue) < MAX_STEPS:
                queue += [(a, b, True) for a, b in self._more_steps(out, lo, hi)]
        return self._answer(first)

    def _add_step(self, r: StepResult, lo: int, hi: int) -> None:
        lab = self.d.labels
        c = compare(self.values[r.last_good], self.values[r.first_bad], self.spec.threshold)
        cum = compare(self.values[0], self.values[r.first_bad], self.spec.threshold)
        step = {"first_bad": r.first_bad, "last_good": r.last_good, "first_bad_label": lab[r.first_bad],
                "last_good_label": lab[r.last_good], "confidence": round(r.confidence, 4),
                "shift_pct": round(c.shift_pct, 3), "ci_pct": [round(x, 3) for x in c.ci_pct],
                "from_good_end_pct": round(cum.shift_pct, 3), "range": [lab[lo], lab[hi]]}  # fmt: skip
        self.state.steps.append(step)
        self.d.run_dir.journal.append("perf step", **step)

    def _more_steps(self, r: StepResult, lo: int, hi: int) -> list[tuple[int, int]]:
        """The sides of a step whose values suggest another step, and a sequential comparison confirms."""
        out = []
        for a, b, why in ((lo, r.last_good, "below the step"), (r.first_bad, hi, "above the step")):
            if a == b or not self.values[a] or not self.values[b]:
                continue
            screen = compare(self.values[a], self.values[b], self.spec.threshold, alpha=SCREEN_ALPHA)
            if screen.decision is Decision.REGRESSED and self._confirm(a, b, f"another step {why}?"):
                out.append((a, b))
        return out

    def _confirm(self, a: int, b: int, why: str) -> bool:
        """A sequential comparison of ``a`` and ``b`` on fresh runs only says REGRESSED."""
        try:
            c = self._compare(a, b, "step check", fresh=True)
        except EndsFailed:
            return False
        self._record(a, b, c, why)
        return c.decision is Decision.REGRESSED

    def _answer(self, first: StepResult | None) -> SearchResult:
        """The chosen step as the answer, the others in the note (see the module docstring)."""
        steps = sorted(self.state.steps, key=lambda s: s["first_bad"])
        self.state.steps = steps
        if not steps:
            assert first is not None
            f = first
            return SearchResult(status=SearchStatus(f.status), first_bad=f.first_bad, last_good=f.last_good,
                                suspects=f.suspects, confidence=f.confidence, note=f.note)  # fmt: skip
        t = self.spec.threshold
        chosen = next(
            (s for s in steps if s["from_good_end_pct"] >= t), max(steps, key=lambda s: s["shift_pct"])
        )
        chosen["answer"] = True
        note = ""
        if len(steps) > 1:
            listed = "; ".join(
                f"{s['first_bad_label']} ({s['shift_pct']:+.1f}%, confidence {s['confidence']:.3f})"
                for s in steps
            )
            why = (
                f"the first whose level is {t:g}% or more above the good end's"
                if chosen["from_good_end_pct"] >= t
                else "the largest; none alone is beyond the threshold"
            )
            answer = chosen["first_bad_label"]
            note = f"the range holds {len(steps)} steps: {listed}; the answer is {answer}, {why}"
        for lo, hi, r in self.unresolved:
            lab = self.d.labels
            more = f"between {lab[lo]} and {lab[hi]} another step was not pinned down ({r.note or r.status})"
            note = f"{note}; {more}" if note else more
        self.state.note = note
        fb, lg = int(chosen["first_bad"]), int(chosen["last_good"])
        return SearchResult(status=SearchStatus.FOUND, first_bad=fb, last_good=lg, suspects=(fb,),
                            confidence=float(chosen["confidence"]), note=note)  # fmt: skip

    def so_far(self) -> dict[str, Verdict]:
        """:meth:`verdicts` of a search stopped midway: the posterior of the range it was in counts too."""
        if self._cut is not None:
            lo, search = self._cut
            self._p_bad(search, lo, lo + search.n - 1)
        return self.verdicts()

    def verdicts(self) -> dict[str, Verdict]:
        """Label -> GOOD / BAD (at probability 0.9 or more) or AMBIGUOUS, per candidate measured."""
        out: dict[str, Verdict] = {}
        for label, p in self.state.p_bad.items():
            out[label] = Verdict.BAD if p >= 0.9 else Verdict.GOOD if p <= 0.1 else Verdict.AMBIGUOUS
        return out


def _result(status: SearchStatus, note: str) -> SearchResult:
    return SearchResult(status=status, first_bad=None, last_good=None, confidence=0.0, note=note)
