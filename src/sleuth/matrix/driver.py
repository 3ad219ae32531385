"""Run a matrix: claim the run dir, prepare environments, run interleaved trials, write the report.

Order of work: everything that can be wrong with the input is checked by :func:`load` before the
run dir exists (so bad input leaves no files).  Then each distinct environment is prepared once;
one that fails turns its cells into ``error`` rows and the rest of the matrix runs.  Trials go to
the engine in the seeded interleaved order, at most ``jobs`` at a time, so the order on the
machine is the planned order and ``--until-decided`` can drop a decided cell's queued trials.
Every finished trial is journaled by the engine with its cell and index; :func:`resume` replays
those and runs only what is missing.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.journal import RunDir
from sleuth.matrix import envs
from sleuth.matrix.aggregate import STEP_METRIC, TrialRecord, aggregate, dominant_signature
from sleuth.matrix.classify import GroupSequential
from sleuth.matrix.output import resolved_recipe_yaml, to_json, to_markdown
from sleuth.matrix.plan import CellPlan, MatrixPlan, resolve, trial_order
from sleuth.matrix.recipe import Recipe, load_recipe
from sleuth.matrix.result import MatrixResult, analyze, step_source
from sleuth.model import MetricSpec, Stream, TrialSpec
from sleuth.oracle import OracleConfig
from sleuth.registry import Registry, load_registry
from sleuth.runner import reap_orphans

__all__ = ["NO_TICKET", "Loaded", "OnTrial", "load", "load_file", "resume", "run", "run_parent"]

NO_TICKET = "_no_ticket_"
RESOLVED = "recipe.resolved.yaml"
#: called after each finished trial: (record, trials finished, trials planned)
OnTrial = Callable[[TrialRecord, int, int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """A validated plan with the registry it was resolved against."""

    plan: MatrixPlan
    registry: Registry
    sidecars: tuple[Path, ...] = ()
    #: sidecar definitions the plan uses, written into the resolved recipe
    inline: Mapping[str, Any] = field(default_factory=dict)


def load(
    recipe: Recipe,
    source: str,
    *,
    base_dir: Path,
    mitigation_files: Sequence[Path] = (),
    entry_points: bool = True,
) -> Loaded:
    """Resolve ``recipe`` against built-ins, entry points and sidecar files; every check runs here."""
    registry = load_registry(mitigation_files, entry_points=entry_points)
    plan = resolve(recipe, registry, source, base_dir=base_dir, environ=os.environ)
    oracle_config(plan)  # a bad oracle callable fails now
    inline: dict[str, Any] = {"mitigations": {}, "environments": {}}
    for name, m in plan.mitigations.items():
        if m.source.startswith("file "):
            inline["mitigations"][name] = {
                "env": dict(m.env),
                "append": dict(m.append),
                "description": m.description,
                "docs": m.docs,
            }
    for c in plan.cells:
        d = registry.environments.get(c.environment.registered or "")
        if d is not None and d.spec is not None and d.source.startswith("file "):
            inline["environments"][d.name] = d.spec.plain()
    return Loaded(plan=plan, registry=registry, sidecars=tuple(mitigation_files), inline=inline)


def load_file(path: Path, mitigation_files: Sequence[Path] = ()) -> Loaded:
    """:func:`load` for a recipe file (the workload's cwd defaults to the file's directory)."""
    return load(
        load_recipe(path), str(path), base_dir=path.resolve().parent, mitigation_files=mitigation_files
    )


def oracle_config(plan: MatrixPlan) -> OracleConfig:
    """The core oracle config of the recipe's ``workload.oracle``."""
    from sleuth.oracle import load_callable

    o = plan.recipe.workload.oracle
    if o.callable is not None:
        load_callable(o.callable, source=f"{plan.source}: workload.oracle.callable")
    return OracleConfig(
        skip_exit=tuple(o.skip_exit),
        fail_regex=re.compile(o.pattern, re.MULTILINE) if o.pattern else None,
        stream=Stream(o.stream),
        nonzero_fails=o.nonzero_fails,
        callable_ref=o.callable,
    )


def _metrics(plan: MatrixPlan) -> tuple[MetricSpec, ...]:
    st = plan.recipe.workload.step_time
    if st is None or st.regex is None:
        return ()
    return (
        MetricSpec(
            name=STEP_METRIC,
            pattern=re.compile(st.regex, re.MULTILINE),
            series=True,
            stream=Stream(st.stream),
        ),
    )


