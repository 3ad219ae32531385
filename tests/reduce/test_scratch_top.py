"""The budget of the cwd's own files in the scratch copies (sleuth.reduce.layout, sleuth.reduce.scratch):
the smallest get their own bytes in each trial's scratch copy, the others are hard links to the
reduction's private copies (never the user's inode, never a symlink, made again once rewritten), and
the cwd is listed once per reduction."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from sleuth.reduce import layout as lay
from sleuth.reduce.plan import Candidate
from sleuth.reduce.scratch import PrivateCopies, build_workdir
from tests.reduce.conftest import doc, env_with_path


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: a file's bytes, a symlink's target, a directory as "dir"."""
    got: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        got[rel] = "-> " + os.readlink(p) if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes()
    return got


def _flat_cwd(cwd: Path, n: int) -> dict[str, bytes]:
    """``cwd`` with ``n`` top-level files f-00.txt... of growing sizes (1, 2, ... bytes and a marker),
    ``lines.txt`` (the axis) and ``out/m.json``; the top-level files but the axis, name -> bytes."""
    (cwd / "out").mkdir(parents=True)
    (cwd / "out" / "m.json").write_text("{}")
    (cwd / "lines.txt").write_text("a\nb\n")
    files = {f"f-{i:02d}.txt": b"%02d" % i + b"x" * i for i in range(n)}
    for name, data in files.items():
        (cwd / name).write_bytes(data)
    return files


