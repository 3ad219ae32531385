"""The figures of the ``sleuth bisect`` page: the search test by test, and the metric per candidate.

Both take what :mod:`sleuth.report.bisect_source` read from the run dir (journaled tests, candidate lists,
the summary's ``perf``); neither computes a statistic the run did not write.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from sleuth.report import figures
from sleuth.report.page import Figure

__all__ = ["metric_figure", "search_figure", "short", "verdict"]

_SHA = re.compile(r"[0-9a-f]{40}")


def short(label: str) -> str:
    """A label as a table or an axis shows it: a git SHA cut to 12 digits."""
    return label[:12] if _SHA.fullmatch(label) else label


#: category -> (colour, marker), in legend order
_LOOK = {
    "pass": (figures.GOOD, "o"),
    "fail": (figures.BAD, "x"),
    "skip": (figures.MUTED, "s"),
    "other failure": (figures.UNSURE, "x"),
    "error": (figures.UNSURE, "D"),
    "good": (figures.GOOD, "o"),
    "bad": (figures.BAD, "x"),
    "sample": (figures.NEUTRAL, "o"),
}


def verdict(t: Mapping[str, Any], perf: Mapping[str, Any] | None, labels: Sequence[str]) -> str:
    """A test's category in the figures: its counted outcome, or in performance mode its candidate's
    verdict by the metric (``good``, ``bad``, ``sample`` while undecided)."""
    if perf is not None and t.get("value") is not None:
        label = str(t.get("label"))
        v = str((perf.get("verdicts") or {}).get(label, ""))
        if not v and labels:
            v = {labels[0]: "good", labels[-1]: "bad"}.get(label, "")
        return v if v in ("good", "bad") else "sample"
    counted, outcome = str(t.get("counted", "")), str(t.get("outcome", ""))
    if counted == "skip" and outcome == "fail":
        return "other failure"
    return outcome if outcome == "error" else counted


def _ticks(ax: Any, labels: Sequence[str], marks: Sequence[int]) -> None:
    """The answer's positions and the ends labelled on the y axis; one too close to another is not."""
    n, at = len(labels), list[int]()
    gap = max(1.0, 0.07 * n)
    for i in (*reversed(marks), 0, n - 1):  # the first bad side first: it is what a reader looks for
        if 0 <= i < n and all(abs(i - j) >= gap for j in at):
            at.append(i)
    at.sort()
    ax.set_yticks(at, [f"{i}: {short(labels[i])[:24]}" for i in at])


def _finite(x: Any) -> TypeGuard[int | float]:
    return isinstance(x, int | float) and math.isfinite(x)


def _interval(row: Mapping[str, Any]) -> tuple[float, float]:
    """A candidate's 95% interval of its median; the median itself where the summary has none."""
    ci = row.get("ci")
    if isinstance(ci, list) and len(ci) >= 2 and _finite(ci[0]) and _finite(ci[1]):
        return float(ci[0]), float(ci[1])
    return float(row["median"]), float(row["median"])


