"""Virtual environments built by uv from pins, cached by a hash of the pins.

``VenvEnvironment(pins=("numpy==2.1.0",))`` builds ``<cache>/venvs/<hash>`` once (under a file
lock, so parallel sleuth processes build it once), marks it complete, and reuses it on every later
call.  A failed build leaves nothing behind.  Trials run with the venv's ``bin`` first on PATH and
``VIRTUAL_ENV`` set, so ``python`` and console scripts resolve inside it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.environments import cache_dir
from sleuth.errors import EnvironmentBuildError, UsageError
from sleuth.model import TrialSpec
from sleuth.runner import run_tool

__all__ = ["PreparedVenv", "VenvEnvironment", "uv_bin"]

_MARKER = ".sleuth-venv.json"


def uv_bin() -> str:
    """The uv executable shipped by the ``uv`` package (a dependency), else ``uv`` on PATH."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise EnvironmentBuildError("uv not found", hint="pip install uv") from None
        return found


@dataclass(frozen=True, slots=True)
class PreparedVenv:
    """A built venv."""

    path: Path
    pins: tuple[str, ...]

    @property
    def python(self) -> Path:
        """The venv's interpreter."""
        return self.path / "bin" / "python"

    def wrap(self, spec: TrialSpec) -> TrialSpec:
        """Put the venv's ``bin`` first on PATH."""
        env = dict(spec.env)
        env.pop("PYTHONHOME", None)
        env["VIRTUAL_ENV"] = str(self.path)
        env["PATH"] = f"{self.path / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
        return TrialSpec(
            argv=spec.argv,
            env=env,
            cwd=spec.cwd,
            timeout_s=spec.timeout_s,
            kill_grace_s=spec.kill_grace_s,
            label=spec.label,
            metrics=spec.metrics,
        )

    def snapshot(self) -> dict[str, Any]:
        """The fingerprint seen by the venv's own interpreter."""
        from sleuth import snapshot

        return snapshot.collect(python=str(self.python))


@dataclass(frozen=True, slots=True)
class VenvEnvironment:
    """A uv-built venv from ``pins`` (requirement strings) for ``python`` (path or X.Y)."""

    pins: tuple[str, ...]
    python: str | None = None
    cache: Path | None = None
    name: str = "venv"
    build_timeout_s: float = 1800.0
    _key: str = field(init=False, default="")

    def __post_init__(self) -> None:
        for pin in self.pins:
            if not pin.strip():
                raise UsageError("--with '': an empty requirement", hint="give e.g. --with 'numpy==2.1.0'")
        blob = json.dumps(
            {"pins": sorted(p.strip() for p in self.pins), "python": self.python or sys.version}
        )
        object.__setattr__(self, "_key", hashlib.sha256(blob.encode()).hexdigest()[:16])

    @property
    def path(self) -> Path:
        """Where this venv lives in the cache."""
        return (self.cache or cache_dir()) / "venvs" / self._key

    def describe(self) -> dict[str, Any]:
        """``{"kind": "venv", "pins": [...], "python": ...}``."""
        return {"kind": "venv", "pins": list(self.pins), "python": self.python}

    def prepare(self) -> PreparedVenv:
        """Build the venv unless a complete one is cached."""
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f"{self._key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (path / _MARKER).is_file():
                self._build(path)
        return PreparedVenv(path, self.pins)

    def _build(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
        uv = uv_bin()
        env = {**os.environ, "VIRTUAL_ENV": ""}
        env.pop("VIRTUAL_ENV")
        python = self.python or sys.executable
        try:
            made = run_tool([uv, "venv", "--quiet", "--python", python, str(path)], env=env, timeout_s=600)
            if not made.ok:
                raise EnvironmentBuildError(f"venv for python {python}: uv venv failed: {made.brief()}")
            if self.pins:
                inst = run_tool(
                    [uv, "pip", "install", "--quiet", "--python", str(path / "bin" / "python"), *self.pins],
                    env=env,
                    timeout_s=self.build_timeout_s,
                )
                if not inst.ok:
                    raise EnvironmentBuildError(
                        f"venv {' '.join(self.pins)}: uv pip install failed: {inst.brief()}"
                    )
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        marker = {"pins": list(self.pins), "python": python, "built_at": time.time()}
        (path / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")
