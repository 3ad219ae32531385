"""The scratch copies (sleuth.reduce.scratch): the private copies of large files (one copy per
candidate running at once, hard-linked into it, never the user's inode, made again once rewritten),
a file_set's links, the subdirectories, real directories where whatever a candidate creates
stays its own, and every trial in its own scratch copy, whatever the axes, laid out again on resume
(run through the CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from sleuth.reduce.scratch import PrivateCopies
from tests.reduce.conftest import doc, env_with_path


def test_candidates_reuse_private_copies_one_at_a_time_until_one_rewrites_it(tmp_path: Path) -> None:
    user = tmp_path / "ckpt.pt"
    user.write_bytes(b"weights" * 1000)
    copies = PrivateCopies(tmp_path / "run" / "private")
    a, b, c = (tmp_path / "run" / n / "ckpt.pt" for n in ("a", "b", "c"))
    for p in (a, b, c):
        p.parent.mkdir(parents=True)
    copies.link(user, a)
    ino = a.stat().st_ino
    assert ino != user.stat().st_ino and a.stat().st_nlink == 2  # the private copy and the candidate
    copies.link(user, b)  # a second candidate while the first runs: its own copy
    assert b.stat().st_ino not in (ino, user.stat().st_ino)
    copies.discard(a.parent)  # the first is judged: its scratch copy removed
    assert not a.parent.exists()
    copies.link(user, c)
    assert c.stat().st_ino == ino  # the copy is reused, not made again
    with open(c, "r+b") as f:  # that candidate patches its file in place
        f.write(b"candidate")
    copies.discard(c.parent)
    a.parent.mkdir()
    copies.link(user, a)
    assert a.read_bytes() == user.read_bytes() == b"weights" * 1000  # made again from the original
    assert len(os.listdir(copies.root)) == 2  # one copy per candidate running at once


def test_a_scratch_copy_removed_without_discard_gets_its_private_copies_made_again(tmp_path: Path) -> None:
    """Unlinking changes a file's change time as a write does: a scratch copy removed other than by
    PrivateCopies.discard cannot tell one from the other, so its private copies are made again."""
    user = tmp_path / "ckpt.pt"
    user.write_bytes(b"weights")
    copies = PrivateCopies(tmp_path / "run" / "private")
    a, b = (tmp_path / "run" / n / "ckpt.pt" for n in ("a", "b"))
    for p in (a, b):
        p.parent.mkdir(parents=True)
    copies.link(user, a)
    ino = a.stat().st_ino
    a.unlink()
    copies.link(user, b)
    assert b.stat().st_ino != ino and b.read_bytes() == b"weights"
    assert len(os.listdir(copies.root)) == 1


def test_a_private_copy_is_made_outside_the_lock(tmp_path: Path, monkeypatch: Any) -> None:
    """PrivateCopies.link held its lock while it copied a file (seconds for a checkpoint): every
    other worker's scratch copy waited for it.  Now the copy is made outside the lock: while one
    worker's copy is under way (held up here until told to go on), another links another file, and
    a third the same file (a copy of its own: the one being made is the first worker's)."""
    from sleuth.reduce import scratch

    big, small = tmp_path / "big.bin", tmp_path / "small.txt"
    big.write_bytes(b"big" * 1000)
    small.write_bytes(b"small")
    started, go = threading.Event(), threading.Event()
    real = scratch._clone

    def held_up(src: Any, dst: Any, *, copy: bool = True) -> bool:
        if os.fspath(src) == os.fspath(big) and not started.is_set():
            started.set()
            go.wait(300)  # set once the others are done (or seen waiting)
        return real(src, dst, copy=copy)

    monkeypatch.setattr(scratch, "_clone", held_up)
    copies = PrivateCopies(tmp_path / "run" / "private")
    works = [tmp_path / "run" / n for n in ("a", "b", "c")]
    for w in works:
        w.mkdir(parents=True)
    first = threading.Thread(target=copies.link, args=(big, works[0] / "big.bin"))
    others = [
        threading.Thread(target=copies.link, args=(small, works[1] / "small.txt")),
        threading.Thread(target=copies.link, args=(big, works[2] / "big.bin")),
    ]
    first.start()
    try:
        assert started.wait(60)
        for t in others:
            t.start()
        for t in others:
            t.join(30)  # at once, unless they wait for the lock held for the copy
        waited = [t.is_alive() for t in others]
        assert not (works[0] / "big.bin").exists()  # the first copy is still under way
    finally:
        go.set()
        for t in (first, *others):
            if t.ident is not None:  # started
                t.join(60)
    assert waited == [False, False]
    assert (works[0] / "big.bin").read_bytes() == (works[2] / "big.bin").read_bytes() == b"big" * 1000
    assert (works[1] / "small.txt").read_bytes() == b"small"
    assert (works[0] / "big.bin").stat().st_ino != (works[2] / "big.bin").stat().st_ino
    assert len(os.listdir(copies.root)) == 3 and not [
        n for n in os.listdir(copies.root) if n.endswith(".tmp")
    ]


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


#: writes out/result.txt (and out/deep/<its lines>.txt) with the candidate's lines, waits for the
#: other candidate running at once, reads it back; exit 1 when the needle is kept, 3 on another's
WRITER = """import os, sys, time
mine = ",".join(open(sys.argv[1]).read().split())
os.makedirs("out/deep", exist_ok=True)
open("out/result.txt", "w").write(mine)
open(os.path.join("out", "deep", mine.replace(",", "_") + ".txt"), "w").write(mine)
open("state/progress.json", "w").write(mine)
time.sleep(0.4)
got = open("out/result.txt").read()
if got != mine:
    print(f"CROSSTALK: wrote {mine!r}, read {got!r}")
    sys.exit(3)
sys.exit(1 if "needle" in mine.split(",") else 0)
"""

#: the CLI with one of the scratch copies' budgets made small (the module's constant, as sleuth reads it)
SMALL = "import sys, sleuth.reduce.layout as s; s.{}; from sleuth.cli import main; sys.exit(main())"


def _small(tmp_path: Path, patch: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``sleuth ARGS`` as the ``cli`` fixture runs it, with ``patch`` applied to the scratch module."""
    return subprocess.run(
        [sys.executable, "-c", SMALL.format(patch), *map(str, args)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env=env_with_path(tmp_path), stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: a file's bytes, a symlink's target, a directory as "dir"."""
    got: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            got[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            got[rel] = "dir"
        else:
            got[rel] = p.read_bytes()
    return got


#: the file_lines axis WRITER shrinks, and its place in the command
LINES_AXIS = ({"name": "LINES", "kind": "file_lines", "path": "lines.txt"},)

#: an env and a numeric axis, no file axis: the minimum is N=5, M=3
NUMBER_AXES = (
    {"name": "N", "kind": "env", "initial": 40, "floor": 1},
    {"name": "M", "kind": "param", "initial": 30, "floor": 1},
)

#: WRITER for NUMBER_AXES: writes its N and M into out/result.txt and the top-level result.txt,
#: waits for the other candidate running at once, reads both back; exit 3 on another's
NUMBERS = """import os, sys, time
mine = os.environ["N"] + ":" + sys.argv[1]
for p in ("out/result.txt", "result.txt"):
    open(p, "w").write(mine)
time.sleep(0.4)
for p in ("out/result.txt", "result.txt"):
    got = open(p).read()
    if got != mine:
        print(f"CROSSTALK: {p}: wrote {mine!r}, read {got!r}")
        sys.exit(3)
sys.exit(1 if int(os.environ["N"]) >= 5 and int(sys.argv[1]) >= 3 else 0)
"""


def _writer(
    tmp_path: Path, script: str = WRITER, axes: tuple[dict[str, Any], ...] = LINES_AXIS, arg: str = "{LINES}"
) -> tuple[Path, Path]:
    """The workload's directory (its out/ and state/ already there) and its spec (``axes``, the
    command ``python main.py ARG``)."""
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    (work / "out" / "existing.txt").write_text("the user's\n")
    (work / "state").mkdir()
    (work / "state" / "progress.json").write_text('{"theirs": true}')
    (work / "main.py").write_text(script)
    (work / "lines.txt").write_text("".join(("needle" if i == 5 else f"l{i}") + "\n" for i in range(12)))
    spec = work / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "writer", "workload": {"command": [sys.executable, "main.py", arg], "timeout": 60},
        "oracle": {"kind": "exit_code"}, "budget": {"baseline_trials": 1}, "axes": list(axes),
    }))  # fmt: skip
    return work, spec