def test_top_level_files_past_the_budget_are_links_to_private_copies_and_stay_private(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Every top-level file was copied (own inode, own bytes) into every scratch copy: 3,000 small
    files or 200 of 10 MiB were copied again for each candidate.  Now the TOP_FILES smallest are, and
    the others are hard links to private copies: regular files with the user's bytes, never the
    user's inode, one set per candidate running at once, reused by the next, made again from the
    original once a candidate rewrote one in place."""
    monkeypatch.setattr(lay, "TOP_FILES", 4)
    cwd = tmp_path / "cwd"
    files = _flat_cwd(cwd, 12)
    plan: Any = SimpleNamespace(cwd=cwd)
    copies = PrivateCopies(tmp_path / "run" / "private")

    def scratch(name: str) -> Path:
        work = tmp_path / "run" / name
        build_workdir(
            plan, Candidate(argv=("true",), env={}, files={"lines.txt": "a\n"}, key=name * 8), work, copies
        )
        return work

    a = scratch("a")
    user_ino = {name: (cwd / name).stat().st_ino for name in files}
    for name, data in files.items():
        p = a / name
        assert not p.is_symlink() and p.is_file() and p.read_bytes() == data, name
        assert p.stat().st_ino != user_ino[name], name
    own = sorted(n for n in files if (a / n).stat().st_nlink == 1)
    assert own == ["f-00.txt", "f-01.txt", "f-02.txt", "f-03.txt"]  # the smallest, up to TOP_FILES
    shared = sorted(set(files) - set(own))
    assert all((a / n).stat().st_nlink == 2 for n in shared)  # the scratch copy's and the private copy
    assert (a / "lines.txt").read_bytes() == b"a\n" and (a / "out" / "m.json").read_text() == "{}"

    b = scratch("b")  # a second candidate while the first runs: its own private copies
    assert not {(a / n).stat().st_ino for n in shared} & {(b / n).stat().st_ino for n in shared}
    for n in ("f-00.txt", "f-09.txt", "f-11.txt"):  # a copied file and linked ones, rewritten in place
        with open(a / n, "r+b") as fh:
            fh.write(b"AA")
    with open(a / "f-10.txt", "ab") as fh:  # appended to
        fh.write(b"appended")
    os.chmod(a / "f-08.txt", 0o600)  # its mode changed
    assert {n: (cwd / n).read_bytes() for n in files} == files  # the user's files are as they were
    assert {n: (b / n).read_bytes() for n in files} == files  # and so are the other candidate's

    was = {n: (a / n).stat().st_ino for n in shared}
    copies.discard(a)  # judged: its scratch copy removed (each link checked first)
    c = scratch("c")
    assert {n: (c / n).read_bytes() for n in files} == files  # the rewritten ones made again
    assert all((c / n).stat().st_mode == (cwd / n).stat().st_mode for n in files)
    untouched = [n for n in shared if n not in ("f-08.txt", "f-09.txt", "f-10.txt", "f-11.txt")]
    assert untouched and all((c / n).stat().st_ino == was[n] for n in untouched)  # reused, not copied
    assert len(os.listdir(copies.root)) == 2 * len(shared)  # one copy per candidate running at once


def test_the_layout_budgets_the_cwds_files_smallest_first_in_count_and_bytes(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The cwd's files and those of a directory on the way to an axis file share one budget, the
    smallest first, in files and in bytes; a file over COPY_LIMIT is never copied (a clone where
    the file system makes one, else a link to a private copy, whatever the budget); a symlink, a
    directory holding the run dir stay symlinks (no note); the way's directories are made."""
    monkeypatch.setattr(lay, "TOP_FILES", 4)
    monkeypatch.setattr(lay, "TOP_BYTES", 6)
    monkeypatch.setattr(lay, "COPY_LIMIT", 5)
    cwd = tmp_path / "cwd"
    (cwd / "conf" / "sub").mkdir(parents=True)
    (cwd / "conf" / "lines.txt").write_text("axis")
    (cwd / "conf" / "w.txt").write_bytes(b"1")  # a file on the way: in the budget
    (cwd / "conf" / "sub" / "s.txt").write_bytes(b"s")  # a tree below the way
    for name, size in (("a.py", 2), ("b.py", 3), ("c.py", 4), ("d.py", 1), ("big.bin", 6)):
        (cwd / name).write_bytes(b"x" * size)
    (cwd / "ln").symlink_to("a.py")
    run = cwd / "runs" / "reduce" / "x"
    run.mkdir(parents=True)
    got = lay.layout(cwd, ("conf/lines.txt",), run)
    assert sorted(got.copied) == ["a.py", "conf/sub/s.txt", "conf/w.txt", "d.py"]  # 1 + 1 + 2 bytes
    assert sorted(got.private) == ["b.py", "c.py"]  # with b.py, 7 bytes: past TOP_BYTES
    assert got.large == ("big.bin",)  # over COPY_LIMIT: a clone where one can be made, never a copy
    assert sorted(got.others) == ["ln", "runs"] and got.symlinked == () and got.note(cwd) is None
    assert got.dirs == ("conf", "conf/sub") and got.roots == {"conf/sub"}
    monkeypatch.setattr(lay, "TOP_BYTES", 100)
    got = lay.layout(cwd, ("conf/lines.txt",), run)
    assert sorted(got.copied) == ["a.py", "b.py", "conf/sub/s.txt", "conf/w.txt", "d.py"]
    assert got.private == ("c.py",) and got.large == ("big.bin",)  # c.py: past TOP_FILES


#: the workload: main.py (larger than the cwd's other files, so past the budget: a link to a private
#: copy) imports helper.py, reads and rewrites in place every cfg-*.txt, appends to itself; anything
#: of another candidate's or of the user's directory it finds is printed and exits 3
MAIN = (
    """import os, sys
import helper
here = os.path.realpath(os.getcwd())
problems = []
if os.path.islink(__file__) or os.path.islink(sys.argv[0]):
    problems.append("main.py is a symlink")
if os.stat(__file__).st_nlink != 2 or os.stat("helper.py").st_nlink != 2:
    problems.append("main.py or helper.py is not a link to a private copy (past the budget)")
if os.path.realpath(sys.path[0]) != here:
    problems.append("sys.path[0] is " + sys.path[0])
if os.path.dirname(os.path.realpath(helper.__file__)) != here or helper.VALUE != "mine":
    problems.append("helper imported from " + helper.__file__)
mark = "# rewritten" + " by a candidate"
if mark in open(__file__).read():
    problems.append("main.py as another candidate left it")
for i in range(10):
    p = "cfg-%02d.txt" % i
    got = open(p).read()
    if os.path.islink(p) or got != "cfg-%02d\\n" % i:
        problems.append(p + ": " + repr(got))
    with open(p, "r+") as fh:
        fh.write(got.upper())
with open(__file__, "a") as fh:
    fh.write("\\n" + mark + "\\n")
if problems:
    print("PROBLEMS", problems)
    sys.exit(3)
sys.exit(1 if "needle" in open(sys.argv[1]).read().split() else 0)
"""
    + "#" * 2000
    + "\n"
)


def _patched(tmp_path: Path, preamble: str, *args: str | Path, env: dict[str, str] | None = None) -> Any:
    """``sleuth ARGS`` as the ``cli`` fixture runs it, after ``preamble`` (Python) in its process."""
    code = f"import sys\n{preamble}\nfrom sleuth.cli import main\nsys.exit(main())\n"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**env_with_path(tmp_path), **(env or {})}, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _workload(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "d.txt").write_text("d")
    (work / "main.py").write_text(MAIN)
    (work / "helper.py").write_text('VALUE = "mine"\n' + "#" * 1000 + "\n")
    for i in range(10):
        (work / f"cfg-{i:02d}.txt").write_text(f"cfg-{i:02d}\n")
    (work / "lines.txt").write_text("".join(("needle" if i == 5 else f"l{i}") + "\n" for i in range(12)))
    spec = work / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "top", "workload": {"command": [sys.executable, "main.py", "{LINES}"], "timeout": 60},
        "oracle": {"kind": "exit_code"}, "budget": {"baseline_trials": 1},
        "axes": [{"name": "LINES", "kind": "file_lines", "path": "lines.txt"}],
    }))  # fmt: skip
    return work, spec


