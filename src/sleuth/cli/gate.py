"""``sleuth gate``: benchmark history, soft-to-hard graduation, budgets and change points.

    sleuth gate record --suite S --run-id ID [--commit SHA] [--branch B] [--status success|failure] FILE...
    sleuth gate record --emit-metadata DIR --suite S --run-id ID FILE...   (producing CI job)
    sleuth gate record --from-dir DIR                                       (gating CI job)
    sleuth gate graduate --suite S [--metric M] [--last N] [--target-cv 1%] [--mode soft|hard]
    sleuth gate check --suite S --policy policy.yaml [--baseline baselines.json]
    sleuth gate changepoints (--suite S --metric M | --csv FILE [--column NAME]) [--incremental]
    sleuth gate baseline capture --suite S -o baselines.json / baseline diff baselines.json
    sleuth gate runs --suite S

Exit codes: 0 pass/OK, 1 failed (hard mode), 2 usage error, 3 inconclusive or insufficient data.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from sleuth.cli._gate_flags import (
    Outputs,
    check_name_flag,
    db_option,
    outputs_options,
    parse_fraction,
    parse_percent,
)
from sleuth.errors import ExitCode, UsageError

__all__ = ["command"]

_CTX = {"help_option_names": ["-h", "--help"]}
_STATUSES = ("success", "failure")


def _open(db: str | None, *, create: bool) -> Any:
    from sleuth.gate.store import default_url, open_store

    return open_store(db or default_url(), create=create)


def _check_db(db: str | None) -> None:
    """Parse ``--db`` early: a bad URL is a usage error before anything is read or written."""
    from sleuth.gate.store import default_url, parse_url

    parse_url(db or default_url())


@click.group(context_settings=_CTX)
def command() -> None:
    """Benchmark history, soft-to-hard graduation, budgets, regressions and change points.

    Exit codes: 0 pass, 1 failed (hard mode), 2 usage error, 3 inconclusive or not enough runs.
    """


# --- record -------------------------------------------------------------------------------------


def _created_at(text: str | None) -> str:
    from sleuth.gate.model import utc_now

    if text is None:
        return utc_now()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--created-at {text!r}: not an ISO 8601 time", hint="e.g. 2025-01-31T12:00:00Z"
        ) from None
    if dt.tzinfo is None:
        raise UsageError(f"--created-at {text!r}: give a time zone", hint="e.g. 2025-01-31T12:00:00Z")
    from datetime import UTC

    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@command.command("record", context_settings=_CTX)
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--suite", help="Benchmark suite name (letters, digits, '_', '.', '-').")
@click.option("--run-id", help="CI run id [default: $GITHUB_RUN_ID(-$GITHUB_RUN_ATTEMPT)].")
@click.option("--commit", help="Commit measured [default: $GITHUB_SHA].")
@click.option("--branch", help="Branch measured [default: $GITHUB_HEAD_REF or $GITHUB_REF_NAME].")
@click.option(
    "--status",
    type=click.Choice(_STATUSES),
    default="success",
    show_default=True,
    help="How the CI job ended.",
)
@click.option("--created-at", help="When the run happened (ISO 8601 with zone) [default: now].")
@click.option("--format", "fmt", default="auto", show_default=True, help="Input format, or auto-detect.")
@click.option(
    "--from-dir", type=click.Path(path_type=Path), help="Record every run in a tree of CI artifacts."
)
@click.option(
    "--emit-metadata",
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Write FILEs and a metadata file into DIR (producing job); records nothing.",
)
@click.option("--replace", is_flag=True, help="Overwrite a run id that is already recorded.")
@click.option("--no-provenance", is_flag=True, help="Do not record this machine's host/GPU provenance.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@db_option
def record(files: tuple[Path, ...], **kw: Any) -> int:
    """Ingest one CI run's benchmark output (FILE...), or a tree of artifacts (--from-dir)."""
    from sleuth.gate.formats import FORMATS

    if kw["fmt"] not in ("auto", *FORMATS):
        raise UsageError(f"--format {kw['fmt']!r}: unknown", hint=f"give auto or one of {', '.join(FORMATS)}")
    if kw["from_dir"] is not None:
        return _record_from_dir(files, kw)
    from sleuth.gate.ingest import read_files
    from sleuth.gate.provenance import ci_defaults

    if not files:
        raise UsageError("record needs FILE... (benchmark output), or --from-dir DIR")
    ci = ci_defaults()
    meta = {
        "suite": check_name_flag("--suite", kw["suite"] or _missing("--suite", "e.g. --suite detectors")),
        "run_id": check_name_flag(
            "--run-id",
            kw["run_id"] or ci["run_id"] or _missing("--run-id", "or run inside CI ($GITHUB_RUN_ID)"),
        ),
        "commit": kw["commit"] or ci["commit"],
        "branch": kw["branch"] or ci["branch"],
        "status": kw["status"],
        "created_at": _created_at(kw["created_at"]),
    }
    if kw["emit_metadata"] is not None:
        return _emit(files, meta, kw)
    _check_db(kw["db"])
    ingested = read_files(list(files), kw["fmt"])  # every file read before the store is touched
    from sleuth.gate.service import build_run, record_run

    prov: dict[str, Any] = {}
    if not kw["no_provenance"]:
        from sleuth.gate.provenance import collect

        prov = collect()
    store = _open(kw["db"], create=True)
    try:
        res = record_run(store, build_run(ingested, meta, prov), replace=kw["replace"])
    finally:
        store.close()
    _show_record(res, kw["as_json"], store.display)
    return 0


