"""Where gate history lives: ``sqlite:///path`` (default), ``postgresql://...`` or ``dir://path``.

``open_store(url, create=...)`` returns a :class:`~sleuth.gate.store.base.Store`.  Reading commands
pass ``create=False``: a SQLite file or directory that does not exist yet is an empty history (the
first run in CI, offline), not an error, and nothing is created.
"""

from __future__ import annotations

import os

from sleuth.gate.store.base import DEFAULT_URL, EmptyStore, Store, StoreURL, parse_url

__all__ = ["DEFAULT_URL", "Store", "StoreURL", "default_url", "open_store", "parse_url"]


def default_url() -> str:
    """``$SLEUTH_GATE_DB``, else ``sqlite:///.sleuth/history.db`` (relative to the current directory)."""
    return os.environ.get("SLEUTH_GATE_DB") or DEFAULT_URL


def open_store(url: str, *, create: bool) -> Store:
    """Open the history at ``url``; with ``create=False`` a missing SQLite file or dir reads as empty."""
    parsed = parse_url(url)
    if parsed.kind == "dir":
        from sleuth.gate.store.dirstore import DirStore

        if not create and not parsed.path.is_dir():
            return EmptyStore(parsed.display)
        return DirStore(parsed.path, display=parsed.display)
    from sleuth.gate.store.sql import SqlStore

    if parsed.kind == "sqlite" and not create and not parsed.path.is_file():
        return EmptyStore(parsed.display)
    return SqlStore(parsed, create=create)
