"""Run directories and the append-only journal (atomic writes: :mod:`sleuth.atomic`, re-exported here;
which verb made a run dir: :mod:`sleuth.resuming`).

A run dir is ``<output>/<verb>/<name>/<UTC timestamp>[-N]/``.  The leaf is claimed with a plain
``mkdir`` (never ``exist_ok``), so two sleuth processes started in the same second get two
directories.  ``journal.jsonl`` gets one JSON object per line, flushed on every append,
so a ``kill -9`` loses at most the line being written (``fsync=True`` also survives a power loss,
at a few ms per event); :func:`read_journal` drops a torn last line.
Files that must be whole (``summary.json``, ``result.json``) go through :func:`atomic_write_text`
(:mod:`sleuth.atomic`).  One sleuth process holds a run dir at a time (``.lock``,
:func:`sleuth.lockfile.lock_file`): a second one is refused at once, and a kill -9 leaves it free.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sleuth.atomic import _dumps, _write_all, atomic_write_json, atomic_write_text, json_text, move_aside
from sleuth.errors import InfrastructureError, UsageError
from sleuth.lockfile import lock_file
from sleuth.model import NAME_MAX, check_name

__all__ = [
    "Journal",
    "RunDir",
    "atomic_write_json",
    "atomic_write_text",
    "json_text",
    "move_aside",
    "output_root",
    "read_journal",
    "watch_run_dirs",
]


#: a function that hides secrets in a JSON-like value (``sleuth.secrets.Secrets.scrub``)
Scrub = Callable[[Any], Any]


class Journal:
    """Append-only JSON-lines event log.  Thread-safe; every append reaches the OS (one write)."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = path
        self._fsync = fsync
        self._lock = threading.Lock()
        #: hides secrets in every event before it is written (set by :meth:`RunDir.hide`)
        self.scrub: Scrub | None = None
        _drop_torn_tail(path)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)

    def append(self, event: str, **data: Any) -> None:
        """Append one event ``{"event": ..., "t": unix time, **data}``."""
        if self.scrub is not None:
            data = self.scrub(data)
        self._write(_dumps({"event": event, "t": round(time.time(), 6), **data}))

    def append_encoded(self, event: str, encoded: Mapping[str, str], **data: Any) -> None:
        """Like :meth:`append`, with the values of ``encoded`` already JSON text (encoded once,
        e.g. for ``result.json`` too); they come last in the event."""
        if self.scrub is not None:
            data = self.scrub(data)
            encoded = {k: _dumps(self.scrub(json.loads(v))) for k, v in encoded.items()}
        head = _dumps({"event": event, "t": round(time.time(), 6), **data})
        tail = "".join(f", {_dumps(k)}: {v}" for k, v in encoded.items())
        self._write(f"{head[:-1]}{tail}}}")

    def _write(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                raise ValueError(f"{self.path}: journal is closed")
            _write_all(self._fd, data, str(self.path))
            if self._fsync:
                os.fdatasync(self._fd)

    def close(self) -> None:
        """Close the file; further appends raise."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

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


def output_root(output: Path | str, flag: str = "--output") -> Path:
    """``--output`` as a directory (``flag`` names where the value came from: ``$SLEUTH_OUTPUT``);
    an empty value (not the current directory) and an existing non-directory are usage errors."""
    hint = "give a directory, e.g. --output sleuth-runs" + (" (or unset it)" if flag.startswith("$") else "")
    if isinstance(output, str) and not output.strip():
        raise UsageError(f"{flag} {output!r}: an empty path", hint=hint)
    path = Path(output)
    there = next((p for p in (path, *path.parents) if os.path.lexists(p)), None)  # it, or its ancestor
    if there is not None and not there.is_dir():
        what = "exists and" if there == path else f"{str(there)!r} exists and"
        raise UsageError(f"{flag} {str(output)!r}: {what} is not a directory", hint=hint)
    return path


def _remove_empty(dirs: Sequence[Path]) -> None:
    """Remove the directories we made (deepest first) if they are still empty."""
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            continue


#: the run dirs this process opened while :func:`watch_run_dirs` watches, the first first (a stop's
#: hint names that one: a bisect chain's own run dirs open inside its top one)
_opened: list[Path] | None = None


@contextlib.contextmanager
def watch_run_dirs() -> Iterator[list[Path]]:
    """Inside: every :class:`RunDir` opened or claimed is listed in the list yielded (the CLI's verb)."""
    global _opened
    outer, _opened = _opened, []
    try:
        yield _opened
    finally:
        _opened = outer


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every complete event of a journal; a torn (unterminated or unparsable) last line is dropped.

    A corrupt line anywhere else is an ``InfrastructureError`` naming the file and the line.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the journal: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a kill -9 may cut the last line inside a character: that line is torn anyway
        last_nl = raw.rfind(b"\n")
        if 0 <= last_nl < exc.start:
            return read_lines(path, raw[: last_nl + 1].decode("utf-8", "replace"))
        raise UsageError(
            f"{path}: not a sleuth journal (not UTF-8 text at byte {exc.start})",
            hint="pass the run dir printed by the run",
        ) from None
    return read_lines(path, text)


def read_lines(path: Path, text: str) -> list[dict[str, Any]]:
    """The events in ``text`` (the contents of journal ``path``); see :func:`read_journal`."""
    events: list[dict[str, Any]] = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            event = None
        if isinstance(event, dict):
            events.append(event)
        else:
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
        busy, hint = "in use by another sleuth process", "wait for it to end, or stop it first"
        self._lock = lock_file(path / ".lock", str(path), busy, hint)
        try:
            self.journal = Journal(path / "journal.jsonl", fsync=fsync)
        except OSError as exc:
            self._lock.close()
            raise UsageError(f"{path}: cannot open journal.jsonl: {exc.strerror or exc}") from None
        if _opened is not None:
            _opened.append(path)

    @classmethod
    def create(cls, output: Path | str, verb: str, name: str, *, fsync: bool = False) -> RunDir:
        """Claim a new ``<output>/<verb>/<name>/<UTC timestamp>[-N]`` directory.

        Every check comes first: a usage error leaves nothing behind (not even an empty parent).
        """
        root = output_root(output)
        for what, part in (("run name", name), ("run kind", verb)):
            if not check_name(part):
                raise UsageError(
                    f"{what} {part!r} cannot be used as a directory name",
                    hint=f"use at most {NAME_MAX} letters, digits, '_', '.', '-' "
                    "(not starting with '.' or '-')",
                )
        parent = root / verb / name
        made: list[Path] = []
        try:  # exists() raises too, for a name longer than the file system allows
            made = [d for d in (root, root / verb, parent) if not d.exists()]
            for d in made:
                d.mkdir(parents=True)
        except OSError as exc:
            _remove_empty(made)
            raise UsageError(f"--output {root}: cannot create {parent}: {exc.strerror or exc}") from None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for n in range(10_000):
            leaf = parent / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                leaf.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                _remove_empty(made)
                raise UsageError(f"--output {root}: cannot create {leaf}: {exc.strerror or exc}") from None
            try:
                return cls(leaf, fsync=fsync)
            except BaseException:
                for f in (leaf / "journal.jsonl", leaf / ".lock"):
                    f.unlink(missing_ok=True)
                _remove_empty([*made, leaf])
                raise
        _remove_empty(made)
        raise UsageError(f"--output {root}: too many runs named {name!r} in one second")

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        fsync: bool = False,
        kind: str = "sleuth",
        start_key: str | None = None,
        requires: Sequence[str] = (),
    ) -> RunDir:
        """Reopen an existing run dir (to resume it).

        Checked before anything is created in it (not even ``.lock``): ``journal.jsonl`` exists and
        reads as a journal, each of ``requires`` exists, and with ``start_key`` the journal's
        ``start`` event has that key (``config`` for a run, ...).  ``kind`` names the run dir
        expected in the error (``"sleuth run"``).
        """
        journal = path / "journal.jsonl"
        if not path.is_dir():
            raise UsageError(f"{path}: not a directory", hint=f"pass the {kind} run dir printed by the run")
        if not journal.is_file():
            raise UsageError(
                f"{path}: not a {kind} run dir (no journal.jsonl)", hint="pass the run dir printed by the run"
            )
        missing = [r for r in requires if not (path / r).exists()]
        if missing:
            raise UsageError(
                f"{path}: not a {kind} run dir (no {missing[0]})", hint="pass the run dir printed by the run"
            )
        if start_key is not None:
            start = next((e for e in read_journal(journal) if e.get("event") == "start"), None)
            if start is None or start_key not in start:
                raise UsageError(
                    f"{path}: not a {kind} run dir (its journal has no start event with {start_key!r})",
                    hint="pass the run dir printed by the run",
                )
        else:
            read_journal(journal)  # a journal that cannot be read is named now, not after the lock
        return cls(path, fsync=fsync)

    def events(self) -> list[dict[str, Any]]:
        """Every event journaled so far."""
        return read_journal(self.journal.path)

    def trial_dir(self, trial_id: str, subdir: str = "trials") -> Path:
        """Create (fresh) and return ``<run dir>/<subdir>/<trial_id>``."""
        d = self.path / subdir / trial_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    #: hides secrets in everything written through the run dir (see :meth:`hide`)
    scrub: Scrub | None = None

    def hide(self, scrub: Scrub) -> None:
        """From now on, pass every journal event, JSON document and text written through this run
        dir (and the engine's trial records) through ``scrub`` (``sleuth.secrets.Secrets.scrub``).

        The one place a verb's secrets are kept out of its run dir; ``secrets.json`` is written by
        :meth:`sleuth.secrets.Secrets.save`, around it.
        """
        self.scrub = scrub
        self.journal.scrub = scrub

    def write_json(self, relpath: str, obj: Any, *, mode: int | None = None) -> Path:
        """Atomically write ``obj`` as JSON at ``relpath`` inside the run dir (scrubbed, see :meth:`hide`)."""
        p = self.path / relpath
        atomic_write_json(p, obj if self.scrub is None else self.scrub(obj), mode=mode)
        return p

    def write_text(self, relpath: str, text: str) -> Path:
        """Atomically write ``text`` at ``relpath`` inside the run dir (scrubbed, see :meth:`hide`)."""
        p = self.path / relpath
        atomic_write_text(p, text if self.scrub is None else str(self.scrub(text)))
        return p

    def close(self) -> None:
        """Close the journal and release the run dir."""
        self.journal.close()
        self._lock.close()
