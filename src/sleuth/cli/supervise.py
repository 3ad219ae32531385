"""``sleuth supervise [--max-restarts N] [--attribution FILE|URL] [--decision-timeout S] -- CMD``.

Runs CMD; on each failure attributes it (locally, or through a ``sleuth serve`` service), then
restarts or stops.  Exits with the workload's final status.  Shadow mode is the default: a STOP
is recorded in ``cycles.jsonl`` and the workload restarts anyway, until a site has measured the
catalog's precision on its own logs and passes ``--mode enforce``.  ``--kill-grace S`` (the
run-style verbs' flag, parsed and checked by :mod:`sleuth.cli._options`) is how long the workload has
to end each time it is stopped, before SIGTERM and again before SIGKILL.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import click

from sleuth.cli._attribution_flags import attribution_options, settings_from_flags
from sleuth.cli._options import check_kill_grace, kill_grace_option
from sleuth.errors import UsageError

__all__ = ["command"]


def _check(kw: dict[str, Any]) -> None:
    if not kw["cmd"]:
        raise UsageError("no command to supervise", hint="sleuth supervise [options] -- CMD ARGS...")
    _check_program(kw["cmd"][0])
    if not 0 <= kw["max_restarts"] <= 100_000:
        raise UsageError(f"--max-restarts {kw['max_restarts']}: must be between 0 and 100000")
    if not 0 < kw["decision_timeout"] <= 3600:
        raise UsageError(f"--decision-timeout {kw['decision_timeout']:g}: must be > 0 and <= 3600 seconds")
    if not 0 <= kw["restart_delay"] <= 3600:
        raise UsageError(f"--restart-delay {kw['restart_delay']:g}: must be between 0 and 3600 seconds")
    check_kill_grace(kw["kill_grace"])
    if not 1 <= kw["nodes"] <= 100_000:
        raise UsageError(f"--nodes {kw['nodes']}: must be >= 1")
    if not 0 <= kw["node_rank"] < kw["nodes"]:
        raise UsageError(f"--node-rank {kw['node_rank']}: must be in [0, --nodes {kw['nodes']})")
    if not 0 <= kw["leader_rank"] < kw["nodes"]:
        raise UsageError(f"--leader-rank {kw['leader_rank']}: must be in [0, --nodes {kw['nodes']})")
    if kw["leader"] and kw["node_rank"] != kw["leader_rank"]:
        # the other nodes cannot know: node 0 went on leading too, and the job had two leaders
        raise UsageError(
            f"--leader on node rank {kw['node_rank']}, but node rank {kw['leader_rank']} leads "
            "(--leader-rank, default 0): every node must know which one leads",
            hint=f"give --leader-rank {kw['node_rank']} to every node instead of --leader",
        )
    if kw["nodes"] > 1 and not (kw["service"] or _is_url(kw["attribution"])):
        raise UsageError("--nodes > 1 needs --service URL (the nodes agree through the attribution service)")
    if kw["nodes"] > 1 and not kw["job_id"]:
        raise UsageError("--nodes > 1 needs --job-id ID (the same on every node)")
    if kw["job_id"] and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", kw["job_id"]):
        raise UsageError(f"--job-id {kw['job_id']!r}: use letters, digits, '_', '.', ':', '-' (at most 128)")
    if kw["service"] and kw["attribution"]:
        raise UsageError("give --attribution or --service, not both")
    for flag in ("service", "attribution"):
        v = kw[flag]
        if v and flag == "service" and not _is_url(v):
            raise UsageError(f"--service {v!r}: not an http(s) URL")


def _check_program(exe: str) -> None:
    """The command must exist and be executable: a typo is bad input, not a failed cycle to restart."""
    if os.sep not in exe:
        if shutil.which(exe) is None:
            raise UsageError(f"command not found: {exe}", hint=f"install {exe} or put it on PATH")
        return
    p = Path(exe)
    if not p.exists():
        raise UsageError(f"command not found: {exe}", hint="check the path")
    if p.is_dir():
        raise UsageError(f"command {exe}: is a directory, not a program")
    if not os.access(p, os.X_OK):
        raise UsageError(f"command {exe}: not executable", hint=f"chmod +x {exe}")


def _check_log_dir(log_dir: Path) -> None:
    for p in (log_dir, *log_dir.parents):  # the nearest existing one must be a folder
        if p.exists():
            if not p.is_dir():
                raise UsageError(f"--log-dir {log_dir}: {p} exists and is not a directory")
            return


def _is_url(v: str | None) -> bool:
    return bool(v) and re.match(r"^https?://[^\s/]+", str(v)) is not None


@click.command(context_settings={"help_option_names": ["-h", "--help"], "allow_interspersed_args": False})
@click.option("--max-restarts", type=int, default=3, show_default=True, help="Restarts allowed in all.")
@click.option(
    "--attribution",
    metavar="FILE|URL",
    help="A file with an attribution: block (local analysis) or a sleuth serve URL.",
)
@click.option(
    "--decision-timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to wait for a decision; none in time means RESTART.",
)
@click.option(
    "--restart-delay",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds spent preparing a restart (overlaps the analysis).",
)
@kill_grace_option(
    "Seconds the workload has to end when it is stopped (a signal to supervise, what a cycle leaves "
    "running, the job moving on): after a forwarded signal, then again between SIGTERM and SIGKILL."
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where cycle logs and cycles.jsonl go (default ./sleuth-supervise/<job-id or 'job'>).",
)
@click.option(
    "--nodes", type=int, default=1, show_default=True, help="Nodes of the job (each runs a supervisor)."
)
@click.option("--node-rank", type=int, default=0, show_default=True, help="This node's rank.")
@click.option("--service", metavar="URL", help="The attribution service the nodes share.")
@click.option("--job-id", default=None, help="The job's id on the service (same on every node).")
@click.option(
    "--leader-rank",
    type=int,
    default=0,
    show_default=True,
    help="The node rank that leads (reads decisions, records outcomes); give it to every node.",
)
@click.option("--leader", is_flag=True, help="Check that this node is the leader (--leader-rank).")
@attribution_options(mode_default_help="shadow, until the catalog's precision is measured")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def command(**kw: Any) -> int:
    """Run CMD, attribute each failure, restart or stop; exit with CMD's final status."""
    _check(kw)
    from sleuth.attribution.analyze import Attributor
    from sleuth.attribution.config import load_settings
    from sleuth.attribution.supervise import SuperviseConfig, Supervisor

    service = kw["service"] or (kw["attribution"] if _is_url(kw["attribution"]) else None)
    if kw["attribution"] and not service:
        path = Path(kw["attribution"])
        if kw.get("config"):
            raise UsageError("give --attribution FILE or --config FILE, not both")
        kw["config"] = path
        load_settings(path)  # a bad file fails here, before anything runs
    settings = settings_from_flags(kw)
    attributor = None if service else Attributor(settings)
    log_dir = kw["log_dir"] or Path("sleuth-supervise") / (kw["job_id"] or "job")
    _check_log_dir(log_dir)
    config = SuperviseConfig(
        argv=tuple(kw["cmd"]),
        env=dict(os.environ),
        log_dir=log_dir,
        max_restarts=kw["max_restarts"],
        decision_timeout=kw["decision_timeout"],
        restart_delay=kw["restart_delay"],
        kill_grace_s=kw["kill_grace"],
        mode=settings.mode,
        progress_regex=settings.progress_regex,
        max_no_progress_cycles=settings.policy.max_no_progress_cycles,
        attributor=attributor,
        service=service,
        job_id=kw["job_id"] or "job",
        nodes=kw["nodes"],
        node_rank=kw["node_rank"],
        leader=kw["node_rank"] == kw["leader_rank"],
    )

    def show(out: Any) -> None:
        code = f"exit {out.rc}" if out.rc is not None else f"signal {out.signal}"
        click.echo(
            f"sleuth supervise: cycle {out.cycle} {code} -> {out.outcome.upper()} "
            f"({out.decided_by or '-'}): {out.reason}",
            err=True,
        )

    def note(text: str) -> None:
        click.echo(f"sleuth supervise: {text}", err=True)

    status = Supervisor(config).run(on_cycle=show, on_note=note)
    click.echo(f"sleuth supervise: done, cycles in {log_dir / 'cycles.jsonl'}", err=True)
    return status
