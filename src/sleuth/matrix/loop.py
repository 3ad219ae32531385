"""The trial loop of a matrix: replay what the journal holds, prepare the environments, run the
missing trials as slots free, apply the early-stopping rule, write the report.

The journal is the truth, once: finished trials are journaled by the engine with their cell and
index; :func:`replay` keys them by (cell, index), never by the order they finished in, and they
are never appended again.  An early stop (``--until-decided``) that a kill -9 kept out of the
journal is found again on resume by applying the rule to the journaled trials in their order.
The missing trials are drawn lazily from the seeded order
(:func:`~sleuth.matrix.plan.iter_trial_order`), so memory does not grow with the planned trials.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.journal import RunDir
from sleuth.matrix import envs
from sleuth.matrix.aggregate import STEP_METRIC, TrialRecord, aggregate, dominant_signature
from sleuth.matrix.multiple import Stop
from sleuth.matrix.output import to_json
from sleuth.matrix.output_md import to_markdown
from sleuth.matrix.plan import CellPlan, MatrixPlan, iter_trial_order
from sleuth.matrix.result import MatrixResult, analyze, sequential_rule, step_source
from sleuth.model import MetricSpec, Outcome, Stream, TrialSpec
from sleuth.oracle import OracleConfig
from sleuth.registry import Registry

if TYPE_CHECKING:
    from sleuth.backends import Backend
    from sleuth.backends.choice import BackendChoice

__all__ = ["OnStart", "OnTrial", "env_errors", "envs_json", "execute", "oracle_config", "replay"]

#: called after each finished trial: (record, trials finished, trials planned now)
OnTrial = Callable[[TrialRecord, int, int], None]
#: called once the trials are about to run: (run dir, trials already finished, trials planned)
OnStart = Callable[[Path, int, int], None]


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


def replay(
    plan: MatrixPlan, events: Sequence[Mapping[str, Any]]
) -> tuple[dict[tuple[str, int], TrialRecord], dict[str, Stop]]:
    """The journaled trials by (cell, index) (the first event of each counts), and the stops."""
    source = step_source(plan)
    names = {c.name for c in plan.cells}
    records: dict[tuple[str, int], TrialRecord] = {}
    stops: dict[str, Stop] = {}
    for e in events:
        if e.get("event") == "trial" and e.get("cell") in names:
            key = (str(e["cell"]), int(e["index"]))
            if key not in records:
                records[key] = TrialRecord.from_dict(key[0], key[1], e["trial"], source)
        elif e.get("event") == "cell_stopped" and e.get("cell") in names:
            p, lower = e.get("p"), e.get("lower")
            stops[e["cell"]] = Stop(
                level=float(e["alpha"]),
                indices=frozenset(e["indices"]),
                p=float(p) if isinstance(p, int | float) else None,
                lower=lower if isinstance(lower, bool) else None,
            )
    return records, stops


def env_errors(events: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The environments whose last preparation failed, with why."""
    last = {str(e["key"]): e.get("error") for e in events if e.get("event") == "environment"}
    return {k: str(v) for k, v in last.items() if v}