def test_what_a_candidate_writes_in_a_subdirectory_stays_in_its_scratch_copy(cli, tmp_path: Path) -> None:
    """``out/`` and ``state/`` were symlinks to the user's: every candidate's out/result.txt and
    out/deep/*.txt were left in the user's tree (and shipped in the bundle's inputs/), and
    state/progress.json, rewritten in place, was the user's file."""
    work, spec = _writer(tmp_path)
    before = _tree(work)
    d = doc(cli("reduce", "--spec", spec, "--json"))
    assert d["final"]["axes"] == {"LINES": ["needle"]}, d["final"]
    assert _tree(work) == before
    inputs = Path(d["run_dir"]) / "shrunken" / "inputs"
    assert sorted(os.listdir(inputs / "out")) == ["existing.txt"]
    assert not list(Path(d["run_dir"]).glob("candidates/*/work"))


def test_two_candidates_at_once_each_read_back_their_own_output(cli, tmp_path: Path) -> None:
    """With ``--jobs 2`` the two candidates running at once shared the user's out/: one read the
    other's out/result.txt (a metric or a judge reading it judges the wrong candidate)."""
    work, spec = _writer(tmp_path)
    d = doc(cli("reduce", "--spec", spec, "--jobs", "2", "--json"))
    run = Path(d["run_dir"])
    outs = [p.read_text() for p in run.glob("candidates/*/t*/stdout")]
    assert len(outs) > 4
    assert not [o for o in outs if "CROSSTALK" in o], outs
    assert d["final"]["axes"] == {"LINES": ["needle"]}, d["final"]
    assert sorted(os.listdir(work / "out")) == ["existing.txt"]


