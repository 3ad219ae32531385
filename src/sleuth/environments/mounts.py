"""What docker/podman and pyxis mount into an image: :class:`Mount`, the output mount, the probe.

* :class:`Mount` is a host path bound at an absolute container path, read from ``SRC:DST[:ro]``
  (``--mount``): a relative container path, or a comma (the runtimes' separator), is a usage error;
  the host side is made absolute;
* a trial's output is mounted at :data:`OUTPUT_MOUNT` (:func:`make_output_dir` makes the host side);
* an image's snapshot runs :mod:`sleuth._probe` (stdlib-only) mounted read-only at
  :data:`PROBE_MOUNT` with the image's ``python3`` (:func:`probe_snapshot`); an image that cannot
  run it gets a ``probe_error`` in its snapshot, never a failed run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sleuth.errors import InfrastructureError, UsageError

__all__ = ["OUTPUT_MOUNT", "PROBE_MOUNT", "Mount", "make_output_dir", "probe_snapshot"]

OUTPUT_MOUNT = "/sleuth-output"
PROBE_MOUNT = "/sleuth-probe"


@dataclass(frozen=True, slots=True)
class Mount:
    """A host path ``src`` bound at ``dst`` inside the container."""

    src: str
    dst: str
    readonly: bool = False

    @classmethod
    def parse(cls, text: str, flag: str = "--mount") -> Mount:
        """``SRC:DST`` or ``SRC:DST:ro`` (``rw`` accepted); ``src`` made absolute."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1] or parts[2:] not in ([], ["ro"], ["rw"]):
            raise UsageError(f"{flag} {text!r}: expected SRC:DST or SRC:DST:ro")
        if not parts[1].startswith("/"):
            raise UsageError(f"{flag} {text!r}: the container path {parts[1]!r} must be absolute")
        if "," in text:
            raise UsageError(f"{flag} {text!r}: paths with commas cannot be mounted")
        return cls(os.path.abspath(os.path.expanduser(parts[0])), parts[1], parts[2:] == ["ro"])

    def spec(self) -> str:
        """The ``SRC:DST[:ro]`` form that :meth:`parse` reads."""
        return f"{self.src}:{self.dst}{':ro' if self.readonly else ''}"

    def arg(self) -> str:
        """The ``--mount`` value for docker/podman."""
        return f"type=bind,src={self.src},dst={self.dst}{',readonly' if self.readonly else ''}"


def make_output_dir(output_dir: str | Path | None) -> str | None:
    """The absolute host path of ``output_dir``, created; ``None`` passes through."""
    if output_dir is None:
        return None
    path = Path(output_dir).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _probe_dir() -> str:
    from sleuth import _probe

    return str(Path(_probe.__file__).resolve().parent)


def probe_snapshot(
    prefix: Sequence[str], description: dict[str, Any], env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run the probe mounted at ``/sleuth-probe`` through ``prefix`` (``... IMAGE python3``) with the
    client's ``env`` (where forwarded values travel).

    Returns ``{"schema", "taken_at", "container": description, "python", "packages", "env"}``,
    or ``"probe_error"`` instead of the last three when the image cannot run the probe.
    """
    from sleuth import snapshot

    snap: dict[str, Any] = {
        "schema": snapshot.SCHEMA,
        "taken_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "container": description,
    }
    try:
        snap.update(snapshot.probe_via(prefix, probe_path=f"{PROBE_MOUNT}/_probe.py", env=env))
    except InfrastructureError as exc:
        snap["probe_error"] = str(exc)
    return snap
