"""Secrets of a bisection: which flag values hide, a run dir that writes none, and resume's restore.

The rule is :mod:`sleuth.secrets`'s.  A string of the journaled flags or source (an ``--env``
entry, a ``--backend-opt`` value, an argument of the command or of ``--build`` that
:func:`sleuth.secrets.argv_secrets` finds: ``--api-key VALUE``, ``--password=VALUE``, a token; an
index URL with credentials) that the rule would change is kept whole in the run dir's 0600
``secrets.json`` under a readable name
(``--env HF_TOKEN``, ``argument 3 of the command``, ``--build``); the start event journals the scrubbed
flags and ``redacted``: ``{name: where}``.  Everything else written through the run dir (journal
events, each test's ``result.json``, ``summary.json``, ``report.md``) is scrubbed on the way out
by :meth:`sleuth.journal.RunDir.hide`.  :func:`restore_start` puts the values back for a resume; a run dir
shared without ``secrets.json`` takes ``--env`` values from the resuming shell.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sleuth.errors import UsageError
from sleuth.journal import RunDir
from sleuth.secrets import SECRETS_FILE, Secrets, is_secret, leaves, put_at, scrub_text

__all__ = ["hidden", "hidden_labels", "public", "restore_labels", "restore_start", "scrubbed"]


def _name(path: tuple[str | int, ...], value: str) -> str:
    """A name for people: ``--env HF_TOKEN``, ``argument 2 of the command``, ``--build``."""
    if path[:2] == ("flags", "env"):
        return f"--env {value.partition('=')[0]}"
    if path[:2] == ("flags", "backend_opt"):
        return f"--backend-opt {value.partition('=')[0]}"
    if path[:2] == ("flags", "cmd") and len(path) == 3:
        return f"argument {int(path[2]) + 1} of the command"
    last = path[-1]
    if isinstance(last, int):
        return f"--{str(path[-2]).replace('_', '-')} #{last + 1}"
    return f"--{last.replace('_', '-')}"


def hidden(
    flags: Mapping[str, Any], source: Mapping[str, Any]
) -> tuple[Secrets, dict[str, str], dict[str, str]]:
    """(the rule's secrets, ``{name: original string}``, ``{name: "flags.cmd.2"}``) of a bisection.

    The secrets scrub; the originals are what ``secrets.json`` keeps for resume.
    """
    doc = {"flags": dict(flags), "source": dict(source)}
    pairs = [*(flags.get("env") or []), *(flags.get("backend_opt") or [])]  # both KEY=VALUE
    env = dict(e.partition("=")[::2] for e in pairs if isinstance(e, str))
    values = dict(Secrets.of(env).values)
    strings = list(leaves(doc))
    for path, s in strings:  # a whole argument that looks like a token (no name tells it is one)
        if is_secret("", s) and Secrets().scrub(s) == s:
            values[".".join(map(str, path))] = s
    # the test command's `--api-key VALUE` / `--password=VALUE`, and the same inside --build
    cmd = [a for a in flags.get("cmd") or () if isinstance(a, str)]
    secrets = Secrets(values).merged(Secrets.of_argv(cmd, "flags.cmd.{}#value".format))
    for build in (flags.get("build"), source.get("build")):  # git's --build is the source's
        if isinstance(build, str):
            secrets = secrets.merged(Secrets.of_argv(build, "build#{}".format))
    originals: dict[str, str] = {}
    where: dict[str, str] = {}
    for path, s in strings:
        if secrets.scrub(s) != s:
            name = _name(path, s)
            if name in where:
                name += f" ({'.'.join(map(str, path))})"
            originals[name], where[name] = s, ".".join(map(str, path))
    return secrets, originals, where


def hidden_labels(labels: list[str] | None) -> dict[str, str]:
    """``{"candidate N": label}`` for the candidates the rule would change (a list line with URL
    credentials, a token): the tests get them whole, and so does a resume, from ``secrets.json``;
    everything else written shows them scrubbed (``https://<redacted>@mirror/x.whl``)."""
    if not labels:
        return {}
    whole = "\n".join(labels)
    if scrub_text(whole) == whole:  # one pass: over 10,000 lines one at a time took 0.1 s of start-up
        return {}
    return {f"candidate {i + 1}": x for i, x in enumerate(labels) if scrub_text(x) != x}


def restore_labels(run_dir: Path, start: Mapping[str, Any], labels: list[str] | None) -> list[str] | None:
    """The journaled (scrubbed) ``labels`` with the hidden ones back from ``secrets.json``."""
    names = list(start.get("redacted_labels") or ())
    if not names or labels is None:
        return labels
    try:
        kept = Secrets.load(run_dir, names, environ={})
    except UsageError:
        raise UsageError(
            f"{run_dir}: the candidates {', '.join(n.removeprefix('candidate ') for n in names)} hold "
            f"secrets kept only in {SECRETS_FILE}, which lacks them",
            hint=f"copy the run's {SECRETS_FILE} back into the run dir",
        ) from None
    out = list(labels)
    for name in names:
        out[int(name.removeprefix("candidate ")) - 1] = kept.values[name]
    return out


def scrubbed(rd: RunDir, secrets: Secrets, hide: bool = False) -> RunDir:
    """``rd``, its every write scrubbed (:meth:`RunDir.hide`) when there is something to hide.

    ``hide``: scrub even without named secrets (URL credentials are hidden by the rule alone).
    """
    if secrets or hide:
        rd.hide(secrets.scrub)
    return rd


def restore_start(
    run_dir: Path, start: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The ``start`` event with its hidden values back (``secrets.json``, else ``--env`` from ``environ``).

    A value found in neither is a ``UsageError`` that names it and says how to resume anyway: an
    argument of the command or of ``--build`` cannot come from the shell, only from ``secrets.json``.
    """
    out = {k: copy.deepcopy(v) for k, v in start.items() if k != "redacted"}
    where: dict[str, str] = dict(start.get("redacted") or {})
    if not where:
        return out
    env = os.environ if environ is None else environ
    fallback = {}
    for name in where:  # a run dir shared without secrets.json: the resuming shell has the variable
        var = name.removeprefix("--env ")
        if name.startswith("--env ") and var in env:
            fallback[name] = f"{var}={env[var]}"
    missing = [name for name in where if not _kept(run_dir, name, fallback)]
    if any(not name.startswith("--env ") for name in missing):  # an argument: no shell can give it
        raise UsageError(
            f"{run_dir}: the redacted value(s) of {', '.join(missing)} are not in {SECRETS_FILE}",
            hint=f"copy the run's {SECRETS_FILE} back into the run dir (only an --env value can come "
            "from this shell instead)",
        )
    kept = Secrets.load(run_dir, list(where), environ=fallback)
    for name, path in where.items():
        put_at(out, path, kept.values[name])
    return out


def _kept(run_dir: Path, name: str, environ: Mapping[str, str]) -> bool:
    """Whether ``secrets.json`` (or ``environ``) has the value of ``name``."""
    try:
        Secrets.load(run_dir, [name], environ=environ)
    except UsageError:
        return False
    return True


def public(obj: Any, secrets: Secrets) -> Any:
    """``obj`` scrubbed (what a terminal or ``--json`` may show)."""
    return secrets.scrub(obj)
