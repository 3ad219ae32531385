"""A trial's scratch copy of the workload's directory, laid out so that nothing the workload does
in it reaches the user's files.  Every trial of a reduction runs in its own, whatever the axes
(:func:`sleuth.reduce.trials.trial_spec`): without a file axis it is the cwd as it is, so that no
trial leaves its outputs in the user's tree or reads another's running at once.

:func:`build_workdir` writes the candidate's axis files (if any) and makes every other entry of the
cwd stand for the original:

* a regular file of the cwd, or of a directory on the way to an axis file, gets its own inode: a
  copy-on-write clone where the file system makes one (btrfs, XFS with reflinks, bcachefs: free
  whatever the size), else a copy of the bytes for a file up to :data:`COPY_LIMIT`; a larger one (a
  checkpoint, a weights file) is a hard link to a private copy (:class:`PrivateCopies`: one per
  candidate running at once, reused by the next), never to the user's file.  A candidate that
  rewrites it in place (``open(p, "w")``, ``torch.save`` to the same path) changes only its private
  copy, which is made again from the original before another candidate gets it;
* every other directory is a real directory, with its whole tree (:class:`Layout`, listed once per
  reduction), so that whatever a candidate creates in it, at any depth, stays in its scratch copy
  (``out/metrics.json`` is neither left in the user's tree nor read by another candidate running
  at once).  The smallest trees first, up to :data:`COPY_ENTRIES` entries and :data:`COPY_BYTES`
  in all, get their files copied as above (``state/progress.json`` rewritten in place stays
  private); the files of the others are hard links to the reduction's one symlink to each (read in
  place, as a ``file_set``'s below: a file rewritten in place through one is the user's).  A tree
  that would take the laid-out entries past :data:`LAYOUT_ENTRIES`, or deeper than
  :data:`LAYOUT_DEPTH`, stays a symlink to the original (:meth:`Layout.note` says so: what a
  workload writes inside it reaches the user's), and so does a directory holding the run dir;
* a symlink, and a file or directory sleuth cannot read, is a symlink to the original;
* a ``file_set``'s kept files are symlinks too: the set is typically a dataset's shards, read in
  place (copying the kept shards for every candidate would copy the dataset again and again).  Each
  is a hard link to the reduction's one symlink for that file (:meth:`PrivateCopies.symlinks`,
  made once in the process): ext4 allocating a new inode for each of 50,000 symlinks a candidate,
  right after the last candidate's were freed, took 0.1-0.4 ms a file; a hard link takes none.

A script run through a symlink would import its neighbours from the original directory (Python
resolves ``sys.path[0]``), not the candidate's axis file: that is why the cwd's files are never
symlinks.  Removing a scratch copy (``shutil.rmtree``) unlinks its symlinks and hard links and never
enters a symlinked directory: nothing of the user's goes with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sleuth.reduce.plan import Candidate, Plan

__all__ = [
    "COPY_BYTES",
    "COPY_ENTRIES",
    "COPY_LIMIT",
    "LAYOUT_DEPTH",
    "LAYOUT_ENTRIES",
    "PRIVATE_DIR",
    "QUIET_DIRS",
    "Layout",
    "PrivateCopies",
    "build_workdir",
    "file_axes",
    "layout",
]

#: a regular file up to this size is copied into each candidate's scratch copy where no clone can be
#: made; a larger one is hard-linked to the reduction's private copy (:class:`PrivateCopies`)
COPY_LIMIT = 16 * 1024 * 1024

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

#: ... and up to this many bytes in all (files over :data:`COPY_LIMIT` not counted: private copies)
COPY_BYTES = 32 * 1024 * 1024

#: folders left a symlink without a note (:meth:`Layout.note`): version control, environments, caches
QUIET_DIRS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", "node_modules", "__pycache__", ".mypy_cache"}
)

#: the run dir's folder of :class:`PrivateCopies` (removed when the reduction ends)
PRIVATE_DIR = "private"

#: FICLONE (linux/fs.h): the new file shares the old one's blocks, copy-on-write
_FICLONE = 0x40049409


def _clone(src: Path, dst: Path, *, copy: bool = True) -> bool:
    """``dst`` a new file with ``src``'s bytes and times: a copy-on-write clone where the file system
    makes one, else (``copy``) a copy of the bytes.  False: no clone, and nothing left at ``dst``."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            cloned = True
        except OSError:
            cloned = False
    if not cloned and not copy:
        dst.unlink()
        return False
    if not cloned:
        shutil.copyfile(src, dst)
    shutil.copystat(src, dst)
    return True


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """The directories of the cwd that a scratch copy lays out as real directories with their whole
    tree (the module's docstring), paths relative to the cwd, listed once per reduction."""

    #: the trees' tops: directories of the cwd, or of a directory on the way to an axis file
    roots: frozenset[str]
    #: every directory of those trees, each after its parent
    dirs: tuple[str, ...]
    #: their files that each scratch copy copies (own inode)
    copied: tuple[str, ...]
    #: their other entries: a hard link to the reduction's one symlink to each
    linked: tuple[str, ...]
    #: the directories over the budget, left a symlink to the original
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
    files: list[str]
    others: list[str]
    #: the bytes of its files up to COPY_LIMIT
    size: int

    @property
    def entries(self) -> int:
        return len(self.dirs) + len(self.files) + len(self.others)


