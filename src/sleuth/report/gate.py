"""The page of ``sleuth gate check --html``: the check's verdicts, each metric's history drawn with what
its findings compared it with, and the table of every metric.

Unlike the run-dir pages (:data:`sleuth.report._PAGES`) this one is built from the check itself: the
:class:`~sleuth.gate.checks.CheckReport` and the runs the check judged (oldest first, as
:func:`sleuth.gate.service.check_runs` read them), so the figures show the very values the verdicts
were reached on.  Nothing is recomputed: the lines and bands are the findings' own numbers.

Runs come out of the store with the redaction rule applied (:meth:`sleuth.gate.model.Run.public`);
the suite and the run ids (names the user chose) go through it here too, as does every text shown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sleuth.gate.checks import CheckReport, Finding, MetricCheck
from sleuth.gate.model import Run, Verdict
from sleuth.gate.render import change_text, check_counts, shown_rows
from sleuth.gate.service import Series, metric_series
from sleuth.model import printable
from sleuth.report import figures
from sleuth.report.common import MAX_ROWS
from sleuth.report.page import Block, Figure, Note, Page, Section, Status, Table
from sleuth.secrets import scrub_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from sleuth.gate.policy import Policy

__all__ = ["MAX_FIGURES", "check_html", "check_page", "clean", "scale"]

#: metrics drawn (the failing and undecided first); the table lists every one
MAX_FIGURES = 30
#: hard metrics named in the headline
NAMED = 5

_COLOUR = {
    Verdict.PASS: figures.GOOD,
    Verdict.FAIL: figures.BAD,
    Verdict.INCONCLUSIVE: figures.UNSURE,
    Verdict.INSUFFICIENT: figures.MUTED,
}
_RANK = {Verdict.FAIL: 0, Verdict.INCONCLUSIVE: 1, Verdict.INSUFFICIENT: 2, Verdict.PASS: 3}


def clean(text: Any) -> str:
    """Any text a gate page shows: printable, through the redaction rule."""
    return scrub_text(printable(str(text)))


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) else None


def _headline(report: CheckReport) -> tuple[str, Status]:
    if not report.results:
        return "INSUFFICIENT: no recorded runs match the policy yet.", Status.UNSURE
    rc = report.exit_code()
    text = f"{check_counts(report)} (exit {rc})"
    failed = [r.metric for r in report.results if r.mode == "hard" and r.verdict is Verdict.FAIL]
    if failed:
        more = f" and {len(failed) - NAMED} more" if len(failed) > NAMED else ""
        text += f"; hard FAIL: {', '.join(clean(m) for m in failed[:NAMED])}{more}"
    if rc == 1:
        return text, Status.BAD
    calm = all(r.verdict is Verdict.PASS for r in report.results)
    return text, Status.GOOD if rc == 0 and calm else Status.UNSURE


def _change(f: Finding) -> str:
    """A finding's change, with its interval when it has one ('' when it measures none)."""
    d = f.details
    if f.check == "regression" and "shift_interval" in d:
        ref, lo, hi = _num(d.get("baseline_median")), *(_num(x) for x in d["shift_interval"])
        rel, est = _num(d.get("relative_shift")), _num(d.get("shift"))
        conf = f" ({d['interval_confidence']:.0%})" if _num(d.get("interval_confidence")) else ""
        if rel is not None and ref:
            sides = [f"{x / abs(ref):+.2%}" if x is not None else "unbounded" for x in (lo, hi)]
            return f"{rel:+.2%} [{sides[0]}, {sides[1]}]{conf}"
        sides = [f"{x:+.4g}" if x is not None else "unbounded" for x in (lo, hi)]
        head = f"{est:+.4g}" if est is not None else "beyond the float range"
        return f"{head} [{sides[0]}, {sides[1]}]{conf}"
    if f.check == "baseline" and "baseline" in d:
        return f"{change_text(_num(d['baseline']), _num(d.get('value')))} vs --baseline"
    if f.check == "counter" and "reference" in d:
        ref, seen = _num(d["reference"]), [x for x in d.get("observed", ()) if _num(x) is not None]
        far = max(seen, key=lambda x: abs(x - ref)) if seen and ref is not None else None
        return f"{change_text(ref, far)} vs reference"
    if f.check == "budget" and "median" in d:
        return f"{change_text(_num(d.get('budget')), _num(d['median']))} vs budget"
    return ""


def _changes(r: MetricCheck) -> str:
    order = ("regression", "baseline", "counter", "budget")
    found = sorted((f for f in r.findings if _change(f)), key=lambda f: order.index(f.check))
    return _change(found[0]) if found else "-"


