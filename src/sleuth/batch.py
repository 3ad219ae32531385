"""``sleuth run``'s library half: run one workload k times, judge, summarize, resume.

The CLI parses flags into a :class:`RunConfig`; :func:`execute` runs the trials through the
:class:`~sleuth.engine.Engine` and returns a :class:`RunSummary`.  The config is journaled first
(``start`` event), so :func:`resume_config` can rebuild it and :func:`execute` skips trials whose
``trial`` event is already in the journal.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth import stats
from sleuth.backends.local import LocalBackend
from sleuth.engine import Engine
from sleuth.environments import Prepared
from sleuth.journal import RunDir
from sleuth.model import MetricSpec, Outcome, Stream, Trial, TrialSpec
from sleuth.oracle import OracleConfig, Threshold, build_oracle

__all__ = ["RunConfig", "RunSummary", "execute", "record_start", "resume_config", "summarize"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """Everything ``sleuth run`` was asked to do; JSON round-trips through the journal."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout_s: float | None = None
    kill_grace_s: float = 5.0
    trials: int = 1
    jobs: int = 1
    gpus: tuple[str, ...] = ()
    metrics: tuple[MetricSpec, ...] = ()
    oracle: OracleConfig = field(default_factory=OracleConfig)
    environment: Mapping[str, Any] = field(default_factory=lambda: {"kind": "host"})
    name: str = "run"

    def trial_ids(self) -> list[str]:
        """``0001``, ``0002``, ... (at least four digits)."""
        width = max(4, len(str(self.trials)))
        return [f"{i:0{width}d}" for i in range(1, self.trials + 1)]

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
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`."""
        o = d["oracle"]
        return cls(
            argv=tuple(d["argv"]),
            env=dict(d["env"]),
            cwd=d["cwd"],
            timeout_s=d["timeout_s"],
            kill_grace_s=d["kill_grace_s"],
            trials=d["trials"],
            jobs=d["jobs"],
            gpus=tuple(d["gpus"]),
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
            environment=dict(d["environment"]),
            name=d["name"],
        )

    def spec(self, label: str) -> TrialSpec:
        """The trial spec (host view; an environment wraps it)."""
        return TrialSpec(
            argv=self.argv,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            timeout_s=self.timeout_s,
            kill_grace_s=self.kill_grace_s,
            label=label,
            metrics=self.metrics,
        )


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Counts, rates with their interval, timing and metric statistics, signatures."""

    data: dict[str, Any]
    trials: tuple[dict[str, Any], ...]

    @property
    def exit_code(self) -> int:
        """0 all passed (skips allowed), 1 any FAIL, 4 only infrastructure errors, 130 interrupted."""
        d = self.data
        if d.get("interrupted"):
            return 130
        if d["fail"]:
            return 1
        if d["error"]:
            return 4
        return 0


def summarize(
    records: Iterable[Mapping[str, Any]], *, interrupted: bool = False, planned: int | None = None
) -> RunSummary:
    """Summary of trial records (``Trial.to_dict()`` form), ordered by id."""
    trials = tuple(dict(r) for r in sorted(records, key=lambda r: r["id"]))
    counts = Counter(r["outcome"] for r in trials)
    n_pass, n_fail = counts[Outcome.PASS.value], counts[Outcome.FAIL.value]
    judged = n_pass + n_fail
    lo, hi = stats.wilson(n_fail, judged)
    walls = [r["wall_s"] for r in trials if r["outcome"] != Outcome.ERROR.value]
    series: dict[str, list[float]] = {}
    for r in trials:
        for name, v in r["metrics"].items():
            series.setdefault(name, []).extend(float(x) for x in (v if isinstance(v, list) else [v]))
    metrics: dict[str, dict[str, Any]] = {}
    for name, values in sorted(series.items()):
        finite = [x for x in values if math.isfinite(x)]
        d = stats.describe(finite)
        m: dict[str, Any] = {"median": None, "p90": None, "min": None, "max": None, "n": 0}
        if d is not None:
            m = {"median": d.median, "p90": d.p90, "min": d.min, "max": d.max, "n": d.n}
        if len(finite) < len(values):  # NaN/inf values are counted, not averaged
            m["nonfinite"] = len(values) - len(finite)
        metrics[name] = m
    sigs = Counter(r["signature"] for r in trials if r["outcome"] == Outcome.FAIL.value and r["signature"])
    data: dict[str, Any] = {
        "trials": len(trials),
        "pass": n_pass,
        "fail": n_fail,
        "skip": counts[Outcome.SKIP.value],
        "error": counts[Outcome.ERROR.value],
        "failure_rate": (n_fail / judged) if judged else None,
        "failure_rate_ci": [lo, hi],
        "wall_s": {
            "median": stats.percentile(walls, 50) if walls else None,
            "p90": stats.percentile(walls, 90) if walls else None,
        },
        "metrics": metrics,
        "signatures": dict(sigs.most_common()),
    }
    if interrupted:
        data["interrupted"] = True
        data["planned"] = planned if planned is not None else len(trials)
    return RunSummary(data, trials)


def record_start(config: RunConfig, run_dir: RunDir) -> None:
    """Journal the ``start`` event; ``--env`` values that look secret go to a 0600 ``secrets.json``."""
    from sleuth.secrets import Secrets

    public = config.to_dict()
    secret = Secrets.of(config.env)
    if secret:
        public = secret.scrub(public)
        public["env"] = secret.public_env(config.env)
        public["redacted_env"] = secret.names
        secret.save(run_dir.path)
    run_dir.journal.append("start", config=public)


def _restore_secrets(run_dir: RunDir, config: dict[str, Any]) -> dict[str, Any]:
    from sleuth.secrets import Secrets

    secret = Secrets.load(run_dir.path, list(config.get("redacted_env") or []))
    return {**config, "env": secret.restore_env(config["env"])} if secret else config


def resume_config(run_dir: RunDir) -> tuple[RunConfig, list[dict[str, Any]]]:
    """The config a run started with, and the trial records it already finished."""
    from sleuth.errors import UsageError

    events = run_dir.events()
    start = next((e for e in events if e["event"] == "start"), None)
    if start is None or "config" not in start:
        raise UsageError(f"{run_dir.path}: no 'start' event in journal.jsonl; this is not a sleuth run dir")
    done = [e["trial"] for e in events if e["event"] == "trial"]
    return RunConfig.from_dict(_restore_secrets(run_dir, start["config"])), done


def execute(
    config: RunConfig,
    run_dir: RunDir,
    prepared: Prepared,
    *,
    done: Iterable[Mapping[str, Any]] = (),
    on_trial: Callable[[Trial], None] | None = None,
) -> RunSummary:
    """Run the trials not yet ``done``; KeyboardInterrupt stops the children and keeps the partial summary."""
    records: dict[str, dict[str, Any]] = {r["id"]: dict(r) for r in done}
    snaps: dict[str, dict[str, Any]] = {"host_env.json": {}}
    if config.environment.get("kind", "host") != "host":
        snaps["environment_env.json"] = {}
    snap_thread = threading.Thread(target=_snapshots_into, args=(prepared, snaps), daemon=True)
    snap_thread.start()
    oracle = build_oracle(config.oracle)
    engine = Engine(LocalBackend(config.jobs, config.gpus), oracle, run_dir)
    interrupted = False
    try:
        for tid in config.trial_ids():
            if tid not in records:
                engine.submit(prepared.wrap(config.spec(tid)), tid)
        for trial in engine.completed():
            records[trial.id] = trial.to_dict()
            if on_trial is not None:
                on_trial(trial)
    except KeyboardInterrupt:
        interrupted = True
        engine.cancel_all()
        run_dir.journal.append("interrupted", completed=len(records))
    finally:
        engine.close()
    snap_thread.join(timeout=30)
    for filename, snap in snaps.items():
        if snap:
            run_dir.write_json(filename, snap)
    summary = summarize(records.values(), interrupted=interrupted, planned=config.trials)
    run_dir.write_json(
        "summary.json",
        {"run_dir": str(run_dir.path), "summary": summary.data, "trials": list(summary.trials)},
    )
    run_dir.journal.append("end", summary=summary.data)
    return summary


def _snapshots_into(prepared: Prepared, out: dict[str, dict[str, Any]]) -> None:
    """Fill ``host_env.json`` (always) and ``environment_env.json`` (venv etc.); never raises."""
    from sleuth import snapshot

    for filename, take in (("host_env.json", snapshot.collect), ("environment_env.json", prepared.snapshot)):
        if filename not in out:
            continue
        try:
            out[filename].update(take())
        except Exception as exc:  # a snapshot must never cost the run
            out[filename]["error"] = f"{type(exc).__name__}: {exc}"


def default_name(argv: tuple[str, ...]) -> str:
    """A run name from the command: ``train`` for ``python train.py``, else the program's name."""
    words = [Path(a).name for a in argv[:3]]
    pick = next((w for w in words[1:] if w.endswith((".py", ".sh"))), words[0] if words else "run")
    stem = pick.rsplit(".", 1)[0] if pick.endswith((".py", ".sh")) else pick
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip(".-") or "run"
    return name[:64]