def _scan(cwd: str, root: str) -> _Tree | None:
    """The tree of ``cwd/root`` without recursion, not entering symlinks; None past
    :data:`LAYOUT_ENTRIES` entries or :data:`LAYOUT_DEPTH` levels.  A directory that cannot be
    listed is one of the ``others`` (the root itself: a tree without directories, not laid out)."""
    dirs: list[str] = []
    files: list[str] = []
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
                return _Tree(root, [], [], [], 0)
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
                    files.append(r)
                    size += n if n <= COPY_LIMIT else 0
                else:
                    others.append(r)
            except OSError:
                others.append(r)
        if len(dirs) + len(stack) + len(files) + len(others) > LAYOUT_ENTRIES:
            return None
    return _Tree(root, dirs, files, others, size)


def file_axes(plan: Plan) -> tuple[str, ...]:
    """The paths of ``plan``'s file axes (the files a candidate writes into its scratch copy)."""
    return tuple(sorted(a.path for a in plan.axes if a.kind in ("file_lines", "file_set")))


def layout(cwd: Path, targets: Iterable[str], run_dir: Path) -> Layout:
    """Which directories of ``cwd`` a scratch copy lays out, and how (the module's docstring), for
    the axis files ``targets``; a directory holding ``run_dir`` (the output dir inside the cwd)
    stays a symlink."""
    tpaths = {os.path.normpath(t) for t in targets}
    way = {os.path.dirname(t) for t in tpaths}
    for t in list(way):
        while t:
            way.add(t)
            t = os.path.dirname(t)
    run = os.path.realpath(run_dir)
    top = os.fspath(cwd)
    found: list[_Tree] = []
    symlinked: list[str] = []
    stack = [""]
    while stack:  # the cwd and the directories on the way to an axis file: laid out as they are
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(top, rel)) as it:
                subdirs = sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
        for name in subdirs:
            r = os.path.join(rel, name)
            real = os.path.realpath(os.path.join(top, r))
            if r in tpaths or run == real or run.startswith(real + os.sep):
                continue
            if r in way:
                stack.append(r)
                continue
            tree = _scan(top, r)
            if tree is None:
                symlinked.append(r)
            elif tree.dirs:
                found.append(tree)
    roots: list[str] = []
    dirs: list[str] = []
    copied: list[str] = []
    linked: list[str] = []
    used = copy_entries = copy_bytes = 0
    for tree in sorted(found, key=lambda t: (t.entries, t.root)):
        if tree.entries > LAYOUT_ENTRIES - used:
            symlinked.append(tree.root)
            continue
        used += tree.entries
        roots.append(tree.root)
        dirs += tree.dirs
        linked += tree.others
        if tree.entries <= COPY_ENTRIES - copy_entries and tree.size <= COPY_BYTES - copy_bytes:
            copy_entries += tree.entries
            copy_bytes += tree.size
            copied += tree.files
        else:
            linked += tree.files
    return Layout(
        roots=frozenset(roots),
        dirs=tuple(dirs),
        copied=tuple(copied),
        linked=tuple(linked),
        symlinked=tuple(sorted(symlinked)),
    )