def test_without_file_axes_two_candidates_at_once_each_read_back_their_own_output(
    cli, tmp_path: Path
) -> None:
    """Without a file axis every candidate ran in the user's directory: with ``--jobs 2`` one read
    the other's out/result.txt or result.txt (judged by another candidate's output)."""
    _, spec = _writer(tmp_path, NUMBERS, NUMBER_AXES, "{M}")
    d = doc(cli("reduce", "--spec", spec, "--jobs", "2", "--json"))
    outs = [p.read_text() for p in Path(d["run_dir"]).glob("candidates/*/t*/stdout")]
    assert len(outs) > 4
    assert not [o for o in outs if "CROSSTALK" in o], outs
    assert d["final"]["axes"] == {"N": 5, "M": 3}, d["final"]


def test_without_file_axes_the_users_tree_is_left_as_it_was(cli, tmp_path: Path) -> None:
    """Every candidate's result.txt and out/result.txt were left in the user's tree (and shipped in
    the bundle's inputs/); no scratch copy is left in the run dir either."""
    work, spec = _writer(tmp_path, NUMBERS, NUMBER_AXES, "{M}")
    before = _tree(work)
    d = doc(cli("reduce", "--spec", spec, "--json"))
    assert d["final"]["axes"] == {"N": 5, "M": 3}, d["final"]
    assert _tree(work) == before
    run = Path(d["run_dir"])
    assert sorted(os.listdir(run / "shrunken" / "inputs" / "out")) == ["existing.txt"]
    assert not (run / "shrunken" / "inputs" / "result.txt").exists()
    assert not list(run.glob("candidates/*/work"))


#: reads a data file and a large top-level file by relative path, then rewrites the large one in place
READER = """import os, sys
assert open("data/sub/f3.txt").read() == "3", "data/sub/f3.txt"
with open("weights.bin", "r+b") as fh:
    assert fh.read() == b"W" * 64, "weights.bin"
    fh.seek(0)
    fh.write(b"candidate " + os.environ["N"].encode())
sys.exit(1 if int(os.environ["N"]) >= 5 and int(sys.argv[1]) >= 3 else 0)
"""


def test_without_file_axes_relative_paths_to_data_and_a_large_top_level_file_still_work(
    tmp_path: Path,
) -> None:
    """A workload reading data/ and a top-level file over COPY_LIMIT (a private copy, hard-linked)
    by relative path runs as in its own directory; rewriting the large file in place changes only the
    candidate's private copy, never the user's (it did, run in place)."""
    work, spec = _writer(tmp_path, READER, NUMBER_AXES, "{M}")
    (work / "data" / "sub").mkdir(parents=True)
    for i in range(6):
        (work / "data" / "sub" / f"f{i}.txt").write_text(str(i))
    (work / "weights.bin").write_bytes(b"W" * 64)
    before = _tree(work)
    d = doc(_small(tmp_path, "COPY_LIMIT = 16", "reduce", "--spec", spec, "--jobs", "2", "--json"))
    assert d["final"]["axes"] == {"N": 5, "M": 3}, d["final"]
    assert _tree(work) == before
    assert not (Path(d["run_dir"]) / "private").exists()