def run_parent(plan: MatrixPlan, output: Path) -> Path:
    """``<output>/<ticket or _no_ticket_>/<workload>``: where the run dir is claimed."""
    return output / (plan.recipe.ticket or NO_TICKET) / plan.workload


def run(
    loaded: Loaded,
    *,
    output: Path,
    jobs: int = 1,
    gpus: Sequence[str] = (),
    on_trial: OnTrial | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> MatrixResult:
    """Run the matrix into a fresh run dir under ``output``."""
    plan = loaded.plan
    run_dir = RunDir.create(output, plan.recipe.ticket or NO_TICKET, plan.workload)
    run_dir.write_text(RESOLVED, resolved_recipe_yaml(plan, dict(loaded.inline)))
    for i, path in enumerate(loaded.sidecars):
        run_dir.write_text(f"sidecars/{i:02d}-{path.name}", path.read_text(encoding="utf-8"))
    run_dir.journal.append(
        "start",
        verb="matrix",
        baseline=plan.baseline,
        seed=plan.seed,
        jobs=jobs,
        gpus=list(gpus),
        cells=[c.name for c in plan.cells],
    )
    if on_start is not None:
        on_start(run_dir.path)
    return _execute(plan, loaded.registry, run_dir, jobs=jobs, gpus=gpus, on_trial=on_trial)


def resume(
    path: Path,
    *,
    jobs: int | None = None,
    gpus: Sequence[str] | None = None,
    on_trial: OnTrial | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> MatrixResult:
    """Finish the matrix in run dir ``path``: replay its journal, run the trials it lacks.

    ``jobs``/``gpus`` default to what the run started with.
    """
    from sleuth.errors import UsageError

    run_dir = RunDir.open(path)
    reaped = reap_orphans(run_dir.path)  # trials a killed sleuth left running would run twice
    if reaped:
        run_dir.journal.append("reaped", process_groups=reaped)
    if not (path / RESOLVED).is_file():
        raise UsageError(f"{path}: not a sleuth matrix run dir (no {RESOLVED})")
    recipe = load_recipe(path / RESOLVED)
    loaded = load(recipe, str(path / RESOLVED), base_dir=path)
    start = next((e for e in run_dir.events() if e["event"] == "start"), {})
    if gpus is None:
        gpus = tuple(start.get("gpus", ()))
    if jobs is None:
        jobs = min(int(start.get("jobs", 1)), len(gpus)) if gpus else int(start.get("jobs", 1))
    run_dir.journal.append("resume", jobs=jobs)
    if on_start is not None:
        on_start(run_dir.path)
    return _execute(loaded.plan, loaded.registry, run_dir, jobs=jobs, gpus=gpus, on_trial=on_trial)


def _replay(
    plan: MatrixPlan, run_dir: RunDir
) -> tuple[list[TrialRecord], dict[str, tuple[float, frozenset[int]]]]:
    source = step_source(plan)
    records: list[TrialRecord] = []
    stops: dict[str, tuple[float, frozenset[int]]] = {}
    seen: set[tuple[str, int]] = set()
    for e in run_dir.events():
        if e.get("event") == "trial" and "cell" in e and (e["cell"], e["index"]) not in seen:
            seen.add((e["cell"], e["index"]))
            records.append(TrialRecord.from_dict(e["cell"], int(e["index"]), e["trial"], source))
        elif e.get("event") == "cell_stopped":
            stops[e["cell"]] = (float(e["alpha"]), frozenset(e["indices"]))
    return records, stops


class _Loop:
    """The trial loop's state: what ran, what is queued, which cells stopped."""

    def __init__(self, plan: MatrixPlan, records: list[TrialRecord], stops: dict[str, Any]) -> None:
        self.plan = plan
        self.records = records
        self.stops = stops
        self.rule = GroupSequential(alpha=plan.recipe.statistics.alpha) if plan.recipe.until_decided else None
        self.regex = plan.recipe.workload.oracle.kind == "regex"

    def check_stop(self, cell: CellPlan) -> tuple[float, frozenset[int]] | None:
        """Apply the sequential rule to ``cell`` after one more of its trials finished."""
        if self.rule is None or cell.name == self.plan.baseline or cell.name in self.stops:
            return None
        mine = [r for r in self.records if r.cell == cell.name]
        base = [r for r in self.records if r.cell == self.plan.baseline]
        target = None if self.regex else dominant_signature(base)
        level = self.rule.stop(
            aggregate(cell.name, mine, target, self.regex),
            aggregate(self.plan.baseline, base, target, self.regex),
            cell.trials,
        )
        if level is None:
            return None
        return level, frozenset(r.index for r in mine)


def _execute(
    plan: MatrixPlan,
    registry: Registry,
    run_dir: RunDir,
    *,
    jobs: int,
    gpus: Sequence[str],
    on_trial: OnTrial | None,
) -> MatrixResult:
    from sleuth import snapshot
    from sleuth.backends.local import LocalBackend
    from sleuth.engine import Engine
    from sleuth.oracle import build_oracle

    backend = LocalBackend(jobs, gpus)  # a bad --jobs fails before anything runs
    host = snapshot.collect()
    if not (run_dir.path / "host_env.json").is_file():
        run_dir.write_json("host_env.json", host)
    ready: dict[str, envs.ReadyEnvironment] = {}
    for key, env in plan.environments.items():
        r = ready[key] = envs.prepare_environment(env, registry, cwd=plan.cwd)
        run_dir.journal.append("environment", key=key, kind=env.kind, error=r.error)
        if not (run_dir.path / "environments" / key / "env.json").is_file():
            run_dir.write_json(f"environments/{key}/env.json", envs.snapshot_of(r, host))
    env_errors = {k: r.error for k, r in ready.items() if r.error is not None}
    records, stops = _replay(plan, run_dir)
    loop = _Loop(plan, records, stops)
    done = {(r.cell, r.index) for r in records}
    order = [(c, r + 1) for c, r in trial_order(plan.cells, plan.seed)]
    queue = deque(
        (c, i) for c, i in order if (c, i) not in done and plan.cell(c).environment.key not in env_errors
    )
    total, source = len(order), step_source(plan)
    where: dict[Path, tuple[str, int]] = {}
    interrupted = False
    engine = Engine(backend, build_oracle(oracle_config(plan)), run_dir)
    try:
        with engine:

            def fill() -> None:
                while engine.pending < jobs and queue:
                    name, index = queue.popleft()
                    if name in loop.stops:
                        continue
                    cell = plan.cell(name)
                    trial_id, subdir = f"{index:04d}", f"cells/{name}/trials"
                    spec = _spec(
                        plan, cell, index, ready[cell.environment.key], run_dir.path / subdir / trial_id
                    )
                    where[run_dir.path / subdir / trial_id] = (name, index)
                    engine.submit(spec, trial_id, subdir=subdir, cell=name, index=index)

            fill()
            for trial in engine.completed():
                name, index = where[trial.result.trial_dir]
                record = TrialRecord.from_trial(name, index, trial, source)
                records.append(record)
                stop = loop.check_stop(plan.cell(name))
                if stop is not None:
                    loop.stops[name] = stop
                    run_dir.journal.append("cell_stopped", cell=name, alpha=stop[0], indices=sorted(stop[1]))
                if on_trial is not None:
                    on_trial(record, len(records), total)
                fill()
    except KeyboardInterrupt:
        interrupted = True
        engine.cancel_all()
        run_dir.journal.append("interrupted", completed=len(records))
    envs_json = {
        k: {
            "kind": r.plan.kind,
            "spec": dict(r.plan.spec),
            "error": r.error,
            "snapshot": f"environments/{k}/env.json",
        }
        for k, r in ready.items()
    }
    result = analyze(
        plan,
        records,
        env_errors=env_errors,
        stops=loop.stops,
        interrupted=interrupted,
        run_dir=str(run_dir.path),
        environments=envs_json,
    )
    run_dir.write_json("matrix.json", to_json(result))
    run_dir.write_text("matrix.md", to_markdown(result))
    run_dir.journal.append("end", exit_code=result.exit_code, interrupted=interrupted)
    run_dir.close()
    return result


def _spec(
    plan: MatrixPlan, cell: CellPlan, index: int, ready: envs.ReadyEnvironment, trial_dir: Path
) -> TrialSpec:
    workload = plan.recipe.workload
    cell_env = {**workload.env, **cell.env, "SLEUTH_CELL": cell.name}
    spec = TrialSpec(
        argv=plan.argv,
        env={**os.environ, **cell_env},
        cwd=plan.cwd,
        timeout_s=workload.timeout,
        label=f"{cell.name}#{index}",
        metrics=_metrics(plan),
    )
    return envs.wrap(ready, spec, trial_dir=trial_dir, cell_env=cell_env)
