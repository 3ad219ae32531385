"""The history as a directory of per-run JSON files: ``<root>/<suite>/<run id>.json``.

Meant for CI artifacts and for reading with nothing but ``jq``.  Each file is written atomically
(whole or absent); state documents live in ``<root>/<suite>/.state/<key>.json``.  A file that is
not a run (hand-edited, truncated by a full disk) stops the read with its path, rather than
silently shrinking the history a gate judges.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sleuth.errors import InfrastructureError, UsageError
from sleuth.gate.model import Run, RunStatus, fit
from sleuth.journal import atomic_write_json
from sleuth.model import check_name

__all__ = ["DirStore"]

_STATE = ".state"


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
        try:
            atomic_write_json(path, run.to_dict())
        except OSError as exc:
            raise InfrastructureError(f"--db {self.display}: cannot write {path}: {exc.strerror}") from None
        return True

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
                f"--db {self.display}: {path} is not a recorded run ({type(exc).__name__}: {str(exc)[:100]})",
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

        Every file is read (a file that is not a run stops the read), but only the runs returned
        are kept in memory, with only the samples of ``metrics`` when given: a history of 1,000 runs
        of 10,000 metrics held every sample of every run to return the last 53 (or one metric).
        """
        folder = self._suite_dir(suite)
        if not folder.is_dir():
            return []
        files = sorted((p for p in folder.glob("*.json") if p.is_file()), key=lambda p: p.stat().st_mtime_ns)
        wanted = None if metrics is None else set(metrics)
        kept: list[tuple[str, int, Path, Run | None]] = []
        for i, path in enumerate(files):
            r = self._load(path)
            if (branch is not None and r.branch != branch) or (
                statuses is not None and r.status not in statuses
            ):
                continue
            if wanted is not None:
                r = replace(r, samples=tuple(x for x in r.samples if x.metric in wanted))
            # in UTC (Run.public); ties keep the recording order
            kept.append((r.created_at, i, path, r if last is None or wanted is not None else None))
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
        atomic_write_json(self._suite_dir(suite) / _STATE / f"{_safe_key(key)}.json", value)

    def close(self) -> None:
        """Nothing to release."""
        return None
