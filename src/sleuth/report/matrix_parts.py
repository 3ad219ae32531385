"""The tables, logs and notes of the ``sleuth matrix`` page (:mod:`sleuth.report.matrix`): the cells
with their rates, verdicts and step times, the environments' own effects, ``matrix.md``'s notes, and
the first failing log of each cell's top signature.

Each takes the cells as :mod:`sleuth.report.matrix_cells` gives them (``matrix.json``'s, or counted
from the journal); wording follows ``matrix.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sleuth.report.common import MAX_ROWS, fmt_num
from sleuth.report.matrix_cells import (
    Cell,
    classification,
    counts,
    items,
    num,
    p_text,
    ranked,
    rate_text,
    ratio_text,
)
from sleuth.report.page import Block, Note, Table
from sleuth.report.source import RunDirView

__all__ = ["LOGGED_CELLS", "LOG_BYTES", "cell_table", "env_table", "log_blocks", "note_lines"]

#: cells whose first failing trial's logs the page shows (baselines, decided cells, then failing ones first)
LOGGED_CELLS = 12
#: the end of each log shown
LOG_BYTES = 4096


def cell_table(cells: Sequence[Cell], decided: bool) -> Table:
    """The cells (the first :data:`~sleuth.report.common.MAX_ROWS` by rank), decided or counted so far."""
    rows = []
    for c in ranked(cells, MAX_ROWS):
        n = counts(c)
        verdict = (
            classification(c) + (" (unreliable)" if c.get("unreliable") else "") if decided else "not decided"
        )
        if isinstance(c.get("trials_needed"), int):
            verdict += f" (~{c['trials_needed']} trials)"
        fails = str(n.get("fail", 0)) + (f" ({n['other_fail']} other)" if n.get("other_fail") else "")
        where = "+".join(map(str, items(c.get("mitigations")))) + (
            f" @ {c['environment']}" if c.get("environment") else ""
        )
        errors = str(n.get("error", 0) + n.get("skip", 0))
        step = fmt_num(c.get("step_time_median"))
        rows.append(
            (
                str(c.get("name")),
                where,
                str(n.get("total", 0)),
                fails,
                errors,
                rate_text(c),
                verdict,
                p_text(c),
                step,
                ratio_text(c),
                str(c.get("confound") or ""),
            )
        )
    return Table(
        (
            "cell",
            "mitigations @ env",
            "n",
            "failures",
            "errors",
            "failure rate [95% CI]",
            "vs baseline",
            "Fisher p (Holm)",
            "step time (median)",
            "step x baseline [95% CI]",
            "confound",
        ),
        tuple(rows),
        numeric=frozenset({2, 3, 4, 8}),
        cut=(len(rows), len(cells)) if len(rows) < len(cells) else None,
        caption="Failure rate = target failures / (pass + fail), errors left out; p in brackets is Holm-"
        "adjusted over the matrix's comparisons (significant below alpha). Every number is in matrix.json."
        if decided
        else "Counted from the journal's trial events as the matrix counts them; it decides when it ends.",
    )


def env_table(effects: Sequence[Cell], ref: str) -> Table:
    """Each environment's baseline against the reference environment ``ref``."""
    rows = tuple(
        (
            str(e.get("environment")),
            str(e.get("baseline_cell")),
            rate_text(e),
            classification(e),
            p_text(e),
            ratio_text(e),
            str(e.get("confound") or ""),
        )
        for e in effects[:MAX_ROWS]
    )
    return Table(
        (
            "environment",
            "baseline cell",
            "failure rate [95% CI]",
            f"vs {ref}",
            "Fisher p (Holm)",
            f"step x {ref} [95% CI]",
            "confound",
        ),
        rows,
        cut=(len(rows), len(effects)) if len(rows) < len(effects) else None,
        caption=f"Each environment's baseline against {ref}: the environment's own effect (same family).",
    )


def log_blocks(view: RunDirView, cells: Sequence[Cell]) -> list[Block]:
    """The first failing trial's logs of each failing cell's top signature (:data:`LOGGED_CELLS` cells)."""
    failing = [c for c in cells if isinstance(c.get("signatures"), dict) and c["signatures"]]
    blocks: list[Block] = []
    for c in ranked(failing, LOGGED_CELLS):
        sig, count = next(iter(c["signatures"].items()))  # the most common first
        first = next(
            (
                t
                for t in items(c.get("trials"))
                if isinstance(t, dict)
                and t.get("outcome") == "fail"
                and (t.get("signature") or "(no signature)") == sig
                and isinstance(t.get("path"), str)
            ),
            None,
        )
        if first is None:
            continue
        logs = [log for s in ("stderr", "stdout") if (log := view.tail(f"{first['path']}/{s}", LOG_BYTES))]
        blocks.append(Note(f"{c.get('name')}: trial {first.get('index')}, the first of {count} with: {sig}"))
        blocks.extend(logs or [Note("(its logs are empty or gone)")])
    if len(failing) > LOGGED_CELLS:
        blocks.append(
            Note(f"The logs of {LOGGED_CELLS} of {len(failing)} failing cells; all are under cells/.")
        )
    return blocks


def _cell_notes(c: Cell) -> list[str]:
    """matrix.md's notes on one cell, from matrix.json."""
    out = [f"{c['note']}."] if c.get("note") else []
    if c.get("confound") and classification(c) == "fixed":
        out.append(
            f"the fix comes with a {c['confound']}; the slowdown itself may be what helps "
            "(try a cell that only slows the workload down)."
        )
    out += [f"{w}." for w in items(c.get("warnings"))]
    if num(c.get("stopped_early_at_alpha")) is not None:
        out.append(
            f"stopped early at a look with alpha {c['stopped_early_at_alpha']:g}, "
            f"after {counts(c).get('total', 0)} of {c.get('trials_planned', '?')} trials."
        )
    sigs = c.get("signatures") if isinstance(c.get("signatures"), dict) else {}
    if sigs:
        out.append("failure signatures: " + ", ".join(f"{k} x {s}" for s, k in sigs.items()) + ".")
    return out


def note_lines(doc: Mapping[str, Any], cells: Sequence[Cell]) -> list[str]:
    """matrix.md's notes; one note said of many cells is written once, naming them."""
    out = [f"Warning: {w}" for w in items(doc.get("warnings"))]
    said: dict[str, list[str]] = {}
    for c in cells:
        for note in _cell_notes(c):
            said.setdefault(note, []).append(str(c.get("name")))
    for note, names in said.items():
        more = f" and {len(names) - 5} more cells" if len(names) > 5 else ""
        out.append(f"{', '.join(names[:5])}{more}: {note}")
    multiplicity = doc.get("multiplicity")
    if isinstance(multiplicity, dict) and multiplicity.get("family"):
        out.append(
            f"p (Holm): Holm over the {multiplicity['family']} comparison(s) of this matrix; any false "
            f"fixed/worse at most {multiplicity.get('alpha')}."
        )
    if doc.get("sequential_rule"):
        out.append(f"Early stopping (--until-decided): {doc['sequential_rule']}.")
    return out
