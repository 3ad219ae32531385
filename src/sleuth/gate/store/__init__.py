"""Where gate history lives: ``sqlite:///path`` (default), ``postgresql://...`` or ``dir://path``.

``open_store(url, create=...)`` returns a :class:`~sleuth.gate.store.base.Store`.  Reading commands
pass ``create=False``: a SQLite file or directory that does not exist yet is an empty history (the
first run in CI, offline), not an error, and nothing is created.  ``record`` opens its history with
``open_to_record(url)``: a SQLite file or directory that does not exist yet is made by the first
write, so a command that writes nothing (``record --from-dir`` of a tree with nothing to record, a
bad input found late) leaves none behind, and a first write that fails takes back what it made.
Both first check that the path can hold a history (:func:`sleuth.gate.store.paths.check_path`: a
name too long, a folder on the way that is a file, a location ``record`` cannot write): a usage
error, before anything is made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sleuth.gate.model import Run, RunStatus
from sleuth.gate.store.base import DEFAULT_URL, EmptyStore, Store, StoreURL, parse_url
from sleuth.gate.store.paths import SQLITE_SIDES, check_path

__all__ = ["DEFAULT_URL", "Store", "StoreURL", "default_url", "open_store", "open_to_record", "parse_url"]

_T = TypeVar("_T")


def default_url() -> str:
    """``$SLEUTH_GATE_DB``, else ``sqlite:///.sleuth/history.db`` (relative to the current directory)."""
    return os.environ.get("SLEUTH_GATE_DB") or DEFAULT_URL


def open_store(url: str, *, create: bool) -> Store:
    """Open the history at ``url``; with ``create=False`` a missing SQLite file or dir reads as empty."""
    parsed = parse_url(url)
    check_path(parsed, write=create)
    if not create and _missing(parsed):
        return EmptyStore(parsed.display)
    return _open(parsed, create=create)


def open_to_record(url: str) -> Store:
    """The history at ``url`` to write into; one that does not exist yet reads as empty and is made
    by the first write (see the module doc)."""
    parsed = parse_url(url)
    check_path(parsed, write=True)
    return _Unmade(parsed) if _missing(parsed) else _open(parsed, create=True)


def _missing(url: StoreURL) -> bool:
    """Whether a SQLite file or store directory does not exist yet (a database server's always does)."""
    return (url.kind == "dir" and not url.path.is_dir()) or (url.kind == "sqlite" and not url.path.is_file())


def _open(parsed: StoreURL, *, create: bool) -> Store:
    if parsed.kind == "dir":
        from sleuth.gate.store.dirstore import DirStore

        return DirStore(parsed.path, display=parsed.display)
    from sleuth.gate.store.sql import SqlStore

    return SqlStore(parsed, create=create)


class _Unmade:
    """A SQLite file or store directory that does not exist yet: an empty history until its first
    write makes it; a first write that fails removes every file and folder it made."""

    def __init__(self, url: StoreURL) -> None:
        self.display = url.display
        self._url = url
        self._store: Store = EmptyStore(url.display)
        self._made = False

    def _write(self, write: Callable[[Store], _T]) -> _T:
        if self._made:
            return write(self._store)
        made = _missing_paths(self._url)
        try:
            self._store = _open(self._url, create=True)
            self._made = True
            return write(self._store)
        except BaseException:
            self._store.close()
            self._store, self._made = EmptyStore(self.display), False
            _remove(made, self._url)
            raise

    def add_run(self, run: Run, *, replace: bool = False) -> bool:
        return self._write(lambda s: s.add_run(run, replace=replace))

    def put_state(self, suite: str, key: str, value: dict[str, Any]) -> None:
        self._write(lambda s: s.put_state(suite, key, value))

    def has_run(self, suite: str, run_id: str) -> bool:
        return self._store.has_run(suite, run_id)

    def created_at(self, suite: str, run_id: str) -> str | None:
        return self._store.created_at(suite, run_id)

    def runs(
        self,
        suite: str,
        *,
        branch: str | None = None,
        statuses: Sequence[RunStatus] | None = None,
        last: int | None = None,
        metrics: Sequence[str] | None = None,
    ) -> list[Run]:
        return self._store.runs(suite, branch=branch, statuses=statuses, last=last, metrics=metrics)

    def suites(self) -> list[str]:
        return self._store.suites()

    def get_state(self, suite: str, key: str) -> dict[str, Any] | None:
        return self._store.get_state(suite, key)

    def close(self) -> None:
        self._store.close()


def _missing_paths(url: StoreURL) -> list[Path]:
    """The store's path and its folders that do not exist, outermost first (what a write would make)."""
    path = url.path.absolute()
    return [p for p in (*reversed(path.parents), path) if not os.path.lexists(p)]  # a link is the user's


def _remove(made: list[Path], url: StoreURL) -> None:
    """Remove what a failed first write made (``made``: :func:`_missing_paths` before it)."""
    store = url.path.absolute()
    for p in reversed(made):
        with contextlib.suppress(OSError):
            if p != store:
                p.rmdir()  # a folder above the store: only when nothing else has come into it
            elif url.kind == "dir":
                shutil.rmtree(p)
            else:
                for side in ("", *SQLITE_SIDES):
                    Path(f"{p}{side}").unlink(missing_ok=True)
