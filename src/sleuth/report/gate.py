"""The page of ``sleuth gate check --html``: the check's verdicts, each metric's history drawn with what
its findings compared it with, and the table of every metric.

Unlike the run-dir pages (:data:`sleuth.report._PAGES`) this one is built from the check itself: the
:class:`~sleuth.gate.checks.CheckReport` and the runs the check judged (oldest first, as
:func:`sleuth.gate.service.check_runs` read them), so the figures show the very values the verdicts
were reached on.  Nothing is recomputed: the lines and bands are the findings' own numbers
(:mod:`sleuth.report.gate_figures` draws them).

Runs come out of the store with the redaction rule applied (:meth:`sleuth.gate.model.Run.public`);
the suite and the run ids (names the user chose) go through it here too, as does every text shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sleuth.gate.checks import CheckReport, Finding, MetricCheck
from sleuth.gate.model import Run, Verdict
from sleuth.gate.render import change_text, check_counts, shown_rows
from sleuth.gate.service import Series, metric_series
from sleuth.model import printable
from sleuth.report.common import MAX_ROWS
from sleuth.report.gate_figures import clean, finite, history_figure
from sleuth.report.page import Block, Note, Page, Section, Status, Table

if TYPE_CHECKING:
    from sleuth.gate.policy import Policy

__all__ = ["MAX_FIGURES", "check_html", "check_page"]

#: metrics drawn (the failing and undecided first); the table lists every one
MAX_FIGURES = 30
#: hard metrics named in the headline
NAMED = 5

_RANK = {Verdict.FAIL: 0, Verdict.INCONCLUSIVE: 1, Verdict.INSUFFICIENT: 2, Verdict.PASS: 3}


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
        ref, lo, hi = finite(d.get("baseline_median")), *(finite(x) for x in d["shift_interval"])
        rel, est = finite(d.get("relative_shift")), finite(d.get("shift"))
        conf = f" ({d['interval_confidence']:.0%})" if finite(d.get("interval_confidence")) else ""
        if rel is not None and ref:
            sides = [f"{x / abs(ref):+.2%}" if x is not None else "unbounded" for x in (lo, hi)]
            return f"{rel:+.2%} [{sides[0]}, {sides[1]}]{conf}"
        sides = [f"{x:+.4g}" if x is not None else "unbounded" for x in (lo, hi)]
        head = f"{est:+.4g}" if est is not None else "beyond the float range"
        return f"{head} [{sides[0]}, {sides[1]}]{conf}"
    if f.check == "baseline" and "baseline" in d:
        return f"{change_text(finite(d['baseline']), finite(d.get('value')))} vs --baseline"
    if f.check == "counter" and "reference" in d:
        ref, seen = finite(d["reference"]), [x for x in d.get("observed", ()) if finite(x) is not None]
        far = max(seen, key=lambda x: abs(x - ref)) if seen and ref is not None else None
        return f"{change_text(ref, far)} vs reference"
    if f.check == "budget" and "median" in d:
        return f"{change_text(finite(d.get('budget')), finite(d['median']))} vs budget"
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
        fig = history_figure(r, series, policy, raw) if series is not None and series.values else None
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
