"""How a search opens, before the driver's loop: its candidates, its mode, its strategy and what it is told.

:func:`open_search` is the first thing :meth:`Driver.run <sleuth.bisect.driver.Driver.run>` does, in
this order:

* ``sleuth bisect images`` without a start date (or with ``--step-back``): the gallop of
  :mod:`sleuth.bisect.images` finds a passing start and a failing end first;
* the candidates: a resume's journaled ones (unless the gallop moved the start), else the
  source's, journaled (``candidates``); fewer than two is ``not_found``;
* combinations the driver cannot search are refused (:func:`check_modes`); ``find_fix`` flips the
  strategy's order before the ``--skip`` labels become its indices;
* performance mode hands over to :func:`~sleuth.bisect.perfmode.perf_search`; otherwise the
  strategy is made, journaled (``strategy``) and told what is known (the gallop's ends and tests,
  or the ends as given when they are not checked) before the loop runs, with the end checks when
  they are.

Invariants: a run resolves its candidates once (a resume searches the same indices, so replay gives
the same answer); the strategy is journaled before its first probe; a search the driver cannot do
stops before any probe; a source module the search does not use is not imported (:func:`is_source`).
Separate from the driver because it runs once, before the loop, and sets up what the loop then
owns (the labels, the flip, the strategy); the state stays on the driver, which it is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sleuth.bisect.endchecks import not_found
from sleuth.bisect.policy import make_strategy
from sleuth.bisect.strategies import SearchResult, Strategy
from sleuth.errors import UsageError
from sleuth.model import Outcome

if TYPE_CHECKING:
    from sleuth.bisect.driver import Driver
    from sleuth.bisect.trials import TestEvent

__all__ = ["check_modes", "is_source", "open_search"]


def open_search(d: Driver) -> tuple[SearchResult, Strategy | None]:
    """Open the search and run it (see the module docstring); the answer and the strategy (None when
    the ends did not behave, or the gallop found no ends)."""
    src = d.source
    gallop: list[TestEvent] = []
    if src.kind == "images" and (not getattr(src, "start", "x") or getattr(src, "step_back", False)):
        from sleuth.bisect.imagesource import ImageSource

        assert isinstance(src, ImageSource)
        if d.opt.find_fix:
            raise UsageError("--find-fix needs --start-date with sleuth bisect images")
        from sleuth.bisect.images import image_ends

        got = image_ends(d, src)
        if isinstance(got, SearchResult):
            return got, None
        gallop = got
    stepped = bool(gallop) and getattr(src, "step_back", False)  # the start moved: new candidates
    if d._known_labels and not stepped:
        d.labels = list(d._known_labels)
    else:
        d.labels = src.resolve()
        d.run_dir.journal.append("candidates", labels=d.labels, source=src.config())
    d.seen_labels.update(dict.fromkeys(d.labels))
    n = len(d.labels)
    if n < 2:
        return not_found("fewer than two candidates in the range"), None
    check_modes(d)
    d._flip = d.opt.find_fix
    skip = d._skipped(n)
    if d.opt.perf is not None:
        from sleuth.bisect.perfmode import perf_search

        return perf_search(d, n, skip)
    strat = make_strategy(n, d.opt.flaky, confidence=d.opt.confidence, max_tests=d.opt.max_tests)
    strat.exclude(skip)
    d.run_dir.journal.append("strategy", kind=type(strat).__name__, flaky=d.opt.flaky.describe(),
                             find_fix=d.opt.find_fix)  # fmt: skip
    if gallop:  # the gallop already found a passing start and a failing end
        d._tell(strat, 0, Outcome.PASS)
        d._tell(strat, n - 1, Outcome.FAIL)
        for e in gallop[:-1]:
            if e.label in d.labels:
                d._tell(strat, d.labels.index(e.label), e.counted)
        return d._loop(strat), strat
    if not d.opt.check_ends:
        return d._seeded(strat, [(0, Outcome.PASS), (n - 1, Outcome.FAIL)]), strat
    res = d._loop(strat, ends=True)
    return res, (None if d._ends_misbehaved else d.strategy)


def check_modes(d: Driver) -> None:
    """Combinations the driver cannot search (the CLI rejects them before a run dir exists)."""
    if d.opt.find_fix and d.opt.perf is not None:
        raise UsageError("--find-fix does not combine with performance mode (--metric NAME)")
    if d.opt.find_fix and is_source(d.source, "multigit", "MultiGitSource"):
        raise UsageError("--find-fix works with one repository: give a single --repo PATH")


def is_source(source: object, module: str, name: str) -> bool:
    """``isinstance`` without importing the source modules a search does not use."""
    import sys

    mod = sys.modules.get(f"sleuth.bisect.{module}")
    return mod is not None and isinstance(source, getattr(mod, name))
