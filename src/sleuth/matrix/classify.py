"""Classify each cell against the baseline, flag speed confounds, and the early-stopping rule.

* ``fixed``: the target failure rate is lower and Fisher's exact test (two-sided) gives p < alpha,
  and the cell does not fail significantly more often some *other* way.
* ``worse``: the target rate is significantly higher, or other failures are significantly more
  frequent (a new failure mode).
* ``no_effect``: not significant, although both cells ran enough trials to detect the smallest
  effect of interest (``min_effect``, default halving the rate) with 80% power.
* ``inconclusive``: not significant and under-powered; ``trials_needed`` says how many trials per
  cell would separate the observed rates.
* ``error``: the cell produced no pass/fail trial (its environment did not build, the command is
  missing).

Speed confound: median step-time ratio to the baseline with a percentile-bootstrap 95% interval;
flag ``speed (+N%)`` only when the interval's lower bound exceeds the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from sleuth import stats
from sleuth.matrix.aggregate import CellStats

__all__ = [
    "Classification",
    "Confound",
    "Decision",
    "GroupSequential",
    "classify",
    "speed_confound",
]

#: fewest step-time samples per cell for a bootstrap interval
MIN_STEP_SAMPLES = 3


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
    """A cell's classification and the evidence for it."""

    classification: Classification
    p_value: float | None = None
    #: for inconclusive cells: trials per cell that would separate the observed rates
    trials_needed: int | None = None
    note: str = ""


def _needed(p_base: float, p_cell: float, min_effect: float, alpha: float) -> int | None:
    """Trials per cell that would settle it: to separate the observed rates when they differ by at
    least the smallest effect of interest, else to detect that effect (fixed, or no_effect)."""
    smallest = p_base * min_effect
    target = p_cell if abs(p_cell - p_base) >= smallest else p_base - smallest
    return stats.trials_to_separate(p_base, target, alpha=alpha)


def classify(cell: CellStats, base: CellStats, *, alpha: float = 0.05, min_effect: float = 0.5) -> Decision:
    """Classify ``cell`` against ``base`` (see the module docstring)."""
    if cell.name == base.name:
        if cell.n_judged == 0:  # say why nothing else could be decided (exit code 4)
            why = cell.errors[0] if cell.errors else "no trial passed or failed"
            return Decision(classification=Classification.BASELINE, note=f"the baseline could not run: {why}")
        return Decision(classification=Classification.BASELINE)
    if cell.n_judged == 0:
        why = cell.errors[0] if cell.errors else "no trial passed or failed"
        return Decision(classification=Classification.ERROR, note=why)
    if base.n_judged == 0:
        return Decision(
            classification=Classification.INCONCLUSIVE, note="the baseline has no pass/fail trials"
        )
    p = stats.fisher_exact(cell.n_target, cell.n_judged, base.n_target, base.n_judged)
    p_other = stats.fisher_exact(cell.n_other, cell.n_judged, base.n_other, base.n_judged)
    rate, base_rate = cell.n_target / cell.n_judged, base.n_target / base.n_judged
    other, base_other = cell.n_other / cell.n_judged, base.n_other / base.n_judged
    if other > base_other and p_other < alpha:
        top = next(iter(cell.signature_counts), "another signature")
        return Decision(
            classification=Classification.WORSE,
            p_value=p_other,
            note=f"fails another way significantly more often ({top})",
        )
    if p < alpha:
        kind = Classification.FIXED if rate < base_rate else Classification.WORSE
        return Decision(classification=kind, p_value=p)
    if base_rate == 0 and rate == 0:
        return Decision(
            classification=Classification.INCONCLUSIVE,
            p_value=p,
            note="neither this cell nor the baseline showed the failure",
        )
    powered = stats.trials_to_separate(base_rate, base_rate * (1 - min_effect), alpha=alpha)
    if (
        rate >= base_rate * (1 - min_effect)
        and powered is not None
        and min(cell.n_judged, base.n_judged) >= powered
    ):
        return Decision(classification=Classification.NO_EFFECT, p_value=p)
    needed = _needed(base_rate, rate, min_effect, alpha)
    note = f"about {needed} trials per cell would settle it" if needed else ""
    return Decision(classification=Classification.INCONCLUSIVE, p_value=p, trials_needed=needed, note=note)