class PrivateCopies:
    """The reduction's own copy of each large file the scratch copies stand for (``root``, in the run
    dir: the same file system as the candidates' scratch copies, so a hard link reaches it).

    A private copy is made on first use in this process (a resume makes it again: what an earlier
    process left may have been rewritten) and made again when it no longer is what was made (a
    candidate rewrote it in place), by a new file renamed over it.  A copy a running candidate
    holds (a second link) is not given to another: with ``--jobs`` N there are at most N copies of
    a file, and no candidate sees another's writes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[Path, tuple[int, int, int, int]] = {}
        #: the symlinks of :meth:`symlinks` made by this process
        self._links: set[str] = set()
        self._layouts: dict[tuple[Path, tuple[str, ...]], Layout] = {}
        self._lock = threading.Lock()

    def layout(self, cwd: Path, targets: tuple[str, ...]) -> Layout:
        """:func:`layout` of ``cwd``, listed once in this process (the run dir holds ``root``)."""
        with self._lock:
            got = self._layouts.get((cwd, targets))
            if got is None:
                got = self._layouts[cwd, targets] = layout(cwd, targets, self.root.parent)
            return got

    def link(self, src: Path, dst: Path) -> None:
        """``dst`` a hard link to the private copy of ``src`` (a copy when no link can be made)."""
        with self._lock:
            private = self._fresh(src)
            try:
                os.link(private, dst)
                return
            except OSError:  # a file system without hard links, or the link count spent
                pass
        _clone(src, dst)

    def _fresh(self, src: Path) -> Path:
        """A private copy of ``src`` that is as it was made and that no running candidate holds (its
        only link is the folder's: a judged candidate's scratch copy is removed), made if need be."""
        stem = hashlib.sha256(os.fsencode(src)).hexdigest()[:16] + "-" + src.name[:64]
        for n in itertools.count():
            private = self.root / f"{stem}.{n}"
            made = self._made.get(private)
            try:
                st = private.stat()
            except OSError:
                st = None
            if made is not None and st is not None and _identity(st) == made:
                if st.st_nlink == 1:
                    return private
                continue  # a running candidate holds this one
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = private.with_name(private.name + ".tmp")
            tmp.unlink(missing_ok=True)
            try:
                _clone(src, tmp)
                os.replace(tmp, private)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            self._made[private] = _identity(private.stat())
            return private
        raise AssertionError("unreachable")

    def symlinks(self, src: Path, kept: tuple[str, ...]) -> str:
        """The folder of the reduction's symlinks to the files of ``src`` (a ``file_set``'s
        directory), with one for each of ``kept`` made (again, when an earlier process made it)."""
        pool = os.path.join(self.root, "links", hashlib.sha256(os.fsencode(src)).hexdigest()[:16])
        s = os.fspath(src)
        with self._lock:
            for rel in kept:
                link = os.path.join(pool, rel)
                if link in self._links:
                    continue
                os.makedirs(os.path.dirname(link), exist_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(link)
                os.symlink(os.path.join(s, rel), link)
                self._links.add(link)
        return pool

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _link(src: Path, dst: Path, copies: PrivateCopies | None) -> None:
    """``dst`` standing for ``src`` in a scratch copy (the module's docstring says how)."""
    if src.is_file() and not src.is_symlink():
        try:
            if copies is None or src.stat().st_size <= COPY_LIMIT:
                _clone(src, dst)
            elif not _clone(src, dst, copy=False):
                copies.link(src, dst)
            return
        except PermissionError:
            dst.unlink(missing_ok=True)
    dst.symlink_to(src)


def build_workdir(plan: Plan, cand: Candidate, work: Path, copies: PrivateCopies | None = None) -> None:
    """Lay out ``work`` as the cwd with the candidate's files: the axis files are written, every
    other entry stands for the original (the module's docstring; the original is never modified).
    Without ``copies`` every file is cloned or copied whatever its size, and the cwd is listed again."""
    work.mkdir(parents=True, exist_ok=True)
    targets = [Path(p) for p in cand.files]
    keys = tuple(sorted(cand.files))
    tree = copies.layout(plan.cwd, keys) if copies is not None else layout(plan.cwd, keys, work)

    def lay(src: Path, dst: Path, rel: Path) -> None:
        for entry in sorted(os.listdir(src)):
            r = rel / entry
            if any(t == r for t in targets):
                content = cand.files[str(r)]
                if isinstance(content, str):
                    (dst / entry).write_bytes(content.encode("utf-8"))
                else:
                    _link_set(src / entry, dst / entry, content, copies)
            elif any(r in t.parents for t in targets):
                (dst / entry).mkdir(exist_ok=True)
                lay(src / entry, dst / entry, r)
            elif str(r) not in tree.roots and not (dst / entry).exists():
                _link(src / entry, dst / entry, copies)

    lay(plan.cwd, work, Path())
    w = os.fspath(work)
    for d in tree.dirs:
        with contextlib.suppress(FileExistsError):
            os.mkdir(os.path.join(w, d))
    for f in tree.copied:
        with contextlib.suppress(FileNotFoundError):  # removed from the cwd since it was listed
            _link(plan.cwd / f, work / f, copies)
    if tree.linked:
        _link_set(plan.cwd, work, tree.linked, copies)


def _link_set(src: Path, dst: Path, kept: tuple[str, ...], copies: PrivateCopies | None) -> None:
    """A ``file_set``'s kept files (or the entries of :attr:`Layout.linked`), each a symlink to the
    original (read in place, as a dataset): a hard link to the reduction's own symlink (the module's
    docstring), else a new symlink.

    One call a file and one ``mkdir`` a directory: with 50,000 shards, a ``Path``, a ``mkdir`` and a
    ``stat`` for every file were most of sleuth's own time per candidate."""
    dst.mkdir(parents=True, exist_ok=True)
    s, d = os.fspath(src), os.fspath(dst)
    pool = copies.symlinks(src, kept) if copies is not None else None
    made = {""}
    for rel in kept:
        parent = os.path.dirname(rel)
        if parent not in made:
            os.makedirs(os.path.join(d, parent), exist_ok=True)
            made.add(parent)
        target = os.path.join(d, rel)
        if pool is not None:
            try:
                os.link(os.path.join(pool, rel), target, follow_symlinks=False)
                continue
            except FileExistsError:  # already there: left as it is
                continue
            except OSError:  # no hard links here, or the link count spent: a symlink of its own
                pass
        with contextlib.suppress(FileExistsError):
            os.symlink(os.path.join(s, rel), target)
