"""Start ``python -m sleuth`` with known signal dispositions, whatever the test suite started with.

A suite started with ``&`` from a script or with nohup runs with SIGINT ignored, and a child
inherits that: a test that sends SIGINT would then wait for nothing.  The child is started through
a tiny exec shim that sets the dispositions first (no ``preexec_fn``, which is unsafe with threads);
a test of a hostile parent names more signals to ignore or to block in the mask sleuth inherits.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["signal_once_there", "sleuth_proc"]

_SHIM = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGINT, signal.SIG_IGN if sys.argv[1] == 'ignore' else signal.SIG_DFL); "
    "signal.signal(signal.SIGTERM, signal.SIG_DFL); "
    "signal.signal(signal.SIGHUP, signal.SIG_DFL); "
    "[signal.signal(getattr(signal, n), signal.SIG_IGN) for n in sys.argv[2].split(',') if n]; "
    "signal.pthread_sigmask(signal.SIG_SETMASK, [getattr(signal, n) for n in sys.argv[3].split(',') if n]); "
    "[os.kill(os.getpid(), getattr(signal, n)) for n in sys.argv[4].split(',') if n]; "
    "os.execv(sys.argv[5], sys.argv[5:])"
)


def sleuth_proc(
    args: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    *,
    sigint: str = "default",
    ignore: Sequence[str] = (),
    block: Sequence[str] = (),
    pending: Sequence[str] = (),
    **kw: Any,
) -> subprocess.Popen[Any]:
    """``python -m sleuth ARGS`` (same pid as returned) with SIGTERM and SIGHUP default and SIGINT
    ``default`` or ``ignore``; the signals named in ``ignore`` ignored, those in ``block`` (and no
    other) blocked; those in ``pending`` (blocked ones) sent before sleuth starts, so that they wait
    in it until it unblocks them."""
    shim = [sys.executable, "-c", _SHIM, sigint, ",".join(ignore), ",".join(block), ",".join(pending)]
    argv = [*shim, sys.executable, "-m", "sleuth", *args]
    return subprocess.Popen(argv, env=env, cwd=cwd, **kw)


def signal_once_there(
    proc: subprocess.Popen[Any], path: Path, sig: int = signal.SIGINT, timeout: float = 60.0
) -> tuple[Any, Any]:
    """Once ``path`` exists (a workload wrote it: it is running), send ``sig`` to ``proc`` and return
    its ``(stdout, stderr)``; ``proc`` is killed if it is still running after ``timeout`` or on any
    error (a hang detector, not a timing claim)."""
    try:
        deadline = time.monotonic() + timeout
        while not path.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(sig)
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def kill_9_once_ready(args: Sequence[str], env: dict[str, str], cwd: Path, d: Path) -> int:
    """Start ``sleuth ARGS``, ``kill -9`` it once its trial wrote ``d/ready``; the pid the trial wrote
    to ``d/pid``, still running (a killed sleuth leaves its trial: the next one must take it up)."""
    from tests.conftest import pid_alive

    proc = sleuth_proc(args, env, cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60  # a hang guard, not a timing claim
        while not (d / "ready").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert (d / "ready").exists(), "the trial did not start"
    finally:
        proc.kill()
        proc.wait()
    left = int((d / "pid").read_text())
    assert pid_alive(left)
    return left
