"""Which entries of the workload's directory a reduction's scratch copies copy, link to a private
copy, link to the original or leave a symlink, and the budgets that decide it (the layout,
:func:`layout`, listed once per reduction).  :mod:`sleuth.reduce.scratch` says why and builds the
copies."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "COPY_BYTES",
    "COPY_ENTRIES",
    "COPY_LIMIT",
    "LAYOUT_DEPTH",
    "LAYOUT_ENTRIES",
    "QUIET_DIRS",
    "TOP_BYTES",
    "TOP_FILES",
    "Layout",
    "layout",
]

#: a regular file up to this size may be copied into each candidate's scratch copy where no clone can
#: be made; a larger one is a clone, else a hard link to the reduction's private copy
#: (:class:`~sleuth.reduce.scratch.PrivateCopies`)
COPY_LIMIT = 16 * 1024 * 1024

#: the regular files of the cwd (and of a directory on the way to an axis file), the smallest first,
#: up to this many get their own bytes in each scratch copy (a new inode: 0.1-0.2 ms a file on a
#: loaded ext4, per candidate, and as much again to remove); the others are hard links to private
#: copies, made once (10-20 us a file, per candidate: bench/reduce_topfiles.py, docs/reduce.md)
TOP_FILES = 200

#: ... and up to this many bytes in all
TOP_BYTES = 16 * 1024 * 1024

#: the most entries (files, directories, links) of the cwd's other directories that each scratch copy
#: lays out: their trees, the smallest first; a tree past it stays a symlink.  On a loaded ext4, 10,000
#: took 2 s once (the reduction's symlinks), then 0.18 s to lay out and 0.17 s to remove per
#: candidate; 50,000 took 14 s, then 1.2 s and 1.6 s (bench/reduce_subdirs.py, docs/reduce.md)
LAYOUT_ENTRIES = 10_000

#: a tree deeper than this stays a symlink (shutil.rmtree recurses a frame a level)
LAYOUT_DEPTH = 64

#: the smallest laid-out trees, up to this many entries in all, get their files copied (own inode:
#: about 0.2 ms a file on ext4, per candidate); the others' are links to the original
COPY_ENTRIES = 500

#: ... and up to this many bytes in all (files over :data:`COPY_LIMIT` not counted: clones or private copies)
COPY_BYTES = 32 * 1024 * 1024

#: folders left a symlink without a note (:meth:`Layout.note`): version control, environments, caches
QUIET_DIRS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", "node_modules", "__pycache__", ".mypy_cache"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """What a scratch copy makes of each entry of the cwd but the axis files (the module's
    docstring), paths relative to the cwd, listed once per reduction."""

    #: the trees' tops: directories of the cwd, or of a directory on the way to an axis file, laid
    #: out as real directories with their whole tree
    roots: frozenset[str]
    #: every directory a scratch copy makes: those on the way to an axis file, then the trees', each
    #: after its parent
    dirs: tuple[str, ...]
    #: the files that get their own bytes (a clone or a copy): the cwd's smallest, the smallest trees'
    copied: tuple[str, ...]
    #: the files over :data:`COPY_LIMIT` of the cwd and of the copied trees: a clone where the file
    #: system makes one (free whatever the size), else a hard link to a private copy
    large: tuple[str, ...]
    #: the cwd's other files (past :data:`TOP_FILES` or :data:`TOP_BYTES`): a hard link to a private
    #: copy (not a clone: each would be a new inode a candidate)
    private: tuple[str, ...]
    #: the other trees' entries: a hard link to the reduction's one symlink to each
    linked: tuple[str, ...]
    #: the cwd's other entries (symlinks, directories not laid out, what is not a regular file): a
    #: symlink to the original
    others: tuple[str, ...]
    #: the directories over the budget, left a symlink to the original (among ``others``)
    symlinked: tuple[str, ...]

    def note(self, cwd: Path) -> str | None:
        """One line naming the directories left a symlink, or None.  A version-control or
        environment folder (:data:`QUIET_DIRS`: ``.git``, ``.venv``, ...) is not named: it is over
        the budget in most workloads' directories, and a workload does not write its outputs there."""
        shown = [d for d in self.symlinked if os.path.basename(d) not in QUIET_DIRS]
        if not shown:
            return None
        names = ", ".join(d + "/" for d in shown)
        one = len(shown) == 1
        return (
            f"{names} {'stays a symlink' if one else 'stay symlinks'} to the original in each "
            f"candidate's scratch copy (over the budget of {LAYOUT_ENTRIES:,} entries laid out in all, "
            f"or {LAYOUT_DEPTH} levels deep): what a workload writes inside reaches the user's files in "
            f"{cwd} (point its outputs elsewhere)"
        )


