"""Reading logs for attribution: plain or gzip files, or texts given in memory.

A log is read in chunks that end at a newline, so memory stays at a few MiB whatever its size.
Before anything is scanned, each log's head (its first 64 KiB, decompressed) is checked: a NUL
byte means a binary file, bytes that are not UTF-8 mean another encoding; both are refused with a
one-line ``UsageError`` naming the file.  Further on, a stray invalid byte is replaced, not fatal
(a 500 MB log is not refused for one byte in its middle).  A gzip log cut short (the job died while
writing it, ``head -c`` of a ``.gz``) is read up to the cut, and the reader is told where the
compressed file ends; a gzip file whose data is corrupt is refused, wherever the corruption lies
(past the head, the scan raises the same ``UsageError``).

What a line says (its rank, its wall-clock time) is :mod:`._loglines`'s, re-exported here; this
module adds a file's own: torchrun's ``error.json`` read by :func:`error_file_view`, and
:func:`head_time`, the earliest time of a log's head (read on up to ``TIME_SCAN_BYTES`` when the
head holds none) and whether it is a kernel log.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import stat
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sleuth.attribution._loglines import (
    is_uptime_line,
    parse_rank_prefix,
    parse_timestamp,
    rank_from_name,
    torchrun_place,
)
from sleuth.datafile import file_kind
from sleuth.errors import UsageError

__all__ = [
    "HEAD_BYTES",
    "TIME_SCAN_BYTES",
    "LogInput",
    "check_regular",
    "error_file_view",
    "head_time",
    "is_uptime_line",
    "parse_rank_prefix",
    "parse_timestamp",
    "rank_from_name",
    "torchrun_place",
]

HEAD_BYTES = 64 * 1024
#: how far :func:`head_time` reads a log whose head holds no time, looking for one
TIME_SCAN_BYTES = 8 * 1024 * 1024
CHUNK = 4 * 1024 * 1024
#: a single line longer than this is cut into pieces (a binary blob in a log must not blow memory)
MAX_LINE = 1024 * 1024

#: torch.distributed.elastic's error file (:func:`error_file_view`), read whole up to this size
_ERROR_FILE_RE = re.compile(r"(?:^|/)error\.json(?:\.gz)?$")
ERROR_FILE_BYTES = 4 * 1024 * 1024
#: a kernel log's line: dmesg's ``[ 1234.567890]`` (seconds since boot), ``dmesg -T``'s bracketed
#: time, or syslog / journalctl's ``kernel:`` tag
_KERNEL_LINE_RE = re.compile(r"^\[\s*\d+\.\d+\]|^\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) |\bkernel: ")


def check_regular(path: Path, what: str) -> None:
    """A ``UsageError`` naming ``what`` when ``path`` is a FIFO, socket or device (reading it could block)."""
    try:
        mode = path.stat().st_mode
    except OSError:  # missing or unreadable: the caller's own check names that
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and str(path.resolve()) != os.devnull:
        raise UsageError(
            f"{what}: not a regular file ({file_kind(mode)})", hint="save its content to a file first"
        )


def error_file_view(log: LogInput) -> tuple[LogInput, float | None] | None:
    """torch.distributed.elastic's error file as a log, and the time the worker failed.

    A worker run under ``@record`` writes ``error.json`` (``TORCHELASTIC_ERROR_FILE``; in torchrun's
    ``--log-dir`` layout ``attempt_<n>/<local_rank>/error.json``): one JSON line,
    ``{"message": {"message": "<Type>: <text>", "extraInfo": {"py_callstack": "<traceback>",
    "timestamp": "<seconds since the epoch>"}}}`` (``"message"`` a plain string in older files).
    The view holds the message's lines, each stamped with that time, so the exception line is the
    finding's text and the failure is placed in time.  None for another file, or one that is not
    such JSON (cut short: it is scanned as it is).
    """
    if not _ERROR_FILE_RE.search(log.name.replace("\\", "/")):
        return None
    data = b""
    for block in log.chunks():
        data += block
        if len(data) > ERROR_FILE_BYTES:
            return None
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    message = doc.get("message") if isinstance(doc, dict) else None
    when = None
    if isinstance(message, dict):
        extra = message.get("extraInfo")
        raw = extra.get("timestamp") if isinstance(extra, dict) else None
        try:
            when = float(raw) if isinstance(raw, str | int | float) and not isinstance(raw, bool) else None
        except ValueError:
            when = None
        if when is not None and not 0 < when < 1e11:  # not seconds since the epoch
            when = None
        message = message.get("message")
    if not isinstance(message, str):
        return None
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime(when)) if when is not None else ""
    text = "".join(f"{stamp}{line}\n" for line in message.splitlines())
    return LogInput(log.name, text=text, strict=log.strict), when


def head_time(log: LogInput) -> tuple[bool, float | None]:
    """``(kernel log?, earliest wall-clock time)`` of a log's head: a kernel log (dmesg, kern.log)
    has a line in a kernel format in what was read.

    The head is the first 64 KiB (``HEAD_BYTES``); when it holds no time (a long banner, a pip
    install's output), the log is read on, 64 KiB at a time, up to the first 64 KiB that holds
    one, and no further than ``TIME_SCAN_BYTES`` (decompressed): a multi-GB log is never read whole.
    The earliest, not the first: the lines of a log are not always in time order (rank logs
    merged one after the other, a rank's buffered output flushed late), and its first line may be
    the failure, long after the job started."""
    kernel, earliest = False, None
    start = 0  # the byte where the current line starts
    window = HEAD_BYTES  # the end of the 64 KiB that the line starting at ``start`` belongs to
    for block in log.chunks():
        for raw in block.splitlines(keepends=True):
            if start >= window:
                if earliest is not None or start >= TIME_SCAN_BYTES:
                    return kernel, earliest
                window += HEAD_BYTES * ((start - window) // HEAD_BYTES + 1)
            line = parse_rank_prefix(raw[: window - start].decode("utf-8", "replace").rstrip("\r\n"))[1]
            start += len(raw)
            kernel = kernel or _KERNEL_LINE_RE.search(line) is not None
            t = parse_timestamp(line)
            if t is not None and (earliest is None or t < earliest):
                earliest = t
    return kernel, earliest


@dataclass(frozen=True, slots=True)
class LogInput:
    """One log to attribute: a file on disk (plain or gzip) or a text held in memory."""

    name: str
    path: Path | None = None
    text: str | None = None
    #: False for a workload's own output (``sleuth supervise``): NUL and non-UTF-8 bytes are
    #: replaced, not refused, and bytes that start like gzip are read as they are, not
    #: decompressed (the workload wrote what it wrote; its failure must be attributed)
    strict: bool = True
    #: a text read from a gzip file cut short (the service reads its ``paths`` first): the size of
    #: the compressed file, reported to ``on_cut`` as a cut file's own reading reports it
    cut_at: int | None = None

    @classmethod
    def file(cls, path: Path, *, strict: bool = True) -> LogInput:
        """A log file named by its path."""
        return cls(str(path), path=path, strict=strict)

    @classmethod
    def memory(cls, name: str, text: str, *, cut_at: int | None = None) -> LogInput:
        """A log given as text (the service's ``logs: [{name, text}]``); ``cut_at``: the text is a
        gzip file's read up to its cut at that byte (:meth:`chunks` reports it)."""
        return cls(name, text=text, cut_at=cut_at)

    def _raw_chunks(self, on_cut: Callable[[int], None] | None = None) -> Iterator[bytes]:
        if self.text is not None:
            data = self.text.encode("utf-8", "replace")
            for i in range(0, len(data), CHUNK):
                yield data[i : i + CHUNK]
            if self.cut_at is not None and on_cut is not None:
                on_cut(self.cut_at)
            return
        assert self.path is not None
        try:
            with open(self.path, "rb") as fh:
                magic = fh.read(2)
                fh.seek(0)
                if magic == b"\x1f\x8b" and self.strict:
                    yield from _gunzip(fh, on_cut)
                else:
                    while block := fh.read(CHUNK):
                        yield block
        except (OSError, EOFError, zlib.error) as exc:  # past the head check() read: corrupt, EIO
            raise _read_error(self.path, exc) from None

    def check(self) -> None:
        """Refuse a missing, unreadable, binary or non-UTF-8 log with a one-line ``UsageError``."""
        if self.text is not None:
            if "\x00" in self.text[:HEAD_BYTES]:
                raise UsageError(f"log {self.name}: contains NUL bytes (a binary file?)")
            return
        assert self.path is not None
        p = self.path
        if not p.exists():
            if p.is_symlink():
                raise UsageError(f"log {p}: a broken symlink or a symlink loop", hint="check the link")
            raise UsageError(f"log {p}: not found", hint="check the path")
        if p.is_dir():
            raise UsageError(f"log {p}: is a directory, not a log file")
        check_regular(p, f"log {p}")
        head = b""
        try:
            for block in self._raw_chunks():
                head += block
                if len(head) >= HEAD_BYTES:
                    break
        except (OSError, EOFError, zlib.error) as exc:
            raise _read_error(p, exc) from None
        head = head[:HEAD_BYTES]
        if not self.strict:
            return
        if b"\x00" in head:
            raise UsageError(f"log {p}: contains NUL bytes (a binary file, not a text log)")
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # a multibyte character cut by the 64 KiB boundary is fine (a file that ended there is not cut)
            if exc.start < len(head) - 4 or len(head) < HEAD_BYTES:
                raise UsageError(
                    f"log {p}: not UTF-8 text (invalid byte at offset {exc.start})",
                    hint="convert it first, e.g. iconv -f latin1 -t utf-8",
                ) from None

    def chunks(self, on_cut: Callable[[int], None] | None = None) -> Iterator[bytes]:
        """The log's bytes in chunks that end at a newline (the last one, and the pieces of a line
        longer than ``MAX_LINE``, may not: the bytes are the log's own).

        A gzip file cut short gives its bytes up to the cut; ``on_cut`` is then called with the
        size of the compressed file (the byte where it was cut).
        """
        carry = b""
        for block in self._raw_chunks(on_cut):
            data = carry + block
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) > MAX_LINE:  # a piece of an overlong line: no newline added (line numbers)
                    yield data
                    carry = b""
                else:
                    carry = data
                continue
            yield data[: cut + 1]
            carry = data[cut + 1 :]
        if carry:
            yield carry

    def size_hint(self) -> int:
        """Bytes on disk (or in memory), for progress and limits."""
        if self.text is not None:
            return len(self.text)
        assert self.path is not None
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def tail(self, nbytes: int) -> str:
        """The last ``nbytes`` of the (decompressed) log as text, starting at a line boundary."""
        if self.text is not None:
            data = self.text.encode("utf-8", "replace")[-nbytes:]
        else:
            assert self.path is not None
            with open(self.path, "rb") as fh:
                gz = fh.read(2) == b"\x1f\x8b" and self.strict
                if not gz:
                    size = fh.seek(0, 2)
                    fh.seek(max(0, size - nbytes))
                    data = fh.read()
            if gz:
                buf = b""
                for block in self._raw_chunks():
                    buf = (buf + block)[-nbytes:]
                data = buf
        nl = data.find(b"\n")
        if 0 <= nl < len(data) - 1 and len(data) >= nbytes:
            data = data[nl + 1 :]
        return data.decode("utf-8", "replace")


def _read_error(path: Path, exc: BaseException) -> UsageError:
    """The one-line error for a log that cannot be read (refused, exit 2)."""
    if isinstance(exc, PermissionError):
        return UsageError(f"log {path}: cannot read: permission denied")
    if isinstance(exc, gzip.BadGzipFile | EOFError | zlib.error):
        return UsageError(f"log {path}: not a valid gzip file ({exc})")
    return UsageError(f"log {path}: cannot read: {getattr(exc, 'strerror', None) or exc}")


def _gunzip(fh: BinaryIO, on_cut: Callable[[int], None] | None) -> Iterator[bytes]:
    """The decompressed bytes of a gzip file in blocks of about ``CHUNK``; a file that ends before its
    end marker is read up to there and ``on_cut`` told its size.  Corrupt data raises (zlib.error,
    ``gzip.BadGzipFile``)."""
    buf = bytearray()
    with gzip.GzipFile(fileobj=fh) as gz:
        try:
            # read1: one read of the compressed file per call, so what was decompressed before the
            # cut is returned before the call that finds the cut raises
            while block := gz.read1(CHUNK):
                buf += block
                if len(buf) >= CHUNK:
                    yield bytes(buf)
                    buf.clear()
        except EOFError:
            if on_cut is not None:
                on_cut(fh.seek(0, os.SEEK_END))
    if buf:
        yield bytes(buf)
