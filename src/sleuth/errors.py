"""One error root for everything sleuth raises on purpose, and the documented exit codes.

A workload's failure is data (a ``TrialResult``), never an exception.  Exceptions are for a
user's mistake (``UsageError``, ``ConfigError``: one line, exit 2) and for infrastructure that
could not do its job (``InfrastructureError``: exit 4).  Anything else escaping the CLI is our
bug and keeps its traceback.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "BackendUnavailable",
    "ConfigError",
    "EnvironmentBuildError",
    "ExitCode",
    "InfrastructureError",
    "Interrupted",
    "SleuthError",
    "UsageError",
]


class ExitCode(IntEnum):
    """Exit codes of every ``sleuth`` command."""

    #: success, or the answer was found
    OK = 0
    #: the answer is "failed/regressed" (``sleuth run`` with a failing trial, a gate that fails)
    FAILED = 1
    #: usage or configuration error: a bad flag, a bad file, a bad value
    USAGE = 2
    #: inconclusive, ambiguous, or not enough data to answer
    INCONCLUSIVE = 3
    #: infrastructure error: a trial could not start, an environment could not be built
    INFRASTRUCTURE = 4
    #: interrupted (Ctrl-C): children killed, partial results kept
    INTERRUPTED = 130


class SleuthError(Exception):
    """Root of every error sleuth raises on purpose; the CLI prints ``str(err)`` on one line."""

    exit_code: ExitCode = ExitCode.INFRASTRUCTURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}; {hint}")


class UsageError(SleuthError):
    """A flag or argument on the command line is wrong."""

    exit_code = ExitCode.USAGE


class ConfigError(SleuthError):
    """A configuration file (recipe, mitigations file) is wrong; the message names file and key path."""

    exit_code = ExitCode.USAGE


class InfrastructureError(SleuthError):
    """Something sleuth needs outside the workload failed (git, uv, a container runtime)."""

    exit_code = ExitCode.INFRASTRUCTURE


class EnvironmentBuildError(InfrastructureError):
    """An environment (venv, checkout, image) could not be prepared."""


class BackendUnavailable(InfrastructureError):
    """The requested backend (slurm, ray) is not usable on this machine."""


class Interrupted(SleuthError):
    """The user interrupted the run; partial results were kept."""

    exit_code = ExitCode.INTERRUPTED
