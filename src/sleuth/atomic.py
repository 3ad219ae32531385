"""Files written whole, and the strict JSON every file sleuth writes holds.

* :func:`atomic_write_text` (and :func:`atomic_write_json`) writes a temporary file of its own name
  (pid, counter) in the target's directory and renames it over the target: a reader sees the old
  file or the whole new one, never a part; on any failure the temporary file is removed;
* the mode (``mode=0o600`` for secrets) is set before any byte is written; without one, the umask's
  (the file is created 0o666 and the kernel applies the umask: it is never read, as reading it sets it);
* with ``aside``, what already is at the target is never replaced but renamed first
  (:func:`move_aside`: ``.workload``, ``-2``, ``-3`` ...);
* a write that fails part-way (a full disk) raises an ``OSError`` naming the file, and the bytes it
  wrote are cut again (:func:`_write_all`, which the journal's appends use too);
* :func:`json_text`: NaN and infinities are written as null, other objects by ``str``; a lone
  surrogate (a non-UTF-8 byte of an argv or a path) is written as its JSON escape.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
from pathlib import Path
from typing import Any, Literal

__all__ = ["atomic_write_json", "atomic_write_text", "json_text", "move_aside"]


_tmp_names = itertools.count()
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
#: this process's pid, for temporary names (os.getpid() is a system call; a fork resets it)
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


#: strict JSON encoders (NaN and infinities are no JSON: jq, JavaScript and Go refuse the whole file),
#: built once: a journal line is encoded twice per trial
_ENCODERS = {indent: json.JSONEncoder(indent=indent, default=str, allow_nan=False) for indent in (None, 2)}


def _finite(obj: Any) -> Any:
    """``obj`` with each NaN or infinity replaced by None (null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def json_text(obj: Any, *, indent: Literal[2] | None = 2) -> str:
    """``obj`` as strict JSON (a NaN or an infinity is null; other objects by ``str``): what every
    file, journal line and ``--json`` document sleuth writes holds."""
    encode = _ENCODERS[indent].encode
    try:
        return encode(obj)
    except ValueError:  # a NaN or an infinity somewhere (the rare path: walked only then)
        return encode(_finite(obj))


def _dumps(obj: Any) -> str:
    return json_text(obj, indent=None)


os.register_at_fork(after_in_child=_forked)


def _write_all(fd: int, data: bytes, path: str) -> None:
    """Write all of ``data``; a failure (a full disk) is an ``OSError`` naming ``path``, and the
    bytes this call wrote before it are cut again (a journal must not keep half an event that the
    next append would be glued to)."""
    view = memoryview(data)
    written = 0
    try:
        while view:
            n = os.write(fd, view)
            written += n
            view = view[n:]
    except OSError as exc:
        if written:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, os.fstat(fd).st_size - written)
        raise OSError(exc.errno, exc.strerror, path) from None


def atomic_write_text(path: Path | str, text: str, *, mode: int | None = None, aside: str = "") -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one.

    ``mode`` (e.g. 0o600 for secrets) is set before any byte is written; default: as the umask allows.
    With ``aside`` (a suffix), whatever already is at ``path`` is not replaced but renamed to
    ``path + aside`` (then ``-2``, ``-3`` ...) first: a trial's ``result.json`` where the workload
    wrote its own file, or a directory, under that name in ``$SLEUTH_TRIAL_DIR``.
    """
    target = os.fspath(path)
    folder, name = os.path.split(target)
    # a lone surrogate (a non-UTF-8 byte of an argv or path, as Python decodes it) is written as its
    # JSON escape: the file stays UTF-8 and a JSON reader gets the same string back
    data = text.encode("utf-8", "backslashreplace")
    while True:
        # a name of our own (pid, counter): no random draws on this hot path (one per trial)
        tmp = os.path.join(folder, f".{name}.{_pid}.{next(_tmp_names)}.tmp")
        try:
            fd = os.open(tmp, _CREATE, 0o666 if mode is None else mode & 0o666)
        except FileExistsError:  # left by a dead process that had our pid
            continue
        except FileNotFoundError:
            os.makedirs(folder or ".", exist_ok=True)
            continue
        break
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            _write_all(fd, data, target)
        finally:
            os.close(fd)
        if aside:
            _publish_new(tmp, target, aside)
        else:
            os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _publish_new(tmp: str, target: str, aside: str) -> None:
    """``tmp`` becomes ``target``, which nothing may be yet (a hard link fails where a rename would
    replace): an entry already there is moved to ``target + aside`` first, never overwritten."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        move_aside(target, aside)
        os.link(tmp, target)
    except OSError:  # a file system without hard links: look first
        if os.path.lexists(target):
            move_aside(target, aside)
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def move_aside(target: str | Path, aside: str = ".workload") -> None:
    """Rename what is at ``target`` (a workload's file or directory under a name sleuth writes) to
    ``target + aside``, else ``-2``, ``-3`` ...: the first free name."""
    for n in itertools.count(1):
        kept = f"{target}{aside}" + (f"-{n}" if n > 1 else "")
        if not os.path.lexists(kept):
            os.rename(target, kept)
            return


def atomic_write_json(path: Path, obj: Any, *, mode: int | None = None) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json_text(obj) + "\n", mode=mode)
