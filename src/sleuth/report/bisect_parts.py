"""The tables, logs and notes of the ``sleuth bisect`` page (:mod:`sleuth.report.bisect`): every test in
order, the metric per candidate, the answer's logs and neighbours (commits, packages), the command.

Each takes what :mod:`sleuth.report.bisect_source` read from the run dir; wording follows ``report.md``
(:func:`sleuth.bisect.report_md.render_markdown`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from sleuth.report.bisect_figures import metric_figure, short
from sleuth.report.common import MAX_ROWS, fmt_num, fmt_seconds
from sleuth.report.page import Block, Note, Section, Table
from sleuth.report.source import RunDirView

__all__ = ["extras", "log_blocks", "perf_section", "reproduce", "test_table"]


def _pct(x: Any) -> str:
    return f"{x:+.2f}%" if isinstance(x, int | float) and not isinstance(x, bool) else "?"


def _p(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, int | float) and not isinstance(x, bool) else ""


def _outcome(t: Mapping[str, Any], perf: Mapping[str, Any] | None, labels: Sequence[str]) -> str:
    if perf is not None and t.get("value") is not None:
        verdict = (perf.get("verdicts") or {}).get(t.get("label"))
        if verdict is None and labels:
            verdict = {labels[0]: "good (end)", labels[-1]: "bad (end)"}.get(str(t.get("label")))
        return str(verdict or "sampled").replace("_", " ").replace("ambiguous", "undecided")
    out, counted = str(t.get("outcome", "")), str(t.get("counted", ""))
    return out.upper() + ("" if counted in ("", out) else f" (counted {counted})")


def test_table(tests: Sequence[dict[str, Any]], s: Mapping[str, Any], labels: Sequence[str]) -> Table:
    perf = s.get("perf") if isinstance(s.get("perf"), dict) else None
    answer = {str((s.get(k) or {}).get("label")) for k in ("first_bad", "last_good")}
    shown = list(tests)
    if len(shown) > MAX_ROWS:  # failures, skips and the answer's tests first, then in order
        key = [t.get("counted") != "pass" or str(t.get("label")) in answer for t in shown]
        keep = sorted(range(len(shown)), key=lambda i: (not key[i], i))[:MAX_ROWS]
        shown = [shown[i] for i in sorted(keep)]
    sessions = any(t["_session"] > 1 for t in tests)
    metric = (perf or {}).get("metric", "value")
    rows: list[tuple[str, ...]] = []
    for t in shown:
        detail = str(t.get("signature") or t.get("reason") or "")
        if isinstance(t.get("value"), int | float):
            detail = f"{metric} = {fmt_num(t['value'], 6)}" + (f"; {detail}" if detail else "")
        row: tuple[str, ...] = (
            str(t.get("seq")),
            str(t.get("phase", "")),
            short(str(t.get("label", ""))),
            _outcome(t, perf, labels),
            fmt_seconds(t["_wall"]),
            detail,
        )
        if sessions:
            row += (f"{t['_session']}" + (" (retried after an ERROR)" if t["_retried"] else ""),)
        rows.append(row)
    headers = ("#", "phase", "candidate", "outcome", "wall", "signature / detail") + (
        ("session",) if sessions else ()
    )
    caption = "Every test in test order; its logs are under candidates/INDEX-LABEL/run-N/."
    if sessions:
        caption += (
            " Session 1 is the first run, each bisect resume starts the next: a resume serves the"
            " earlier sessions' tests from the journal instead of running them again."
        )
    return Table(
        headers,
        tuple(rows),
        caption=caption,
        numeric=frozenset({0, 4}),
        cut=(len(rows), len(tests)) if len(rows) < len(tests) else None,
    )


def _named(s: Mapping[str, Any], words: tuple[str, str]) -> tuple[str, str]:
    """What the summary's ``first_bad`` and ``last_good`` are: the answer, or the suspects' bounds."""
    if s.get("status") == "found":
        return words
    return (f"the suspects' {words[0].split()[1]} end", f"the suspects' {words[1].split()[1]} end")


def log_blocks(
    view: RunDirView, s: Mapping[str, Any], tests: Sequence[Mapping[str, Any]], words: tuple[str, str]
) -> list[Block]:
    """The answer's two candidates: a run on their side (the first bad's failure), both streams."""
    fix = words[0] == "first fixed"
    words = _named(s, words)
    blocks: list[Block] = []
    for key, what, side in (
        ("first_bad", words[0], "pass" if fix else "fail"),
        ("last_good", words[1], "fail" if fix else "pass"),
    ):
        cand = s.get(key) or {}
        label = cand.get("label")
        if label is None:
            continue
        own = [t for t in tests if t.get("label") in (label, cand.get("candidate"))]
        pick = next((t for t in own if t.get("counted") == side), own[0] if own else None)
        run_dir = str(pick.get("trial_dir")) if pick else f"{cand.get('dir')}/run-1"
        logs = [
            lg for lg in (view.tail(f"{run_dir}/stderr"), view.tail(f"{run_dir}/stdout")) if lg is not None
        ]
        outcome = f" ({str(pick.get('outcome', '')).upper()})" if pick else ""
        blocks.append(
            Note(
                f"{what} {short(str(label))}: test {pick.get('seq') if pick else '?'}{outcome}"
                + ("" if logs else ": no output")
            )
        )
        blocks.extend(logs)
    return blocks


def _listing(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> Table:
    """A table of ``rows`` in their order, cut at :data:`MAX_ROWS`."""
    cut = (MAX_ROWS, len(rows)) if len(rows) > MAX_ROWS else None
    return Table(headers, tuple(rows[:MAX_ROWS]), cut=cut)


def extras(s: Mapping[str, Any], words: tuple[str, str]) -> list[Section]:
    """What the answer brings with it: commits between (git), packages changed and notes (pypi)."""
    out: list[Section] = []
    between = [c for c in s.get("commits_between") or [] if isinstance(c, dict)]
    if between:
        rows = [(short(str(c.get("sha", ""))), str(c.get("title", ""))) for c in between]
        title = f"Commits from the {words[1]} (exclusive) to the {words[0]}"
        out.append(Section(title, (_listing(("commit", "title"), rows),)))
    changed = [c for c in s.get("packages_changed") or [] if isinstance(c, dict)]
    blocks: list[Block] = []
    if changed:
        pkgs = [
            (str(c.get("name")), str(c.get("last_good") or "-"), str(c.get("first_bad") or "-"))
            for c in changed
        ]
        blocks.append(_listing(("package", words[1], words[0]), pkgs))
    if s.get("release_notes"):
        blocks.append(Note("What it changed: " + " ".join(str(x) for x in s["release_notes"])))
    if blocks:
        title = f"Other packages that differ between the {words[1]} and the {words[0]}"
        out.append(Section(title, tuple(blocks)))
    return out


def reproduce(s: Mapping[str, Any], src: Mapping[str, Any], words: tuple[str, str]) -> list[Block]:
    cmd = s.get("command") if isinstance(s.get("command"), dict) else None
    if not cmd or not isinstance(cmd.get("argv"), list) or not cmd["argv"]:
        return []
    argv = shlex.join(str(a) for a in cmd["argv"])
    blocks: list[Block] = []
    if cmd.get("cwd"):
        blocks.append(Note(f"Working directory: {cmd['cwd']}."))
    env = cmd.get("env") or {}
    if env:
        blocks.append(
            Note(
                "Set on top of the caller's environment: "
                + ", ".join(f"{k}={v}" for k, v in sorted(env.items()))
                + "."
            )
        )
    if src.get("kind") == "list":  # the test sees its candidate in $SLEUTH_CANDIDATE alone: exact
        named = _named(s, words)
        for key, what in (("first_bad", named[0]), ("last_good", named[1])):
            c = s.get(key) or {}
            if c.get("label") is not None and isinstance(c.get("index"), int):
                line = shlex.join([f"SLEUTH_CANDIDATE={c['label']}", f"SLEUTH_CANDIDATE_INDEX={c['index']}"])
                blocks.append(Note(f"The {what}: {line} {argv}"))
    else:
        where = {
            "git": "in the checkout of its commit",
            "multigit": "in the checkouts of its commits",
            "pypi": "in a venv with that release",
            "images": "in that image",
        }.get(str(src.get("kind")), "")
        blocks.append(
            Note(
                f"Each test ran the command above with $SLEUTH_CANDIDATE set to its candidate {where}".strip()
                + "."
            )
        )
    return blocks


def perf_section(
    tests: Sequence[Mapping[str, Any]],
    perf: Mapping[str, Any],
    box: tuple[int, int] | None,
    labels: Sequence[str],
) -> Section:
    """Performance mode: the metric per candidate drawn and listed, the ends' comparison, the steps."""
    blocks: list[Block] = []
    mfig = metric_figure(tests, perf, box, labels)
    if mfig is not None:
        blocks.append(mfig)
    rows = tuple(
        (
            short(str(r.get("label"))),
            str(r.get("runs", "")),
            fmt_num(r.get("median"), 6),
            " .. ".join(fmt_num(x, 6) for x in (r.get("ci") or [])[:2]),
            _p(r.get("p_bad")),
            str(r.get("decision", "")),
        )
        for r in perf.get("candidates") or []
        if isinstance(r, dict)
    )
    blocks.append(
        Table(
            ("candidate", "runs", "median", "95% interval", "P(bad)", "decision"),
            rows,
            numeric=frozenset({1, 2, 4}),
        )
    )
    for c in perf.get("comparisons") or []:
        lo, hi = (c.get("ci_pct") or [None, None])[:2]
        blocks.append(
            Note(
                f"{str(c.get('why', '')).capitalize()}: {c.get('other')} against {c.get('ref')} is "
                f"{_pct(c.get('shift_pct'))} (95% CI {_pct(lo)}..{_pct(hi)}): {c.get('decision')}."
            )
        )
    steps = [st for st in perf.get("steps") or [] if isinstance(st, dict)]
    for st in steps if len(steps) > 1 else []:
        blocks.append(
            Note(
                f"Step: first bad {st.get('first_bad_label')} (last good {st.get('last_good_label')}): "
                f"{_pct(st.get('shift_pct'))}, confidence {fmt_num(st.get('confidence'))}"
                + (" (the answer)" if st.get("answer") else "")
            )
        )
    return Section(f"Metric {perf.get('metric')} per candidate", tuple(blocks))