def _table(report: CheckReport) -> Table:
    shown = shown_rows(report.results, lambda r: r.verdict.value, MAX_ROWS)
    rows = tuple(
        (
            clean(r.metric),
            r.verdict.value,
            r.mode,
            str(r.runs),
            clean(_changes(r)),
            "-" if r.needed is None else str(r.needed),
            "; ".join(f"{f.check}: {f.verdict.value}: {clean(f.summary)}" for f in r.findings),
        )
        for r in shown.rows
    )
    return Table(
        ("metric", "verdict", "mode", "runs", "change [interval]", "runs needed", "findings"),
        rows,
        numeric=frozenset({3, 5}),
        cut=(len(rows), len(report.results)) if shown.hidden else None,
        caption="change: the regression's shift of the recent runs with its interval (relative to the "
        "baseline median), else the latest value against the --baseline file, the counter's reference or the "
        "budget. runs: runs with the metric. --json lists every metric with every number.",
    )


def _span(n: int, k: int, end: int | None = None) -> tuple[float, float]:
    """The x range of the ``k`` points ending at ``end`` (default: the last) of ``n``, half a step wider."""
    last = n if end is None else end
    return last - k + 0.6, last + 0.4


def _draw(ax: Axes, f: Finding, n: int, direction: str, baseline_runs: int, *, s: float) -> int:
    """Draw what ``f`` compared the history with (values times ``s``); return how many of the last
    points it judged."""
    from sleuth.gate.policy import parse_tolerance

    d, colour = f.details, _COLOUR[f.verdict]
    if f.check == "budget" and _num(d.get("budget")) is not None:
        k = int(d.get("n") or 0)
        ax.axhline(
            d["budget"] * s, color=figures.BAD, ls="--", lw=1.0, label=f"budget {d['side']} {d['budget']:g}"
        )
        if k and _num(d.get("median")) is not None:
            x0, x1 = _span(n, k)
            if _num(d.get("lower")) is not None and _num(d.get("upper")) is not None:
                ax.fill_between([x0, x1], d["lower"] * s, d["upper"] * s, color=colour, alpha=0.15, lw=0,
                                label=f"{d['coverage']:.1%} bounds of the median")  # fmt: skip
            ax.hlines(d["median"] * s, x0, x1, color=colour, lw=1.6, label=f"median of the last {k}")
        return k
    if f.check == "regression" and _num(d.get("baseline_median")) is not None:
        recent, base = int(d["n_recent"]), int(d["n_baseline"])
        ref = d["baseline_median"]
        b0, b1 = _span(n, base, n - recent)
        ax.axvspan(b0, b1, color=figures.MUTED, alpha=0.12, lw=0, label=f"baseline runs ({base})")
        ax.hlines(ref * s, b0, b1, color=figures.NEUTRAL, lw=1.6, label=f"baseline median {ref:g}")
        r0, r1 = _span(n, recent)
        if _num(d.get("recent_median")) is not None:
            ax.hlines(d["recent_median"] * s, r0, r1, color=colour, lw=1.6, label=f"recent median ({recent})")
        tol = parse_tolerance(d["min_effect"])
        limit = abs(ref * s) * tol.value if tol.relative else tol.value * s
        worse = ref * s + limit if direction == "lower" else ref * s - limit
        if math.isfinite(worse):
            ax.hlines(worse, b0, r1, color=figures.BAD, ls=":", lw=1.2, label=f"worse by min_effect {tol}")
        return recent
    if f.check in ("counter", "baseline"):
        key = "reference" if f.check == "counter" else "baseline"
        ref = _num(d.get(key))
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


def _figure(r: MetricCheck, series: Series, policy: Policy, raw: str) -> Figure | None:
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
            ax.scatter([x for x, _ in last], [y for _, y in last], s=30, color=_COLOUR[r.verdict], zorder=3,
                       label=f"judged ({len(last)}): {r.verdict.value}")  # fmt: skip
        ax.set_xlim(0.4, n + 0.6)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        first, newest = clean(series.labels[0]), clean(series.labels[-1])
        ax.set_xlabel(f"run with this metric, oldest first (1: {first}, {n}: {newest})")
        ax.set_ylabel((clean(r.unit) or "value") + times)
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False, ncols=3, fontsize=7.5)
        return Figure(
            figures.svg(fig),
            "Each run's value (the median of its samples), oldest first; the runs the check judged are "
            "coloured by the verdict, with what each finding compared them with (budget, baseline runs and "
            "the min_effect line, reference and tolerance).",
        )


