"""``sleuth bundle`` against a run dir whose ``shrunken/`` holds symlinks: one that leads outside
would pack the file it points at (a credentials file), a dangling one or a loop crashed the copy."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.badinput import assert_usage_error, tree_state


def _run_dir(tmp_path: Path) -> Path:
    """A finished reduce run dir, as far as ``sleuth bundle`` reads one."""
    run = tmp_path / "run"
    (run / "shrunken" / "inputs").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"name": "demo", "status": "reduced", "axes": {}}))
    (run / "reduce.json").write_text("{}")
    (run / "shrunken" / "run_repro.sh").write_text("cd inputs && cat data.txt\n")
    (run / "shrunken" / "inputs" / "data.txt").write_text("1 2 3\n")
    return run


@pytest.mark.parametrize("kind", ["outside", "dangling", "loop", "shrunken itself"])
def test_a_symlink_that_leads_out_of_shrunken_is_a_usage_error(
    sleuth: Callable, tmp_path: Path, kind: str
) -> None:
    run = _run_dir(tmp_path)
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY\n")
    link = run / "shrunken" / "inputs" / "creds"
    if kind == "shrunken itself":  # shrunken/ -> a folder elsewhere (a home directory, say)
        (run / "shrunken").rename(tmp_path / "elsewhere")
        link = run / "shrunken"
        link.symlink_to(tmp_path / "elsewhere")
    elif kind == "outside":
        link.symlink_to(secret)
    elif kind == "dangling":
        link.symlink_to(tmp_path / "gone")
    else:
        link.symlink_to("..")  # shrunken/inputs/creds -> shrunken/: copied forever
    before = tree_state(tmp_path)
    r = sleuth("bundle", run)
    assert_usage_error(
        r.rc, r.stdout, r.stderr, [link.name, "symlink"], before=before, after=tree_state(tmp_path)
    )


def test_a_symlink_inside_shrunken_is_packed_as_its_file(sleuth: Callable, tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    (run / "shrunken" / "inputs" / "alias.txt").symlink_to("data.txt")
    r = sleuth("bundle", run, "--json", "--out", tmp_path / "x.tar.gz")
    assert r.rc == 0, r.stderr
    with tarfile.open(tmp_path / "x.tar.gz") as tar:
        member = tar.extractfile("demo-repro/shrunken/inputs/alias.txt")
        assert member is not None and member.read() == b"1 2 3\n"


def test_links_into_each_others_folders_are_packed_once(sleuth: Callable, tmp_path: Path) -> None:
    """``a/b -> ../c`` beside ``c/d -> ../a`` under shrunken/ (neither leads outside it nor holds
    itself): the archive held a/b/d/b/d/... until symlink resolution gave up.  Each real folder is
    packed at most once on a path."""
    run = _run_dir(tmp_path)
    inputs = run / "shrunken" / "inputs"
    (inputs / "a").mkdir()
    (inputs / "c").mkdir()
    (inputs / "a" / "f.txt").write_text("f\n")
    (inputs / "a" / "b").symlink_to("../c")
    (inputs / "c" / "d").symlink_to("../a")
    r = sleuth("bundle", run, "--out", tmp_path / "x.tar.gz")
    assert r.rc == 0, r.stderr
    with tarfile.open(tmp_path / "x.tar.gz") as tar:
        names = {m.name.removeprefix("demo-repro/shrunken/inputs/") for m in tar.getmembers()}
    assert {n for n in names if n.startswith(("a", "c"))} == {"a", "a/b", "a/f.txt", "c", "c/d", "c/d/f.txt"}


def test_a_run_name_that_is_a_path_is_a_usage_error(sleuth: Callable, tmp_path: Path) -> None:
    """``name`` names the archive and its top folder: ``../../x`` wrote outside and unpacked outside."""
    run = _run_dir(tmp_path)
    (run / "summary.json").write_text(json.dumps({"name": "../../evil", "status": "reduced", "axes": {}}))
    before = tree_state(tmp_path)
    r = sleuth("bundle", run)
    after = tree_state(tmp_path)
    assert_usage_error(r.rc, r.stdout, r.stderr, ["summary.json", "name"], before=before, after=after)
    assert not list(tmp_path.parent.glob("evil-repro*"))


def test_a_bundle_killed_mid_pack_leaves_nothing_once_bundled_again(tmp_path: Path) -> None:
    """kill -9 skips the cleanup of the staging copy (and of a partial archive); the next bundle
    removes what a dead one left and writes the whole archive."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = _run_dir(tmp_path)
    (run / "shrunken" / "inputs" / "blob.bin").write_bytes(os.urandom(24 << 20))  # a few seconds to pack
    argv = [sys.executable, "-m", "sleuth", "bundle", str(run), "--out", str(tmp_path / "demo.tar.gz")]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(run.glob(".sleuth-pack-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert list(run.glob(".sleuth-pack-*")), "the kill came too late to leave a staging copy"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not list(run.glob(".sleuth-pack-*")) and not list(tmp_path.glob(".demo.tar.gz.*"))
    with tarfile.open(tmp_path / "demo.tar.gz") as tar:
        assert tar.getmember("demo-repro/shrunken/inputs/blob.bin").size == 24 << 20


@pytest.mark.parametrize("where", ["summary.json", "input", "dataset.tar.gz", "in shrunken"])
def test_out_never_overwrites_a_file_that_is_not_a_bundle(
    sleuth: Callable, tmp_path: Path, where: str
) -> None:
    """``--out`` onto the run's summary.json, the workload's input or a tarball of the user's was
    overwritten with the archive (the run could not be bundled again, the input was lost); one in
    shrunken/ was packed into the next archive."""
    run = _run_dir(tmp_path)
    (tmp_path / "lines.txt").write_text("alpha\nomega\n")
    with tarfile.open(tmp_path / "dataset.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "lines.txt", arcname="data/lines.txt")
    out = {
        "summary.json": run / "summary.json",
        "input": tmp_path / "lines.txt",
        "dataset.tar.gz": tmp_path / "dataset.tar.gz",
        "in shrunken": run / "shrunken" / "x.tar.gz",
    }[where]
    before = tree_state(tmp_path)
    r = sleuth("bundle", run, "--out", out)
    assert_usage_error(
        r.rc, r.stdout, r.stderr, ["--out", out.name], before=before, after=tree_state(tmp_path)
    )
    # an archive sleuth bundle wrote is replaced (bundling again is the usual thing to do)
    assert sleuth("bundle", run, "--out", tmp_path / "repro.tgz").rc == 0
    again = sleuth("bundle", run, "--out", tmp_path / "repro.tgz", "--json")
    assert again.rc == 0, again.stderr


def test_a_large_input_is_streamed_into_the_archive(tmp_path: Path, sleuth_env: dict[str, str]) -> None:
    """Each member was read whole into memory: a checkpoint the command names (copied into inputs/
    whatever its size) took its size in RAM again."""
    import subprocess
    import sys

    run = _run_dir(tmp_path)
    size = 160 * 1024 * 1024
    with open(run / "shrunken" / "inputs" / "ckpt.bin", "wb") as fh:  # sparse: zeros, no disk
        fh.truncate(size)
    # the peak is read by a small parent: a child's ru_maxrss counts the image it was forked from
    # (a pytest worker late in the suite holds ~300 MB), so it cannot be this process's own child
    peak = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.stderr[-500:])\n"
    )
    argv = [sys.executable, "-m", "sleuth", "bundle", str(run), "--out", str(tmp_path / "x.tgz")]
    out = subprocess.run([sys.executable, "-c", peak, *argv], env=sleuth_env, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    code, maxrss, err = out.split(" ", 2)
    assert code == "0", err
    with tarfile.open(tmp_path / "x.tgz") as tar:
        assert tar.getmember("demo-repro/shrunken/inputs/ckpt.bin").size == size
    assert int(maxrss) * 1024 < size * 3 // 4, maxrss  # the interpreter alone is ~40 MB
