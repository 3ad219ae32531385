"""``matrix.md``: a :class:`MatrixResult` for people: the cells table, the environments table, the
notes that explain them, and the command that runs the matrix again.

Like every document rendered from a plan, it goes through the plan's ``Secrets.scrub``; the
numbers are those of ``matrix.json`` (:mod:`sleuth.matrix.output`).
"""

from __future__ import annotations

import shlex

from sleuth.matrix.classify import Classification, Decision
from sleuth.matrix.output import rerun_command
from sleuth.matrix.plan import MatrixPlan
from sleuth.matrix.result import CellResult, EnvironmentEffect, MatrixResult, step_source

__all__ = ["command_text", "to_markdown"]


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
