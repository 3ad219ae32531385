"""``sleuth reduce --spec FILE``: shrink a failing workload; ``sleuth reduce resume RUN_DIR``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sleuth.cli._common import console, err_console, output_option, print_json, sigterm_as_interrupt
from sleuth.cli._options import (
    backend_options,
    check_jobs,
    check_kill_grace,
    kill_grace_option,
    parse_backend,
)
from sleuth.errors import UsageError

__all__ = ["command"]


class _Watch:
    """Progress on stderr: trials used of the budget, and a line whenever the best point moves."""

    def __init__(self, quiet: bool, total: int) -> None:
        self.quiet = quiet
        self.total = total
        self.progress: Any = None
        self._best: dict[str, Any] = {}
        self.run_dir: Path | None = None

    def start(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        if self.quiet:
            return
        from sleuth.cli._progress import Progress

        con = err_console()
        con.print(f"[bold]sleuth reduce[/] -> {run_dir}", markup=True, highlight=False)
        self.progress = Progress(con, "trials", self.total).start()

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "backend":  # not local: said once, before the trials
            if self.progress is not None:
                self.progress.print(f"  trials run on {data['backend']}", markup=False)
            return
        if kind == "note":  # said once, before the trials, even with --json (on stderr)
            line = f"note: {data['text']}"
            if self.progress is not None:
                self.progress.print(line, markup=False, highlight=False, soft_wrap=True)
            else:
                err_console().print(line, markup=False, highlight=False, soft_wrap=True)
            return
        if kind == "budget":  # a resume starts without it
            self.total = int(data["max_trials"])
            if self.progress is not None:
                self.progress.set_total(self.total)
            return
        p = self.progress
        if p is None:
            return
        if kind == "trial":
            p.advance(data["trials_used"] - p.completed)
            if data.get("axis"):
                p.what = f"trials (reducing {data['axis']})"
            return
        best = data.get("best") or {}
        for axis, value in best.items():
            if self._best.get(axis, value) != value:
                shown = f"{len(value)} items" if isinstance(value, list) and len(value) > 8 else value
                p.print(f"  {axis} -> {shown}  (trial {data['trials_used']}/{self.total})", markup=False)
        self._best = dict(best)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _render(doc: dict[str, Any], run_dir: Path) -> None:
    """The summary on the terminal; ``run_dir`` as it is (the document's may be scrubbed: a --scrub
    pattern matching a directory above it made the resume hint unusable)."""
    from rich.markup import escape
    from rich.table import Table

    con = console()
    status = doc["status"]
    style = {"reduced": "bold green", "not_reduced": "yellow", "budget_exhausted": "yellow"}.get(
        status, "red"
    )
    con.print(f"[{style}]{escape(status)}[/]: {escape(doc.get('name', ''))}")
    if doc.get("note"):
        con.print(f"  {escape(doc['note'])}")
    if "axes" in doc:
        t = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("axis", "initial", "final", "note"):
            t.add_column(col, overflow="fold")
        for name, row in doc["axes"].items():
            shown = [f"{len(v)} items" if isinstance(v, list) and len(v) > 6 else str(v)
                     for v in (row["initial"], row["final"])]  # fmt: skip
            t.add_row(escape(name), escape(shown[0]), escape(shown[1]), escape(row.get("why", "")))
        con.print(t)
        fl = doc.get("flaky", {})
        orig = fl.get("original", {})
        level = f"{float(fl.get('confidence', 0.95)) * 100:g}% CI"
        con.print(
            f"  failure: {escape(str(doc.get('signature')))}\n"
            f"  original reproduced {orig.get('reproduced')}/{orig.get('trials')} "
            f"({level} {orig.get('reproduction_rate_ci')})"
        )
        least = fl.get("fewest_trials_rejected")
        fewest = (
            f" (one got {least})" if least is not None and least < fl.get("trials_per_candidate", 0) else ""
        )
        if status != "not_reproducible":
            con.print(
                f"  reproduction rate {fl.get('reproduction_rate')} "
                f"({level} {fl.get('reproduction_rate_ci')}) with the accepted candidates, "
                f"{fl.get('trials_per_candidate')} trial(s) per rejected candidate{fewest}, miss probability "
                f"{fl.get('miss_probability')} (at the rate's lower bound: "
                f"{fl.get('miss_probability_at_low_rate')})\n"
                f"  {doc.get('oracle_calls')} candidates tested, {doc.get('trials')} trials, "
                f"{doc.get('cache_hits')} cache hits, {doc.get('wasted_trials')} speculative trials wasted"
            )
        if doc.get("stopped"):
            con.print(f"  stopped: {escape(doc['stopped'])}")
    if status == "interrupted":
        where = escape(str(run_dir))
        con.print(f"  [bold yellow]interrupted[/]: `sleuth reduce resume {where}` continues", soft_wrap=True)
    if doc.get("inputs"):  # shrunken/ was written
        con.print(f"  bundle: {escape(str(run_dir))}")
    else:
        con.print(f"  run dir (no bundle): {escape(str(run_dir))}")


def _execute(call: Callable[[_Watch], Any], as_json: bool, total: int) -> int:
    watch = _Watch(as_json, total)
    try:
        with sigterm_as_interrupt():
            result = call(watch)
    except KeyboardInterrupt:  # before the summary was written (e.g. while writing the bundle)
        watch.stop()
        if watch.run_dir is not None:
            err_console().print(
                f"`sleuth reduce resume {watch.run_dir}` continues",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        raise
    finally:
        watch.stop()
    if as_json:
        print_json({**result.doc, "already_finished": True} if result.already_finished else result.doc)
    else:
        if result.already_finished:
            err_console().print(
                f"{result.run_dir}: this reduction has finished; nothing to run (the summary follows)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        _render(result.doc, result.run_dir)
    return int(result.exit_code)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--spec", type=click.Path(dir_okay=False, path_type=Path), help="The reduce spec (YAML or JSON)."
)
@click.option(
    "--workload", metavar="NAME", help="A wrapped workload: entry point sleuth.workloads, or module:Class."
)
@click.option("--jobs", "-j", type=int, default=1, show_default=True, help="Trials at a time.")
@click.option("--gpus", metavar="IDS", help="Comma-separated devices; each running trial gets its own.")
@backend_options
@kill_grace_option(
    "Seconds a stopped trial (the spec's timeout, Ctrl-C) has between SIGTERM and SIGKILL, e.g. to "
    "save a checkpoint; overrides the spec's workload.kill_grace.  [default: 5]",
    default=None,
)
@click.option("--one-minimal", is_flag=True, help="Finish list axes with a 1-minimality sweep.")
@click.option("--scrub", multiple=True, metavar="REGEX", help="Redact matches from every file of the bundle.")
@click.option("--name", help="Run name (default: the spec's name, else the script's).")
@click.option("--dry-run", is_flag=True, help="Validate the spec, print the plan, write nothing.")
@output_option
@click.option("--json", "as_json", is_flag=True, help="Print only the final JSON document.")
@click.pass_context
def command(ctx: click.Context, /, **kw: Any) -> int | None:
    """Shrink a failing workload along the spec's axes while the same failure reproduces.

    Writes a bundle (shrunken/run_repro.sh, verify.sh, spec.yaml, recipe.yaml, SHIP.md) into the
    run dir; `sleuth bundle RUN_DIR` packs it.  Exit codes: 0 reduced (or nothing to reduce, or the
    budget ran out: the best so far is written), 2 bad spec or flags, 3 the original does not
    reproduce, 4 infrastructure error, 130 interrupted.
    """
    if ctx.invoked_subcommand is not None:
        if any(kw[k] is not None for k in ("spec", "workload", "kill_grace")) or kw["dry_run"]:
            raise UsageError(f"'sleuth reduce {ctx.invoked_subcommand}' takes its own options only")
        return None
    if (kw["spec"] is None) == (kw["workload"] is None):
        raise UsageError(
            "give --spec FILE or --workload NAME (one of them)", hint="see `sleuth schema reduce`"
        )
    from sleuth.reduce import session

    backend = parse_backend(kw["backend"], kw["backend_opt"])
    gpus = check_jobs(kw["jobs"], kw["gpus"], backend)
    grace = check_kill_grace(kw["kill_grace"]) if kw["kill_grace"] is not None else None
    loaded = session.load(kw["spec"], output=kw["output"], name=kw["name"], scrub=tuple(kw["scrub"]),
                          workload=kw["workload"], kill_grace=grace)  # fmt: skip
    if kw["dry_run"]:
        doc = session.plan_doc(loaded, kw["output"])
        if kw["as_json"]:
            print_json(doc)
        else:
            _print_plan(doc)
        return 0
    total = loaded.plan.spec.budget.max_trials
    return _execute(
        lambda w: session.start(loaded, output=kw["output"], jobs=kw["jobs"], gpus=gpus, backend=backend,
                                one_minimal=kw["one_minimal"], on_event=w.event, on_start=w.start),
        kw["as_json"], total,
    )  # fmt: skip


def _print_plan(doc: dict[str, Any]) -> None:
    from rich.markup import escape

    con = console()
    con.print(f"[bold]dry run[/]: reduce {escape(' '.join(doc['argv']))} in {escape(doc['cwd'])}")
    for a in doc["axes"]:
        size = f" ({a['items']} items)" if a["items"] is not None else ""
        init = a["initial"] if a["items"] is None else ""
        pin = " pinned" if a["pinned"] else ""
        con.print(f"  {escape(a['name'])}: {a['kind']} {escape(str(init))}{size}{pin}")
    b = doc["budget"]
    con.print(f"  oracle {escape(doc['oracle']['kind'])}; baseline {b['baseline_trials']} trials; "
              f"budget {b['max_trials']} trials, confidence {b['confidence']}")  # fmt: skip
    con.print(f"would write under {escape(doc['run_dir_parent'])}/ (nothing written)")


@command.command("resume")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--jobs", "-j", type=int, default=None, help="Trials at a time (default: as the run started).")
@click.option("--json", "as_json", is_flag=True, help="Print only the final JSON document.")
def resume_command(run_dir: Path, jobs: int | None, as_json: bool) -> int:
    """Continue an interrupted reduction; trials already journaled are not run again.

    A reduction that has finished is reported as it is: nothing runs, nothing is written.
    """
    from sleuth.reduce import session

    if jobs is not None:
        check_jobs(jobs, None)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run dir")
    return _execute(lambda w: session.resume(run_dir, jobs=jobs, on_event=w.event, on_start=w.start),
                    as_json, 0)  # fmt: skip
