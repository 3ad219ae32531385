"""The page of a ``sleuth run`` run dir: outcomes with their interval, trials over time, metrics by
outcome, failure signatures with a log of each, and the trials.

Built from the journal's ``trial`` events (so an interrupted or running run has a page too) and its
``end`` event's summary when the run ended.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from sleuth.report import figures
from sleuth.report.common import MAX_ROWS, fmt_num, fmt_pct, fmt_seconds, fmt_time, outcome_colour
from sleuth.report.page import Block, Figure, Log, Note, Page, Section, Status, Table
from sleuth.report.source import RunDirView

__all__ = ["page"]

#: the signatures whose first trial's log the page shows
LOGGED_SIGNATURES = 3
#: above this many trials the timeline's dots are drawn as an image inside the SVG (a page of
#: 100,000 vector dots would weigh megabytes and open slowly)
RASTER_POINTS = 2000
#: metrics drawn (the table lists all)
DRAWN_METRICS = 6


def trial_records(view: RunDirView) -> list[dict[str, Any]]:
    """Every journaled trial of the run, the last record of an id winning, in start order."""
    by_id: dict[str, dict[str, Any]] = {}
    for e in view.events:
        t = e.get("trial")
        if e.get("event") == "trial" and isinstance(t, dict) and isinstance(t.get("id"), str):
            by_id[t["id"]] = {**t, "_subdir": e.get("subdir", "trials")}
    return sorted(by_id.values(), key=lambda t: (t.get("started_at") or 0.0, t["id"]))


def _headline(
    summary: Mapping[str, Any] | None, trials: Sequence[Mapping[str, Any]], ended: bool
) -> tuple[str, Status]:
    fails = sum(t.get("outcome") == "fail" for t in trials)
    errors = sum(t.get("outcome") == "error" for t in trials)
    n = len(trials)
    if summary is not None and summary.get("failure_rate") is not None:
        lo, hi = (summary.get("failure_rate_ci") or [None, None])[:2]
        rate = f"failure rate {fmt_pct(summary['failure_rate'])} [95% CI {fmt_pct(lo)}-{fmt_pct(hi)}]"
    else:
        rate = "no judged trial"
    text = f"{fails} of {n} trial(s) failed" + (f", {errors} error(s)" if errors else "") + f": {rate}"
    if not ended:
        return f"Not finished (interrupted or still running): {text}", Status.UNSURE
    return text, Status.BAD if fails else (Status.UNSURE if errors or not n else Status.GOOD)


def _timeline(trials: Sequence[Mapping[str, Any]]) -> Figure | None:
    points = [
        (i + 1, float(t["wall_s"]), str(t.get("outcome", "")))
        for i, t in enumerate(trials)
        if isinstance(t.get("wall_s"), int | float)
    ]
    if not points:
        return None
    with figures.figure(7.0, 2.6) as (fig, ax):
        for outcome in ("pass", "fail", "skip", "error"):
            xs = [i for i, _, o in points if o == outcome]
            ys = [w for _, w, o in points if o == outcome]
            if xs:
                ax.scatter(
                    xs,
                    ys,
                    s=14,
                    color=outcome_colour(outcome),
                    label=f"{outcome} ({len(xs)})",
                    marker="x" if outcome == "fail" else "o",
                    linewidths=1.2,
                    rasterized=len(points) > RASTER_POINTS,
                )
        ax.set_xlabel("trial, in start order")
        ax.set_ylabel("wall time (s)")
        ax.set_ylim(bottom=0)
        figures.legend_above(ax, 4)
        return Figure(
            figures.svg(fig),
            "Each trial's wall time, coloured by outcome: failures that cluster "
            "in time (late, or after a slow trial) show here.",
        )


def _metric_figure(name: str, trials: Sequence[Mapping[str, Any]]) -> Figure | None:
    groups = {}
    for outcome in ("pass", "fail"):
        vals = [
            t["metrics"][name]
            for t in trials
            if t.get("outcome") == outcome and isinstance((t.get("metrics") or {}).get(name), int | float)
        ]
        if vals:
            groups[outcome] = vals
    if not groups:
        return None
    with figures.figure(7.0, 0.9 + 0.45 * len(groups)) as (fig, ax):
        labels = list(groups)
        ax.boxplot(
            [groups[k] for k in labels],
            orientation="horizontal",
            widths=0.5,
            showfliers=False,
            tick_labels=[f"{k} (n={len(groups[k])})" for k in labels],
        )
        for y, k in enumerate(labels, start=1):
            ax.scatter(groups[k], [y] * len(groups[k]), s=8, alpha=0.6, color=outcome_colour(k), zorder=3,
                       rasterized=len(groups[k]) > RASTER_POINTS)  # fmt: skip
        ax.set_xlabel(name)
        return Figure(figures.svg(fig), f"{name} by outcome: every trial a dot, the box its quartiles.")


def _signatures(view: RunDirView, trials: Sequence[Mapping[str, Any]]) -> list[Block]:
    counts: dict[str, list[Mapping[str, Any]]] = {}
    for t in trials:
        sig = t.get("signature")
        if t.get("outcome") in ("fail", "error") and isinstance(sig, str):
            counts.setdefault(sig, []).append(t)
    if not counts:
        return []
    ranked = sorted(counts.items(), key=lambda kv: -len(kv[1]))
    blocks: list[Block] = [
        Table(
            ("trials", "first trial", "signature"),
            tuple((str(len(ts)), ts[0]["id"], sig) for sig, ts in ranked[:MAX_ROWS]),
            numeric=frozenset({0}),
            cut=(MAX_ROWS, len(ranked)) if len(ranked) > MAX_ROWS else None,
        )
    ]
    for sig, ts in ranked[:LOGGED_SIGNATURES]:
        first = ts[0]
        log = _trial_log(view, first)
        if log is not None:
            blocks.append(Note(f"Trial {first['id']}, first of {len(ts)} with: {sig}"))
            blocks.append(log)
    return blocks


def _trial_log(view: RunDirView, t: Mapping[str, Any]) -> Log | None:
    base = f"{t.get('_subdir', 'trials')}/{t['id']}"
    return view.tail(f"{base}/stderr") or view.tail(f"{base}/stdout")


def _trial_rows(trials: Sequence[Mapping[str, Any]]) -> Table:
    def exit_of(t: Mapping[str, Any]) -> str:
        if t.get("timed_out"):
            return "timeout"
        if t.get("signal") is not None:
            return f"signal {t['signal']}"
        return "" if t.get("rc") is None else str(t["rc"])

    def metrics_of(t: Mapping[str, Any]) -> str:
        return "  ".join(f"{k}={fmt_num(v)}" for k, v in sorted((t.get("metrics") or {}).items()))

    # failures first when rows must be cut: they are what a reader looks for
    shown = list(trials)
    if len(shown) > MAX_ROWS:
        bad = [t for t in shown if t.get("outcome") != "pass"]
        shown = sorted(
            (bad + [t for t in shown if t.get("outcome") == "pass"])[:MAX_ROWS],
            key=lambda t: (t.get("started_at") or 0.0, t["id"]),
        )
    rows = tuple(
        (
            t["id"],
            str(t.get("outcome", "")).upper(),
            exit_of(t),
            fmt_seconds(t.get("wall_s")),
            metrics_of(t),
            t.get("signature") or t.get("reason") or t.get("error") or "",
        )
        for t in shown
    )
    return Table(
        ("trial", "outcome", "exit", "wall", "metrics", "signature / reason"),
        rows,
        numeric=frozenset({3}),
        cut=(len(rows), len(trials)) if len(rows) < len(trials) else None,
        caption="Every record is in summary.json and the journal; each trial's logs are under trials/ID/.",
    )


def page(view: RunDirView) -> Page:
    """The report of a ``sleuth run`` run dir."""
    start = view.start
    config = start.get("config") or {}
    trials = trial_records(view)
    end = next((e for e in reversed(view.events) if e.get("event") == "end"), None)
    summary = (end or {}).get("summary")
    headline, status = _headline(summary, trials, end is not None)
    argv = config.get("argv") or []
    backend = (config.get("backend") or {}).get("name", "local")
    facts = [
        ("environment", str((config.get("environment") or {}).get("kind", "host"))),
        (
            "trials",
            f"{len(trials)} run of {config.get('trials', '?')} planned, {config.get('jobs', 1)} at a time"
            + ("" if backend == "local" else f" on {backend}"),
        ),
        ("started", fmt_time(start.get("t"))),
    ]
    if config.get("cwd"):
        facts.append(("working directory", str(config["cwd"])))
    if summary and isinstance(summary.get("wall_s"), dict):
        w = summary["wall_s"]
        facts.append(("wall time", f"median {fmt_seconds(w.get('median'))}, p90 {fmt_seconds(w.get('p90'))}"))
    sections: list[Section] = []
    timeline = _timeline(trials)
    if timeline is not None:
        sections.append(Section("Trials over time", (timeline,)))
    metric_names = sorted({k for t in trials for k in (t.get("metrics") or {})})
    if metric_names:
        blocks: list[Block] = []
        stats = (summary or {}).get("metrics") or {}
        quantiles = ("median", "p90", "min", "max")
        rows = tuple(
            (k, str(stats.get(k, {}).get("n", "")), *(fmt_num(stats.get(k, {}).get(q)) for q in quantiles))
            for k in metric_names
        )
        blocks.append(
            Table(("metric", "n", "median", "p90", "min", "max"), rows, numeric=frozenset({1, 2, 3, 4, 5}))
        )
        for name in metric_names[:DRAWN_METRICS]:
            fig = _metric_figure(name, trials)
            if fig is not None:
                blocks.append(fig)
        sections.append(Section("Metrics", tuple(blocks)))
    sig_blocks = _signatures(view, trials)
    if sig_blocks:
        sections.append(Section("Failure signatures", tuple(sig_blocks)))
    if trials:
        sections.append(Section("Trials", (_trial_rows(trials),)))
    else:
        sections.append(Section("Trials", (Note("No trial was journaled yet."),)))
    return Page(
        verb="run",
        title=f"sleuth run: {config.get('name') or (argv[0] if argv else view.path.name)}",
        headline=headline,
        status=status,
        run_dir=str(view.path),
        facts=tuple(facts),
        sections=tuple(sections),
        command=shlex.join(str(a) for a in argv),
    )
