"""Start ``python -m sleuth`` with known signal dispositions, whatever the test suite started with.

A suite started with ``&`` from a script or with nohup runs with SIGINT ignored, and a child
inherits that: a test that sends SIGINT would then wait for nothing.  The child is started through
a tiny exec shim that sets the dispositions first (no ``preexec_fn``, which is unsafe with threads).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["sleuth_proc"]

_SHIM = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGINT, signal.SIG_IGN if sys.argv[1] == 'ignore' else signal.SIG_DFL); "
    "signal.signal(signal.SIGTERM, signal.SIG_DFL); "
    "signal.signal(signal.SIGHUP, signal.SIG_DFL); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def sleuth_proc(
    args: Sequence[str], env: dict[str, str], cwd: Path, *, sigint: str = "default", **kw: Any
) -> subprocess.Popen[Any]:
    """``python -m sleuth ARGS`` (same pid as returned) with SIGTERM and SIGHUP default and SIGINT ``default`` or ``ignore``."""
    argv = [sys.executable, "-c", _SHIM, sigint, sys.executable, "-m", "sleuth", *args]
    return subprocess.Popen(argv, env=env, cwd=cwd, **kw)