def envs_json(plan: MatrixPlan, errors: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    return {
        k: {
            "kind": env.kind,
            "spec": dict(env.spec),
            "error": errors.get(k),
            "snapshot": f"environments/{k}/env.json",
        }
        for k, env in plan.environments.items()
    }


class _Loop:
    """The trial loop's state: what ran (per cell), which cells stopped."""

    def __init__(
        self, plan: MatrixPlan, records: Mapping[tuple[str, int], TrialRecord], stops: dict[str, Stop]
    ) -> None:
        self.plan = plan
        self.by_cell: dict[str, list[TrialRecord]] = {c.name: [] for c in plan.cells}
        for r in records.values():
            self.by_cell[r.cell].append(r)
        self.stops = stops
        self.rule = sequential_rule(plan)
        self.regex = plan.recipe.workload.oracle.kind == "regex"

    @property
    def finished(self) -> int:
        """Trials finished so far (replayed included)."""
        return sum(len(v) for v in self.by_cell.values())

    def check_stop(self, cell: CellPlan) -> Stop | None:
        """Apply the sequential rule to ``cell`` after one more of its trials finished.

        Baselines always run in full, and a cell whose trials have all run has nothing to stop.
        """
        if self.rule is None or self.plan.is_baseline(cell.name) or cell.name in self.stops:
            return None
        mine = self.by_cell[cell.name]
        if len(mine) >= cell.trials:
            return None
        judged = sum(1 for r in mine if r.outcome in (Outcome.PASS, Outcome.FAIL))
        if self.rule.alpha_at(judged, cell.trials) is None:  # not a look: nothing to count
            return None
        base = self.by_cell[self.plan.baseline_of(cell.name)]
        target = None if self.regex else dominant_signature(self.by_cell[self.plan.baseline])
        look = self.rule.stop(
            aggregate(cell.name, mine, target, self.regex),
            aggregate(self.plan.baseline_of(cell.name), base, target, self.regex),
            cell.trials,
        )
        if look is None:
            return None
        level, p, lower = look
        return Stop(level=level, indices=frozenset(r.index for r in mine), p=p, lower=lower)


def _journal_stop(run_dir: RunDir, name: str, stop: Stop) -> None:
    run_dir.journal.append(
        "cell_stopped",
        cell=name,
        alpha=stop.level,
        p=stop.p,
        lower=stop.lower,
        indices=sorted(stop.indices),
    )


def _lost_stops(
    plan: MatrixPlan, records: Mapping[tuple[str, int], TrialRecord], stops: Mapping[str, Stop]
) -> dict[str, Stop]:
    """The early stops the journal lacks: a kill -9 between a look's trial event and its
    ``cell_stopped`` event lost one, and the resumed cell, past that look, ran on.  The rule is
    applied again to the journaled trials in the order they were judged (the journal's, which is
    the order the live loop applied it in), so it finds exactly the stops the live loop made."""
    loop = _Loop(plan, {}, dict(stops))
    found: dict[str, Stop] = {}
    if loop.rule is None:
        return found
    for r in records.values():
        loop.by_cell[r.cell].append(r)
        stop = loop.check_stop(plan.cell(r.cell))
        if stop is not None:
            loop.stops[r.cell] = found[r.cell] = stop
    return found


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


def execute(
    plan: MatrixPlan,
    registry: Registry,
    run_dir: RunDir,
    *,
    jobs: int,
    gpus: Sequence[str],
    on_trial: OnTrial | None,
    on_start: OnStart | None,
    backend: Backend | None = None,
    choice: BackendChoice | None = None,
) -> MatrixResult:
    """Run the trials the run dir lacks through ``backend`` (default: local, ``jobs`` and ``gpus``);
    ``choice`` is what ``backend`` was made from (the report's ``rerun`` repeats it)."""
    from sleuth.engine import Engine
    from sleuth.oracle import build_oracle

    if backend is None:
        from sleuth.backends.choice import BackendChoice, make_backend

        backend = make_backend(BackendChoice(), jobs, gpus)
    records, stops = replay(plan, run_dir.events())
    for name, lost in _lost_stops(plan, records, stops).items():
        stops[name] = lost
        _journal_stop(run_dir, name, lost)
    loop = _Loop(plan, records, stops)
    submitted = {c.name: len(loop.by_cell[c.name]) for c in plan.cells}
    total = plan.trials_total - sum(plan.cell(n).trials - submitted[n] for n in loop.stops)
    if on_start is not None:
        on_start(run_dir.path, loop.finished, total)
    interrupted = False
    try:
        ready = _prepare_all(plan, registry, run_dir)
    except KeyboardInterrupt:  # while an environment was prepared (a venv built, an image checked)
        interrupted, ready = True, {}
        run_dir.journal.append("interrupted", completed=loop.finished)
    env_errors = {k: r.error for k, r in ready.items() if r.error is not None}
    total -= sum(c.trials - submitted[c.name] for c in plan.cells if c.environment.key in env_errors)
    # interrupted: no trial runs, and the report of what finished is written as after a Ctrl-C below
    queue = _queue(plan, records, env_errors) if not interrupted else iter(())
    source = step_source(plan)
    where: dict[Path, tuple[str, int]] = {}
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
                    _journal_stop(run_dir, name, stop)
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
        environments=envs_json(plan, env_errors),
        backend=choice,
        jobs=jobs,
        gpus=gpus,
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
    cell_env = {**workload.env, **cell.env, **cell.launch_env, "SLEUTH_CELL": cell.name}
    if cell.steps is not None:
        cell_env["SLEUTH_STEPS"] = str(cell.steps)
    spec = TrialSpec(
        argv=cell.argv or plan.argv,
        env={**os.environ, **cell_env},
        cwd=plan.cwd,
        timeout_s=workload.timeout,
        kill_grace_s=workload.kill_grace_s,
        label=f"{cell.name}#{index}",
        metrics=_metrics(plan),
    )
    return envs.wrap(ready, spec, trial_dir=trial_dir, cell_env=cell_env)
