"""How ``sleuth matrix`` looks in a terminal or a log: the result tables and notes, and the dry run.

Tables go through :mod:`sleuth.cli._layout` (names never broken; folded on narrow terminals; one
line per row in a pipe).  Note lines are printed whole (``soft_wrap``): a terminal folds them, a
log keeps them on one line.  Nothing here is markup: names are printed as they are.
"""

from __future__ import annotations

import shlex
from typing import Any

from sleuth.cli._common import console
from sleuth.cli._layout import Cell, Column, render

__all__ = ["render_plan", "render_result", "say"]

_STYLE = {
    "baseline": "bold",
    "fixed": "bold green",
    "worse": "bold red",
    "no_effect": "dim",
    "inconclusive": "yellow",
    "error": "magenta",
}


def _rate(c: dict[str, Any]) -> str:
    if c["failure_rate"] is None:
        return "-"
    lo, hi = c["failure_rate_ci"]
    return f"{100 * c['failure_rate']:.0f}% [{100 * lo:.0f}-{100 * hi:.0f}]"


def _ratio(c: dict[str, Any]) -> str:
    text = "-" if c["step_time_ratio"] is None else f"{c['step_time_ratio']:.2f}"
    if c["step_time_ratio_ci"]:
        text += f" [{c['step_time_ratio_ci'][0]:.2f}-{c['step_time_ratio_ci'][1]:.2f}]"
    return text


def _verdict(c: dict[str, Any]) -> Cell:
    text = c["classification"] + (" (unreliable)" if c.get("unreliable") else "")
    if c["trials_needed"]:
        text += f" (~{c['trials_needed']} trials)"
    return Cell(text, _STYLE.get(c["classification"], ""))


def _p(c: dict[str, Any]) -> str:
    """Raw p and, in brackets, Holm-adjusted (the one compared with alpha)."""
    if c["p_value"] is None:
        return "-"
    adj = c.get("p_adjusted")
    return f"{c['p_value']:.2g}" + ("" if adj is None else f" ({adj:.2g})")


_MAIN = [
    Column("cell"),
    Column("mitigations @ env"),
    Column("pass/fail/err", "p/f/e", right=True),
    Column("failure rate [95% CI]", "fail% [CI]"),
    Column("vs baseline", "vs base"),
    Column("p (adj)"),
    Column("step x baseline [95% CI]", "step x [CI]"),
    Column("confound"),
]
#: narrow terminals: names on one line, the numbers below (in one line, then in two)
_MAIN_FOLDS = [[[0, 1], [2, 3, 4, 5, 6, 7]], [[0, 1], [2, 3, 4, 5], [6, 7]]]


def render_result(doc: dict[str, Any]) -> None:
    """The result tables (cells; environments when there are several) and the notes."""
    con = console()
    several = len(doc.get("environment_baselines") or {}) > 1
    title = f"matrix: {doc['workload']}  (baseline {doc['baseline']}"
    title += ", each cell against its environment's baseline)" if several else ")"
    rows = []
    for c in doc["cells"]:
        n = c["counts"]
        rows.append(
            [
                Cell(c["name"], "bold" if c.get("role", "cell") != "cell" else ""),
                Cell(f"{'+'.join(c['mitigations'])} @ {c['environment']}"),
                Cell(f"{n['pass']}/{n['fail']}/{n['error'] + n['skip']}"),
                Cell(_rate(c)),
                _verdict(c),
                Cell(_p(c)),
                Cell(_ratio(c)),
                Cell(c["confound"] or "", "bold yellow"),
            ]
        )
    render(con, _MAIN, rows, layouts=_MAIN_FOLDS, title=title)
    effects = doc.get("environment_effects") or []
    if effects:
        ref = doc["reference_environment"]
        con.print(
            f"environments: each environment's baseline against {doc['baseline']} @ {ref}",
            markup=False,
            soft_wrap=True,
        )
        cols = [
            Column("environment"),
            Column("baseline cell", "baseline"),
            Column("failure rate [95% CI]", "fail% [CI]"),
            Column(f"vs {ref}", "vs ref"),
            Column("p (adj)"),
            Column(f"step x {ref} [95% CI]", "step x [CI]"),
            Column("confound"),
        ]
        rows = [
            [
                Cell(e["environment"]),
                Cell(e["baseline_cell"]),
                Cell(_rate(e)),
                _verdict(e),
                Cell(_p(e)),
                Cell(_ratio(e)),
                Cell(e["confound"] or "", "bold yellow"),
            ]
            for e in effects
        ]
        render(con, cols, rows, layouts=[[[0, 1], [2, 3, 4, 5, 6]], [[0, 1], [2, 3, 4], [5, 6]]])
    _notes(con, doc)


