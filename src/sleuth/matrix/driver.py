"""Run a matrix: claim the run dir, prepare environments, run interleaved trials, write the report.

Order of work: everything that can be wrong with the input is checked by :func:`load` before the
run dir exists (so bad input leaves no files).  Then each distinct environment is prepared once;
one that fails turns its cells into ``error`` rows and the rest of the matrix runs.  Trials go to
the engine in the seeded interleaved order, at most ``jobs`` at a time and drawn lazily (memory
does not grow with the planned trials), so the order on the machine is the planned order and
``--until-decided`` can drop a decided cell's queued trials.

The journal is the truth, once: every finished trial is journaled by the engine with its cell and
index; :func:`resume` replays those (keyed by (cell, index), never by order), never appends them
again, and runs only what is missing.  A matrix that ended is not run again: resuming it
reports what it has and writes nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sleuth.errors import UsageError
from sleuth.journal import RunDir, read_journal
from sleuth.matrix import envs
from sleuth.matrix.aggregate import STEP_METRIC, TrialRecord, aggregate, dominant_signature
from sleuth.matrix.classify import GroupSequential
from sleuth.matrix.output import resolved_recipe_data, resolved_recipe_yaml, to_json, to_markdown
from sleuth.matrix.plan import CellPlan, MatrixPlan, iter_trial_order, resolve
from sleuth.matrix.recipe import Recipe, load_recipe, parse_recipe
from sleuth.matrix.redact import restore, secret_paths, secrets_for_resume
from sleuth.matrix.result import MatrixResult, analyze, step_source
from sleuth.model import MetricSpec, Stream, TrialSpec
from sleuth.oracle import OracleConfig
from sleuth.registry import Registry, load_data_file, load_registry
from sleuth.runner import reap_orphans
from sleuth.secrets import Secrets

__all__ = [
    "NO_TICKET",
    "Loaded",
    "OnStart",
    "OnTrial",
    "Resumable",
    "load",
    "load_file",
    "open_resume",
    "resume",
    "run",
    "run_parent",
]

NO_TICKET = "_no_ticket_"
RESOLVED = "recipe.resolved.yaml"
#: called after each finished trial: (record, trials finished, trials planned now)
OnTrial = Callable[[TrialRecord, int, int], None]
#: called once the trials are about to run: (run dir, trials already finished, trials planned)
OnStart = Callable[[Path, int, int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """A validated plan with the registry it was resolved against."""

    plan: MatrixPlan
    registry: Registry
    sidecars: tuple[Path, ...] = ()
    #: sidecar definitions the plan uses, written into the resolved recipe
    inline: Mapping[str, Any] = field(default_factory=dict)
    #: key paths of the resolved recipe whose values are secret (``<redacted>`` in the file)
    secret_paths: tuple[str, ...] = ()


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
    paths = secret_paths(resolved_recipe_data(plan, inline))
    # by key path (to restore each field on resume) and by variable name (so a short value, hidden
    # only under its name, is hidden in every env mapping printed or written)
    by_name = Secrets.of(plan.recipe.workload.env, *(c.env for c in plan.cells))
    secrets = Secrets(paths).merged(by_name)
    return Loaded(
        plan=replace(plan, secrets=secrets),
        registry=registry,
        sidecars=tuple(mitigation_files),
        inline=inline,
        secret_paths=tuple(sorted(paths)),
    )


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
    on_start: OnStart | None = None,
) -> MatrixResult:
    """Run the matrix into a fresh run dir under ``output``."""
    from sleuth.backends.local import check_slots

    check_slots(jobs, gpus)  # a bad --jobs fails before the run dir exists
    plan = loaded.plan
    run_dir = RunDir.create(output, plan.recipe.ticket or NO_TICKET, plan.workload)
    plan.secrets.save(run_dir.path)
    run_dir.write_text(RESOLVED, resolved_recipe_yaml(plan, dict(loaded.inline)))
    for i, path in enumerate(loaded.sidecars):
        # the copy is for people (the resolved recipe inlines what it uses): secrets hidden
        text = plan.secrets.scrub(path.read_text(encoding="utf-8"))
        run_dir.write_text(f"sidecars/{i:02d}-{path.name[:100]}", text)
    run_dir.journal.append(
        "start",
        verb="matrix",
        baseline=plan.baseline,
        seed=plan.seed,
        jobs=jobs,
        gpus=list(gpus),
        cells=[c.name for c in plan.cells],
        added=list(plan.added),
        redacted=list(loaded.secret_paths),
    )
    return _execute(
        plan, loaded.registry, run_dir, jobs=jobs, gpus=gpus, on_trial=on_trial, on_start=on_start
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumable:
    """A matrix run dir checked and loaded for resume, nothing opened or written yet."""

    path: Path
    loaded: Loaded
    start: Mapping[str, Any]
    #: the matrix ended (not interrupted): resuming it runs nothing
    finished: bool


def _events(path: Path) -> list[dict[str, Any]]:
    try:
        return read_journal(path / "journal.jsonl")
    except UnicodeDecodeError:
        raise UsageError(f"{path / 'journal.jsonl'}: not UTF-8 text; this is not a sleuth journal") from None
    except OSError as exc:
        raise UsageError(f"{path / 'journal.jsonl'}: cannot read: {exc.strerror}") from exc


def open_resume(path: Path) -> Resumable:
    """Check that ``path`` is a matrix run dir and load its recipe; writes nothing (no ``.lock``)."""
    if not path.is_dir():
        raise UsageError(f"{path}: no such run dir")
    if not (path / "journal.jsonl").is_file():
        raise UsageError(
            f"{path}: not a sleuth run dir (no journal.jsonl)", hint="pass the run dir printed by the run"
        )
    events = _events(path)
    start = next((e for e in events if isinstance(e, dict) and e.get("event") == "start"), None)
    if start is None or start.get("verb") != "matrix" or not (path / RESOLVED).is_file():
        what = "a sleuth bisect run dir" if start and "source" in start else None
        what = what or ("a sleuth run dir" if start and "config" in start else "not a matrix run dir")
        raise UsageError(
            f"{path}: not a sleuth matrix run dir ({what})",
            hint="resume it with the verb that made it",
        )
    names = [str(n) for n in start.get("redacted") or []]
    data = load_data_file(path / RESOLVED)
    if names and isinstance(data, dict):
        data = restore(data, secrets_for_resume(path, names))
    loaded = load(parse_recipe(data, str(path / RESOLVED)), str(path / RESOLVED), base_dir=path)
    loaded = replace(loaded, plan=replace(loaded.plan, added=tuple(start.get("added") or ())))
    ends = [e for e in events if e.get("event") == "end"]
    finished = bool(ends) and not ends[-1].get("interrupted")
    return Resumable(path=path, loaded=loaded, start=start, finished=finished)


def resume(
    target: Path | Resumable,
    *,
    jobs: int | None = None,
    gpus: Sequence[str] | None = None,
    on_trial: OnTrial | None = None,
    on_start: OnStart | None = None,
) -> MatrixResult:
    """Finish the matrix in a run dir: replay its journal, run the trials it lacks.

    ``jobs``/``gpus`` default to what the run started with.  A matrix that ended is reported as
    it is: nothing runs and nothing is written (see :func:`open_resume`, ``Resumable.finished``).
    """
    r = target if isinstance(target, Resumable) else open_resume(target)
    plan = r.loaded.plan
    if r.finished:
        return _report(plan, r.path, read_journal(r.path / "journal.jsonl"))
    if gpus is None:
        gpus = tuple(r.start.get("gpus", ()))
    if jobs is None:
        jobs = int(r.start.get("jobs", 1))
        jobs = min(jobs, len(gpus)) if gpus else jobs
    from sleuth.backends.local import check_slots

    check_slots(jobs, gpus)
    run_dir = RunDir.open(r.path)
    reaped = reap_orphans(run_dir.path)  # trials a killed sleuth left running would run twice
    if reaped:
        run_dir.journal.append("reaped", process_groups=reaped)
    run_dir.journal.append("resume", jobs=jobs)
    return _execute(
        plan, r.loaded.registry, run_dir, jobs=jobs, gpus=gpus, on_trial=on_trial, on_start=on_start
    )


def _replay(
    plan: MatrixPlan, events: Sequence[Mapping[str, Any]]
) -> tuple[dict[tuple[str, int], TrialRecord], dict[str, tuple[float, frozenset[int]]]]:
    """The journaled trials by (cell, index) (the first event of each counts), and the stops."""
    source = step_source(plan)
    names = {c.name for c in plan.cells}
    records: dict[tuple[str, int], TrialRecord] = {}
    stops: dict[str, tuple[float, frozenset[int]]] = {}
    for e in events:
        if e.get("event") == "trial" and e.get("cell") in names:
            key = (str(e["cell"]), int(e["index"]))
            if key not in records:
                records[key] = TrialRecord.from_dict(key[0], key[1], e["trial"], source)
        elif e.get("event") == "cell_stopped" and e.get("cell") in names:
            stops[e["cell"]] = (float(e["alpha"]), frozenset(e["indices"]))
    return records, stops


def _env_errors(events: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The environments whose last preparation failed, with why."""
    last = {str(e["key"]): e.get("error") for e in events if e.get("event") == "environment"}
    return {k: str(v) for k, v in last.items() if v}


