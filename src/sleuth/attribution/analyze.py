"""One attribution end to end: scan the logs, consult the sources, decide, report.

Library code only (no printing).  The same function serves ``sleuth attribute``, the service's
background workers and ``sleuth supervise``.  Everything the :class:`Report` holds is scrubbed of
secrets (matched lines and excerpts go through :func:`sleuth.secrets.scrub_text`), so it can be
printed, stored in the service's database or written to ``cycles.jsonl`` as it is.

An earlier job's failure in a node's dmesg (:func:`_in_this_job`).  With the job's start given
(``--job-start``, the service's ``job_start``), findings timed before it are left out.  Without it,
the start is inferred (the logs' earliest time less ``START_MARGIN_S``) and is a guess: a rank
that logs only when it fails puts it after a GPU that fell off the bus while the job started.
Findings before a guessed start are left out only when this job's own findings explain the
failure by themselves; otherwise they are kept, and two stories fit the same logs: the Xid is
this job's (a fault while it started, which the program saw as an illegal address) or an
earlier job's (and this job's ambiguous error is its own, or a GPU left faulty).  Dropping the
Xid blames the program for the first story; blaming the Xid, as was done, sends a node to be
drained for the second, with the confidence of a finding timed inside the job.  Neither is
honest: the kept findings are marked ``before_start``, and a root so marked makes the catalog's
verdict UNKNOWN (rule ``before-start``: "inconclusive", acted on as RESTART, which both stories
recommend) naming the root, this job's own candidate and how to decide (give the start); it is
never a reason to STOP by itself (class, retry budget), while the no-progress limit still
applies.  A source (an LLM reading the excerpt) may still decide, since the catalog abstains.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sleuth.attribution.config import Settings, compile_progress
from sleuth.attribution.decide import CatalogVerdict, CycleRecord, decide
from sleuth.attribution.logs import LogInput, head_time, is_uptime_line
from sleuth.attribution.match import Matcher, ScanResult, engine_name
from sleuth.attribution.model import Decision, Finding, Role, SignatureClass, SourceVerdict
from sleuth.attribution.signatures import Catalog, load_catalog
from sleuth.attribution.sources import build_excerpt, consult_all
from sleuth.secrets import Secrets

__all__ = ["START_MARGIN_S", "Attributor", "Report"]

#: a job start read from the logs is their earliest time less this: a GPU that failed while the job
#: was starting (imports, before its first log line) is this job's
START_MARGIN_S = 600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """The outcome of one attribution."""

    decision: Decision
    root: Finding | None
    ordering: str | None
    findings: tuple[Finding, ...]
    sources: tuple[SourceVerdict, ...]
    progress: bool | None
    scan: dict[str, Any] = field(default_factory=dict)
    #: what the reader of the report must know about its input (a log cut short), one line each
    notes: tuple[str, ...] = ()

    def record(self, cycle: int) -> CycleRecord:
        """This attribution as a history record."""
        return CycleRecord(
            cycle=cycle,
            root=self.root.signature if self.root else None,
            progress=self.progress,
            action=self.decision.action,
        )

    def to_json(self) -> dict[str, Any]:
        """``{"decision", "root", "findings", "sources", ...}`` as ``--json`` prints it."""
        return {
            "decision": self.decision.to_json(),
            "root": self.root.to_json() if self.root else None,
            "root_ordering": self.ordering,
            "findings": [f.to_json() for f in self.findings],
            "sources": [v.to_json() for v in self.sources],
            "progress": self.progress,
            "scan": self.scan,
            "notes": list(self.notes),
        }


class Attributor:
    """Settings and the compiled catalog, reusable across attributions (the service keeps one)."""

    def __init__(
        self, settings: Settings, catalog: Catalog | None = None, *, env: Mapping[str, str] | None = None
    ) -> None:
        self.settings = settings
        # what no report may show: secret values of the environment (os.environ by default: a log
        # often prints the job's own AWS_SECRET_ACCESS_KEY) and of the sources' command lines
        self.secrets = Secrets.of(os.environ if env is None else env)
        for spec in settings.sources:
            self.secrets = self.secrets.merged(spec.secrets)
        self.catalog = catalog if catalog is not None else load_catalog(settings.catalogs)
        self.matcher = Matcher(self.catalog, progress=compile_progress(settings.progress_regex))

    def scan(self, logs: Sequence[LogInput]) -> ScanResult:
        """The findings of ``logs`` (each log checked first: missing, binary, non-UTF-8 are refused)."""
        for log in logs:
            log.check()
        return self.matcher.scan(logs)

    def attribute(
        self,
        logs: Sequence[LogInput],
        *,
        history: Sequence[CycleRecord] = (),
        progress: bool | None = None,
        secrets: Secrets | None = None,
        job_start: float | None = None,
    ) -> Report:
        """Scan, consult the sources, decide; a known ``progress`` wins over the progress regex.

        Every text of the report is scrubbed of this attributor's secrets and of ``secrets`` (the
        workload's, when the caller knows them).  Findings timed before ``job_start`` (seconds
        since the epoch; else read from the logs) are not this job's and are left out.
        """
        s = self.settings
        scan = self.scan(logs)
        known = self.secrets.merged(secrets) if secrets is not None else self.secrets

        def hide(text: str) -> str:
            return str(known.scrub(text))

        placed, time_notes = _in_this_job(scan.findings, logs, job_start)
        findings = [replace(f, text=hide(f.text), file=hide(f.file)) for f in placed]
        seen_progress = progress if progress is not None else scan.progress
        decision, cat = decide(
            findings, history, s.policy, progress=seen_progress, aggregation=s.aggregation, mode=s.mode
        )
        verdicts: list[SourceVerdict] = []
        if s.sources:
            excerpt = build_excerpt(
                logs,
                findings,
                cat.root,
                catalog={"action": cat.verdict.action.value, "reason": cat.verdict.reason},
                limit=s.excerpt_bytes,
                hide=hide,
            )
            verdicts = [
                replace(v, name=hide(v.name), reason=hide(v.reason))
                for v in consult_all(s.sources, excerpt, s.source_timeout)
            ]
            decision, cat = decide(
                findings,
                history,
                s.policy,
                progress=seen_progress,
                external=verdicts,
                aggregation=s.aggregation,
                mode=s.mode,
            )
        report = _report(
            decision, cat, findings, verdicts, progress=seen_progress, scan=scan, signatures=len(self.catalog)
        )
        notes = tuple(
            hide(f"log {name} was cut short at byte {at} of the compressed file; attributed up to the cut")
            for name, at in scan.cut
        ) + tuple(hide(n) for n in time_notes)
        return replace(report, notes=notes)


def _in_this_job(
    findings: Sequence[Finding], logs: Sequence[LogInput], job_start: float | None
) -> tuple[list[Finding], list[str]]:
    """The findings not from before the job started, and notes on what could not be placed.

    A node's dmesg holds an earlier job's Xid as well: a line timed before the start (``job_start``,
    else the earliest time at the head of the logs that are not kernel logs, less
    ``START_MARGIN_S``) is dropped; before an inferred start, only when the findings after it hold a
    root that explains the failure by itself (:func:`_explains_itself`). Kernel lines stamped with
    seconds since boot cannot be placed and are kept, with a note saying so.
    """
    notes: list[str] = []
    uptime: dict[str, int] = {}
    for f in findings:
        if is_uptime_line(f.text):
            uptime[f.file] = uptime.get(f.file, 0) + 1
    for name, n in uptime.items():
        notes.append(
            f"{name}: {n} kernel line(s) stamped with seconds since boot could not be placed against the "
            "job's start and were kept (an earlier job's failure would be taken for this one's); "
            "give `dmesg -T` or `journalctl -k` output for wall-clock times"
        )
    if job_start is None and not any(f.timestamp is not None for f in findings):
        return list(findings), notes
    start, origin = job_start, "the job's start given"
    if start is None:
        heads = [(log.name, *head_time(log)) for log in logs]
        firsts = [t for _, kernel, t in heads if not kernel and t is not None]
        if not firsts:
            kernel_logs = [name for name, kernel, _ in heads if kernel]
            if kernel_logs:
                notes.append(
                    f"no job start known (no --job-start, no time in the other logs): the kernel lines of "
                    f"{', '.join(kernel_logs[:3])} were not checked against it"
                )
            return list(findings), notes
        start = min(firsts) - START_MARGIN_S
        origin = f"the logs' earliest time less {START_MARGIN_S / 60:g} minutes"
    untimed = [f.file for f in findings if f.timestamp is None and f.file not in uptime]
    if untimed:
        files = list(dict.fromkeys(untimed))
        notes.append(
            f"{len(untimed)} finding(s) in {', '.join(files[:3])}{' and others' if len(files) > 3 else ''} "
            "carry no time and could not be checked against the job's start (an earlier run's line in "
            "a log appended across restarts would be taken for this one's)"
        )
    early = [f for f in findings if f.timestamp is not None and f.timestamp < start]
    if not early:
        return list(findings), notes
    when = datetime.fromtimestamp(start, UTC).isoformat(timespec="seconds")
    first = f"first: {early[0].signature} at {early[0].file}:{early[0].line}"
    kept = [f for f in findings if f.timestamp is None or f.timestamp >= start]
    if job_start is None and not _explains_itself(kept):
        # the start is a guess: a rank that logs only when it fails puts it after a GPU that fell
        # off the bus while the job started, and that Xid was dropped for the illegal address it
        # caused; kept, and marked: a root from before the start is inconclusive (module docstring)
        notes.append(
            f"kept {len(early)} finding(s) from before the job's inferred start at {when} ({origin}; "
            f"{first}): this job's logs hold no root of their own that explains the failure, and a "
            "fault while the job started looks like this; give --job-start to leave them out"
        )
        return [
            replace(f, before_start=f.timestamp is not None and f.timestamp < start) for f in findings
        ], notes
    notes.append(f"ignored {len(early)} finding(s) from before the job started at {when} ({origin}), {first}")
    return kept, notes


def _explains_itself(findings: Sequence[Finding]) -> bool:
    """True when ``findings`` hold a root that explains a failure by itself: not an ambiguous one
    (an illegal address: what a failed GPU looks like to the program) nor a peer's symptom."""
    return any(
        f.role is Role.ROOT and f.cls is not SignatureClass.AMBIGUOUS and not f.peer_symptom for f in findings
    )


def _report(
    decision: Decision,
    cat: CatalogVerdict,
    findings: list[Finding],
    verdicts: list[SourceVerdict],
    *,
    progress: bool | None,
    scan: ScanResult,
    signatures: int,
) -> Report:
    return Report(
        decision=decision,
        root=cat.root,
        ordering=cat.ordering,
        findings=tuple(findings),
        sources=(*verdicts, cat.verdict),
        progress=progress,
        scan={
            "bytes": scan.bytes_scanned,
            "candidate_lines": scan.candidate_lines,
            "findings_dropped": scan.dropped,
            "signatures": signatures,
            "engine": engine_name(),
        },
    )