@dataclass(frozen=True, slots=True)
class _Tree:
    root: str
    dirs: list[str]
    #: its regular files up to COPY_LIMIT
    files: list[str]
    #: its regular files over COPY_LIMIT
    big: list[str]
    others: list[str]
    #: the bytes of its files up to COPY_LIMIT
    size: int

    @property
    def entries(self) -> int:
        return len(self.dirs) + len(self.files) + len(self.big) + len(self.others)


def _scan(cwd: str, root: str) -> _Tree | None:
    """The tree of ``cwd/root`` without recursion, not entering symlinks; None past
    :data:`LAYOUT_ENTRIES` entries or :data:`LAYOUT_DEPTH` levels.  A directory that cannot be
    listed is one of the ``others`` (the root itself: a tree without directories, not laid out)."""
    dirs: list[str] = []
    files: list[str] = []
    big: list[str] = []
    others: list[str] = []
    size = 0
    stack = [(root, 0)]
    while stack:
        rel, depth = stack.pop()
        try:
            with os.scandir(os.path.join(cwd, rel)) as it:
                listed = list(it)
        except OSError:
            if rel == root:
                return _Tree(root, [], [], [], [], 0)
            others.append(rel)
            continue
        dirs.append(rel)
        for e in listed:
            r = os.path.join(rel, e.name)
            try:
                if e.is_dir(follow_symlinks=False):
                    if depth >= LAYOUT_DEPTH:
                        return None
                    stack.append((r, depth + 1))
                elif e.is_file(follow_symlinks=False):
                    n = e.stat(follow_symlinks=False).st_size
                    if n <= COPY_LIMIT:
                        files.append(r)
                        size += n
                    else:
                        big.append(r)
                else:
                    others.append(r)
            except OSError:
                others.append(r)
        if len(dirs) + len(stack) + len(files) + len(big) + len(others) > LAYOUT_ENTRIES:
            return None
    return _Tree(root, dirs, files, big, others, size)


def layout(cwd: Path, targets: Iterable[str], run_dir: Path) -> Layout:
    """What a scratch copy makes of each entry of ``cwd`` (the module's docstring), for the axis
    files ``targets``; a directory holding ``run_dir`` (the output dir inside the cwd) stays a
    symlink."""
    tpaths = {os.path.normpath(t) for t in targets}
    way: set[str] = set()
    for t in tpaths:
        t = os.path.dirname(t)
        while t:
            way.add(t)
            t = os.path.dirname(t)
    run = os.path.realpath(run_dir)
    top = os.fspath(cwd)
    ways: list[str] = []
    files: list[tuple[int, str]] = []  # (size, path): the regular files of the cwd and of the way
    others: list[str] = []
    found: list[_Tree] = []
    symlinked: list[str] = []
    stack = [""]
    while stack:  # the cwd and the directories on the way to an axis file: laid out as they are
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(top, rel)) as it:
                listed = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for e in listed:
            r = os.path.join(rel, e.name)
            if r in tpaths:
                continue
            if r in way:
                ways.append(r)
                stack.append(r)
                continue
            try:
                if e.is_file(follow_symlinks=False):
                    files.append((e.stat(follow_symlinks=False).st_size, r))
                    continue
                folder = e.is_dir(follow_symlinks=False)
            except OSError:
                folder = False
            real = os.path.realpath(os.path.join(top, r)) if folder else ""
            if folder and run != real and not run.startswith(real + os.sep):
                tree = _scan(top, r)
                if tree is None:
                    symlinked.append(r)
                elif tree.dirs:
                    found.append(tree)
                    continue
            others.append(r)
    copied: list[str] = []
    large = [r for bytes_, r in files if bytes_ > COPY_LIMIT]
    private: list[str] = []
    n = size = 0
    for bytes_, r in sorted(f for f in files if f[0] <= COPY_LIMIT):  # the smallest first
        if n < TOP_FILES and bytes_ <= TOP_BYTES - size:
            n += 1
            size += bytes_
            copied.append(r)
        else:
            private.append(r)
    roots: list[str] = []
    dirs: list[str] = []
    linked: list[str] = []
    used = copy_entries = copy_bytes = 0
    for tree in sorted(found, key=lambda t: (t.entries, t.root)):
        if tree.entries > LAYOUT_ENTRIES - used:
            symlinked.append(tree.root)
            others.append(tree.root)
            continue
        used += tree.entries
        roots.append(tree.root)
        dirs += tree.dirs
        linked += tree.others
        if tree.entries <= COPY_ENTRIES - copy_entries and tree.size <= COPY_BYTES - copy_bytes:
            copy_entries += tree.entries
            copy_bytes += tree.size
            copied += tree.files
            large += tree.big
        else:
            linked += tree.files + tree.big
    return Layout(
        roots=frozenset(roots),
        dirs=(*ways, *dirs),
        copied=tuple(copied),
        large=tuple(large),
        private=tuple(private),
        linked=tuple(linked),
        others=tuple(others),
        symlinked=tuple(sorted(symlinked)),
    )
