"""Run directories, the append-only journal, and atomic writes.

A run dir is ``<output>/<verb>/<name>/<UTC timestamp>[-N]/``.  The leaf is claimed with a plain
``mkdir`` (never ``exist_ok``), so two sleuth processes started in the same second get two
directories.  ``journal.jsonl`` gets one JSON object per line, flushed on every append,
so a ``kill -9`` loses at most the line being written (``fsync=True`` also survives a power loss,
at a few ms per event); :func:`read_journal` drops a torn last line.
Files that must be whole (``summary.json``, ``result.json``) go through :func:`atomic_write_text`.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sleuth.errors import InfrastructureError, UsageError
from sleuth.model import check_name

__all__ = [
    "Journal",
    "RunDir",
    "atomic_write_json",
    "atomic_write_text",
    "read_journal",
]


def _read_umask() -> int:
    # the umask can only be read by setting it; done once at import, while no other thread creates
    # files (setting it later would race with trial threads opening their output files)
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one.

    ``mode`` (e.g. 0o600 for secrets) is set before any byte is written; default: as the umask allows.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes 0600; a report is as readable as any new file
        os.fchmod(fd, mode if mode is not None else 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any, *, mode: int | None = None) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", mode=mode)


class Journal:
    """Append-only JSON-lines event log.  Thread-safe; every append is flushed to the OS."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = path
        self._fsync = fsync
        self._lock = threading.Lock()
        _drop_torn_tail(path)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def append(self, event: str, **data: Any) -> None:
        """Append one event ``{"event": ..., "t": unix time, **data}``."""
        line = json.dumps({"event": event, "t": round(time.time(), 6), **data}, default=str)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            if self._fsync:
                os.fdatasync(self._fh.fileno())

    def close(self) -> None:
        """Close the file; further appends raise."""
        with self._lock:
            self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drop_torn_tail(path: Path) -> None:
    """Cut an unterminated last line (a write cut by ``kill -9``) before appending to ``path``.

    Appending after it would glue the next event onto the fragment, and the journal could no
    longer be read.
    """
    try:
        fh = open(path, "r+b")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        pos, keep = size, 0
        while pos > 0 and not keep:
            start = max(0, pos - 65536)
            fh.seek(start)
            block = fh.read(pos - start)
            nl = block.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
            pos = start
        fh.truncate(keep)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every complete event of a journal; a torn (unterminated or unparsable) last line is dropped.

    A corrupt line anywhere else is an ``InfrastructureError`` naming the file and the line.
    """
    events: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return events
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            if i >= len(lines) - 2:  # the last written line was cut by a crash
                break
            raise InfrastructureError(
                f"{path}: line {i + 1} is not a JSON event (the journal is corrupt)",
                hint="remove or repair that line, then resume again",
            ) from None
    return events


class RunDir:
    """The on-disk record of one sleuth invocation."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = path
        # one sleuth process per run dir: resuming a run that is still going would run trials twice
        # (the lock dies with its process, so a kill -9 never leaves the run dir locked)
        self._lock = open(path / ".lock", "a")  # noqa: SIM115 - closed in close()
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise UsageError(
                f"{path}: in use by another sleuth process", hint="wait for it to end, or stop it first"
            ) from None
        self.journal = Journal(path / "journal.jsonl", fsync=fsync)

    @classmethod
    def create(cls, output: Path, verb: str, name: str, *, fsync: bool = False) -> RunDir:
        """Claim a new ``<output>/<verb>/<name>/<UTC timestamp>[-N]`` directory."""
        if not check_name(name):
            raise UsageError(
                f"run name {name!r} cannot be used as a directory name",
                hint="use letters, digits, '_', '.', '-' (not starting with '.' or '-')",
            )
        parent = output / verb / name
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--output {output}: cannot create {parent}: {exc.strerror}") from exc
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for n in range(10_000):
            leaf = parent / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                leaf.mkdir()
            except FileExistsError:
                continue
            return cls(leaf, fsync=fsync)
        raise UsageError(f"--output {output}: too many runs named {name!r} in one second")

    @classmethod
    def open(cls, path: Path, *, fsync: bool = False) -> RunDir:
        """Reopen an existing run dir (to resume it)."""
        if not (path / "journal.jsonl").is_file():
            raise UsageError(
                f"{path}: not a sleuth run dir (no journal.jsonl)", hint="pass the run dir printed by the run"
            )
        return cls(path, fsync=fsync)

    def events(self) -> list[dict[str, Any]]:
        """Every event journaled so far."""
        return read_journal(self.journal.path)

    def trial_dir(self, trial_id: str, subdir: str = "trials") -> Path:
        """Create (fresh) and return ``<run dir>/<subdir>/<trial_id>``."""
        d = self.path / subdir / trial_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_json(self, relpath: str, obj: Any, *, mode: int | None = None) -> Path:
        """Atomically write ``obj`` as JSON at ``relpath`` inside the run dir."""
        p = self.path / relpath
        atomic_write_json(p, obj, mode=mode)
        return p

    def write_text(self, relpath: str, text: str) -> Path:
        """Atomically write ``text`` at ``relpath`` inside the run dir."""
        p = self.path / relpath
        atomic_write_text(p, text)
        return p

    def close(self) -> None:
        """Close the journal and release the run dir."""
        self.journal.close()
        self._lock.close()
