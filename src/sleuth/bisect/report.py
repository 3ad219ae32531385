"""What a bisection leaves behind: ``summary.json`` (= ``--json``), ``report.md`` and symlinks.

A bisection stopped before its end (Ctrl-C, SIGTERM, a reader gone) leaves the same two files with
status ``interrupted`` (:func:`interrupted_summary`, :func:`write_interrupted`): the tests so far,
their evidence, the bracket of the search under way and the command that resumes it; no ``end``
event (the journal's ``interrupted`` is what a resume continues from) and no answer links.  The
resume's own summary replaces them.

The ``first-bad``/``last-good`` links always say what ``summary.json`` says: a resume that finds
another answer replaces them.  What a copy of the run dir left there instead of a link (a folder,
``cp -rL``) is kept when it holds the answer's files, else moved to ``NAME.copied``, never deleted.
"""

from __future__ import annotations

import filecmp
import os
import shlex
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from sleuth.bisect.auto import AutoBisection
from sleuth.bisect.candidates import Candidate, candidate_key
from sleuth.bisect.driver import Driver
from sleuth.bisect.flaky import FlakyBisection
from sleuth.bisect.git import GitSource, MultiGitSource
from sleuth.bisect.strategies import SearchResult, SearchStatus
from sleuth.errors import ExitCode
from sleuth.model import Outcome

__all__ = [
    "INTERRUPTED",
    "exit_code",
    "interrupted_summary",
    "name_suspects",
    "summarize",
    "write_interrupted",
    "write_outputs",
]

#: the ``status`` of a bisection stopped before its end (not a :class:`SearchStatus`: no search ends so)
INTERRUPTED = "interrupted"


def exit_code(status: str) -> ExitCode:
    """0 found; 3 ambiguous, inconclusive, not found."""
    return ExitCode.OK if status == SearchStatus.FOUND.value else ExitCode.INCONCLUSIVE


def _cand(driver: Driver, index: int | None) -> dict[str, Any] | None:
    if index is None or not driver.labels:
        return None
    label = driver.labels[index]
    where = f"candidates/{candidate_key(Candidate(index, label))}"
    probe = f"candidates/probe-{candidate_key(Candidate(0, label))}".replace(":", "_")
    if not any((driver.run_dir.path / where).glob("run-*")) and (driver.run_dir.path / probe).is_dir():
        where = probe  # tested before the list was known (the gallop of images): the logs are there
    out = {"label": label, "index": index, "dir": where}
    if isinstance(driver.source, GitSource):  # a SHA alone tells a reader nothing
        out["title"] = driver.source.title(label)
    return out


def summarize(driver: Driver, result: SearchResult) -> dict[str, Any]:
    """The document of the issue's ``--json`` schema (plus evidence and the search's notes)."""
    evidence: dict[str, Counter[str]] = {}
    for ev in sorted(driver.events, key=lambda e: e.seq):  # as they happened: a resume serves some late
        evidence.setdefault(ev.label, Counter())[ev.outcome.value] += 1
    skipped = sorted(
        {ev.label for ev in driver.events if ev.counted is Outcome.SKIP and ev.outcome is not Outcome.FAIL},
        key=lambda lab: driver.labels.index(lab) if lab in driver.labels else -1,
    )
    other = sorted(
        {ev.label for ev in driver.events if ev.outcome is Outcome.FAIL and ev.counted is Outcome.SKIP},
        key=lambda lab: driver.labels.index(lab) if lab in driver.labels else -1,
    )
    found = result.status is SearchStatus.FOUND
    doc: dict[str, Any] = {
        "status": result.status.value,
        "first_bad": _cand(driver, result.first_bad),
        "last_good": _cand(driver, result.last_good),
        "suspects": [driver.labels[i] for i in result.suspects] if driver.labels else [],
        "candidates": len(driver.seen_labels),
        "tests": len(driver.events),
        "rounds": driver.rounds,
        # not_found is no answer: there is nothing a confidence could be about
        "confidence": None if result.status is SearchStatus.NOT_FOUND else result.confidence,
        #: --find-fix: first_bad is the first candidate that passes, last_good the last that fails
        "find_fix": driver.opt.find_fix,
        "skip_requested": list(driver.opt.skip),
        "skipped": skipped,
        "other_failures": other,
        "signature": driver.signature,
        "flaky": driver.opt.flaky.describe(),
        **_strategy(driver.strategy),
        "evidence": {k: dict(v) for k, v in evidence.items()},
        "note": result.note,
        "source": driver.source.kind,
        "run_dir": str(driver.run_dir.path),
    }
    if found and isinstance(driver.source, GitSource) and doc["first_bad"] and doc["last_good"]:
        a, b = sorted((doc["last_good"], doc["first_bad"]), key=lambda c: c["index"])
        doc["commits_between"] = [
            {"sha": sha, "title": title} for sha, title in driver.source.between(a["label"], b["label"])
        ]
    # a PypiSource (not imported: its index client would load http and ssl into every bisection)
    if found and driver.source.kind == "pypi" and doc["first_bad"] and doc["last_good"]:
        run, pypi = driver.run_dir.path, cast(Any, driver.source)
        doc["release_notes"] = pypi.release_notes(doc["first_bad"]["label"])
        doc["packages_changed"] = pypi.changed(run / doc["last_good"]["dir"], run / doc["first_bad"]["dir"])
    if driver.blame is not None:
        _add_blame(doc, driver.blame, driver.source)
    if driver.opt.perf is not None:
        doc["perf"] = _perf(driver, doc)
    return doc


