"""The bundle's ``inputs/`` (sleuth.reduce.bundle.copy_inputs): the workload's directory walked once
to size and to copy it, the same copy as before, and the size limit counted as before."""

from __future__ import annotations

import collections
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sleuth.reduce import bundle
from sleuth.reduce.plan import Candidate
from sleuth.reduce.tree import copy_tree


def _cwd(root: Path, *, links: bool = True) -> Path:
    """A workload's directory with nested folders, a file_set folder, a cache, an older run dir and
    (``links``) a symlinked folder inside it, a symlinked file and a dangling link."""
    cwd = root / "cwd"
    for d in ("src/pkg/deep", "data/shards/a", "data/shards/b", "__pycache__", "old-run", "conf"):
        (cwd / d).mkdir(parents=True)
    (cwd / "main.py").write_text("print('hi')\n")
    (cwd / "lines.txt").write_text("a\nb\n")
    (cwd / "src" / "pkg" / "mod.py").write_text("X = 1\n")
    (cwd / "src" / "pkg" / "deep" / "leaf.txt").write_text("leaf\n")
    for i in range(4):
        (cwd / "data" / "shards" / "ab"[i % 2] / f"s{i}.bin").write_bytes(b"s" * 100 * (i + 1))
    (cwd / "__pycache__" / "main.cpython.pyc").write_bytes(b"pyc")
    (cwd / "old-run" / "journal.jsonl").write_text("{}\n")
    (cwd / "old-run" / ".lock").write_text("")
    (cwd / "conf" / "a.yaml").write_text("a: 1\n")
    if links:  # absolute: copytree (3.11) tells a relative one dangling from the process's cwd
        (cwd / "conf-link").symlink_to(cwd / "conf")
        (cwd / "main-link.py").symlink_to(cwd / "main.py")
        (cwd / "gone").symlink_to(cwd / "nowhere")
    return cwd


def _files(root: Path) -> dict[str, bytes | str]:
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
        if not p.is_symlink()
    }


def _cand(files: dict[str, Any]) -> Any:
    return Candidate(argv=("python", "main.py"), env={}, files=files, key="k" * 16)


def test_the_workload_directory_is_walked_once_to_size_and_copy_it(tmp_path: Path, monkeypatch: Any) -> None:
    """inputs/ walked the cwd twice: once to size it against INPUTS_LIMIT, once to copy it.  Now each
    directory is listed once (a file_set folder too: sized, its kept files written after), and the
    copy is what it was."""
    cwd = _cwd(tmp_path)
    plan: Any = SimpleNamespace(cwd=cwd)
    cand = _cand({"lines.txt": "b\n", "data/shards": ("a/s0.bin", "b/s3.bin")})
    listed: collections.Counter[str] = collections.Counter()
    real_listdir, real_scandir = os.listdir, os.scandir

    def counted(fn: Any) -> Any:
        def wrapped(path: Any = ".") -> Any:
            where = os.path.abspath(path)  # a symlinked folder by its own name
            if where == str(cwd) or where.startswith(str(cwd) + os.sep):
                listed[os.path.relpath(where, cwd)] += 1
            return fn(path)

        return wrapped

    monkeypatch.setattr(os, "listdir", counted(real_listdir))
    monkeypatch.setattr(os, "scandir", counted(real_scandir))
    note = bundle.copy_inputs(plan, cand, tmp_path / "inputs", output_root=tmp_path / "runs")
    monkeypatch.undo()
    assert note == "the workload's directory"
    assert set(listed.values()) == {1}, listed
    assert set(listed) >= {".", "src", "src/pkg/deep", "conf", "conf-link", "data/shards/a"}, listed

    got = _files(tmp_path / "inputs")
    assert got == {
        "conf": "dir",
        "conf/a.yaml": b"a: 1\n",
        "conf-link": "dir",  # a symlinked folder inside the cwd is copied as one, as before
        "conf-link/a.yaml": b"a: 1\n",
        "data": "dir",
        "data/shards": "dir",
        "data/shards/a": "dir",
        "data/shards/a/s0.bin": b"s" * 100,
        "data/shards/b": "dir",
        "data/shards/b/s3.bin": b"s" * 400,
        "lines.txt": b"b\n",
        "main-link.py": b"print('hi')\n",
        "main.py": b"print('hi')\n",
        "src": "dir",
        "src/pkg": "dir",
        "src/pkg/deep": "dir",
        "src/pkg/deep/leaf.txt": b"leaf\n",
        "src/pkg/mod.py": b"X = 1\n",
    }


