"""One attribution end to end: scan the logs, consult the sources, decide, report.

Library code only (no printing).  The same function serves ``sleuth attribute``, the service's
background workers and ``sleuth supervise``.  Everything the :class:`Report` holds is scrubbed of
secrets (matched lines and excerpts go through :func:`sleuth.secrets.scrub_text`), so it can be
printed, stored in the service's database or written to ``cycles.jsonl`` as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sleuth.attribution.config import Settings, compile_progress
from sleuth.attribution.decide import CatalogVerdict, CycleRecord, decide
from sleuth.attribution.logs import LogInput
from sleuth.attribution.match import Matcher, ScanResult, engine_name
from sleuth.attribution.model import Decision, Finding, SourceVerdict
from sleuth.attribution.signatures import Catalog, load_catalog
from sleuth.attribution.sources import build_excerpt, consult_all
from sleuth.secrets import Secrets

__all__ = ["Attributor", "Report"]


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
    ) -> Report:
        """Scan, consult the sources, decide; a known ``progress`` wins over the progress regex.

        Every text of the report is scrubbed of this attributor's secrets and of ``secrets`` (the
        workload's, when the caller knows them).
        """
        s = self.settings
        scan = self.scan(logs)
        known = self.secrets.merged(secrets) if secrets is not None else self.secrets

        def hide(text: str) -> str:
            return str(known.scrub(text))

        findings = [replace(f, text=hide(f.text), file=hide(f.file)) for f in scan.findings]
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
        )
        return replace(report, notes=notes)


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
