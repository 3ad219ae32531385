"""The scratch copies' private copies of large files (sleuth.reduce.scratch.PrivateCopies): one copy
per candidate running at once, hard-linked into it, never the user's inode, made again once rewritten."""

from __future__ import annotations

import os
from pathlib import Path

from sleuth.reduce.scratch import PrivateCopies


def test_candidates_reuse_private_copies_one_at_a_time_until_one_rewrites_it(tmp_path: Path) -> None:
    user = tmp_path / "ckpt.pt"
    user.write_bytes(b"weights" * 1000)
    copies = PrivateCopies(tmp_path / "run" / "private")
    a, b, c = (tmp_path / n for n in ("a", "b", "c"))
    copies.link(user, a)
    ino = a.stat().st_ino
    assert ino != user.stat().st_ino and a.stat().st_nlink == 2  # the private copy and the candidate
    copies.link(user, b)  # a second candidate while the first runs: its own copy
    assert b.stat().st_ino not in (ino, user.stat().st_ino)
    a.unlink()  # the first is judged: its scratch copy removed
    copies.link(user, c)
    assert c.stat().st_ino == ino  # the copy is reused, not made again
    with open(c, "r+b") as f:  # that candidate patches its file in place
        f.write(b"candidate")
    c.unlink()
    copies.link(user, a)
    assert a.read_bytes() == user.read_bytes() == b"weights" * 1000  # made again from the original
    assert len(os.listdir(copies.root)) == 2  # one copy per candidate running at once


def test_a_new_process_makes_its_private_copy_again(tmp_path: Path) -> None:
    """What an earlier (killed) reduction left in the folder may have been rewritten since."""
    user = tmp_path / "ckpt.pt"
    user.write_bytes(b"original")
    root = tmp_path / "private"
    PrivateCopies(root).link(user, tmp_path / "a")
    (tmp_path / "a").write_bytes(b"rewritten")  # through the link: the private copy itself
    PrivateCopies(root).link(user, tmp_path / "b")  # the resume's
    assert (tmp_path / "b").read_bytes() == b"original"
    assert len(os.listdir(root)) == 1  # one private copy, no .tmp left
