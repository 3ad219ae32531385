"""Figures for report pages: matplotlib's object API (no pyplot state), drawn to SVG text.

Every figure a page shows goes through :func:`figure` and :func:`svg`, so they share one look:
the same size rules, fonts, colours and no timestamps or random ids in the output (the same run
dir gives the same page, byte for byte).  Text is drawn as paths, so the page needs no font.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["BAD", "GOOD", "MUTED", "NEUTRAL", "UNSURE", "figure", "legend_above", "svg"]

#: the page's colours (the stylesheet in templates/page.html.j2 uses the same)
GOOD = "#1a7f37"
BAD = "#cf222e"
UNSURE = "#9a6700"
NEUTRAL = "#0969da"
MUTED = "#8c959f"

_STYLE: dict[str, Any] = {
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#d0d7de",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "svg.hashsalt": "sleuth",  # stable element ids
    "svg.fonttype": "path",  # no font needed where the page is opened
    "text.parse_math": False,  # labels are user data: "$HOME" or one "$" must not be mathtext
}


@contextmanager
def figure(width: float = 7.0, height: float = 2.8) -> Iterator[tuple[Figure, Axes]]:
    """A figure of ``width`` x ``height`` inches with one axes, in the report's style."""
    import matplotlib as mpl
    from matplotlib.figure import Figure

    with mpl.rc_context(_STYLE):  # type: ignore[arg-type]
        fig = Figure(figsize=(width, height), layout="constrained")
        yield fig, fig.add_subplot()


def svg(fig: Figure) -> str:
    """``fig`` as a standalone ``<svg>`` element (no XML prolog, no creation date)."""
    import matplotlib as mpl

    buf = io.StringIO()
    with mpl.rc_context(_STYLE):  # type: ignore[arg-type]
        fig.savefig(buf, format="svg", dpi=150, metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def legend_above(ax: Axes, ncols: int, fontsize: float = 8.0) -> None:
    """The axes' legend in one row above it, where it hides no point."""
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False, ncols=ncols, fontsize=fontsize)
