"""A private part of :mod:`sleuth.runner`: infrastructure commands (git, uv, nvidia-smi), :func:`run_tool`.

* the program is looked up on the ``PATH`` it will run with first: a missing one raises
  ``InfrastructureError`` (with a hint), never a trial's failure; a non-zero exit is returned;
* output is captured in memory (tools print little), decoded as UTF-8 with replacement;
* the spawn goes through :mod:`sleuth._spawn` like a trial's: its own session, registered until
  reaped, so a timeout, a cancel or Ctrl-C stops its whole group (SIGTERM, 2 s, SIGKILL);
* the process limit (EAGAIN) raises ``OSError``: a stop of the run, not a candidate's ERROR.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sleuth import _spawn
from sleuth.errors import InfrastructureError

__all__ = ["ToolResult", "run_tool"]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A finished infrastructure command (git, uv, nvidia-smi), output captured in memory."""

    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str
    wall_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.rc == 0 and not self.timed_out

    def brief(self, limit: int = 300) -> str:
        """The last line of stderr (or stdout), for one-line error messages; trailing ``hint:``/
        ``help:``/``note:`` lines (uv, cargo-style tools) are skipped for the line that names the error."""
        text = [ln for ln in (self.stderr.strip() or self.stdout.strip()).splitlines() if ln.strip()]
        lines = [ln for ln in text if not ln.lstrip().lower().startswith(("hint:", "help:", "note:"))]
        last = (lines or text)[-1] if text else f"exit {self.rc}"
        return last.strip()[:limit]


def run_tool(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    input_text: str | None = None,
    pass_fds: Sequence[int] = (),
) -> ToolResult:
    """Run an infrastructure command and capture its output.

    Raises ``InfrastructureError`` when the program does not exist; a non-zero exit is returned.
    ``pass_fds``: descriptors the tool inherits, e.g. a lock that must stay held while it runs,
    even when sleuth is killed (``kill -9``) and the tool goes on alone.
    """
    exe = argv[0]
    if os.sep not in exe and shutil.which(exe, path=(env or os.environ).get("PATH")) is None:
        raise InfrastructureError(f"command not found: {exe}", hint=f"install {exe} or put it on PATH")
    t0 = time.monotonic()
    try:
        proc, _live, cancelled = _spawn.spawn(
            argv,
            None,
            2.0,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            pass_fds=tuple(pass_fds),
        )
    except OSError as exc:
        if exc.errno == errno.EAGAIN:  # the process limit: a stop (exit 4), not the candidate's ERROR
            raise OSError(errno.EAGAIN, f"the process limit is reached: could not start {argv[0]}") from exc
        raise InfrastructureError(_spawn.spawn_error(argv, str(cwd) if cwd else None, exc)) from exc
    timed_out = False
    try:
        if cancelled:  # Ctrl-C landed while this tool was being spawned
            _spawn.stop(proc, None, 2.0)
        try:
            out, err = proc.communicate(input=input_text.encode() if input_text else None, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _spawn.stop(proc, None, 2.0)
            out, err = proc.communicate()
    except BaseException:  # Ctrl-C: once forgotten, kill_all and the exit hook no longer reach it
        _spawn.stop(proc, None, 2.0)
        raise
    finally:
        _spawn.forget(proc.pid)
    return ToolResult(
        argv=tuple(argv),
        rc=proc.returncode if proc.returncode is not None else -1,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
        wall_s=time.monotonic() - t0,
        timed_out=timed_out,
    )
