"""CI output of the gate verbs: markdown summaries (GitHub's job summary) and JUnit XML.

Pure functions from results to text; the CLI decides where the text goes.  Every text a gate
verb shows (these files, its tables, its ``--json``, its HTML pages) goes through
:func:`sleuth.gate.model.clean` or :func:`~sleuth.gate.model.clean_doc`: the redaction rule of
:mod:`sleuth.secrets` and the values of this shell's secret variables.  The history keeps a run id
or a suite as it was given (it is the run's key); what is shown of it hides a token there
(``--run-id ghp_...``).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sleuth.gate.baseline import BaselineRow
from sleuth.gate.changepoint import ChangePoint
from sleuth.gate.checks import CheckReport
from sleuth.gate.graduate import GraduationResult
from sleuth.gate.model import Graduation, Verdict, clean
from sleuth.secrets import env_secret_values

__all__ = [
    "TABLE_ROWS",
    "Case",
    "Shown",
    "baseline_markdown",
    "change_text",
    "changepoints_markdown",
    "check_cases",
    "check_counts",
    "check_markdown",
    "graduation_cases",
    "graduation_markdown",
    "junit_xml",
    "shown_rows",
]

T = TypeVar("T")

#: rows a table shows before it keeps only the rows that need a look: nobody reads 10,000 rows on a
#: terminal (rich spent 6 s laying them out), and GitHub drops a step summary over 1 MiB whole
TABLE_ROWS = 200
#: how much a label needs a look, for choosing the rows shown (0: fine; higher first)
_SEVERITY = {"FAIL": 3, "OVER": 3, "moved": 3, "INCONCLUSIVE": 2, "gone": 2, "INSUFFICIENT": 1, "new": 1}

_ICON = {
    "PASS": "✅",
    "OK": "✅",
    "FAIL": "❌",
    "OVER": "❌",
    "INCONCLUSIVE": "❔",
    "INSUFFICIENT": "⏳",
}


def _cell(text: Any) -> str:
    """A markdown table cell: secrets hidden, pipes escaped, newlines flattened."""
    return clean(str(text).replace("\n", " ")).replace("|", "\\|")


@dataclass(frozen=True, slots=True)
class Shown:
    """The rows a table shows and how many of each label it leaves out."""

    rows: tuple[Any, ...]
    hidden: tuple[tuple[str, int], ...] = ()

    def note(self) -> str:
        """The line under a cut table ("" when nothing was left out)."""
        if not self.hidden:
            return ""
        total = sum(n for _, n in self.hidden)
        parts = ", ".join(f"{n:,} {label}" for label, n in self.hidden)
        return f"{total:,} metric(s) not shown ({parts}); --json lists every one"


def shown_rows(rows: Sequence[T], label: Callable[[T], str], limit: int = TABLE_ROWS) -> Shown:
    """At most ``limit`` of ``rows`` for a table, in their order: all of them when they fit, else the
    ones that most need a look (FAIL before INCONCLUSIVE before INSUFFICIENT; PASS rows last)."""
    if len(rows) <= limit:
        return Shown(tuple(rows))
    ranked = sorted(range(len(rows)), key=lambda i: -_SEVERITY.get(label(rows[i]), 0))
    keep = sorted(i for i in ranked[:limit] if _SEVERITY.get(label(rows[i]), 0) > 0)
    kept = set(keep)
    hidden = Counter(label(r) for i, r in enumerate(rows) if i not in kept)
    order = sorted(hidden, key=lambda k: (-_SEVERITY.get(k, 0), k))
    return Shown(tuple(rows[i] for i in keep), tuple((k, hidden[k]) for k in order))


def _cut(lines: list[str], shown: Shown) -> str:
    """A markdown table's lines, with the note of what was left out."""
    if shown.hidden:
        lines += ["", f"_{shown.note()}_"]
    return "\n".join(lines) + "\n"


def change_text(before: float | None, after: float | None) -> str:
    """The relative change ``after / before - 1`` as a signed percentage, for a table: ``-`` when
    undefined (a side missing, ``before`` zero), and ``n/a (outside float range)`` when the ratio
    overflows (``1e300`` after ``1e-300``): ``+inf%`` read as a measured change.  The --json
    documents carry ``null`` there."""
    if before is None or after is None or before == 0:
        return "-"
    change = after / before - 1.0
    return f"{change:+.2%}" if math.isfinite(change) else "n/a (outside float range)"


def _pct(x: float | None) -> str:
    if x is None or math.isnan(x):
        return "-"
    return "unbounded" if math.isinf(x) else f"{x:.3%}"


def graduation_markdown(suite: str, results: Sequence[GraduationResult], *, mode: str, last: int) -> str:
    """The graduation table for a job summary."""
    lines = [f"### sleuth gate graduate: `{_cell(suite)}` ({mode} mode, last {last} runs)", ""]
    if not results:
        lines.append(f"{_ICON['INSUFFICIENT']} **INSUFFICIENT**: no runs recorded for this suite yet.")
        return "\n".join(lines) + "\n"
    lines += [
        "| metric | verdict | runs | CV | upper bound | target | runs needed | why |",
        "|---|---|---|---|---|---|---|---|",
    ]
    shown = shown_rows(results, lambda r: r.verdict.value)
    for r in shown.rows:
        needed = "-" if r.verdict is Graduation.OK else ("?" if r.needed is None else str(r.needed))
        lines.append(
            f"| `{_cell(r.metric)}` | {_ICON[r.verdict.value]} {r.verdict.value} | {r.runs} | {_pct(r.cv)} "
            f"| {_pct(r.upper)} | {_pct(r.target)} | {needed} | {_cell(r.reason)} |"
        )
    return _cut(lines, shown)


