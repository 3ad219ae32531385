"""Malformed input to ``sleuth bisect``: exit 2, one line naming the flag or file, nothing created or changed.

Every case runs in-process through ``sleuth.cli.main`` (an unexpected exception escapes it and fails
the test) in a directory holding a small git repository, good and bad list files and an empty
package index; the whole directory (the repository's ``.git`` included) must be byte-for-byte the
same afterwards, so no run dir, cache or checkout was made.  A few cases also go through a real
``python -m sleuth``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sleuth.cli import main
from tests.badinput import assert_usage_error, tree_state
from tests.bisect.test_bisect_cli import make_repo

HUGE = str(10**22)
LIST = ["bisect", "list", "l.txt", "--output", "o"]

#: (arguments after ``sleuth``, words the error line must name); the command is ``-- true`` unless given
CASES: list[tuple[list[str], list[str]]] = [
    # list files
    (["bisect", "list", "nonutf8.txt", "--output", "o"], ["nonutf8.txt", "line 2", "UTF-8"]),
    (["bisect", "list", "binary.bin", "--output", "o"], ["binary.bin", "binary"]),
    (["bisect", "list", "empty.txt", "--output", "o"], ["empty.txt", "0 line"]),
    (["bisect", "list", "comments.txt", "--output", "o"], ["comments.txt", "0 line"]),
    (["bisect", "list", "one.txt", "--output", "o"], ["one.txt", "1 line"]),
    (["bisect", "list", "dups.txt", "--output", "o"], ["dups.txt", "listed twice", "lines 1 and 3"]),
    (["bisect", "list", "huge.txt", "--output", "o"], ["huge.txt", "line 2", "5000 characters"]),
    (["bisect", "list", "nosuch.txt", "--output", "o"], ["nosuch.txt", "no such file"]),
    (["bisect", "list", "adir", "--output", "o"], ["adir", "directory"]),
    # the search's flags
    ([*LIST, "--jobs", "0"], ["--jobs 0"]),
    ([*LIST, "--jobs", "-5"], ["--jobs -5"]),
    ([*LIST, "--jobs", "100000"], ["--jobs 100000", "1024"]),
    ([*LIST, "--jobs", HUGE], ["--jobs"]),
    ([*LIST, "--jobs", "two"], ["--jobs"]),
    ([*LIST, "--max-tests", "0"], ["--max-tests 0"]),
    ([*LIST, "--max-tests", "-1"], ["--max-tests -1"]),
    ([*LIST, "--max-tests", "1000000000"], ["--max-tests 1000000000"]),
    ([*LIST, "--confidence", "1"], ["--confidence 1"]),
    ([*LIST, "--confidence", "0.2"], ["--confidence 0.2"]),
    ([*LIST, "--confidence", "nan"], ["--confidence nan"]),
    ([*LIST, "--confidence", "high"], ["--confidence"]),
    ([*LIST, "--timeout", "0"], ["--timeout 0"]),
    ([*LIST, "--timeout", "-3"], ["--timeout -3"]),
    ([*LIST, "--timeout", "inf"], ["--timeout inf"]),
    ([*LIST, "--timeout", "nan"], ["--timeout nan"]),
    ([*LIST, "--kill-grace", "-1"], ["--kill-grace -1"]),
    ([*LIST, "--kill-grace", "1e9"], ["--kill-grace 1e+09", "3600"]),
    ([*LIST, "--kill-grace", "nan"], ["--kill-grace nan"]),
    ([*LIST, "--timeout", "1e12"], ["--timeout 1e+12", "at most"]),
    ([*LIST, "--flaky", "often"], ["--flaky 'often'"]),
    ([*LIST, "--flaky", "0"], ["--flaky '0'"]),
    ([*LIST, "--flaky", "1.5"], ["--flaky '1.5'"]),
    ([*LIST, "--gpus", "a,b"], ["--gpus 'a,b'"]),
    ([*LIST, "--gpus", "0,0"], ["--gpus '0,0'", "twice"]),
    ([*LIST, "--gpus", "0", "--jobs", "3"], ["--jobs 3"]),
    ([*LIST, "--name", "n" * 300], ["--name", "300 characters"]),
    ([*LIST, "--name", "../escape"], ["--name '../escape'"]),
    ([*LIST, "--name", ""], ["--name ''"]),
    ([*LIST, "--name", "-dash"], ["--name '-dash'"]),
    (["bisect", "list", "l.txt", "--output", ""], ["--output ''", "an empty path"]),
    (["bisect", "list", "l.txt", "--output", "afile"], ["--output"]),
    ([*LIST, "--env", "NOEQUALS"], ["--env 'NOEQUALS'"]),
    ([*LIST, "--env", "1BAD=x"], ["--env '1BAD=x'"]),
    ([*LIST, "--env", "=x"], ["--env '=x'"]),
    ([*LIST, "--skip-exit", "0"], ["--skip-exit 0"]),
    ([*LIST, "--skip-exit", "300"], ["--skip-exit 300"]),
    ([*LIST, "--fail-regex", "("], ["--fail-regex '('"]),
    ([*LIST, "--metric", "x=("], ["--metric 'x=('", "invalid regex"]),
    ([*LIST, "--metric", "a=b", "--metric", "a=c"], ["--metric 'a=c'", "twice"]),
    ([*LIST, "--metric-series", "noregex"], ["--metric-series 'noregex'"]),
    ([*LIST, "--fail-above", "loss=abc"], ["--fail-above 'loss=abc'"]),
    ([*LIST, "--fail-below", "loss=nan"], ["--fail-below 'loss=nan'"]),
    ([*LIST, "--threshold", "5"], ["--threshold", "--metric NAME"]),
    ([*LIST, "--direction", "higher"], ["--direction", "--metric NAME"]),
    ([*LIST, "--direction", "sideways"], ["--direction"]),
    ([*LIST, "--metric", "step", "--metric", "loss"], ["--metric loss", "one performance metric"]),
    ([*LIST, "--metric", "step", "--threshold", "5000"], ["--threshold 5000"]),
    ([*LIST, "--metric", "9bad"], ["--metric '9bad'"]),
    ([*LIST, "--cwd", "/nonexistent/dir"], ["--cwd /nonexistent/dir"]),
    ([*LIST, "--cwd", "afile"], ["--cwd"]),
    ([*LIST, "--stream", "stdin"], ["--stream"]),
    ([*LIST, "--skip", "v99"], ["--skip 'v99'"]),
    ([*LIST, "--skip", "v1"], ["--skip 'v1'", "between"]),
    ([*LIST, "--bogus"], ["--bogus"]),
    (["bisect", "list", "l.txt", "--output", "o"], ["no test command", "sleuth bisect list"]),
    (["bisect", "nosuch"], ["nosuch"]),
    # git: repositories and refs
    (
        ["bisect", "git", "--repo", "nowhere", "--good", "a", "--bad", "b"],
        ["--repo 'nowhere'", "no such directory"],
    ),
    (["bisect", "git", "--repo", "", "--good", "a", "--bad", "b"], ["--repo ''"]),
    (["bisect", "git", "--repo", "plain", "--good", "a", "--bad", "b"], ["--repo", "not a git repository"]),
    (["bisect", "git", "--repo", "afile", "--good", "a", "--bad", "b"], ["--repo 'afile'"]),
    (["bisect", "git", "--repo", "repo", "--good", "nope", "--bad", "main"], ["--good nope", "not a commit"]),
    (["bisect", "git", "--repo", "repo", "--good", "main~5", "--bad", "nope"], ["--bad nope"]),
    (["bisect", "git", "--repo", "repo", "--good", "main", "--bad", "main"], ["same commit"]),
    (["bisect", "git", "--repo", "repo", "--good", "main", "--bad", "main~3"], ["--good main", "ancestor"]),
    (["bisect", "git", "--repo", "repo", "--good=--all", "--bad", "main"], ["--good '--all'"]),
    (["bisect", "git", "--repo", "repo", "--good", "main^{tree}", "--bad", "main"], ["--good main^{tree}"]),
    (["bisect", "git", "--repo", "repo", "--good", "a", "--good", "b", "--bad", "main"], ["--good a b"]),
    (["bisect", "git", "--repo", "repo", "--good", "main~5"], ["--bad"]),
    (
        ["bisect", "git", "--repo", "a=repo", "--repo", "repo", "--good", "a=x", "--bad", "a=y"],
        ["--repo 'repo'"],
    ),
    (
        ["bisect", "git", "--repo", "a=repo", "--repo", "a=repo", "--good", "a=x", "--bad", "a=y"],
        ["given twice"],
    ),
    (
        ["bisect", "git", "--repo", "=repo", "--repo", "b=repo", "--good", "b=x", "--bad", "b=y"],
        ["--repo '=repo'"],
    ),
    (
        [
            "bisect",
            "git",
            "--repo",
            "a=repo",
            "--repo",
            "b=repo",
            "--good",
            "a=main~2",
            "--bad",
            "a=main",
            "--bad",
            "b=main",
        ],
        ["--good", "not matching: b"],
    ),
    (
        [
            "bisect",
            "git",
            "--repo",
            "a=repo",
            "--repo",
            "b=nowhere",
            "--good",
            "a=x",
            "--good",
            "b=x",
            "--bad",
            "a=y",
            "--bad",
            "b=y",
        ],
        ["--repo b=nowhere"],
    ),
    (["bisect", "git", "--repo", "repo", "--good", "main~5", "--bad", "main", "--path", ""], ["--path ''"]),
    (
        ["bisect", "git", "--repo", "repo", "--good", "main~5", "--bad", "main", "--path", "nosuch"],
        ["--path nosuch", "no commit"],
    ),
    (
        ["bisect", "git", "--repo", "repo", "--good", "main~5", "--bad", "main", "--path", "../outside"],
        ["--path ../outside"],
    ),
    (
        ["bisect", "git", "--repo", "repo", "--good", "main~5", "--bad", "main", "--skip", "nope"],
        ["--skip nope"],
    ),
    (
        ["bisect", "git", "--repo", "repo", "--good", "main~5", "--bad", "main", "--skip", "main"],
        ["--skip main", "newer end"],
    ),
    (
        ["bisect", "git", "--repo", "repo", "--good", "main~5", "--bad", "main", "--skip", "main~5"],
        ["--skip main~5", "older end"],
    ),
    (["bisect", "git", "--repo", "repo", "--good", "main~5", "--bad", "main", "--build", " "], ["--build"]),
    (
        ["bisect", "git", "--repo", "repo", "--good", "main~5", "--bad", "main", "--find-fix"],
        ["--bad main", "ancestor", "--good main~5"],
    ),
    # pypi: names, versions, requirements, interpreters, indexes (none is asked)
    (["bisect", "pypi", "bad name!"], ["'bad name!'", "not a package name"]),
    (["bisect", "pypi", "p" * 300], ["not a package name"]),
    (["bisect", "pypi", "x-"], ["not a package name"]),
    (["bisect", "pypi", "six", "--good", "abc"], ["--good 'abc'", "not a version"]),
    (["bisect", "pypi", "six", "--bad", "1..2"], ["--bad '1..2'"]),
    (["bisect", "pypi", "six", "--good", "1.0", "--bad", "1.0.0"], ["same release"]),
    (["bisect", "pypi", "six", "--with", "x y z"], ["--with 'x y z'"]),
    (["bisect", "pypi", "six", "--with", ""], ["--with ''"]),
    (["bisect", "pypi", "six", "--python", "2.1"], ["--python 2.1", "looked in"]),
    (["bisect", "pypi", "six", "--python", "/nonexistent/python"], ["--python /nonexistent/python"]),
    (["bisect", "pypi", "six", "--python", ""], ["--python ''"]),
    (["bisect", "pypi", "six", "--index-url", "not a url"], ["--index-url 'not a url'"]),
    (["bisect", "pypi", "six", "--index-url", "ftp://mirror/simple"], ["--index-url"]),
    (["bisect", "pypi", "six", "--index-url", "https://u:Secr3tPw@/simple"], ["--index-url"]),
    (["bisect", "pypi", "six", "--index-url", "file:///nonexistent/simple"], ["no such package"]),
    (["bisect", "pypi", "six", "--index-url", "INDEX"], ["no such package"]),
    # images: templates, dates, formats, runtimes, mounts
    (
        ["bisect", "images", "--template", "reg.io/jax:nightly", "--end-date", "2024-09-30"],
        ["--template", "{date}"],
    ),
    (
        ["bisect", "images", "--template", "r/x:{date}", "--end-date", "2024-13-01"],
        ["--end-date '2024-13-01'"],
    ),
    (["bisect", "images", "--template", "r/x:{date}", "--end-date", "yesterday"], ["--end-date 'yesterday'"]),
    (
        [
            "bisect",
            "images",
            "--template",
            "r/x:{date}",
            "--end-date",
            "2024-09-30",
            "--start-date",
            "2024-9-1",
        ],
        ["--start-date '2024-9-1'"],
    ),
    (
        [
            "bisect",
            "images",
            "--template",
            "r/x:{date}",
            "--end-date",
            "2024-09-01",
            "--start-date",
            "2024-09-30",
        ],
        ["--start-date 2024-09-30", "before"],
    ),
    (
        ["bisect", "images", "--template", "r/x:{date}", "--end-date", "2024-09-30", "--date-format", ""],
        ["--date-format ''"],
    ),
    (
        ["bisect", "images", "--template", "r/x:{date}", "--end-date", "2024-09-30", "--date-format", "%Y"],
        ["--date-format '%Y'", "same tag"],
    ),
    (
        ["bisect", "images", "--template", "r/x:{date}", "--end-date", "2024-09-30", "--runtime", "lxc"],
        ["--runtime"],
    ),
    (
        ["bisect", "images", "--template", "r/x:{date}", "--end-date", "2024-09-30", "--mount", "nocolon"],
        ["--mount"],
    ),
    (
        ["bisect", "images", "--template", "r/x:{date}", "--end-date", "2024-09-30", "--find-fix"],
        ["--find-fix", "--start-date"],
    ),
    (
        ["bisect", "images", "--template", "r/x:{date}", "--end-date", "2024-09-30", "--skip", "2024-09-20"],
        ["--skip", "--start-date"],
    ),
    (
        [
            "bisect",
            "images",
            "--template",
            "r/x:{date}",
            "--end-date",
            "2024-09-30",
            "--start-date",
            "2024-09-01",
            "--skip",
            "2030-01-01",
        ],
        ["--skip 2030-01-01"],
    ),
    (
        [
            "bisect",
            "images",
            "--template",
            "r/x:{date}",
            "--end-date",
            "2024-09-30",
            "--start-date",
            "2024-09-01",
            "--skip",
            "2024-02-31",
        ],
        ["--skip '2024-02-31'"],
    ),
    (
        ["bisect", "images", "--template", "r/x:{date}", "--end-date", "2024-09-30", "--metric", "step"],
        ["--metric NAME", "--start-date"],
    ),
    # resume: not a bisect run dir
    (["bisect", "resume", "adir"], ["adir", "journal.jsonl"]),
]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with everything the cases name; the process works there."""
    make_repo(tmp_path, 8, 5)
    (tmp_path / "plain").mkdir()
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x\n")
    (tmp_path / "index").mkdir()
    (tmp_path / "l.txt").write_text("".join(f"v{i}\n" for i in range(1, 9)))
    (tmp_path / "nonutf8.txt").write_bytes(b"v1\nv\xff\xfe2\nv3\n")
    (tmp_path / "binary.bin").write_bytes(b"\x7fELF\x00\x01\x02\n\x00")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "comments.txt").write_text("# nothing\n\n   \n# here\n")
    (tmp_path / "one.txt").write_text("only\n")
    (tmp_path / "dups.txt").write_text("a\nb\na\n")
    (tmp_path / "huge.txt").write_text("v1\n" + "x" * 5000 + "\nv3\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLEUTH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    for var in ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "SLEUTH_OUTPUT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _argv(args: list[str], here: Path) -> list[str]:
    args = [a.replace("INDEX", (here / "index").as_uri()) if a == "INDEX" else a for a in args]
    if args[:2] == ["bisect", "nosuch"] or args[1] == "resume" or "--bogus" in args:
        return args
    return [*args, "--", "true"]


@pytest.mark.parametrize(("args", "mentions"), CASES, ids=[" ".join(c[0][1:])[:60] for c in CASES])
def test_bad_input(
    here: Path, capfd: pytest.CaptureFixture[str], args: list[str], mentions: list[str]
) -> None:
    argv = args if mentions[0] == "no test command" else _argv(args, here)
    before = tree_state(here)
    rc = main(argv)
    out, err = capfd.readouterr()
    assert_usage_error(rc, out, err, mentions, before=before, after=tree_state(here))


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "$SLEUTH_OUTPUT '': an empty path"),
        ("afile", "$SLEUTH_OUTPUT 'afile': exists and is not a directory"),
    ],
)
def test_a_bad_sleuth_output_is_named_as_the_variable(
    here: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    """An empty ``$SLEUTH_OUTPUT`` was reported as "invalid value for '--output'", a flag never given."""
    monkeypatch.setenv("SLEUTH_OUTPUT", value)
    before = tree_state(here)
    rc = main(["bisect", "list", "l.txt", "--", "true"])
    out, err = capfd.readouterr()
    assert_usage_error(rc, out, err, [says, "unset it"], before=before, after=tree_state(here))
    assert "--output'" not in err


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60 and len({tuple(c[0]) for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["bisect", "list", "nonutf8.txt", "--output", "o", "--", "true"], ["nonutf8.txt"]),
        (
            ["bisect", "git", "--repo", "repo", "--good", "main", "--bad", "main~3", "--", "true"],
            ["ancestor"],
        ),
        (["bisect", "pypi", "six", "--python", "2.1", "--", "true"], ["--python 2.1"]),
    ],
)
def test_the_installed_command_says_the_same(here: Path, args: list[str], mentions: list[str]) -> None:
    before = tree_state(here)
    res = subprocess.run([sys.executable, "-m", "sleuth", *args], capture_output=True, text=True, timeout=120)
    assert_usage_error(
        res.returncode, res.stdout, res.stderr, mentions, before=before, after=tree_state(here)
    )
