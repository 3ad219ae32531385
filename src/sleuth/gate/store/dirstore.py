"""The history as a directory of per-run JSON files: ``<root>/<suite>/<run id>.json``.

Meant for CI artifacts and for reading with nothing but ``jq``.  Each file is written atomically
(whole or absent); state documents live in ``<root>/<suite>/.state/<key>.json``.  A file that is
not a run (hand-edited, truncated by a full disk) stops the read with its path, rather than
silently shrinking the history a gate judges.

``<root>/<suite>/.index`` (JSON, written atomically by ``record``) holds each run file's time,
branch and status with the file's size and modification time, so a read that needs the last N runs
loads those N files, not all of them.  It is a cache: a file it does not list or whose size or
modification time differ (an older sleuth recorded it, two jobs recorded at once, a hand edit) is
read as before, as is every file of a store without one, or of one written by another sleuth
version; the next ``record`` lists them.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sleuth import __version__
from sleuth.atomic import atomic_write_json, atomic_write_text, json_text
from sleuth.errors import InfrastructureError, UsageError
from sleuth.gate.model import Run, RunStatus, clean_cut, fit
from sleuth.gate.store.paths import folder_problem
from sleuth.model import check_name

__all__ = ["DirStore"]

_STATE = ".state"
#: the suite folder's index of its run files (not ``*.json``: it is no run)
_INDEX = ".index"


@dataclass(frozen=True, slots=True)
class _Entry:
    """What a read filters and orders a run file by, and the file's size and time it was taken from."""

    size: int
    mtime_ns: int
    created_at: str
    branch: str | None
    status: RunStatus

    @classmethod
    def of(cls, run: Run, st: os.stat_result) -> _Entry:
        return cls(st.st_size, st.st_mtime_ns, run.created_at, run.branch, run.status)

    def fresh(self, st: os.stat_result) -> bool:
        return self.size == st.st_size and self.mtime_ns == st.st_mtime_ns


def _run_files(folder: Path) -> list[tuple[Path, os.stat_result]]:
    """The folder's run files with their stat, in modification order (the recording order)."""
    found = []
    for path in folder.glob("*.json"):
        try:
            st = path.stat()
        except OSError:  # removed since the listing
            continue
        if stat.S_ISREG(st.st_mode):
            found.append((path, st))
    found.sort(key=lambda f: f[1].st_mtime_ns)
    return found


def _read_index(folder: Path) -> dict[str, _Entry]:
    """The folder's index; empty when absent, unreadable or written by another sleuth version
    (whose reading of a run, its time in UTC and its scrubbed branch, may differ from this one's)."""
    try:
        doc = json.loads((folder / _INDEX).read_text(encoding="utf-8"))
        if doc.get("sleuth") != __version__ or not isinstance(doc.get("runs"), dict):
            return {}
        out = {}
        for name, (size, mtime_ns, created, branch, status) in doc["runs"].items():
            typed = isinstance(size, int) and isinstance(mtime_ns, int) and isinstance(created, str)
            if typed and (branch is None or isinstance(branch, str)):
                out[name] = _Entry(size, mtime_ns, created, branch, RunStatus(status))
        return out
    except (OSError, ValueError, TypeError, AttributeError, RecursionError):
        return {}


