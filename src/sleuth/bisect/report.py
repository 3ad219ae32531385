"""What a bisection leaves behind: ``summary.json`` (= ``--json``), ``report.md`` and symlinks.

A bisection stopped before its end (Ctrl-C, SIGTERM, a reader gone) leaves the same two files with
status ``interrupted`` (:func:`interrupted_summary`, :func:`write_interrupted`): the tests so far,
their evidence, the bracket of the search under way and the command that resumes it; no ``end``
event (the journal's ``interrupted`` is what a resume continues from) and no answer links.  The
resume's own summary replaces them.  With no search under way (stopped while the driver was being
built: an :class:`Unbuilt` stands in for it; or between two stages) the bracket is the whole range.

``report.md`` is rendered by :mod:`sleuth.bisect.report_md`; the ``first-bad``/``last-good`` links
are made by :mod:`sleuth.bisect.links` (they always say what ``summary.json`` says).
"""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from sleuth.bisect.auto import AutoBisection
from sleuth.bisect.candidates import Candidate, candidate_key
from sleuth.bisect.driver import Driver
from sleuth.bisect.flaky import FlakyBisection
from sleuth.bisect.git import GitSource
from sleuth.bisect.links import answer_link
from sleuth.bisect.multigit import MultiGitSource
from sleuth.bisect.report_md import INTERRUPTED, render_markdown
from sleuth.bisect.strategies import SearchResult, SearchStatus
from sleuth.bisect.trials import Options, TestEvent
from sleuth.errors import ExitCode
from sleuth.journal import RunDir
from sleuth.model import Outcome

if TYPE_CHECKING:
    from sleuth.bisect.perf import PerfState, Verdict

__all__ = [
    "Unbuilt",
    "exit_code",
    "interrupted_summary",
    "summarize",
    "write_interrupted",
    "write_outputs",
]


@dataclass(frozen=True, slots=True)
class Unbuilt:
    """What the summary reads of a driver, for a bisection interrupted before its driver was built:
    its candidates (none when not known yet) and the tests the journal holds (a resume's), no search."""

    source: Any
    run_dir: RunDir
    opt: Options
    labels: list[str]
    events: list[TestEvent]
    rounds: int = 0
    signature: str | None = None
    strategy: None = None
    blame: None = None
    perf_state: PerfState | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    verdicts: dict[str, Verdict] = field(default_factory=dict)

    @property
    def seen_labels(self) -> dict[str, None]:
        """Every candidate known (one stage: the labels)."""
        return dict.fromkeys(self.labels)


def exit_code(status: str) -> ExitCode:
    """0 found; 3 ambiguous, inconclusive, not found."""
    return ExitCode.OK if status == SearchStatus.FOUND.value else ExitCode.INCONCLUSIVE


def _cand(driver: Driver | Unbuilt, index: int | None) -> dict[str, Any] | None:
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


def summarize(driver: Driver | Unbuilt, result: SearchResult) -> dict[str, Any]:
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


def interrupted_summary(driver: Driver | Unbuilt) -> dict[str, Any]:
    """The summary of a bisection stopped before its end: the tests so far and their evidence, and
    the bracket (``last_good``/``first_bad`` its ends, ``suspects`` what is between) of the search
    under way, else of the whole range (none before the candidates are known); no confidence (no
    answer) and ``resume``, the command that goes on."""
    n = len(driver.labels)
    # nothing under way: the first bad is any candidate after the first (the ends were not judged)
    fb, lg = (n - 1, 0) if n >= 2 else (None, None)
    whole = SearchResult(status=SearchStatus.INCONCLUSIVE, first_bad=fb, last_good=lg,
                         suspects=tuple(range(1, n)))  # fmt: skip
    bracket, live = whole, None
    if isinstance(driver, Driver):
        live = driver.live()
        if live is not None:  # its indices are those of the stage's labels (a merged branch's, ...)
            bracket = driver.result_in_order(live.result())
        elif driver.perf_so_far is not None:  # performance mode's first search (not a Strategy)
            bracket = driver.perf_so_far()
    # counted as not found whatever the strategy thinks: nothing an answer adds (the commits between,
    # the release notes over the network) is looked up
    doc = summarize(driver, replace(bracket, status=SearchStatus.INCONCLUSIVE))
    if live is not None and driver.opt.perf is None:  # the search under way, not the last one done
        doc.update(_strategy(live))
    resume = shlex.join(["sleuth", "bisect", "resume", str(driver.run_dir.path)])
    where = ("before the candidates were known" if n < 2 else
             "with no search under way, so the bracket is the whole range" if bracket is whole
             else "before the search finished")  # fmt: skip
    note = f"interrupted after {doc['tests']} test(s), {where}; resume with: {resume}"
    doc.update(status=INTERRUPTED, confidence=None, resume=resume, note=note)
    return doc


def write_interrupted(driver: Driver | Unbuilt, summary: dict[str, Any]) -> list[str]:
    """``summary.json`` and ``report.md`` of an interrupted bisection, no ``end`` event and no answer
    links (an earlier answer's are taken away as :func:`~sleuth.bisect.links.answer_link` does); the
    notes of what was moved."""
    rd = driver.run_dir
    rd.write_json("summary.json", summary)
    rd.write_text("report.md", render_markdown(driver, summary))
    notes = [answer_link(rd.path, name, None) for name in ("first-bad", "last-good")]
    return [n for n in notes if n is not None]


def _add_blame(doc: dict[str, Any], blame: dict[str, str], source: object) -> None:
    """Multi-repo: the culprit repository's SHAs as labels, the first bad's commits as components."""
    from sleuth.bisect.multigit import decode

    repo = blame["culprit_repo"]
    doc["culprit_repo"] = repo
    doc["components"] = decode(blame["first_bad"])
    for key in ("first_bad", "last_good"):
        if doc[key] is not None:
            sha = decode(blame[key])[repo]
            doc[key] = {**doc[key], "label": sha, "candidate": blame[key]}
            if isinstance(source, MultiGitSource):  # a SHA alone tells a reader nothing
                doc[key]["title"] = source.title(repo, sha)


def _perf(driver: Driver | Unbuilt, doc: dict[str, Any]) -> dict[str, Any]:
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


def write_outputs(driver: Driver, summary: dict[str, Any]) -> list[str]:
    """``summary.json``, ``report.md``, ``first-bad``/``last-good`` symlinks, the ``end`` event; the
    notes of what was moved aside to make the links (see :func:`~sleuth.bisect.links.answer_link`)."""
    rd = driver.run_dir
    rd.write_json("summary.json", summary)
    rd.write_text("report.md", render_markdown(driver, summary))
    found = summary["status"] == SearchStatus.FOUND.value
    notes = [answer_link(rd.path, "first-bad", summary["first_bad"] if found else None),
             answer_link(rd.path, "last-good", summary["last_good"] if found else None)]  # fmt: skip
    rd.journal.append("end", summary=summary)
    return [n for n in notes if n is not None]
