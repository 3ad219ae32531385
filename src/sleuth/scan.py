"""Bounded-memory scanning of trial output files: regex searches and metric extraction.

Output files can be hundreds of megabytes, on one line.  They are read in windows of about
``CHUNK`` bytes that overlap by ``OVERLAP`` characters, and each regex runs over a whole window in
C (``re.MULTILINE``), so memory stays at a few MiB and a 200 MB log scans in about a second per
pattern.  Every position of the file belongs to exactly one window (the one that sees at least
``OVERLAP`` characters after it), so a match up to ``OVERLAP`` characters long is found once, as
in the whole text, wherever the window edges fall; ``^``, ``\\b`` and short lookbehinds see the
characters before a window too.  A pattern that ``re`` could backtrack over for hours (``.*Error`` on
a long line, ``(a+)+b``) is located by its RE2 twin (:mod:`sleuth.linear`) and matched only there.

A metric series is streamed: every value goes to ``metrics/<name>.txt`` in the trial dir (one a
line), and only a bounded sample and a summary (:class:`~sleuth.model.SeriesSummary`) stay in
memory and in the JSON.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from sleuth.linear import Twin, twin
from sleuth.model import SERIES_KEEP, MetricSpec, MetricValue, SeriesSummary

__all__ = [
    "CHUNK",
    "OVERLAP",
    "SeriesBuilder",
    "fd_tail",
    "find_first_line",
    "iter_matches",
    "metrics_from_files",
    "read_metrics_json",
    "tail",
]

CHUNK = 4 * 1024 * 1024
#: a match up to this many characters long is never missed or cut at a window edge
OVERLAP = 64 * 1024
#: a line returned by :func:`find_first_line` is cut to this many characters, starting at most
#: ``LINE_BEFORE`` before the match (so a one-line reason that shows the line's head shows the match)
LINE_MAX = 8192
LINE_BEFORE = 100


def _windows(path: Path, chunk_size: int, overlap: int) -> Iterator[tuple[str, int, int, int]]:
    """``(text, base, pos, limit)``: ``text`` starts at character ``base`` of the file; the matches
    that start in ``[pos, limit)`` belong to this window (it sees ``overlap`` characters past
    ``limit`` and up to ``overlap`` before ``pos``), later ones to the next window."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    with fh:
        prev, base, pos = "", 0, 0
        while True:
            block = fh.read(chunk_size)
            text = prev + decoder.decode(block, final=not block)
            if not block:  # the end of the file: the rest (and an empty match at the end) is this window's
                yield text, base, pos, len(text) + 1
                return
            limit = len(text) - overlap
            if limit <= pos:  # too little new text yet: read on
                prev = text
                continue
            yield text, base, pos, limit
            cut = max(0, limit - overlap)  # keep ``overlap`` characters of left context
            prev, base, pos = text[cut:], base + cut, limit - cut


def _taken(found: Iterator[re.Match[str]], limit: int, base: int, end: list[int]) -> Iterator[re.Match[str]]:
    for m in found:
        if m.start() >= limit:
            return
        end[0] = base + m.end()
        yield m


def _scan(
    path: Path, pattern: re.Pattern[str], chunk_size: int, overlap: int
) -> Iterator[tuple[str, Iterator[re.Match[str]]]]:
    """Each window's text with its matches (consume them before the next window)."""
    end = [0]  # where the last match taken ended, in characters from the start of the file
    tw = twin(pattern)
    for text, base, pos, limit in _windows(path, chunk_size, overlap):
        start = max(pos, end[0] - base)
        if tw is not None and (not tw.ascii_only or text.isascii()):
            found = _located(text, pattern, tw, start)
        else:
            found = pattern.finditer(text, start)
        yield text, _taken(found, limit, base, end)