def test_a_script_and_files_past_the_budget_run_as_in_their_own_directory_and_stay_private(
    tmp_path: Path,
) -> None:
    """With the budget at 3 files, the script, the module it imports and most of the files it
    rewrites in place are links to private copies: with --jobs 2 each trial runs a regular main.py
    (sys.path[0] the scratch copy, helper.py imported from it), reads the user's bytes whatever an
    earlier candidate wrote, and the user's tree is as it was."""
    work, spec = _workload(tmp_path)
    before = _tree(work)
    res = _patched(tmp_path, "import sleuth.reduce.layout as s; s.TOP_FILES = 3", "reduce", "--spec", spec,
                   "--jobs", "2", "--json")  # fmt: skip
    d = doc(res)
    assert d["final"]["axes"] == {"LINES": ["needle"]}, d["final"]
    run = Path(d["run_dir"])
    outs = [p.read_text() for p in run.glob("candidates/*/t*/stdout")]
    assert len(outs) > 4
    assert not [o for o in outs if "PROBLEMS" in o], outs
    assert _tree(work) == before
    assert not (run / "private").exists() and not list(run.glob("candidates/*/work"))


#: counts, per calling module and directory, the listings (os.scandir, os.listdir) of the
#: directories named in WATCHED; printed on stderr at exit as "LISTED <json>"
COUNTER = """import atexit, collections, json, os
watched = set(os.environ["WATCHED"].split(os.pathsep))
seen = collections.Counter()
def counted(fn):
    def wrapped(path="."):
        if isinstance(path, (str, os.PathLike)) and os.path.realpath(path) in watched:
            seen[sys._getframe(1).f_globals.get("__name__", "?") + " " + os.path.realpath(path)] += 1
        return fn(path)
    return wrapped
os.scandir, os.listdir = counted(os.scandir), counted(os.listdir)
atexit.register(lambda: print("LISTED " + json.dumps(seen), file=sys.stderr))
"""


def test_the_cwd_and_its_trees_are_listed_once_per_reduction(tmp_path: Path) -> None:
    """The cwd's trees were walked twice (once for the note on stderr, once for the trials' layout)
    and the cwd listed again for every trial; now the layout lists each once, the note comes from
    it, and the scratch copies are made from it."""
    work, spec = _workload(tmp_path)
    (work / "main.py").write_text("import sys\nsys.exit(1 if 'needle' in open(sys.argv[1]).read() else 0)\n")
    cwd, data = str(work.resolve()), str((work / "data").resolve())
    res = _patched(
        tmp_path, COUNTER, "reduce", "--spec", spec, "--json", env={"WATCHED": f"{cwd}{os.pathsep}{data}"}
    )
    d = doc(res)
    assert d["final"]["axes"] == {"LINES": ["needle"]}, d["final"]
    assert d["oracle_calls"] > 3, d
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("LISTED ")]
    seen = json.loads(line.removeprefix("LISTED "))
    scratch = {
        k: n for k, n in seen.items() if k.split()[0] in ("sleuth.reduce.layout", "sleuth.reduce.scratch")
    }
    assert scratch == {f"sleuth.reduce.layout {cwd}": 1, f"sleuth.reduce.layout {data}": 1}, seen


