"""Directory trees walked and copied without recursion.

``os.walk`` (up to Python 3.11), ``Path.rglob`` and ``shutil.copytree``/``rmtree`` recurse a frame or
two per level, so a workload's tree 500-1,000 deep (in its cwd, or left in a trial dir that the
run dir's scrub walks) raised RecursionError: a traceback at the end of a reduction.  These walk
with an explicit stack, in the same order.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["copy_listed", "copy_tree", "listing", "paths", "walk"]


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
    raised RecursionError (a traceback at the end of a reduction).  Unlike copytree, a symlinked
    directory that leads back to one being copied is left out (see :func:`listing`)."""
    listed = listing(src, ignore)
    assert listed is not None  # no limit
    copy_listed(src, dest, *listed)


def listing(
    src: Path, ignore: Callable[[str, list[str]], set[str]] | None = None, *, limit: int | None = None
) -> tuple[list[str], list[str]] | None:
    """What :func:`copy_tree` copies, each directory listed once: the directories, top-down (``""``:
    ``src`` itself), and the files (a symlink to a file: its target's bytes), relative to ``src``.
    A symlinked directory is entered (copied as one) unless it is a directory on its own path (the
    real directories are told apart by device and inode): ``a/b -> ../c`` beside ``c/d -> ../a``
    copied the tree into itself until symlink resolution gave up.  A dangling symlink is left out.
    None once the files' bytes pass ``limit`` (the walk stops there)."""
    root = os.fspath(src)
    dirs: list[str] = []
    files: list[str] = []
    total = 0
    st = os.stat(root)
    stack: list[tuple[str, frozenset[tuple[int, int]]]] = [("", frozenset({(st.st_dev, st.st_ino)}))]
    while stack:
        rel, above = stack.pop()  # above: the real directories from src down to rel
        top = os.path.join(root, rel) if rel else root
        names = os.listdir(top)
        left = ignore(top, names) if ignore is not None else set()
        dirs.append(rel)
        for name in names:
            if name in left:
                continue
            r = os.path.join(rel, name)
            try:
                st = os.stat(os.path.join(root, r))
            except (OSError, ValueError):  # dangling, or a link loop
                continue
            if stat.S_ISDIR(st.st_mode):
                real = (st.st_dev, st.st_ino)
                if real not in above:
                    stack.append((r, above | {real}))
            else:
                files.append(r)
                if limit is not None:
                    total += st.st_size
                    if total > limit:
                        return None
    return dirs, files


def copy_listed(src: Path, dest: Path, dirs: list[str], files: list[str]) -> None:
    """Copy what :func:`listing` found under ``src`` to ``dest`` (a new directory), each directory's
    times set once its files are in, as copytree does."""
    s, d = os.fspath(src), os.fspath(dest)
    for rel in dirs:
        os.makedirs(os.path.join(d, rel) if rel else d, exist_ok=bool(rel))
    for rel in files:
        shutil.copy2(os.path.join(s, rel), os.path.join(d, rel))
    for rel in reversed(dirs):
        shutil.copystat(os.path.join(s, rel) if rel else s, os.path.join(d, rel) if rel else d)
