"""The host environment: run trials as they are, on this machine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sleuth.model import TrialSpec

__all__ = ["HostEnvironment"]


@dataclass(frozen=True, slots=True)
class HostEnvironment:
    """This machine, this interpreter, this PATH."""

    name: str = "host"

    def prepare(self) -> HostEnvironment:
        """Nothing to build."""
        return self

    def wrap(self, spec: TrialSpec) -> TrialSpec:
        """Unchanged."""
        return spec

    def snapshot(self) -> dict[str, Any]:
        """The host's fingerprint."""
        from sleuth import snapshot

        return snapshot.collect()

    def describe(self) -> dict[str, Any]:
        """``{"kind": "host"}``."""
        return {"kind": "host"}
