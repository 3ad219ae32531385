"""What a bisection leaves behind: ``summary.json`` (= ``--json``), ``report.md`` and symlinks."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from sleuth.bisect.auto import AutoBisection
from sleuth.bisect.candidates import Candidate, candidate_key
from sleuth.bisect.driver import Driver
from sleuth.bisect.flaky import FlakyBisection
from sleuth.bisect.git import GitSource
from sleuth.bisect.strategies import SearchResult, SearchStatus
from sleuth.errors import ExitCode
from sleuth.model import Outcome

__all__ = ["exit_code", "summarize", "write_outputs"]


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
    for ev in driver.events:
        evidence.setdefault(ev.label, Counter())[ev.outcome.value] += 1
    skipped = sorted(
        {ev.label for ev in driver.events if ev.counted is Outcome.SKIP and ev.outcome is not Outcome.FAIL},
        key=lambda lab: driver.labels.index(lab) if lab in driver.labels else -1,
    )
    other = sorted(
        {ev.label for ev in driver.events if ev.outcome is Outcome.FAIL and ev.counted is Outcome.SKIP},
        key=lambda lab: driver.labels.index(lab) if lab in driver.labels else -1,
    )
    strat = driver.strategy.inner if isinstance(driver.strategy, AutoBisection) else driver.strategy
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
        "strategy": type(strat).__name__ if strat is not None else None,
        "p_estimate": round(strat.p_estimate(), 4) if isinstance(strat, FlakyBisection) else None,
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
    if driver.blame is not None:
        _add_blame(doc, driver.blame)
    if driver.opt.perf is not None:
        doc["perf"] = _perf(driver, doc)
    return doc


def _add_blame(doc: dict[str, Any], blame: dict[str, str]) -> None:
    """Multi-repo: the culprit repository's SHAs as labels, the first bad's commits as components."""
    from sleuth.bisect.git import decode

    repo = blame["culprit_repo"]
    doc["culprit_repo"] = repo
    doc["components"] = decode(blame["first_bad"])
    for key in ("first_bad", "last_good"):
        if doc[key] is not None:
            doc[key] = {**doc[key], "label": decode(blame[key])[repo], "candidate": blame[key]}


def _perf(driver: Driver, doc: dict[str, Any]) -> dict[str, Any]:
    """Metric means at the ends and at the answer, and the verdict on every candidate sampled."""
    spec = driver.opt.perf
    assert spec is not None

    def mean(label: str | None) -> float | None:
        xs = driver.samples.get(label or "", [])
        return round(sum(xs) / len(xs), 6) if xs else None

    ends = driver.labels[:1] + driver.labels[-1:]
    fb, lg = (doc[k]["candidate"] if doc[k] and "candidate" in doc[k] else (doc[k] or {}).get("label")
              for k in ("first_bad", "last_good"))  # fmt: skip
    return {"metric": spec.name, "direction": spec.direction.value, "threshold_pct": spec.threshold,
            "good_mean": mean(ends[0] if ends else None), "bad_mean": mean(ends[-1] if ends else None),
            "first_bad_mean": mean(fb), "last_good_mean": mean(lg),
            "verdicts": {k: v.value for k, v in driver.verdicts.items()},
            "samples": {k: len(v) for k, v in driver.samples.items()}}  # fmt: skip


def _link(run_dir: Path, name: str, target: dict[str, Any] | None) -> None:
    link = run_dir / name
    if link.is_symlink() or link.exists():
        link.unlink()
    if target is not None:
        (run_dir / target["dir"]).mkdir(parents=True, exist_ok=True)
        os.symlink(target["dir"], link)


def write_outputs(driver: Driver, summary: dict[str, Any]) -> None:
    """``summary.json``, ``report.md``, ``first-bad``/``last-good`` symlinks, the ``end`` event."""
    rd = driver.run_dir
    rd.write_json("summary.json", summary)
    rd.write_text("report.md", render_markdown(driver, summary))
    found = summary["status"] == SearchStatus.FOUND.value
    _link(rd.path, "first-bad", summary["first_bad"] if found else None)
    _link(rd.path, "last-good", summary["last_good"] if found else None)
    rd.journal.append("end", summary=summary)


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
    return str(verdict or "sampled").replace("_", " ")


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
        lines.append(f"The {first.lower()} is one of: " + ", ".join(f"`{x}`" for x in s["suspects"]) + ".")
    if s["note"]:
        lines.append(f"Note: {s['note']}.")
    conf = "no answer, so no confidence" if s["confidence"] is None else f"confidence {s['confidence']:.3f}"
    lines += [
        "",
        f"{s['candidates']} candidates, {s['tests']} tests, {conf}, "
        + (
            f"performance mode on `{s['perf']['metric']}` (bisection on sampled verdicts)."
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
    lines += _command_lines(s)
    between = s.get("commits_between") or []
    if between:
        lines += ["", f"## Commits from {last.lower()} (exclusive) to {first.lower()}", ""]
        lines += [f"- `{c['sha'][:12]}` {c['title']}" for c in between]
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