def check_counts(report: CheckReport) -> str:
    """The check's verdicts counted, as its summaries head them: ``1 FAIL, 2 PASS``."""
    counts = report.to_dict()["counts"]
    return ", ".join(f"{v} {k}" for k, v in counts.items() if v)


def check_markdown(report: CheckReport) -> str:
    """The check table for a job summary: one row per metric, the findings in the last column."""
    head = check_counts(report)
    lines = [f"### sleuth gate check: `{_cell(report.suite)}` ({report.runs} runs)", ""]
    if not report.results:
        lines.append(f"{_ICON['INSUFFICIENT']} **INSUFFICIENT**: no recorded runs match the policy yet.")
        return "\n".join(lines) + "\n"
    lines += [f"**{head}** (exit {report.exit_code()})", ""]
    lines += ["| metric | verdict | mode | runs | findings |", "|---|---|---|---|---|"]
    shown = shown_rows(report.results, lambda r: r.verdict.value)
    for r in shown.rows:
        found = "<br>".join(f"{f.check}: {f.verdict.value}: {_cell(f.summary)}" for f in r.findings)
        lines.append(
            f"| `{_cell(r.metric)}` | {_ICON[r.verdict.value]} {r.verdict.value} | {r.mode} | {r.runs} "
            f"| {found} |"
        )
    return _cut(lines, shown)


def changepoints_markdown(title: str, n: int, cps: Sequence[ChangePoint], labels: Sequence[str] = ()) -> str:
    """The change points of one series."""
    lines = [f"### sleuth gate changepoints: `{_cell(title)}` ({n} points)", ""]
    if not cps:
        lines.append("No change point.")
        return "\n".join(lines) + "\n"
    lines += ["| index | run | before | after | change | p-value |", "|---|---|---|---|---|---|"]
    for cp in cps:
        change = change_text(cp.before, cp.after)
        label = f"`{_cell(labels[cp.index])}`" if cp.index < len(labels) else "-"
        lines.append(f"| {cp.index} | {label} | {cp.before:g} | {cp.after:g} | {change} | {cp.p_value:.3g} |")
    return "\n".join(lines) + "\n"


def baseline_markdown(path: str, rows: Sequence[BaselineRow]) -> str:
    """What moved against a committed baseline file."""
    lines = [f"### sleuth gate baseline diff: `{_cell(path)}`", ""]
    lines += ["| metric | status | committed | now | change | tolerance |", "|---|---|---|---|---|---|"]
    shown = shown_rows(rows, lambda r: r.status)
    for r in shown.rows:
        old = "-" if r.old is None else f"{r.old:g}"
        new = "-" if r.new is None else f"{r.new:g}"
        ch = change_text(r.old, r.new)
        lines.append(f"| `{_cell(r.metric)}` | {r.status} | {old} | {new} | {ch} | {r.tolerance or '-'} |")
    return _cut(lines, shown)


@dataclass(frozen=True, slots=True)
class Case:
    """One JUnit test case: ``outcome`` is pass, failure or skipped."""

    classname: str
    name: str
    outcome: str
    message: str = ""
    text: str = ""


def graduation_cases(suite: str, results: Sequence[GraduationResult], *, mode: str) -> list[Case]:
    """OVER fails (hard mode) , INSUFFICIENT is skipped, OK passes."""
    out = []
    for r in results:
        if r.verdict is Graduation.OVER and mode == "hard":
            outcome = "failure"
        elif r.verdict is Graduation.OK:
            outcome = "pass"
        else:
            outcome = "skipped"
        out.append(Case(f"sleuth.gate.graduate.{suite}", r.metric, outcome, f"{r.verdict.value}: {r.reason}"))
    return out


def check_cases(report: CheckReport) -> list[Case]:
    """FAIL (hard) fails, INCONCLUSIVE/INSUFFICIENT are skipped, PASS passes."""
    out = []
    for r in report.results:
        text = "\n".join(f"{f.check}: {f.verdict.value}: {f.summary}" for f in r.findings)
        if r.verdict is Verdict.FAIL and r.mode == "hard":
            outcome = "failure"
        elif r.verdict is Verdict.PASS:
            outcome = "pass"
        else:
            outcome = "skipped"
        message = f"{r.verdict.value} ({r.mode}): {r.findings[0].summary if r.findings else ''}"
        out.append(Case(f"sleuth.gate.check.{report.suite}", r.metric, outcome, message, text))
    return out


def _lines(text: str, hidden: tuple[str, ...]) -> str:
    return "\n".join(clean(line, hidden) for line in text.split("\n"))


def junit_xml(suite_name: str, cases: Sequence[Case]) -> str:
    """A JUnit XML document (one ``testsuite``) that CI systems render as test results."""
    import xml.etree.ElementTree as ET

    failures = sum(c.outcome == "failure" for c in cases)
    skipped = sum(c.outcome == "skipped" for c in cases)
    hidden = env_secret_values(os.environ)  # once: a check of 10,000 metrics has 10,000 cases
    root = ET.Element("testsuites")
    suite = ET.SubElement(
        root,
        "testsuite",
        name=clean(suite_name, hidden),
        tests=str(len(cases)),
        failures=str(failures),
        skipped=str(skipped),
        errors="0",
    )
    for c in cases:
        # a control character is not allowed in XML 1.0 at all: the file would not parse
        name, message, text = clean(c.name, hidden), clean(c.message, hidden), _lines(c.text, hidden)
        tc = ET.SubElement(suite, "testcase", classname=clean(c.classname, hidden), name=name)
        if c.outcome == "failure":
            el = ET.SubElement(tc, "failure", message=message)
            el.text = text or message
        elif c.outcome == "skipped":
            ET.SubElement(tc, "skipped", message=message)
        if text and c.outcome != "failure":
            ET.SubElement(tc, "system-out").text = text
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
