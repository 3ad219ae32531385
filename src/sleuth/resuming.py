"""Which verb made a run dir, and the command that resumes it (re-exported by :mod:`sleuth.journal`).

A resume given another verb's run dir names the command that resumes it
(:func:`other_verbs_run_dir`); a stop the machine caused (no space, no file handles) says how to go
on (:func:`resume_hint`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sleuth.errors import UsageError

__all__ = ["made_by", "other_verbs_run_dir", "resume_hint"]

#: the command that resumes a run dir, by the verb that made it
_RESUME = {
    "run": "sleuth run --resume",
    "bisect": "sleuth bisect resume",
    "matrix": "sleuth matrix resume",
    "reduce": "sleuth reduce resume",
}


def resume_hint(verb: str, opened: Sequence[Path]) -> str:
    """What to do after a stop the machine caused (no space, no file handles, the process limit):
    resume the run dir ``verb`` opened with that verb's own command, or run again when none was."""
    import shlex

    if not opened or verb not in _RESUME:
        return "then run it again"
    return f"then resume: {_RESUME[verb]} {shlex.quote(str(opened[0]))}"


def made_by(path: Path, start: Mapping[str, Any] | None) -> str | None:
    """The verb that made the run dir at ``path``, from its files and its ``start`` event; None when
    neither says (a resume given another verb's run dir names the command that resumes it)."""
    if (path / "reduce.json").is_file():
        return "reduce"
    if start is None:
        return None
    if start.get("verb") == "matrix" or (path / "recipe.resolved.yaml").is_file():
        return "matrix"
    if "source" in start or "flags" in start:
        return "bisect"
    if "config" in start:
        return "run"
    return None


def other_verbs_run_dir(path: Path, verb: str, wanted: str) -> UsageError:
    """The error for a resume of ``wanted`` given a run dir ``verb`` made: it names the right command."""
    hint = f"resume it with: {_RESUME[verb]} {path}"
    return UsageError(f"{path}: a run dir of sleuth {verb}, not of sleuth {wanted}", hint=hint)