def say(con: Any, text: str, style: str | None = None) -> None:
    """A note line: never wrapped by us (a terminal folds it; a log keeps it whole), never markup."""
    con.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def _notes(con: Any, doc: dict[str, Any]) -> None:
    for name in doc.get("added_cells") or []:
        say(con, f"  {name}: added by sleuth, the baseline of its environment (each needs its own)")
    for w in doc.get("warnings") or []:
        say(con, f"  warning: {w}", "yellow")
    for c in doc["cells"]:
        if c["note"]:
            say(con, f"  {c['name']}: {c['note']}")
        for w in c.get("warnings") or []:
            say(con, f"  {c['name']}: {w}")
        if c.get("stopped_early_at_alpha") is not None and c["counts"]["total"] < c["trials_planned"]:
            late = (
                f"; {c['after_stop']} trial(s) already running were left out" if c.get("after_stop") else ""
            )
            say(
                con,
                f"  {c['name']}: stopped early at a look with alpha {c['stopped_early_at_alpha']:g}"
                f" after {c['counts']['total']} of {c['trials_planned']} trials{late}",
            )
    for e in doc.get("environment_effects") or []:
        if e["note"]:
            say(con, f"  environment {e['environment']}: {e['note']}")
    m = doc.get("multiplicity") or {}
    if m.get("family", 0) > 1:
        say(
            con,
            f"  p (adj): Holm over the {m['family']} comparisons of this matrix; "
            f"any false fixed/worse at most {m['alpha']:g}",
        )
    if doc.get("sequential_rule"):
        say(con, f"  early stopping: {doc['sequential_rule']}")
    # None: the reference baseline never failed, so every failure counts (as matrix.md says)
    target = doc["target_signature"] or "any failure (the baseline did not fail)"
    say(con, f"  target signature: {target};  step time from {doc['step_time_source']}")
    if doc.get("interrupted"):
        say(
            con,
            f"  interrupted: `sleuth matrix resume {shlex.quote(str(doc['run_dir']))}` "
            "runs the missing trials",
            "bold yellow",
        )
    say(con, f"  run dir: {doc['run_dir']}")
    if doc.get("rerun") and not doc.get("interrupted"):
        say(con, f"  rerun: {doc['rerun']}")


def render_plan(doc: dict[str, Any]) -> None:
    """What a dry run prints: the command, the baselines, one row per cell, what would be added."""
    con = console()
    plugin = doc.get("workload_plugin")
    what = f"plugin {plugin['ref']} ({plugin['origin']})" if plugin else shlex.join(doc["command"])
    say(
        con,
        f"dry run: {doc['trials_total']} trials of {what} in {doc['cwd']}; "
        f"baseline {doc['baseline']} ({doc['baseline_reason']})",
    )
    for w in doc.get("warnings") or []:
        say(con, f"warning: {w}", "yellow")
    if len(doc["environment_baselines"]) > 1:
        pairs = ", ".join(f"{k}: {v}" for k, v in doc["environment_baselines"].items())
        say(con, f"each cell is compared with the baseline of its environment ({pairs})")
    cols = [
        Column("cell"),
        Column("mitigations"),
        Column("environment", "env"),
        Column("trials", right=True),
        Column("steps", right=True),
        Column("variables", "vars"),
    ]
    rows = [
        [
            Cell(c["name"], "bold" if c["role"] != "cell" else ""),
            Cell("+".join(c["mitigations"])),
            Cell(c["environment"]),
            Cell(str(c["trials"])),
            Cell("-" if c.get("steps") is None else str(c["steps"])),
            Cell(" ".join(f"{k}={v}" for k, v in c["env"].items())),
        ]
        for c in doc["cells"]
    ]
    render(con, cols, rows, layouts=[[[0, 1, 2, 3, 4], [5]]])
    for name in doc["added_cells"]:
        say(con, f"  {name}: would be added by sleuth, the baseline of its environment (each needs its own)")
    say(con, f"would write under {doc['run_dir_parent']}/ (nothing written)")
