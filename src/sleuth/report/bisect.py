"""The page of a ``sleuth bisect`` run dir: the answer with its confidence, the search drawn test by
test, the metric per candidate (performance mode), every test in order, the logs of the answer's two
candidates and the command that reproduces a test.

Built from ``summary.json`` (the ``--json`` document; the ``end`` event's copy when the file is
gone) and the journal's ``candidates``, ``test``, ``trial`` and ``resume`` events, so an interrupted
or running bisection has a page too: the range its outcomes narrowed so far (an interrupted one's
``summary.json``, status ``interrupted``, names its search's bracket and the command that resumes
it).  The wording is the verb's own (:func:`sleuth.cli._bisect_render.render_answer`,
:func:`sleuth.bisect.report_md.render_markdown`).  Here: the headline, the facts and the page's order;
the run dir is read by :mod:`~sleuth.report.bisect_source`, drawn by
:mod:`~sleuth.report.bisect_figures` and tabled by :mod:`~sleuth.report.bisect_parts`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from sleuth.bisect.report_md import name_suspects
from sleuth.report.bisect_figures import metric_figure, search_figure, short
from sleuth.report.bisect_parts import extras, log_blocks, perf_section, reproduce, test_table
from sleuth.report.bisect_source import journaled_tests, run_summary, with_run_secrets
from sleuth.report.common import fmt_num, fmt_time
from sleuth.report.page import Note, Page, Section, Status
from sleuth.report.source import RunDirView

__all__ = ["page"]


def _words(summary: Mapping[str, Any] | None, start: Mapping[str, Any]) -> tuple[str, str]:
    fix = (summary or {}).get("find_fix", start["flags"].get("find_fix"))
    return ("first fixed", "last failing") if fix else ("first bad", "last good")


def _headline(s: Mapping[str, Any], first: str, last: str) -> tuple[str, Status]:
    """The verb's own answer line, with its confidence."""
    conf = s.get("confidence")
    conf_text = (
        "no answer, so no confidence" if not isinstance(conf, int | float) else f"confidence {conf:.3f}"
    )
    status = str(s.get("status", "?"))
    suspects = [str(x) for x in s.get("suspects") or []]
    fb, lg = s.get("first_bad") or {}, s.get("last_good") or {}
    if status == "found" and fb.get("label") is not None:
        text = f"{first} {fb['label']} ({last} {lg.get('label', '?')}), {conf_text}"
        return text, Status.GOOD
    if status == "interrupted":  # no answer: the bracket so far, and the command that goes on
        so_far = f"; so far the {first} is one of: {name_suspects(suspects)}" if suspects else ""
        resume = f"; resume with: {s['resume']}" if s.get("resume") else ""
        return f"interrupted after {s.get('tests', '?')} test(s){so_far}{resume}", Status.UNSURE
    note = f"; {s['note']}" if s.get("note") else ""
    if suspects and status == "inconclusive":  # below --confidence: a guess, not an answer
        guess = name_suspects(suspects)
        guess = guess if len(suspects) == 1 else f"one of {guess}"
        return (
            f"inconclusive: not settled; the best guess for the {first}: {guess} ({conf_text}){note}",
            Status.UNSURE,
        )
    if suspects:
        return (
            f"{status}: the {first} is one of: {name_suspects(suspects)} ({conf_text}){note}",
            Status.UNSURE,
        )
    return (
        f"{status}{note or ' (' + conf_text + ')'}",
        Status.NEUTRAL if status == "not_found" else Status.UNSURE,
    )


def narrowed(tests: Sequence[Mapping[str, Any]], labels: Sequence[str], fix: bool) -> tuple[int, int] | None:
    """From single outcomes of the last stage: (last good side, first bad side) positions, the
    untested ends taken as given; None when outcomes contradict (a flaky test) or nothing is known."""
    if len(labels) < 2:
        return None
    good, bad = ("fail", "pass") if fix else ("pass", "fail")
    idx = [(int(t["index"]), t.get("counted")) for t in tests if isinstance(t.get("index"), int)]
    hi = min([i for i, c in idx if c == bad and 0 <= i < len(labels)], default=len(labels) - 1)
    lo = max([i for i, c in idx if c == good and 0 <= i < len(labels)], default=0)
    return (lo, hi) if lo < hi else None