def _missing(flag: str, hint: str) -> str:
    raise UsageError(f"{flag} is required", hint=hint)


def _emit(files: tuple[Path, ...], meta: dict[str, Any], kw: dict[str, Any]) -> int:
    from sleuth.gate.ingest import read_files, write_metadata

    out: Path = kw["emit_metadata"]
    if out.exists() and not out.is_dir():
        raise UsageError(f"--emit-metadata {out}: exists and is not a directory")
    ingested = read_files(list(files), kw["fmt"])  # checks the files exist; garbage only counted
    from sleuth.gate.provenance import collect

    prov = {} if kw["no_provenance"] else collect()
    path = write_metadata(out, {**meta, "provenance": prov}, list(files))
    data = {
        "metadata": str(path),
        **meta,
        "metrics": len(ingested.samples),
        "skipped_lines": ingested.skipped,
    }
    if kw["as_json"]:
        from sleuth.cli._common import print_json

        print_json(data)
    else:
        click.echo(f"wrote {path}: {len(ingested.samples)} metric(s), {ingested.skipped} line(s) skipped")
    return 0


def _record_from_dir(files: tuple[Path, ...], kw: dict[str, Any]) -> int:
    from sleuth.gate.ingest import scan_artifacts
    from sleuth.gate.service import record_artifacts

    if files:
        raise UsageError(
            "--from-dir takes no FILE arguments", hint="the files are found in the artifact tree"
        )
    if kw["emit_metadata"] is not None:
        raise UsageError("--from-dir and --emit-metadata cannot be combined")
    given = [f for f in ("run_id", "commit", "branch", "created_at") if kw[f]]
    if given:
        raise UsageError(
            f"--from-dir reads {', '.join('--' + g.replace('_', '-') for g in given)} "
            "from each artifact's metadata"
        )
    suite = check_name_flag("--suite", kw["suite"]) if kw["suite"] else None
    _check_db(kw["db"])
    scan = scan_artifacts(kw["from_dir"])
    store = _open(kw["db"], create=True)
    try:
        res = record_artifacts(store, scan, suite=suite, replace=kw["replace"], fmt=kw["fmt"])
    finally:
        store.close()
    _show_record(res, kw["as_json"], store.display)
    return 0 if res.recorded or res.already else int(ExitCode.INCONCLUSIVE)