def test_each_trial_of_a_candidate_has_its_own_scratch_copy(cli, tmp_path: Path) -> None:
    """The baseline's trials, run at once with ``--jobs 2``, shared one scratch copy (one per
    candidate): the second found the first's out/mine.txt and failed otherwise, so the original
    looked flaky.  Each trial starts from the user's files, as a repetition should."""
    script = WRITER.replace(
        'open("out/result.txt", "w")', 'open("out/mine.txt", "x").write(mine); open("out/result.txt", "w")'
    )
    _, spec = _writer(tmp_path, script)
    spec.write_text(spec.read_text().replace("baseline_trials: 1", "baseline_trials: 2"))
    d = doc(cli("reduce", "--spec", spec, "--jobs", "2", "--json"))
    assert d["flaky"]["original"]["reproduced"] == d["flaky"]["original"]["trials"] == 2, d["flaky"]
    assert d["final"]["axes"] == {"LINES": ["needle"]}, d["final"]


#: the first time (no KILLED file beside the cwd), leaves out/dirty.txt in its scratch copy and
#: SIGKILLs the reduction (its nearest ancestor running "sleuth reduce"); a trial that finds
#: out/dirty.txt exits 3
KILLER = """import os, signal, sys
if os.path.exists("out/dirty.txt"):
    print("DIRTY: a scratch copy an earlier process left")
    sys.exit(3)
flag = os.environ["KILLED"]
if not os.path.exists(flag):
    open(flag, "w").close()
    open("out/dirty.txt", "w").write("left")
    pid = os.getppid()
    while pid > 1:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
        if b"sleuth" in argv and b"reduce" in argv:
            os.kill(pid, signal.SIGKILL)
            sys.exit(0)
        pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    sys.exit(4)
sys.exit(1 if "needle" in open(sys.argv[1]).read().split() else 0)
"""


def test_a_resume_lays_out_again_the_scratch_copy_a_killed_process_left(cli, tmp_path: Path) -> None:
    """A reduction killed (kill -9) while a trial ran left its scratch copy, marked ready: the
    resume ran the trial again in it, with what the killed trial had written (out/dirty.txt)."""
    _, spec = _writer(tmp_path, KILLER)
    killed = cli("reduce", "--spec", spec, "--json", env={"KILLED": str(tmp_path / "KILLED")})
    assert killed.returncode == -9, killed.stderr[-2000:]
    (run,) = (tmp_path / "runs" / "reduce" / "writer").iterdir()
    assert list(run.glob("candidates/*/work/**/out/dirty.txt"))  # the killed trial's, left behind
    d = doc(cli("reduce", "resume", run, "--json", env={"KILLED": str(tmp_path / "KILLED")}))
    outs = [p.read_text() for p in run.glob("candidates/*/t*/stdout")]
    assert not [o for o in outs if "DIRTY" in o], outs
    assert d["final"]["axes"] == {"LINES": ["needle"]}, d["final"]


