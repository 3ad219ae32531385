"""Flags shared by the verbs that run workloads (run, bisect, matrix, reduce; supervise's
``--kill-grace``), declared once.

Each ``parse_*`` turns raw flag values into core types and raises ``UsageError`` naming the
flag, the bad value and how to fix it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sleuth.errors import UsageError
from sleuth.model import DEFAULT_KILL_GRACE_S, MAX_KILL_GRACE_S, MAX_TIMEOUT_S, MetricSpec, Stream

if TYPE_CHECKING:  # imported where used: a verb's --help and usage errors need no oracle
    from sleuth.backends.choice import BackendChoice
    from sleuth.oracle import OracleConfig, Threshold

__all__ = [
    "MAX_TIMEOUT_S",
    "backend_options",
    "check_cwd",
    "check_jobs",
    "check_kill_grace",
    "kill_grace_option",
    "oracle_from_flags",
    "oracle_options",
    "parse_backend",
    "parse_env",
    "parse_gpus",
    "parse_metrics",
    "parse_oracle",
    "parse_timeout",
    "workload_options",
]

F = TypeVar("F", bound=Callable[..., Any])


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for d in reversed(decorators):
            func = d(func)
        return func

    return apply


def oracle_options(func: F) -> F:
    """``--skip-exit --fail-regex --stream --metric --metric-series --fail-above --fail-below --oracle``."""
    return _stack(
        click.option(
            "--skip-exit",
            "skip_exit",
            multiple=True,
            type=int,
            metavar="CODE",
            help="An exit code meaning 'untestable' (SKIP), e.g. 125. Repeatable.",
        ),
        click.option(
            "--fail-regex", metavar="RE", help="FAIL when this regex matches the output, even on exit 0."
        ),
        click.option(
            "--stream",
            type=click.Choice(["stdout", "stderr", "both"]),
            default="both",
            show_default=True,
            help="Which output --fail-regex reads.",
        ),
        click.option(
            "--metric",
            "metric",
            multiple=True,
            metavar="NAME=REGEX",
            help="Extract a number (first group of the last match). Repeatable.",
        ),
        click.option(
            "--metric-series",
            "metric_series",
            multiple=True,
            metavar="NAME=REGEX",
            help="Extract every match as a series. Repeatable.",
        ),
        click.option("--fail-above", multiple=True, metavar="NAME=X", help="FAIL when metric NAME > X."),
        click.option("--fail-below", multiple=True, metavar="NAME=X", help="FAIL when metric NAME < X."),
        click.option(
            "--oracle",
            "oracle_ref",
            metavar="MODULE:FUNC",
            help="A Python callable judging the TrialResult (returns Outcome, bool or None).",
        ),
    )(func)


def workload_options(func: F) -> F:
    """``--env --cwd --timeout --kill-grace``."""
    return _stack(
        click.option(
            "--env", "env", multiple=True, metavar="K=V", help="Set a variable for the workload. Repeatable."
        ),
        click.option("--cwd", type=click.Path(file_okay=False), help="Working directory of the workload."),
        click.option(
            "--timeout",
            "timeout",
            type=float,
            metavar="S",
            help="Stop a trial after S seconds (whole process tree); counts as FAIL.",
        ),
        kill_grace_option("Seconds between SIGTERM and SIGKILL when a trial is stopped."),
    )(func)


def kill_grace_option(help_text: str, *, default: float | None = DEFAULT_KILL_GRACE_S) -> Callable[[F], F]:
    """``--kill-grace S`` (default 5 s); ``help_text`` says what is stopped.  ``default=None``: a
    verb whose file (recipe, spec) may set the grace tells "not given" apart (its help says the default)."""
    return click.option(
        "--kill-grace",
        type=float,
        default=default,
        show_default=default is not None,
        metavar="S",
        help=help_text,
    )


def backend_options(func: F) -> F:
    """``--backend --backend-opt`` (see :mod:`sleuth.backends.choice`)."""
    return _stack(
        click.option(
            "--backend",
            metavar="NAME",
            help="What dispatches the trials: local (this machine), slurm, ray, or a plugin's "
            "(entry point sleuth.backends).  [default: local]",
        ),
        click.option(
            "--backend-opt",
            "backend_opt",
            multiple=True,
            metavar="KEY=VALUE",
            help="An option of the backend, e.g. partition=debug or gpus=1. Repeatable.",
        ),
    )(func)


def parse_backend(name: str | None, opts: Iterable[str]) -> BackendChoice:
    """``--backend`` and its ``--backend-opt KEY=VALUE`` pairs (each key once)."""
    from sleuth.backends.choice import LOCAL, BackendChoice

    pairs: list[tuple[str, str]] = []
    for v in opts:
        key, value = _split("--backend-opt", v, "KEY=VALUE, e.g. --backend-opt partition=debug")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            raise UsageError(
                f"--backend-opt {_shown(v)!r}: {key!r} is not an option name (letters, digits, '_')"
            )
        if any(k == key for k, _ in pairs):
            raise UsageError(f"--backend-opt {key}: given twice", hint="give each option once")
        pairs.append((key, value))
    if name is not None and not name.strip():
        raise UsageError("--backend '': empty name", hint="e.g. --backend local")
    return BackendChoice(name or LOCAL, tuple(pairs))


def _shown(value: str) -> str:
    """A malformed ``K=V`` as its error shows it: a secret name's value hidden though the ``=`` is
    missing (``AWS_SECRET_ACCESS_KEY KEY``, ``HF_TOKEN:hf_...``), a token-like value hidden whole."""
    from sleuth.secrets import REDACTED, is_secret

    m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)([\s:]+)(.+)", value, re.DOTALL)
    if m and is_secret(m[1], m[3]):
        return f"{m[1]}{m[2]}{REDACTED}"
    return REDACTED if is_secret("", value) else value


def _split(flag: str, value: str, what: str) -> tuple[str, str]:
    key, sep, rest = value.partition("=")
    if not sep or not key:
        raise UsageError(f"{flag} {_shown(value)!r}: expected {what}")
    return key, rest


def parse_env(values: Iterable[str], flag: str = "--env") -> dict[str, str]:
    """``K=V`` pairs; K must be a valid variable name."""
    out: dict[str, str] = {}
    for v in values:
        key, val = _split(flag, v, "K=V, e.g. --env NCCL_DEBUG=INFO")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UsageError(f"{flag} {v!r}: {key!r} is not a valid variable name (letters, digits, '_')")
        out[key] = val
    return out


def compile_regex(flag: str, pattern: str, given: str | None = None) -> re.Pattern[str]:
    """Compile with MULTILINE (``^``/``$`` match at lines) or raise a UsageError naming the flag and
    its value as ``given`` (default: the pattern; ``NAME=REGEX`` for a metric)."""
    try:
        return re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        shown = given if given is not None else repr(pattern)
        raise UsageError(f"{flag} {shown}: invalid regex: {exc}") from exc


def parse_metrics(last: Iterable[str], series: Iterable[str]) -> tuple[MetricSpec, ...]:
    """``NAME=REGEX`` for --metric (last match) and --metric-series (every match); the value is the
    regex's one capturing group, else the whole match."""
    out: list[MetricSpec] = []
    seen: set[str] = set()
    for flag, values, is_series in (("--metric", last, False), ("--metric-series", series, True)):
        for v in values:
            name, pattern = _split(flag, v, "NAME=REGEX, e.g. --metric 'loss=loss=([0-9.]+)'")
            if name in seen:
                raise UsageError(f"{flag} {v!r}: metric {name!r} defined twice")
            seen.add(name)
            rx = compile_regex(flag, pattern, repr(v))
            if rx.groups > 1:  # the value is the first group's: with (a)?(\d+) that is 'a' or nothing
                raise UsageError(
                    f"{flag} {v!r}: {rx.groups} capturing groups, the metric takes one (the number)",
                    hint="make the others non-capturing: (?:...)",
                )
            out.append(MetricSpec(name=name, pattern=rx, series=is_series, stream=Stream.BOTH))
    return tuple(out)


