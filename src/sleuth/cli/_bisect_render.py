"""What ``sleuth bisect`` prints on the console: one line per test while it runs, and the answer.

The answer's wording is the verb's own; ``report.md`` (:mod:`sleuth.bisect.report_md`) and the
``sleuth report`` page (:mod:`sleuth.report.bisect`) follow it.
"""

from __future__ import annotations

from typing import Any

from sleuth.cli._common import OUTCOME_STYLE, console, err_console, escape, print_json

__all__ = ["finished", "render", "render_answer", "test_line"]


def finished(summary: dict[str, Any], as_json: bool) -> int:
    """A finished run resumed: its answer again, nothing run or written (not even a journal event)."""
    from sleuth.bisect.report import exit_code

    if as_json:
        print_json(summary)
    else:
        where = escape(str(summary.get("run_dir", "")))
        err_console().print(f"[bold]sleuth bisect[/]: {where} is finished; nothing to resume", soft_wrap=True)
        render(summary)
    code = int(exit_code(str(summary.get("status", ""))))
    if isinstance(summary.get("commits"), dict):  # bisect images --source: both stages count
        code = max(code, int(exit_code(str(summary["commits"].get("status")))))
    return code


def test_line(ev: Any, note: str, metric: str | None, width: int | None, *, label: str) -> str:
    """One line per test: whole in a log (greppable), fitted to ``width`` on a terminal; ``label`` is
    the candidate's, its secrets hidden."""
    note = " ".join(note.split())  # a multi-line reason stays on the test's line
    if ev.value is not None:
        note = f"{metric or 'value'}={ev.value:g}" + (f"; {note}" if note else "")
    if width is not None:  # a terminal: labels up to 48 columns, the note takes what is left
        label = label if len(label) <= 48 else label[:47] + "…"
        room = max(20, width - 4 - 1 - 16 - 1 - max(len(label), 24) - 1 - 6 - 2 - 11 * ev.replayed)
        note = note if len(note) <= room else note[: room - 1] + "…"
    counted = "" if ev.counted is ev.outcome else f" (counted {ev.counted.value})"
    if ev.replayed:  # a resume's history, shown before the tests it runs
        counted += " [dim](replayed)[/]"
    outcome = f"[{OUTCOME_STYLE[ev.outcome]}]{ev.outcome.name}[/]"
    if metric is not None and ev.value is not None and ev.outcome.name == "PASS":
        outcome = "[cyan]SAMPLE[/]"  # performance mode: the metric, not the exit code, decides
    tail = f" [dim]{escape(note)}[/]" if note else ""  # no trailing blank after a bare outcome
    return f"{ev.seq:>4} {ev.phase:<16} {escape(label):<24} {outcome}{counted}{tail}"


def render(s: dict[str, Any]) -> None:
    render_answer(s)
    if "commits" in s or "builds" in s:  # the commits stage of images --source, or image-commits
        from sleuth.cli._chain_view import render_commits

        render_commits(console(), s.get("commits") or s, stage="commits" in s)


def render_answer(s: dict[str, Any]) -> None:
    con = console()
    fix = bool(s.get("find_fix"))
    first, last = ("first fixed", "last failing") if fix else ("first bad", "last good")
    if s["status"] == "found":
        con.print(f"[bold green]{first}[/] {escape(s['first_bad']['label'])}  "
                  f"({last} {escape(s['last_good']['label'])})", soft_wrap=True)  # fmt: skip
        if s["first_bad"].get("title"):
            con.print(f"  {escape(s['first_bad']['title'])}", soft_wrap=True, highlight=False)
        if s.get("culprit_repo"):  # several repositories: a SHA alone does not say which one
            refs = ", ".join(f"{k}={v[:12]}" for k, v in (s.get("components") or {}).items())
            where = f"  in repository {s['culprit_repo']}; the first bad combination: {refs}"
            con.print(escape(where), soft_wrap=True, highlight=False)
        between = s.get("commits_between") or []
        if len(between) > 1:
            con.print(f"  {len(between)} commits between them (see the report)", soft_wrap=True)
        if s.get("release_notes"):
            con.print(
                f"  what it changed: {escape(' '.join(s['release_notes']))}", soft_wrap=True, highlight=False
            )
        changed = s.get("packages_changed") or []
        if changed:  # the answer's venvs differ in more than the package bisected
            shown = ", ".join(
                f"{c['name']} {c['last_good'] or '-'} -> {c['first_bad'] or '-'}" for c in changed[:3]
            )
            more = f" and {len(changed) - 3} more (see the report)" if len(changed) > 3 else ""
            con.print(f"  also changed between them: {escape(shown)}{more}", soft_wrap=True, highlight=False)
    elif s["suspects"]:
        from sleuth.bisect.report_md import name_suspects

        one_of = escape(name_suspects(s["suspects"]))
        if s["status"] == "inconclusive":  # below --confidence: a guess, not an answer
            guess = one_of if len(s["suspects"]) == 1 else f"one of {one_of}"
            con.print(f"[bold yellow]inconclusive[/]: not settled; the best guess for the {first}: {guess}",
                      soft_wrap=True)  # fmt: skip
        else:
            con.print(f"[bold yellow]{s['status']}[/]: the {first} is one of: {one_of}", soft_wrap=True)
    else:
        con.print(f"[bold yellow]{s['status']}[/]")
    if s["note"]:
        con.print(f"note: {escape(s['note'])}", soft_wrap=True)
    conf = "no answer, so no confidence" if s["confidence"] is None else f"confidence {s['confidence']:.3f}"
    con.print(f"{s['tests']} tests over {s['candidates']} candidates, {conf}; "
              f"report: {escape(s['run_dir'])}/report.md", soft_wrap=True)  # fmt: skip
    if s.get("resumed"):
        got = s["resumed"]
        again = f", {got['retried']} run again in place of an ERROR" if got["retried"] else ""
        con.print(f"resumed: {got['replayed']} test(s) replayed from the journal{again}", soft_wrap=True)
