"""Read a run dir for its report: the verb that made it, its journal, its JSON files and log tails.

Everything returned has been through the run's secrets: the values kept in ``secrets.json`` (when
the run dir still has it) and the rule of :mod:`sleuth.secrets` (token-shaped words, URL
credentials).  Trial logs are the workload's own output and are never scrubbed on disk, so a page
that shows one shows it scrubbed: a report is made to be attached to a ticket.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.errors import UsageError
from sleuth.report.page import Log
from sleuth.secrets import SECRETS_FILE, Secrets

__all__ = ["TAIL_BYTES", "RunDirView"]

#: the most of a log's end a page shows
TAIL_BYTES = 8192


def _kept_secrets(path: Path) -> Secrets:
    kept_at = path / SECRETS_FILE
    try:  # only a regular file: a FIFO there would block the read for ever
        kept = json.loads(kept_at.read_text(encoding="utf-8")) if kept_at.is_file() else {}
    except (OSError, ValueError):
        kept = {}
    if not isinstance(kept, dict):
        return Secrets()
    values = {str(k): v for k, v in kept.items() if isinstance(v, str) and v}
    # a verb may keep a hidden flag whole for its resume (``API_KEY=value``): a log holds the bare value
    for k, v in list(values.items()):
        _, eq, bare = v.partition("=")
        if eq and bare:
            values[f"{k}#value"] = bare
    return Secrets(values)


@dataclass(frozen=True, slots=True)
class RunDirView:
    """A run dir as a report reads it."""

    path: Path
    verb: str
    events: tuple[dict[str, Any], ...]
    secrets: Secrets

    @classmethod
    def open(cls, path: Path) -> RunDirView:
        """The run dir at ``path``; a path that is not one is a one-line ``UsageError``."""
        from sleuth.journal import read_journal
        from sleuth.resuming import made_by

        if not path.is_dir():
            raise UsageError(
                f"{path}: no such run dir" if not path.exists() else f"{path}: not a directory",
                hint="pass the run dir a sleuth verb printed (e.g. sleuth-runs/run/NAME/TIMESTAMP)",
            )
        path = path.resolve()
        events = read_journal(path / "journal.jsonl")
        start = next((e for e in events if e.get("event") == "start"), None)
        verb = made_by(path, start)
        if verb is None:
            raise UsageError(
                f"{path}: not a sleuth run dir (no journal.jsonl with a start event)",
                hint="pass the run dir a sleuth verb printed (e.g. sleuth-runs/run/NAME/TIMESTAMP)",
            )
        secrets = _kept_secrets(path)
        return cls(path, verb, tuple(secrets.scrub(e) for e in events), secrets)

    @property
    def start(self) -> dict[str, Any]:
        """The journal's ``start`` event (scrubbed)."""
        return next((e for e in self.events if e.get("event") == "start"), {})

    def scrub(self, obj: Any) -> Any:
        """``obj`` with the run's secrets hidden."""
        return self.secrets.scrub(obj)

    def json(self, name: str) -> Any | None:
        """The JSON document ``name`` (relative to the run dir), scrubbed; None when it is absent
        (a run still going or killed has no summary yet) or unreadable (cut short by a full disk,
        not JSON: :meth:`unreadable` says why).  A run dir is whatever it holds: the page says what
        it could not read and shows the rest."""
        data, _ = self._load(name)
        return data

    def unreadable(self, name: str) -> str | None:
        """Why the file ``name`` is there but holds no JSON document (scrubbed), or None when it
        is absent or reads."""
        _, why = self._load(name)
        return why

    def _load(self, name: str) -> tuple[Any | None, str | None]:
        file = self.path / name
        try:  # only a regular file: a FIFO there would block the read for ever
            if not file.is_file():
                return None, None
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            why = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
            return None, self.scrub(f"{name} is unreadable ({why})")
        return self.scrub(data), None

    def tail(self, name: str | Path, limit: int = TAIL_BYTES) -> Log | None:
        """The last ``limit`` bytes of the log ``name`` (relative to the run dir), decoded with
        replacement and scrubbed, starting at a line; None when the file is absent or empty."""
        file = self.path / name
        try:
            if not file.is_file():
                return None
            with file.open("rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                fh.seek(max(0, size - limit))
                raw = fh.read(limit)
        except OSError:
            return None
        if not raw:
            return None
        omitted = max(0, size - limit)
        if omitted:
            cut = raw.find(b"\n")
            if 0 <= cut < len(raw) - 1:
                omitted += cut + 1
                raw = raw[cut + 1 :]
        text = self.scrub(raw.decode("utf-8", "replace"))
        return Log(str(Path(name)), text, omitted)
