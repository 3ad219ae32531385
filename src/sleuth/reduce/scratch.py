"""A trial's scratch copy of the workload's directory, laid out so that nothing the workload does
in it reaches the user's files.  Every trial of a reduction runs in its own, whatever the axes
(:func:`sleuth.reduce.trials.trial_spec`): without a file axis it is the cwd as it is, so that no
trial leaves its outputs in the user's tree or reads another's running at once.

:func:`build_workdir` writes the candidate's axis files (if any) and makes every other entry of the
cwd stand for the original, as :func:`layout` found it (:class:`Layout`: the cwd is listed once per
reduction, and each scratch copy is made from that list):

* a regular file of the cwd, or of a directory on the way to an axis file, is a regular file of the
  scratch copy with an inode of its own, never the user's.  The smallest, up to :data:`TOP_FILES`
  files and :data:`TOP_BYTES` in all, each up to :data:`COPY_LIMIT`, get their own bytes: a
  copy-on-write clone where the file system makes one (btrfs, XFS with reflinks, bcachefs), else a
  copy.  One over :data:`COPY_LIMIT` (a checkpoint, a weights file) is a clone where one can be
  made, else, as any other (the thousands of files of a flat folder: a clone would be a new inode
  each), a hard link to a private copy (:class:`PrivateCopies`: one per candidate running at once,
  reused by the next, made once per reduction rather than once per candidate), never to the
  user's file.  A candidate that rewrites one in place (``open(p, "w")``, ``torch.save`` to the
  same path) changes only its own copy or its private copy, which is made again from the original
  before another candidate gets it (its size, mode, modification or change time no longer what was
  made: a workload that sets the modification time back, as ``touch -r`` does, still changed the
  change time);
* every other directory is a real directory, with its whole tree, so that whatever a candidate
  creates in it, at any depth, stays in its scratch copy (``out/metrics.json`` is neither left in
  the user's tree nor read by another candidate running at once).  The smallest trees first, up to
  :data:`COPY_ENTRIES` entries and :data:`COPY_BYTES` in all, get their files copied as above
  (``state/progress.json`` rewritten in place stays private; one over :data:`COPY_LIMIT` a clone or
  a private copy's link); the files of the others are hard links to the reduction's one symlink to
  each (read in place, as a ``file_set``'s below: a file rewritten in place through one is the
  user's).  A tree that would take the laid-out entries past :data:`LAYOUT_ENTRIES`, or deeper than
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
symlinks (a hard link to a private copy is a regular file of the scratch copy: ``sys.path[0]`` is
the scratch copy).  Removing a scratch copy (``shutil.rmtree``) unlinks its symlinks and hard links
and never enters a symlinked directory: nothing of the user's goes with it.
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

from sleuth.reduce.layout import (
    COPY_BYTES,
    COPY_ENTRIES,
    COPY_LIMIT,
    LAYOUT_DEPTH,
    LAYOUT_ENTRIES,
    QUIET_DIRS,
    TOP_BYTES,
    TOP_FILES,
    Layout,
    layout,
)
from sleuth.reduce.plan import Candidate, Plan

__all__ = [
    "COPY_BYTES",
    "COPY_ENTRIES",
    "COPY_LIMIT",
    "LAYOUT_DEPTH",
    "LAYOUT_ENTRIES",
    "PRIVATE_DIR",
    "QUIET_DIRS",
    "TOP_BYTES",
    "TOP_FILES",
    "Layout",
    "PrivateCopies",
    "build_workdir",
    "file_axes",
    "layout",
]

#: the run dir's folder of :class:`PrivateCopies` (removed when the reduction ends)
PRIVATE_DIR = "private"

#: FICLONE (linux/fs.h): the new file shares the old one's blocks, copy-on-write
_FICLONE = 0x40049409


def _clone(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, copy: bool = True) -> bool:
    """``dst`` a new file with ``src``'s bytes and times: a copy-on-write clone where the file system
    makes one, else (``copy``) a copy of the bytes.  False: no clone, and nothing left at ``dst``."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            cloned = True
        except OSError:
            cloned = False
    if not cloned and not copy:
        os.unlink(dst)
        return False
    if not cloned:
        shutil.copyfile(src, dst)
    shutil.copystat(src, dst)
    return True


