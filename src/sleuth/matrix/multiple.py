"""Many comparisons, one alpha: Holm's step-down procedure across the cells of a matrix.

The family is every comparison the matrix reports a decision for: each cell against the baseline
of its environment, and each environment's baseline against the reference baseline (the
environment's own effect).  One family, because the question a person asks of the table is "is
anything in it a real fix?": with one test per cell at alpha 0.05, a matrix of ten no-op cells
shows a false ``fixed`` or ``worse`` in about 40% of runs.  Holm keeps the chance of *any* false
``fixed``/``worse`` in the matrix at most alpha, whatever the dependence between the tests (the
cells of an environment share its baseline), and rejects at least what Bonferroni would.

Each comparison brings two hypotheses: its target failure rate, and (when either side failed
another way) its other-failure rate.  A hypothesis whose two cells never showed that failure
cannot be rejected at any level (Fisher's p is 1 for every table with those margins) and does
not count towards the family (Tarone's refinement for discrete tests), so a matrix of cells that
never fail another way pays nothing for that second test.

Adjusted p-values are on the alpha scale: a hypothesis is rejected exactly when its adjusted p is
below alpha.  Under ``--until-decided`` the interim looks spend their Bonferroni shares
(:class:`~sleuth.matrix.classify.GroupSequential`); a cell stopped at a look has the adjusted p
``p * alpha / level``, and Holm runs at the end over the rest with what is left
(``final_share * alpha``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from sleuth import stats
from sleuth.matrix.aggregate import CellStats
from sleuth.matrix.classify import Classification, Decision

__all__ = ["Comparison", "Stop", "decide", "holm"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    """A cell stopped by ``--until-decided``: the look's level, its p and direction, its trials."""

    level: float
    indices: frozenset[int]
    #: Fisher's p at the look (None in journals written before it was recorded)
    p: float | None = None
    #: the target rate was below the baseline's at the look
    lower: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """One comparison of the family: ``cell`` against ``base``."""

    name: str
    cell: CellStats
    base: CellStats
    stop: Stop | None = None


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1), in the order given."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def _p_target(c: Comparison) -> float:
    a, b = c.cell, c.base
    return stats.fisher_exact(a.n_target, a.n_judged, b.n_target, b.n_judged)


def decide(
    comparisons: Sequence[Comparison],
    *,
    alpha: float,
    min_effect: float,
    final_share: float = 1.0,
) -> dict[str, Decision]:
    """Decide every comparison together (see the module docstring); by name."""
    ok = [c for c in comparisons if c.cell.n_judged and c.base.n_judged]
    raw_t = {c.name: _p_target(c) for c in ok}
    raw_o = {
        c.name: stats.fisher_exact(c.cell.n_other, c.cell.n_judged, c.base.n_other, c.base.n_judged)
        for c in ok
        if c.cell.n_other + c.base.n_other > 0
    }
    family: list[tuple[str, str, float]] = [
        (c.name, "t", raw_t[c.name]) for c in ok if c.stop is None and c.cell.n_target + c.base.n_target > 0
    ]
    family += [(name, "o", p) for name, p in raw_o.items()]
    adjusted = holm([p for _, _, p in family])
    adj: dict[tuple[str, str], float] = {
        (name, kind): min(1.0, a / final_share) for (name, kind, _), a in zip(family, adjusted, strict=True)
    }
    # the level at which `no_effect` and the trials-needed estimate are powered: Bonferroni's, the
    # strictest step of Holm, so "enough trials" holds wherever the cell ranks
    level = alpha * final_share / max(1, len(ok))
    out: dict[str, Decision] = {}
    for c in comparisons:
        if c.cell.n_total == 0:  # interrupted before any of its trials finished: nothing failed
            out[c.name] = Decision(
                classification=Classification.INCONCLUSIVE, note="no trial has finished yet"
            )
        elif c.cell.n_judged == 0:
            why = c.cell.errors[0] if c.cell.errors else "no trial passed or failed"
            out[c.name] = Decision(classification=Classification.ERROR, note=why)
        elif c.base.n_judged == 0:
            out[c.name] = Decision(
                classification=Classification.INCONCLUSIVE, note="the baseline has no pass/fail trials"
            )
        else:
            p_o = raw_o.get(c.name)
            p_o_adj = adj.get((c.name, "o"), 1.0) if p_o is not None else None
            d = _one(
                c, p_t=raw_t[c.name], other=(p_o, p_o_adj), adj=adj, alpha=alpha, level=level,
                min_effect=min_effect,
            )  # fmt: skip
            out[c.name] = replace(d, p_other=p_o, p_other_adjusted=p_o_adj)
    return out


def _one(
    c: Comparison,
    *,
    p_t: float,
    other: tuple[float | None, float | None],
    adj: Mapping[tuple[str, str], float],
    alpha: float,
    level: float,
    min_effect: float,
) -> Decision:
    cell, base = c.cell, c.base
    rate, base_rate = cell.n_target / cell.n_judged, base.n_target / base.n_judged
    p_o, p_o_adj = other
    more_other = cell.n_other * base.n_judged > base.n_other * cell.n_judged
    if p_o is not None and p_o_adj is not None and more_other and p_o_adj < alpha:
        top = next(iter(cell.signature_counts), "another signature")
        return Decision(
            classification=Classification.WORSE,
            p_value=p_o,
            p_adjusted=p_o_adj,
            note=f"fails another way significantly more often ({top})",
        )
    if c.stop is not None:
        # decided at an interim look, on the trials both sides had then
        p_look = c.stop.p if c.stop.p is not None else p_t
        lower = c.stop.lower if c.stop.lower is not None else rate < base_rate
        kind = Classification.FIXED if lower else Classification.WORSE
        p_adj = min(1.0, p_look * alpha / c.stop.level)
        return Decision(classification=kind, p_value=p_look, p_adjusted=p_adj)
    p_t_adj = adj.get((c.name, "t"), 1.0)
    if p_t_adj < alpha:
        kind = Classification.FIXED if rate < base_rate else Classification.WORSE
        return Decision(classification=kind, p_value=p_t, p_adjusted=p_t_adj)
    if base_rate == 0 and rate == 0:
        return Decision(
            classification=Classification.INCONCLUSIVE,
            p_value=p_t,
            p_adjusted=p_t_adj,
            note="neither this cell nor the baseline showed the failure",
        )
    powered = stats.trials_to_separate(base_rate, base_rate * (1 - min_effect), alpha=level)
    if (
        rate >= base_rate * (1 - min_effect)
        and powered is not None
        and min(cell.n_judged, base.n_judged) >= powered
    ):
        return Decision(classification=Classification.NO_EFFECT, p_value=p_t, p_adjusted=p_t_adj)
    needed = _needed(base_rate, rate, min_effect, level)
    note = f"about {needed} trials per cell would settle it" if needed else ""
    return Decision(
        classification=Classification.INCONCLUSIVE,
        p_value=p_t,
        p_adjusted=p_t_adj,
        trials_needed=needed,
        note=note,
    )


def _needed(p_base: float, p_cell: float, min_effect: float, level: float) -> int | None:
    """Trials per cell that would settle it: to separate the observed rates when they differ by at
    least the smallest effect of interest, else to detect that effect (fixed, or no_effect)."""
    smallest = p_base * min_effect
    target = p_cell if abs(p_cell - p_base) >= smallest else p_base - smallest
    return stats.trials_to_separate(p_base, target, alpha=level)
