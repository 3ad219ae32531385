"""The page of ``sleuth gate changepoints --html``: the series drawn with its change points and the
levels on either side, and the table of change points as the markdown gives it.

Built from what the command computed (the series it analysed, the change points it found, its
settings); nothing is recomputed.  With ``--incremental`` the change points are the new ones only:
the page says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sleuth.gate.changepoint import ChangePoint, Settings
from sleuth.gate.render import change_text
from sleuth.gate.service import Series
from sleuth.report import figures
from sleuth.report.common import MAX_ROWS
from sleuth.report.gate_figures import clean, scale
from sleuth.report.page import Block, Figure, Note, Page, Section, Status, Table

__all__ = ["changepoints_html", "changepoints_page"]


def _figure(series: Series, found: Sequence[ChangePoint], runs: bool) -> Figure | None:
    s, times = scale(series.values)
    points = [(i, v * s) for i, v in enumerate(series.values) if math.isfinite(v)]
    if not points:
        return None
    n = len(series.values)
    cuts = sorted({cp.index for cp in found if 0 < cp.index < n})
    with figures.figure(7.0, 3.0) as (fig, ax):
        ax.plot([x for x, _ in points], [y for _, y in points], color=figures.MUTED, lw=0.8, marker="o", ms=3,
                zorder=2, label=f"{'run value' if runs else 'value'} ({len(points)} points)")  # fmt: skip
        bounds = [0, *cuts, n]
        for k, cp in enumerate(sorted(found, key=lambda c: c.index)):
            at = bounds.index(cp.index) if cp.index in bounds else None
            if at is None:
                continue
            lo, hi = bounds[at - 1], bounds[at + 1]
            ax.axvline(cp.index - 0.5, color=figures.BAD, ls="--", lw=1.1,
                       label="change point" if k == 0 else "_nolegend_")  # fmt: skip
            ax.hlines(cp.before * s, lo - 0.4, cp.index - 0.6, color=figures.NEUTRAL, lw=1.6,
                      label="median before / after" if k == 0 else "_nolegend_")  # fmt: skip
            ax.hlines(cp.after * s, cp.index - 0.4, hi - 0.6, color=figures.NEUTRAL, lw=1.6)
        ax.set_xlim(-0.6, n - 0.4)
        what = "run, oldest first" if runs else "point, in file order"
        ax.set_xlabel(f"{what} (index from 0)")
        ax.set_ylabel("value" + times)
        figures.legend_above(ax, 3, 7.5)
        return Figure(
            figures.svg(fig),
            "The series with each change point (dashed, before its index: the first point of the new "
            "segment) and the medians of the segments on either side, between the neighbouring change "
            "points.",
        )


def changepoints_page(
    title: str,
    series: Series,
    found: Sequence[ChangePoint],
    settings: Settings,
    *,
    runs: bool,
    incremental: bool = False,
    fail_on_change: bool = False,
    non_numeric: int = 0,
) -> Page:
    """The page of one ``gate changepoints`` call on ``series`` (``runs``: a metric's runs, whose
    labels are run ids; else a CSV column)."""
    n = len(series.values)
    finite = sum(1 for v in series.values if not math.isnan(v))
    need = 2 * settings.min_segment
    new = "new " if incremental else ""
    if finite < need:
        headline, status = f"INSUFFICIENT: {finite} point(s); a change point needs {need}.", Status.UNSURE
    elif not found:
        headline, status = f"No {new}change point in {n} points.", Status.GOOD
    else:
        changes = ", ".join(f"{change_text(cp.before, cp.after)} at {cp.index}" for cp in found[:5])
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        headline = f"{len(found)} {new}change point(s) in {n} points: {changes}{more}"
        status = Status.BAD if fail_on_change else Status.NEUTRAL
    facts = [
        ("series", clean(title)),
        ("settings", f"alpha {settings.alpha:g}, min segment {settings.min_segment} points"),
    ]
    if n and runs and series.labels:
        facts.append(("points", f"{n}, first {clean(series.labels[0])}, last {clean(series.labels[-1])}"))
    elif n:
        facts.append(("points", str(n)))
    if non_numeric:
        facts.append(("not numbers", f"{non_numeric} cell(s), left out"))
    if incremental:
        facts.append(("incremental", "only the change points new since the last call are marked"))
    blocks: list[Block] = []
    try:
        fig = _figure(series, found, runs)
    except (ValueError, OverflowError):  # a range matplotlib cannot lay out: the table still says it all
        blocks.append(Note("The series could not be drawn (its range is beyond the figure's)."))
    else:
        blocks.append(fig if fig is not None else Note("No numeric point: nothing to draw."))
    if found:
        shown = list(found)[:MAX_ROWS]
        rows = tuple(
            (
                str(cp.index),
                clean(series.labels[cp.index]) if runs and cp.index < len(series.labels) else "-",
                f"{cp.before:g}",
                f"{cp.after:g}",
                change_text(cp.before, cp.after),
                f"{cp.p_value:.3g}",
            )
            for cp in shown
        )
        blocks.append(
            Table(
                ("index", "run", "before", "after", "change", "p-value"),
                rows,
                numeric=frozenset({0, 2, 3, 4, 5}),
                cut=(len(shown), len(found)) if len(found) > len(shown) else None,
                caption="index: the first point of the new segment; before / after: the medians of the "
                "segments on either side.",
            )
        )
    return Page(
        verb="gate changepoints",
        title=f"sleuth gate changepoints: {clean(title)}",
        headline=headline,
        status=status,
        run_dir="",
        facts=tuple(facts),
        sections=(Section("Series", tuple(blocks)),),
    )


def changepoints_html(
    title: str, series: Series, found: Sequence[ChangePoint], settings: Settings, **kw: Any
) -> str:
    """:func:`changepoints_page` rendered: the text of the HTML file."""
    from sleuth.report.html import render

    return render(changepoints_page(title, series, found, settings, **kw))
