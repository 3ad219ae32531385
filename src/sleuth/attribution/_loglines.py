"""What one line of a log says: the rank that wrote it and the wall-clock time it carries.

Ranks come from a line's prefix (``[rank3]:``, ``[default3]:``, ``3: `` or ``   3: `` as ``srun -l``
writes it, ``[1,3]<stderr>:`` from ``mpirun --tag-output``; torch's ``[rank27]:`` after a launcher's
label is the global rank and wins) or, for a one-file-per-rank layout, from the file name
(``rank3.log``, ``worker_rank-3.txt``) or torchrun's ``--log-dir`` layout
(``attempt_<n>/<local_rank>/stderr.log``: the local rank, and the attempt).  Timestamps are read
where a line carries a wall-clock time (ISO 8601, ``2024-05-01 12:00:00,123``, syslog ``Oct  7
12:58:23``, ``dmesg -T``'s ``[Tue Dec  1 12:00:02 2026]``); dmesg's seconds since boot are not
wall-clock times (:func:`is_uptime_line` finds such lines).  Pure functions of a string; reading the
logs themselves is :mod:`.logs`'s, which re-exports these.
"""

from __future__ import annotations

import calendar
import re
import time
from pathlib import Path

__all__ = ["is_uptime_line", "parse_rank_prefix", "parse_timestamp", "rank_from_name", "torchrun_place"]

# srun -l right-aligns its label to the width of the largest task id ("   3: " among 1000 tasks)
_PREFIX_RE = re.compile(r"^(?:\[(?:rank|default)(\d+)\]:\s?| *(\d{1,6}): |\[\d+,(\d+)\]<std(?:out|err)>:\s?)")
#: torch's own ``[rankN]:`` (the global rank) after a launcher's label: srun's task is a node's
#: torchrun, torchrun's ``--tee`` ``[defaultN]:`` is a local rank
_GLOBAL_RANK_RE = re.compile(r"\[rank(\d+)\]:\s?")
_INLINE_RANK_RE = re.compile(r"\[(?:rank|default|Rank )(\d+)\]:?")
_NAME_RANK_RE = re.compile(r"rank[_-]?(\d+)", re.IGNORECASE)
#: torchrun --log-dir: the folder above the file is the worker's local rank, the one above it the
#: attempt (torch.distributed.elastic: ``attempt_{restart_count}/{local_rank}/stdout.log``)
_TORCHRUN_RE = re.compile(r"(?:^|/)attempt_(\d+)/(\d+)/(?:stdout\.log|stderr\.log|error\.json)(?:\.gz)?$")
_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?(?![\d])"
)
_SYSLOG_RE = re.compile(
    r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})\b"
)
# dmesg -T (and journalctl -o short-full's cousin): "[Tue Dec  1 12:00:02 2026] NVRM: Xid ..."
_CTIME_RE = re.compile(
    r"^\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(\d{1,2}) "
    r"(\d{2}):(\d{2}):(\d{2}) (\d{4})\]"
)
_UPTIME_RE = re.compile(r"^\[\s*\d+\.\d+\]")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], start=1
    )
}


def parse_rank_prefix(line: str) -> tuple[int | None, str]:
    """``(rank, line without its rank prefix)``; ``(None, line)`` when the line has none."""
    m = _PREFIX_RE.match(line)
    if not m:
        inline = _INLINE_RANK_RE.search(line, 0, 120)  # after a timestamp: "<time> [rank3]: ..."
        return (int(inline.group(1)), line) if inline else (None, line)
    digits = m.group(1) or m.group(2) or m.group(3)
    rest = line[m.end() :]
    if not line.startswith("[rank") and (inner := _GLOBAL_RANK_RE.match(rest)):
        return int(inner.group(1)), rest[inner.end() :]
    return int(digits), rest


def rank_from_name(name: str) -> int | None:
    """The rank a one-file-per-rank log's name carries (``rank3.log`` -> 3; torchrun's
    ``attempt_0/3/stderr.log`` -> 3), or None."""
    placed = torchrun_place(name)
    if placed is not None:
        return placed[0]
    m = _NAME_RANK_RE.search(Path(name).name)
    return int(m.group(1)) if m else None


def torchrun_place(name: str) -> tuple[int, int] | None:
    """``(local rank, attempt)`` of a file in torchrun's ``--log-dir`` layout
    (``<log_dir>/<run_id>_<x>/attempt_<n>/<local_rank>/stdout.log|stderr.log|error.json``, also
    gzipped), or None."""
    m = _TORCHRUN_RE.search(name.replace("\\", "/"))
    return (int(m.group(2)), int(m.group(1))) if m else None


def parse_timestamp(line: str) -> float | None:
    """Seconds since the epoch of the first wall-clock time in ``line`` (naive times read as UTC), or None."""
    m = _CTIME_RE.match(line)
    if m:
        d, h, mi, s = (int(m.group(i)) for i in range(2, 6))
        if not (1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
            return None
        return float(calendar.timegm((int(m.group(6)), _MONTHS[m.group(1)], d, h, mi, s, 0, 0, 0)))
    m = _ISO_RE.search(line)
    if m:
        y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
        if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
            return None
        frac = float("0." + m.group(7)) if m.group(7) else 0.0
        t = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + frac
        tz = m.group(8)
        if tz and tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            digits = tz[1:].replace(":", "")
            t -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
        return t
    m = _SYSLOG_RE.match(line)
    if m:
        # syslog has no year: this year, which orders lines of one job correctly
        year = time.gmtime().tm_year
        mon = _MONTHS[m.group(1)]
        d, h, mi, s = (int(m.group(i)) for i in range(2, 6))
        return float(calendar.timegm((year, mon, d, h, mi, s, 0, 0, 0)))
    return None


def is_uptime_line(line: str) -> bool:
    """True for a dmesg line stamped with seconds since boot (``[ 1234.567890] NVRM: Xid ...``):
    it cannot be placed in wall-clock time."""
    return _UPTIME_RE.match(line) is not None
