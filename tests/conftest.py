"""Shared fixtures: paths to the fake workloads and a runner for the real ``sleuth`` CLI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PROGRAMS = Path(__file__).parent / "programs"

# The suite's own waits need what sleuth's main() restores for itself: a parent that left SIGCHLD
# ignored made every child's exit read as 0 (ECHILD), and one that left signals blocked made the
# tests' SIGTERMs to their workloads wait for nothing.  Each xdist worker imports this module too.
if signal.getsignal(signal.SIGCHLD) is signal.SIG_IGN:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD))
# What a developer's shell or a CI job may set that sleuth reads: a test must not write the person's
# gate history ($SLEUTH_GATE_DB), append to the CI job's summary page ($GITHUB_STEP_SUMMARY), or see
# another output folder or progress interval than the one it sets; rich's own switches (colour, a pipe
# taken for a terminal) would put escape codes in the output the tests read; a uv index strategy
# changes which releases bisect pypi lists.
for _name in ("SLEUTH_GATE_DB", "GITHUB_STEP_SUMMARY", "SLEUTH_OUTPUT", "SLEUTH_PROGRESS_INTERVAL",
              "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "UV_INDEX_STRATEGY"):  # fmt: skip
    os.environ.pop(_name, None)
# A git hook that runs the suite (pre-commit, pre-push) exports GIT_DIR, GIT_INDEX_FILE...: every
# repository a test builds with plain `git` went into the person's own repository instead.
from sleuth.bisect.checkouts import GIT_REDIRECTS  # noqa: E402

for _name in GIT_REDIRECTS:
    os.environ.pop(_name, None)


@pytest.fixture(autouse=True)
def _spawning_allowed_again() -> Any:
    """A test that stopped everything in-process (``cancel_all``, ``kill_all``) leaves the process-wide
    cancel behind: every later test in the same xdist worker would see each of its spawns cancelled."""
    yield
    from sleuth import runner

    runner.reset_cancel()


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # gone meanwhile: no file, or ESRCH from the read of an exiting one
        return False


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    """Wait until ``pid`` is gone; True if it died in time."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def program(name: str) -> str:
    """Absolute path of a fake workload in tests/programs."""
    return str(PROGRAMS / name)


@dataclass
class CliResult:
    rc: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def programs() -> Path:
    return PROGRAMS


@pytest.fixture
def sleuth_env(tmp_path: Path) -> dict[str, str]:
    """Environment for CLI subprocesses: run dirs and caches under tmp_path."""
    env = dict(os.environ)
    env["SLEUTH_OUTPUT"] = str(tmp_path / "runs")
    env.setdefault("SLEUTH_CACHE", str(tmp_path / "cache"))
    env["COLUMNS"] = "200"
    return env


@pytest.fixture
def sleuth(tmp_path: Path, sleuth_env: dict[str, str]) -> Callable[..., CliResult]:
    """Run ``python -m sleuth ARGS`` as a real subprocess in tmp_path."""

    def run(
        *args: str | Path, timeout: float = 120, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> CliResult:
        argv: Sequence[str] = [sys.executable, "-m", "sleuth", *map(str, args)]
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**sleuth_env, **(env or {})},
            cwd=cwd or tmp_path,
            stdin=subprocess.DEVNULL,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def evidence(tmp_path: Path) -> Iterator[Path]:
    """A folder where a test's workload leaves its evidence (files it writes on a signal, its pids in
    ``pid`` or ``*.pid``); whatever those pids name is killed afterwards, whatever happened (and
    reaped, when this process, a subreaper after an in-process spawn, adopted it)."""
    d = tmp_path / "evidence"
    d.mkdir()
    yield d
    for f in [*d.glob("pid"), *d.glob("*.pid")]:
        with contextlib.suppress(ProcessLookupError, ValueError, OSError):
            pid = int(f.read_text())
            os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
