"""``sleuth run [options] -- CMD ARGS...``: run a workload k times, judge each trial, keep every log."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import click

from sleuth.backends.local import check_slots
from sleuth.cli._common import OUTCOME_STYLE, console, fmt_rate, fmt_s, output_option, print_json
from sleuth.cli._options import (
    check_cwd,
    oracle_from_flags,
    oracle_options,
    parse_env,
    parse_gpus,
    parse_metrics,
    parse_timeout,
    workload_options,
)
from sleuth.errors import UsageError

__all__ = ["command"]


def _environment(kind: str, pins: tuple[str, ...], python: str | None) -> dict[str, Any]:
    if kind == "host":
        if pins or python:
            raise UsageError("--with/--python need --environment venv")
        return {"kind": "host"}
    if not pins:
        raise UsageError(
            "--environment venv needs at least one --with REQUIREMENT", hint="e.g. --with 'numpy==2.1.0'"
        )
    return {"kind": "venv", "pins": list(pins), "python": python}


def _prepare(desc: dict[str, Any]) -> Any:
    if desc["kind"] == "venv":
        from sleuth.environments.venv import VenvEnvironment

        return VenvEnvironment(pins=tuple(desc["pins"]), python=desc.get("python")).prepare()
    from sleuth.environments.host import HostEnvironment

    return HostEnvironment()


@click.command(context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False})
@click.option("--trials", "-n", type=int, default=1, show_default=True, help="How many trials.")
@click.option(
    "--jobs", "-j", type=int, default=None, help="Trials at a time (default 1, or one per --gpus device)."
)
@oracle_options
@workload_options
@click.option("--gpus", metavar="IDS", help="Comma-separated devices; each running trial gets its own.")
@click.option(
    "--environment",
    type=click.Choice(["host", "venv"]),
    default="host",
    show_default=True,
    help="Where trials run.",
)
@click.option("--with", "pins", multiple=True, metavar="REQ", help="A requirement for the venv. Repeatable.")
@click.option("--python", metavar="X.Y|PATH", help="Interpreter for the venv (default: this one).")
@click.option("--name", help="Run name (default: from the command).")
@output_option
@click.option(
    "--resume",
    "resume",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Finish an interrupted run dir (runs only the trials it lacks).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def command(**kw: Any) -> int:
    """Run CMD --trials times and report each trial and the summary.

    Exit codes: 0 every trial passed (or skipped), 1 a trial failed, 4 trials could not run,
    130 interrupted.  Example: sleuth run --trials 20 --jobs 2 -- python train.py
    """
    from sleuth import batch
    from sleuth.journal import RunDir
    from sleuth.runner import reap_orphans

    if kw["resume"] is not None:
        if kw["cmd"]:
            raise UsageError("--resume takes no command: the run dir knows it")
        run_dir = RunDir.open(kw["resume"])
        reaped = reap_orphans(run_dir.path)  # trials a killed sleuth left running would run twice
        if reaped:
            run_dir.journal.append("reaped", process_groups=reaped)
        config, done = batch.resume_config(run_dir)
        prepared = _prepare(dict(config.environment))
    else:
        config = _config(kw)
        prepared = _prepare(dict(config.environment))  # a broken environment leaves no run dir behind
        run_dir = RunDir.create(kw["output"], "run", config.name)
        done = []
        batch.record_start(config, run_dir)
    view = _View(config, run_dir.path, quiet=kw["as_json"])
    view.start(len(done))
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        summary = batch.execute(config, run_dir, prepared, done=done, on_trial=view.trial)
    finally:
        signal.signal(signal.SIGTERM, old)
        view.stop()
        run_dir.close()
    if kw["as_json"]:
        print_json({"run_dir": str(run_dir.path), "summary": summary.data, "trials": list(summary.trials)})
    else:
        view.summary(summary.data)
    return summary.exit_code


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _config(kw: dict[str, Any]) -> Any:
    from sleuth import batch

    cmd = tuple(kw["cmd"])
    if not cmd:
        raise UsageError(
            "no command given", hint="put it after --, e.g. sleuth run --trials 5 -- python train.py"
        )
    if kw["trials"] < 1:
        raise UsageError(f"--trials {kw['trials']}: must be at least 1")
    gpus = parse_gpus(kw["gpus"])
    jobs = kw["jobs"] if kw["jobs"] is not None else max(1, len(gpus))
    check_slots(jobs, gpus)
    timeout, grace = parse_timeout(kw["timeout"], kw["kill_grace"])
    metrics = parse_metrics(kw["metric"], kw["metric_series"])
    oracle_ref = kw["oracle_ref"]
    if oracle_ref:
        from sleuth.oracle import load_callable

        load_callable(oracle_ref)  # a bad reference fails now, before any trial runs
        path, sep, func = oracle_ref.rpartition(":")
        if path.endswith(".py"):  # --resume from another directory must find the same file
            oracle_ref = f"{os.path.abspath(path)}{sep}{func}"
    oracle = oracle_from_flags(kw, oracle_ref=oracle_ref)
    cwd = check_cwd(kw["cwd"])
    name = kw["name"] or batch.default_name(cmd)
    return batch.RunConfig(
        argv=cmd,
        env=parse_env(kw["env"]),
        # recorded absolute: `--resume` from another directory runs the trials where they started
        cwd=cwd or os.getcwd(),
        timeout_s=timeout,
        kill_grace_s=grace,
        trials=kw["trials"],
        jobs=jobs,
        gpus=gpus,
        metrics=metrics,
        oracle=oracle,
        environment=_environment(kw["environment"], tuple(kw["pins"]), kw["python"]),
        name=name,
    )


class _View:
    """Live rows and a progress bar while trials run; the summary table after."""

    def __init__(self, config: Any, run_dir: Path, *, quiet: bool) -> None:
        self.config = config
        self.run_dir = run_dir
        self.quiet = quiet
        self.progress: Any = None
        self.task: Any = None
        self.con: Any = None

    def start(self, already: int) -> None:
        if self.quiet:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.con = console()
        cmd = " ".join(self.config.argv)
        self.con.print(
            f"[bold]sleuth run[/] {self.config.trials} trial(s) of [cyan]{cmd}[/], "
            f"{self.config.jobs} at a time -> {self.run_dir}"
        )
        self.con.print(f"[dim]{'trial':>6}  {'outcome':<7} {'rc':>5} {'wall':>9}  metrics / signature[/]")
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.con,
            transient=True,
        )
        self.task = self.progress.add_task("trials", total=self.config.trials, completed=already)
        self.progress.start()

    def trial(self, trial: Any) -> None:
        if self.quiet:
            return
        r = trial.result
        rc = str(r.rc) if r.rc is not None else (f"sig{r.signal}" if r.signal else "-")
        extra = " ".join(
            f"{k}={v if not isinstance(v, tuple) else f'[{len(v)} values]'}" for k, v in r.metrics.items()
        )
        note = trial.signature or trial.reason or ""
        style = OUTCOME_STYLE[trial.outcome]
        from rich.markup import escape

        self.progress.console.print(
            f"{trial.id:>6}  [{style}]{trial.outcome.name:<7}[/] {rc:>5} {fmt_s(r.wall_s):>9}  "
            f"{escape(extra)}{'  ' if extra and note else ''}[dim]{escape(note)}[/]"
        )
        self.progress.advance(self.task)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()

    def summary(self, d: dict[str, Any]) -> None:
        from rich.markup import escape
        from rich.table import Table

        con = self.con or console()
        t = Table(title="summary", show_header=False, title_justify="left", box=None, pad_edge=False)
        t.add_column(style="bold")
        t.add_column()
        counts = "  ".join(f"[{OUTCOME_STYLE[o]}]{d[o.value]} {o.value}[/]" for o in OUTCOME_STYLE)
        t.add_row(
            "trials",
            (f"{d['trials']} of {d['planned']}" if d.get("interrupted") else f"{d['trials']}")
            + f": {counts}"
            + ("  [bold yellow](interrupted)[/]" if d.get("interrupted") else ""),
        )
        t.add_row("failure rate", fmt_rate(d["failure_rate"], d["failure_rate_ci"]))
        t.add_row("wall time", f"median {fmt_s(d['wall_s']['median'])}  p90 {fmt_s(d['wall_s']['p90'])}")
        for name, m in d["metrics"].items():
            text = "no finite value"
            if m["n"]:
                text = (
                    f"median {m['median']:g}  p90 {m['p90']:g}  min {m['min']:g}  max {m['max']:g}"
                    f"  (n={m['n']})"
                )
            if m.get("nonfinite"):
                text += f"  [bold yellow]+{m['nonfinite']} nan/inf[/]"
            t.add_row(f"metric {escape(name)}", text)
        for sig, count in d["signatures"].items():
            t.add_row("signature", f"{count} x {escape(sig)}")
        t.add_row("run dir", str(self.run_dir))
        con.print(t)