def _show_record(res: Any, as_json: bool, display: str) -> None:
    if as_json:
        from sleuth.cli._common import print_json

        print_json({"db": display, **res.to_dict()})
        return
    for r in res.recorded:
        note = f", {r['skipped_lines']} line(s) skipped" if r["skipped_lines"] else ""
        empty = "  (no samples: recorded so the run is not lost)" if not r["metrics"] else ""
        click.echo(
            f"recorded {r['suite']}/{r['run_id']} ({r['status']}): {r['metrics']} metric(s), "
            f"{r['samples']} sample(s) [{', '.join(r['formats']) or 'no format'}]{note}{empty}"
        )
    for a in res.already:
        click.echo(f"already recorded {a} (--replace overwrites)")
    for path, why in res.skipped:
        click.echo(f"skipped {path}: {why}")
    click.echo(
        f"{len(res.recorded)} recorded, {len(res.already)} already there, {len(res.skipped)} skipped"
        f", {res.garbage} garbage line(s) -> {display}"
    )


# --- graduate -----------------------------------------------------------------------------------


def _statuses(include_failed: bool) -> Any:
    from sleuth.gate.model import RunStatus

    return None if include_failed else [RunStatus.SUCCESS]


@command.command("graduate", context_settings=_CTX)
@click.option("--suite", required=True, help="Benchmark suite.")
@click.option("--metric", "metrics", multiple=True, help="Metric name or glob (repeatable) [default: all].")
@click.option("--last", type=int, default=10, show_default=True, help="Judge the last N runs.")
@click.option(
    "--target-cv", default="1%", show_default=True, help="Graduate when the CV's upper bound is below this."
)
@click.option(
    "--confidence", type=float, default=0.95, show_default=True, help="Coverage of the one-sided upper bound."
)
@click.option(
    "--mode",
    type=click.Choice(["soft", "hard"]),
    default="soft",
    show_default=True,
    help="soft: always exit 0; hard: exit 1 on OVER, 3 on INSUFFICIENT.",
)
@click.option("--branch", help="Only runs of this branch.")
@click.option("--successful-only", is_flag=True, help="Leave out runs whose CI job failed.")
@outputs_options
@db_option
def graduate_cmd(**kw: Any) -> int:
    """Per metric: CV over the last N runs with a one-sided upper bound; OK / OVER / INSUFFICIENT."""
    from sleuth.gate.graduate import graduate
    from sleuth.gate.model import Graduation, exit_code_for
    from sleuth.gate.render import graduation_cases, graduation_markdown, junit_xml

    suite = check_name_flag("--suite", kw["suite"])
    if kw["last"] < 2:
        raise UsageError(f"--last {kw['last']}: a CV needs at least 2 runs")
    target = parse_percent("--target-cv", kw["target_cv"])
    conf = parse_fraction("--confidence", kw["confidence"], 0.5, 1.0)
    out = Outputs(kw["as_json"], kw["markdown"], kw["junit"])
    _check_db(kw["db"])
    store = _open(kw["db"], create=False)
    try:
        runs = store.runs(
            suite, branch=kw["branch"], statuses=_statuses(not kw["successful_only"]), last=kw["last"]
        )
    finally:
        store.close()
    results = graduate(runs, metrics=kw["metrics"], last=kw["last"], target=target, conf=conf)
    over = any(r.verdict is Graduation.OVER for r in results)
    undecided = not results or any(r.verdict is Graduation.INSUFFICIENT for r in results)
    rc = exit_code_for(over, undecided) if kw["mode"] == "hard" else 0
    data = {
        "suite": suite,
        "mode": kw["mode"],
        "last": kw["last"],
        "runs": len(runs),
        "target_cv": target,
        "verdict": "INSUFFICIENT" if not results else None,
        "exit_code": rc,
        "metrics": [r.to_dict() for r in results],
    }
    out.write(
        data=data,
        table=lambda: _graduation_table(suite, results, kw["mode"], len(runs)),
        md=graduation_markdown(suite, results, mode=kw["mode"], last=kw["last"]),
        junit=lambda: junit_xml(
            f"sleuth gate graduate {suite}", graduation_cases(suite, results, mode=kw["mode"])
        ),
    )
    return rc


