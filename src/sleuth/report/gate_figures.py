"""The figures of the gate pages (``gate check --html``, ``gate changepoints --html``): a metric's
history with what each finding compared it with, drawn in the units a float can hold.

Every text a gate page shows goes through :func:`clean` (:func:`sleuth.gate.render.clean`, as the
verbs' markdown, JUnit, tables and ``--json`` do: printable, the redaction rule, the values of this
shell's secret variables).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sleuth.gate.checks import Finding, MetricCheck
from sleuth.gate.model import Verdict, clean
from sleuth.gate.service import Series
from sleuth.report import figures
from sleuth.report.page import Figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from sleuth.gate.policy import Policy

__all__ = ["COLOUR", "clean", "finite", "history_figure", "scale"]

#: a verdict's colour in every gate figure
COLOUR = {
    Verdict.PASS: figures.GOOD,
    Verdict.FAIL: figures.BAD,
    Verdict.INCONCLUSIVE: figures.UNSURE,
    Verdict.INSUFFICIENT: figures.MUTED,
}


def finite(x: Any) -> float | None:
    """``x`` as a float when it is a finite number (a finding's detail may be null or missing), else None."""
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) else None


def _span(n: int, k: int, end: int | None = None) -> tuple[float, float]:
    """The x range of the ``k`` points ending at ``end`` (default: the last) of ``n``, half a step wider."""
    last = n if end is None else end
    return last - k + 0.6, last + 0.4


def _draw(ax: Axes, f: Finding, n: int, direction: str, baseline_runs: int, *, s: float) -> int:
    """Draw what ``f`` compared the history with (values times ``s``); return how many of the last
    points it judged."""
    from sleuth.gate.policy import parse_tolerance

    d, colour = f.details, COLOUR[f.verdict]
    if f.check == "budget" and finite(d.get("budget")) is not None:
        k = int(d.get("n") or 0)
        ax.axhline(
            d["budget"] * s, color=figures.BAD, ls="--", lw=1.0, label=f"budget {d['side']} {d['budget']:g}"
        )
        if k and finite(d.get("median")) is not None:
            x0, x1 = _span(n, k)
            if finite(d.get("lower")) is not None and finite(d.get("upper")) is not None:
                ax.fill_between([x0, x1], d["lower"] * s, d["upper"] * s, color=colour, alpha=0.15, lw=0,
                                label=f"{d['coverage']:.1%} bounds of the median")  # fmt: skip
            ax.hlines(d["median"] * s, x0, x1, color=colour, lw=1.6, label=f"median of the last {k}")
        return k
    if f.check == "regression" and finite(d.get("baseline_median")) is not None:
        recent, base = int(d["n_recent"]), int(d["n_baseline"])
        ref = d["baseline_median"]
        b0, b1 = _span(n, base, n - recent)
        ax.axvspan(b0, b1, color=figures.MUTED, alpha=0.12, lw=0, label=f"baseline runs ({base})")
        ax.hlines(ref * s, b0, b1, color=figures.NEUTRAL, lw=1.6, label=f"baseline median {ref:g}")
        r0, r1 = _span(n, recent)
        if finite(d.get("recent_median")) is not None:
            ax.hlines(d["recent_median"] * s, r0, r1, color=colour, lw=1.6, label=f"recent median ({recent})")
        tol = parse_tolerance(d["min_effect"])
        limit = abs(ref * s) * tol.value if tol.relative else tol.value * s
        worse = ref * s + limit if direction == "lower" else ref * s - limit
        if math.isfinite(worse):
            ax.hlines(worse, b0, r1, color=figures.BAD, ls=":", lw=1.2, label=f"worse by min_effect {tol}")
        return recent
    if f.check in ("counter", "baseline"):
        key = "reference" if f.check == "counter" else "baseline"
        ref = finite(d.get(key))
        if ref is None:
            return 1
        from_file = f.check == "baseline" or d.get("reference_from") == "baseline file"
        x0, x1 = (0.6, n + 0.4) if from_file else _span(n, min(baseline_runs, n - 1) + 1)
        label = f"--baseline {ref:g}" if from_file else f"reference {ref:g}"
        ax.hlines(ref * s, x0, x1, color=figures.NEUTRAL, lw=1.4, ls="-." if from_file else "-", label=label)
        tol = parse_tolerance(d.get("tolerance", 0))
        limit = abs(ref * s) * tol.value if tol.relative else tol.value * s
        if limit > 0 and math.isfinite(limit):
            lo = ref * s - limit if f.check == "counter" or direction == "higher" else ref * s
            hi = ref * s + limit if f.check == "counter" or direction == "lower" else ref * s
            ax.fill_between(
                [x0, x1], lo, hi, color=figures.NEUTRAL, alpha=0.10, lw=0, label=f"tolerance {tol}"
            )
        return 1
    return 0


def scale(values: Sequence[float]) -> tuple[float, str]:
    """The factor that draws ``values`` (a power of ten) and what the axis says of it: values near the
    float limit have a range matplotlib cannot hold (``1.7e308 - -1e308`` is inf)."""
    big = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    if big < 1e200:
        return 1.0, ""
    k = math.floor(math.log10(big))
    return 10.0**-k, f" (x 1e{k})"


def history_figure(r: MetricCheck, series: Series, policy: Policy, raw: str) -> Figure | None:
    s, times = scale(series.values)
    points = [(i + 1, v * s) for i, v in enumerate(series.values) if math.isfinite(v)]
    if not points:
        return None
    n = len(series.values)
    pol = policy.for_metric(raw)
    direction, baseline_runs = (pol.direction, pol.baseline_runs) if pol is not None else ("lower", 10)
    from matplotlib.ticker import MaxNLocator

    with figures.figure(7.0, 2.9) as (fig, ax):
        ax.plot([x for x, _ in points], [y for _, y in points], color=figures.MUTED, lw=0.8, marker="o",
                ms=3, zorder=2, label=f"run value ({n} runs)")  # fmt: skip
        judged = max([_draw(ax, f, n, direction, baseline_runs, s=s) for f in r.findings] or [0])
        last = [(x, y) for x, y in points if x > n - judged]
        if last:
            ax.scatter([x for x, _ in last], [y for _, y in last], s=30, color=COLOUR[r.verdict], zorder=3,
                       label=f"judged ({len(last)}): {r.verdict.value}")  # fmt: skip
        ax.set_xlim(0.4, n + 0.6)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        first, newest = clean(series.labels[0]), clean(series.labels[-1])
        ax.set_xlabel(f"run with this metric, oldest first (1: {first}, {n}: {newest})")
        ax.set_ylabel((clean(r.unit) or "value") + times)
        figures.legend_above(ax, 3, 7.5)
        return Figure(
            figures.svg(fig),
            "Each run's value (the median of its samples), oldest first; the runs the check judged are "
            "coloured by the verdict, with what each finding compared them with (budget, baseline runs and "
            "the min_effect line, reference and tolerance).",
        )
