"""``sleuth run``'s configuration: what was asked, its limits, and its journaled JSON form."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sleuth.backends.choice import BackendChoice
from sleuth.errors import UsageError
from sleuth.model import MAX_JOBS, MAX_TRIALS, MetricSpec, Stream, TrialSpec
from sleuth.oracle import OracleConfig, Threshold

__all__ = ["DEFAULT_MAX_TRIALS", "MAX_JOBS", "RunConfig", "check_counts"]

#: --until-fail without --max-trials
DEFAULT_MAX_TRIALS = 100


def check_counts(*, trials: int, warmup: int = 0, jobs: int = 1, trials_flag: str = "--trials") -> None:
    """Trial, warm-up and job counts within their limits, or a ``UsageError`` naming the flag."""
    if not 1 <= trials <= MAX_TRIALS:
        raise UsageError(f"{trials_flag} {trials}: must be between 1 and {MAX_TRIALS:,}".replace(",", "_"))
    if not 0 <= warmup <= MAX_TRIALS:
        raise UsageError(f"--warmup {warmup}: must be between 0 and {MAX_TRIALS:,}".replace(",", "_"))
    if not 1 <= jobs <= MAX_JOBS:
        raise UsageError(f"--jobs {jobs}: must be between 1 and {MAX_JOBS}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """Everything ``sleuth run`` was asked to do; JSON round-trips through the journal."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout_s: float | None = None
    kill_grace_s: float = 5.0
    #: counted trials (with ``until_fail``: the most to run)
    trials: int = 1
    jobs: int = 1
    gpus: tuple[str, ...] = ()
    metrics: tuple[MetricSpec, ...] = ()
    oracle: OracleConfig = field(default_factory=OracleConfig)
    environment: Mapping[str, Any] = field(default_factory=lambda: {"kind": "host"})
    name: str = "run"
    #: trials run first, in ``warmup/``, and left out of every statistic
    warmup: int = 0
    #: stop at the first FAIL
    until_fail: bool = False
    #: what dispatches the trials (``--backend``, ``--backend-opt``)
    backend: BackendChoice = field(default_factory=BackendChoice)

    @property
    def width(self) -> int:
        """Digits of a trial id (at least four)."""
        return max(4, len(str(self.trials)), len(str(self.warmup)))

    def trial_id(self, n: int, subdir: str = "trials") -> str:
        """``0001``, ``0002``, ... for trial number ``n``; ``w0001`` ... for warm-up trials (so
        ``$SLEUTH_TRIAL_ID`` never repeats within a run)."""
        return f"{'w' if subdir == 'warmup' else ''}{n:0{self.width}d}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for the journal and resume)."""
        o = self.oracle
        return {
            "argv": list(self.argv),
            "env": dict(self.env),
            "cwd": self.cwd,
            "timeout_s": self.timeout_s,
            "kill_grace_s": self.kill_grace_s,
            "trials": self.trials,
            "warmup": self.warmup,
            "until_fail": self.until_fail,
            "jobs": self.jobs,
            "gpus": list(self.gpus),
            "metrics": [
                {"name": m.name, "regex": m.pattern.pattern, "series": m.series, "stream": m.stream.value}
                for m in self.metrics
            ],
            "oracle": {
                "skip_exit": list(o.skip_exit),
                "fail_regex": o.fail_regex.pattern if o.fail_regex else None,
                "stream": o.stream.value,
                "thresholds": [{"name": t.name, "limit": t.limit, "above": t.above} for t in o.thresholds],
                "callable": o.callable_ref,
            },
            "environment": dict(self.environment),
            "name": self.name,
            "backend": self.backend.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; a missing or mistyped key raises KeyError/TypeError/ValueError."""
        o = d["oracle"]
        config = cls(
            argv=tuple(_strs(d["argv"], "argv")),
            env={str(k): str(v) for k, v in dict(d["env"]).items()},
            cwd=d["cwd"],
            timeout_s=d["timeout_s"],
            kill_grace_s=float(d["kill_grace_s"]),
            trials=_int(d["trials"]),
            warmup=_int(d.get("warmup", 0)),
            until_fail=bool(d.get("until_fail", False)),
            jobs=_int(d["jobs"]),
            gpus=tuple(_strs(d["gpus"], "gpus")),
            metrics=tuple(
                MetricSpec(
                    name=m["name"],
                    pattern=re.compile(m["regex"], re.M),
                    series=m["series"],
                    stream=Stream(m["stream"]),
                )
                for m in d["metrics"]
            ),
            oracle=OracleConfig(
                skip_exit=tuple(o["skip_exit"]),
                fail_regex=re.compile(o["fail_regex"], re.M) if o["fail_regex"] else None,
                stream=Stream(o["stream"]),
                thresholds=tuple(Threshold(**t) for t in o["thresholds"]),
                callable_ref=o["callable"],
            ),
            environment=_environment(d["environment"]),
            name=str(d["name"]),
            backend=BackendChoice.from_dict(d.get("backend")),  # absent: a run dir from before backends
        )
        if not config.argv:
            raise ValueError("'argv' is empty")
        return config

    def trial_env(self) -> dict[str, str]:
        """The trials' environment: sleuth's own with ``env`` laid over it."""
        return {**os.environ, **self.env}

    def spec(self, label: str, *, env: dict[str, str] | None = None) -> TrialSpec:
        """The trial spec (host view; an environment wraps it).

        ``env``: :meth:`trial_env`, computed once for many trials (the runner copies it per trial).
        """
        return TrialSpec(
            argv=self.argv,
            env=env if env is not None else self.trial_env(),
            cwd=self.cwd,
            timeout_s=self.timeout_s,
            kill_grace_s=self.kill_grace_s,
            label=label,
            metrics=self.metrics,
        )


def _int(x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError(f"{x!r} is not a whole number")
    return x


def _environment(x: Any) -> dict[str, Any]:
    """A journaled ``environment`` with the keys its kind needs (``sleuth run``'s ``_prepare``)."""
    if not isinstance(x, dict):
        raise TypeError("'environment' is not an object")
    kind = x.get("kind")
    if kind == "venv":
        if not _strs(x.get("pins"), "environment.pins") or not isinstance(x.get("python"), str | None):
            raise ValueError("'environment' of kind venv needs pins (and python: a string or null)")
    elif kind == "container":
        if not all(isinstance(x.get(k), str) and x[k] for k in ("runtime", "image")):
            raise ValueError("'environment' of kind container needs a runtime and an image")
        _strs(x.get("forward", []), "environment.forward")
    elif kind != "host":
        raise ValueError(f"'environment.kind' {kind!r} is not host, venv or container")
    return dict(x)


def _strs(xs: Any, key: str) -> list[str]:
    if not isinstance(xs, list) or not all(isinstance(x, str) for x in xs):
        raise TypeError(f"'{key}' is not a list of strings")
    return xs
