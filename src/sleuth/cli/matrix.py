"""``sleuth matrix``: mitigations x environments x trials, with honest statistics.

``sleuth matrix --recipe FILE`` or the flag shim (``--workload-cmd ... --mitigation-axis a,b``);
``sleuth matrix resume RUN_DIR`` finishes an interrupted matrix.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import click

from sleuth.cli._common import console, err_console, output_option, print_json
from sleuth.errors import UsageError

__all__ = ["command"]

_STYLE = {
    "baseline": "bold",
    "fixed": "bold green",
    "worse": "bold red",
    "no_effect": "dim",
    "inconclusive": "yellow",
    "error": "magenta",
}


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _loaded(kw: dict[str, Any]) -> Any:
    from sleuth.matrix import driver
    from sleuth.matrix.recipe import load_recipe, parse_recipe
    from sleuth.matrix.shim import ShimFlags, build_recipe
    from sleuth.registry import load_registry

    flags = ShimFlags(
        workload_cmd=kw["workload_cmd"],
        mitigation_axis=kw["mitigation_axis"],
        environment_axis=kw["environment_axis"],
        trials=kw["trials"],
        fail_regex=kw["fail_regex"],
        stream=kw["stream"],
        step_time_regex=kw["step_time_regex"],
        timeout=kw["timeout"],
        ticket=kw["ticket"],
        name=kw["name"],
        threshold=kw["confound_threshold"],
    )
    files = tuple(kw["mitigations_file"])
    if kw["recipe"] is not None:
        if flags.given():
            raise UsageError(
                f"--recipe cannot be mixed with {', '.join(flags.given())}",
                hint="put those settings in the recipe, or drop --recipe and use the flags alone",
            )
        recipe = load_recipe(kw["recipe"])
        source, base_dir = str(kw["recipe"]), kw["recipe"].resolve().parent
    else:
        reg = load_registry(files)
        data = build_recipe(
            flags, mitigations=reg.mitigations, environments=reg.environments, seed=kw["seed"]
        )
        recipe = parse_recipe(data, "command line")
        source, base_dir = "command line", Path.cwd()
    updates: dict[str, Any] = {}
    if kw["until_decided"]:
        updates["until_decided"] = True
    if kw["seed"] is not None:
        updates["seed"] = kw["seed"]
    return driver.load(recipe.model_copy(update=updates), source, base_dir=base_dir, mitigation_files=files)


def _check_jobs(jobs: int, gpus: str | None) -> tuple[str, ...]:
    from sleuth.backends.local import check_slots
    from sleuth.cli._options import parse_gpus

    ids = parse_gpus(gpus)
    check_slots(jobs, ids)
    return ids


class _Progress:
    """A progress bar on stderr while trials run."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.task: Any = None

    def start(self, run_dir: Path) -> None:
        if self.quiet:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        con = err_console()
        con.print(f"[bold]sleuth matrix[/] -> {run_dir}")
        self.bar = Progress(
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=con,
            transient=True,
        )
        self.bar.start()

    def trial(self, _record: Any, done: int, total: int) -> None:
        if self.bar is None:
            return
        if self.task is None:
            self.task = self.bar.add_task("trials", total=total)
        self.bar.update(self.task, completed=done)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _render(doc: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    con = console()
    t = Table(
        title=f"matrix: {escape(doc['workload'])}  (baseline {escape(doc['baseline'])})",
        title_justify="left",
        box=None,
        pad_edge=False,
        header_style="bold",
    )
    # two-line headers keep the table within ~145 columns, so a 150-column terminal shows one line per cell
    for col in (
        "cell",
        "mitigations @ env",
        "pass/fail/err",
        "failure rate\n[95% CI]",
        "vs baseline",
        "p",
        "step x baseline\n[95% CI]",
        "confound",
    ):
        t.add_column(col, overflow="fold")
    for c in doc["cells"]:
        n = c["counts"]
        rate = "-"
        if c["failure_rate"] is not None:
            lo, hi = c["failure_rate_ci"]
            rate = f"{100 * c['failure_rate']:.0f}% [{100 * lo:.0f}-{100 * hi:.0f}]"
        cls = c["classification"] + (" (unreliable)" if c["unreliable"] else "")
        if c["trials_needed"]:
            cls += f" (~{c['trials_needed']} trials)"
        ratio = "-" if c["step_time_ratio"] is None else f"{c['step_time_ratio']:.2f}"
        if c["step_time_ratio_ci"]:
            ratio += f" [{c['step_time_ratio_ci'][0]:.2f}-{c['step_time_ratio_ci'][1]:.2f}]"
        t.add_row(
            escape(c["name"]),
            escape(f"{'+'.join(c['mitigations'])} @ {c['environment']}"),
            f"{n['pass']}/{n['fail']}/{n['error'] + n['skip']}",
            rate,
            f"[{_STYLE.get(c['classification'], '')}]{escape(cls)}[/]",
            "-" if c["p_value"] is None else f"{c['p_value']:.2g}",
            ratio,
            f"[bold yellow]{c['confound']}[/]" if c["confound"] else "",
        )
    con.print(t)
    for c in doc["cells"]:
        if c["note"]:
            con.print(f"  {escape(c['name'])}: {escape(c['note'])}")
        if c.get("stopped_early_at_alpha") is not None:
            late = (
                f"; {c['after_stop']} trial(s) already running were left out" if c.get("after_stop") else ""
            )
            con.print(
                f"  {escape(c['name'])}: stopped early at a look with alpha {c['stopped_early_at_alpha']:g}"
                f" after {c['counts']['total']} of {c['trials_planned']} trials{late}"
            )
    if doc.get("sequential_rule"):
        con.print(f"  early stopping: {escape(doc['sequential_rule'])}")
    con.print(
        f"  target signature: {escape(str(doc['target_signature']))};  step time from "
        f"{escape(doc['step_time_source'])}"
    )
    if doc.get("interrupted"):
        con.print("  [bold yellow]interrupted[/]: `sleuth matrix resume RUN_DIR` runs the missing trials")
    con.print(f"  run dir: {doc['run_dir']}")


def _execute(call: Any, as_json: bool) -> int:
    from sleuth.matrix.output import to_json

    progress = _Progress(as_json)
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result = call(progress)
    finally:
        signal.signal(signal.SIGTERM, old)
        progress.stop()
    doc = to_json(result)
    if as_json:
        print_json(doc)
    else:
        _render(doc)
    return int(result.exit_code)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--recipe", type=click.Path(dir_okay=False, path_type=Path), help="The matrix recipe (YAML or JSON)."
)
@click.option(
    "--mitigations-file",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A sidecar file of extra mitigations/environments (version: 1). Repeatable.",
)
@click.option("--workload-cmd", metavar="CMD", help="Shim: the command (split like a shell would).")
@click.option(
    "--mitigation-axis", multiple=True, metavar="A,B+C", help="Shim: mitigation stacks, one cell each."
)
@click.option(
    "--environment-axis",
    multiple=True,
    metavar="ENV,...",
    help="Shim: host, a registered name, venv:'PIN PIN', docker:IMG, podman:IMG, pyxis:IMG.",
)
@click.option("--trials", type=int, help="Shim: trials per cell (default 10).")
@click.option("--fail-regex", metavar="RE", help="Shim: the failure is this pattern in the output.")
@click.option(
    "--stream", type=click.Choice(["stdout", "stderr", "both"]), help="Shim: where --fail-regex looks."
)
@click.option("--step-time-regex", metavar="RE", help="Shim: step time, the regex's first group.")
@click.option("--timeout", type=float, metavar="S", help="Shim: stop a trial after S seconds.")
@click.option("--ticket", help="Shim: ticket id (groups run dirs).")
@click.option("--name", help="Shim: workload name (names the run dir).")
@click.option("--confound-threshold", type=float, help="Shim: speed-confound threshold (default 1.15).")
@click.option(
    "--until-decided", is_flag=True, help="Stop a cell early at a group-sequential look once decided."
)
@click.option("--seed", type=int, help="Seed of the interleaved trial order (default: drawn and recorded).")
@click.option("--jobs", "-j", type=int, default=1, show_default=True, help="Trials at a time.")
@click.option("--gpus", metavar="IDS", help="Comma-separated devices; each running trial gets its own.")
@click.option("--dry-run", is_flag=True, help="Validate everything, print the plan, write nothing.")
@output_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
@click.pass_context
def command(ctx: click.Context, /, **kw: Any) -> int | None:
    """Run every cell (mitigations x environment) many times, interleaved, and classify each
    against the baseline: fixed / worse / no_effect / inconclusive, with a speed-confound flag.

    Exit codes: 0 done, 2 bad recipe or flags, 3 no cell reached a decision, 4 the baseline could
    not run, 130 interrupted.  Example: sleuth matrix --recipe examples/matrix-nan/recipe.yaml -j 2
    """
    if ctx.invoked_subcommand is not None:
        given = [k for k in ("recipe", "workload_cmd", "dry_run") if kw[k]]
        if given:
            raise UsageError(f"'sleuth matrix {ctx.invoked_subcommand}' takes its own options only")
        return None
    from sleuth.matrix import driver

    gpus = _check_jobs(kw["jobs"], kw["gpus"])
    loaded = _loaded(kw)
    if kw["dry_run"]:
        return _dry_run(loaded, kw)
    return _execute(
        lambda p: driver.run(
            loaded, output=kw["output"], jobs=kw["jobs"], gpus=gpus, on_trial=p.trial, on_start=p.start
        ),
        kw["as_json"],
    )