def _identity(st: os.stat_result) -> tuple[int, int, int, int, int, int]:
    """What a private copy is checked by: its inode, size, mode, modification time and change time
    (``st_ctime``, which no ``touch``/``utime`` can set back: every write, ``chmod``, ``utime`` and
    link sets it to now)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode, st.st_ctime_ns)


def file_axes(plan: Plan) -> tuple[str, ...]:
    """The paths of ``plan``'s file axes (the files a candidate writes into its scratch copy)."""
    return tuple(sorted(a.path for a in plan.axes if a.kind in ("file_lines", "file_set")))


_Identity = tuple[int, int, int, int, int, int]


class PrivateCopies:
    """The reduction's own copy of each file the scratch copies do not copy (``root``, in the run
    dir: the same file system as the candidates' scratch copies, so a hard link reaches it), and
    its :class:`Layout` of the cwd.

    A private copy is made on first use in this process (a resume makes it again: what an earlier
    process left may have been rewritten), outside the lock (a large file takes seconds: the other
    workers lay out their scratch copies meanwhile), and made again when it no longer is what was
    made, by a new file renamed over it.  Each is checked by its :func:`_identity`: a candidate that
    rewrote, appended to, chmod-ed or touched it changed its change time, whatever it set its size
    and modification time back to.  Linking and unlinking change it too, so a scratch copy is given
    back by :meth:`discard`, which checks each link before it removes it; one removed otherwise
    gets its private copies made again.  A copy a running candidate holds (a second link) is not
    given to another: with ``--jobs`` N there are at most N copies of a file, and no candidate sees
    another's writes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        #: each private copy's identity as it was made (or given back unchanged, or lent)
        self._made: dict[str, _Identity] = {}
        #: each file's private copies, but for the number: ``root/<hash of the path>-<name>``
        self._stems: dict[str, str] = {}
        #: whether a clone could be made of a file of each directory (one try: a failed one costs
        #: a new inode)
        self._clones: dict[str, bool] = {}
        #: the symlinks of :meth:`symlinks` made by this process
        self._links: set[str] = set()
        self._layouts: dict[tuple[Path, tuple[str, ...]], Layout] = {}
        #: the private copies being made (outside the lock): no other worker takes them
        self._making: set[str] = set()
        #: the links given to scratch copies: link -> its private copy and identity once linked
        self._lent: dict[str, tuple[str, _Identity]] = {}
        self._lock = threading.Lock()

    def layout(self, cwd: Path, targets: tuple[str, ...]) -> Layout:
        """:func:`layout` of ``cwd``, listed once in this process (the run dir holds ``root``)."""
        with self._lock:
            got = self._layouts.get((cwd, targets))
            if got is None:
                got = self._layouts[cwd, targets] = layout(cwd, targets, self.root.parent)
            return got

    def stand_in(self, src: str, dst: str) -> None:
        """``dst`` a clone of ``src`` where the file system makes one, else :meth:`link`."""
        where = os.path.dirname(src)
        if self._clones.get(where, True):
            cloned = self._clones[where] = _clone(src, dst, copy=False)
            if cloned:
                return
        self.link(src, dst)

    def link(self, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        """``dst`` a hard link to a private copy of ``src`` (a copy when no link can be made)."""
        s, d = os.fspath(src), os.fspath(dst)
        with self._lock:
            private, ready = self._pick(s)
            if ready and self._lend(private, d):
                return
        if not ready:
            tmp = f"{private}.{threading.get_ident()}.tmp"
            try:
                os.makedirs(self.root, exist_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                _clone(s, tmp)
                with self._lock:
                    os.replace(tmp, private)
                    self._made[private] = _identity(os.stat(private))
                    if self._lend(private, d):
                        return
            finally:
                with self._lock:
                    self._making.discard(private)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        _clone(s, d)

    def _pick(self, src: str) -> tuple[str, bool]:
        """A private copy of ``src`` that is as it was made and that no running candidate holds (its
        only link is the folder's), True; else the name of one to make (taken: no other worker
        makes it meanwhile), False."""
        stem = self._stems.get(src)
        if stem is None:
            name = hashlib.sha256(os.fsencode(src)).hexdigest()[:16] + "-" + os.path.basename(src)[:64]
            stem = self._stems[src] = os.path.join(self.root, name)
        for n in itertools.count():
            private = f"{stem}.{n}"
            if private in self._making:
                continue  # another worker is making it
            made = self._made.get(private)
            if made is not None:
                try:
                    st = os.stat(private)
                except OSError:
                    st = None
                if st is not None and _identity(st) == made:
                    if st.st_nlink == 1:
                        return private, True
                    continue  # a running candidate holds this one
            self._making.add(private)
            return private, False
        raise AssertionError("unreachable")

    def _lend(self, private: str, dst: str) -> bool:
        """``dst`` a hard link to ``private`` (under the lock), its identity once linked noted; False
        on a file system without hard links, or with the link count spent."""
        try:
            os.link(private, dst)
        except OSError:
            return False
        self._made[private] = now = _identity(os.stat(private))
        self._lent[dst] = (private, now)
        return True

    def discard(self, work: str | os.PathLike[str]) -> None:
        """Remove a judged trial's scratch copy ``work``.  A private copy linked into it is kept for
        the next candidate when it is as it was linked (change time included), and made again
        before another gets it otherwise.  The lock is taken a file at a time: the other workers
        lay out their scratch copies meanwhile."""
        top = os.path.join(os.fspath(work), "")
        with self._lock:
            mine = [(k, self._lent.pop(k)) for k in [k for k in self._lent if k.startswith(top)]]
        for dst, (private, lent) in mine:
            with self._lock:  # held until the private copy's new change time is noted
                try:
                    if _identity(os.lstat(dst)) != lent or self._made.get(private) != lent:
                        continue  # changed (or removed, renamed away): made again when asked for
                    os.unlink(dst)
                    st = os.stat(private)
                except OSError:
                    continue
                if st.st_dev == lent[0] and st.st_ino == lent[1]:
                    self._made[private] = _identity(st)
        shutil.rmtree(work, ignore_errors=True)

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


def _stand_in(src: str, dst: str, copies: PrivateCopies | None, *, clone: bool = True) -> None:
    """``dst`` a regular file standing for ``src`` in a scratch copy: a clone or a copy (``copies``
    None), else :meth:`PrivateCopies.stand_in` (``clone``) or :meth:`PrivateCopies.link`; a symlink
    to it when it cannot be read (nothing when it is gone: removed from the cwd since it was listed)."""
    try:
        if copies is None:
            _clone(src, dst)
        elif clone:
            copies.stand_in(src, dst)
        else:
            copies.link(src, dst)
    except (FileNotFoundError, FileExistsError):  # gone from the cwd, or already there
        pass
    except (PermissionError, IsADirectoryError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dst)
        os.symlink(src, dst)


def build_workdir(plan: Plan, cand: Candidate, work: Path, copies: PrivateCopies | None = None) -> None:
    """Lay out ``work`` as the cwd with the candidate's files: the axis files are written, every
    other entry stands for the original (the module's docstring; the original is never modified).
    Without ``copies`` every file is cloned or copied whatever its size, and the cwd is listed again."""
    work.mkdir(parents=True, exist_ok=True)
    keys = tuple(sorted(cand.files))
    tree = copies.layout(plan.cwd, keys) if copies is not None else layout(plan.cwd, keys, work)
    s, w = os.fspath(plan.cwd), os.fspath(work)
    for d in tree.dirs:
        with contextlib.suppress(FileExistsError):
            os.mkdir(os.path.join(w, d))
    for rel, content in cand.files.items():
        if isinstance(content, str):
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_bytes(content.encode("utf-8"))
        else:
            _link_set(plan.cwd / rel, work / rel, content, copies)
    for f in tree.copied:
        _stand_in(os.path.join(s, f), os.path.join(w, f), None)
    for f in tree.large:
        _stand_in(os.path.join(s, f), os.path.join(w, f), copies)
    for f in tree.private:
        _stand_in(os.path.join(s, f), os.path.join(w, f), copies, clone=False)
    for f in tree.others:
        with contextlib.suppress(FileExistsError):
            os.symlink(os.path.join(s, f), os.path.join(w, f))
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
