"""Rich tables of the ``sleuth gate`` subcommands (rendering only).  Every name shown goes through
:func:`sleuth.gate.render.clean` (printable, secrets hidden), as the markdown and the pages do."""

from __future__ import annotations

import math
from typing import Any

import click

from sleuth.cli._common import console
from sleuth.gate.model import clean

__all__ = ["STYLE", "baseline_table", "check_table", "cp_table", "graduation_table", "show_record"]

STYLE = {
    "OK": "green",
    "PASS": "green",
    "OVER": "bold red",
    "FAIL": "bold red",
    "INSUFFICIENT": "yellow",
    "INCONCLUSIVE": "yellow",
}


def show_record(res: Any, as_json: bool, display: str) -> None:
    if as_json:
        from sleuth.cli._common import print_json
        from sleuth.gate.model import clean_doc

        print_json(clean_doc({"db": display, **res.to_dict()}))
        return
    for r in res.recorded:
        note = f", {r['skipped_lines']} line(s) skipped" if r["skipped_lines"] else ""
        empty = "  (no samples: recorded so the run is not lost)" if not r["metrics"] else ""
        click.echo(
            f"recorded {clean(r['suite'])}/{clean(r['run_id'])} ({r['status']}): {r['metrics']} metric(s), "
            f"{r['samples']} sample(s) [{', '.join(r['formats']) or 'no format'}]{note}{empty}"
        )
    for a in res.already:
        click.echo(f"already recorded {clean(a)} (--replace overwrites)")
    for path, why in res.skipped:
        # an artifact's folder name and metadata may come from a fork's pull request: a newline would
        # start a CI workflow command ("::error::"), an escape drive the terminal
        click.echo(clean(f"skipped {path}: {why}"))
    click.echo(
        f"{len(res.recorded)} recorded, {len(res.already)} already there, {len(res.skipped)} skipped"
        f", {res.garbage} garbage line(s) -> {clean(display)}"
    )


def graduation_table(suite: str, results: list[Any], mode: str, n: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    con = console()
    if not results:
        con.print(
            f"[yellow]INSUFFICIENT[/]: no runs recorded for suite {escape(clean(suite))} yet ({mode} mode)"
        )
        return
    from sleuth.gate.render import shown_rows

    t = Table(title=f"graduation of {escape(clean(suite))} ({n} runs, {mode} mode)", title_justify="left")
    for col in ("metric", "verdict", "runs", "CV", "upper bound", "target", "runs needed", "why"):
        t.add_column(col, overflow="fold")
    shown = shown_rows(results, lambda r: r.verdict.value)
    for r in shown.rows:

        def pct(x: float | None) -> str:
            return "-" if x is None else ("unbounded" if math.isinf(x) else f"{x:.3%}")

        needed = "-" if r.verdict.value == "OK" else ("?" if r.needed is None else str(r.needed))
        t.add_row(
            escape(clean(r.metric)),
            f"[{STYLE[r.verdict.value]}]{r.verdict.value}[/]",
            str(r.runs),
            pct(r.cv),
            pct(r.upper),
            pct(r.target),
            needed,
            escape(clean(r.reason)),
        )
    _print_cut(t, shown)


def check_table(report: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    con = console()
    if not report.results:
        con.print(
            f"[yellow]INSUFFICIENT[/]: no recorded runs of {escape(clean(report.suite))} match the policy yet"
        )
        return
    from sleuth.gate.render import shown_rows

    t = Table(title=f"check of {escape(clean(report.suite))} ({report.runs} runs)", title_justify="left")
    for col in ("metric", "verdict", "mode", "runs", "findings"):
        t.add_column(col, overflow="fold")
    shown = shown_rows(report.results, lambda r: r.verdict.value)
    for r in shown.rows:
        found = "\n".join(
            f"{f.check}: [{STYLE[f.verdict.value]}]{f.verdict.value}[/] {escape(clean(f.summary))}"
            for f in r.findings
        )
        t.add_row(
            escape(clean(r.metric)),
            f"[{STYLE[r.verdict.value]}]{r.verdict.value}[/]",
            r.mode,
            str(r.runs),
            found,
        )
    _print_cut(t, shown)


def _print_cut(table: Any, shown: Any) -> None:
    """A table, then the line saying which rows it left out."""
    con = console()
    con.print(table)
    if shown.hidden:
        con.print(shown.note(), style="dim", markup=False, highlight=False)


def cp_table(title: str, data: dict[str, Any], found: list[Any], labels: tuple[str, ...]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from sleuth.gate.render import change_text

    con = console()
    title = clean(title)
    if data["verdict"] == "INSUFFICIENT":
        con.print(
            f"[yellow]INSUFFICIENT[/]: {escape(title)} has {data['n']} point(s); "
            f"{data['runs_needed']} more needed"
        )
        return
    if not found:
        con.print(f"no change point in {escape(title)} ({data['n']} points)")
        return
    t = Table(title=f"change points of {escape(title)} ({data['n']} points)", title_justify="left")
    for col in ("index", "run", "before", "after", "change", "p-value"):
        t.add_column(col)
    for cp in found:
        change = change_text(cp.before, cp.after)
        label = labels[cp.index] if cp.index < len(labels) else "-"
        t.add_row(
            str(cp.index),
            escape(clean(label)),
            f"{cp.before:g}",
            f"{cp.after:g}",
            change,
            f"{cp.p_value:.3g}",
        )
    con.print(t)


def baseline_table(rows: list[Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from sleuth.gate.render import change_text, shown_rows

    t = Table(title="baseline diff", title_justify="left")
    for col in ("metric", "status", "committed", "now", "change", "tolerance"):
        t.add_column(col, overflow="fold")
    style = {"same": "dim", "moved": "bold yellow", "new": "cyan", "gone": "magenta"}
    shown = shown_rows(rows, lambda r: r.status)
    for r in shown.rows:
        t.add_row(
            escape(clean(r.metric)),
            f"[{style[r.status]}]{r.status}[/]",
            "-" if r.old is None else f"{r.old:g}",
            "-" if r.new is None else f"{r.new:g}",
            change_text(r.old, r.new),
            r.tolerance or "-",
        )
    _print_cut(t, shown)
