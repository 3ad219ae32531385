"""A PATH of the test's own: fake container runtimes plus links to exactly the host tools a test needs.

Tests that fake docker/podman/srun/skopeo must never find the host's real ones, wherever they are
installed (``/usr/bin/podman`` from a distribution package, ``/usr/local/bin/docker``, a Slurm
``srun``).  Keeping ``/usr/bin`` on PATH is not enough, so :func:`isolated_path` builds a bin dir
that holds only what the test asks for and returns it as the whole PATH.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["BASICS", "FAKE_RUNTIME", "RUNTIMES", "install_fake", "isolated_path"]

FAKE_RUNTIME = Path(__file__).parent / "programs" / "fake_runtime.py"
#: the names tests/programs/fake_runtime.py can play
RUNTIMES = ("docker", "podman", "srun", "skopeo")
#: what the code under test spawns by name: ``python3`` (the probe inside a "container"), ``sh``
BASICS = ("sh", "python", "python3", "true", "env")


def _executable(path: Path, body: str) -> None:
    path.write_text(body)
    path.chmod(0o755)


def install_fake(bin_dir: Path, *tools: str) -> None:
    """Shims named ``tools`` in ``bin_dir`` that run the fake runtime as that tool."""
    for tool in tools:
        if tool not in RUNTIMES:
            raise ValueError(f"fake_runtime.py cannot play {tool!r}; it plays {', '.join(RUNTIMES)}")
        _executable(bin_dir / tool, f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_RUNTIME}" {tool} "$@"\n')


def isolated_path(bin_dir: Path, *, fakes: Iterable[str] = (), tools: Iterable[str] = BASICS) -> str:
    """Create ``bin_dir`` with the ``fakes`` shims and ``tools``; return it as the complete PATH.

    ``python``/``python3`` run this interpreter (the test venv's, with its packages); every other
    tool is a link to the host's, looked up on the PATH in force when this is called.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    install_fake(bin_dir, *fakes)
    for tool in tools:
        if tool in RUNTIMES:
            raise ValueError(f"{tool} is a container tool: pass it in fakes, never link the host's")
        target = bin_dir / tool
        if target.exists() or target.is_symlink():
            continue
        if tool in ("python", "python3"):
            _executable(target, f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
            continue
        found = shutil.which(tool)
        if found is None:
            raise FileNotFoundError(f"the tests need {tool} on PATH")
        # link the name found, not its resolved target: multi-call binaries (busybox) dispatch on it
        target.symlink_to(found)
    return str(bin_dir)
