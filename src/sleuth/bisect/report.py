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
    out = {"label": label, "index": index, "dir": f"candidates/{candidate_key(Candidate(index, label))}"}
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
    doc: dict[str, Any] = {
        "status": result.status.value,
        "first_bad": _cand(driver, result.first_bad),
        "last_good": _cand(driver, result.last_good),
        "suspects": [driver.labels[i] for i in result.suspects] if driver.labels else [],
        "candidates": len(driver.seen_labels),
        "tests": len(driver.events),
        "rounds": driver.rounds,
        "confidence": result.confidence,
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


def render_markdown(driver: Driver, s: dict[str, Any]) -> str:
    """The story of the search, in the order it happened."""
    lines = [f"# sleuth bisect {s['source']}: {s['status']}", ""]
    if s["status"] == "found":
        for key, what in (("first_bad", "First bad"), ("last_good", "Last good")):
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
        lines.append("The first bad is one of: " + ", ".join(f"`{x}`" for x in s["suspects"]) + ".")
    if s["note"]:
        lines.append(f"Note: {s['note']}.")
    lines += [
        "",
        f"{s['candidates']} candidates, {s['tests']} tests, confidence {s['confidence']:.3f}, "
        + (
            f"performance mode on `{s['perf']['metric']}` (bisection on sampled verdicts)."
            if "perf" in s
            else f"flaky mode `{s['flaky']}` ({s['strategy'] or 'no search'}"
            + (f", p = {s['p_estimate']:.2f}" if s["p_estimate"] is not None else "")
            + ")."
        ),
    ]
    if s["signature"]:
        lines.append(f"Failure signature of the bad end: `{s['signature']}`.")
    lines += ["", "| # | phase | candidate | outcome | counted as | detail |", "|---|---|---|---|---|---|"]
    for ev in driver.events:
        detail = (ev.signature or ev.reason or "").replace("|", "\\|")[:120]
        if ev.value is not None:
            detail = f"{s['perf']['metric']} = {ev.value:g}" + (f"; {detail}" if detail else "")
        lines.append(
            f"| {ev.seq} | {ev.phase} | `{ev.label}` | {ev.outcome.value} | {ev.counted.value} | {detail} |"
        )
    if s["other_failures"]:
        lines += ["", "Failures with another signature (counted as skip): " + ", ".join(s["other_failures"])]
    return "\n".join(lines) + "\n"
