"""``report.md`` of a bisection: the answer, the command, the commits in between, every test in order.

Rendered from the summary (:mod:`sleuth.bisect.report`) and the driver's tests; the suspects are named
here for every reader (the console's answer, the ``sleuth report`` page).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from sleuth.bisect.strategies import SearchStatus

if TYPE_CHECKING:
    from sleuth.bisect.driver import Driver
    from sleuth.bisect.report import Unbuilt

__all__ = ["INTERRUPTED", "name_suspects", "render_markdown"]

#: the ``status`` of a bisection stopped before its end (not a :class:`SearchStatus`: no search ends so)
INTERRUPTED = "interrupted"

#: suspects named one by one up to this many; a longer block is named by its ends and its size
SUSPECTS_NAMED = 8


def name_suspects(names: list[str]) -> str:
    """``a, b, c`` for a few suspects; ``a, b, c, ..., y, z (N candidates)`` for a long block."""
    if len(names) <= SUSPECTS_NAMED:
        return ", ".join(names)
    return f"{', '.join(names[:3])}, ..., {', '.join(names[-2:])} ({len(names)} candidates)"


def _words(s: dict[str, Any]) -> tuple[str, str]:
    """("First bad", "Last good"), or ("First fixed", "Last failing") for ``--find-fix``."""
    return ("First fixed", "Last failing") if s.get("find_fix") else ("First bad", "Last good")


def _cell(text: str) -> str:
    """Text that stays inside one table cell (pipes escaped, newlines as ``<br>``)."""
    return text.replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def _command_lines(s: dict[str, Any]) -> list[str]:
    cmd = s.get("command")
    if not cmd:
        return []
    lines = ["", "## Command", "", "```", shlex.join(cmd["argv"]), "```", ""]
    if cmd.get("cwd"):
        lines.append(f"Working directory: {cmd['cwd']}.  ")
    if cmd.get("env"):
        lines.append("Set on top of the caller's environment: "
                     + ", ".join(f"`{k}={v}`" for k, v in cmd["env"].items()) + ".")  # fmt: skip
    return lines


def _outcome(driver: Driver | Unbuilt, ev: Any, s: dict[str, Any]) -> str:
    """The outcome column: in performance mode the metric's verdict (good / bad), else pass / fail."""
    if "perf" not in s or ev.value is None:
        return str(ev.outcome.value)
    verdict = s["perf"]["verdicts"].get(ev.label)
    if verdict is None and driver.labels:
        if ev.label == driver.labels[0]:
            verdict = "good (end)"
        elif ev.label == driver.labels[-1]:
            verdict = "bad (end)"
    return str(verdict or "sampled").replace("_", " ").replace("ambiguous", "undecided")


