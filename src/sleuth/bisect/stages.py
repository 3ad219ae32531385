"""After the first search: the later stages of a git bisection (merged branches, several repositories).

A git search follows first parents, so its answer may be a merge; and with several repositories
(:class:`~sleuth.bisect.multigit.MultiGitSource`) it moves one repository at a time.  Each later stage
is a new candidate list, journaled like the first (a ``candidates`` event), and searched by the
same driver loop with its ends given (not tested):

* :func:`descend_merges`: a first bad merge whose first parent passes has its merged parents
  tested in order; the first that fails is searched along its own first parents from the merge
  base; when every merged parent passes, the merge itself is the first bad;
* :func:`settle_blame`: a FOUND stage is settled by a blame probe (see :mod:`sleuth.bisect.multigit`):
  a pass blames the stage's primary repository, a fail starts the next stage.

A candidate outside the list is judged by :func:`probe`: rerun when the test is flaky (enough runs
that a bad one passing them all is unlikely), sampled in performance mode.  Separate from the
driver because it runs only after a search has answered, and only for git sources; the driver
calls it with itself, its strategy and the answer.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sleuth.bisect.perfmode import perf_outcome
from sleuth.bisect.policy import choose_strategy
from sleuth.bisect.strategies import Bisection, SearchResult, SearchStatus, Strategy
from sleuth.model import Outcome

if TYPE_CHECKING:
    from sleuth.bisect.driver import Driver
    from sleuth.bisect.git import GitSource
    from sleuth.bisect.multigit import MultiGitSource

__all__ = ["descend_merges", "next_stage", "probe", "settle_blame"]


def _flaky_inner(strat: Strategy) -> bool:
    """The search models a flaky test: not the plain bisection (under ``auto``, once it switched)."""
    from sleuth.bisect.auto import AutoBisection

    return not isinstance(strat.inner if isinstance(strat, AutoBisection) else strat, Bisection)


def descend_merges(d: Driver, src: GitSource, res: SearchResult, strat: Strategy) -> SearchResult:
    """A first bad merge whose first parent passes: search the merged branch that fails.

    The merged parents are tested in order; the first that fails is searched along its own
    first parents from its merge base (a new stage, journaled like the first).  When every
    parent passes, the merge itself is the first bad.
    """
    while res.status is SearchStatus.FOUND and res.first_bad is not None and res.last_good is not None:
        merge, first = d.labels[res.first_bad], d.labels[res.last_good]
        others = src.parents(merge)[1:]
        if not others:
            break
        failing, untested = None, []
        for q in others:
            got = probe(d, q, strat, "merged parent")
            if got is Outcome.FAIL:
                failing = q
                break
            if got is not Outcome.PASS:
                untested.append(q)
        if failing is None:
            if untested:
                why = f"merge {merge}: its merged parent {untested[0]} could not be tested"
                return replace(res, status=SearchStatus.AMBIGUOUS, confidence=0.0, note=why)
            return replace(
                res, note=f"every parent of the merge {merge} passes: the merge itself is the first bad"
            )
        d.labels = src.merged_branch(first, failing)
        d.run_dir.journal.append("candidates", labels=d.labels, merge=merge)
        strat = next_stage(d, strat)
        res = d._seeded(strat, [(0, Outcome.PASS), (len(d.labels) - 1, Outcome.FAIL)])
    return res


def next_stage(d: Driver, strat: Strategy) -> Strategy:
    """The strategy of a new stage: flaky (p estimated anew) if the last one was."""
    flaky = _flaky_inner(strat)
    ends = [Outcome.FAIL, *([Outcome.PASS] if flaky else [])]
    return choose_strategy(len(d.labels), d.opt.flaky, ends, confidence=d.opt.confidence,
                           max_tests=d.opt.max_tests)  # fmt: skip


def probe(d: Driver, label: str, strat: Strategy, phase: str = "blame") -> Outcome:
    """Judge one candidate outside the list: sampled in perf mode, rerun when the test is flaky."""
    if d.opt.perf is not None:
        while True:
            (ev,) = d.run_now([(-1, label)], phase)
            got = perf_outcome(d, ev)
            if got is not None:
                return got
    runs = 1
    if _flaky_inner(strat):  # a bad one passes all r runs with <= 1 - confidence
        from sleuth.bisect.auto import AutoBisection

        inner: Any = strat.inner if isinstance(strat, AutoBisection) else strat
        p = min(max(inner.p_estimate(), 0.1), 0.99)
        runs = min(10, math.ceil(math.log(1 - d.opt.confidence) / math.log(1 - p)))
    outcome = Outcome.SKIP
    for _ in range(runs):
        (ev,) = d.run_now([(-1, label)], phase)
        if ev.counted is Outcome.FAIL:
            return Outcome.FAIL
        if ev.counted is Outcome.PASS:
            outcome = Outcome.PASS
    return outcome


def settle_blame(d: Driver, src: MultiGitSource, res: SearchResult, strat: Strategy) -> SearchResult:
    """Test the older primary with the newer others; pass blames it, fail moves to the next repo."""
    k = src.first_stage
    while res.status is SearchStatus.FOUND and res.first_bad is not None and res.last_good is not None:
        lo, hi = d.labels[res.last_good], d.labels[res.first_bad]
        blame = src.blame_probe(k, lo, hi)
        got = Outcome.PASS if blame is None else probe(d, blame, strat)
        if got is Outcome.PASS:
            d.blame = {"culprit_repo": src.repos[k].name, "first_bad": hi, "last_good": lo}
            break
        if got is not Outcome.FAIL or blame is None:
            return SearchResult(status=SearchStatus.INCONCLUSIVE, first_bad=res.first_bad,
                                last_good=res.last_good, suspects=res.suspects, confidence=0.0,
                                note=f"the blame probe {blame} could not be tested")  # fmt: skip
        k, d.labels = src.next_stage(k, lo, blame)
        d.run_dir.journal.append("candidates", labels=d.labels, stage=k, primary=src.repos[k].name)
        strat = next_stage(d, strat)
        res = d._seeded(strat, [(0, Outcome.PASS), (len(d.labels) - 1, Outcome.FAIL)])
    return res
