"""The scratch copies' private copies of large files (sleuth.reduce.scratch.PrivateCopies): one copy
per candidate running at once, hard-linked into it, never the user's inode, made again once rewritten."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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


def test_a_file_sets_kept_files_are_links_to_one_symlink_each_and_writes_stay_in_the_scratch_copy(
    tmp_path: Path,
) -> None:
    """A candidate's kept shards are hard links to the reduction's one symlink per file (no new inode
    per file and candidate): each still reads the original, and what a workload writes in the scratch
    copy's directory, or removes from it, never reaches the user's directory or another candidate."""
    from sleuth.reduce.plan import Candidate
    from sleuth.reduce.scratch import build_workdir

    cwd = tmp_path / "cwd"
    (cwd / "shards" / "sub").mkdir(parents=True)
    for rel in ("a.bin", "b.bin", "sub/c.bin"):
        (cwd / "shards" / rel).write_bytes(rel.encode())
    plan: Any = SimpleNamespace(cwd=cwd)
    copies = PrivateCopies(tmp_path / "run" / "private")

    def lay(name: str, kept: tuple[str, ...]) -> Path:
        work = tmp_path / "run" / name
        cand = Candidate(argv=("true",), env={}, files={"shards": kept}, key=name * 8)
        build_workdir(plan, cand, work, copies)
        return work / "shards"

    one = lay("one", ("a.bin", "sub/c.bin"))
    two = lay("two", ("sub/c.bin",))
    assert sorted(str(p.relative_to(one)) for p in one.rglob("*")) == ["a.bin", "sub", "sub/c.bin"]
    assert [str(p.relative_to(two)) for p in two.rglob("*")] == ["sub", "sub/c.bin"]
    for d in (one, two):
        assert (d / "sub" / "c.bin").is_symlink() and (d / "sub" / "c.bin").read_bytes() == b"sub/c.bin"
    assert os.readlink(one / "a.bin") == str(cwd / "shards" / "a.bin")
    assert (one / "sub" / "c.bin").lstat().st_ino == (two / "sub" / "c.bin").lstat().st_ino  # one symlink
    (one / "new.bin").write_bytes(b"written by the workload")
    (one / "a.bin").unlink()
    (two / "sub" / "c.bin").unlink()
    assert sorted(os.listdir(cwd / "shards")) == ["a.bin", "b.bin", "sub"]
    assert (cwd / "shards" / "a.bin").read_bytes() == b"a.bin"
    assert (one / "sub" / "c.bin").read_bytes() == b"sub/c.bin"  # the other candidate's link stays
    three = lay("three", ("a.bin",))  # a later candidate still gets it
    assert (three / "a.bin").read_bytes() == b"a.bin"
    # a new process (a resume) makes the symlinks again: what a killed one left may point elsewhere
    pool = Path(copies.symlinks(cwd / "shards", ("a.bin",)))
    (pool / "a.bin").unlink()
    (pool / "a.bin").symlink_to(cwd / "shards" / "b.bin")
    again = PrivateCopies(tmp_path / "run" / "private")
    work = tmp_path / "run" / "four"
    build_workdir(
        plan, Candidate(argv=("true",), env={}, files={"shards": ("a.bin",)}, key="4" * 8), work, again
    )
    assert (work / "shards" / "a.bin").read_bytes() == b"a.bin"