def _located(text: str, pattern: re.Pattern[str], tw: Twin, start: int) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text, start)`` in linear time: RE2 finds where each match starts, ``re``
    matches there (see :mod:`sleuth.linear`)."""
    data = text.encode("utf-8", "surrogatepass")
    if not tw.locate(data):  # short lines, no nested repeat: re is faster per match, and near linear
        yield from pattern.finditer(text, start)
        return
    plain = len(data) == len(text)
    c = b = 0  # a character offset and its byte offset: both only move forward
    pos = start
    while pos <= len(text):
        if not plain:
            b += len(text[c:pos].encode("utf-8", "surrogatepass"))
            c = pos
        hit = tw.rx.search(data, pos if plain else b)
        if hit is None:
            return
        if plain:
            q = hit.start()
        else:
            q = c + len(data[b : hit.start()].decode("utf-8", "surrogatepass"))
            b, c = hit.start(), q
        m = pattern.match(text, q)
        if m is None:  # the twin accepted what re does not: re decides, as without a twin
            m = pattern.search(text, q + 1)
            if m is None:
                return
        yield m
        pos = max(m.end(), m.start() + 1)


def iter_matches(
    path: Path, pattern: re.Pattern[str], *, chunk_size: int = CHUNK, overlap: int = OVERLAP
) -> Iterator[tuple[str, re.Match[str]]]:
    """Every match of ``pattern`` in the file, in order, with the window text it was found in."""
    for text, matches in _scan(path, pattern, chunk_size, overlap):
        for m in matches:
            yield text, m


def find_first_line(
    paths: Iterable[Path], pattern: re.Pattern[str], *, chunk_size: int = CHUNK, overlap: int = OVERLAP
) -> str | None:
    """The first line (across ``paths`` in order) in which ``pattern`` matches, without its newline.

    A line longer than ``LINE_MAX`` is cut to the part around the match.
    """
    for path in paths:
        for text, m in iter_matches(path, pattern, chunk_size=chunk_size, overlap=overlap):
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            end = len(text) if end < 0 else end
            start = max(start, m.start() - LINE_BEFORE)
            return text[start : min(end, max(start + LINE_MAX, m.end()))]
    return None


class SeriesBuilder:
    """Summarise a series streamed in batches: counts, extremes, mean and an even sample."""

    def __init__(self, keep: int = SERIES_KEEP) -> None:
        self.keep = keep
        self.n = 0
        self.stride = 1
        #: the values at indices 0, stride, 2 * stride, ...
        self.sample: list[float] = []
        self.extra: dict[int, float] = {}
        self.lo: tuple[float, int] | None = None
        self.hi: tuple[float, int] | None = None
        self.total = 0.0
        self.finite = 0
        self.nonfinite = 0
        self.last = math.nan

    def add(self, xs: list[float]) -> None:
        """Append a batch of values."""
        if not xs:
            return
        base = self.n
        self.sample.extend(xs[(-base) % self.stride :: self.stride])
        while len(self.sample) > self.keep:
            self.sample = self.sample[::2]
            self.stride *= 2
        fin = [x for x in xs if x - x == 0.0]  # finite: inf - inf and nan - nan are nan
        if len(fin) < len(xs):
            if not self.nonfinite:
                i = next(i for i, x in enumerate(xs) if not math.isfinite(x))
                self.extra[base + i] = xs[i]
            self.nonfinite += len(xs) - len(fin)
        if fin:
            lo, hi = min(fin), max(fin)
            if self.lo is None or lo < self.lo[0]:
                self.lo = (lo, base + xs.index(lo))
            if self.hi is None or hi > self.hi[0]:
                self.hi = (hi, base + xs.index(hi))
            self.total += math.fsum(fin)
            self.finite += len(fin)
        self.n += len(xs)
        self.last = xs[-1]

    def result(self, file: str | None) -> tuple[tuple[float, ...], SeriesSummary]:
        """The kept values (in series order) and the summary."""
        points = {i * self.stride: v for i, v in enumerate(self.sample)}
        points.update(self.extra)
        points[self.n - 1] = self.last
        for ext in (self.lo, self.hi):
            if ext is not None:
                points[ext[1]] = ext[0]
        kept = tuple(points[i] for i in sorted(points))
        summary = SeriesSummary(
            n=self.n,
            kept=len(kept),
            first=self.sample[0],
            last=self.last,
            min=self.lo[0] if self.lo else None,
            max=self.hi[0] if self.hi else None,
            mean=self.total / self.finite if self.finite else None,
            nonfinite=self.nonfinite,
            file=file,
        )
        return kept, summary


def _floats(texts: list[str]) -> list[float]:
    try:
        return list(map(float, texts))
    except (TypeError, ValueError):
        out = []
        for t in texts:
            try:
                out.append(float(t))
            except (TypeError, ValueError):
                continue
        return out


def _series_file(name: str, taken: set[str]) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100].lstrip(".-") or "metric"
    rel, n = f"metrics/{safe}.txt", 1
    while rel in taken:
        n += 1
        rel = f"metrics/{safe}-{n}.txt"
    taken.add(rel)
    return rel


def _write_values(fh: IO[str], xs: list[float]) -> None:
    if xs:
        fh.write("\n".join(map(repr, xs)))
        fh.write("\n")


def metrics_from_files(
    specs: Iterable[MetricSpec],
    stdout: Path,
    stderr: Path,
    *,
    series_dir: Path | None = None,
    chunk_size: int = CHUNK,
    overlap: int = OVERLAP,
) -> tuple[dict[str, MetricValue], dict[str, SeriesSummary]]:
    """Extract each metric: the first group of the last match, or of every match for a series.

    A series is written in full to ``<series_dir>/metrics/<name>.txt`` (when ``series_dir`` is
    given) and comes back as its kept sample, with its :class:`SeriesSummary`.
    """
    out: dict[str, MetricValue] = {}
    summaries: dict[str, SeriesSummary] = {}
    taken: set[str] = set()
    for spec in specs:
        group = 1 if spec.pattern.groups else 0
        paths = [stdout if name == "stdout" else stderr for name in spec.stream.names()]
        if not spec.series:
            last: float | None = None
            for path in paths:
                for _text, m in iter_matches(path, spec.pattern, chunk_size=chunk_size, overlap=overlap):
                    v = _floats([m[group]])
                    if v:
                        last = v[0]
            if last is not None:
                out[spec.name] = last
            continue
        builder = SeriesBuilder()
        rel = _series_file(spec.name, taken) if series_dir is not None else None
        fh: IO[str] | None = None
        try:
            for path in paths:
                for batch in _series_batches(path, spec.pattern, group, chunk_size, overlap):
                    xs = _floats(batch)
                    if not xs:
                        continue
                    if rel is not None and series_dir is not None and fh is None:
                        fh = _new_series_file(series_dir, rel)
                    if fh is not None:
                        _write_values(fh, xs)
                    builder.add(xs)
        finally:
            if fh is not None:
                fh.close()
        if builder.n:
            out[spec.name], summaries[spec.name] = builder.result(rel)
    return out, summaries


def _new_series_file(series_dir: Path, rel: str) -> IO[str]:
    """``series_dir/rel`` (``metrics/<name>.txt``) created anew: what the workload left under that
    name in its trial dir, or a ``metrics`` that is no directory of its own, is moved aside
    (``.workload``), never written over or through."""
    folder = series_dir / "metrics"
    try:
        os.mkdir(folder)
    except FileExistsError:
        if folder.is_symlink() or not folder.is_dir():
            from sleuth.atomic import move_aside

            move_aside(folder)
            os.mkdir(folder)
    try:
        return open(series_dir / rel, "x", encoding="utf-8")
    except FileExistsError:
        from sleuth.atomic import move_aside

        move_aside(series_dir / rel)
        return open(series_dir / rel, "x", encoding="utf-8")


def _series_batches(
    path: Path, pattern: re.Pattern[str], group: int, chunk_size: int, overlap: int
) -> Iterator[list[str]]:
    """The matched texts of each window (the matches of :func:`iter_matches`, in bulk)."""
    for _text, matches in _scan(path, pattern, chunk_size, overlap):
        yield [m[group] for m in matches]


def read_metrics_json(path: Path) -> tuple[dict[str, MetricValue], dict[str, SeriesSummary], str | None]:
    """Metrics a workload wrote to ``$SLEUTH_TRIAL_DIR/metrics.json``: (metrics, series summaries,
    problem or None).  A list longer than ``SERIES_KEEP`` is kept as its sample."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, {}, None
    except (OSError, ValueError, RecursionError) as exc:  # the workload's file: nested 100,000 deep
        return {}, {}, f"metrics.json unreadable: {exc}"
    if not isinstance(raw, dict):
        return {}, {}, "metrics.json must hold an object {name: number or [numbers]}"
    out: dict[str, MetricValue] = {}
    summaries: dict[str, SeriesSummary] = {}
    bad: list[str] = []
    for k, v in raw.items():
        if isinstance(v, bool):
            bad.append(str(k))
        elif isinstance(v, int | float):
            out[str(k)] = float(v)
        elif isinstance(v, list) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v):
            if not v:
                out[str(k)] = ()
                continue
            builder = SeriesBuilder()
            builder.add([float(x) for x in v])
            out[str(k)], summaries[str(k)] = builder.result(path.name)
        else:
            bad.append(str(k))
    return out, summaries, (f"metrics.json: ignored non-numeric {', '.join(bad)}" if bad else None)


def tail(path: Path, nbytes: int = 8192) -> str:
    """The last ``nbytes`` of a file as text (starting at a line boundary when possible)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return ""
    try:
        return fd_tail(fd, nbytes)
    finally:
        os.close(fd)


def fd_tail(fd: int | IO[bytes], nbytes: int = 8192) -> str:
    """The last ``nbytes`` of an open file (read through its descriptor, any position)."""
    fileno = fd if isinstance(fd, int) else fd.fileno()
    size = os.fstat(fileno).st_size
    if size == 0:
        return ""
    start = max(0, size - nbytes)
    data = os.pread(fileno, size - start, start)
    if size > nbytes:
        nl = data.find(b"\n")
        if 0 <= nl < len(data) - 1:
            data = data[nl + 1 :]
    return data.decode("utf-8", "replace")
