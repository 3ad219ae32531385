"""From trial records to the matrix's answer: per-cell statistics, classification, confound.

Each cell is judged against the baseline of its own environment (``MatrixPlan.baseline_of``), and
each environment's baseline against the reference baseline: that comparison is the environment's
own effect (:class:`EnvironmentEffect`), a row of its own.

:func:`analyze` is pure: the driver feeds it the records of a live run or of a replayed journal,
so a resumed matrix reports exactly what an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sleuth.errors import ExitCode
from sleuth.matrix.aggregate import CellStats, TrialRecord, aggregate, dominant_signature
from sleuth.matrix.classify import (
    Classification,
    Confound,
    Decision,
    GroupSequential,
    classify,
    speed_confound,
)
from sleuth.matrix.plan import MatrixPlan

__all__ = ["CellResult", "EnvironmentEffect", "MatrixResult", "analyze", "step_source"]


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


def analyze(
    plan: MatrixPlan,
    records: Sequence[TrialRecord],
    *,
    env_errors: Mapping[str, str] | None = None,
    stops: Mapping[str, tuple[float, frozenset[int]]] | None = None,
    interrupted: bool = False,
    run_dir: str | None = None,
    environments: Mapping[str, Mapping[str, Any]] | None = None,
    already_finished: bool = False,
) -> MatrixResult:
    """Aggregate ``records`` per cell and classify every cell against the baseline.

    ``env_errors`` maps an environment key to why it failed; ``stops`` maps a cell stopped by
    ``--until-decided`` to (the alpha of its look, the indices its decision was based on).
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
        if r.cell in stops and r.index not in stops[r.cell][1]:
            late[r.cell] += 1
            continue
        by_cell[r.cell].append(r)
    target = None if regex_oracle else dominant_signature(by_cell[plan.baseline])
    rule = GroupSequential(alpha=recipe.statistics.alpha) if recipe.until_decided else None
    all_stats = {name: aggregate(name, recs, target, regex_oracle) for name, recs in by_cell.items()}
    threshold, min_effect = recipe.confound.threshold, recipe.statistics.min_effect
    out: list[CellResult] = []
    for i, cell in enumerate(plan.cells):
        st = all_stats[cell.name]
        own = plan.baseline_of(cell.name)
        base = all_stats[own]
        stop = stops.get(cell.name)
        alpha = recipe.statistics.alpha if rule is None else (stop[0] if stop else rule.final_alpha)
        env_error = env_errors.get(cell.environment.key)
        if env_error is not None and st.n_total == 0:
            decision = Decision(classification=Classification.ERROR, note=env_error)
        elif plan.is_baseline(cell.name):
            decision = classify(st, st, alpha=alpha, min_effect=min_effect)
        else:
            decision = classify(st, base, alpha=alpha, min_effect=min_effect)
        out.append(
            CellResult(
                name=cell.name,
                stats=st,
                decision=decision,
                confound=speed_confound(st, base, threshold=threshold, seed=plan.seed + i),
                unreliable=(st.error_rate or 0.0) >= recipe.statistics.unreliable_error_rate,
                baseline=own,
                trials_planned=cell.trials,
                error=env_error,
                stopped_at_alpha=stop[0] if stop else None,
                n_after_stop=late[cell.name],
                records=tuple(by_cell[cell.name]),
            )
        )
    final = recipe.statistics.alpha if rule is None else rule.final_alpha
    ref = all_stats[plan.baseline]
    effects: list[EnvironmentEffect] = []
    for j, (key, name) in enumerate(plan.baselines.items()):
        if name == plan.baseline:
            continue
        st = all_stats[name]
        env_error = env_errors.get(key)
        if env_error is not None and st.n_total == 0:
            decision = Decision(classification=Classification.ERROR, note=env_error)
        else:
            decision = classify(st, ref, alpha=final, min_effect=min_effect)
        effects.append(
            EnvironmentEffect(
                environment=key,
                cell=name,
                reference=plan.baseline,
                decision=decision,
                confound=speed_confound(st, ref, threshold=threshold, seed=plan.seed + len(plan.cells) + j),
            )
        )
    return MatrixResult(
        plan=plan,
        cells=tuple(out),
        target="the oracle pattern" if regex_oracle else target,
        alpha=final,
        rule=rule.describe() if rule else None,
        interrupted=interrupted,
        run_dir=run_dir,
        environments=dict(environments or {}),
        effects=tuple(effects),
        already_finished=already_finished,
    )
