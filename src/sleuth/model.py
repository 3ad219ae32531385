"""Domain types shared by every room: frozen, slotted dataclasses and Enums.

These are the words of DESIGN.md §1 in code: a ``TrialSpec`` says what to run, the runner turns
it into a ``TrialResult`` (a workload's failure is data), an oracle judges it into a ``Judgement``
and the engine pairs both into a ``Trial``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "DEFAULT_KILL_GRACE_S",
    "MAX_JOBS",
    "MAX_KILL_GRACE_S",
    "MAX_TIMEOUT_S",
    "MAX_TRIALS",
    "NAME_HINT",
    "NAME_MAX",
    "NAME_RE",
    "RECORDED",
    "RECORDED_MAX_TIMEOUT_S",
    "SERIES_KEEP",
    "MetricSpec",
    "MetricValue",
    "Outcome",
    "RunHook",
    "RunPlan",
    "SeriesSummary",
    "Stream",
    "Trial",
    "TrialResult",
    "TrialSpec",
    "check_name",
    "printable",
    "timeout_cap",
    "timeout_over_max",
]

#: names that reach file paths (cells, run names, candidates' directories) must match this
#: ``\Z``, not ``$``: ``$`` also matches before a final newline, and ``T\n`` named a directory
NAME_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
#: and be at most this long (a path component is limited to 255 bytes; ids and suffixes are added)
NAME_MAX = 100
#: how to fix a name that ``check_name`` refuses (the hint of every such error)
NAME_HINT = "use letters, digits, '_', '.', '-', not starting with '.' or '-'"
#: the most trials one run, cell or candidate may ask for (an absurd count is a usage error)
MAX_TRIALS = 1_000_000
#: trials at a time (each is a thread and a process; more is a typo, not a machine)
MAX_JOBS = 1024
#: seconds a stopped trial's process group has between SIGTERM and SIGKILL, unless told otherwise
DEFAULT_KILL_GRACE_S = 5.0
#: a kill grace beyond this is a typo (and overflows the clock's arithmetic)
MAX_KILL_GRACE_S = 3600.0
#: a trial's timeout beyond this (30 days) is a typo, for every verb (and overflows the clock's arithmetic)
MAX_TIMEOUT_S = 30 * 86400.0
#: a resume takes back the timeout its run recorded up to this (a year: matrix's cap before the 30-day
#: one), so a run an older sleuth started still resumes as it began; the 30 days apply to new input
RECORDED_MAX_TIMEOUT_S = 366 * 86400.0
#: the pydantic validation context of a run's own record read back on resume (a matrix's
#: ``recipe.resolved.yaml``, a reduction's spec): its timeout is capped by :data:`RECORDED_MAX_TIMEOUT_S`
RECORDED: Mapping[str, bool] = {"recorded": True}

#: a metric: the last match, or a series (every match; at most ``SERIES_KEEP`` + 5 values kept, see
#: :class:`SeriesSummary`)
MetricValue = float | tuple[float, ...]
#: how many values of a series a ``TrialResult`` (and ``result.json``, the journal) keeps; the full
#: series is in its own file in the trial dir.  The values kept are an even sample in order
#: (every k-th value) plus the first, the last, the smallest, the largest and the first non-finite
#: one, so ``min``/``max``/``[-1]`` of the kept tuple are those of the whole series and its median
#: is that of the sample.
SERIES_KEEP = 1000


def timeout_over_max(seconds: float, cap: float = MAX_TIMEOUT_S) -> str | None:
    """``'VALUE: at most MAX seconds'`` when ``seconds`` is above ``cap`` (:data:`MAX_TIMEOUT_S`, or
    :func:`timeout_cap`'s), else None: the one wording of that error, after the flag (``--timeout``)
    or recipe key that gave it."""
    return f"{seconds:g}: at most {cap:g} seconds" if seconds > cap else None


def timeout_cap(context: Any) -> float:
    """The largest timeout a model validated with pydantic's ``context`` takes: :data:`MAX_TIMEOUT_S`,
    or :data:`RECORDED_MAX_TIMEOUT_S` when it is a run's own record read back (:data:`RECORDED`)."""
    recorded = isinstance(context, Mapping) and context.get("recorded") is True
    return RECORDED_MAX_TIMEOUT_S if recorded else MAX_TIMEOUT_S


def check_name(name: str) -> bool:
    """True when ``name`` is safe as one path component (DESIGN §3), at most ``NAME_MAX`` long."""
    return len(name) <= NAME_MAX and NAME_RE.fullmatch(name) is not None and name not in {".", ".."}


def printable(text: str) -> str:
    """``text`` with each control character (an ANSI escape, a BEL) replaced by U+FFFD: data from
    elsewhere (a snapshot, a benchmark name) must not drive a terminal or break an XML report."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "\ufffd" for c in text)


class Outcome(Enum):
    """What an oracle says of one trial."""

    PASS = "pass"
    FAIL = "fail"
    #: untestable: the build failed, the workload exited 125
    SKIP = "skip"
    #: infrastructure: could not start, killed by the backend, environment broken
    ERROR = "error"


class Stream(Enum):
    """Which output stream a regex looks at."""

    STDOUT = "stdout"
    STDERR = "stderr"
    BOTH = "both"

    def names(self) -> tuple[str, ...]:
        """The stream names this selection covers, in reading order."""
        return ("stdout", "stderr") if self is Stream.BOTH else (self.value,)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricSpec:
    """Extract a number from a trial's output: the regex's first group (or whole match)."""

    name: str
    pattern: re.Pattern[str]
    #: True: every match as a series; False: the last match
    series: bool = False
    stream: Stream = Stream.BOTH


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesSummary:
    """A metric series in numbers that stay small whatever its length."""

    #: values in the whole series
    n: int
    #: values kept in ``TrialResult.metrics`` (``n`` when the whole series fits)
    kept: int
    first: float
    last: float
    #: over the finite values; None when there is none
    min: float | None
    max: float | None
    mean: float | None
    #: NaN and infinite values (counted, not averaged)
    nonfinite: int = 0
    #: the whole series, relative to the trial dir (one value a line, or ``metrics.json``)
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (non-finite numbers as strings, like every metric)."""
        return {
            "n": self.n,
            "kept": self.kept,
            "first": _json_number(self.first),
            "last": _json_number(self.last),
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "nonfinite": self.nonfinite,
            "file": self.file,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialSpec:
    """What to run for one trial.  ``argv`` is never passed through a shell."""

    argv: tuple[str, ...]
    #: the complete environment of the child (not a delta)
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout_s: float | None = None
    #: seconds between SIGTERM and SIGKILL when a trial is stopped
    kill_grace_s: float = DEFAULT_KILL_GRACE_S
    label: str = ""
    metrics: tuple[MetricSpec, ...] = ()
    #: finishes the spec for one run, where only the runner knows the trial dir and the device
    #: (a container's name, output mount and GPU flags); see :class:`RunHook`
    hook: RunHook | None = field(default=None, compare=False)

    def with_env(self, extra: Mapping[str, str]) -> TrialSpec:
        """A copy with ``extra`` laid over the environment."""
        return _replace(self, env={**self.env, **extra})

    def with_argv(self, argv: tuple[str, ...]) -> TrialSpec:
        """A copy running ``argv`` instead."""
        return _replace(self, argv=argv)

    def with_cwd(self, cwd: str | None) -> TrialSpec:
        """A copy running in ``cwd``."""
        return _replace(self, cwd=cwd)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunPlan:
    """One run of a hooked spec: what to spawn, and how to remove what may outlive the process."""

    spec: TrialSpec
    #: run at once when the trial is stopped (timeout, cancel, Ctrl-C) or its process dies of a
    #: signal, and by ``reap_orphans`` after a kill -9 of sleuth (recorded in the trial dir meanwhile)
    cleanup: tuple[str, ...] = ()
    #: variables the cleanup needs besides the caller's (where the container store is)
    cleanup_env: Mapping[str, str] = field(default_factory=dict)


class RunHook(Protocol):
    """What an environment that wraps a trial in a client (docker, podman) adds per run."""

    def bind(self, spec: TrialSpec, trial_dir: Path, device: str | None) -> RunPlan:
        """The spec to spawn for this trial dir and device, and its cleanup."""
        ...

    def own_error(self, rc: int | None, stderr_tail: str) -> str | None:
        """The client's own failure (not the workload's), as one line; None when it is the workload's."""
        ...


def _json_number(x: float) -> float | str:
    """``x``, or ``"nan"``/``"inf"``/``"-inf"`` for what JSON cannot hold (a NaN loss is evidence)."""
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _replace(spec: TrialSpec, **changes: Any) -> TrialSpec:
    from dataclasses import replace

    return replace(spec, **changes)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialResult:
    """What happened when one ``TrialSpec`` ran.  Paths point into the trial's directory."""

    spec: TrialSpec
    trial_dir: Path
    rc: int | None
    signal: int | None
    timed_out: bool
    started_at: float
    wall_s: float
    stdout_path: Path
    stderr_path: Path
    #: the last few KiB of each stream, for signatures and reports
    stdout_tail: str = ""
    stderr_tail: str = ""
    metrics: Mapping[str, MetricValue] = field(default_factory=dict)
    #: for each series in ``metrics``: its length and summary over all of it, where it is in full
    series: Mapping[str, SeriesSummary] = field(default_factory=dict)
    host: str = ""
    #: set when the trial could not run at all (command not found, environment broken)
    error: str | None = None
    #: the GPU (or other device) this trial was given, if any
    device: str | None = None

    @property
    def id(self) -> str:
        """The trial's id: the name of its directory."""
        return self.trial_dir.name


@dataclass(frozen=True, slots=True, kw_only=True)
class Trial:
    """A judged trial: the result plus the oracle's outcome and the failure signature."""

    result: TrialResult
    outcome: Outcome
    signature: str | None = None
    reason: str = ""

    @property
    def id(self) -> str:
        """The trial's id."""
        return self.result.id

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used in ``result.json``, journals and ``--json`` output.

        Metric values that JSON cannot hold (NaN, infinities) are the strings ``"nan"``, ``"inf"``,
        ``"-inf"``, so every document sleuth writes stays strict JSON.
        """
        r = self.result
        return {
            "id": r.id,
            "label": r.spec.label,
            "outcome": self.outcome.value,
            "rc": r.rc,
            "signal": r.signal,
            "timed_out": r.timed_out,
            "started_at": r.started_at,
            "wall_s": round(r.wall_s, 6),
            "metrics": {
                k: [_json_number(x) for x in v] if isinstance(v, tuple) else _json_number(v)
                for k, v in r.metrics.items()
            },
            "series": {k: v.to_dict() for k, v in r.series.items()},
            "signature": self.signature,
            "reason": self.reason,
            "error": r.error,
            "device": r.device,
            "host": r.host,
            "argv": list(r.spec.argv),
            "cwd": r.spec.cwd,
            "stdout": r.stdout_path.name,
            "stderr": r.stderr_path.name,
        }
