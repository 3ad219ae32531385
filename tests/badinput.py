"""Shared checks for the bad-input corpus and the planted-secret tests of every verb.

A bad input must give exit 2, exactly one line on stderr that names the flag, file or key path
(``mentions``), no traceback, and leave every file under the watched roots as it was (nothing
created, nothing changed).  A planted secret must appear in no file of the run dir but
``secrets.json`` and in none of the captured output.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

__all__ = ["assert_no_secret", "assert_usage_error", "tree_state"]


def tree_state(*roots: Path) -> dict[str, str]:
    """Path -> content hash (``<dir>`` for directories) of everything under ``roots``."""
    state: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            continue
        for p in sorted(root.rglob("*")):
            if p.is_symlink():
                state[str(p)] = "<link>"
            elif p.is_dir():
                state[str(p)] = "<dir>"
            else:
                state[str(p)] = hashlib.sha1(p.read_bytes()).hexdigest()
    return state


def assert_usage_error(
    rc: int,
    stdout: str,
    stderr: str,
    mentions: str | Iterable[str],
    *,
    before: dict[str, str],
    after: dict[str, str],
) -> None:
    """Exit 2, one line naming ``mentions`` (each of them, case-insensitive), no traceback, no change."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert rc == 2, f"exit {rc}, stderr: {stderr[-2000:]}"
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one line, got {len(lines)}: {stderr[-2000:]}"
    for word in [mentions] if isinstance(mentions, str) else mentions:
        assert word.lower() in lines[0].lower(), f"{word!r} not named in: {lines[0]}"
    created = sorted(set(after) - set(before))
    changed = sorted(k for k in set(after) & set(before) if after[k] != before[k])
    removed = sorted(set(before) - set(after))
    assert not created and not changed and not removed, (created, changed, removed)
    assert not stdout.strip() or "Traceback" not in stdout


def assert_no_secret(
    secret: str, *texts: str, roots: Iterable[Path] = (), verbatim: Iterable[str] = ()
) -> None:
    """``secret`` appears in none of ``texts`` and in no file under ``roots`` except secrets.json
    and the files named in ``verbatim`` (the workload's own logs, kept as it wrote them)."""
    kept = {"secrets.json", *verbatim}
    for i, text in enumerate(texts):
        assert secret not in text, f"secret found in captured output #{i}"
    needle = secret.encode()
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file() and not p.is_symlink() and p.name not in kept:
                assert needle not in p.read_bytes(), f"secret found in {p}"