def _raw_names(runs: Sequence[Run], wanted: set[str]) -> dict[str, str]:
    """The stored name of each shown metric name (the check shows names printable)."""
    found = {m: m for m in wanted if any(r.sample(m) is not None for r in runs)}
    if len(found) < len(wanted):
        for r in runs:
            for s in r.samples:
                found.setdefault(printable(s.metric), s.metric)
    return {m: found[m] for m in wanted if m in found}


def _metric_section(r: MetricCheck, series: Series | None, policy: Policy, raw: str) -> Section:
    blocks: list[Block] = []
    try:
        fig = _figure(r, series, policy, raw) if series is not None and series.values else None
    except (ValueError, OverflowError):  # a range matplotlib cannot lay out: the table still says it all
        blocks.append(Note("These values could not be drawn (their range is beyond the figure's)."))
    else:
        blocks.append(fig if fig is not None else Note("No recorded run has this metric: nothing to draw."))
    needed = f"; {r.needed} more run(s) needed" if r.needed else ""
    blocks.append(Note(f"{r.verdict.value} ({r.mode}, {r.kind}), {r.runs} run(s){needed}."))
    blocks.append(
        Table(
            ("check", "verdict", "finding"),
            tuple((f.check, f.verdict.value, clean(f.summary)) for f in r.findings),
        )
    )
    return Section(f"{clean(r.metric)}: {r.verdict.value}", tuple(blocks))


def _latest(runs: Sequence[Run]) -> list[tuple[str, str]]:
    if not runs:
        return []
    run = runs[-1]
    what = f"{run.run_id} at {run.created_at}, {run.status.value}"
    what += f", commit {run.commit}" if run.commit else ""
    what += f", branch {run.branch}" if run.branch else ""
    facts = [("latest run", clean(what))]
    host: Mapping[str, Any] = run.provenance.get("host") or {}
    where = " ".join(str(host[k]) for k in ("hostname", "system", "machine") if host.get(k))
    gpus = [
        str(g.get("name"))
        for info in (run.provenance.get("gpu") or {}).values()
        if isinstance(info, Mapping)
        for g in info.get("gpus") or ()
        if isinstance(g, Mapping) and g.get("name")
    ]
    if gpus:
        where += f"; {len(gpus)} GPU(s): {', '.join(sorted(set(gpus)))}"
    runner = (run.provenance.get("runner") or {}).get("RUNNER_NAME")
    if runner:
        where += f"; runner {runner}"
    if where:
        facts.append(("measured on", clean(where)))
    return facts


def check_page(
    report: CheckReport,
    runs: Sequence[Run],
    policy: Policy,
    *,
    history: str,
    policy_path: str,
    baseline_path: str | None = None,
) -> Page:
    """The page of a ``gate check``: ``runs`` are the runs it judged, oldest first."""
    headline, status = _headline(report)
    facts = [
        ("suite", clean(report.suite)),
        ("history", clean(history)),
        (
            "policy",
            clean(policy_path) + (f", branch {clean(policy.branch)}" if policy.branch else ", every branch"),
        ),
    ]
    if baseline_path:
        facts.append(("baseline file", clean(baseline_path)))
    if runs:
        facts.append(
            ("runs read", f"{len(runs)}, {clean(runs[0].created_at)} to {clean(runs[-1].created_at)}")
        )
    facts += _latest(runs)
    ranked = sorted(
        (r for r in report.results), key=lambda r: (_RANK[r.verdict], r.mode != "hard")
    )  # stable: the check's order within a rank
    drawn = ranked[:MAX_FIGURES]
    raw = _raw_names(runs, {r.metric for r in drawn if r.runs})
    sections = [
        _metric_section(r, metric_series(runs, raw[r.metric]) if r.metric in raw else None, policy,
                        raw.get(r.metric, r.metric))
        for r in drawn
    ]  # fmt: skip
    blocks: list[Block] = []
    if len(ranked) > len(drawn):
        left = len(ranked) - len(drawn)
        blocks.append(Note(f"{left} more metric(s) not drawn (the first {len(drawn)}, failing and undecided "
                           "first, are above); the table lists them."))  # fmt: skip
    if report.results:
        blocks.append(_table(report))
    else:
        blocks.append(Note("No metric of the policy has a recorded run, and no exact policy key is missing."))
    sections.append(Section("Every metric", tuple(blocks)))
    return Page(
        verb="gate check",
        title=f"sleuth gate check: {clean(report.suite)}",
        headline=headline,
        status=status,
        run_dir="",
        facts=tuple(facts),
        sections=tuple(sections),
    )


def check_html(report: CheckReport, runs: Sequence[Run], policy: Policy, **where: Any) -> str:
    """:func:`check_page` rendered: the text of the HTML file."""
    from sleuth.report.html import render

    return render(check_page(report, runs, policy, **where))
