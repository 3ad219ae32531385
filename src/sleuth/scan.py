"""Bounded-memory scanning of trial output files: regex searches and metric extraction.

Output files can be hundreds of megabytes.  They are read in chunks that end on a line boundary
and each regex runs over a whole chunk in C (``re.MULTILINE``), so memory stays at a few MiB and
a 200 MB log scans in well under a second per pattern.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from sleuth.model import MetricSpec, MetricValue

__all__ = ["fd_tail", "find_first_line", "iter_chunks", "metrics_from_files", "read_metrics_json", "tail"]

CHUNK = 4 * 1024 * 1024
#: one line longer than this is cut (a binary blob in a log must not blow memory)
MAX_LINE = 1024 * 1024


def iter_chunks(path: Path, chunk_size: int = CHUNK) -> Iterator[str]:
    """Yield the file's text in chunks that end at a newline (the last one may not)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with fh:
        carry = b""
        while True:
            block = fh.read(chunk_size)
            if not block:
                break
            data = carry + block
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) > MAX_LINE:
                    yield data.decode("utf-8", "replace")
                    carry = b""
                else:
                    carry = data
                continue
            yield data[: cut + 1].decode("utf-8", "replace")
            carry = data[cut + 1 :]
        if carry:
            yield carry.decode("utf-8", "replace")


def find_first_line(paths: Iterable[Path], pattern: re.Pattern[str]) -> str | None:
    """The first line (across ``paths`` in order) in which ``pattern`` matches, without its newline."""
    for path in paths:
        for chunk in iter_chunks(path):
            m = pattern.search(chunk)
            if m:
                start = chunk.rfind("\n", 0, m.start()) + 1
                end = chunk.find("\n", m.start())
                return chunk[start : end if end >= 0 else len(chunk)]
    return None


def _number(m: re.Match[str]) -> float | None:
    text = m.group(1) if m.re.groups else m.group(0)
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def metrics_from_files(specs: Iterable[MetricSpec], stdout: Path, stderr: Path) -> dict[str, MetricValue]:
    """Extract each metric: the first group of the last match (or of every match for a series)."""
    out: dict[str, MetricValue] = {}
    for spec in specs:
        values: list[float] = []
        for name in spec.stream.names():
            for chunk in iter_chunks(stdout if name == "stdout" else stderr):
                if spec.series:
                    values.extend(v for m in spec.pattern.finditer(chunk) if (v := _number(m)) is not None)
                else:
                    last = None
                    for m in spec.pattern.finditer(chunk):
                        last = m
                    if last is not None and (v := _number(last)) is not None:
                        values = [v]
        if values:
            out[spec.name] = tuple(values) if spec.series else values[-1]
    return out


def read_metrics_json(path: Path) -> tuple[dict[str, MetricValue], str | None]:
    """Metrics a workload wrote to ``$SLEUTH_TRIAL_DIR/metrics.json``; (metrics, problem or None)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError) as exc:
        return {}, f"metrics.json unreadable: {exc}"
    if not isinstance(raw, dict):
        return {}, "metrics.json must hold an object {name: number or [numbers]}"
    out: dict[str, MetricValue] = {}
    bad: list[str] = []
    for k, v in raw.items():
        if isinstance(v, bool):
            bad.append(str(k))
        elif isinstance(v, int | float):
            out[str(k)] = float(v)
        elif isinstance(v, list) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v):
            out[str(k)] = tuple(float(x) for x in v)
        else:
            bad.append(str(k))
    return out, (f"metrics.json: ignored non-numeric {', '.join(bad)}" if bad else None)


def tail(path: Path, nbytes: int = 8192) -> str:
    """The last ``nbytes`` of a file as text (starting at a line boundary when possible)."""
    try:
        with open(path, "rb") as fh:
            return fd_tail(fh, nbytes)
    except FileNotFoundError:
        return ""


def fd_tail(fh: BinaryIO, nbytes: int = 8192) -> str:
    """The last ``nbytes`` of an open binary file (read through its descriptor, any position)."""
    size = os.fstat(fh.fileno()).st_size
    if size == 0:
        return ""
    fh.seek(max(0, size - nbytes))
    data = fh.read()
    if size > nbytes:
        nl = data.find(b"\n")
        if 0 <= nl < len(data) - 1:
            data = data[nl + 1 :]
    return data.decode("utf-8", "replace")
