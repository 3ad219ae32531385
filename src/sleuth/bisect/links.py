"""The ``first-bad``/``last-good`` links of a bisection's run dir.

The links always say what ``summary.json`` says: a resume that finds another answer replaces them.
What a copy of the run dir left there instead of a link (a folder, ``cp -rL``) is kept when it holds
the answer's files, else moved to ``NAME.copied``, never deleted.
"""

from __future__ import annotations

import filecmp
import os
from pathlib import Path
from typing import Any

__all__ = ["answer_link"]


def _same_files(a: Path, b: Path) -> bool:
    """``a`` and ``b`` hold the same files with the same bytes (a copy of ``b`` that followed its link)."""
    todo = [filecmp.dircmp(a, b, ignore=[])]
    while todo:  # a candidate's folder is shallow (run-N/, build/), but no recursion
        c = todo.pop()
        if c.left_only or c.right_only or c.common_funny or c.funny_files:
            return False
        if filecmp.cmpfiles(c.left, c.right, c.common_files)[1:] != ([], []):  # stat, else bytes
            return False
        todo.extend(c.subdirs.values())
    return True


def _aside(run_dir: Path, name: str) -> Path:
    """``NAME.copied`` in ``run_dir``, else the first free ``NAME.copied-2``, ``-3``, ..."""
    path, n = run_dir / f"{name}.copied", 1
    while path.exists() or path.is_symlink():
        n += 1
        path = run_dir / f"{name}.copied-{n}"
    return path


def answer_link(run_dir: Path, name: str, target: dict[str, Any] | None) -> str | None:
    """``run_dir/name`` made a link to ``target``'s folder (no link without one); a note when
    something that was there is moved aside.

    A link there is sleuth's and is replaced.  Anything else is a copy of the run dir that followed
    the links (``cp -rL``, ``copytree``): a folder with the same files as the target's is the answer's
    own logs and stays; anything else (another answer's, a file) is moved to ``NAME.copied`` (or
    ``NAME.copied-N``), never deleted, so the name says what ``summary.json`` says.
    """
    link, note = run_dir / name, None
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        if target is not None and link.is_dir() and _same_files(link, run_dir / target["dir"]):
            return None
        aside = _aside(run_dir, name)
        link.rename(aside)
        note = f"{link} was not a link (a copy of the run dir?) and not the answer's: moved to {aside.name}"
    if target is not None:
        (run_dir / target["dir"]).mkdir(parents=True, exist_ok=True)
        os.symlink(target["dir"], link)
    return note
