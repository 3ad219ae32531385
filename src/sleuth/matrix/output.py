"""Render a :class:`MatrixResult`: ``matrix.json`` (every number) and ``matrix.md`` (people first),
and the resolved recipe (strictly loadable, so running it again runs the same matrix).

Every document rendered here goes through the plan's ``Secrets.scrub``: a recipe's secret values
never reach a file or the terminal (``recipe.resolved.yaml`` holds ``<redacted>``; resume takes
the values from ``secrets.json``), nor do the backend's (the ``rerun`` command shows them
``<redacted>``: run as it is, it takes them from the same ``secrets.json``).
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from sleuth.matrix.classify import Classification, Confound, Decision
from sleuth.matrix.plan import MatrixPlan
from sleuth.matrix.result import CellResult, EnvironmentEffect, MatrixResult, step_source

__all__ = [
    "SCHEMA",
    "plan_dict",
    "resolved_recipe_data",
    "resolved_recipe_yaml",
    "to_json",
    "to_markdown",
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


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _row(c: CellResult, plan: MatrixPlan) -> str:
    s, d, cf = c.stats, c.decision, c.confound
    cp = plan.cell(c.name)
    lo, hi = s.failure_rate_ci()
    rate = "-" if s.failure_rate is None else f"{_pct(s.failure_rate)} [{_pct(lo)}, {_pct(hi)}]"
    cls = d.classification.value + (" (unreliable)" if c.unreliable else "")
    p = _p_text(d)
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


def _p_text(d: Decision) -> str:
    """``raw (adjusted)``."""
    if d.p_value is None:
        return "-"
    adj = "" if d.p_adjusted is None else f" ({d.p_adjusted:.3g})"
    return f"{d.p_value:.3g}{adj}"


def command_text(plan: MatrixPlan) -> str:
    """The workload for people: the plugin and its parameters, or the command line."""
    import json
    import shlex

    if plan.plugin is not None:
        params = json.dumps(dict(plan.recipe.workload.params), sort_keys=True)
        return f"plugin {plan.plugin[0]} {params}"
    return shlex.join(plan.argv)


def to_markdown(result: MatrixResult) -> str:
    """``matrix.md``: the table, then the notes that explain it (secrets hidden)."""
    text: str = result.plan.secrets.scrub(_markdown(result))
    return text


def _effect_row(e: EnvironmentEffect, result: MatrixResult) -> str:
    st = result.cell(e.cell).stats
    lo, hi = st.failure_rate_ci()
    rate = "-" if st.failure_rate is None else f"{_pct(st.failure_rate)} [{_pct(lo)}, {_pct(hi)}]"
    d, cf = e.decision, e.confound
    p = _p_text(d)
    ratio = "-" if cf.ratio is None else f"{cf.ratio:.2f}x"
    if cf.ci:
        ratio += f" [{cf.ci[0]:.2f}, {cf.ci[1]:.2f}]"
    cls = d.classification.value
    return f"| {e.environment} | {e.cell} | {rate} | {cls} | {p} | {ratio} | {cf.label or ''} |"


def _markdown(result: MatrixResult) -> str:
    plan = result.plan
    title = f"# sleuth matrix: {plan.workload}" + (f" ({plan.recipe.ticket})" if plan.recipe.ticket else "")
    several = len(plan.baselines) > 1
    lines = [
        title,
        "",
        f"Workload: `{command_text(plan)}` in `{plan.cwd}`"
        + (f" ({plan.plugin[1]})." if plan.plugin else ".")
        + (f" Steps: {plan.recipe.steps}." if plan.recipe.steps else ""),
        f"Baseline: **{plan.baseline}** ({plan.baseline_reason})"
        + (
            "; each cell is compared with the baseline of its own environment "
            f"({', '.join(f'{k}: {v}' for k, v in plan.baselines.items())})."
            if several
            else "."
        ),
    ]
    if plan.added:
        lines.append(f"Added by sleuth (each environment needs its own baseline): {', '.join(plan.added)}.")
    lines += [
        "",
        "| cell | mitigations | environment | pass/fail(target+other)/error | failure rate [95% CI] "
        "| vs baseline | Fisher p (Holm) | step time (median) | ratio [95% CI] | confound |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(_row(c, plan) for c in result.cells),
    ]
    if result.effects:
        lines += [
            "",
            f"## Environments: each environment's baseline against {plan.baseline} ({plan.reference_env})",
            "",
            "| environment | baseline cell | failure rate [95% CI] | vs reference | Fisher p (Holm) "
            "| ratio [95% CI] | confound |",
            "|---|---|---|---|---|---|---|",
            *(_effect_row(e, result) for e in result.effects),
        ]
    lines += [
        "",
        "## Notes",
        "",
        f"- Failure rate = target failures / (pass + fail); target: {result.target or 'any failure'}. "
        "Other failures count as neither pass nor target; errors stay out of the denominator.",
        "- Classification: Fisher's exact test (two-sided) against the baseline; the "
        f"{result.family} comparison(s) of this matrix (cells and environments) are one family, "
        f"adjusted by Holm so that the chance of any false `fixed`/`worse` is at most {result.alpha:g} "
        "(p in brackets: adjusted, significant below alpha). Not significant is `inconclusive` unless "
        f"both cells had the trials to detect a {round(plan.recipe.statistics.min_effect * 100)}% change "
        "(`no_effect`).",
        f"- Step time from {step_source(plan)}; `speed` is flagged when the lower end of the bootstrap 95% "
        f"interval of the median ratio, or of the 90th-percentile ratio (`p90`), exceeds "
        f"{plan.recipe.confound.threshold:g}; `too few timings` when a side has fewer than 3 timed trials.",
    ]
    lines += [f"- Warning: {w}" for w in plan.warnings]
    if result.rule:
        lines.append(f"- Early stopping (--until-decided): {result.rule}.")
    if result.interrupted:
        resume = (
            f"`sleuth matrix resume {shlex.quote(result.run_dir)}`"
            if result.run_dir
            else "`sleuth matrix resume`"
        )
        lines.append(f"- **Interrupted**: the numbers cover the trials that finished; {resume} goes on.")
    for c in result.cells:
        lines.extend(_cell_notes(c))
    rerun = rerun_command(result)
    if rerun:
        lines += ["", f"Rerun: `{rerun}`"]
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
    out.extend(f"- **{c.name}**: {w}." for w in c.warnings)
    if c.stopped_at_alpha is not None:
        out.append(
            f"- **{c.name}**: stopped early at a look with alpha {c.stopped_at_alpha:g}, "
            f"after {c.stats.n_total} of {c.trials_planned} trials."
        )
    sigs = ", ".join(f"{n} x `{sig}`" for sig, n in c.stats.signature_counts.items())
    if sigs:
        out.append(f"- **{c.name}** failure signatures: {sigs}.")
    return out
