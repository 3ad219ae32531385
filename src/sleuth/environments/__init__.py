"""Environments: where a trial runs (host, venv, container, pyxis, git checkout).

Contract (DESIGN §3): ``Environment.prepare() -> Prepared`` builds or reuses what is needed
(cached by content hash under :func:`cache_dir`); ``Prepared.wrap(spec)`` returns the spec to run
there (argv prefix, PATH, cwd); ``Prepared.snapshot()`` fingerprints it.  ``describe()`` gives the
JSON-able form that a resolved config stores to replay the run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from sleuth.model import TrialSpec

__all__ = ["Environment", "Prepared", "cache_dir"]


def cache_dir() -> Path:
    """``$SLEUTH_CACHE``, else ``$XDG_CACHE_HOME/sleuth``, else ``~/.cache/sleuth``."""
    env = os.environ.get("SLEUTH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "sleuth"


class Prepared(Protocol):
    """An environment ready to run trials."""

    def wrap(self, spec: TrialSpec) -> TrialSpec:
        """The spec to run inside this environment."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """A fingerprint of this environment (see :mod:`sleuth.snapshot`)."""
        ...


class Environment(Protocol):
    """A recipe for a place to run trials."""

    name: str

    def prepare(self) -> Prepared:
        """Build (or reuse from the cache) and return the ready environment."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able description, enough to rebuild it."""
        ...