def test_a_directory_over_the_budget_stays_a_symlink_and_a_note_says_so(tmp_path: Path) -> None:
    """A tree past LAYOUT_ENTRIES (a dataset) is not laid out for every candidate: it stays a symlink
    to the original, said once on stderr and in the journal, naming it; the smaller out/ is still
    laid out."""
    work, spec = _writer(tmp_path, WRITER.replace("time.sleep(0.4)", "open('data/written.txt', 'w')"))
    (work / "data").mkdir()
    for i in range(8):
        (work / "data" / f"f{i}.bin").write_bytes(b"%d" % i)
    res = _small(tmp_path, "LAYOUT_ENTRIES = 6", "reduce", "--spec", spec, "--json")
    d = doc(res)
    assert d["final"]["axes"] == {"LINES": ["needle"]}, d["final"]
    notes = [line for line in res.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "data/ stays a symlink" in notes[0], res.stderr[-2000:]
    assert "budget of 6 entries" in notes[0]
    assert str(work) in notes[0] and "reaches" in notes[0]
    events = [json.loads(line) for line in (Path(d["run_dir"]) / "journal.jsonl").read_text().splitlines()]
    assert [e["text"] for e in events if e["event"] == "note"] == [notes[0].removeprefix("note: ")]
    assert (work / "data" / "written.txt").exists()  # as the note says
    assert sorted(os.listdir(work / "out")) == ["existing.txt"]


#: removes every file of out/, state/ and data/ (a workload that cleans up after itself)
CLEANER = """import os, sys
for top in ("out", "state", "data"):
    for d, dirs, files in os.walk(top):
        for f in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            os.remove(os.path.join(d, f))
sys.exit(1 if "needle" in open(sys.argv[1]).read().split() else 0)
"""


def test_removing_the_scratch_copies_leaves_every_file_of_the_user(tmp_path: Path) -> None:
    """A workload that removes what its subdirectories hold (copied files, files linked to the
    original, symlinks in and out of the tree), then the scratch copies removed as each candidate is
    judged and at the end: the user's tree and what its links lead to are whole (a symlinked out/
    let the workload delete the user's files)."""
    work, spec = _writer(tmp_path, CLEANER)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kept.txt").write_text("outside")
    (work / "data" / "sub").mkdir(parents=True)
    for i in range(6):
        (work / "data" / "sub" / f"f{i}.bin").write_bytes(b"%d" % i)
    (work / "data" / "ext").symlink_to(outside)  # a linked directory outside the cwd
    (work / "data" / "ext.txt").symlink_to(outside / "kept.txt")
    (work / "out" / "rel").symlink_to("existing.txt")
    before, there = _tree(work), _tree(outside)
    res = _small(tmp_path, "COPY_ENTRIES = 5", "reduce", "--spec", spec, "--json")
    d = doc(res)
    assert d["final"]["axes"] == {"LINES": ["needle"]}, d["final"]
    assert _tree(work) == before and _tree(outside) == there
    run = Path(d["run_dir"])
    assert not list(run.glob("candidates/*/work")) and not (run / "private").exists()


def test_the_layout_takes_the_smallest_trees_first_and_leaves_the_deep_and_the_run_dir(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Small trees copied, the next linked, a tree past the depth (rmtree recurses a level a frame)
    or the budget left a symlink and named; the output dir holding the run dir is neither."""
    from sleuth.reduce import layout as lay

    monkeypatch.setattr(lay, "COPY_ENTRIES", 3)
    monkeypatch.setattr(lay, "LAYOUT_ENTRIES", 16)
    monkeypatch.setattr(lay, "LAYOUT_DEPTH", 3)
    cwd = tmp_path / "cwd"
    (cwd / "out").mkdir(parents=True)
    (cwd / "out" / "m.json").write_text("{}")
    (cwd / "data").mkdir()
    for i in range(6):
        (cwd / "data" / f"{i}.bin").write_bytes(b"x")
    (cwd / "big").mkdir()
    for i in range(8):
        (cwd / "big" / f"{i}.bin").write_bytes(b"x")
    (cwd / "ok" / "d" / "d" / "d").mkdir(parents=True)  # 3 levels below it
    (cwd / "deep" / "d" / "d" / "d" / "d").mkdir(parents=True)  # 4
    run = cwd / "runs" / "reduce" / "x"
    run.mkdir(parents=True)
    got = lay.layout(cwd, ("lines.txt",), run)
    assert got.roots == {"out", "ok", "data"}
    assert got.copied == ("out/m.json",) and len(got.linked) == 6
    assert got.symlinked == ("big", "deep")  # big: 9 entries past the 3 left after out, ok and data
    assert "big/, deep/ stay symlinks" in (got.note(cwd) or "")


def test_a_version_control_or_environment_folder_over_the_budget_gets_no_note(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A .git or .venv over the budget stays a symlink as any tree does, but is not named in the
    note: nearly every workload's directory has one, and the note printed on every reduction."""
    from sleuth.reduce import layout as lay

    monkeypatch.setattr(lay, "LAYOUT_ENTRIES", 4)
    cwd = tmp_path / "cwd"
    for name in (".git", ".venv"):
        (cwd / name / "objects").mkdir(parents=True)
        for i in range(6):
            (cwd / name / "objects" / f"{i}").write_bytes(b"x")
    run = tmp_path / "run"
    run.mkdir()
    got = lay.layout(cwd, ("lines.txt",), run)
    assert got.symlinked == (".git", ".venv") and got.note(cwd) is None
    (cwd / "data").mkdir()
    for i in range(6):
        (cwd / "data" / f"{i}.bin").write_bytes(b"x")
    got = lay.layout(cwd, ("lines.txt",), run)
    assert set(got.symlinked) == {".git", ".venv", "data"}
    note = got.note(cwd) or ""
    assert note.startswith("data/ stays a symlink") and ".git" not in note and ".venv" not in note
