"""``sleuth run [options] -- CMD ARGS...``: run a workload k times, judge each trial, keep every log."""

from __future__ import annotations

import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from sleuth import hangup
from sleuth.cli._common import output_option
from sleuth.cli._options import (
    MAX_TIMEOUT_S,
    backend_options,
    check_cwd,
    oracle_from_flags,
    oracle_options,
    parse_backend,
    parse_env,
    parse_gpus,
    parse_metrics,
    parse_timeout,
    workload_options,
)
from sleuth.errors import UsageError
from sleuth.model import MAX_KILL_GRACE_S

__all__ = ["command"]


class _EnvironmentType(click.ParamType):  # type: ignore[type-arg]
    """``host``, ``venv``, or ``container:IMAGE`` (``podman:IMAGE``, ``docker:IMAGE``)."""

    name = "host|venv|container:IMAGE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        kind, sep, image = text.partition(":")
        if text in ("host", "venv") or (sep and kind in ("container", "podman", "docker") and image.strip()):
            return text
        self.fail(
            f"{text!r}: use host, venv, or container:IMAGE (also podman:IMAGE, docker:IMAGE)", param, ctx
        )


def _environment(
    kind: str, pins: tuple[str, ...], python: str | None, env_names: tuple[str, ...] = ()
) -> dict[str, Any]:
    if ":" in kind:  # container:IMAGE (the runtime: podman when installed, else docker)
        if pins or python:
            raise UsageError("--with/--python need --environment venv")
        from sleuth.environments.container import container_runtime_for

        runtime, _, image = kind.partition(":")
        return {"kind": "container", "runtime": container_runtime_for(runtime), "image": image,
                "forward": list(env_names)}  # fmt: skip
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
    if desc.get("kind") == "container":
        from sleuth.environments.container import ContainerEnvironment, Runtime, TrialContainer

        runtime = Runtime.parse(desc["runtime"])
        env = ContainerEnvironment(
            image=desc["image"], runtime=runtime, check_image=True, gpus=None, rocm=None
        )
        return TrialContainer(env.prepare(), tuple(desc.get("forward") or ()))
    if desc.get("kind") == "venv":
        from sleuth.environments.venv import VenvEnvironment

        return VenvEnvironment(pins=tuple(desc["pins"]), python=desc.get("python")).prepare()
    from sleuth.environments.host import HostEnvironment

    return HostEnvironment()


