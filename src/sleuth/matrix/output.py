"""Render a :class:`MatrixResult`: ``matrix.json`` (every number) and ``matrix.md`` (people first),
and the resolved recipe (strictly loadable, so running it again runs the same matrix)."""

from __future__ import annotations

import math
from typing import Any

from sleuth.matrix.classify import Classification
from sleuth.matrix.plan import MatrixPlan
from sleuth.matrix.result import CellResult, MatrixResult, step_source

__all__ = ["SCHEMA", "plan_dict", "resolved_recipe_yaml", "to_json", "to_markdown"]

SCHEMA = "sleuth.matrix/1"


def _num(x: float | None, digits: int = 6) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), digits)


def _cell_json(c: CellResult, plan: MatrixPlan) -> dict[str, Any]:
    s, d, cf = c.stats, c.decision, c.confound
    cp = plan.cell(c.name)
    dist = s.step()
    return {
        "name": c.name,
        "mitigations": list(cp.mitigations),
        "environment": cp.environment.key,
        "env": dict(cp.env),
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
        "classification": d.classification.value,
        "p_value": _num(d.p_value, 8),
        "trials_needed": d.trials_needed,
        "note": d.note,
        "step_time": {k: _num(v) if isinstance(v, float) else v for k, v in dist.to_dict().items()}
        if dist
        else None,
        "step_time_median": _num(dist.median) if dist else None,
        "step_time_ratio": _num(cf.ratio, 4),
        "step_time_ratio_ci": [_num(x, 4) for x in cf.ci] if cf.ci else None,
        "confound": cf.label,
        "exit_status": dict(s.status_counts),
        "signatures": dict(s.signature_counts),
        "stopped_early_at_alpha": _num(c.stopped_at_alpha),
        "after_stop": c.n_after_stop,
        "error": c.error,
        "trials": [
            {
                "index": r.index,
                "outcome": r.outcome.value,
                "signature": r.signature,
                "status": r.status,
                "step_time": _num(r.step_time),
                "wall_s": _num(r.wall_s),
            }
            for r in c.records
        ],
    }


def to_json(result: MatrixResult) -> dict[str, Any]:
    """The ``matrix.json`` / ``--json`` document."""
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
        "target_signature": result.target,
        "alpha": result.alpha,
        "sequential_rule": result.rule,
        "seed": plan.seed,
        "step_time_source": step_source(plan),
        "confound_threshold": plan.recipe.confound.threshold,
        "interrupted": result.interrupted,
        "exit_code": result.exit_code,
        "rerun": f"sleuth matrix --recipe {result.run_dir}/recipe.resolved.yaml" if result.run_dir else None,
        "environments": {k: dict(v) for k, v in result.environments.items()},
        "cells": [_cell_json(c, plan) for c in result.cells],
    }


def plan_dict(plan: MatrixPlan, *, order_len: int, run_parent: str) -> dict[str, Any]:
    """What a dry run prints: the resolved plan, nothing run."""
    return {
        "dry_run": True,
        "ticket": plan.recipe.ticket,
        "workload": plan.workload,
        "command": list(plan.argv),
        "cwd": plan.cwd,
        "baseline": plan.baseline,
        "baseline_reason": plan.baseline_reason,
        "seed": plan.seed,
        "until_decided": plan.recipe.until_decided,
        "trials_total": order_len,
        "run_dir_parent": run_parent,
        "step_time_source": step_source(plan),
        "cells": [
            {
                "name": c.name,
                "mitigations": list(c.mitigations),
                "environment": c.environment.key,
                "environment_spec": dict(c.environment.spec),
                "env": dict(c.env),
                "trials": c.trials,
            }
            for c in plan.cells
        ],
    }