def _safe_key(key: str) -> str:
    """A state key as a file name; a long one ends with a hash of the whole (two metrics whose names
    start alike shared one incremental state when it was cut at 150 characters)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in fit(key, 150)) or "_"


class DirStore:
    """History in a directory (see the module doc)."""

    def __init__(self, root: Path, *, display: str) -> None:
        self.root = root
        self.display = display

    def _suite_dir(self, suite: str) -> Path:
        if not check_name(suite):
            raise UsageError(
                f"suite {suite!r} cannot be a directory name", hint="use letters, digits, '_', '.', '-'"
            )
        return self.root / suite

    def add_run(self, run: Run, *, replace: bool = False) -> bool:
        """Write ``<suite>/<run id>.json``; False when it exists and not ``replace``."""
        path = self._suite_dir(run.suite) / f"{run.run_id}.json"
        if path.exists() and not replace:
            return False
        self._write(path, run.to_dict())
        self._reindex(path.parent)
        return True

    def _write(self, path: Path, doc: dict[str, Any]) -> None:
        """``doc`` written atomically to ``path`` (whole or absent).  A folder on the way that cannot
        take it (read-only, on a read-only file system, a file) is the user's ``--db``, exit 2, as
        the history's own folder is (:func:`~sleuth.gate.store.paths.check_path`); anything else (a
        full disk) is the machine's, exit 4."""
        try:
            atomic_write_json(path, doc)
        except OSError as exc:
            problem = folder_problem(path.parent)
            if problem is not None:
                raise UsageError(f"--db {self.display}: {problem[0]}", hint=problem[1]) from None
            raise InfrastructureError(f"--db {self.display}: cannot write {path}: {exc.strerror}") from None

    def _reindex(self, folder: Path) -> None:
        """Rewrite the folder's index: its entries that still hold, and the files it did not list
        (all of them, the first time: an older store), read now.  A file that is not a run is left
        out (a read stops at it with its path); two jobs recording at once may each leave out the
        other's run, which reads then read from its file."""
        index = _read_index(folder)
        runs: dict[str, list[Any]] = {}
        for path, st in _run_files(folder):
            entry = index.get(path.name)
            if entry is None or not entry.fresh(st):
                try:
                    entry = _Entry.of(self._load(path), st)
                except InfrastructureError:
                    continue
            runs[path.name] = [entry.size, entry.mtime_ns, entry.created_at, entry.branch, entry.status.value]
        with contextlib.suppress(OSError):  # a cache: reads do without it
            atomic_write_text(folder / _INDEX, json_text({"sleuth": __version__, "runs": runs}, indent=None))

    def has_run(self, suite: str, run_id: str) -> bool:
        """Whether the run's file exists."""
        return (self._suite_dir(suite) / f"{run_id}.json").is_file()

    def created_at(self, suite: str, run_id: str) -> str | None:
        """When the recorded run happened, or None."""
        path = self._suite_dir(suite) / f"{run_id}.json"
        return self._load(path).created_at if path.is_file() else None

    def _load(self, path: Path) -> Run:
        try:
            return Run.from_dict(json.loads(path.read_text(encoding="utf-8"))).public()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InfrastructureError(
                f"--db {self.display}: {path} is not a recorded run "
                f"({type(exc).__name__}: {clean_cut(exc, 100)})",
                hint="remove or repair that file",
            ) from None

    def runs(
        self,
        suite: str,
        *,
        branch: str | None = None,
        statuses: Sequence[RunStatus] | None = None,
        last: int | None = None,
        metrics: Sequence[str] | None = None,
    ) -> list[Run]:
        """The suite's runs, oldest first (by creation time, then file modification order).

        Each run is filtered and ordered by its index entry (see the module doc), so with ``last``
        only the runs returned are loaded; a file the index does not hold is read (a file that is
        not a run stops the read).  Only the runs returned are kept in memory, with only the
        samples of ``metrics`` when given.
        """
        folder = self._suite_dir(suite)
        if not folder.is_dir():
            return []
        index = _read_index(folder)
        wanted = None if metrics is None else set(metrics)
        keep_loaded = last is None or wanted is not None
        kept: list[tuple[str, int, Path, Run | None]] = []
        for i, (path, st) in enumerate(_run_files(folder)):
            r: Run | None = None
            entry = index.get(path.name)
            if entry is None or not entry.fresh(st):
                r = self._load(path)
                entry = _Entry.of(r, st)
            if (branch is not None and entry.branch != branch) or (
                statuses is not None and entry.status not in statuses
            ):
                continue
            if keep_loaded:
                r = r if r is not None else self._load(path)
                if wanted is not None:
                    r = replace(r, samples=tuple(x for x in r.samples if x.metric in wanted))
            # in UTC (Run.public); ties keep the recording order
            kept.append((entry.created_at, i, path, r if keep_loaded else None))
            if last and len(kept) > 4 * last + 64:  # bounded: keep the newest so far
                kept.sort(key=lambda k: (k[0], k[1]))
                del kept[:-last]
        kept.sort(key=lambda k: (k[0], k[1]))
        if last:
            kept = kept[-last:]
        return [r if r is not None else self._load(path) for _, _, path, r in kept]

    def suites(self) -> list[str]:
        """Every suite folder holding at least one run file."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and any(p.glob("*.json")))

    def get_state(self, suite: str, key: str) -> dict[str, Any] | None:
        """A state document, or None (an unreadable one reads as absent: state can be rebuilt)."""
        path = self._suite_dir(suite) / _STATE / f"{_safe_key(key)}.json"
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def put_state(self, suite: str, key: str, value: dict[str, Any]) -> None:
        """Write a state document atomically."""
        self._write(self._suite_dir(suite) / _STATE / f"{_safe_key(key)}.json", value)

    def close(self) -> None:
        """Nothing to release."""
        return None
