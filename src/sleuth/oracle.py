"""Oracles judge a ``TrialResult`` into an ``Outcome``; failure signatures name the bug.

The built-in oracle combines, in order: an infrastructure error (ERROR), a skip exit code (SKIP),
a timeout / signal / non-zero exit (FAIL), a ``--fail-regex`` match in the chosen stream (FAIL, even
on exit 0) and metric thresholds (FAIL).  A user callable (``module:function`` or
``path/to/file.py:function``) sees the ``TrialResult`` and may override the verdict.

A *signature* is the normalized identity of a failure: ``exit 1: ValueError: loss is <n>``,
``signal SIGSEGV``, ``timeout``; compare two only with :func:`same_failure`.  How signatures are made
and compared (versions, paths, hints, near-identical messages) is in :mod:`sleuth.signature`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import os
import re
import signal as _signal
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sleuth.errors import UsageError
from sleuth.model import Outcome, Stream, TrialResult
from sleuth.scan import find_first_line

__all__ = [
    "Judgement",
    "Oracle",
    "OracleConfig",
    "StandardOracle",
    "Threshold",
    "build_oracle",
    "error_line",
    "group_signatures",
    "head_of",
    "load_callable",
    "normalize_line",
    "same_failure",
]


@dataclass(frozen=True, slots=True)
class Judgement:
    """An oracle's verdict on one trial."""

    outcome: Outcome
    signature: str | None = None
    reason: str = ""