def render_markdown(driver: Driver | Unbuilt, s: dict[str, Any]) -> str:
    """The story of the search: the answer, the command, the commits in between, every test in order."""
    first, last = _words(s)
    lines = [f"# sleuth bisect {s['source']}: {s['status']}", ""]
    if s["status"] == "found":
        for key, what in (("first_bad", first), ("last_good", last)):
            title = f" {s[key]['title']}" if s[key].get("title") else ""
            lines.append(f"{what}: `{s[key]['label']}`{title}.  ")
        if "culprit_repo" in s:
            refs = ", ".join(f"{k} `{v}`" for k, v in s["components"].items())
            lines.append(f"Culprit repository: {s['culprit_repo']}; the first bad combination: {refs}.")
        if "perf" in s:
            m = s["perf"]
            lines.append(
                f"Metric `{m['metric']}` ({m['direction']} is better): good end {m['good_mean']}, "
                f"bad end {m['bad_mean']}, last good {m['last_good_mean']}, first bad {m['first_bad_mean']}."
            )
    elif s["suspects"]:
        which = name_suspects([f"`{x}`" for x in s["suspects"]])
        if s["status"] == INTERRUPTED:  # the bracket so far, not an answer (the note names the resume)
            lines.append(f"So far the {first.lower()} is one of: {which}.")
        elif s["status"] == SearchStatus.INCONCLUSIVE.value:  # below --confidence: a guess, not an answer
            which = which if len(s["suspects"]) == 1 else f"one of {which}"
            lines.append(f"Not settled; the best guess for the {first.lower()}: {which}.")
        else:
            lines.append(f"The {first.lower()} is one of: {which}.")
    if s["note"]:
        lines.append(f"Note: {s['note']}.")
    conf = "no answer, so no confidence" if s["confidence"] is None else f"confidence {s['confidence']:.3f}"
    lines += [
        "",
        f"{s['candidates']} candidates, {s['tests']} tests, {conf}, "
        + (
            f"performance mode on `{s['perf']['metric']}` ({s['perf']['method']})."
            if "perf" in s
            else f"flaky mode `{s['flaky']}` ({s['strategy'] or 'no search'}"
            + (f", p = {s['p_estimate']:.2f}" if s["p_estimate"] is not None else "")
            + ")."
        ),
    ]
    if s.get("skip_requested"):
        lines.append("Skipped on request (--skip): " + ", ".join(f"`{x}`" for x in s["skip_requested"]) + ".")
    if s["signature"]:
        lines += ["", "Failure signature of the bad end:", "", "```", s["signature"], "```"]
    if "perf" in s:
        lines += _perf_lines(s)
    lines += _command_lines(s)
    between = s.get("commits_between") or []
    if between:
        lines += ["", f"## Commits from {last.lower()} (exclusive) to {first.lower()}", ""]
        lines += [f"- `{c['sha'][:12]}` {c['title']}" for c in between]
    if s.get("release_notes"):
        lines += ["", f"What {s['first_bad']['label']} changed: " + ", ".join(s["release_notes"]) + "."]
    changed = s.get("packages_changed") or []
    if changed:
        lines += ["", f"## Other packages that differ between {last.lower()} and {first.lower()}", "",
                  f"| package | {last.lower()} | {first.lower()} |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {_cell(c['name'])} | {_cell(c['last_good'] or '-')} | {_cell(c['first_bad'] or '-')} |"
                  for c in changed]  # fmt: skip
    metric = s["perf"]["metric"] if "perf" in s else None
    lines += ["", "## Tests", "", "| # | phase | candidate | outcome | counted as | detail |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for ev in sorted(driver.events, key=lambda e: e.seq):
        detail = _cell(ev.signature or ev.reason or "")
        if ev.value is not None:
            detail = f"{metric or 'value'} = {ev.value:g}" + (f"; {detail}" if detail else "")
        lines.append(f"| {ev.seq} | {ev.phase} | `{_cell(ev.label)}` | {_outcome(driver, ev, s)} | "
                     f"{ev.counted.value} | {detail} |")  # fmt: skip
    if s["other_failures"]:
        lines += ["", "Failures with another signature (counted as skip): " + ", ".join(s["other_failures"])]
    return "\n".join(lines) + "\n"


def _perf_lines(s: dict[str, Any]) -> list[str]:
    """report.md's performance section: the ends' comparison, the steps, the metric per candidate."""
    m = s["perf"]
    lines = ["", f"## Metric `{m['metric']}` per candidate", ""]
    for k, c in enumerate(m["comparisons"]):
        lo, hi = c["ci_pct"]
        what = "The ends" if k == 0 else c["why"][0].upper() + c["why"][1:]
        new = "" if k == 0 else " new"
        shift = f"{c['shift_pct']:+.2f}% (95% CI {lo:+.2f}..{hi:+.2f}%"
        lines.append(
            f"{what}: `{c['other']}` against `{c['ref']}` is {shift}, "
            f"{c['runs'][0]} and {c['runs'][1]}{new} runs; Mann-Whitney p = {c['p_worse']:.2g} for worse, "
            f"{c['p_within']:.2g} for within the {m['threshold_pct']:g}% threshold): {c['decision']}."
        )
    if len(m["steps"]) > 1:
        lines += ["", "Steps found (first bad, last good, the change across the step, confidence):", ""]
        for st in m["steps"]:
            lo, hi = st["ci_pct"]
            lines.append(
                f"- `{st['first_bad_label']}` (last good `{st['last_good_label']}`): {st['shift_pct']:+.2f}% "
                f"(95% CI {lo:+.2f}..{hi:+.2f}%), {st['from_good_end_pct']:+.2f}% from the good end, "
                f"confidence {st['confidence']:.3f}" + (" (the answer)" if st.get("answer") else "")
            )
    lines += [
        "",
        f"{m['direction'].capitalize()} is better.  P(bad): the search's probability that the candidate is "
        "on the bad side of the step; the interval is the median's 95% interval (order statistics; below 6 "
        "runs, the range).",
        "",
        "| candidate | runs | median | 95% interval | P(bad) | decision |",
        "|---|---|---|---|---|---|",
    ]
    answer = (
        {s[k]["label"] for k in ("first_bad", "last_good") if s.get(k)} if s["status"] == "found" else set()
    )
    for r in m["candidates"]:
        p = "" if r["p_bad"] is None else f"{r['p_bad']:.4f}"
        mark = "**" if r["label"] in answer else ""
        lo, hi = r["ci"]
        label = f"{mark}`{_cell(r['label'])}`{mark}"
        lines.append(
            f"| {label} | {r['runs']} | {r['median']:g} | {lo:g} .. {hi:g} | {p} | {r['decision']} |"
        )
    return lines
