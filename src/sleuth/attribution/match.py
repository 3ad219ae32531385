"""Scanning logs against the catalog: one prefilter pass, then the full patterns on candidate lines.

Every signature carries literal keywords (see :mod:`sleuth.attribution.signatures`); the keywords of
the whole catalog are joined into ONE alternation that runs over large byte chunks.  It runs on
RE2 (a DFA: linear time, grep's speed) when the ``google-re2`` wheel is installed, else on
Python's ``re``.  Only the lines it hits are decoded, stripped of their rank prefix, and tried
against the full regexes of the signatures whose keywords they contain.  Memory stays bounded:
chunks are a few MiB and at most ``max_findings`` findings are kept per log (the rest counted),
as many again of those that can be the root (a storm of cascades cannot hide the root after it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sleuth.attribution.logs import (
    LogInput,
    error_file_view,
    parse_rank_prefix,
    parse_timestamp,
    rank_from_name,
    torchrun_place,
)
from sleuth.attribution.model import Finding, Role
from sleuth.attribution.signatures import Catalog, Signature

try:  # RE2: linear-time alternation over many keywords; optional (Python's re is the fallback)
    import re2 as _re2
except ImportError:  # pragma: no cover - depends on the platform's wheels
    _re2 = None

__all__ = ["Matcher", "ScanResult", "engine_name"]

#: findings kept per log, for roots and confirmations and again for the rest (the others are counted)
MAX_FINDINGS = 2000
#: roles that can be the root: kept apart from the cascades and diagnostics that can flood a log
_DECISIVE = frozenset({Role.ROOT, Role.CONFIRMATION})
MAX_TEXT = 500


def engine_name() -> str:
    """Which regex engine runs the prefilter: ``re2`` or ``re``."""
    return "re2" if _re2 is not None else "re"


def _keywords(signatures: Iterable[Signature], *, fold_all: bool) -> str:
    parts: dict[str, None] = {}
    for s in signatures:
        for k in s.keywords:
            if fold_all:
                parts[re.escape(k.lower())] = None
            else:
                parts[f"(?i:{re.escape(k)})" if s.ignore_case else re.escape(k)] = None
    # longest first: an alternation tries its branches in order
    return "|".join(sorted(parts, key=len, reverse=True))


def _trie(words: Sequence[bytes]) -> bytes:
    """One regex for a set of literals with common prefixes factored out (``re`` tries far fewer
    branches per position than with a flat alternation)."""
    root: dict[int, Any] = {}
    for w in words:
        node = root
        for b in w:
            node = node.setdefault(b, {})
        node[-1] = {}  # end of a word

    def emit(node: dict[int, Any]) -> bytes:
        if -1 in node:  # a shorter word is a prefix of longer ones: the shorter one suffices
            return b""
        alts = [re.escape(bytes([b])) + emit(child) for b, child in sorted(node.items())]
        return alts[0] if len(alts) == 1 else b"(?:" + b"|".join(alts) + b")"

    return emit(root)


class _Prefilter:
    """``search(chunk, pos)`` finds the next keyword hit in a byte chunk.

    On RE2 one alternation (with case-insensitive groups) runs as a DFA.  Python's ``re`` is slow
    on case-insensitive alternations, so the fallback lowers each chunk once (ASCII, same length)
    and searches lower-cased keywords case-sensitively: a few extra candidate lines, which the
    full regexes then reject.
    """

    def __init__(self, signatures: Sequence[Signature]) -> None:
        self.folded = True
        self._chunk: bytes | None = None
        self._lower = b""
        if _re2 is not None:
            opts = _re2.Options()
            opts.max_mem = 64 << 20
            try:
                self._pattern: Any = _re2.compile(_keywords(signatures, fold_all=False).encode(), opts)
                self.folded = False
                return
            except Exception:  # an RE2 limit: fall back to re, which always works
                pass
        words = sorted({k.lower().encode() for sig in signatures for k in sig.keywords})
        self._pattern = re.compile(_trie(words))

    def search(self, chunk: bytes, pos: int) -> Any:
        """The next hit at or after ``pos`` (its ``start()``/``end()`` index ``chunk``), or None."""
        if not self.folded:
            return self._pattern.search(chunk, pos)
        if chunk is not self._chunk:
            self._chunk, self._lower = chunk, chunk.lower()
        return self._pattern.search(self._lower, pos)


@dataclass(slots=True)
class ScanResult:
    """What a scan found in a set of logs."""

    findings: list[Finding] = field(default_factory=list)
    #: findings not kept because a log exceeded ``max_findings``
    dropped: int = 0
    #: True when the progress regex matched anywhere; None when no progress regex was given
    progress: bool | None = None
    bytes_scanned: int = 0
    candidate_lines: int = 0
    #: gzip logs cut short (the job died while writing them): the log's name and the compressed
    #: file's size, where it was cut; each was scanned up to the cut
    cut: list[tuple[str, int]] = field(default_factory=list)
    #: when each torchrun worker failed (its ``error.json``'s time), by the worker's folder
    failed_at: dict[str, float] = field(default_factory=dict)


class Matcher:
    """The catalog compiled for scanning: a prefilter and a keyword -> signatures index."""

    def __init__(
        self, catalog: Catalog, *, progress: re.Pattern[str] | None = None, max_findings: int = MAX_FINDINGS
    ) -> None:
        self.catalog = catalog
        self.signatures: Sequence[Signature] = catalog.signatures
        self._prefilter = _Prefilter(self.signatures)
        self._progress = (
            re.compile(progress.pattern.encode(), progress.flags & re.IGNORECASE) if progress else None
        )
        self._max = max_findings
        self._cased = [(k, s) for s in self.signatures if not s.ignore_case for k in s.keywords]
        self._folded = [(k.lower(), s) for s in self.signatures if s.ignore_case for k in s.keywords]
        self._order = {s.id: i for i, s in enumerate(self.signatures)}

    def candidates(self, text: str) -> list[Signature]:
        """The signatures whose keywords ``text`` contains, in catalog order."""
        hit: dict[str, Signature] = {}
        for k, s in self._cased:
            if k in text:
                hit[s.id] = s
        if self._folded:
            low = text.lower()
            for k, s in self._folded:
                if k in low:
                    hit[s.id] = s
        return sorted(hit.values(), key=lambda s: self._order[s.id])

    def match_line(self, text: str) -> list[Signature]:
        """Every signature whose full regex matches ``text`` (one line, rank prefix removed)."""
        return [s for s in self.candidates(text) if s.pattern.search(text)]

    def scan(self, logs: Sequence[LogInput]) -> ScanResult:
        """Scan every log; findings in log order, then line order."""
        result = ScanResult(progress=False if self._progress is not None else None)
        for log in logs:
            self._scan_one(log, result)
        if result.failed_at:
            # a torchrun worker's stdout/stderr.log lines rarely carry a time: their findings take
            # the time the worker failed (its error.json's), so the first failing rank is the root
            result.findings = [
                replace(f, timestamp=result.failed_at.get(_worker_dir(f.file)))
                if f.timestamp is None and torchrun_place(f.file)
                else f
                for f in result.findings
            ]
        return result

    def _scan_one(self, log: LogInput, result: ScanResult) -> None:
        file_rank = rank_from_name(log.name)
        attempt = placed[1] if (placed := torchrun_place(log.name)) else None
        view = error_file_view(log)
        if view is not None:  # the exception's lines, stamped with the time the worker failed
            log, failed_at = view
            if failed_at is not None and placed is not None:
                result.failed_at[_worker_dir(log.name)] = failed_at
        # kept findings, counted apart for those that can be the root (root, confirmation) and the
        # rest: 2,000 ranks' watchdog lines once filled the cap and the one root after them was dropped
        kept = {True: 0, False: 0}
        line_base = 1
        search = self._prefilter.search
        for chunk in log.chunks(on_cut=lambda at: result.cut.append((log.name, at))):
            result.bytes_scanned += len(chunk)
            if self._progress is not None and not result.progress and self._progress.search(chunk):
                result.progress = True
            pos = 0
            counted_to = 0
            lineno = line_base
            end = len(chunk)
            while pos < end:
                m = search(chunk, pos)
                if m is None:
                    break
                start = chunk.rfind(b"\n", 0, m.start()) + 1
                stop = chunk.find(b"\n", m.end())
                if stop < 0:
                    stop = end
                lineno += chunk.count(b"\n", counted_to, start)
                counted_to = start
                # a progress bar (tqdm) redraws itself with \r and no \n: the hit's own \r-segment is
                # the line as the terminal showed it (rank prefix at its start, no bar before it)
                seg_start = max(start, chunk.rfind(b"\r", start, m.start()) + 1)
                seg_stop = chunk.find(b"\r", m.end(), stop)
                if seg_stop < 0:
                    seg_stop = stop
                pos = seg_stop + 1
                result.candidate_lines += 1
                raw = chunk[seg_start:seg_stop].decode("utf-8", "replace")
                rank, text = parse_rank_prefix(raw)
                sigs = self.match_line(text)
                if not sigs:
                    continue
                ts = parse_timestamp(text)
                for sig in sigs:
                    decisive = sig.role in _DECISIVE
                    if kept[decisive] >= self._max:
                        result.dropped += 1
                        continue
                    kept[decisive] += 1
                    result.findings.append(
                        Finding(
                            file=log.name,
                            line=lineno,
                            rank=rank if rank is not None else file_rank,
                            timestamp=ts,
                            signature=sig.id,
                            cls=sig.cls,
                            role=sig.role,
                            action=sig.action,
                            text=text.strip()[:MAX_TEXT],
                            peer_symptom=sig.peer_symptom,
                            attempt=attempt,
                        )
                    )
            line_base += chunk.count(b"\n")


def _worker_dir(name: str) -> str:
    """The folder of a file in torchrun's ``--log-dir`` layout: one worker's attempt."""
    return name.replace("\\", "/").rpartition("/")[0]