def _envs_json(plan: MatrixPlan, errors: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    return {
        k: {
            "kind": env.kind,
            "spec": dict(env.spec),
            "error": errors.get(k),
            "snapshot": f"environments/{k}/env.json",
        }
        for k, env in plan.environments.items()
    }


def _report(plan: MatrixPlan, path: Path, events: Sequence[Mapping[str, Any]]) -> MatrixResult:
    """The result of a matrix that ended, from its journal alone."""
    records, stops = _replay(plan, events)
    errors = _env_errors(events)
    return analyze(
        plan,
        list(records.values()),
        env_errors=errors,
        stops=stops,
        run_dir=str(path),
        environments=_envs_json(plan, errors),
        already_finished=True,
    )


class _Loop:
    """The trial loop's state: what ran (per cell), which cells stopped."""

    def __init__(
        self, plan: MatrixPlan, records: Mapping[tuple[str, int], TrialRecord], stops: dict[str, Any]
    ) -> None:
        self.plan = plan
        self.by_cell: dict[str, list[TrialRecord]] = {c.name: [] for c in plan.cells}
        for r in records.values():
            self.by_cell[r.cell].append(r)
        self.stops = stops
        self.rule = GroupSequential(alpha=plan.recipe.statistics.alpha) if plan.recipe.until_decided else None
        self.regex = plan.recipe.workload.oracle.kind == "regex"

    @property
    def finished(self) -> int:
        """Trials finished so far (replayed included)."""
        return sum(len(v) for v in self.by_cell.values())

    def check_stop(self, cell: CellPlan) -> tuple[float, frozenset[int]] | None:
        """Apply the sequential rule to ``cell`` after one more of its trials finished.

        Baselines always run in full, and a cell whose trials have all run has nothing to stop.
        """
        if self.rule is None or self.plan.is_baseline(cell.name) or cell.name in self.stops:
            return None
        mine = self.by_cell[cell.name]
        if len(mine) >= cell.trials:
            return None
        base = self.by_cell[self.plan.baseline_of(cell.name)]
        target = None if self.regex else dominant_signature(self.by_cell[self.plan.baseline])
        level = self.rule.stop(
            aggregate(cell.name, mine, target, self.regex),
            aggregate(self.plan.baseline_of(cell.name), base, target, self.regex),
            cell.trials,
        )
        if level is None:
            return None
        return level, frozenset(r.index for r in mine)


def _queue(
    plan: MatrixPlan, done: Mapping[tuple[str, int], Any], skip_envs: Mapping[str, str]
) -> Iterator[tuple[str, int]]:
    """The missing trials in the planned order, drawn lazily."""
    skip = {c.name for c in plan.cells if c.environment.key in skip_envs}
    for name, r in iter_trial_order(plan.cells, plan.seed):
        if name not in skip and (name, r + 1) not in done:
            yield name, r + 1


def _prepare_all(plan: MatrixPlan, registry: Registry, run_dir: RunDir) -> dict[str, envs.ReadyEnvironment]:
    from sleuth import snapshot

    host = snapshot.collect()
    if not (run_dir.path / "host_env.json").is_file():
        run_dir.write_json("host_env.json", host)
    ready: dict[str, envs.ReadyEnvironment] = {}
    for key, env in plan.environments.items():
        r = ready[key] = envs.prepare_environment(env, registry, cwd=plan.cwd)
        run_dir.journal.append("environment", key=key, kind=env.kind, error=plan.secrets.scrub(r.error))
        if not (run_dir.path / "environments" / key / "env.json").is_file():
            run_dir.write_json(f"environments/{key}/env.json", plan.secrets.scrub(envs.snapshot_of(r, host)))
    return ready


def _execute(
    plan: MatrixPlan,
    registry: Registry,
    run_dir: RunDir,
    *,
    jobs: int,
    gpus: Sequence[str],
    on_trial: OnTrial | None,
    on_start: OnStart | None,
) -> MatrixResult:
    from sleuth.backends.local import LocalBackend
    from sleuth.engine import Engine
    from sleuth.oracle import build_oracle

    backend = LocalBackend(jobs, gpus)
    records, stops = _replay(plan, run_dir.events())
    loop = _Loop(plan, records, stops)
    submitted = {c.name: len(loop.by_cell[c.name]) for c in plan.cells}
    total = plan.trials_total - sum(plan.cell(n).trials - submitted[n] for n in loop.stops)
    if on_start is not None:
        on_start(run_dir.path, loop.finished, total)
    ready = _prepare_all(plan, registry, run_dir)
    env_errors = {k: r.error for k, r in ready.items() if r.error is not None}
    total -= sum(c.trials - submitted[c.name] for c in plan.cells if c.environment.key in env_errors)
    queue = _queue(plan, records, env_errors)
    source = step_source(plan)
    where: dict[Path, tuple[str, int]] = {}
    interrupted = False
    engine = Engine(backend, build_oracle(oracle_config(plan)), run_dir, scrub=plan.secrets.scrub)
    try:
        with engine:

            def fill() -> None:
                while engine.pending < jobs:
                    item = next(queue, None)
                    if item is None:
                        return
                    name, index = item
                    if name in loop.stops:
                        continue
                    cell = plan.cell(name)
                    trial_id, subdir = f"{index:04d}", f"cells/{name}/trials"
                    trial_dir = run_dir.path / subdir / trial_id
                    spec = _spec(plan, cell, index, ready[cell.environment.key], trial_dir)
                    where[trial_dir] = (name, index)
                    submitted[name] += 1
                    engine.submit(spec, trial_id, subdir=subdir, cell=name, index=index)

            fill()
            for trial in engine.completed():
                name, index = where.pop(trial.result.trial_dir)
                loop.by_cell[name].append(TrialRecord.from_trial(name, index, trial, source))
                cell = plan.cell(name)
                stop = loop.check_stop(cell)
                if stop is not None:
                    loop.stops[name] = stop
                    run_dir.journal.append("cell_stopped", cell=name, alpha=stop[0], indices=sorted(stop[1]))
                    total -= cell.trials - submitted[name]
                if on_trial is not None:
                    on_trial(loop.by_cell[name][-1], loop.finished, total)
                fill()
    except KeyboardInterrupt:
        interrupted = True
        engine.cancel_all()
        run_dir.journal.append("interrupted", completed=loop.finished)
    result = analyze(
        plan,
        [r for rs in loop.by_cell.values() for r in rs],
        env_errors=env_errors,
        stops=loop.stops,
        interrupted=interrupted,
        run_dir=str(run_dir.path),
        environments=_envs_json(plan, env_errors),
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
