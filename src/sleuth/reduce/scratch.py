"""A candidate's scratch copy of the workload's directory, laid out so that nothing the workload does
in it reaches the user's files.

:func:`build_workdir` writes the candidate's axis files and makes every other entry of the cwd stand
for the original:

* a regular file at any depth the walk reaches gets its own inode: a copy-on-write clone where the
  file system makes one (btrfs, XFS with reflinks, bcachefs: free whatever the size), else a copy of
  the bytes for a file up to :data:`COPY_LIMIT`; a larger one (a checkpoint, a weights file) is a
  hard link to a private copy (:class:`PrivateCopies`: one per candidate running at once, reused by
  the next), never to the user's file.  A candidate that rewrites it in place (``open(p, "w")``,
  ``torch.save`` to the same path) changes only its private copy, which is made again from the
  original before another candidate gets it;
* a directory, or a file sleuth cannot read, is a symlink to the original (a dataset directory is
  read in place: what a workload writes inside a subdirectory reaches the user's);
* a ``file_set``'s kept files are symlinks too: the set is typically a dataset's shards, read in
  place (copying the kept shards for every candidate would copy the dataset again and again).  Each
  is a hard link to the reduction's one symlink for that file (:meth:`PrivateCopies.symlinks`,
  made once in the process): ext4 allocating a new inode for each of 50,000 symlinks a candidate,
  right after the last candidate's were freed, took 0.1-0.4 ms a file; a hard link takes none.

A script run through a symlink would import its neighbours from the original directory (Python
resolves ``sys.path[0]``), not the candidate's axis file: that is why files are never symlinks.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import shutil
import threading
from pathlib import Path

from sleuth.reduce.plan import Candidate, Plan

__all__ = ["COPY_LIMIT", "PRIVATE_DIR", "PrivateCopies", "build_workdir"]

#: a regular file up to this size is copied into each candidate's scratch copy where no clone can be
#: made; a larger one is hard-linked to the reduction's private copy (:class:`PrivateCopies`)
COPY_LIMIT = 16 * 1024 * 1024

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
        self._lock = threading.Lock()

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
    Without ``copies`` every file is cloned or copied whatever its size."""
    work.mkdir(parents=True, exist_ok=True)
    targets = [Path(p) for p in cand.files]

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
            elif not (dst / entry).exists():
                _link(src / entry, dst / entry, copies)

    lay(plan.cwd, work, Path())


def _link_set(src: Path, dst: Path, kept: tuple[str, ...], copies: PrivateCopies | None) -> None:
    """A ``file_set``'s kept files, each a symlink to the original (read in place, as a dataset): a
    hard link to the reduction's own symlink (the module's docstring), else a new symlink.

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