def _thresholds(values: Sequence[str], flag: str, above: bool) -> list[Threshold]:
    from sleuth.oracle import Threshold

    out = []
    for v in values:
        name, num = _split(flag, v, "NAME=NUMBER, e.g. --fail-above loss=2.5")
        try:
            limit = float(num)
        except ValueError:
            raise UsageError(f"{flag} {v!r}: {num!r} is not a number") from None
        if math.isnan(limit):
            raise UsageError(f"{flag} {v!r}: the limit must be a number, not NaN")
        out.append(Threshold(name=name, limit=limit, above=above))
    return out


def parse_oracle(
    *,
    skip_exit: Sequence[int],
    fail_regex: str | None,
    stream: str,
    fail_above: Sequence[str],
    fail_below: Sequence[str],
    oracle_ref: str | None,
    metrics: Sequence[MetricSpec] = (),
    default_skip: Sequence[int] = (),
) -> OracleConfig:
    """The oracle flags as an ``OracleConfig`` (the callable is imported later by ``build_oracle``)."""
    from sleuth.oracle import OracleConfig

    for code in skip_exit:
        if not 0 < code < 256:
            raise UsageError(f"--skip-exit {code}: an exit code lies in 1..255")
    thresholds = _thresholds(fail_above, "--fail-above", True) + _thresholds(
        fail_below, "--fail-below", False
    )
    return OracleConfig(
        skip_exit=tuple(skip_exit) or tuple(default_skip),
        fail_regex=compile_regex("--fail-regex", fail_regex) if fail_regex is not None else None,
        stream=Stream(stream),
        thresholds=tuple(thresholds),
        callable_ref=oracle_ref,
    )


