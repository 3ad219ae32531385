"""Render a :class:`MatrixResult`: ``matrix.json`` (every number), a dry run's plan, the resolved
recipe (strictly loadable, so running it again runs the same matrix) and the rerun command;
``matrix.md`` (people first) is :mod:`sleuth.matrix.output_md`'s.

Every document rendered here goes through the plan's ``Secrets.scrub``: a recipe's secret values
never reach a file or the terminal (``recipe.resolved.yaml`` holds ``<redacted>``; resume takes
the values from ``secrets.json``), nor do the backend's (the ``rerun`` command shows them
``<redacted>``: run as it is, it takes them from the same ``secrets.json``).
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from sleuth.matrix.classify import Confound, Decision
from sleuth.matrix.plan import MatrixPlan
from sleuth.matrix.result import CellResult, EnvironmentEffect, MatrixResult, step_source

__all__ = [
    "SCHEMA",
    "plan_dict",
    "rerun_command",
    "resolved_recipe_data",
    "resolved_recipe_yaml",
    "to_json",
]

SCHEMA = "sleuth.matrix/1"


def _num(x: float | None, digits: int = 6) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), digits)


def _step_json(c: CellResult) -> dict[str, Any] | None:
    from sleuth import stats

    dist = c.stats.step()
    if dist is None:
        return None
    out: dict[str, Any] = {k: _num(v) if isinstance(v, float) else v for k, v in dist.to_dict().items()}
    times = list(c.stats.step_times)
    out["p50"] = _num(stats.percentile(times, 50))
    out["p99"] = _num(stats.percentile(times, 99))
    return out


def _confound_json(cf: Confound) -> dict[str, Any]:
    return {
        "median_ratio": _num(cf.ratio, 4),
        "median_ratio_ci": [_num(x, 4) for x in cf.ci] if cf.ci else None,
        "p90_ratio": _num(cf.p90_ratio, 4),
        "p90_ratio_ci": [_num(x, 4) for x in cf.p90_ci] if cf.p90_ci else None,
        "superiority": _num(cf.superiority, 4),
        "rank_p": _num(cf.rank_p, 8),
        "timed_trials": cf.n_cell,
        "baseline_timed_trials": cf.n_base,
        "threshold": cf.threshold,
        "flagged_by": cf.by,
        "too_few_timings": cf.too_few,
        "ratio_undefined": cf.undefined,
    }


def _decision_json(d: Decision) -> dict[str, Any]:
    return {
        "classification": d.classification.value,
        "p_value": _num(d.p_value, 8),
        "p_adjusted": _num(d.p_adjusted, 8),
        "p_other": _num(d.p_other, 8),
        "p_other_adjusted": _num(d.p_other_adjusted, 8),
        "trials_needed": d.trials_needed,
        "note": d.note,
    }


def _cell_json(c: CellResult, plan: MatrixPlan) -> dict[str, Any]:
    s, d, cf = c.stats, c.decision, c.confound
    cp = plan.cell(c.name)
    dist = s.step()
    return {
        "name": c.name,
        "mitigations": list(cp.mitigations),
        "environment": cp.environment.key,
        "role": _role(plan, c.name),
        "baseline_cell": c.baseline,
        "env": dict(cp.env),
        "steps": cp.steps,
        "command": list(cp.argv),
        "trials_planned": cp.trials,
        "counts": {
            "pass": s.n_pass,
            "fail": s.n_fail,
            "target_fail": s.n_target,
            "other_fail": s.n_other,
            "error": s.n_error,
            "skip": s.n_skip,
            "total": s.n_total,
        },
        "failure_rate": _num(s.failure_rate),
        "failure_rate_ci": [_num(x) for x in s.failure_rate_ci()] if s.n_judged else None,
        "other_failure_rate": _num(s.other_rate),
        "error_rate": _num(s.error_rate),
        "unreliable": c.unreliable,
        **_decision_json(d),
        "warnings": list(c.warnings),
        "step_time": _step_json(c),
        "step_time_median": _num(dist.median) if dist else None,
        "step_time_ratio": _num(cf.ratio, 4),
        "step_time_ratio_ci": [_num(x, 4) for x in cf.ci] if cf.ci else None,
        "confound": cf.label,
        "speed": _confound_json(cf),
        "exit_status": dict(s.status_counts),
        "signatures": dict(s.signature_counts),
        "stopped_early_at_alpha": _num(c.stopped_at_alpha),
        "after_stop": c.n_after_stop,
        "error": c.error,
        "trials": [
            {
                "index": r.index,
                "path": f"cells/{c.name}/trials/{r.index:04d}",
                "outcome": r.outcome.value,
                "signature": r.signature,
                "status": r.status,
                "step_time": _num(r.step_time),
                "wall_s": _num(r.wall_s),
            }
            for r in c.records
        ],
    }


def _role(plan: MatrixPlan, name: str) -> str:
    if name == plan.baseline:
        return "reference_baseline"
    if plan.is_baseline(name):
        return "environment_baseline"
    return "cell"


def _effect_json(e: EnvironmentEffect, result: MatrixResult) -> dict[str, Any]:
    d, cf = e.decision, e.confound
    st = result.cell(e.cell).stats
    return {
        "environment": e.environment,
        "baseline_cell": e.cell,
        "reference": e.reference,
        "failure_rate": _num(st.failure_rate),
        "failure_rate_ci": [_num(x) for x in st.failure_rate_ci()] if st.n_judged else None,
        **_decision_json(d),
        "step_time_ratio": _num(cf.ratio, 4),
        "step_time_ratio_ci": [_num(x, 4) for x in cf.ci] if cf.ci else None,
        "confound": cf.label,
        "speed": _confound_json(cf),
    }


def rerun_command(result: MatrixResult) -> str | None:
    """The command that runs this matrix again: its resolved recipe on the same ``--backend`` (a
    secret option value ``<redacted>``: the run dir's ``secrets.json`` gives it back), with the
    same ``--jobs`` and ``--gpus`` when they were given (not their defaults)."""
    if not result.run_dir:
        return None
    recipe = f"{result.run_dir}/recipe.resolved.yaml"
    words = ["sleuth", "matrix", "--recipe", recipe, *result.backend.flags()]
    if result.jobs != 1:
        words += ["--jobs", str(result.jobs)]
    if result.gpus:
        words += ["--gpus", ",".join(result.gpus)]
    return shlex.join(words)


def to_json(result: MatrixResult) -> dict[str, Any]:
    """The ``matrix.json`` / ``--json`` document (secrets hidden)."""
    doc: dict[str, Any] = result.plan.secrets.scrub(_to_json(result))
    return doc


def _to_json(result: MatrixResult) -> dict[str, Any]:
    plan = result.plan
    return {
        "schema": SCHEMA,
        "ticket": plan.recipe.ticket,
        "workload": plan.workload,
        "command": list(plan.argv),
        "cwd": plan.cwd,
        "run_dir": result.run_dir,
        "baseline": plan.baseline,
        "baseline_reason": plan.baseline_reason,
        "reference_environment": plan.reference_env,
        "environment_baselines": dict(plan.baselines),
        "added_cells": list(plan.added),
        "workload_plugin": _plugin(plan),
        "steps": plan.recipe.steps,
        "target_signature": result.target,
        "alpha": result.alpha,
        "multiplicity": {
            "method": "holm",
            "family": result.family,
            "alpha": result.alpha,
            "final_share": result.final_share,
            "what": "every cell against its environment's baseline and every environment's baseline "
            "against the reference; target and other-failure tests; p_adjusted < alpha is significant",
        },
        "sequential_rule": result.rule,
        "seed": plan.seed,
        "step_time_source": step_source(plan),
        "confound_threshold": plan.recipe.confound.threshold,
        "interrupted": result.interrupted,
        "exit_code": result.exit_code,
        "rerun": rerun_command(result),
        "warnings": list(plan.warnings),
        "environments": {k: dict(v) for k, v in result.environments.items()},
        "cells": [_cell_json(c, plan) for c in result.cells],
        "environment_effects": [_effect_json(e, result) for e in result.effects],
    }


def _plugin(plan: MatrixPlan) -> dict[str, Any] | None:
    if plan.plugin is None:
        return None
    ref, origin = plan.plugin
    return {"ref": ref, "origin": origin, "params": dict(plan.recipe.workload.params)}


def plan_dict(plan: MatrixPlan, *, run_parent: str) -> dict[str, Any]:
    """What a dry run prints: the resolved plan, nothing run (secrets hidden)."""
    doc: dict[str, Any] = plan.secrets.scrub(_plan_dict(plan, run_parent=run_parent))
    return doc


def _plan_dict(plan: MatrixPlan, *, run_parent: str) -> dict[str, Any]:
    return {
        "dry_run": True,
        "ticket": plan.recipe.ticket,
        "workload": plan.workload,
        "command": list(plan.argv),
        "cwd": plan.cwd,
        "baseline": plan.baseline,
        "baseline_reason": plan.baseline_reason,
        "reference_environment": plan.reference_env,
        "environment_baselines": dict(plan.baselines),
        "added_cells": list(plan.added),
        "seed": plan.seed,
        "until_decided": plan.recipe.until_decided,
        "trials_total": plan.trials_total,
        "run_dir_parent": run_parent,
        "step_time_source": step_source(plan),
        "workload_plugin": _plugin(plan),
        "warnings": list(plan.warnings),
        "cells": [
            {
                "name": c.name,
                "mitigations": list(c.mitigations),
                "environment": c.environment.key,
                "environment_spec": dict(c.environment.spec),
                "role": _role(plan, c.name),
                "baseline_cell": plan.baseline_of(c.name),
                "env": dict(c.env),
                "trials": c.trials,
                "steps": c.steps,
                "command": list(c.argv),
            }
            for c in plan.cells
        ],
    }


def resolved_recipe_data(plan: MatrixPlan, inline: dict[str, Any]) -> dict[str, Any]:
    """The recipe with every default and derived value written out; ``inline["resolved"]`` pins
    every definition it used that it does not define itself (built-in, plugin, sidecar) with
    sleuth's version, so the file stands alone (see :mod:`sleuth.matrix.lock`).

    Secrets are still in: :func:`resolved_recipe_yaml` hides them.
    """
    data = plan.recipe.model_dump(mode="json", exclude_none=True)
    data["workload"]["name"] = plan.workload
    data["workload"]["cwd"] = plan.cwd
    # the grace the trials get, written out: a resume (and a rerun of this file) keeps it
    data["workload"]["kill_grace"] = plan.recipe.workload.kill_grace_s
    data["confound"]["baseline_cell"] = plan.baseline
    for cell in data["cells"]:
        cell.setdefault("trials", plan.cell(cell["name"]).trials)
    data.pop("resolved", None)
    if inline.get("resolved"):
        data["resolved"] = inline["resolved"]
    return data


def resolved_recipe_yaml(plan: MatrixPlan, inline: dict[str, Any]) -> str:
    """``recipe.resolved.yaml``: :func:`resolved_recipe_data` with secrets hidden."""
    import yaml

    data = plan.secrets.scrub(resolved_recipe_data(plan, inline))
    head = "# written by sleuth matrix: `sleuth matrix --recipe THIS_FILE` runs the same matrix again\n"
    return head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
