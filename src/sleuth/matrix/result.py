"""From trial records to the matrix's answer: per-cell statistics, classification, confound.

Each cell is judged against the baseline of its own environment (``MatrixPlan.baseline_of``), and
each environment's baseline against the reference baseline: that comparison is the environment's
own effect (:class:`EnvironmentEffect`), a row of its own.  All those comparisons are one family,
decided together (Holm, :mod:`sleuth.matrix.multiple`).

:func:`analyze` is pure: the driver feeds it the records of a live run or of a replayed journal,
so a resumed matrix reports exactly what an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sleuth.backends.choice import BackendChoice
from sleuth.errors import ExitCode
from sleuth.matrix.aggregate import CellStats, TrialRecord, aggregate, dominant_signature
from sleuth.matrix.classify import Classification, Confound, Decision, GroupSequential, classify
from sleuth.matrix.multiple import Comparison, Stop, decide
from sleuth.matrix.plan import MatrixPlan
from sleuth.matrix.speed import speed_confound

__all__ = ["CellResult", "EnvironmentEffect", "MatrixResult", "analyze", "sequential_rule", "step_source"]


def step_source(plan: MatrixPlan) -> str:
    """Where step times come from: ``regex:<pattern>``, ``metric:<name>`` or ``wall_s``."""
    st = plan.recipe.workload.step_time
    if st is None:
        return "wall_s"
    return f"regex:{st.regex}" if st.regex is not None else f"metric:{st.metric}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CellResult:
    """One row of the matrix with everything behind it."""

    name: str
    stats: CellStats
    decision: Decision
    confound: Confound
    unreliable: bool
    #: the cell this one was compared with (its environment's baseline; itself for a baseline)
    baseline: str = ""
    trials_planned: int = 0
    #: the environment failed to prepare (the cell ran nothing)
    error: str | None = None
    #: --until-decided: the alpha of the look at which the cell stopped
    stopped_at_alpha: float | None = None
    #: trials that finished after the cell had stopped (kept on disk, left out of the statistics)
    n_after_stop: int = 0
    records: tuple[TrialRecord, ...] = ()
    #: what a reader of this row should know (unreliable, too few timings, errors, ...)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvironmentEffect:
    """An environment's own effect: its baseline cell against the reference baseline."""

    environment: str
    cell: str
    reference: str
    decision: Decision
    confound: Confound


_DECIDED = frozenset({Classification.FIXED, Classification.WORSE, Classification.NO_EFFECT})


@dataclass(frozen=True, slots=True, kw_only=True)
class MatrixResult:
    """The whole matrix."""

    plan: MatrixPlan
    cells: tuple[CellResult, ...]
    target: str | None
    alpha: float
    rule: str | None
    interrupted: bool = False
    run_dir: str | None = None
    environments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: one per environment other than the reference environment
    effects: tuple[EnvironmentEffect, ...] = ()
    #: ``matrix resume`` of a matrix that had ended: nothing ran, nothing was written
    already_finished: bool = False
    #: comparisons decided together (Holm): cells against their baselines, environment effects
    family: int = 0
    #: the share of alpha Holm spends at the end (1 without --until-decided)
    final_share: float = 1.0
    #: what ran the trials (``--backend``): the rerun command repeats it
    backend: BackendChoice = field(default_factory=BackendChoice)
    #: trials at a time and the devices they ran on (``--jobs``, ``--gpus``): the rerun repeats them
    jobs: int = 1
    gpus: tuple[str, ...] = ()

    def cell(self, name: str) -> CellResult:
        """The row called ``name``."""
        return next(c for c in self.cells if c.name == name)

    @property
    def exit_code(self) -> int:
        """4 when the baseline could not run, 3 when no comparison reached a decision, else 0."""
        if self.interrupted:
            return int(ExitCode.INTERRUPTED)
        base = self.cell(self.plan.baseline)
        if base.error is not None or base.stats.n_judged == 0:
            return int(ExitCode.INFRASTRUCTURE)
        others = [c.decision for c in self.cells if not self.plan.is_baseline(c.name)]
        others += [e.decision for e in self.effects]
        if others and not any(d.classification in _DECIDED for d in others):
            return int(ExitCode.INCONCLUSIVE)
        return int(ExitCode.OK)


def _warnings(c: CellResult, plan: MatrixPlan) -> tuple[str, ...]:
    s, out = c.stats, []
    if c.error is not None:
        out.append(f"its environment failed to prepare: {c.error}")
    if c.unreliable:
        limit = plan.recipe.statistics.unreliable_error_rate
        out.append(f"error rate {100 * (s.error_rate or 0):.0f}% (>= {100 * limit:.0f}%): unreliable")
    elif s.n_error and s.errors:
        out.append(f"{s.n_error} trial(s) could not run: {s.errors[0]}")
    if c.confound.too_few:
        out.append(
            f"too few timings: {c.confound.n_cell} here, {c.confound.n_base} in {c.baseline} "
            "(at least 3 each to compare speed)"
        )
    if s.n_other and c.decision.classification is not Classification.WORSE:
        out.append(f"{s.n_other} trial(s) failed another way ({next(iter(s.signature_counts), '?')})")
    if c.n_after_stop:
        out.append(f"{c.n_after_stop} trial(s) finished after the early stop and are left out")
    return tuple(out)


