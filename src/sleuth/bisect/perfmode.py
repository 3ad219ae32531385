"""The driver in performance mode (``Options.perf``): the first search, and one run judged against the ends.

:func:`perf_search` stands in for the strategy loop's first search: it runs
:class:`~sleuth.bisect.perfrun.PerfRun` (the ends compared sequentially, then a posterior search
for the step), or with ``PerfSpec.fixed`` the baseline of :func:`perf_fixed` (every candidate
sampled ``fixed`` times, the ends compared once), and hands the later stages a bisection seeded
with its answer.  Later stages (merged branches, blame probes) and the baseline's loop judge each
run with :func:`perf_outcome`: the candidate's values against the first stage's ends
(:attr:`Driver.perf_ends <sleuth.bisect.driver.Driver.perf_ends>`), rerun while
:func:`~sleuth.bisect.perf.classify` says AMBIGUOUS; the strategy sees the verdict (BAD = FAIL).
A first search stopped midway has the bracket of :func:`perf_bracket` (an interrupted summary's).

Separate from the driver because none of it runs in a pass/fail search; the statistics
(:mod:`~sleuth.bisect.perf`, :mod:`~sleuth.bisect.seqtest`, :mod:`~sleuth.bisect.perfrun`,
:mod:`~sleuth.bisect.perfcompare`) are imported only here, and only when used.  The samples and
verdicts stay on the driver, where the report reads them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sleuth.bisect.endchecks import not_found
from sleuth.bisect.strategies import Bisection, SearchResult, SearchStatus, Strategy
from sleuth.model import Outcome

if TYPE_CHECKING:
    from sleuth.bisect.driver import Driver
    from sleuth.bisect.perf import Verdict
    from sleuth.bisect.trials import TestEvent

__all__ = ["perf_bracket", "perf_fixed", "perf_outcome", "perf_search"]


def perf_search(d: Driver, n: int, skip: list[int]) -> tuple[SearchResult, Strategy | None]:
    """Performance mode: the search of :mod:`sleuth.bisect.perfrun` (or the fixed-repeat baseline)."""
    assert d.opt.perf is not None
    d.perf_ends = (d.labels[0], d.labels[-1])
    if d.opt.perf.fixed is not None:
        return perf_fixed(d, n, skip)
    from sleuth.bisect.perfrun import PerfRun

    run = PerfRun(d, skip)
    d.perf_state = run.state
    d.perf_so_far = lambda: perf_bracket(d, run.so_far())
    res = run.run()
    d.perf_so_far = None  # the later stages' searches are strategies (Driver.live)
    d.verdicts.update(run.verdicts())
    if res.status is SearchStatus.NOT_FOUND or res.first_bad is None or res.last_good is None:
        return res, None
    # later stages (merged branches, other repositories) bisect on verdicts from this answer
    strat = Bisection(n)
    d._tell(strat, res.last_good, Outcome.PASS)
    d._tell(strat, res.first_bad, Outcome.FAIL)
    d.strategy = strat
    return res, strat


def perf_bracket(d: Driver, verdicts: dict[str, Verdict]) -> SearchResult:
    """An interrupted first search's bracket: from the last candidate classified good before the
    first classified bad to that one (the ends when none is); the verdicts become the driver's, so
    the report's decisions say what the bracket says."""
    from sleuth.bisect import perf

    d.verdicts.update(verdicts)
    n, where = len(d.labels), {label: i for i, label in enumerate(d.labels)}
    fb = min((where[x] for x, v in verdicts.items() if v.is_bad and x in where), default=n - 1)
    lg = max((where[x] for x, v in verdicts.items() if not v.is_bad and v is not perf.Verdict.AMBIGUOUS
              and where.get(x, n) < fb), default=0)  # fmt: skip
    return SearchResult(status=SearchStatus.INCONCLUSIVE, first_bad=fb, last_good=lg,
                        suspects=tuple(range(lg + 1, fb + 1)))  # fmt: skip


def perf_fixed(d: Driver, n: int, skip: list[int]) -> tuple[SearchResult, Strategy | None]:
    """The baseline: every candidate runs ``fixed`` times, the ends are compared once."""
    from sleuth.bisect.seqtest import Decision, compare

    spec = d.opt.perf
    assert spec is not None
    assert spec.fixed is not None
    k = spec.fixed
    for ev in d.run_now([(0, d.labels[0])] * k + [(n - 1, d.labels[-1])] * k, "end samples"):
        if ev.value is not None:
            d.samples[ev.label].append(ev.value)
    good, bad = (spec.worse(d.samples[x]) for x in d.perf_ends)
    if not good or not bad:
        return not_found(f"metric {spec.name!r} was not measured at an end"), None
    c = compare(good, bad, spec.threshold, alpha=0.01)
    if c.decision is not Decision.REGRESSED and d.opt.check_ends:
        return not_found(f"{c.describe()}: not found regressed in {k} runs of each end"), None
    strat = Bisection(n)
    strat.exclude(skip)
    d.run_dir.journal.append("strategy", kind="Bisection", flaky="perf", fixed=k)
    return d._seeded(strat, [(0, Outcome.PASS), (n - 1, Outcome.FAIL)]), strat


def perf_outcome(d: Driver, ev: TestEvent) -> Outcome | None:
    """The verdict as PASS/FAIL, SKIP without a value, None while ambiguous."""
    from sleuth.bisect.perf import Verdict, classify

    assert d.opt.perf is not None
    if ev.value is None or not math.isfinite(ev.value):
        return Outcome.SKIP
    d.samples[ev.label].append(ev.value)
    good, bad = (d.samples[x] for x in d.perf_ends)
    v = classify(d.opt.perf, good, bad, d.samples[ev.label], eps=(1 - d.opt.confidence) / 4)
    if v is Verdict.AMBIGUOUS:
        return None
    d.verdicts[ev.label] = v
    return Outcome.FAIL if v.is_bad else Outcome.PASS