def _strategy(strategy: object) -> dict[str, Any]:
    """``strategy`` (the search's name) and ``p_estimate`` (the flaky search's failure rate)."""
    strat = strategy.inner if isinstance(strategy, AutoBisection) else strategy
    return {
        "strategy": type(strat).__name__ if strat is not None else None,
        "p_estimate": round(strat.p_estimate(), 4) if isinstance(strat, FlakyBisection) else None,
    }


def interrupted_summary(driver: Driver) -> dict[str, Any]:
    """The summary of a bisection stopped before its end: the tests so far and their evidence, and
    the bracket of the search under way (``last_good``/``first_bad`` its ends, ``suspects`` what is
    between) when there is one; no confidence (no answer) and ``resume``, the command that goes on."""
    bracket = SearchResult(status=SearchStatus.INCONCLUSIVE, first_bad=None, last_good=None)
    live = driver.live()
    if live is not None:  # its indices are those of the stage's labels (a merged branch's, ...)
        bracket = driver.result_in_order(live.result())
    # counted as not found whatever the strategy thinks: nothing an answer adds (the commits between,
    # the release notes over the network) is looked up
    doc = summarize(driver, replace(bracket, status=SearchStatus.INCONCLUSIVE))
    if live is not None and driver.opt.perf is None:  # the search under way, not the last one done
        doc.update(_strategy(live))
    resume = shlex.join(["sleuth", "bisect", "resume", str(driver.run_dir.path)])
    note = f"interrupted after {doc['tests']} test(s), before the search finished; resume with: {resume}"
    doc.update(status=INTERRUPTED, confidence=None, resume=resume, note=note)
    return doc


def write_interrupted(driver: Driver, summary: dict[str, Any]) -> list[str]:
    """``summary.json`` and ``report.md`` of an interrupted bisection, no ``end`` event and no answer
    links (an earlier answer's are taken away as :func:`_link` does); the notes of what was moved."""
    rd = driver.run_dir
    rd.write_json("summary.json", summary)
    rd.write_text("report.md", render_markdown(driver, summary))
    notes = [_link(rd.path, name, None) for name in ("first-bad", "last-good")]
    return [n for n in notes if n is not None]


def _add_blame(doc: dict[str, Any], blame: dict[str, str], source: object) -> None:
    """Multi-repo: the culprit repository's SHAs as labels, the first bad's commits as components."""
    from sleuth.bisect.git import decode

    repo = blame["culprit_repo"]
    doc["culprit_repo"] = repo
    doc["components"] = decode(blame["first_bad"])
    for key in ("first_bad", "last_good"):
        if doc[key] is not None:
            sha = decode(blame[key])[repo]
            doc[key] = {**doc[key], "label": sha, "candidate": blame[key]}
            if isinstance(source, MultiGitSource):  # a SHA alone tells a reader nothing
                doc[key]["title"] = source.title(repo, sha)


