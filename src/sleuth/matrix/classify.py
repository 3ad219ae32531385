"""Classify each cell against the baseline, and the early-stopping rule.

A matrix makes many comparisons at once; :mod:`sleuth.matrix.multiple` decides them together
(Holm across the matrix); :func:`classify` is that decision for a family of one comparison.

* ``fixed``: the target failure rate is lower and Fisher's exact test (two-sided) gives p < alpha
  (after the multiplicity adjustment), and the cell does not fail significantly more often some
  *other* way.
* ``worse``: the target rate is significantly higher, or other failures are significantly more
  frequent (a new failure mode).
* ``no_effect``: not significant, although both cells ran enough trials to detect the smallest
  effect of interest (``min_effect``, default halving the rate) with 80% power.
* ``inconclusive``: not significant and under-powered; ``trials_needed`` says how many trials per
  cell would separate the observed rates.
* ``error``: the cell produced no pass/fail trial (its environment did not build, the command is
  missing).  A cell none of whose trials has finished yet (the matrix was interrupted) is
  ``inconclusive``, not ``error``: nothing failed to run.

The speed confound lives in :mod:`sleuth.matrix.speed` (re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from sleuth import stats
from sleuth.matrix.aggregate import CellStats
from sleuth.matrix.speed import MIN_STEP_SAMPLES, Confound, speed_confound

__all__ = [
    "MIN_STEP_SAMPLES",
    "Classification",
    "Confound",
    "Decision",
    "GroupSequential",
    "classify",
    "speed_confound",
]


class Classification(Enum):
    """What a cell did to the failure, relative to the baseline."""

    BASELINE = "baseline"
    FIXED = "fixed"
    WORSE = "worse"
    NO_EFFECT = "no_effect"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """A cell's classification and the evidence for it.

    ``p_value`` is the raw p of the test that decided (the target rate's, unless the cell is
    ``worse`` by another failure); ``p_adjusted`` is the same test adjusted for the matrix's
    multiplicity, on the alpha scale: significant exactly when ``p_adjusted < alpha``.
    """

    classification: Classification
    p_value: float | None = None
    p_adjusted: float | None = None
    #: the other-failure test (None when neither side failed another way)
    p_other: float | None = None
    p_other_adjusted: float | None = None
    #: for inconclusive cells: trials per cell that would separate the observed rates
    trials_needed: int | None = None
    note: str = ""


def classify(cell: CellStats, base: CellStats, *, alpha: float = 0.05, min_effect: float = 0.5) -> Decision:
    """Classify ``cell`` against ``base`` alone (a family of one; see the module docstring)."""
    from sleuth.matrix.multiple import Comparison, decide

    if cell.name == base.name:
        if cell.n_total == 0:  # interrupted before any baseline trial finished: it did not fail to run
            return Decision(
                classification=Classification.BASELINE,
                note="no baseline trial has finished yet",
            )
        if cell.n_judged == 0:  # say why nothing else could be decided (exit code 4)
            why = cell.errors[0] if cell.errors else "no trial passed or failed"
            return Decision(classification=Classification.BASELINE, note=f"the baseline could not run: {why}")
        return Decision(classification=Classification.BASELINE)
    return decide([Comparison(name=cell.name, cell=cell, base=base)], alpha=alpha, min_effect=min_effect)[
        cell.name
    ]


@dataclass(frozen=True, slots=True)
class GroupSequential:
    """``--until-decided``: interim looks with a pre-set Bonferroni split of alpha.

    A cell is looked at when its pass/fail trials reach 25%, 50%, 75% and 100% of its planned
    trials; at an interim look k it stops early if Fisher's p of the target rate against its
    baseline (as far as both have run) is below ``alpha * spend[k] / family``, ``family`` being the
    number of cells that have looks (Bonferroni across cells and looks).  What is left, the
    share of the last look, is spent at the end by Holm over every comparison of the matrix
    (:func:`sleuth.matrix.multiple.decide`), so the chance of any false ``fixed``/``worse`` in the
    matrix stays at most ``alpha``.  Another failure mode is judged at the end only.  Every
    baseline runs its full trials.
    """

    alpha: float
    #: cells with interim looks (every cell that is not a baseline)
    family: int = 1
    fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    spend: tuple[float, ...] = (0.1, 0.2, 0.2, 0.5)

    def looks(self, planned: int) -> list[int]:
        """Trial counts at which a cell with ``planned`` trials is looked at (ascending, distinct)."""
        return sorted({max(1, math.ceil(f * planned)) for f in self.fractions})

    def share_at(self, n: int, planned: int) -> float:
        """The share of alpha spent at the look after ``n`` of ``planned`` trials (0: not a look).

        With few planned trials two fractions can fall on one count; that look spends both shares.
        """
        return sum(
            s for f, s in zip(self.fractions, self.spend, strict=True) if max(1, math.ceil(f * planned)) == n
        )

    def alpha_at(self, n: int, planned: int) -> float | None:
        """The per-cell level of the interim look after ``n`` trials; None when ``n`` is not one."""
        share = self.share_at(n, planned)
        return self.alpha * share / max(1, self.family) if share and n < planned else None

    def stop(self, cell: CellStats, base: CellStats, planned: int) -> tuple[float, float, bool] | None:
        """``(level, p, lower)`` when ``cell`` is decided at this interim look (stop it), else None.

        ``lower``: the cell's target rate is below the baseline's (a fix, else worse).
        """
        level = self.alpha_at(cell.n_judged, planned)
        if level is None or base.n_judged == 0:
            return None
        p = stats.fisher_exact(cell.n_target, cell.n_judged, base.n_target, base.n_judged)
        if p >= level:
            return None
        return level, p, cell.n_target * base.n_judged < base.n_target * cell.n_judged

    def final_share(self, planned: Iterable[int]) -> float:
        """The share left for the end: the smallest last-look share among cells of ``planned`` trials."""
        return min((self.share_at(n, n) for n in planned), default=1.0) or 1.0

    def describe(self, final_share: float | None = None) -> str:
        """One sentence for the report."""
        looks = ", ".join(f"{round(f * 100)}%" for f in self.fractions[:-1])
        shares = "/".join(f"{s:g}" for s in self.spend[:-1])
        end = self.spend[-1] if final_share is None else final_share
        return (
            f"group-sequential: interim looks at {looks} of each cell's trials, Fisher two-sided at "
            f"alpha x {shares} / {self.family} cell(s) (Bonferroni across cells and looks); the rest, "
            f"alpha x {end:g}, is spent at the end by Holm over every comparison; overall chance of "
            f"any false decision <= {self.alpha:g}"
        )
