"""``sleuth matrix``: mitigations x environments x trials, with honest statistics.

``sleuth matrix --recipe FILE``, or the flag shim (``--mitigation-axis a,b ... -- CMD``);
``sleuth matrix resume RUN_DIR`` finishes an interrupted matrix.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sleuth.cli._common import (
    err_console,
    output_alias_option,
    output_option,
    print_json,
    sigterm_as_interrupt,
)
from sleuth.cli._options import (
    backend_options,
    check_jobs,
    check_kill_grace,
    kill_grace_option,
    parse_backend,
)
from sleuth.errors import ConfigError, UsageError

__all__ = ["command"]

_CMD_KEY = "sleuth.matrix.cmd"
_ARGS_KEY = "sleuth.matrix.args"


class _MatrixGroup(click.Group):
    """``sleuth matrix [OPTIONS] -- CMD ARGS...`` as ``run`` and ``bisect`` take it, next to the
    ``resume`` subcommand: everything after ``--`` is the workload, never a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGS_KEY] = list(args)  # to name a flag as it was typed
        if "--" in args:
            i = args.index("--")
            ctx.meta[_CMD_KEY] = tuple(args[i + 1 :])
            if not ctx.meta[_CMD_KEY]:
                raise UsageError(
                    "nothing after --", hint="e.g. sleuth matrix --mitigation-axis tf32_off -- CMD"
                )
            args = args[:i]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return ["[OPTIONS]", "[-- CMD [ARGS]...]", "|", "resume", "RUN_DIR"]

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and self.get_command(ctx, args[0]) is None:
            raise UsageError(
                f"no such subcommand {args[0]!r}; a workload goes after --",
                hint=f"e.g. sleuth matrix --mitigation-axis tf32_off -- {shlex.join(args)}",
            )
        return super().resolve_command(ctx, args)


def _shim_flags(kw: dict[str, Any], cmd: tuple[str, ...]) -> Any:
    from sleuth.cli._options import parse_env
    from sleuth.matrix.shim import ShimFlags

    return ShimFlags(
        workload_cmd=kw["workload_cmd"],
        command=cmd,
        env=tuple(parse_env(kw["env"]).items()),
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
        workload=kw["workload"],
        baseline_cell=kw["baseline_cell"],
    )


#: ShimFlags fields -> the click parameter they come from
_PARAM = {"threshold": "confound_threshold"}


def _typed(ctx: click.Context, field: str) -> str:
    """The spelling of the flag behind ``field`` that the user typed (``--output-dir``, not ``--output``)."""
    if field == "command":
        return "a command after --"
    name = _PARAM.get(field, field)
    opt = next((p for p in ctx.command.params if p.name == name), None)
    spellings = list(opt.opts) if isinstance(opt, click.Option) else [f"--{name.replace('_', '-')}"]
    args = ctx.meta.get(_ARGS_KEY, [])
    for arg in args[: args.index("--")] if "--" in args else args:
        for flag in spellings:
            if arg == flag or arg.startswith(f"{flag}="):
                return flag
    return spellings[0]


