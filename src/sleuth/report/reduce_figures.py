"""The figure of the ``sleuth reduce`` page: each axis's best size over the oracle calls.

It takes the steps :mod:`sleuth.report.reduce_steps` read; without values (a killed run's journal
from before they were journaled) it draws each candidate's verdict by axis instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sleuth.report import figures
from sleuth.report.page import Figure
from sleuth.report.reduce_steps import as_dict, taken, value_size

__all__ = ["progress_figure"]


def progress_figure(
    steps: Sequence[Mapping[str, Any]], kinds: Mapping[str, str], valued: bool
) -> Figure | None:
    """Each axis's best size over the oracle calls as a percentage of its initial size, every
    candidate a dot; without values (a killed run's journal), each candidate's verdict by axis."""
    values = next(
        (s["values"] for s in steps if s.get("phase") == "baseline" and isinstance(s.get("values"), dict)),
        None,
    )
    sizes = (
        {n: value_size(kinds.get(n, ""), v) for n, v in values.items()} if isinstance(values, dict) else {}
    )
    first = {n: x for n, x in sizes.items() if x}
    names = list(first) or list(
        dict.fromkeys(str(s.get("axis")) for s in steps if s.get("phase") == "search")
    )
    if not names or not any(s.get("phase") == "search" for s in steps):
        return None
    points: dict[str, list[tuple[int, float, bool]]] = {n: [] for n in names}
    call = 1  # the original's
    for s in steps:
        axis = str(s.get("axis"))
        call += s.get("phase") == "search" and not s.get("cache_hit")
        size = value_size(kinds.get(axis, ""), as_dict(s.get("values")).get(axis)) if first else 0.0
        if s.get("phase") == "search" and axis in points and size is not None:
            y = 100.0 * size / first[axis] if first else float(names.index(axis))
            points[axis].append((call, y, taken(s)))
    from matplotlib.ticker import MaxNLocator

    with figures.figure(7.0, 3.0 if first else 1.0 + 0.35 * len(names)) as (fig, ax):
        for i, name in enumerate(names):
            colour = f"C{i % 10}" if first else figures.GOOD
            ok = [(c, y) for c, y, used in points[name] if used]
            no = [(c, y) for c, y, used in points[name] if not used]
            if first:
                best = [(1, 100.0), *ok, (call, ok[-1][1] if ok else 100.0)]
                ax.step([c for c, _ in best], [y for _, y in best], where="post", color=colour, label=name)
            ax.scatter([c for c, _ in no], [y for _, y in no], s=10, color=figures.MUTED, marker="x")
            ax.scatter([c for c, _ in ok], [y for _, y in ok], s=18, color=colour, zorder=3)
        ax.set_xlim(0.5, call + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("oracle call (the original is call 1; cache hits call no oracle)")
        if not first:
            ax.set_yticks(range(len(names)), names)
            ax.set_ylim(-0.6, len(names) - 0.4)
            why = "" if valued else "  The journal keeps no values: the trace written at the end has them."
            return Figure(
                figures.svg(fig),
                "Each candidate, on the axis it changed, by oracle call: green accepted (the search moved "
                "there), grey rejected." + why,
            )
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_yticks([0, 1, 10, 100], ["0", "1%", "10%", "100%"])
        ax.set_ylim(-0.1, 200)
        ax.set_ylabel("size, % of the original's")
        figures.legend_above(ax, 6)
        return Figure(
            figures.svg(fig),
            "The best point's size on each axis (its value, the items kept, the window's length) as a "
            "percentage of the original's, by oracle call: coloured dots are accepted steps, grey "
            "crosses candidates that did not reproduce or came too late to be used.  Log scale above 1%.",
        )
