"""``sleuth run [options] -- CMD ARGS...``: run a workload k times, judge each trial, keep every log.

Its flags become a run's config in :mod:`sleuth.cli._run_flags`; here a run is started or resumed.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from sleuth import hangup
from sleuth.cli._common import output_option
from sleuth.cli._options import backend_options, oracle_options, workload_options
from sleuth.cli._run_flags import EnvironmentType, check_oracle, run_config
from sleuth.errors import UsageError

__all__ = ["command"]


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
    type=EnvironmentType(),
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

    config = run_config(kw)
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
        check_oracle(config.oracle.callable_ref, also=(config.cwd,) if config.cwd else ())
    backend = make_backend(config.backend, config.jobs, config.gpus)  # the one the run started with
    with closed_on_error(backend):
        prepared = _prepare(dict(config.environment))
    gate = batch.SignalGate()
    with closed_on_error(backend), _handlers(gate):
        run_dir = RunDir.open(path)
        if run_dir.journal.path.stat().st_size != state.index.scanned:  # appended to since we read it
            config, state, secrets = batch.load_resume(path)
        # a killed run's trials, its grace; a signal (held by the gate) cuts it, and the run stops at once
        reaped = reap_orphans(run_dir.path, config.kill_grace_s, stop=lambda: gate.caught)
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
