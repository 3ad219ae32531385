"""Whether a file history (``sqlite:///PATH``, ``dir://PATH``) can live where ``--db`` puts it.

A path that cannot hold a history is the user's input, not a failure of the machine: a name longer
than the file system allows (SQLite's ``-journal`` beside the file counted), a folder on the way
that is a file, a location that cannot be written (``record``) or a history that cannot be read.
:func:`check_path` says so in one line naming ``--db`` and the path (exit 2) before anything is made,
and :func:`path_problem` tells a store whether a database's "unable to open" was such a path (exit 2)
or something passing (a locked database, a full disk, no file handles left: exit 4);
:func:`folder_problem` tells a ``dir://`` history the same of a folder inside it (a suite's folder
that is read-only, or a file).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from sleuth.errors import UsageError
from sleuth.gate.store.base import StoreURL

__all__ = ["SQLITE_SIDES", "check_path", "folder_problem", "path_problem"]

#: what SQLite may put next to its file while it writes (the longest suffix bounds the file's name)
SQLITE_SIDES = ("-journal", "-wal", "-shm")
#: a name or a path as the file system measures it when it does not say (Linux's limits)
_NAME_MAX, _PATH_MAX = 255, 4096
#: the longest path SQLite opens (its unix VFS's MAX_PATHNAME), a journal's name included
_SQLITE_PATH_MAX = 512


def check_path(url: StoreURL, *, write: bool) -> None:
    """A usage error when ``url``'s file or folder cannot hold the history (see the module doc);
    ``write``: the verb writes into it (``record``), else it only reads (a missing one reads as empty)."""
    problem = path_problem(url, write=write)
    if problem is not None:
        what, fix = problem
        raise UsageError(f"--db {url.display}: {what}", hint=fix)


def path_problem(url: StoreURL, *, write: bool) -> tuple[str, str] | None:
    """What keeps ``url`` (a SQLite file or a store folder) from holding a history, and how to fix
    it; None when nothing does (a database server's URL, or a path that is fine)."""
    if url.kind not in ("sqlite", "dir"):
        return None
    return _problem(Path(os.path.abspath(url.path)), url.kind, write=write)


def folder_problem(folder: Path) -> tuple[str, str] | None:
    """What keeps a folder of a ``dir://`` history (a suite's, its state's) from taking a file,
    and how to fix it; None when nothing does (the write failed for a passing reason)."""
    return _problem(Path(os.path.abspath(folder)), "dir", write=True)


def _problem(path: Path, kind: str, *, write: bool) -> tuple[str, str] | None:
    found = _nearest(path)
    if isinstance(found, tuple):
        return found
    long = _too_long(path, found, sqlite=kind == "sqlite")
    if long is not None:
        return long
    if found != path or kind == "dir":
        if not found.is_dir():
            return f"{found} is a file, not a folder", "give a path whose folders are folders"
    elif found.is_dir():  # checked by parse_url too; here for what was made since
        return f"{path} is a directory", "give the SQLite file inside it"
    return _access(path, found, kind, write=write)


def _nearest(path: Path) -> Path | tuple[str, str]:
    """The path itself or its nearest ancestor that exists; a problem when looking fails (a name
    too long for the system's calls, a loop of symbolic links)."""
    for p in (path, *path.parents):
        try:
            os.stat(p)
            return p
        except FileNotFoundError:
            continue
        except NotADirectoryError:  # a file on the way: the loop reaches it
            continue
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                continue  # measured by _too_long
            return f"{p}: {exc.strerror}", "give another path"
    return Path("/")


def _too_long(path: Path, existing: Path, *, sqlite: bool) -> tuple[str, str] | None:
    """A name, or the whole path, longer than the file system under ``existing`` allows; for a SQLite
    file, counting the ``-journal`` SQLite writes beside it, within the 512 bytes SQLite takes."""
    name_max = _limit(existing, "PC_NAME_MAX", _NAME_MAX)
    extra = len(SQLITE_SIDES[0]) if sqlite else 0
    names = path.relative_to(existing).parts if path != existing else ()
    for i, name in enumerate(names):
        size = len(os.fsencode(name))
        shown = name if len(name) <= 40 else f"{name[:20]}…{name[-12:]}"
        if size > name_max:
            what = f"the name {shown} is {size} bytes, longer than the {name_max} this file system allows"
            return what, "give a shorter name"
        if i == len(names) - 1 and size + extra > name_max:
            return (
                f"the name {shown} is {size} bytes: SQLite's {SQLITE_SIDES[0]} file beside it would be "
                f"longer than the {name_max} this file system allows",
                "give a shorter file name",
            )
    # SQLite opens the path with its links resolved, and takes no longer one than it can hold
    full = Path(os.path.realpath(existing)).joinpath(*names)
    size = len(os.fsencode(str(full)))
    limit = _SQLITE_PATH_MAX - extra if sqlite else _limit(existing, "PC_PATH_MAX", _PATH_MAX) - 1
    if size > limit:
        whose = "SQLite opens (its -journal file's path within 512)" if sqlite else "this system allows"
        return (
            f"the path is {size} bytes as a full path, longer than the {limit} {whose}",
            "give a shorter path",
        )
    return None


def _limit(path: Path, name: str, default: int) -> int:
    try:
        return int(os.pathconf(path, name))
    except (OSError, ValueError):
        return default


def _access(path: Path, found: Path, kind: str, *, write: bool) -> tuple[str, str] | None:
    """A history that cannot be read, or (``write``) a location that cannot be written."""
    if not write:
        if found != path:
            return None  # a history that does not exist yet reads as empty
        need = os.R_OK if kind == "sqlite" else os.R_OK | os.X_OK
        if not os.access(path, need):
            return f"{path} cannot be read (permission denied)", "give a history you can read"
        return None
    # SQLite writes its journal beside the file: its folder must take new files, as must a store
    # folder, or the folder that the first write makes them in
    if found == path and kind == "sqlite":
        folders = [path.parent]
        if not os.access(path, os.W_OK):
            return _unwritable(path, "is read-only")
    else:
        folders = [found]
    for folder in folders:
        if not os.access(folder, os.W_OK | os.X_OK):
            return _unwritable(folder, "cannot be written in")
    return None


def _unwritable(where: Path, what: str) -> tuple[str, str]:
    try:
        readonly_fs = bool(os.statvfs(where).f_flag & os.ST_RDONLY)
    except OSError:
        readonly_fs = False
    why = "on a read-only file system" if readonly_fs else "permission denied"
    return f"{where} {what} ({why})", "give a --db path you can write, or make it writable"
