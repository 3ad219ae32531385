"""Parsing the flags of ``sleuth run`` into its :class:`sleuth.batch.RunConfig`.

Every check comes before anything is written (no run dir, no venv): a ``UsageError`` that names the
flag.  The shared workload and oracle flags are parsed by ``sleuth.cli._options``; the CLI module
only wires them to click, starts the run and resumes one.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import click

from sleuth.cli._options import (
    MAX_TIMEOUT_S,
    check_cwd,
    oracle_from_flags,
    parse_backend,
    parse_env,
    parse_gpus,
    parse_metrics,
    parse_timeout,
)
from sleuth.errors import UsageError
from sleuth.model import MAX_KILL_GRACE_S

__all__ = ["EnvironmentType", "check_oracle", "run_config"]


class EnvironmentType(click.ParamType):  # type: ignore[type-arg]
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


def check_oracle(ref: str, also: tuple[str, ...] = ()) -> None:
    """A bad ``--oracle`` reference fails now, before any trial runs (and before a run dir exists).
    The module it imports stays imported: the run's oracle is built from it."""
    from sleuth.oracle import load_callable

    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # checking a flag leaves no __pycache__ behind
    try:
        load_callable(ref, also=also)
    finally:
        sys.dont_write_bytecode = dont_write


def run_config(kw: dict[str, Any]) -> Any:
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
        check_oracle(oracle_ref)
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
