"""The scratch copies' copy-on-write clones (sleuth.reduce.scratch._clone, PrivateCopies.stand_in) on
a real file system that makes them: a small XFS with reflinks, made in a loop image for the test
and mounted under its temp dir.  ext4 makes no clone, so elsewhere this path runs only as its
fallback.  Skipped, saying why, without root, ``mkfs.xfs`` (``apt-get install xfsprogs``) or a
loop mount."""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sleuth.reduce import layout as lay
from sleuth.reduce.plan import Candidate
from sleuth.reduce.scratch import PrivateCopies, build_workdir

#: FS_IOC_FIEMAP (linux/fs.h), FIEMAP_FLAG_SYNC, FIEMAP_EXTENT_SHARED (linux/fiemap.h)
_FIEMAP, _SYNC, _SHARED = 0xC020660B, 0x1, 0x2000


def _extents(path: Path) -> list[tuple[int, int, bool]]:
    """The file's extents: (physical offset, length, shared with another file)."""
    count = 64
    buf = bytearray(struct.pack("=QQLLLL", 0, 2**64 - 1, _SYNC, 0, count, 0) + bytes(56 * count))
    with open(path, "rb") as fh:
        fcntl.ioctl(fh.fileno(), _FIEMAP, buf)
    (mapped,) = struct.unpack_from("=L", buf, 20)
    out = []
    for i in range(mapped):
        _, physical, length = struct.unpack_from("=QQQ", buf, 32 + 56 * i)
        (flags,) = struct.unpack_from("=L", buf, 32 + 56 * i + 40)
        out.append((physical, length, bool(flags & _SHARED)))
    return out


@pytest.fixture
def xfs(tmp_path: Path) -> Iterator[Path]:
    """A mounted XFS with reflinks (320 MiB, sparse: XFS's least), unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop image needs root")
    if shutil.which("mkfs.xfs") is None:
        pytest.skip("no mkfs.xfs (apt-get install xfsprogs)")
    image, mnt = tmp_path / "xfs.img", tmp_path / "xfs"
    with open(image, "wb") as fh:
        fh.truncate(320 << 20)
    mnt.mkdir()
    made = subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"mkfs.xfs failed: {made.stderr.strip()}")
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a loop image here: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)  # the loop device goes with it


def test_on_a_file_system_with_reflinks_the_scratch_copies_are_clones(xfs: Path, monkeypatch: Any) -> None:
    """Each file a scratch copy gives its own bytes (the cwd's smallest, and one over COPY_LIMIT) is
    a clone of the user's: its own inode sharing the user's blocks, no private copy made, and a
    write to it copies only what it writes, never reaching the user's file."""
    monkeypatch.setattr(lay, "TOP_FILES", 2)
    cwd = xfs / "cwd"
    cwd.mkdir()
    (cwd / "main.py").write_bytes(b"print('hi')\n" * 400)
    (cwd / "conf.txt").write_bytes(b"c" * 8192)
    (cwd / "lines.txt").write_text("a\nb\n")
    big = bytes(range(256)) * ((lay.COPY_LIMIT + (1 << 20)) // 256)  # over COPY_LIMIT
    (cwd / "ckpt.bin").write_bytes(big)
    for i in range(3):  # past TOP_FILES: hard links to private copies (a clone each would be an inode)
        (cwd / f"shard-{i}.txt").write_bytes(b"s" * (9000 + i))
    plan: Any = SimpleNamespace(cwd=cwd)
    copies = PrivateCopies(xfs / "run" / "private")
    cand = Candidate(argv=("true",), env={}, files={"lines.txt": "a\n"}, key="c" * 16)
    works = [xfs / "run" / f"w{k}" for k in range(2)]
    for w in works:
        build_workdir(plan, cand, w, copies)
    user = {n: (cwd / n).stat() for n in ("main.py", "conf.txt", "ckpt.bin")}
    for w in works:
        for name, st in user.items():
            got = (w / name).stat()
            assert not (w / name).is_symlink() and got.st_nlink == 1 and got.st_ino != st.st_ino, name
            assert (w / name).read_bytes() == (cwd / name).read_bytes(), name
            theirs, ours = _extents(cwd / name), _extents(w / name)
            assert ours and [(p, n) for p, n, _ in ours] == [(p, n) for p, n, _ in theirs], name
            assert all(shared for _, _, shared in ours), name
        assert all((w / f"shard-{i}.txt").stat().st_nlink == 2 for i in range(3))  # private copies
    assert not [n for n in os.listdir(copies.root) if "ckpt.bin" in n]  # cloned, not copied

    with open(works[0] / "ckpt.bin", "r+b") as fh:  # a candidate rewrites the start of its checkpoint
        fh.write(b"\xff" * 4096)
    assert (cwd / "ckpt.bin").read_bytes() == big and (works[1] / "ckpt.bin").read_bytes() == big
    assert (works[0] / "ckpt.bin").read_bytes()[:4096] == b"\xff" * 4096
    assert _extents(works[0] / "ckpt.bin")[0][0] != _extents(cwd / "ckpt.bin")[0][0]  # its own block now
    for w in works:
        copies.discard(w)
    copies.remove()
