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

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from sleuth.cli import _gate_views as views
from sleuth.cli._gate_flags import (
    CTX,
    Outputs,
    check_db,
    check_name_flag,
    db_option,
    html_option,
    metric_filter,
    open_store,
    outputs_options,
    parse_fraction,
    parse_percent,
    refuse_secret,
    selected_runs,
)
from sleuth.cli._gate_series import baseline, changepoints_cmd, runs_cmd
from sleuth.errors import ExitCode, UsageError

__all__ = ["command"]

_STATUSES = ("success", "failure")

#: the metadata keys that are names, kept as given (:func:`sleuth.gate.model.looks_secret`)
_NAMES = frozenset({"suite", "run_id", "branch"})


@click.group(context_settings=CTX)
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
    from sleuth.gate.model import utc_text

    try:
        return utc_text(dt)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise UsageError(
            f"--created-at {text!r}: out of range in UTC", hint="e.g. 2025-01-31T12:00:00Z"
        ) from None


@command.command("record", context_settings=CTX)
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
    refuse_secret("--branch", kw["branch"])  # $GITHUB_HEAD_REF (a fork's branch) is stored scrubbed
    meta = {
        "suite": check_name_flag(
            "--suite", kw["suite"] or _missing("--suite", "e.g. --suite detectors"), stored=True
        ),
        "run_id": check_name_flag(
            "--run-id",
            kw["run_id"] or ci["run_id"] or _missing("--run-id", "or run inside CI ($GITHUB_RUN_ID)"),
            stored=True,
        ),
        "commit": kw["commit"] or ci["commit"],
        "branch": kw["branch"] or ci["branch"],
        "status": kw["status"],
        "created_at": _created_at(kw["created_at"]),
    }
    if kw["emit_metadata"] is not None:
        return _emit(files, meta, kw)
    check_db(kw["db"], write=True)
    ingested = read_files(list(files), kw["fmt"])  # every file read before the store is touched
    from sleuth.gate.service import build_run, record_run

    prov: dict[str, Any] = {}
    if not kw["no_provenance"]:
        from sleuth.gate.provenance import collect

        prov = collect()
    store = open_store(kw["db"], create=True)
    try:
        if kw["replace"] and kw["created_at"] is None:  # re-recorded, it happened when it happened
            meta["created_at"] = store.created_at(meta["suite"], meta["run_id"]) or meta["created_at"]
        res = record_run(store, build_run(ingested, meta, prov), replace=kw["replace"])
    finally:
        store.close()
    views.show_record(res, kw["as_json"], store.display)
    return 0


def _missing(flag: str, hint: str) -> str:
    raise UsageError(f"{flag} is required", hint=hint)


def _emit(files: tuple[Path, ...], meta: dict[str, Any], kw: dict[str, Any]) -> int:
    from sleuth.gate.ingest import parse_raw, read_raw, write_metadata

    out: Path = kw["emit_metadata"]
    if out.exists() and not out.is_dir():
        raise UsageError(f"--emit-metadata {out}: exists and is not a directory")
    seen: dict[str, Path] = {}
    for f in files:  # copied into one folder by name: a second r.csv would overwrite the first
        if f.name in seen and seen[f.name] != f:
            raise UsageError(
                f"--emit-metadata {out}: two FILEs named {f.name} ({seen[f.name]}, {f})",
                hint="rename one, or emit them as two runs",
            )
        seen[f.name] = f
    raw = read_raw(list(files))  # checks the files exist; garbage only counted
    ingested = parse_raw(raw, kw["fmt"])
    from sleuth.gate.model import stored_name
    from sleuth.gate.provenance import collect, public

    prov = {} if kw["no_provenance"] else collect()
    # the artifact is uploaded: a flag or CI variable may hold a secret; the names (already refused
    # when the rule would change them) are judged by their words, as record stores them
    meta = {
        k: stored_name(v) if k in _NAMES and isinstance(v, str) else public(v, k) for k, v in meta.items()
    }
    pipes = {p: data for p, data in raw if not p.is_file()}  # <(cmd), /dev/stdin: read once
    path = write_metadata(out, {**meta, "provenance": prov}, [p for p, _ in raw], pipes)
    data = {
        "metadata": str(path),
        **meta,
        "metrics": len(ingested.samples),
        "skipped_lines": ingested.skipped,
    }
    from sleuth.gate.model import clean, clean_doc

    if kw["as_json"]:
        from sleuth.cli._common import print_json

        print_json(clean_doc(data))
    else:
        what = f"{len(ingested.samples)} metric(s), {ingested.skipped} line(s) skipped"
        click.echo(clean(f"wrote {path}: {what}"))
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
    suite = check_name_flag("--suite", kw["suite"], stored=True) if kw["suite"] else None
    check_db(kw["db"], write=True)
    scan = scan_artifacts(kw["from_dir"])
    store = open_store(kw["db"], create=True)
    try:
        res = record_artifacts(store, scan, suite=suite, replace=kw["replace"], fmt=kw["fmt"])
    finally:
        store.close()
    views.show_record(res, kw["as_json"], store.display)
    return 0 if res.recorded or res.already else int(ExitCode.INCONCLUSIVE)


# --- graduate -----------------------------------------------------------------------------------


@command.command("graduate", context_settings=CTX)
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
    kw["metrics"] = metric_filter(kw["metrics"])  # as recorded
    runs = selected_runs(kw, suite, include_failed=not kw["successful_only"])
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
        table=lambda: views.graduation_table(suite, results, kw["mode"], len(runs)),
        md=graduation_markdown(suite, results, mode=kw["mode"], last=kw["last"]),
        junit=lambda: junit_xml(
            f"sleuth gate graduate {suite}", graduation_cases(suite, results, mode=kw["mode"])
        ),
    )
    return rc


# --- check --------------------------------------------------------------------------------------


@command.command("check", context_settings=CTX)
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
@html_option
@db_option
def check_cmd(**kw: Any) -> int:
    """Judge the latest runs against a policy: PASS / FAIL / INCONCLUSIVE / INSUFFICIENT per metric."""
    from sleuth.gate.baseline import load_baseline
    from sleuth.gate.checks import check
    from sleuth.gate.policy import load_policy
    from sleuth.gate.render import check_cases, check_markdown, junit_xml
    from sleuth.gate.service import check_runs

    suite = check_name_flag("--suite", kw["suite"])
    policy = load_policy(kw["policy_path"])
    baseline = load_baseline(kw["baseline_path"])["metrics"] if kw["baseline_path"] else None
    out = Outputs(kw["as_json"], kw["markdown"], kw["junit"], kw["html"])
    check_db(kw["db"])
    store = open_store(kw["db"], create=False)
    try:
        runs = check_runs(store, suite, policy)
    finally:
        store.close()
    only = metric_filter(kw["metrics"])  # as recorded
    report = check(runs, policy, suite=suite, baseline=baseline, only=only, mode=kw["mode"])
    rc = report.exit_code() if kw["mode"] != "soft" else 0

    def page() -> str:
        from sleuth.report.gate import check_html

        where = {
            "policy_path": str(kw["policy_path"]),
            "baseline_path": kw["baseline_path"] and str(kw["baseline_path"]),
        }
        return check_html(report, runs, policy, history=store.display, **where)

    out.write(
        data={**report.to_dict(), "exit_code": rc},
        table=lambda: views.check_table(report),
        md=check_markdown(report),
        junit=lambda: junit_xml(f"sleuth gate check {suite}", check_cases(report)),
        html=page,
    )
    return rc


command.add_command(changepoints_cmd)
command.add_command(baseline)
command.add_command(runs_cmd)