def _perf(driver: Driver, doc: dict[str, Any]) -> dict[str, Any]:
    """The metric per candidate (runs, median and its 95% interval, P(bad), decision), the ends'
    comparison and every step found; the means of the ends and of the answer as before."""
    from sleuth.bisect.seqtest import median_ci

    spec = driver.opt.perf
    assert spec is not None

    def mean(label: str | None) -> float | None:
        xs = driver.samples.get(label or "", [])
        return round(sum(xs) / len(xs), 6) if xs else None

    ends = driver.labels[:1] + driver.labels[-1:]
    fb, lg = (doc[k]["candidate"] if doc[k] and "candidate" in doc[k] else (doc[k] or {}).get("label")
              for k in ("first_bad", "last_good"))  # fmt: skip
    state = driver.perf_state
    where = {label: i for i, label in enumerate(driver.labels)}
    rows = []
    for label in sorted(driver.samples, key=lambda x: where.get(x, -1)):
        xs = driver.samples[label]
        if not xs:
            continue
        med, lo, hi = median_ci(xs)
        verdict = driver.verdicts.get(label)
        decision = ("good (end)" if ends and label == ends[0] else "bad (end)" if ends and label == ends[-1]
                    else verdict.value.replace("_", " ") if verdict is not None else "sampled")  # fmt: skip
        if decision == "ambiguous":
            decision = "undecided"
        p_bad = state.p_bad.get(label) if state is not None else None
        rows.append({"label": label, "index": where.get(label), "runs": len(xs), "median": round(med, 6),
                     "ci": [round(lo, 6), round(hi, 6)], "p_bad": p_bad, "decision": decision})  # fmt: skip
    if state is not None:
        doc["strategy"] = "StepSearch"
    return {"metric": spec.name, "direction": spec.direction.value, "threshold_pct": spec.threshold,
            "method": "sequential" if spec.fixed is None else f"fixed {spec.fixed} runs",
            "good_mean": mean(ends[0] if ends else None), "bad_mean": mean(ends[-1] if ends else None),
            "first_bad_mean": mean(fb), "last_good_mean": mean(lg),
            "verdicts": {k: v.value for k, v in driver.verdicts.items()},
            "samples": {k: len(v) for k, v in driver.samples.items()},
            "candidates": rows,
            "comparisons": state.comparisons if state is not None else [],
            "steps": [{k: v for k, v in st.items() if k not in ("first_bad", "last_good")}
                      for st in (state.steps if state is not None else [])]}  # fmt: skip


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


def _same_files(a: Path, b: Path) -> bool:
    """``a`` and ``b`` hold the same files with the same bytes (a copy of ``b`` that followed its link)."""
    todo = [filecmp.dircmp(a, b, ignore=[])]
    while todo:  # a candidate's folder is shallow (run-N/, build/), but no recursion
        c = todo.pop()
        if c.left_only or c.right_only or c.common_funny or c.funny_files:
            return False
        if filecmp.cmpfiles(c.left, c.right, c.common_files)[1:] != ([], []):  # stat, else bytes
            return False
        todo.extend(c.subdirs.values())
    return True


def _aside(run_dir: Path, name: str) -> Path:
    """``NAME.copied`` in ``run_dir``, else the first free ``NAME.copied-2``, ``-3``, ..."""
    path, n = run_dir / f"{name}.copied", 1
    while path.exists() or path.is_symlink():
        n += 1
        path = run_dir / f"{name}.copied-{n}"
    return path


def _link(run_dir: Path, name: str, target: dict[str, Any] | None) -> str | None:
    """``run_dir/name`` made a link to ``target``'s folder (no link without one); a note when
    something that was there is moved aside.

    A link there is sleuth's and is replaced.  Anything else is a copy of the run dir that followed
    the links (``cp -rL``, ``copytree``): a folder with the same files as the target's is the answer's
    own logs and stays; anything else (another answer's, a file) is moved to ``NAME.copied`` (or
    ``NAME.copied-N``), never deleted, so the name says what ``summary.json`` says.
    """
    link, note = run_dir / name, None
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        if target is not None and link.is_dir() and _same_files(link, run_dir / target["dir"]):
            return None
        aside = _aside(run_dir, name)
        link.rename(aside)
        note = f"{link} was not a link (a copy of the run dir?) and not the answer's: moved to {aside.name}"
    if target is not None:
        (run_dir / target["dir"]).mkdir(parents=True, exist_ok=True)
        os.symlink(target["dir"], link)
    return note


def write_outputs(driver: Driver, summary: dict[str, Any]) -> list[str]:
    """``summary.json``, ``report.md``, ``first-bad``/``last-good`` symlinks, the ``end`` event; the
    notes of what was moved aside to make the links (see :func:`_link`)."""
    rd = driver.run_dir
    rd.write_json("summary.json", summary)
    rd.write_text("report.md", render_markdown(driver, summary))
    found = summary["status"] == SearchStatus.FOUND.value
    notes = [_link(rd.path, "first-bad", summary["first_bad"] if found else None),
             _link(rd.path, "last-good", summary["last_good"] if found else None)]  # fmt: skip
    rd.journal.append("end", summary=summary)
    return [n for n in notes if n is not None]


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
    import shlex

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


def _outcome(driver: Driver, ev: Any, s: dict[str, Any]) -> str:
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


def render_markdown(driver: Driver, s: dict[str, Any]) -> str:
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