def analyze(
    plan: MatrixPlan,
    records: Sequence[TrialRecord],
    *,
    env_errors: Mapping[str, str] | None = None,
    stops: Mapping[str, Stop] | None = None,
    interrupted: bool = False,
    run_dir: str | None = None,
    environments: Mapping[str, Mapping[str, Any]] | None = None,
    already_finished: bool = False,
    backend: BackendChoice | None = None,
    jobs: int = 1,
    gpus: Sequence[str] = (),
) -> MatrixResult:
    """Aggregate ``records`` per cell and decide every comparison of the matrix together.

    ``env_errors`` maps an environment key to why it failed; ``stops`` maps a cell stopped by
    ``--until-decided`` to its :class:`~sleuth.matrix.multiple.Stop`; ``backend``, ``jobs`` and
    ``gpus`` name what ran the trials (default local, one at a time).
    """
    env_errors = env_errors or {}
    stops = stops or {}
    recipe = plan.recipe
    regex_oracle = recipe.workload.oracle.kind == "regex"
    by_cell: dict[str, list[TrialRecord]] = {c.name: [] for c in plan.cells}
    late: dict[str, int] = dict.fromkeys(by_cell, 0)
    for r in sorted(records, key=lambda r: (r.cell, r.index)):
        if r.cell not in by_cell:
            continue
        if r.cell in stops and r.index not in stops[r.cell].indices:
            late[r.cell] += 1
            continue
        by_cell[r.cell].append(r)
    target = None if regex_oracle else dominant_signature(by_cell[plan.baseline])
    rule = sequential_rule(plan)
    all_stats = {name: aggregate(name, recs, target, regex_oracle) for name, recs in by_cell.items()}
    threshold, min_effect, alpha = (
        recipe.confound.threshold,
        recipe.statistics.min_effect,
        recipe.statistics.alpha,
    )
    final_share = (
        rule.final_share(c.trials for c in plan.cells if not plan.is_baseline(c.name)) if rule else 1.0
    )
    broken = {
        c.name for c in plan.cells if c.environment.key in env_errors and all_stats[c.name].n_total == 0
    }
    comparisons = [
        Comparison(
            name=c.name,
            cell=all_stats[c.name],
            base=all_stats[plan.baseline_of(c.name)],
            stop=stops.get(c.name),
        )
        for c in plan.cells
        if not plan.is_baseline(c.name) and c.name not in broken
    ]
    effect_cells = {key: name for key, name in plan.baselines.items() if name != plan.baseline}
    comparisons += [
        Comparison(name=f"environment {key}", cell=all_stats[name], base=all_stats[plan.baseline])
        for key, name in effect_cells.items()
        if name not in broken
    ]
    decisions = decide(comparisons, alpha=alpha, min_effect=min_effect, final_share=final_share)
    out: list[CellResult] = []
    for i, cell in enumerate(plan.cells):
        st = all_stats[cell.name]
        own = plan.baseline_of(cell.name)
        env_error = env_errors.get(cell.environment.key)
        if cell.name in broken:
            decision = Decision(classification=Classification.ERROR, note=str(env_error))
        elif plan.is_baseline(cell.name):
            decision = classify(st, st)
        else:
            decision = decisions[cell.name]
        stop = stops.get(cell.name)
        row = CellResult(
            name=cell.name,
            stats=st,
            decision=decision,
            confound=speed_confound(st, all_stats[own], threshold=threshold, seed=plan.seed + i),
            unreliable=(st.error_rate or 0.0) >= recipe.statistics.unreliable_error_rate,
            baseline=own,
            trials_planned=cell.trials,
            error=env_error,
            stopped_at_alpha=stop.level if stop else None,
            n_after_stop=late[cell.name],
            records=tuple(by_cell[cell.name]),
        )
        out.append(replace(row, warnings=_warnings(row, plan)))
    effects: list[EnvironmentEffect] = []
    for j, (key, name) in enumerate(effect_cells.items()):
        st = all_stats[name]
        if name in broken:
            decision = Decision(classification=Classification.ERROR, note=str(env_errors.get(key)))
        else:
            decision = decisions[f"environment {key}"]
        effects.append(
            EnvironmentEffect(
                environment=key,
                cell=name,
                reference=plan.baseline,
                decision=decision,
                confound=speed_confound(
                    st, all_stats[plan.baseline], threshold=threshold, seed=plan.seed + len(plan.cells) + j
                ),
            )
        )
    return MatrixResult(
        plan=plan,
        cells=tuple(out),
        target="the oracle pattern" if regex_oracle else target,
        alpha=alpha,
        rule=rule.describe(final_share) if rule else None,
        interrupted=interrupted,
        run_dir=run_dir,
        environments=dict(environments or {}),
        effects=tuple(effects),
        already_finished=already_finished,
        family=len(comparisons),
        final_share=final_share,
        backend=backend if backend is not None else BackendChoice(),
        jobs=jobs,
        gpus=tuple(gpus),
    )


def sequential_rule(plan: MatrixPlan) -> GroupSequential | None:
    """The ``--until-decided`` rule of ``plan`` (its family: the cells that are not baselines)."""
    if not plan.recipe.until_decided:
        return None
    family = sum(1 for c in plan.cells if not plan.is_baseline(c.name))
    return GroupSequential(alpha=plan.recipe.statistics.alpha, family=family)