def _dry_run(loaded: Any, kw: dict[str, Any]) -> int:
    from sleuth.matrix import driver
    from sleuth.matrix.output import plan_dict
    from sleuth.matrix.plan import trial_order

    plan = loaded.plan
    doc = plan_dict(
        plan,
        order_len=len(trial_order(plan.cells, plan.seed)),
        run_parent=str(driver.run_parent(plan, kw["output"])),
    )
    if kw["as_json"]:
        print_json(doc)
        return 0
    from rich.markup import escape
    from rich.table import Table

    con = console()
    con.print(
        f"[bold]dry run[/]: {doc['trials_total']} trials of [cyan]{escape(' '.join(plan.argv))}[/] "
        f"in {escape(plan.cwd)}; baseline [bold]{escape(plan.baseline)}[/] ({escape(plan.baseline_reason)})"
    )
    t = Table(show_header=True)
    for col in ("cell", "mitigations", "environment", "trials", "variables"):
        t.add_column(col, overflow="fold")
    for c in doc["cells"]:
        env = " ".join(f"{k}={v}" for k, v in c["env"].items())
        t.add_row(
            escape(c["name"]),
            escape("+".join(c["mitigations"])),
            escape(c["environment"]),
            str(c["trials"]),
            escape(env),
        )
    con.print(t)
    con.print(f"would write under {escape(doc['run_dir_parent'])}/ (nothing written)")
    return 0


@command.command("resume")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--jobs", "-j", type=int, default=None, help="Trials at a time (default: as the run started).")
@click.option("--gpus", metavar="IDS", help="Comma-separated devices (default: as the run started).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
def resume_command(run_dir: Path, jobs: int | None, gpus: str | None, as_json: bool) -> int:
    """Finish an interrupted matrix: run only the trials RUN_DIR lacks, then report the whole matrix."""
    from sleuth.matrix import driver

    ids: tuple[str, ...] | None = None
    if jobs is not None or gpus is not None:
        ids = _check_jobs(jobs if jobs is not None else 1, gpus)
        if gpus is None:
            ids = None
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run dir")

    def call(p: _Progress) -> Any:
        return driver.resume(run_dir, jobs=jobs, gpus=ids, on_trial=p.trial, on_start=p.start)

    return _execute(call, as_json)
