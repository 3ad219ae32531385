"""Directory trees walked and copied without recursion.

``os.walk`` (up to Python 3.11), ``Path.rglob`` and ``shutil.copytree``/``rmtree`` recurse a frame or
two per level, so a workload's tree 500-1,000 deep (in its cwd, or left in a trial dir that the
run dir's scrub walks) raised RecursionError: a traceback at the end of a reduction.  These walk
with an explicit stack, in the same order.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["copy_tree", "paths", "walk"]


def walk(root: str | os.PathLike[str]) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(root)``: top-down, symlinked directories listed but not entered, unreadable
    directories skipped; the caller may prune ``dirnames`` in place."""
    stack = [os.fspath(root)]
    while stack:
        top = stack.pop()
        dirs: list[str] = []
        files: list[str] = []
        try:
            with os.scandir(top) as entries:
                for e in entries:
                    try:
                        is_dir = e.is_dir()
                    except OSError:
                        is_dir = False
                    (dirs if is_dir else files).append(e.name)
        except OSError:
            continue
        yield top, dirs, files
        for d in reversed(dirs):
            p = os.path.join(top, d)
            if not os.path.islink(p):
                stack.append(p)


def paths(root: Path) -> list[Path]:
    """Every file and directory under ``root`` (``sorted(root.rglob("*"))``)."""
    return sorted(Path(d, n) for d, dirs, files in walk(root) for n in (*dirs, *files))


def copy_tree(src: Path, dest: Path, ignore: Callable[[str, list[str]], set[str]] | None = None) -> None:
    """``shutil.copytree(src, dest, ignore=ignore, symlinks=False, ignore_dangling_symlinks=True)``
    without recursion: copytree takes two Python frames a level, so a workload's tree 500 deep
    raised RecursionError (a traceback at the end of a reduction)."""
    stack = [(os.fspath(src), os.fspath(dest))]
    dirs: list[tuple[str, str]] = []
    while stack:
        s, d = stack.pop()
        names = os.listdir(s)
        left = ignore(s, names) if ignore is not None else set()
        os.makedirs(d, exist_ok=d != os.fspath(dest))
        dirs.append((s, d))
        for name in names:
            if name in left:
                continue
            sp, dp = os.path.join(s, name), os.path.join(d, name)
            if os.path.isdir(sp):  # a symlinked directory is copied as one (symlinks=False)
                stack.append((sp, dp))
            elif os.path.exists(sp):  # a dangling symlink is left out
                shutil.copy2(sp, dp)
    for s, d in reversed(dirs):  # as copytree: each directory's times once its files are in
        shutil.copystat(s, d)
