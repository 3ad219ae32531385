"""``sleuth gate changepoints``, ``baseline capture|diff`` and ``runs`` (added to the group in gate.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from sleuth.cli import _gate_views as views
from sleuth.cli._gate_flags import (
    CTX,
    Outputs,
    branch_filter,
    check_db,
    check_name_flag,
    db_option,
    html_option,
    metric_filter,
    open_store,
    outputs_options,
    parse_fraction,
    refuse_secret,
    selected_runs,
    warn,
)
from sleuth.errors import ExitCode, UsageError
from sleuth.gate.model import clean, clean_doc

__all__ = ["baseline", "changepoints_cmd", "runs_cmd"]

# --- changepoints -------------------------------------------------------------------------------


@click.command("changepoints", context_settings=CTX)
@click.option("--suite", help="Benchmark suite (with --metric).")
@click.option("--metric", help="Metric whose run values form the series.")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(path_type=Path),
    help="Any series: a CSV file instead of the history.",
)
@click.option("--column", help="CSV column [default: the last].")
@click.option(
    "--alpha", type=float, default=0.01, show_default=True, help="Significance of each change point."
)
@click.option(
    "--min-segment", type=int, default=5, show_default=True, help="Fewest points on each side of a change."
)
@click.option(
    "--incremental", is_flag=True, help="Report only change points new since the last call (state kept)."
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(path_type=Path),
    help="State file for --incremental [default: in the store].",
)
@click.option("--branch", help="Only runs of this branch.")
@click.option("--fail-on-change", is_flag=True, help="Exit 1 when a (new) change point is found.")
@outputs_options
@html_option
@db_option
def changepoints_cmd(**kw: Any) -> int:
    """Where a series changes level: deterministic, calibrated, robust to autocorrelated runners."""
    from sleuth.gate.changepoint import Settings
    from sleuth.gate.render import Case, changepoints_markdown, junit_xml
    from sleuth.gate.service import changepoints, metric_series, read_csv_series

    if kw["csv_path"] is not None and (kw["suite"] or kw["metric"]):
        raise UsageError("give --csv FILE, or --suite with --metric, not both")
    if kw["csv_path"] is None and not (kw["suite"] and kw["metric"]):
        raise UsageError("which series? give --suite S --metric M, or --csv FILE")
    if kw["column"] and kw["csv_path"] is None:
        raise UsageError("--column goes with --csv")
    if kw["min_segment"] < 2:
        raise UsageError(f"--min-segment {kw['min_segment']}: must be at least 2")
    window = Settings().window
    if kw["min_segment"] * 4 > window:
        raise UsageError(
            f"--min-segment {kw['min_segment']}: must be at most {window // 4}",
            hint=f"the incremental detector searches the last {window} points for a change",
        )
    settings = Settings(alpha=parse_fraction("--alpha", kw["alpha"]), min_segment=kw["min_segment"])
    if kw["incremental"] and kw["csv_path"] is not None and kw["state_path"] is None:
        raise UsageError("--incremental with --csv needs --state FILE (where to keep what was seen)")
    out = Outputs(kw["as_json"], kw["markdown"], kw["junit"], kw["html"])
    state = _read_state(kw["state_path"]) if kw["incremental"] and kw["state_path"] else None
    bad = 0
    store = None
    if kw["csv_path"] is not None:
        series, bad = read_csv_series(kw["csv_path"], kw["column"])
        title = f"{kw['csv_path']}" + (f" [{kw['column']}]" if kw["column"] else "")
    else:
        suite = check_name_flag("--suite", kw["suite"])
        check_db(kw["db"])
        # not created: a history that does not exist has no points, so no state is written to it
        store = open_store(kw["db"], create=False)
        kw["branch"] = branch_filter(kw["branch"])  # as recorded; the state is keyed by it too
        (metric,) = metric_filter((kw["metric"],))  # as recorded (the state keeps its own key)
        runs = store.runs(suite, branch=kw["branch"], metrics=[metric])
        series = metric_series(runs, metric)
        title = f"{suite} {metric}"
        if kw["incremental"] and kw["state_path"] is None:
            state = store.get_state(suite, _state_key(kw["metric"], kw["branch"]))
    try:
        finite = sum(1 for v in series.values if not math.isnan(v))
        enough = finite >= 2 * settings.min_segment
        found, new_state = (
            changepoints(series, settings, state=state, incremental=kw["incremental"])
            if enough
            else ([], None)
        )
        if new_state is not None:
            if kw["state_path"] is not None:
                from sleuth.journal import atomic_write_json

                atomic_write_json(kw["state_path"], new_state)
            elif store is not None:
                store.put_state(kw["suite"], _state_key(kw["metric"], kw["branch"]), new_state)
    finally:
        if store is not None:
            store.close()
    rc = int(ExitCode.INCONCLUSIVE) if not enough else int(bool(kw["fail_on_change"] and found))
    cps = []
    for cp in found:
        d = cp.to_dict()
        if kw["csv_path"] is None:
            d["run_id"] = series.labels[cp.index]
        cps.append(d)
    data = {
        "series": title,
        "n": len(series.values),
        "non_numeric": bad,
        "verdict": None if enough else "INSUFFICIENT",
        "runs_needed": None if enough else 2 * settings.min_segment - finite,
        "incremental": kw["incremental"],
        "settings": {"alpha": settings.alpha, "min_segment": settings.min_segment},
        "change_points": cps,
    }
    labels = series.labels if kw["csv_path"] is None else ()
    md = changepoints_markdown(title, len(series.values), found, labels)
    if not enough:
        md += f"\n⏳ **INSUFFICIENT**: {finite} point(s); a change point needs {2 * settings.min_segment}.\n"
    cases = [
        Case(
            "sleuth.gate.changepoints",
            f"{title} @ {cp.index}",
            "failure" if kw["fail_on_change"] else "skipped",
            f"level {cp.before:g} -> {cp.after:g} (p={cp.p_value:.3g})",
        )
        for cp in found
    ] or [
        Case(
            "sleuth.gate.changepoints",
            title,
            "pass" if enough else "skipped",
            "no change point" if enough else "INSUFFICIENT",
        )
    ]

    def page() -> str:
        from sleuth.report.changepoints import changepoints_html

        return changepoints_html(title, series, found, settings, runs=kw["csv_path"] is None,
                                 incremental=kw["incremental"], fail_on_change=kw["fail_on_change"],
                                 non_numeric=bad)  # fmt: skip

    out.write(
        data=data,
        table=lambda: views.cp_table(title, data, found, labels),
        md=md,
        junit=lambda: junit_xml("sleuth gate changepoints", cases),
        html=page,
    )
    return rc


def _state_key(metric: str, branch: str | None) -> str:
    """Where the store keeps a series' incremental state: the metric's secrets hidden as ``record``
    hides a name's (:func:`sleuth.gate.ingest.public_metric`) before the store fits the key to its
    length (cut first, the start of a secret that straddled the cut stayed in the store)."""
    from sleuth.gate.ingest import public_metric

    return f"changepoints:{public_metric(metric)}:{branch or '*'}"


def _read_state(path: Path) -> dict[str, Any] | None:
    import json

    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise UsageError(
            f"--state {path}: not a state file ({exc})", hint="remove it to start over"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(
            f"--state {path}: not a state file (not a JSON object)", hint="remove it to start over"
        )
    return data


# --- baseline -----------------------------------------------------------------------------------


@click.group("baseline", context_settings=CTX)
def baseline() -> None:
    """Committed per-metric baselines: capture from history, diff against it."""


@baseline.command("capture", context_settings=CTX)
@click.option("--suite", required=True, help="Benchmark suite.")
@click.option(
    "-o", "--output", "output", required=True, type=click.Path(path_type=Path), help="Baseline file to write."
)
@click.option("--last", type=int, default=10, show_default=True, help="From the last N runs.")
@click.option("--metric", "metrics", multiple=True, help="Metric name or glob (repeatable) [default: all].")
@click.option("--branch", help="Only runs of this branch.")
@click.option("--json", "as_json", is_flag=True, help="Print the document too.")
@db_option
def baseline_capture(**kw: Any) -> int:
    """Write per-metric baselines (median of the last N run values) to a file to commit."""
    from sleuth.cli._common import print_json
    from sleuth.gate.baseline import capture, load_baseline
    from sleuth.journal import atomic_write_json

    suite = check_name_flag("--suite", kw["suite"], stored=True)  # the file is committed, diff reads it
    refuse_secret("--branch", kw["branch"])
    if kw["last"] < 1:
        raise UsageError(f"--last {kw['last']}: must be at least 1")
    path: Path = kw["output"]
    if path.is_dir():
        raise UsageError(f"-o {path}: is a directory")
    keep = load_baseline(path, "-o") if path.is_file() else None
    kw["metrics"] = metric_filter(kw["metrics"])  # as recorded
    runs = selected_runs(kw, suite)
    if not runs:
        warn(f"INSUFFICIENT: no runs recorded for suite {suite}; nothing written")
        return int(ExitCode.INCONCLUSIVE)
    doc = capture(runs, suite=suite, last=kw["last"], branch=kw["branch"], patterns=kw["metrics"], keep=keep)
    atomic_write_json(path, doc)
    if kw["as_json"]:  # the file keeps the suite as named: baseline diff reads it back
        print_json(clean_doc(doc))
    else:
        click.echo(clean(f"wrote {path}: {len(doc['metrics'])} metric(s) from {len(runs)} run(s)"))
    return 0


@baseline.command("diff", context_settings=CTX)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--suite", help="Benchmark suite [default: the file's].")
@click.option("--last", type=int, default=None, help="Compare with the last N runs [default: the file's].")
@click.option(
    "--tolerance",
    default="0",
    show_default=True,
    help="Moved beyond this (absolute, or '5%') when an entry has none.",
)
@click.option("--branch", help="Only runs of this branch [default: the file's].")
@outputs_options
@db_option
def baseline_diff(file: Path, **kw: Any) -> int:
    """What moved against a committed baseline file (for a re-baseline PR); exit 1 when something did."""
    from sleuth.gate.baseline import capture, diff, load_baseline
    from sleuth.gate.policy import parse_tolerance
    from sleuth.gate.render import Case, baseline_markdown, junit_xml
    from sleuth.gate.service import recent_runs

    committed = load_baseline(file, "FILE")
    try:
        tol = parse_tolerance(kw["tolerance"], "--tolerance")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not kw["suite"] and not committed.get("suite"):
        raise UsageError(f"FILE {file}: names no suite", hint="give --suite")
    suite = check_name_flag("--suite", kw["suite"] or committed["suite"])
    last = kw["last"] or int(committed.get("last") or 10)
    if last < 1:
        raise UsageError(f"--last {last}: must be at least 1")
    branch = branch_filter(kw["branch"] or committed.get("branch"))
    out = Outputs(kw["as_json"], kw["markdown"], kw["junit"])
    check_db(kw["db"])
    store = open_store(kw["db"], create=False)
    try:
        runs = recent_runs(store, suite, lambda m: last, last=last, branch=branch)
    finally:
        store.close()
    if not runs:
        warn(f"INSUFFICIENT: no runs recorded for suite {suite}")
        return int(ExitCode.INCONCLUSIVE)
    rows = diff(committed, capture(runs, suite=suite, last=last, branch=branch), tol)
    moved = [r for r in rows if r.status != "same"]
    cases = [
        Case(f"sleuth.gate.baseline.{suite}", r.metric, "failure" if r.status != "same" else "pass", r.status)
        for r in rows
    ]
    out.write(
        data={
            "file": str(file),
            "suite": suite,
            "runs": len(runs),
            "moved": len(moved),
            "metrics": [r.to_dict() for r in rows],
        },
        table=lambda: views.baseline_table(rows),
        md=baseline_markdown(str(file), rows),
        junit=lambda: junit_xml("sleuth gate baseline diff", cases),
    )
    return 1 if moved else 0


# --- runs ---------------------------------------------------------------------------------------


@click.command("runs", context_settings=CTX)
@click.option("--suite", help="Benchmark suite [default: list the suites].")
@click.option("--last", type=int, default=None, help="Only the last N runs.")
@click.option("--branch", help="Only runs of this branch.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (with every sample).")
@db_option
def runs_cmd(**kw: Any) -> int:
    """List the recorded runs of a suite (or the suites)."""
    from sleuth.cli._common import print_json

    check_db(kw["db"])
    if kw["last"] is not None and kw["last"] < 1:
        raise UsageError(f"--last {kw['last']}: must be at least 1")
    store = open_store(kw["db"], create=False)
    try:
        if not kw["suite"]:
            suites = store.suites()
            if kw["as_json"]:
                print_json(clean_doc({"db": store.display, "suites": suites}))
            else:
                click.echo(
                    "\n".join(map(clean, suites)) if suites else clean(f"no suites in {store.display}")
                )
            return 0
        suite = check_name_flag("--suite", kw["suite"])
        runs = store.runs(suite, branch=branch_filter(kw["branch"]), last=kw["last"])
    finally:
        store.close()
    if kw["as_json"]:
        print_json(clean_doc({"db": store.display, "suite": suite, "runs": [r.to_dict() for r in runs]}))
        return 0
    if not runs:
        click.echo(clean(f"no runs of {suite} in {store.display}"))
        return 0
    for r in runs:
        click.echo(
            f"{r.created_at}  {clean(r.run_id):<20} {r.status.value:<8} {clean(r.branch or '-'):<16} "
            f"{clean(r.commit or '-')[:12]:<12} {len(r.samples)} metric(s)"
        )
    return 0
