"""The page of a ``sleuth matrix`` run dir: which cell fixes the failure and how sure that is, each
cell's failure rate with its interval and its step times against its baseline, the cells, the
environments' own effects, the first failing log of each cell, and the command that runs it again.

A finished (or Ctrl-C'd) matrix is read from ``matrix.json``, its answer worded as ``matrix.md``
words it (nothing recomputed).  A matrix killed before it wrote one, or still running (a ``resume``
after the last ``end``: the ``matrix.json`` there is stale), is read from the journal
(:mod:`sleuth.report.matrix_cells`); it decides nothing yet.  So is one whose ``matrix.json`` is
unreadable (cut short, not JSON): the headline says so.

This module words the headline and the facts and lays out the page; the tables, notes and logs are
:mod:`sleuth.report.matrix_parts`'s.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from sleuth.report.common import MAX_ROWS, fmt_time
from sleuth.report.matrix_cells import (
    Cell,
    classification,
    counts,
    is_baseline,
    items,
    journal_doc,
    num,
    p_text,
    rate_text,
)
from sleuth.report.matrix_figures import rate_figure, step_figure
from sleuth.report.matrix_parts import cell_table, env_table, log_blocks, note_lines
from sleuth.report.page import Note, Page, Section, Status
from sleuth.report.source import RunDirView

__all__ = ["page"]


def _fix_text(c: Cell, by_name: Mapping[str, Cell]) -> str:
    base = by_name.get(str(c.get("baseline_cell")), {})
    p, adj = num(c.get("p_value")), num(c.get("p_adjusted"))
    text = (
        f"{c['name']} fixes it: failure rate {rate_text(c)} against {rate_text(base)} in "
        f"{c.get('baseline_cell')}, Fisher p {'-' if p is None else f'{p:.3g}'}"
        + ("" if adj is None else f" (Holm-adjusted {adj:.3g})")
    )
    if c.get("confound"):
        text += f"; but the fix comes with a {c['confound']}: the slowdown itself may be what helps"
    return text


def _headline(doc: Mapping[str, Any], cells: Sequence[Cell]) -> tuple[str, Status]:
    """The matrix's answer from matrix.json's decisions."""
    by_name = {str(c.get("name")): c for c in cells}
    base = by_name.get(str(doc.get("baseline")), {})
    n = counts(base)
    if doc.get("exit_code") == 4:
        why = base.get("note") or "no trial passed or failed"
        return f"The baseline {doc.get('baseline')} could not run: {why}", Status.BAD
    compared = [c for c in cells if not is_baseline(c)]
    effects = [e for e in items(doc.get("environment_effects")) if isinstance(e, dict)]
    # clean fixes first, the most significant first
    fixed = sorted(
        (c for c in compared if classification(c) == "fixed"),
        key=lambda c: (bool(c.get("confound")), num(c.get("p_adjusted")) or 0.0),
    )
    worse = [c for c in compared if classification(c) == "worse"]
    parts = [_fix_text(c, by_name) for c in fixed[:3]]
    if len(fixed) > 3:
        parts.append(f"{len(fixed) - 3} more cell(s) fixed")
    parts += [f"{c['name']} makes it worse: {rate_text(c)}, Fisher p (Holm) {p_text(c)}" for c in worse[:3]]
    parts += [
        f"environment {e.get('environment')} is {classification(e)} against {e.get('reference')}: "
        f"{rate_text(e)}, Fisher p (Holm) {p_text(e)}"
        for e in effects
        if classification(e) in ("fixed", "worse")
    ]
    if parts:
        if any(not c.get("confound") for c in fixed):
            return "; ".join(parts), Status.GOOD
        return "; ".join(parts), Status.BAD if worse and not fixed else Status.UNSURE
    if n.get("total") and not n.get("fail"):
        return (
            f"The baseline {base.get('name')} did not fail in {n['total']} trial(s): nothing to fix",
            Status.UNSURE,
        )
    judged = compared + effects
    if judged and all(classification(c) == "no_effect" for c in judged):
        return (
            f"No cell changes the failure rate ({len(judged)} no_effect; baseline {rate_text(base)})",
            Status.BAD,
        )
    needed = [c["trials_needed"] for c in judged if isinstance(c.get("trials_needed"), int)]
    more = f"; about {max(needed)} trials per cell would settle it" if needed else ""
    return (
        f"Inconclusive: no cell differs significantly from its baseline "
        f"(baseline {base.get('name')} {rate_text(base)}){more}"
    ), Status.UNSURE


def _facts(
    view: RunDirView, doc: Mapping[str, Any], cells: Sequence[Cell], decided: bool
) -> list[tuple[str, str]]:
    plugin = doc.get("workload_plugin")
    command = shlex.join(map(str, items(doc.get("command"))))
    reason = f" ({doc['baseline_reason']})" if doc.get("baseline_reason") else ""
    done = sum(counts(c).get("total", 0) for c in cells)
    facts = [
        ("workload", f"plugin {plugin.get('ref')}" if isinstance(plugin, dict) else command or "?"),
        ("baseline", str(doc.get("baseline") or "?") + reason),
        ("trials", f"{done} in {len(cells)} cell(s), {view.start.get('jobs', 1)} at a time"),
        ("started", fmt_time(view.start.get("t"))),
        ("seed", str(view.start.get("seed", "?"))),
        ("step time from", str(doc.get("step_time_source") or "?")),
    ]
    if decided:
        facts.append(
            ("target", str(doc.get("target_signature") or "any failure (the baseline did not fail)"))
        )
    return facts


def page(view: RunDirView) -> Page:
    """The report of a ``sleuth matrix`` run dir."""
    ends = [e for e in view.events if e.get("event") in ("end", "resume")]
    ended = bool(ends) and ends[-1].get("event") == "end"
    found = view.json("matrix.json") if ended else None  # a resume going on: stale
    broken = view.unreadable("matrix.json") if ended and found is None else None
    decided = isinstance(found, dict) and isinstance(found.get("cells"), list)
    doc: Mapping[str, Any] = found if isinstance(found, dict) and decided else journal_doc(view)
    cells: list[Cell] = [c for c in doc["cells"] if isinstance(c, dict) and "name" in c]
    resume = f"sleuth matrix resume {shlex.quote(str(view.path))}"
    if not decided:
        done, fails = (sum(counts(c).get(k, 0) for c in cells) for k in ("total", "fail"))
        counted = f"{done} trial(s) in {len(cells)} cell(s), {fails} failed"
        if broken:  # it ended, but its summary is cut short or not JSON: the journal has the trials
            again = "goes on" if ends[-1].get("interrupted") else "reports it again from the journal"
            headline = (
                f"The matrix ended but {broken}: {counted}, counted from the journal; no cell is "
                f"decided here ({resume} {again})"
            )
        else:
            headline = (
                f"Not finished (interrupted or still running): {counted}; no cell is decided before "
                f"the matrix ends ({resume} goes on)"
            )
        status = Status.UNSURE
    else:
        headline, status = _headline(doc, cells)
        if doc.get("interrupted"):
            headline = (
                f"Interrupted (the numbers cover the trials that finished; {resume} goes on): {headline}"
            )
            status = Status.UNSURE
    ref = str(doc.get("baseline") or "")
    sections: list[Section] = []
    source = str(doc.get("step_time_source") or "wall_s")
    drawn = [f for f in (rate_figure(cells, ref), step_figure(cells, source, ref)) if f is not None]
    if drawn:
        sections.append(Section("Failure rate and step time by cell", tuple(drawn)))
    table = cell_table(cells, decided) if cells else Note("No trial was journaled yet.")
    sections.append(Section("Cells", (table,)))
    effects = [e for e in items(doc.get("environment_effects")) if isinstance(e, dict)]
    if effects:
        sections.append(Section("Environments", (env_table(effects, ref),)))
    notes = note_lines(doc, cells)
    if len(notes) > MAX_ROWS:
        notes = [*notes[:MAX_ROWS], f"{MAX_ROWS} of {len(notes)} notes shown; matrix.md has them all."]
    if notes:
        sections.append(Section("Notes", tuple(Note(n) for n in notes)))
    logs = log_blocks(view, cells)
    if logs:
        sections.append(Section("First failing log of each cell's top signature", tuple(logs)))
    recipe = shlex.quote(str(view.path / "recipe.resolved.yaml"))
    return Page(
        verb="matrix",
        title=f"sleuth matrix: {doc.get('workload') or view.path.parent.name}"
        + (f" ({doc['ticket']})" if doc.get("ticket") else ""),
        headline=headline,
        status=status,
        run_dir=str(view.path),
        facts=tuple(_facts(view, doc, cells, decided)),
        sections=tuple(sections),
        command=str(doc.get("rerun") or f"sleuth matrix --recipe {recipe}"),
    )