def search_figure(
    tests: Sequence[Mapping[str, Any]],
    stages: Sequence[Sequence[str]],
    box: tuple[int, int] | None,
    *,
    answer: str,
    perf: Mapping[str, Any] | None,
    settled: bool = False,
) -> Figure | None:
    """Test number on x, candidate position on y, each test a marker by outcome; ``box`` (last good
    side, first bad side) drawn as the boundary (a line, red when ``settled``) or the band it may lie in."""
    points = [
        t
        for t in tests
        if isinstance(t.get("index"), int) and t["index"] >= 0 and isinstance(t.get("seq"), int)
    ]
    if not points:
        return None
    labels = stages[-1] if stages else []
    last = len(stages) - 1
    from matplotlib.ticker import MaxNLocator

    with figures.figure(7.0, 3.2) as (fig, ax):
        for cat, (colour, marker) in _LOOK.items():
            xs = [t["seq"] for t in points if verdict(t, perf, labels) == cat]
            ys = [t["index"] for t in points if verdict(t, perf, labels) == cat]
            if xs:
                ax.scatter(
                    xs,
                    ys,
                    s=18,
                    color=colour,
                    marker=marker,
                    linewidths=1.3,
                    label=f"{cat} ({len(xs)})",
                    zorder=3,
                )
        for k in range(1, len(stages)):  # a merged branch or the next repository: a new list of candidates
            own = [t["seq"] for t in points if t.get("_stage") == k]
            if own:
                ax.axvline(min(own) - 0.5, color=figures.MUTED, linestyle=":", linewidth=1)
        final = [t["seq"] for t in points if t.get("_stage") == last] or [t["seq"] for t in points]
        x0, x1 = min(final) - 0.5, max(final) + 0.5
        if box is not None and labels:
            lo, hi = box[0] + 0.5, box[1] - 0.5
            if hi > lo:
                ax.fill_between([x0, x1], lo, hi, color=figures.UNSURE, alpha=0.15, linewidth=0, label=answer)
            else:
                colour = figures.BAD if settled else figures.UNSURE
                ax.hlines(lo, x0, x1, colors=colour, linestyles="--", linewidth=1.2, label=answer)
            _ticks(ax, labels, box)
        elif labels:
            _ticks(ax, labels, ())
        ax.set_ylim(-0.5, max(len(labels), 1 + max(t["index"] for t in points)) - 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("test number (journal order)")
        ax.set_ylabel("candidate (position: label)")
        figures.legend_above(ax, 4)
        caption = (
            "Each test at its number (x) and its candidate's position in the range, oldest at the bottom "
            "(y), coloured by what the search counted; reruns of one candidate line up horizontally. "
            + (
                (
                    "The red dashed line is the answer's boundary. "
                    if settled
                    else f"The dashed line: {answer}. "
                )
                if box and box[1] - box[0] == 1
                else ""
            )
            + (
                f"The shaded band is where the boundary may lie ({answer}). "
                if box and box[1] - box[0] > 1
                else ""
            )
            + (
                "Dotted verticals start a new list of candidates (a merged branch or the next repository); "
                "the axis labels are the last list's."
                if len(stages) > 1
                else ""
            )
        )
        return Figure(figures.svg(fig), caption.strip())


def metric_figure(
    tests: Sequence[Mapping[str, Any]],
    perf: Mapping[str, Any],
    box: tuple[int, int] | None,
    labels: Sequence[str],
) -> Figure | None:
    """Performance mode: every run's value at its candidate, each candidate's median with its 95%
    interval, the good end's median with the threshold, and the step found."""
    points = [t for t in tests if isinstance(t.get("value"), int | float) and isinstance(t.get("index"), int)]
    rows = [
        r for r in perf.get("candidates") or [] if isinstance(r, dict) and isinstance(r.get("index"), int)
    ]
    if not points and not rows:
        return None
    metric = str(perf.get("metric", "metric"))
    from matplotlib.ticker import MaxNLocator

    with figures.figure(7.0, 3.0) as (fig, ax):
        for cat in ("good", "bad", "sample"):
            own = [t for t in points if verdict(t, perf, labels) == cat]
            if own:
                colour, _ = _LOOK[cat]
                ax.scatter(
                    [t["index"] for t in own],
                    [t["value"] for t in own],
                    s=10,
                    alpha=0.55,
                    color=colour,
                    label=f"run, {cat} ({len(own)})",
                    zorder=2,
                )
        med = [r for r in rows if _finite(r.get("median"))]
        if med:
            ci = [_interval(r) for r in med]
            lower = [max(0.0, r["median"] - c[0]) for r, c in zip(med, ci, strict=True)]
            upper = [max(0.0, c[1] - r["median"]) for r, c in zip(med, ci, strict=True)]
            ax.errorbar(
                [r["index"] for r in med],
                [r["median"] for r in med],
                yerr=[lower, upper],
                fmt="_",
                color="#1f2328",
                capsize=3,
                markersize=10,
                label="median, 95% interval",
                zorder=3,
            )
        good = next((r for r in med if r.get("decision") == "good (end)"), None)
        thr = perf.get("threshold_pct")
        if good is not None and _finite(thr):
            sign = -1 if perf.get("direction") == "higher" else 1
            level = good["median"] * (1 + sign * thr / 100)
            ax.axhline(good["median"], color=figures.GOOD, linewidth=0.8, linestyle=":")
            ax.axhline(
                level,
                color=figures.UNSURE,
                linewidth=1,
                linestyle="--",
                label=f"threshold ({'+' if sign > 0 else '-'}{thr:g}% of the good end's median)",
            )
        if box is not None:
            ax.axvline(
                (box[0] + box[1]) / 2, color=figures.BAD, linewidth=1.2, linestyle="--", label="step found"
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("candidate (position in the range)")
        ax.set_ylabel(metric)
        figures.legend_above(ax, 3)
        return Figure(
            figures.svg(fig),
            f"{metric} per tested candidate ({perf.get('direction', 'lower')} is better): every run a dot "
            "coloured by its candidate's verdict, each candidate's median with its 95% interval; the dotted "
            "line is the good end's median, the dashed one the threshold beyond it, the red dashed vertical "
            "the step found.",
        )
