"""``sleuth attribute LOG... [--json]``: which failure ended a job, and whether restarting can help.

Exit codes: 0 the effective action is RESTART, 1 it is STOP (``--mode enforce`` and a STOP
recommendation), 3 UNKNOWN (no known signature matched, or the root is from before the job's
inferred start: inconclusive; restart is the safe default), 2 bad input (nothing written), 4
infrastructure.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from sleuth.cli._attribution_flags import attribution_options, settings_from_flags
from sleuth.cli._common import console, print_json
from sleuth.errors import ExitCode, UsageError

__all__ = ["command"]

_STYLE = {"RESTART": "green", "STOP": "bold red", "UNKNOWN": "yellow"}


def _list_signatures(kw: dict[str, Any]) -> int:
    from sleuth.attribution.signatures import load_catalog

    cat = load_catalog(kw.get("catalogs") or ())
    if kw["as_json"]:
        print_json([s.to_json() for s in cat.signatures])
        return 0
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{len(cat)} signatures")
    for col in ("id", "class", "role", "action", "vendor", "description"):
        table.add_column(col, overflow="fold")
    for s in cat.signatures:  # a site catalog's text is not markup ("[/dev/shm]" was a traceback)
        row = (s.id, s.cls.value, s.role.value, s.action.value, s.vendor.value, s.description)
        table.add_row(*(escape(x) for x in row))
    console().print(table)
    return 0


def _job_start(text: str) -> float:
    """``--job-start``: an ISO 8601 time (naive: UTC) or seconds since the epoch."""
    from sleuth.attribution.logs import parse_timestamp

    t = parse_timestamp(text.strip())
    if t is None:
        try:
            t = float(text)
        except ValueError:
            t = None
    if t is None or not math.isfinite(t):
        raise UsageError(
            f"--job-start {text!r}: not a time",
            hint="give ISO 8601 (2026-12-01T12:00:00Z) or seconds since the epoch",
        )
    return t


def _render(report: Any) -> None:
    from rich.markup import escape

    con = console()
    d = report.decision
    style = _STYLE.get(d.action.value, "")
    con.print(
        f"[{style}]{d.action.value}[/] (effective: "
        f"[{_STYLE[d.effective_action.value]}]{d.effective_action.value}[/],"
        # a source's name is its command line: "[/x]" in it was read as markup (a traceback)
        f" mode {d.mode.value}) decided by {escape(d.decided_by)}",
        markup=True,
    )
    con.print(f"  reason: {d.reason}", markup=False)
    for a in d.advice:
        con.print(f"  advice: {a}", markup=False)
    if report.root is not None:
        r = report.root
        where = f"{r.file}:{r.line}" + (f" rank {r.rank}" if r.rank is not None else "")
        early = ", before the job's inferred start" if r.before_start else ""
        con.print(
            f"  root: {r.signature} [{r.cls.value}] at {where} ({report.ordering}{early})", markup=False
        )
        con.print(f"        {r.text}", markup=False)
    others = [f for f in report.findings if f is not report.root]
    if others:
        con.print(f"  other findings ({len(others)}):", markup=False)
        for f in others[:20]:
            rank = f" rank {f.rank}" if f.rank is not None else ""
            con.print(f"    {f.role.value:<12} {f.signature:<28} {f.file}:{f.line}{rank}", markup=False)
        if len(others) > 20:
            con.print(f"    ... {len(others) - 20} more (see --json)", markup=False)
    if len(report.sources) > 1:
        con.print("  sources:", markup=False)
        for v in report.sources:
            con.print(
                f"    {v.name:<30} {v.action.value:<8} {v.status.value:<8} {v.seconds:.2f}s {v.reason}",
                markup=False,
            )
    if report.progress is not None:
        con.print(f"  progress this cycle: {'yes' if report.progress else 'no'}", markup=False)
    for note in report.notes:
        con.print(f"  note: {note}", markup=False)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("logs", nargs=-1, type=click.Path(path_type=Path))
@attribution_options(mode_default_help="shadow")
@click.option(
    "--history",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="History of earlier cycles (read, then this cycle is appended).",
)
@click.option(
    "--job-start",
    metavar="TIME",
    help="When the job started (ISO 8601 or seconds since the epoch): earlier lines, such as an "
    "earlier job's Xid in a node's dmesg, are ignored. Default: the logs' earliest time less 10 minutes.",
)
@click.option("--list-signatures", is_flag=True, help="List the catalog's signatures and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def command(**kw: Any) -> int:
    """Attribute the failure in LOG... (plain or .gz; one per rank, or interleaved with rank prefixes)."""
    if kw["list_signatures"]:
        return _list_signatures(kw)
    if not kw["logs"]:
        raise UsageError("no LOG given", hint="sleuth attribute LOG... (or --list-signatures)")
    from sleuth.attribution.analyze import Attributor
    from sleuth.attribution.history import append_history, read_history
    from sleuth.attribution.logs import LogInput

    job_start = _job_start(kw["job_start"]) if kw["job_start"] else None
    settings = settings_from_flags(kw)
    history_path = kw.get("history") or settings.history
    history = read_history(history_path) if history_path else []
    logs = [LogInput.file(p) for p in kw["logs"]]
    report = Attributor(settings).attribute(logs, history=history, job_start=job_start)
    if history_path:
        cycle = history[-1].cycle + 1 if history else 0
        append_history(history_path, report.record(cycle))
    for note in report.notes:
        click.echo(f"warning: {note}", err=True)
    if kw["as_json"]:
        print_json(report.to_json())
    else:
        _render(report)
    d = report.decision
    if d.action.value == "UNKNOWN":
        return int(ExitCode.INCONCLUSIVE)
    return int(ExitCode.FAILED) if d.effective_action.value == "STOP" else 0