def parse_timeout(timeout: float | None, kill_grace: float) -> tuple[float | None, float]:
    """Validate ``--timeout`` (> 0, at most :data:`MAX_TIMEOUT_S`) and ``--kill-grace``
    (:func:`check_kill_grace`)."""
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise UsageError(f"--timeout {timeout:g}: must be a positive number of seconds")
    if timeout is not None and timeout > MAX_TIMEOUT_S:
        raise UsageError(f"--timeout {timeout:g}: at most {MAX_TIMEOUT_S:g} seconds")
    return timeout, check_kill_grace(kill_grace)


def check_kill_grace(kill_grace: float) -> float:
    """Validate ``--kill-grace``: zero or a positive number of seconds, at most :data:`MAX_KILL_GRACE_S`."""
    if _check_grace_sign(kill_grace) > MAX_KILL_GRACE_S:
        raise UsageError(f"--kill-grace {kill_grace:g}: at most {MAX_KILL_GRACE_S:g} seconds")
    return kill_grace


def _check_grace_sign(kill_grace: float) -> float:
    if not (kill_grace >= 0 and math.isfinite(kill_grace)):
        raise UsageError(f"--kill-grace {kill_grace:g}: must be zero or a positive number of seconds")
    return kill_grace


def parse_gpus(value: str | None) -> tuple[str, ...]:
    """``0,1,3`` -> ("0", "1", "3"); device ids are non-negative integers or GPU UUIDs."""
    if value is None:
        return ()
    ids = tuple(p.strip() for p in value.split(","))
    for i in ids:
        if not (i.isdigit() or re.fullmatch(r"(GPU|MIG)-[0-9A-Za-z-]+", i)):
            raise UsageError(
                f"--gpus {value!r}: {i!r} is not a device id",
                hint="give a comma-separated list like --gpus 0,1 (or GPU-UUIDs)",
            )
    if len(set(ids)) != len(ids):
        raise UsageError(f"--gpus {value!r}: a device is listed twice")
    return ids


def check_jobs(jobs: int, gpus: str | None, backend: BackendChoice | None = None) -> tuple[str, ...]:
    """``--jobs`` and ``--gpus IDS`` against the backend (default local) that will run the trials,
    before a run dir exists or is reopened; the device ids."""
    from sleuth.backends.choice import BackendChoice, check_backend

    ids = parse_gpus(gpus)
    check_backend(backend if backend is not None else BackendChoice(), jobs, ids)
    return ids


def oracle_from_flags(
    kw: Mapping[str, Any], *, oracle_ref: str | None = None, default_skip: Sequence[int] = ()
) -> OracleConfig:
    """The :func:`oracle_options` flags of a verb, as click passed them, as an ``OracleConfig``."""
    return parse_oracle(
        skip_exit=kw["skip_exit"],
        fail_regex=kw["fail_regex"],
        stream=kw["stream"],
        fail_above=kw["fail_above"],
        fail_below=kw["fail_below"],
        oracle_ref=oracle_ref if oracle_ref is not None else kw["oracle_ref"],
        default_skip=default_skip,
    )


def check_cwd(cwd: str | None) -> str | None:
    """``--cwd`` as an absolute path (recorded so a resume elsewhere runs in the same place)."""
    if cwd is None:
        return None
    if not os.path.isdir(cwd):
        raise UsageError(f"--cwd {cwd}: no such directory")
    return os.path.abspath(cwd)