def resolved_recipe_yaml(plan: MatrixPlan, inline: dict[str, Any]) -> str:
    """The recipe with every default and derived value written out; ``inline`` adds definitions
    (mitigations and environment aliases from sidecar files) so the file stands alone."""
    import yaml

    data = plan.recipe.model_dump(mode="json", exclude_none=True)
    data["workload"]["name"] = plan.workload
    data["workload"]["cwd"] = plan.cwd
    data["confound"]["baseline_cell"] = plan.baseline
    for cell in data["cells"]:
        cell.setdefault("trials", plan.cell(cell["name"]).trials)
    for key in ("mitigations", "environments"):
        data[key] = {**data.get(key, {}), **inline.get(key, {})}
    head = "# written by sleuth matrix: `sleuth matrix --recipe THIS_FILE` runs the same matrix again\n"
    return head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _row(c: CellResult, plan: MatrixPlan) -> str:
    s, d, cf = c.stats, c.decision, c.confound
    cp = plan.cell(c.name)
    lo, hi = s.failure_rate_ci()
    rate = "-" if s.failure_rate is None else f"{_pct(s.failure_rate)} [{_pct(lo)}, {_pct(hi)}]"
    cls = d.classification.value + (" (unreliable)" if c.unreliable else "")
    p = "-" if d.p_value is None else f"{d.p_value:.3g}"
    dist = s.step()
    step = "-" if dist is None else f"{dist.median:.4g}"
    ratio = "-" if cf.ratio is None else f"{cf.ratio:.2f}x"
    if cf.ci:
        ratio += f" [{cf.ci[0]:.2f}, {cf.ci[1]:.2f}]"
    counts = f"{s.n_pass}/{s.n_target}+{s.n_other}/{s.n_error + s.n_skip}"
    mits = "+".join(cp.mitigations)
    return (
        f"| {c.name} | {mits} | {cp.environment.key} | {counts} | {rate} | {cls} | {p} | {step} | {ratio} "
        f"| {cf.label or ''} |"
    )


def to_markdown(result: MatrixResult) -> str:
    """``matrix.md``: the table, then the notes that explain it."""
    plan = result.plan
    title = f"# sleuth matrix: {plan.workload}" + (f" ({plan.recipe.ticket})" if plan.recipe.ticket else "")
    lines = [
        title,
        "",
        f"Command: `{' '.join(plan.argv)}` in `{plan.cwd}`.",
        f"Baseline: **{plan.baseline}** ({plan.baseline_reason}).",
        "",
        "| cell | mitigations | environment | pass/fail(target+other)/error | failure rate [95% CI] "
        "| vs baseline | Fisher p | step time (median) | ratio [95% CI] | confound |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(_row(c, plan) for c in result.cells),
        "",
        "## Notes",
        "",
        f"- Failure rate = target failures / (pass + fail); target: {result.target or 'any failure'}. "
        "Other failures count as neither pass nor target; errors stay out of the denominator.",
        f"- Classification: Fisher's exact test (two-sided) against the baseline at alpha {result.alpha:g}; "
        "not significant is `inconclusive` unless both cells had the trials to detect "
        f"a {round(plan.recipe.statistics.min_effect * 100)}% change (`no_effect`).",
        f"- Step time from {step_source(plan)}; `speed` is flagged when the lower end of the bootstrap 95% "
        f"interval of the median ratio exceeds {plan.recipe.confound.threshold:g}.",
    ]
    if result.rule:
        lines.append(f"- Early stopping (--until-decided): {result.rule}.")
    if result.interrupted:
        lines.append(
            "- **Interrupted**: the numbers cover the trials that finished; `sleuth matrix resume` goes on."
        )
    for c in result.cells:
        lines.extend(_cell_notes(c))
    if result.run_dir:
        lines += ["", f"Rerun: `sleuth matrix --recipe {result.run_dir}/recipe.resolved.yaml`"]
    return "\n".join(lines) + "\n"


def _cell_notes(c: CellResult) -> list[str]:
    out: list[str] = []
    d = c.decision
    if d.note:
        out.append(f"- **{c.name}**: {d.note}.")
    if c.confound.flagged and d.classification is Classification.FIXED:
        out.append(
            f"- **{c.name}**: the fix comes with a {c.confound.label}; the slowdown itself may be what helps "
            "(try a cell that only slows the workload down)."
        )
    if c.unreliable:
        out.append(f"- **{c.name}**: error rate {_pct(c.stats.error_rate)} - unreliable.")
    if c.stopped_at_alpha is not None:
        out.append(f"- **{c.name}**: stopped early at a look with alpha {c.stopped_at_alpha:g}.")
    sigs = ", ".join(f"{n} x `{sig}`" for sig, n in c.stats.signature_counts.items())
    if sigs:
        out.append(f"- **{c.name}** failure signatures: {sigs}.")
    return out