@dataclass(frozen=True, slots=True, kw_only=True)
class Confound:
    """The speed comparison of one cell with the baseline."""

    ratio: float | None
    ci: tuple[float, float] | None
    flagged: bool
    threshold: float

    @property
    def label(self) -> str | None:
        """``speed (+N%)`` when flagged."""
        if not self.flagged or self.ratio is None:
            return None
        return f"speed (+{round((self.ratio - 1) * 100)}%)"


def speed_confound(cell: CellStats, base: CellStats, *, threshold: float, seed: int = 0) -> Confound:
    """Median step-time ratio cell/baseline with a bootstrap 95% interval; flagged when lo > threshold."""
    a, b = list(cell.step_times), list(base.step_times)
    if not a or not b:
        return Confound(ratio=None, ci=None, flagged=False, threshold=threshold)
    ratio, lo, hi = stats.bootstrap_ratio_ci(a, b, seed=seed)
    if math.isnan(ratio):
        return Confound(ratio=None, ci=None, flagged=False, threshold=threshold)
    if len(a) < MIN_STEP_SAMPLES or len(b) < MIN_STEP_SAMPLES or math.isnan(lo):
        return Confound(ratio=ratio, ci=None, flagged=False, threshold=threshold)
    return Confound(ratio=ratio, ci=(lo, hi), flagged=lo > threshold, threshold=threshold)


@dataclass(frozen=True, slots=True)
class GroupSequential:
    """``--until-decided``: interim looks with a pre-set Bonferroni split of alpha.

    A cell is looked at when its pass/fail trials reach 25%, 50%, 75% and 100% of its planned
    trials; at look k it stops early if Fisher's p against the baseline (as far as it has run) is
    below ``alpha * spend[k]``.  The shares sum to 1, so the chance of any false "fixed"/"worse"
    over all looks is at most ``alpha`` whatever the looks' correlation (Bonferroni); most alpha is
    kept for the final look.  The baseline always runs its full trials.
    """

    alpha: float
    fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    spend: tuple[float, ...] = (0.1, 0.2, 0.2, 0.5)

    def looks(self, planned: int) -> list[int]:
        """Trial counts at which a cell with ``planned`` trials is looked at (ascending, distinct)."""
        return sorted({max(1, math.ceil(f * planned)) for f in self.fractions})

    def alpha_at(self, n: int, planned: int) -> float | None:
        """The alpha spent at the look after ``n`` trials; None when ``n`` is not a look.

        With few planned trials two fractions can fall on one count; that look spends both shares.
        """
        share = sum(
            s for f, s in zip(self.fractions, self.spend, strict=True) if max(1, math.ceil(f * planned)) == n
        )
        return self.alpha * share if share else None

    def stop(self, cell: CellStats, base: CellStats, planned: int) -> float | None:
        """The alpha at which ``cell`` is decided now (stop it), or None to keep running."""
        level = self.alpha_at(cell.n_judged, planned)
        if level is None or base.n_judged == 0:
            return None
        p = stats.fisher_exact(cell.n_target, cell.n_judged, base.n_target, base.n_judged)
        p_other = stats.fisher_exact(cell.n_other, cell.n_judged, base.n_other, base.n_judged)
        more_other = cell.n_other * base.n_judged > base.n_other * cell.n_judged
        return level if p < level or (more_other and p_other < level) else None

    @property
    def final_alpha(self) -> float:
        """The level of the last look: the one a cell that runs to the end is classified at."""
        return self.alpha * self.spend[-1]

    def describe(self) -> str:
        """One sentence for the report."""
        looks = ", ".join(f"{round(f * 100)}%" for f in self.fractions)
        levels = "/".join(f"{self.alpha * s:g}" for s in self.spend)
        return (
            f"group-sequential: looks at {looks} of each cell's trials, Fisher two-sided at alpha "
            f"{levels} (Bonferroni split of {self.alpha:g}; overall false-decision rate <= {self.alpha:g})"
        )