def _loaded(ctx: click.Context, kw: dict[str, Any], cmd: tuple[str, ...]) -> Any:
    from sleuth.matrix import driver
    from sleuth.matrix.recipe import MAX_SEED, MAX_STEPS, load_recipe, parse_recipe
    from sleuth.matrix.shim import build_recipe
    from sleuth.registry import load_registry

    if kw["seed"] is not None and not 0 <= kw["seed"] <= MAX_SEED:
        raise UsageError(f"--seed {kw['seed']}: must be between 0 and {MAX_SEED}")
    if kw["kill_grace"] is not None:
        check_kill_grace(kw["kill_grace"])
    flags = _shim_flags(kw, cmd)
    files = tuple(kw["mitigations_file"])
    if kw["steps"] is not None and not 1 <= kw["steps"] <= MAX_STEPS:
        raise UsageError(f"--steps {kw['steps']}: must be between 1 and {MAX_STEPS}")
    if kw["recipe"] is not None:
        if flags.given():
            typed = ", ".join(_typed(ctx, f) for f in flags.given())
            raise UsageError(
                f"--recipe cannot be mixed with {typed}",
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
    if kw["steps"] is not None:
        updates["steps"] = kw["steps"]
    if kw["kill_grace"] is not None:  # kept in recipe.resolved.yaml: a resume gives the same grace
        updates["workload"] = recipe.workload.model_copy(update={"kill_grace": kw["kill_grace"]})
    recipe = recipe.model_copy(update=updates)
    try:
        return driver.load(recipe, source, base_dir=base_dir, mitigation_files=files)
    except ConfigError as exc:
        if source != "command line":
            raise
        raise UsageError(_flag_of(exc.message), hint=exc.hint) from None


#: recipe key paths the shim writes -> the flag they came from (an error names what the user typed)
_FLAGS = [
    (r"command line: cells\[\d+\]\.mitigations", "--mitigation-axis"),
    (r"command line: cells\[\d+\]\.environment", "--environment-axis"),
    (r"command line: cells\[\d+\]\.name", "--mitigation-axis"),
    (r"command line: environments", "--environment-axis"),
    (r"command line: workload\.env", "--env"),
    (r"command line: workload\.command", "the command"),
    (r"command line: workload\.plugin", "--workload"),
    (r"command line: confound\.baseline_cell", "--baseline-cell"),
    (r"command line: steps", "--steps"),
    (r"command line: workload\.cwd", "the working directory"),
]


def _flag_of(message: str) -> str:
    import re

    for pattern, flag in _FLAGS:
        message = re.sub(pattern, flag, message)
    return message


class _Watch:
    """Progress while trials run: a bar on a terminal, a heartbeat line in a log (on stderr)."""

    def __init__(self, quiet: bool, backend: Any = None) -> None:
        self.quiet = quiet
        self.progress: Any = None
        self.run_dir: Path | None = None
        #: a non-local ``BackendChoice``, named on the first line
        self.backend = backend

    def start(self, run_dir: Path, done: int, total: int) -> None:
        self.run_dir = run_dir
        if self.quiet:
            return
        from sleuth.cli._progress import Progress

        con = err_console()
        on = ""
        if self.backend is not None and not self.backend.is_local:
            from sleuth.secrets import scrub_text

            on = f" on {scrub_text(self.backend.secrets().scrub(self.backend.describe()))}"
        con.print(f"sleuth matrix{on} -> {run_dir}", markup=False, highlight=False, soft_wrap=True)
        self.progress = Progress(con, "trials", total, completed=done).start()

    def trial(self, _record: Any, done: int, total: int) -> None:
        p = self.progress
        if p is None:
            return
        if total != p.total:
            p.set_total(total)
        p.advance(done - p.completed)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _execute(call: Callable[[_Watch], Any], as_json: bool, backend: Any = None) -> int:
    from sleuth.cli._matrix_render import render_result, say
    from sleuth.matrix.output import to_json

    watch = _Watch(as_json, backend)
    try:
        with sigterm_as_interrupt():
            result = call(watch)
    except KeyboardInterrupt:  # before the report was written (e.g. while it was computed)
        watch.stop()
        if watch.run_dir is not None:
            say(err_console(), f"`sleuth matrix resume {shlex.quote(str(watch.run_dir))}` goes on")
        raise
    finally:
        watch.stop()
    doc = to_json(result)
    if result.already_finished and not as_json:
        say(err_console(), f"{doc['run_dir']}: this matrix has finished; nothing to run (the report follows)")
    if as_json:
        print_json({**doc, "already_finished": True} if result.already_finished else doc)
    else:
        render_result(doc)
    return int(result.exit_code)


@click.group(
    cls=_MatrixGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--recipe", type=click.Path(dir_okay=False, path_type=Path), help="The matrix recipe (YAML or JSON)."
)
@click.option(
    "--mitigations-file",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A sidecar file of extra mitigations/environments (version: 1). Repeatable.",
)
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
@kill_grace_option(
    "Seconds a stopped trial (--timeout, Ctrl-C) has between SIGTERM and SIGKILL, e.g. to save a "
    "checkpoint; overrides the recipe's workload.kill_grace.  [default: 5]",
    default=None,
)
@click.option("--env", multiple=True, metavar="K=V", help="Shim: a variable for every cell. Repeatable.")
@click.option("--ticket", help="Shim: ticket id (groups run dirs).")
@click.option("--name", help="Shim: workload name (names the run dir).")
@click.option("--confound-threshold", type=float, help="Shim: speed-confound threshold (default 1.15).")
@click.option(
    "--baseline-cell", metavar="CELL", help="Shim: the reference baseline cell (default: baseline)."
)
@click.option("--workload-cmd", metavar="CMD", help="Shim: the command as one string (or put it after --).")
@click.option(
    "--workload",
    metavar="NAME|CMD",
    help="Shim: a named workload (plugin of sleuth.workloads, module:Class) or a command string.",
)
@click.option(
    "--steps", type=int, metavar="N", help="The workload's steps ({STEPS}, SLEUTH_STEPS); cells may override."
)
@click.option(
    "--until-decided", is_flag=True, help="Stop a cell early at a group-sequential look once decided."
)
@click.option("--seed", type=int, help="Seed of the interleaved trial order (default: drawn and recorded).")
@click.option("--jobs", "-j", type=int, default=1, show_default=True, help="Trials at a time.")
@click.option("--gpus", metavar="IDS", help="Comma-separated devices; each running trial gets its own.")
@backend_options
@click.option("--dry-run", is_flag=True, help="Validate everything, print the plan, write nothing.")
@output_option
@output_alias_option("--output-dir", help="Alias of --output (aorta's name).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
@click.pass_context
def command(ctx: click.Context, /, **kw: Any) -> int | None:
    """Run every cell (mitigations x environment) many times, interleaved, and classify each
    against the baseline of its environment: fixed / worse / no_effect / inconclusive, with a
    speed-confound flag; each environment's own effect is reported against the reference baseline.

    \b
    sleuth matrix --recipe examples/matrix-nan/recipe.yaml -j 2
    sleuth matrix --mitigation-axis none,tf32_off --trials 30 -- python train.py
    sleuth matrix resume RUN_DIR

    Exit codes: 0 done, 2 bad recipe or flags, 3 no comparison reached a decision, 4 the baseline
    could not run, 130 interrupted.
    """
    cmd: tuple[str, ...] = ctx.meta.get(_CMD_KEY, ())
    if ctx.invoked_subcommand is not None:
        given = [k for k in ("recipe", "workload_cmd", "workload", "dry_run") if kw[k]]
        given += ["kill_grace"] if kw["kill_grace"] is not None else []
        if given or cmd:
            raise UsageError(f"'sleuth matrix {ctx.invoked_subcommand}' takes its own options only")
        return None
    from sleuth.backends.choice import restore_redacted
    from sleuth.matrix import driver

    # the report's rerun line gives a secret option as <redacted>: the recipe's run dir keeps it
    recipe_dir = kw["recipe"].resolve().parent if kw["recipe"] is not None else None
    backend = restore_redacted(parse_backend(kw["backend"], kw["backend_opt"]), recipe_dir)
    gpus = check_jobs(kw["jobs"], kw["gpus"], backend)
    loaded = _loaded(ctx, kw, cmd)
    if kw["dry_run"]:
        return _dry_run(loaded, kw)
    return _execute(
        lambda w: driver.run(
            loaded,
            output=kw["output"],
            jobs=kw["jobs"],
            gpus=gpus,
            backend=backend,
            on_trial=w.trial,
            on_start=w.start,
        ),
        kw["as_json"],
        backend,
    )


def _dry_run(loaded: Any, kw: dict[str, Any]) -> int:
    from sleuth.cli._matrix_render import render_plan
    from sleuth.matrix import driver
    from sleuth.matrix.output import plan_dict

    plan = loaded.plan
    doc = plan_dict(plan, run_parent=str(driver.run_parent(plan, kw["output"])))
    if kw["as_json"]:
        print_json(doc)
        return 0
    render_plan(doc)
    return 0


@command.command("resume")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--jobs", "-j", type=int, default=None, help="Trials at a time (default: as the run started).")
@click.option("--gpus", metavar="IDS", help="Comma-separated devices (default: as the run started).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
def resume_command(run_dir: Path, jobs: int | None, gpus: str | None, as_json: bool) -> int:
    """Finish an interrupted matrix: run only the trials RUN_DIR lacks, then report the whole matrix.

    A matrix that has finished is reported as it is: nothing runs, nothing is written.
    """
    from sleuth.backends.choice import BackendChoice
    from sleuth.cli._options import parse_gpus
    from sleuth.matrix import resume

    ids = parse_gpus(gpus) if gpus is not None else None
    ready = resume.open_resume(run_dir)  # every check before anything is opened or written
    try:  # as journaled (secret values hidden): named on the first line
        shown: Any = BackendChoice.from_dict(ready.start.get("backend"))
    except ValueError:  # resume() says what is wrong with it
        shown = None
    if jobs is not None or gpus is not None:  # against the run's backend (--gpus is local only)
        check_jobs(jobs if jobs is not None else 1, gpus, BackendChoice(shown.name) if shown else None)

    def call(w: _Watch) -> Any:
        return resume.resume(ready, jobs=jobs, gpus=ids, on_trial=w.trial, on_start=w.start)

    return _execute(call, as_json, shown)