def _answer_box(s: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """The answer's (last good, first bad) positions, lower first, when the summary has both."""
    a, b = ((s or {}).get(k) or {} for k in ("last_good", "first_bad"))
    i, j = a.get("index"), b.get("index")
    if not isinstance(i, int) or not isinstance(j, int) or i == j:
        return None
    return (min(i, j), max(i, j))


def _facts(
    start: Mapping[str, Any],
    s: Mapping[str, Any] | None,
    stages: Sequence[Sequence[str]],
    words: tuple[str, str],
    n_tests: int,
) -> list[tuple[str, str]]:
    src = start["source"]
    where = " ".join(str(src[k]) for k in ("path", "repo", "package", "template") if src.get(k))
    refs = f" {src['good']}..{src['bad']}" if src.get("good") and src.get("bad") else ""
    facts = [("source", f"{src.get('kind', '?')} {where}{refs}".strip())]
    if stages and stages[0]:
        first = stages[0]  # the range asked for; later lists are merged branches or other repositories
        ends = "failing end -> fixed end" if words[0] == "first fixed" else "good end -> bad end"
        more = f"; then {len(stages) - 1} more list(s) of candidates" if len(stages) > 1 else ""
        facts.append(
            ("range", f"{short(first[0])} -> {short(first[-1])} ({ends}), {len(first)} candidates{more}")
        )
    s = s or {}
    for key, what in (("first_bad", words[0]), ("last_good", words[1])):
        if s.get("status") == "found" and (s.get(key) or {}).get("title"):
            facts.append((what, f"{short(str(s[key]['label']))} {s[key]['title']}"))
    if s.get("culprit_repo"):
        comps = ", ".join(f"{k}={short(str(v))}" for k, v in sorted((s.get("components") or {}).items()))
        facts.append(("culprit repository", f"{s['culprit_repo']}; the first bad combination: {comps}"))
    rounds = f", {s['rounds']} rounds" if isinstance(s.get("rounds"), int) else ""
    over = f" over {s['candidates']} candidates" if isinstance(s.get("candidates"), int) else ""
    facts.append(("tests", f"{s.get('tests', n_tests)} tests{over}{rounds}"))
    perf = s.get("perf") if isinstance(s.get("perf"), dict) else None
    flags = start["flags"]
    if not s and _metric(flags):
        facts.append(("mode", f"performance on {_metric(flags)}"))
    elif perf:
        facts.append(
            (
                "mode",
                f"performance on {perf.get('metric')} ({perf.get('method')}), "
                f"{perf.get('direction')} is better, threshold {fmt_num(perf.get('threshold_pct'))}%",
            )
        )
    else:
        p = s.get("p_estimate")
        how = ", ".join(
            str(x) for x in (s.get("strategy") or "", f"p = {p:.2f}" if isinstance(p, float) else "") if x
        )
        facts.append(
            ("flaky mode", f"{s.get('flaky') or flags.get('flaky') or 'auto'}" + (f" ({how})" if how else ""))
        )
    if s.get("signature"):
        facts.append(("failure signature of the bad end", str(s["signature"])))
    for key, what in (
        ("skip_requested", "skipped on request"),
        ("skipped", "skipped (untestable)"),
        ("other_failures", "failures with another signature (counted as skip)"),
    ):
        if s.get(key):
            facts.append((what, ", ".join(short(str(x)) for x in s[key])))
    if isinstance(s.get("resumed"), dict):
        got = s["resumed"]
        facts.append(
            (
                "resumed",
                f"{got.get('replayed')} test(s) replayed from the journal, "
                f"{got.get('retried')} run again in place of an ERROR",
            )
        )
    facts.append(("started", fmt_time(start.get("t"))))
    return facts


def _metric(flags: Mapping[str, Any]) -> str:
    """The metric a performance bisection measures, from its flags ('' for a pass/fail one): the last
    ``--metric NAME`` that defines nothing."""
    given = flags.get("metric")
    names = [str(m) for m in given if "=" not in str(m)] if isinstance(given, list) else []
    return names[-1] if names else ""


def _name(start: Mapping[str, Any]) -> str:
    """The run's ``--name``, else what it bisected (the list file, the repository, the package)."""
    src = start["source"]
    what = next((str(src[k]) for k in ("path", "repo", "package", "template") if src.get(k)), "")
    return str(start["flags"].get("name") or what.rstrip("/").rpartition("/")[2] or "?")


def page(view: RunDirView) -> Page:
    """The report of a ``sleuth bisect`` run dir."""
    view = with_run_secrets(view)
    start = {
        k: v if k not in ("source", "flags") or isinstance(v, dict) else {} for k, v in view.start.items()
    }
    start.setdefault("source", {})
    start.setdefault("flags", {})
    s = run_summary(view)
    tests, stages = journaled_tests(view)
    labels = stages[-1] if stages else []
    words = _words(s, start)
    last_stage = [t for t in tests if t["_stage"] == len(stages) - 1]
    fix = words[0] == "first fixed"
    perf = (s or {}).get("perf") if isinstance((s or {}).get("perf"), dict) else None
    box = _answer_box(s)
    if s is not None:
        headline, status = _headline(s, *words)
        band = {
            "found": f"boundary: {words[1]} | {words[0]}",
            "inconclusive": "best guess",
            "interrupted": "narrowed so far",
        }.get(str(s.get("status")), f"the {words[0]} is one of these")
    else:
        seen = len({t.get("label") for t in tests})
        broken = view.unreadable("summary.json")  # cut short, not JSON: the journal has the tests
        lead = f"{broken}; from the journal" if broken else "Not finished (interrupted or still running)"
        headline = f"{lead}: {len(tests)} test(s) of {seen} candidate(s) so far"
        metric = _metric(start["flags"])  # outcomes say nothing in performance mode: its values do
        box = None if metric else narrowed(last_stage, labels, fix)
        perf = {"metric": metric} if metric else None
        if box is not None:
            lo, hi = box
            headline += (
                f"; the outcomes so far point at {short(labels[hi])} as the {words[0]}"
                if hi - lo == 1
                else f"; the {words[0]} is one of {short(labels[lo + 1])} .. {short(labels[hi])} "
                f"({hi - lo} candidates) by the outcomes so far"
            )
        status, band = Status.UNSURE, "narrowed so far"
    sections: list[Section] = []
    fig = search_figure(
        tests, stages, box, answer=band, perf=perf, settled=(s or {}).get("status") == "found"
    )
    if fig is not None:
        sections.append(Section("The search", (fig,)))
    if perf is not None and s is not None:
        found = box if s.get("status") == "found" else None
        sections.append(perf_section(tests, perf, found, labels))
    elif perf is not None:  # not finished: the values measured so far
        mfig = metric_figure(tests, perf, None, labels)
        sections += [Section(f"Metric {perf['metric']} per candidate", (mfig,))] if mfig else []
    if s is not None:
        sections += extras(s, words)
    sections.append(
        Section(
            "Tests",
            (test_table(tests, s or {}, labels),) if tests else (Note("No test was journaled yet."),),
        )
    )
    logs = log_blocks(view, s, tests, words) if s is not None and s.get("status") != "interrupted" else []
    if logs:
        sections.append(Section("Logs of the answer", tuple(logs)))
    repro = reproduce(s or {}, start["source"], words)
    if repro:
        sections.append(Section("Reproduce", tuple(repro)))
    argv = ((s or {}).get("command") or {}).get("argv") or start["flags"].get("cmd")
    argv = argv if isinstance(argv, list) else []
    kind = start["source"].get("kind", "")
    return Page(
        verb="bisect",
        title=f"sleuth bisect {kind}: {_name(start)}",
        headline=headline,
        status=status,
        run_dir=str(view.path),
        facts=tuple(_facts(start, s, stages, words, len(tests))),
        sections=tuple(sections),
        command=shlex.join(str(a) for a in argv),
    )