def test_the_size_limit_counts_the_copy_and_the_file_set_folders_as_before(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The cwd is copied while its files and its file_set folders (whole) come to INPUTS_LIMIT at
    most; past it, only the files the command names."""
    cwd = _cwd(tmp_path, links=False)
    plan: Any = SimpleNamespace(cwd=cwd)
    cand = _cand({"data/shards": ("a/s0.bin",)})
    copied = 12 + 5 + 6 + 5 + 4  # main.py, leaf.txt, mod.py, a.yaml, lines.txt
    shards = 100 + 200 + 300 + 400
    for limit, whole in ((copied + shards, True), (copied + shards - 1, False)):
        monkeypatch.setattr(bundle, "INPUTS_LIMIT", limit)
        dest = tmp_path / f"inputs-{limit}"
        note = bundle.copy_inputs(plan, cand, dest, output_root=tmp_path / "runs")
        assert note.startswith("the workload's directory" if whole else "only the files"), (limit, note)
        assert (dest / "src" / "pkg" / "mod.py").exists() == whole
        assert (dest / "main.py").read_bytes() == b"print('hi')\n"
        assert (dest / "data" / "shards" / "a" / "s0.bin").read_bytes() == b"s" * 100


def test_copy_tree_copies_what_shutil_copytree_does(tmp_path: Path) -> None:
    """copy_tree lists the tree, then copies it: the same files, bytes and modes as copytree's
    (symlinks followed, a dangling one left out, the ignore callback applied)."""
    cwd = _cwd(tmp_path)
    os.chmod(cwd / "src" / "pkg" / "mod.py", 0o600)

    def ignore(d: str, names: list[str]) -> set[str]:
        return {n for n in names if n in ("__pycache__", "old-run")}

    copy_tree(cwd, tmp_path / "ours", ignore)
    shutil.copytree(cwd, tmp_path / "theirs", ignore=ignore, ignore_dangling_symlinks=True)
    assert _files(tmp_path / "ours") == _files(tmp_path / "theirs")
    modes = [
        {str(p.relative_to(r)): p.stat().st_mode for p in r.rglob("*")}
        for r in (tmp_path / "ours", tmp_path / "theirs")
    ]
    assert modes[0] == modes[1]


SECRET = b"aws_secret_access_key = plantedLinkedFileValue42\n"


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_a_symlinked_file_outside_the_workload_is_left_out_and_named(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """``creds -> ~/.aws/credentials`` in the cwd (or in a file_set folder, or named by the command
    past the size limit) was copied into inputs/ as its target's bytes: a secret in a bundle meant
    to be shared.  It is left out as a linked folder outside is, and the note names it."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "credentials").write_bytes(SECRET)
    cwd = _cwd(tmp_path)
    (cwd / "creds").symlink_to(home / "credentials")
    (cwd / "data" / "shards" / "a" / "creds").symlink_to(home / "credentials")  # in a file_set folder
    (cwd / "inside").symlink_to("main.py")  # a link inside the cwd is copied as its file, as before
    plan: Any = SimpleNamespace(cwd=cwd)
    cand = _cand({"data/shards": ("a/s0.bin", "a/creds")})
    dest = tmp_path / "inputs"
    note = bundle.copy_inputs(plan, cand, dest, output_root=tmp_path / "runs")
    assert SECRET not in _all_bytes(dest)
    assert not (dest / "creds").exists() and not (dest / "data" / "shards" / "a" / "creds").exists()
    assert (dest / "inside").read_bytes() == b"print('hi')\n"
    assert note.startswith("the workload's directory (left out, linked from outside it: "), note
    assert f"creds -> {home / 'credentials'}" in note and "data/shards/a/creds ->" in note

    # past INPUTS_LIMIT only the files the command names are copied: a named link out is left out
    monkeypatch.setattr(bundle, "INPUTS_LIMIT", 10)
    small = Candidate(argv=("python", "main.py", "creds"), env={}, files={}, key="k" * 16)
    dest = tmp_path / "named"
    note = bundle.copy_inputs(plan, small, dest, output_root=tmp_path / "runs")
    assert SECRET not in _all_bytes(dest) and (dest / "main.py").is_file()
    assert note.startswith("only the files the command names") and "creds ->" in note, note


def test_links_into_each_others_folders_copy_each_folder_once(tmp_path: Path) -> None:
    """``a/b -> ../c`` beside ``c/d -> ../a``: the copy went a/b/d/b/d/... until symlink resolution
    gave up (over 80 folders of the same two).  Each real folder is copied at most once on a path."""
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "c").mkdir()
    (src / "a" / "f.txt").write_text("f\n")
    (src / "c" / "g.txt").write_text("g\n")
    (src / "a" / "b").symlink_to("../c")
    (src / "c" / "d").symlink_to("../a")
    (src / "a" / "self").symlink_to(".")
    copy_tree(src, tmp_path / "out")
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")) == [
        "a",
        "a/b",
        "a/b/g.txt",
        "a/f.txt",
        "c",
        "c/d",
        "c/d/f.txt",
        "c/g.txt",
    ]
