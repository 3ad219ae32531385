"""A bisection's run dir before the driver: candidates resolved when it starts, state read back on resume.

Started: :func:`resolve_candidates` turns the source into its labels before a run dir exists, so a bad
ref, file or range is a usage error that leaves nothing behind.  Resumed: :func:`journal_of` and
:func:`bisect_start` read the journal without writing (a wrong dir stays as it was; another verb's run
dir is named with the command that resumes it), and :func:`restore_env` / :func:`resumed_secrets` put
the values that were journaled redacted back from ``secrets.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sleuth.errors import UsageError

__all__ = ["bisect_start", "journal_of", "resolve_candidates", "restore_env", "resumed_secrets"]


def journal_of(path: Path) -> list[dict[str, Any]]:
    """The events of ``path/journal.jsonl``, read without creating anything."""
    from sleuth.journal import read_journal

    journal = path / "journal.jsonl"
    if not journal.is_file():
        raise UsageError(
            f"{path}: not a sleuth run dir (no journal.jsonl)", hint="pass the run dir printed by the run"
        )
    try:
        return read_journal(journal)
    except UnicodeDecodeError:
        raise UsageError(f"{journal}: not UTF-8 text, so not a sleuth journal") from None


def bisect_start(path: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``start`` event of a bisection, or a usage error naming the verb that resumes this dir."""
    start = next((e for e in events if e["event"] == "start"), None)
    if start is None:
        raise UsageError(f"{path}: no start event in the journal", hint="is this a sleuth bisect run dir?")
    if "flags" in start and "source" in start:
        return start
    if start.get("verb") == "matrix":
        raise UsageError(f"{path}: a sleuth matrix run dir; resume it with: sleuth matrix resume {path}")
    if "config" in start:
        raise UsageError(f"{path}: a sleuth run run dir; resume it with: sleuth run --resume {path}")
    raise UsageError(f"{path}: not a sleuth bisect run dir (its start event has no flags)")


def restore_env(path: Path, start: dict[str, Any], kw: dict[str, Any]) -> dict[str, Any]:
    """``--env`` values journaled as redacted, put back from ``secrets.json`` (or the caller's shell)."""
    names = start.get("redacted_env") or kw.pop("redacted_env", None)
    if not names:
        return kw
    from sleuth.secrets import Secrets

    secret = Secrets.load(path, list(names))
    pairs = [str(x).partition("=") for x in kw.get("env") or ()]
    restored = secret.restore_env({k: v for k, _, v in pairs})
    kw["env"] = [f"{k}={v}" for k, v in restored.items()]
    return kw


def resolve_candidates(source: Any) -> list[str] | None:
    """The candidates, resolved before the run dir exists: a bad ref or file is a usage error.

    None for images without ``--start-date`` (the range is only known after the gallop).
    """
    if source.kind == "images" and not source.start:
        return None
    labels: list[str] = source.resolve()
    if len(labels) < 2:
        cfg = source.config()
        if cfg["kind"] == "list":
            why, hint = (
                f"sleuth bisect list {cfg['path']}: {len(labels)} line(s)",
                "list one candidate per line, oldest first",
            )
        elif cfg["kind"] == "git":
            why, hint = (
                f"--good {cfg['good']} and --bad {cfg['bad']} are the same commit",
                "give two different commits",
            )
        elif cfg["kind"] == "multigit":
            first = cfg["repos"][0]
            ref = f"{first['name']}={first['good']} and --bad {first['name']}={first['bad']}"
            why = f"--good {ref} are the same commit"
            hint = "give first the --repo that changed"
        else:
            why, hint = f"{len(labels)} candidate(s)", "widen the range"
        raise UsageError(f"{why}: a bisection needs at least two candidates", hint=hint)
    return labels


def resumed_secrets(source: Any, kw: dict[str, Any], rd: Any) -> Any:
    """A resumed run: its hidden flag values back in ``kw`` (in place); the source rebuilt with its own.

    Whatever ``resume`` passed (the journaled, scrubbed flags, or flags it already restored with
    :func:`sleuth.bisect.secrecy.restore_start`), the run continues with the real values.
    """
    from sleuth.bisect.candidates import source_from_config
    from sleuth.bisect.secrecy import restore_start

    start = next((e for e in rd.events() if e["event"] == "start"), None)
    if start is None or not start.get("redacted"):
        return source
    full = restore_start(rd.path, start)
    for key, value in full["flags"].items():
        if key in kw and kw[key] == start["flags"].get(key):  # not overridden by resume's own flags
            kw[key] = value
    if any(p.startswith("source.") for p in start["redacted"].values()):
        source = source_from_config(full["source"])
    return source
