"""The figures of a ``sleuth matrix`` page: each cell's failure rate with its interval, and each
cell's step times against its baseline.

Both draw at most :data:`DRAWN_CELLS` cells (baselines and decided cells kept first, as the table
keeps them) and say so in their captions; a cell without a rate or a step time is left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from sleuth.report import figures
from sleuth.report.common import outcome_colour
from sleuth.report.matrix_cells import Cell, classification, is_baseline, items, num, pair, ranked, ratio_text
from sleuth.report.page import Figure

__all__ = ["DRAWN_CELLS", "rate_figure", "step_figure"]

#: cells drawn in each figure (the table lists up to MAX_ROWS)
DRAWN_CELLS = 40
_COLOUR = {"fixed": figures.GOOD, "worse": figures.BAD, "no_effect": figures.MUTED, "error": figures.MUTED}


def _pct(x: float) -> float:
    """A rate as a percentage inside the axes (a document's odd 1e308 is drawn at 100)."""
    return 100 * min(1.0, max(0.0, x))


def _label(c: Cell, ratio: bool = False) -> str:
    name = str(c.get("name"))
    name = name if len(name) <= 40 else name[:39] + "\u2026"
    if is_baseline(c):
        return name + " (baseline)"
    return name + (f"  {ratio_text(c)}" if ratio else "")


def rate_figure(cells: Sequence[Cell], ref: str) -> Figure | None:
    """Each cell's target failure rate with its 95% interval; ``ref`` (the reference baseline) marked."""
    drawn = [c for c in ranked(cells, DRAWN_CELLS) if num(c.get("failure_rate")) is not None]
    if not drawn:
        return None
    with figures.figure(7.0, 0.9 + 0.3 * len(drawn)) as (fig, ax):
        for y, c in enumerate(drawn):
            rate = _pct(c["failure_rate"])
            lo, hi = (_pct(v) for v in pair(c.get("failure_rate_ci")) or (c["failure_rate"],) * 2)
            colour = figures.NEUTRAL if is_baseline(c) else _COLOUR.get(classification(c), figures.UNSURE)
            marker = "D" if is_baseline(c) else "o"
            err = [[max(0.0, rate - lo)], [max(0.0, hi - rate)]]
            ax.errorbar([rate], [y], xerr=err, fmt=marker, color=colour, capsize=3, markersize=5)
            if c.get("name") == ref:
                ax.axvline(rate, color=figures.NEUTRAL, linestyle="--", linewidth=0.8)
                ax.axvspan(lo, hi, color=figures.NEUTRAL, alpha=0.08, linewidth=0)
        ax.set_yticks(range(len(drawn)), [_label(c) for c in drawn])
        ax.invert_yaxis()
        ax.set_xlim(-3, 103)
        ax.set_xlabel("target failure rate (%)")
        cut = f" {len(drawn)} of {len(cells)} cells drawn." if len(drawn) < len(cells) else ""
        return Figure(
            figures.svg(fig),
            "Each cell's target failure rate with its 95% Wilson interval (bars). Diamonds are baselines; "
            f"the dashed line and band are the reference baseline's ({ref}) rate and interval. Green: "
            "fixed, red: worse, amber: inconclusive (or not decided yet), grey: no effect." + cut,
        )


def _times(c: Cell, outcome: str | None = None) -> list[float]:
    return [
        float(t["step_time"])
        for t in items(c.get("trials"))
        if isinstance(t, dict) and num(t.get("step_time")) is not None and outcome in (None, t.get("outcome"))
    ]


def step_figure(cells: Sequence[Cell], source: str, ref: str) -> Figure | None:
    """Each cell's per-trial step times (box and dots by outcome) with its ratio to its baseline."""
    drawn = [c for c in ranked(cells, DRAWN_CELLS) if _times(c)]
    if not drawn:
        return None
    with figures.figure(7.0, 0.9 + 0.3 * len(drawn)) as (fig, ax):
        box = ax.boxplot(
            [_times(c) for c in drawn],
            orientation="horizontal",
            widths=0.55,
            showfliers=False,
            medianprops={"color": "#1f2328"},
            positions=range(len(drawn)),
            patch_artist=True,
        )
        for patch, c in zip(box["boxes"], drawn, strict=True):
            patch.set(facecolor="#fff1c2" if c.get("confound") else "none", edgecolor=figures.MUTED)
        for y, c in enumerate(drawn):
            for outcome in ("pass", "fail"):
                xs = _times(c, outcome)
                ax.scatter(xs, [y] * len(xs), s=10, alpha=0.7, color=outcome_colour(outcome), zorder=3)
            median = num(c.get("step_time_median"))
            if c.get("name") == ref and median is not None:
                ax.axvline(median, color=figures.NEUTRAL, linestyle="--", linewidth=0.8)
        ax.set_yticks(range(len(drawn)), [_label(c, ratio=True) for c in drawn])
        ax.invert_yaxis()
        ax.set_xlim(left=0)
        ax.set_xlabel(
            "wall time per trial (s)" if source == "wall_s" else "step time per trial (median of its steps)"
        )
        cut = f" {len(drawn)} of {len(cells)} cells drawn." if len(drawn) < len(cells) else ""
        return Figure(
            figures.svg(fig),
            f"Each trial's step time (from {source}): a dot per trial (green pass, red fail), the box its "
            f"quartiles, the dashed line the reference baseline's ({ref}) median; after each name, the "
            "median against its baseline's with its 95% interval. An amber box is a speed confound: a fix "
            "there may work only by slowing the workload down." + cut,
        )
