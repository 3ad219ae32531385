"""The store contract every backend meets, URL parsing, and the empty history."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sleuth.errors import UsageError
from sleuth.gate.model import Run, RunStatus

__all__ = ["DEFAULT_URL", "EmptyStore", "Store", "StoreURL", "parse_url"]

DEFAULT_URL = "sqlite:///.sleuth/history.db"
_SCHEMES = "sqlite:///PATH, postgresql://USER@HOST/DB or dir://PATH"


class Store(Protocol):
    """A history of runs per suite, oldest first, plus small named state documents."""

    #: the URL with any password hidden, for messages
    display: str

    def add_run(self, run: Run, *, replace: bool = False) -> bool:
        """Store ``run``; False (nothing written) when its run id is recorded already and not ``replace``."""
        ...

    def has_run(self, suite: str, run_id: str) -> bool:
        """Whether ``suite`` already holds ``run_id``."""
        ...

    def created_at(self, suite: str, run_id: str) -> str | None:
        """When the recorded run ``run_id`` happened, or None when it is not recorded."""
        ...

    def runs(
        self,
        suite: str,
        *,
        branch: str | None = None,
        statuses: Sequence[RunStatus] | None = None,
        last: int | None = None,
        metrics: Sequence[str] | None = None,
    ) -> list[Run]:
        """The suite's runs (optionally one branch, some statuses), the ``last`` most recent, oldest first;
        with ``metrics``, a store may leave out the samples of other metrics (``changepoints`` reads one)."""
        ...

    def suites(self) -> list[str]:
        """Every suite with at least one run, sorted."""
        ...

    def get_state(self, suite: str, key: str) -> dict[str, Any] | None:
        """A state document (the incremental change-point detector's), or None."""
        ...

    def put_state(self, suite: str, key: str, value: dict[str, Any]) -> None:
        """Write (replace) a state document."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


@dataclass(frozen=True, slots=True)
class StoreURL:
    """A parsed ``--db`` value."""

    kind: str  # "sqlite", "postgresql" or "dir"
    url: str  # what SQLAlchemy is given (driver added for PostgreSQL)
    path: Path  # the file or directory (sqlite, dir)
    display: str  # the URL with the password hidden


def _hide_password(url: str) -> str:
    """The URL with its password hidden: the redaction rule, and whatever the authority's
    ``user:password@`` holds (an empty user, a stray space: forms the rule does not read as a URL)."""
    from sleuth.secrets import REDACTED, scrub_text

    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if sep and at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        url = f"{scheme}://{user}:{REDACTED}@{host}{slash}{path}"
    return scrub_text(url)


def parse_url(url: str) -> StoreURL:
    """``sqlite:///rel`` or ``sqlite:////abs``, ``postgresql://...``, ``dir://path``; else UsageError."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or not rest:
        raise UsageError(f"--db {url!r}: not a store URL", hint=f"use {_SCHEMES}")
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise UsageError(
                f"--db {url!r}: a SQLite URL needs three slashes and a path",
                hint="e.g. sqlite:///.sleuth/history.db",
            )
        path = Path(rest[1:])
        if rest[1:] in ("", ":memory:"):
            raise UsageError(
                f"--db {url!r}: a SQLite history needs a file path", hint="e.g. sqlite:///history.db"
            )
        if os.path.isdir(path):  # False, not an error, for a name too long (paths.check_path says so)
            raise UsageError(f"--db {url!r}: {path} is a directory", hint="give the SQLite file inside it")
        return StoreURL("sqlite", f"sqlite:///{path}", path, url)
    if scheme == "dir":
        if os.path.exists(rest) and not os.path.isdir(rest):
            raise UsageError(f"--db {url!r}: {rest} is not a directory", hint="give a directory for dir://")
        return StoreURL("dir", url, Path(rest), url)
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        # SQLAlchemy's plain postgresql:// means psycopg2; the declared driver is psycopg 3
        driver = scheme if scheme.startswith("postgresql+") else "postgresql+psycopg"
        return StoreURL("postgresql", f"{driver}://{rest}", Path(), _hide_password(url))
    raise UsageError(f"--db {url!r}: unknown scheme {scheme!r}", hint=f"use {_SCHEMES}")


class EmptyStore:
    """A history that does not exist yet: every read is empty; writing is a bug."""

    def __init__(self, display: str) -> None:
        self.display = display

    def add_run(self, run: Run, *, replace: bool = False) -> bool:
        raise AssertionError("EmptyStore is read-only")

    def has_run(self, suite: str, run_id: str) -> bool:
        return False

    def created_at(self, suite: str, run_id: str) -> str | None:
        return None

    def runs(
        self,
        suite: str,
        *,
        branch: str | None = None,
        statuses: Sequence[RunStatus] | None = None,
        last: int | None = None,
        metrics: Sequence[str] | None = None,
    ) -> list[Run]:
        return []

    def suites(self) -> list[str]:
        return []

    def get_state(self, suite: str, key: str) -> dict[str, Any] | None:
        return None

    def put_state(self, suite: str, key: str, value: dict[str, Any]) -> None:
        raise AssertionError("EmptyStore is read-only")

    def close(self) -> None:
        return None
