"""The history file of ``sleuth attribute --history FILE``: one JSON line per attributed cycle.

Appended and flushed (a ``kill -9`` loses at most the line being written; a torn last line is
dropped on the next read, as in the journal).  Each line is ``{"cycle", "root", "progress",
"action", "t"}``; the cycle number continues from the last line.  A line that is not a record is
a ``ConfigError`` naming the file and line, so a wrong file is never silently treated as empty.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from sleuth.attribution.decide import CycleRecord
from sleuth.attribution.logs import check_regular
from sleuth.errors import ConfigError

__all__ = ["append_history", "read_history"]


def read_history(path: Path) -> list[CycleRecord]:
    """Every record of ``path`` (none when it does not exist yet)."""
    check_regular(path, f"--history {path}")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except IsADirectoryError:
        raise ConfigError(f"--history {path}: is a directory, not a history file") from None
    except OSError as exc:
        raise ConfigError(f"--history {path}: cannot read: {exc.strerror}") from None
    if b"\x00" in raw[:65536]:
        raise ConfigError(f"--history {path}: not a history file (binary content)")
    text = raw.decode("utf-8", "replace")
    lines = text.split("\n")
    records: list[CycleRecord] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(CycleRecord.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            if i == len(lines) - 1:  # an unterminated last line: a write cut by a crash
                break
            raise ConfigError(
                f"--history {path}: line {i + 1} is not a history record ({exc})",
                hint="point --history at the file sleuth attribute wrote, or at a new path",
            ) from None
    return records


def append_history(path: Path, record: CycleRecord) -> None:
    """Append one record, flushed; a torn last line left by a crash is cut first.  A path that
    cannot be written (read-only, no permission) is a ``ConfigError`` naming it."""
    check_regular(path, f"--history {path}")
    try:
        _append(path, record)
    except OSError as exc:
        raise ConfigError(f"--history {path}: cannot write: {exc.strerror or exc}") from None


def _append(path: Path, record: CycleRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size:
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                fh.seek(0)
                data = fh.read()
                keep = data.rfind(b"\n") + 1
                fh.truncate(keep)
        fh.seek(0, os.SEEK_END)
        fh.write((json.dumps({**record.to_json(), "t": round(time.time(), 3)}) + "\n").encode())
        fh.flush()