class Oracle(Protocol):
    """Anything that judges a trial."""

    def judge(self, result: TrialResult) -> Judgement:
        """The verdict on ``result``."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Threshold:
    """FAIL when metric ``name`` is above (``above=True``) or below ``limit``."""

    name: str
    limit: float
    above: bool

    def describe(self) -> str:
        """``loss > 2.5`` style text."""
        return f"{self.name} {'>' if self.above else '<'} {self.limit:g}"


@dataclass(frozen=True, slots=True, kw_only=True)
class OracleConfig:
    """Everything the built-in oracle needs; built from CLI flags or a recipe."""

    skip_exit: tuple[int, ...] = ()
    fail_regex: re.Pattern[str] | None = None
    stream: Stream = Stream.BOTH
    thresholds: tuple[Threshold, ...] = ()
    #: ``module:function`` or ``file.py:function``; loaded by :func:`build_oracle`
    callable_ref: str | None = None
    #: a non-zero exit code is a FAIL (False: only the regex/thresholds/callable decide)
    nonzero_fails: bool = True


# --- signatures (the rule lives in sleuth.signature) --------------------------------------------


# sleuth.signature compiles some 30 regexes (a few ms): imported at the first failure, not at start-up


def same_failure(a: str | None, b: str | None) -> bool:
    """Whether two signatures name the same failure (:func:`sleuth.signature.same_failure`)."""
    from sleuth.signature import same_failure as same

    return same(a, b)


def group_signatures(sigs: Iterable[str]) -> dict[str, list[str]]:
    """Signatures grouped by failure, keyed by representative (:func:`sleuth.signature.group_signatures`)."""
    from sleuth.signature import group_signatures as group

    return group(sigs)


def normalize_line(line: str, limit: int | None = None) -> str:
    """A message with what changes between runs replaced (:func:`sleuth.signature.normalize_line`)."""
    from sleuth.signature import normalize_line as normalize

    return normalize(line) if limit is None else normalize(line, limit)


def error_line(result: TrialResult) -> str | None:
    """The line that best names the error: pytest's failed test, the last exception with its message,
    else the first error-ish line (stderr before stdout)."""
    from sleuth.signature import error_text

    return error_text(result.stderr_tail, result.stdout_tail)


def head_of(result: TrialResult) -> str:
    """``timeout``, ``signal SIGSEGV`` or ``exit N``."""
    if result.timed_out:
        return "timeout"
    if result.signal is not None:
        try:
            return f"signal {_signal.Signals(result.signal).name}"
        except ValueError:
            return f"signal {result.signal}"
    return f"exit {result.rc}"


def _signature(head: str, line: str | None) -> str:
    from sleuth.signature import make_signature

    return make_signature(head, line)


# --- the built-in oracle ----------------------------------------------------------------------


def _import_here_too(name: str, also: Sequence[str] = ()) -> Any:
    """Import ``name``; like ``python -m``, a module in the current directory is found too (the
    ``sleuth`` console script does not put the current directory on ``sys.path``), then in ``also``
    (a resumed run's own directory: the module sat where the run started)."""
    top = name.partition(".")[0]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        dirs = [d for d in dict.fromkeys((os.getcwd(), *also)) if d not in sys.path]
        if exc.name != top or not dirs:
            raise
        missing = exc
    for here in dirs:
        sys.path.insert(0, here)
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != top:
                raise
            missing = exc
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(here)
    raise missing


def load_callable(
    ref: str, source: str = "--oracle", also: Sequence[str] = ()
) -> Callable[[TrialResult], Any]:
    """Import ``module:function`` or ``path/file.py:function``; a UsageError naming ``source`` if it fails.

    A module is also looked for in the current directory, then in the directories ``also``."""
    mod_name, sep, func_name = ref.rpartition(":")
    if not sep or not mod_name or not func_name:
        raise UsageError(f"{source} {ref!r}: expected module:function or path/to/file.py:function")
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None or not path.is_file():
                raise UsageError(f"{source} {ref!r}: file {mod_name} not found")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = _import_here_too(mod_name, also)
    except UsageError:
        raise
    except (Exception, SystemExit) as exc:  # a script that exits when imported (argparse, sys.exit)
        why = f"it exits when imported (SystemExit: {exc})" if isinstance(exc, SystemExit) else str(exc)
        raise UsageError(f"{source} {ref!r}: cannot import {mod_name}: {why}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise UsageError(f"{source} {ref!r}: {mod_name} has no callable {func_name!r}")
    return func  # type: ignore[no-any-return]


def _coerce(value: Any, base: Judgement, result: TrialResult) -> Judgement:
    if value is None:
        return base
    if isinstance(value, Judgement):
        return value
    if isinstance(value, bool):
        value = Outcome.PASS if value else Outcome.FAIL
    if isinstance(value, str):
        try:
            value = Outcome(value.lower())
        except ValueError:
            return Judgement(Outcome.ERROR, None, f"oracle returned unknown outcome {value!r}")
    if isinstance(value, Outcome):
        if value is base.outcome:
            return base
        sig = _signature(head_of(result), error_line(result)) if value is Outcome.FAIL else None
        return Judgement(value, sig, "custom oracle")
    return Judgement(
        Outcome.ERROR, None, f"oracle returned {type(value).__name__}, expected Outcome/bool/None"
    )


@dataclass(frozen=True, slots=True)
class StandardOracle:
    """The built-in oracle (see the module docstring for the order of rules)."""

    config: OracleConfig
    custom: Callable[[TrialResult], Any] | None = None

    def _streams(self, r: TrialResult) -> list[Path]:
        return [r.stdout_path if n == "stdout" else r.stderr_path for n in self.config.stream.names()]

    def judge(self, result: TrialResult) -> Judgement:
        """Apply the rules, then the custom callable."""
        base = self._judge(result)
        if self.custom is None or base.outcome is Outcome.ERROR:
            return base
        try:
            value = self.custom(result)
        except (Exception, SystemExit) as exc:  # a user's oracle must not end the run (sys.exit in it)
            return Judgement(Outcome.ERROR, None, f"oracle raised {type(exc).__name__}: {exc}")
        return _coerce(value, base, result)

    def _judge(self, r: TrialResult) -> Judgement:
        cfg = self.config
        if r.error is not None:
            return Judgement(Outcome.ERROR, None, r.error)
        if r.rc is not None and r.rc in cfg.skip_exit:
            return Judgement(Outcome.SKIP, None, f"exit {r.rc} means skip")
        head = head_of(r)
        if r.timed_out:
            return Judgement(Outcome.FAIL, "timeout", f"timed out after {r.spec.timeout_s:g}s")
        if cfg.fail_regex is not None:
            line = find_first_line(self._streams(r), cfg.fail_regex)
            if line is not None:
                from sleuth.secrets import env_secret_values, scrub_text  # copied into results, reports

                line = scrub_text(line, env_secret_values(r.spec.env))
                return Judgement(
                    Outcome.FAIL, _signature("output", line), f"--fail-regex matched: {line.strip()[:200]}"
                )
        if r.signal is not None or (cfg.nonzero_fails and r.rc != 0):
            return Judgement(Outcome.FAIL, _signature(head, error_line(r)), head)
        for t in cfg.thresholds:
            value = r.metrics.get(t.name)
            if value is None or value == ():  # an empty series (metrics.json's []) has no worst value
                why = "not found" if value is None else "has no values"
                return Judgement(Outcome.FAIL, f"metric missing: {t.name}", f"metric {t.name} {why}")
            if isinstance(value, tuple):  # a NaN anywhere is the worst (max/min saw it only when first)
                worst = (
                    math.nan if any(math.isnan(x) for x in value) else (max(value) if t.above else min(value))
                )
            else:
                worst = value
            if math.isnan(worst) or (worst > t.limit if t.above else worst < t.limit):
                return Judgement(
                    Outcome.FAIL, f"metric {t.describe()}", f"{t.name}={worst:g} ({t.describe()})"
                )
        return Judgement(Outcome.PASS, None, "")


def build_oracle(config: OracleConfig) -> StandardOracle:
    """The oracle for ``config``; loads the custom callable now so a bad reference fails early."""
    custom = load_callable(config.callable_ref) if config.callable_ref else None
    return StandardOracle(config, custom)