_STYLE = {
    "OK": "green",
    "PASS": "green",
    "OVER": "bold red",
    "FAIL": "bold red",
    "INSUFFICIENT": "yellow",
    "INCONCLUSIVE": "yellow",
}


def _graduation_table(suite: str, results: list[Any], mode: str, n: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    from sleuth.cli._common import console

    con = console()
    if not results:
        con.print(f"[yellow]INSUFFICIENT[/]: no runs recorded for suite {escape(suite)} yet ({mode} mode)")
        return
    t = Table(title=f"graduation of {suite} ({n} runs, {mode} mode)", title_justify="left")
    for col in ("metric", "verdict", "runs", "CV", "upper bound", "target", "runs needed", "why"):
        t.add_column(col, overflow="fold")
    for r in results:

        def pct(x: float | None) -> str:
            return "-" if x is None else ("unbounded" if math.isinf(x) else f"{x:.3%}")

        needed = "-" if r.verdict.value == "OK" else ("?" if r.needed is None else str(r.needed))
        t.add_row(
            escape(r.metric),
            f"[{_STYLE[r.verdict.value]}]{r.verdict.value}[/]",
            str(r.runs),
            pct(r.cv),
            pct(r.upper),
            pct(r.target),
            needed,
            escape(r.reason),
        )
    con.print(t)


# --- check --------------------------------------------------------------------------------------


@command.command("check", context_settings=_CTX)
@click.option("--suite", required=True, help="Benchmark suite.")
@click.option(
    "--policy",
    "policy_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Policy file (YAML or JSON; 'sleuth schema gate-policy').",
)
@click.option(
    "--baseline",
    "baseline_path",
    type=click.Path(path_type=Path),
    help="Committed baselines (from 'baseline capture').",
)
@click.option("--metric", "metrics", multiple=True, help="Only these metric names (repeatable).")
@click.option(
    "--mode",
    type=click.Choice(["soft", "hard"]),
    default=None,
    help="Override every metric's mode (soft: exit 0).",
)
@outputs_options
@db_option
def check_cmd(**kw: Any) -> int:
    """Judge the latest runs against a policy: PASS / FAIL / INCONCLUSIVE / INSUFFICIENT per metric."""
    from sleuth.gate.baseline import load_baseline
    from sleuth.gate.checks import check
    from sleuth.gate.policy import load_policy
    from sleuth.gate.render import check_cases, check_markdown, junit_xml

    suite = check_name_flag("--suite", kw["suite"])
    policy = load_policy(kw["policy_path"])
    baseline = load_baseline(kw["baseline_path"])["metrics"] if kw["baseline_path"] else None
    out = Outputs(kw["as_json"], kw["markdown"], kw["junit"])
    _check_db(kw["db"])
    store = _open(kw["db"], create=False)
    try:
        runs = store.runs(suite, branch=policy.branch, statuses=_statuses(policy.include_failed))
    finally:
        store.close()
    report = check(runs, policy, suite=suite, baseline=baseline, only=kw["metrics"], mode=kw["mode"])
    rc = report.exit_code() if kw["mode"] != "soft" else 0
    out.write(
        data={**report.to_dict(), "exit_code": rc},
        table=lambda: _check_table(report),
        md=check_markdown(report),
        junit=lambda: junit_xml(f"sleuth gate check {suite}", check_cases(report)),
    )
    return rc


def _check_table(report: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from sleuth.cli._common import console

    con = console()
    if not report.results:
        con.print(f"[yellow]INSUFFICIENT[/]: no recorded runs of {escape(report.suite)} match the policy yet")
        return
    t = Table(title=f"check of {report.suite} ({report.runs} runs)", title_justify="left")
    for col in ("metric", "verdict", "mode", "runs", "findings"):
        t.add_column(col, overflow="fold")
    for r in report.results:
        found = "\n".join(
            f"{f.check}: [{_STYLE[f.verdict.value]}]{f.verdict.value}[/] {escape(f.summary)}"
            for f in r.findings
        )
        t.add_row(
            escape(r.metric), f"[{_STYLE[r.verdict.value]}]{r.verdict.value}[/]", r.mode, str(r.runs), found
        )
    con.print(t)


# --- changepoints -------------------------------------------------------------------------------


@command.command("changepoints", context_settings=_CTX)
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
    settings = Settings(alpha=parse_fraction("--alpha", kw["alpha"]), min_segment=kw["min_segment"])
    if kw["incremental"] and kw["csv_path"] is not None and kw["state_path"] is None:
        raise UsageError("--incremental with --csv needs --state FILE (where to keep what was seen)")
    out = Outputs(kw["as_json"], kw["markdown"], kw["junit"])
    state = _read_state(kw["state_path"]) if kw["incremental"] and kw["state_path"] else None
    bad = 0
    store = None
    if kw["csv_path"] is not None:
        series, bad = read_csv_series(kw["csv_path"], kw["column"])
        title = f"{kw['csv_path']}" + (f" [{kw['column']}]" if kw["column"] else "")
    else:
        suite = check_name_flag("--suite", kw["suite"])
        _check_db(kw["db"])
        store = _open(kw["db"], create=kw["incremental"])
        runs = store.runs(suite, branch=kw["branch"])
        series = metric_series(runs, kw["metric"])
        title = f"{suite} {kw['metric']}"
        if kw["incremental"] and kw["state_path"] is None:
            state = store.get_state(suite, f"changepoints:{kw['metric']}:{kw['branch'] or '*'}")
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
                store.put_state(kw["suite"], f"changepoints:{kw['metric']}:{kw['branch'] or '*'}", new_state)
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
    out.write(
        data=data,
        table=lambda: _cp_table(title, data, found, labels),
        md=md,
        junit=lambda: junit_xml("sleuth gate changepoints", cases),
    )
    return rc


def _read_state(path: Path) -> dict[str, Any] | None:
    import json

    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"--state {path}: not a state file ({exc})", hint="remove it to start over"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(
            f"--state {path}: not a state file (not a JSON object)", hint="remove it to start over"
        )
    return data


def _cp_table(title: str, data: dict[str, Any], found: list[Any], labels: tuple[str, ...]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from sleuth.cli._common import console

    con = console()
    if data["verdict"] == "INSUFFICIENT":
        con.print(
            f"[yellow]INSUFFICIENT[/]: {escape(title)} has {data['n']} point(s); "
            f"{data['runs_needed']} more needed"
        )
        return
    if not found:
        con.print(f"no change point in {escape(title)} ({data['n']} points)")
        return
    t = Table(title=f"change points of {title} ({data['n']} points)", title_justify="left")
    for col in ("index", "run", "before", "after", "change", "p-value"):
        t.add_column(col)
    for cp in found:
        change = f"{cp.after / cp.before - 1:+.2%}" if cp.before else "-"
        label = labels[cp.index] if cp.index < len(labels) else "-"
        t.add_row(
            str(cp.index), escape(label), f"{cp.before:g}", f"{cp.after:g}", change, f"{cp.p_value:.3g}"
        )
    con.print(t)


# --- baseline -----------------------------------------------------------------------------------


@command.group("baseline", context_settings=_CTX)
def baseline() -> None:
    """Committed per-metric baselines: capture from history, diff against it."""


@baseline.command("capture", context_settings=_CTX)
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
    import json

    from sleuth.gate.baseline import capture, load_baseline
    from sleuth.journal import atomic_write_json

    suite = check_name_flag("--suite", kw["suite"])
    if kw["last"] < 1:
        raise UsageError(f"--last {kw['last']}: must be at least 1")
    path: Path = kw["output"]
    if path.is_dir():
        raise UsageError(f"-o {path}: is a directory")
    keep = load_baseline(path, "-o") if path.is_file() else None
    _check_db(kw["db"])
    store = _open(kw["db"], create=False)
    try:
        runs = store.runs(suite, branch=kw["branch"], last=kw["last"])
    finally:
        store.close()
    if not runs:
        click.echo(f"INSUFFICIENT: no runs recorded for suite {suite}; nothing written", err=True)
        return int(ExitCode.INCONCLUSIVE)
    doc = capture(runs, suite=suite, last=kw["last"], branch=kw["branch"], patterns=kw["metrics"], keep=keep)
    atomic_write_json(path, doc)
    if kw["as_json"]:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(f"wrote {path}: {len(doc['metrics'])} metric(s) from {len(runs)} run(s)")
    return 0


@baseline.command("diff", context_settings=_CTX)
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

    committed = load_baseline(file, "FILE")
    try:
        tol = parse_tolerance(kw["tolerance"], "--tolerance")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    suite = check_name_flag("--suite", kw["suite"] or str(committed.get("suite") or ""))
    last = kw["last"] or int(committed.get("last") or 10)
    if last < 1:
        raise UsageError(f"--last {last}: must be at least 1")
    branch = kw["branch"] or committed.get("branch")
    out = Outputs(kw["as_json"], kw["markdown"], kw["junit"])
    _check_db(kw["db"])
    store = _open(kw["db"], create=False)
    try:
        runs = store.runs(suite, branch=branch, last=last)
    finally:
        store.close()
    if not runs:
        click.echo(f"INSUFFICIENT: no runs recorded for suite {suite}", err=True)
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
        table=lambda: _baseline_table(rows),
        md=baseline_markdown(str(file), rows),
        junit=lambda: junit_xml("sleuth gate baseline diff", cases),
    )
    return 1 if moved else 0


def _baseline_table(rows: list[Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from sleuth.cli._common import console

    t = Table(title="baseline diff", title_justify="left")
    for col in ("metric", "status", "committed", "now", "change", "tolerance"):
        t.add_column(col, overflow="fold")
    style = {"same": "dim", "moved": "bold yellow", "new": "cyan", "gone": "magenta"}
    for r in rows:
        t.add_row(
            escape(r.metric),
            f"[{style[r.status]}]{r.status}[/]",
            "-" if r.old is None else f"{r.old:g}",
            "-" if r.new is None else f"{r.new:g}",
            "-" if r.change is None else f"{r.change:+.2%}",
            r.tolerance or "-",
        )
    console().print(t)


# --- runs ---------------------------------------------------------------------------------------


@command.command("runs", context_settings=_CTX)
@click.option("--suite", help="Benchmark suite [default: list the suites].")
@click.option("--last", type=int, default=None, help="Only the last N runs.")
@click.option("--branch", help="Only runs of this branch.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (with every sample).")
@db_option
def runs_cmd(**kw: Any) -> int:
    """List the recorded runs of a suite (or the suites)."""
    from sleuth.cli._common import print_json

    _check_db(kw["db"])
    if kw["last"] is not None and kw["last"] < 1:
        raise UsageError(f"--last {kw['last']}: must be at least 1")
    store = _open(kw["db"], create=False)
    try:
        if not kw["suite"]:
            suites = store.suites()
            if kw["as_json"]:
                print_json({"db": store.display, "suites": suites})
            else:
                click.echo("\n".join(suites) if suites else f"no suites in {store.display}")
            return 0
        suite = check_name_flag("--suite", kw["suite"])
        runs = store.runs(suite, branch=kw["branch"], last=kw["last"])
    finally:
        store.close()
    if kw["as_json"]:
        print_json({"db": store.display, "suite": suite, "runs": [r.to_dict() for r in runs]})
        return 0
    if not runs:
        click.echo(f"no runs of {suite} in {store.display}")
        return 0
    for r in runs:
        click.echo(
            f"{r.created_at}  {r.run_id:<20} {r.status.value:<8} {(r.branch or '-'):<16} "
            f"{(r.commit or '-')[:12]:<12} {len(r.samples)} metric(s)"
        )
    return 0