def _reduce_lines_past_the_budget(tmp_path: Path, name: str, main_py: str, state: bytes) -> Any:
    """``sleuth reduce`` of a 12-line file to its ``needle`` line, with every top-level file of the
    cwd past the budget (``TOP_FILES = 0``): ``state.bin`` is a hard link to a private copy."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "main.py").write_text(main_py)
    (work / "state.bin").write_bytes(state)
    (work / "lines.txt").write_text("".join(("needle" if i == 5 else f"l{i}") + "\n" for i in range(12)))
    spec = work / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": name, "workload": {"command": [sys.executable, "main.py", "{LINES}"], "timeout": 60},
        "oracle": {"kind": "exit_code"}, "budget": {"baseline_trials": 1},
        "axes": [{"name": "LINES", "kind": "file_lines", "path": "lines.txt"}],
    }))  # fmt: skip
    res = _patched(
        tmp_path, "import sleuth.reduce.layout as s; s.TOP_FILES = 0", "reduce", "--spec", spec, "--json"
    )
    return doc(res)


#: checks that state.bin is the user's, then rewrites it in place keeping its size and sets its
#: modification time back, as ``touch -r`` does
SNEAKY = """import os, sys
got = open("state.bin", "rb").read()
st = os.stat("state.bin")
with open("state.bin", "r+b") as fh:
    fh.write(b"REWRITE!")
os.utime("state.bin", ns=(st.st_atime_ns, st.st_mtime_ns))
after = os.stat("state.bin")
assert (after.st_size, after.st_mtime_ns, after.st_mode) == (st.st_size, st.st_mtime_ns, st.st_mode)
if got != b"original" * 100:
    print("PROBLEMS", got[:16])
    sys.exit(3)
sys.exit(1 if "needle" in open(sys.argv[1]).read().split() else 0)
"""


def test_a_file_rewritten_keeping_its_size_and_time_is_made_again_for_the_next_candidate(
    tmp_path: Path,
) -> None:
    """A file past the budget is a hard link to a private copy, checked by its size, mode and
    modification time before the next candidate gets it: a workload that rewrote it in place keeping
    its size and set the time back (``touch -r``) left its bytes to the next candidate.  Its change
    time, which nothing sets back, is checked too: every trial reads the user's bytes."""
    d = _reduce_lines_past_the_budget(tmp_path, "sneaky", SNEAKY, b"original" * 100)
    work = tmp_path / "work"
    run = Path(d["run_dir"])
    outs = [p.read_text() for p in run.glob("candidates/*/t*/stdout")]
    assert len(outs) > 3
    assert not [o for o in outs if "PROBLEMS" in o], outs
    assert d["final"]["axes"] == {"LINES": ["needle"]}, d["final"]
    assert (work / "state.bin").read_bytes() == b"original" * 100


def test_a_file_no_candidate_changes_is_copied_once_per_reduction(tmp_path: Path) -> None:
    """Each judged trial's scratch copy is given back through PrivateCopies.discard, so the private
    copy of a file past the budget that no trial changed is the next trial's (one inode, not a copy
    per candidate), whatever its change time became as the scratch copies linked and unlinked it."""
    main_py = (
        "import os, sys\nprint('INODE', os.stat('state.bin').st_ino, open('state.bin').read())\n"
        "sys.exit(1 if 'needle' in open(sys.argv[1]).read().split() else 0)\n"
    )
    d = _reduce_lines_past_the_budget(tmp_path, "reuse", main_py, b"original")
    assert d["final"]["axes"] == {"LINES": ["needle"]}, d["final"]
    seen = [p.read_text().split() for p in Path(d["run_dir"]).glob("candidates/*/t*/stdout")]
    assert len(seen) > 3 and all(s[0] == "INODE" and s[2] == "original" for s in seen), seen
    assert len({s[1] for s in seen}) == 1, seen