@click.command(context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False})
@click.option("--trials", "-n", type=int, default=None, help="How many trials.  [default: 1]")
@click.option(
    "--until-fail",
    is_flag=True,
    help="Run until the first FAIL (at most --max-trials) and say where its logs are: exit 1 when "
    "reproduced, 0 when every trial passed (with the failure rate's upper bound).",
)
@click.option(
    "--max-trials",
    type=int,
    metavar="N",
    help="With --until-fail: the most trials to run.  [default: 100]",
)
@click.option(
    "--warmup",
    type=int,
    default=0,
    metavar="N",
    help="Run N warm-up trials first (kept in warmup/, journaled, left out of every statistic).",
)
@click.option(
    "--jobs", "-j", type=int, default=None, help="Trials at a time (default 1, or one per --gpus device)."
)
@oracle_options
@workload_options
@click.option("--gpus", metavar="IDS", help="Comma-separated devices; each running trial gets its own.")
@backend_options
@click.option(
    "--environment",
    type=_EnvironmentType(),
    default="host",
    show_default=True,
    help="Where trials run: host, venv (--with), or container:IMAGE (podman, else docker; each trial its "
    "own container, its --env variables passed in, its trial dir at /sleuth-output).",
)
@click.option("--with", "pins", multiple=True, metavar="REQ", help="A requirement for the venv. Repeatable.")
@click.option("--python", metavar="X.Y|PATH", help="Interpreter for the venv (default: this one).")
@click.option("--name", help="Run name (default: from the command).")
@output_option
@click.option(
    "--resume",
    "resume",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Finish an interrupted run dir (runs only the trials it lacks; a finished one is left as it is).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def command(ctx: click.Context, /, **kw: Any) -> int:
    """Run CMD --trials times and report each trial and the summary (also in RUN_DIR/report.md).

    Exit codes: 0 every trial passed (or skipped), 1 a trial failed, 2 a flag is wrong (also when
    the first trial shows that a metric a flag names is never produced), 4 trials could not run,
    130 interrupted.

    \b
    Examples:
      sleuth run --trials 20 --jobs 2 -- python train.py
      sleuth run --until-fail --max-trials 500 -- pytest -x tests/test_flaky.py
      sleuth run --trials 50 --jobs 16 --backend slurm --backend-opt partition=debug -- ./t.sh
      sleuth run --resume sleuth-runs/run/train/20250101T120000Z
    """
    if kw["resume"] is not None:
        return _resume(ctx, kw)
    from sleuth import batch
    from sleuth.backends import closed_on_error
    from sleuth.backends.choice import make_backend
    from sleuth.journal import RunDir

    config = _config(kw)
    # a bad --backend-opt (checked by the backend as it starts) leaves no run dir behind, and says so
    # before a venv is built; so does a broken environment
    backend = make_backend(config.backend, config.jobs, config.gpus)
    with closed_on_error(backend):
        prepared = _prepare(dict(config.environment))
        gate = batch.SignalGate()
        with _handlers(gate):
            run_dir = RunDir.create(Path(kw["output"]).absolute(), "run", config.name)
            secrets, public = batch.record_start(config, run_dir)
            state = batch.new_state(config, public)
            return _execute(config, run_dir, prepared, state, secrets=secrets, gate=gate,
                            as_json=kw["as_json"], backend=backend)  # fmt: skip


def _resume(ctx: click.Context, kw: dict[str, Any]) -> int:
    from sleuth import batch
    from sleuth.backends import closed_on_error
    from sleuth.backends.choice import make_backend
    from sleuth.journal import RunDir
    from sleuth.runner import reap_orphans

    if kw["cmd"]:
        raise UsageError("--resume takes no command: the run dir knows it")
    given = [
        p.opts[0]
        for p in ctx.command.params
        if p.name not in ("resume", "as_json", "cmd")
        and ctx.get_parameter_source(p.name or "") is click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        raise UsageError(f"--resume takes no {given[0]}: the run dir knows how it was started")
    path: Path = kw["resume"].resolve()
    if not (path / "journal.jsonl").is_file():
        RunDir.open(path)  # says what is wrong with a directory that is not a run dir
    config, state, secrets = batch.load_resume(path)
    if state.finished is not None:
        return _already_finished(path, state.finished, as_json=kw["as_json"])
    if config.cwd is not None and not os.path.isdir(config.cwd):  # every trial left would be an ERROR
        raise UsageError(
            f"{path}: the run's working directory {config.cwd} is gone", hint="restore it, then resume again"
        )
    if config.oracle.callable_ref:  # a module found where the run started is found from anywhere
        _check_oracle(config.oracle.callable_ref, also=(config.cwd,) if config.cwd else ())
    backend = make_backend(config.backend, config.jobs, config.gpus)  # the one the run started with
    with closed_on_error(backend):
        prepared = _prepare(dict(config.environment))
    gate = batch.SignalGate()
    with closed_on_error(backend), _handlers(gate):
        run_dir = RunDir.open(path)
        if run_dir.journal.path.stat().st_size != state.index.scanned:  # appended to since we read it
            config, state, secrets = batch.load_resume(path)
        reaped = reap_orphans(run_dir.path, config.kill_grace_s)  # a killed run's trials, its grace
        if reaped:
            run_dir.journal.append("reaped", process_groups=reaped)
        adopted, cleared = batch.adopt_and_clean(run_dir, config, state)
        run_dir.journal.append("resume", replayed=state.replayed, adopted=adopted, cleared=cleared)
        return _execute(config, run_dir, prepared, state, secrets=secrets, gate=gate, as_json=kw["as_json"],
                        backend=backend)  # fmt: skip


def _already_finished(path: Path, summary: dict[str, Any], *, as_json: bool) -> int:
    from sleuth.run_tally import exit_code_of

    text = (path / "summary.json").read_bytes() if (path / "summary.json").is_file() else b""
    if as_json and text:
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
    counts = ", ".join(f"{summary.get(k, 0)} {k}" for k in ("pass", "fail", "skip", "error"))
    trials = summary.get("trials", 0)
    click.echo(f"sleuth run: {path} already finished ({trials} trials: {counts}); nothing to do", err=True)
    return exit_code_of(summary)


class _handlers:
    """SIGTERM, SIGINT and SIGHUP (each unless sleuth was started with it ignored, as `&` ignores
    SIGINT and nohup SIGHUP) go through the gate: none cuts the run dir's creation or the summary."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate
        self.old: dict[int, Any] = {}

    def _hang_up(self, signum: int, frame: object) -> None:
        hangup.detach()  # the terminal is gone: what is printed next must not fail with EIO
        self.gate.handle(signum, frame)

    def __enter__(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if sig != signal.SIGTERM and signal.getsignal(sig) is signal.SIG_IGN:
                continue  # started in the background (`&`, nohup): not meant for it
            self.old[sig] = signal.signal(sig, self._hang_up if sig == signal.SIGHUP else self.gate.handle)

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.old.items():
            signal.signal(sig, old)


def _execute(
    config: Any,
    run_dir: Any,
    prepared: Any,
    state: Any,
    *,
    secrets: Any,
    gate: Any,
    as_json: bool,
    backend: Any,
) -> int:
    from sleuth import batch
    from sleuth.cli._run_view import View

    view = View(config, run_dir.path, secrets, as_json=as_json)
    view.start(sum(state.tally.counts.values()) + sum(state.warmup.counts.values()))
    try:
        summary = batch.execute(config, run_dir, prepared, state=state, secrets=secrets, on_trial=view.trial,
                                gate=gate, backend=backend)  # fmt: skip
    finally:
        view.stop()
        run_dir.close()
    if as_json:
        view.json_document(summary)
    elif not summary.data.get("stopped"):
        view.summary(summary.data)
    if summary.data.get("stopped"):
        raise UsageError(summary.data["stopped"], hint=f"nothing more ran; what did is in {run_dir.path}")
    # a signal while the summary was written: the run is complete, but the caller asked to stop
    return 130 if gate.caught else summary.exit_code


def _check_limits(kw: dict[str, Any]) -> tuple[int, int]:
    from sleuth import batch
    from sleuth.backends.choice import check_backend

    if kw["until_fail"]:
        if kw["trials"] is not None:
            raise UsageError(
                "--trials does not go with --until-fail", hint="bound the search with --max-trials N"
            )
        trials, flag = (
            kw["max_trials"] if kw["max_trials"] is not None else batch.DEFAULT_MAX_TRIALS,
            "--max-trials",
        )
    else:
        if kw["max_trials"] is not None:
            raise UsageError("--max-trials needs --until-fail", hint="to run a fixed number, use --trials N")
        trials, flag = (kw["trials"] if kw["trials"] is not None else 1), "--trials"
    gpus = parse_gpus(kw["gpus"])
    jobs = kw["jobs"] if kw["jobs"] is not None else max(1, len(gpus))
    batch.check_counts(trials=trials, warmup=kw["warmup"], jobs=jobs, trials_flag=flag)
    check_backend(parse_backend(kw["backend"], kw["backend_opt"]), jobs, gpus)
    for flag_name, value, top in (
        ("--timeout", kw["timeout"], MAX_TIMEOUT_S),
        ("--kill-grace", kw["kill_grace"], MAX_KILL_GRACE_S),
    ):
        if value is not None and math.isfinite(value) and value > top:
            raise UsageError(f"{flag_name} {value:g}: at most {top:g} seconds")
    return trials, jobs


def _check_metric_regexes(metrics: Any) -> None:
    from sleuth.expect import metric_regex_problem

    for m in metrics:
        if m.pattern.groups:
            continue
        problem = metric_regex_problem(m.pattern.pattern)
        if problem:
            flag = "--metric-series" if m.series else "--metric"
            raise UsageError(
                f"{flag} {m.name}={m.pattern.pattern}: {problem}",
                hint=f"capture the number in a group, e.g. {flag} '{m.name}=step_ms=([0-9.]+)'",
            )


def _check_oracle(ref: str, also: tuple[str, ...] = ()) -> None:
    """A bad ``--oracle`` reference fails now, before any trial runs (and before a run dir exists).
    The module it imports stays imported: the run's oracle is built from it."""
    from sleuth.oracle import load_callable

    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # checking a flag leaves no __pycache__ behind
    try:
        load_callable(ref, also=also)
    finally:
        sys.dont_write_bytecode = dont_write


def _config(kw: dict[str, Any]) -> Any:
    from sleuth import batch
    from sleuth.model import NAME_MAX, check_name

    cmd = tuple(kw["cmd"])
    if not cmd:
        raise UsageError(
            "no command given", hint="put it after --, e.g. sleuth run --trials 5 -- python train.py"
        )
    try:
        here = os.getcwd()
    except FileNotFoundError:  # the shell sits in a directory that was removed (a rebuilt build dir)
        raise UsageError(
            "the current directory no longer exists", hint="cd to one that does (it was removed)"
        ) from None
    if not cmd[0].strip():  # `sleuth run -- "$CMD"` with CMD unset: every trial an ERROR
        raise UsageError(
            f"the command's program is {cmd[0]!r}, an empty name", hint="is a variable in the command unset?"
        )
    trials, jobs = _check_limits(kw)
    timeout, grace = parse_timeout(kw["timeout"], kw["kill_grace"])
    metrics = parse_metrics(kw["metric"], kw["metric_series"])
    _check_metric_regexes(metrics)
    oracle_ref = kw["oracle_ref"]
    if oracle_ref:
        _check_oracle(oracle_ref)
        path, sep, func = oracle_ref.rpartition(":")
        if path.endswith(".py"):  # --resume from another directory must find the same file
            oracle_ref = f"{os.path.abspath(path)}{sep}{func}"
    oracle = oracle_from_flags(kw, oracle_ref=oracle_ref)
    cwd = check_cwd(kw["cwd"])
    if cwd is not None and ":" in kw["environment"]:  # the host's directory is not in the image
        raise UsageError(
            f"--cwd does not go with --environment {kw['environment']}: the workload runs in the image's "
            "own working directory",
            hint="cd in the command instead, e.g. -- sh -c 'cd /app && python train.py'",
        )
    if kw["name"] is not None and not check_name(kw["name"]):
        shown = kw["name"] if len(kw["name"]) <= 40 else kw["name"][:40] + "..."
        raise UsageError(
            f"--name {shown!r}: not usable as a directory name",
            hint=f"use at most {NAME_MAX} letters, digits, '_', '.', '-' (not starting with '.' or '-')",
        )
    name = kw["name"] or batch.default_name(cmd)
    return batch.RunConfig(
        argv=cmd,
        env=parse_env(kw["env"]),
        # recorded absolute: `--resume` from another directory runs the trials where they started
        cwd=cwd or here,
        timeout_s=timeout,
        kill_grace_s=grace,
        trials=trials,
        warmup=kw["warmup"],
        until_fail=kw["until_fail"],
        jobs=jobs,
        gpus=parse_gpus(kw["gpus"]),
        metrics=metrics,
        oracle=oracle,
        environment=_environment(
            kw["environment"], tuple(kw["pins"]), kw["python"], tuple(parse_env(kw["env"]))
        ),
        name=name,
        backend=parse_backend(kw["backend"], kw["backend_opt"]),
    )
