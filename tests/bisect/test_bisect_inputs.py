"""``sleuth bisect`` from a user's seat: bad inputs, what the terminal shows, the journal's numbering."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sleuth.bisect.pypifiles import oldest_installable
from tests.bisect.test_bisect_cli import TEST, doc, git, make_repo, script, sleuth


def _one_line_usage_error(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert res.returncode == 2, res.stderr
    err = res.stderr
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ")
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--repo", "plain", "--good", "a", "--bad", "b"], ["--repo", "not a git repository"]),
        (
            ["--repo", "repo/sub", "--good", "main~2", "--bad", "main"],
            ["not the top", "give --repo", "--cwd"],
        ),
        (["--repo", "repo", "--good", "nope", "--bad", "main"], ["--good nope"]),
        (["--repo", "repo", "--good", "main", "--bad", "nope"], ["--bad nope"]),
        (["--repo", "repo", "--good", "main", "--bad", "main~2"], ["ancestor"]),
        (["--repo", "repo", "--good", "main", "--bad", "main"], ["--good main", "--bad main", "same commit"]),
    ],
)
def test_git_input_errors_leave_no_run_dir(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    make_repo(tmp_path, 4, 2)
    (tmp_path / "plain").mkdir()
    (tmp_path / "repo" / "sub").mkdir()  # a folder inside the work tree
    res = sleuth("bisect", "git", *args, "--output", "out", "--", "true", cwd=tmp_path)
    _one_line_usage_error(res, *needles)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "needle"),
    [("a\nb\na\n", "listed twice"), ("only\n", "1 line"), ("\n\n# nothing\n", "0 line")],
)
def test_list_input_errors_leave_no_run_dir(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "l.txt").write_text(text)
    res = sleuth("bisect", "list", "l.txt", "--output", "out", "--", "true", cwd=tmp_path)
    _one_line_usage_error(res, "l.txt", needle)
    assert not (tmp_path / "out").exists()


def test_git_cwd_is_the_same_folder_of_each_checkout_and_the_build_runs_at_the_top(tmp_path: Path) -> None:
    """``--cwd repo/python``: the test runs in ``python/`` of the commit's checkout, never in the user's tree."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "python").mkdir()
    (repo / "python" / "t.sh").write_text(
        '#!/bin/sh\npwd > "$SLEUTH_TRIAL_DIR/where"\ntest "$(cat ../bug)" = 0 || { echo "Error: bug" >&2; exit 1; }\n'
    )
    (repo / "python" / "t.sh").chmod(0o755)
    shas = []
    for i in range(10):
        (repo / "bug").write_text("1\n" if i >= 6 else "0\n")
        (repo / "value").write_text(f"{i}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"c{i}")
        shas.append(git(repo, "rev-parse", "HEAD").strip())
    (repo / "bug").write_text("0\n")  # the user's tree says "good": a test run there would pass
    res = sleuth("bisect", "git", "--repo", "repo", "--good", shas[0], "--bad", shas[-1], "--flaky", "off",
                 "--cwd", "repo/python", "--build", 'pwd > "$SLEUTH_TRIAL_DIR/../build-at"', "--json",
                 "--output", "o", "--", "./t.sh", cwd=tmp_path)  # fmt: skip
    d = doc(res)
    assert (d["status"], d["first_bad"]["label"]) == ("found", shas[6]), (d["note"], res.stderr)
    assert d["command"]["cwd"] == "the checkout of each commit, folder python"
    assert d["command"]["argv"] == ["./t.sh"]  # the checkout's own copy, from the folder it runs in
    run_dir = Path(d["run_dir"])
    for where in run_dir.glob("candidates/*/run-*/where"):
        ran = Path(where.read_text().strip())
        assert ran.name == "python" and not ran.is_relative_to(repo), ran
    for built in run_dir.glob("candidates/*/build-at"):
        assert Path(built.read_text().strip()).name != "python"  # the build ran at the checkout's top


def test_a_list_saved_with_a_byte_order_mark_starts_with_its_first_line(tmp_path: Path) -> None:
    # Notepad, Excel and PowerShell write UTF-8 with a BOM; the test would see an invisible "\ufeffv1"
    (tmp_path / "l.txt").write_bytes("\ufeffv1\nv2\nv3\nv4\n".encode())
    res = sleuth("bisect", "list", "l.txt", "-j", "2", "--output", "out", "--json", "--", "sh", "-c",
                 'case "$SLEUTH_CANDIDATE" in v1|v2) exit 0;; esac; echo "Error: bad" >&2; exit 1',
                 cwd=tmp_path)  # fmt: skip
    d = doc(res)
    assert (d["status"], d["first_bad"]["label"], d["last_good"]["label"]) == ("found", "v3", "v2"), d["note"]
    events = [json.loads(line) for line in Path(d["run_dir"], "journal.jsonl").read_text().splitlines()]
    assert next(e["labels"] for e in events if e["event"] == "candidates")[0] == "v1"


def test_a_test_command_not_on_path_is_a_usage_error_before_a_run_dir(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("a\nb\nc\n")
    shas = make_repo(tmp_path, 4, 2)
    for where in (["list", "l.txt"], ["git", "--repo", "repo", "--good", shas[0], "--bad", "main"]):
        res = sleuth("bisect", *where, "--output", "out", "--", "pytset", "-x", cwd=tmp_path)
        _one_line_usage_error(res, "'pytset'", "not found on PATH")
        assert not (tmp_path / "out").exists()
    # a build may install it (pip install -e . puts console scripts on PATH): tested, not refused
    res = sleuth("bisect", "git", "--repo", "repo", "--good", shas[0], "--bad", "main", "--build", "true",
                 "--output", "out", "--", "pytset", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 4 and "command not found: pytset" in res.stderr, res.stderr


def test_list_from_a_symlink_loop_or_an_endless_device_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    res = sleuth("bisect", "list", "loop1", "--output", "out", "--", "true", cwd=tmp_path)
    _one_line_usage_error(res, "loop1", "cannot read it")
    res = sleuth("bisect", "list", "/dev/zero", "--output", "out", "--", "true", cwd=tmp_path)
    _one_line_usage_error(res, "/dev/zero", "larger than")
    assert not (tmp_path / "out").exists()


def test_list_from_stdin_or_a_pipe_bisects_and_resumes_without_reading_it_again(tmp_path: Path) -> None:
    lines = "".join(f"{i}\n" for i in range(1, 33))
    test = ["sh", "-c", 'test "$SLEUTH_CANDIDATE" -lt 20']
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "sleuth", "bisect", "list", "--flaky", "off", "--json", "--output", "out"]
    res = subprocess.run([*argv, "-", "--", *test], input=lines, cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    first = doc(res)
    assert first["status"] == "found" and first["first_bad"]["label"] == "20", res.stderr
    # a pipe (what <(git tag) gives the command): the same answer
    read, write = os.pipe()
    os.write(write, lines.encode())
    os.close(write)
    try:
        piped = subprocess.run([*argv, f"/dev/fd/{read}", "--", *test], pass_fds=(read,), cwd=tmp_path,
                               env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        os.close(read)
    assert doc(piped)["first_bad"]["label"] == "20", piped.stderr
    # killed after the candidates were journaled: the resume takes them from the journal (stdin is gone)
    rd = Path(first["run_dir"])
    journal = rd / "journal.jsonl"
    kept = [
        ln for ln in journal.read_text().splitlines() if json.loads(ln)["event"] in ("start", "candidates")
    ]
    journal.write_text("\n".join(kept) + "\n")
    shutil.rmtree(rd / "candidates", ignore_errors=True)
    (rd / "result.json").unlink(missing_ok=True)
    (rd / "summary.json").unlink(missing_ok=True)
    again = sleuth("bisect", "resume", str(rd), "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert doc(again)["first_bad"]["label"] == "20"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--good", "abc"], "--good 'abc'"),
        (["--with", "x y z"], "--with 'x y z'"),
        (["--python", "nope9"], "--python"),
    ],
)
def test_pypi_input_errors_need_no_index(tmp_path: Path, args: list[str], needle: str) -> None:
    # checked before the index is asked: the index URL is never reached in this test
    res = sleuth("bisect", "pypi", "six", *args, "--output", "out", "--", "true", cwd=tmp_path)
    _one_line_usage_error(res, needle)
    assert not (tmp_path / "out").exists()


def test_pypi_default_good_is_the_oldest_release_with_a_wheel_for_this_python() -> None:
    me = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    files = {
        "0.1": [{"filename": "p-0.1.tar.gz", "packagetype": "sdist"}],
        "0.2": [{"filename": "p-0.2-cp27-cp27m-manylinux1_x86_64.whl", "packagetype": "bdist_wheel"}],
        "0.3": [
            {"filename": "p-0.3-py3-none-any.whl", "packagetype": "bdist_wheel", "requires_python": "<3"}
        ],
        "0.4": [{"filename": f"p-0.4-{me}-none-any.whl", "packagetype": "bdist_wheel"}],
        "0.5": [{"filename": "p-0.5-py3-none-any.whl", "packagetype": "bdist_wheel"}],
    }
    assert oldest_installable(list(files), files, None) == 3
    sdists = {k: v for k, v in files.items() if k == "0.1"} | {"0.6": [{"filename": "p-0.6.tar.gz"}]}
    assert oldest_installable(list(sdists), sdists, None) == 0  # no wheels at all: Requires-Python only


def test_terminal_lines_stay_whole_and_labels_are_not_markup(tmp_path: Path) -> None:
    labels = [f"[bold]build-{i}" for i in range(8)]
    (tmp_path / "l.txt").write_text("\n".join(labels) + "\n")
    t = script(
        tmp_path / "t.sh",
        'case "$SLEUTH_CANDIDATE" in *-[5-7]) echo "RuntimeError: a long failure message that does not fit" >&2;'
        " exit 1;; esac\n",
    )
    res = sleuth("bisect", "list", "l.txt", "--output", "o", "--flaky", "off", "--", t, cwd=tmp_path,
                 env={"COLUMNS": "60"})  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "first bad [bold]build-5  (last good [bold]build-4)" in res.stdout
    tests = [ln for ln in res.stderr.splitlines() if ln[:4].strip().isdigit()]
    (run,) = (tmp_path / "o").glob("bisect/list/*")
    assert len(tests) == json.loads((run / "summary.json").read_text())["tests"]
    fails = [ln for ln in tests if "FAIL" in ln]
    assert fails and all("[bold]build-" in ln and "RuntimeError: a long failure" in ln for ln in fails)


def test_journal_numbers_tests_without_gaps_and_names_the_last_good_check(tmp_path: Path) -> None:
    make_repo(tmp_path, 20, 13)
    res = sleuth("bisect", "git", "--repo", "repo", "--good", "main~19", "--bad", "main", "--output", "o",
                 "--json", "--", "sh", "-c", TEST, cwd=tmp_path)  # fmt: skip
    d = doc(res)
    assert d["status"] == "found"
    events = [json.loads(ln) for ln in Path(d["run_dir"], "journal.jsonl").read_text().splitlines()]
    tests = [e for e in events if e["event"] == "test"]
    assert [e["seq"] for e in tests] == list(range(d["tests"]))
    checks = [e for e in tests if e["phase"] == "last-good check"]
    assert checks and {e["label"] for e in checks} == {d["last_good"]["label"]}
    assert f"| {checks[0]['seq']} | last-good check |" in Path(d["run_dir"], "report.md").read_text()


def test_two_candidates_need_no_flakiness_reruns(tmp_path: Path) -> None:
    make_repo(tmp_path, 2, 1)
    res = sleuth("bisect", "git", "--repo", "repo", "--good", "main~1", "--bad", "main", "--output", "o",
                 "--json", "--", "sh", "-c", TEST, cwd=tmp_path)  # fmt: skip
    d = doc(res)
    assert d["status"] == "found" and d["tests"] == 2


def test_other_failures_are_listed_oldest_first_and_resume_reports_an_absolute_run_dir(
    tmp_path: Path,
) -> None:
    (tmp_path / "l.txt").write_text("\n".join(str(i) for i in range(1, 201)) + "\n")
    t = script(
        tmp_path / "t.sh",
        'c=$SLEUTH_CANDIDATE\n[ $c -ge 20 ] && [ $c -lt 80 ] && { echo "ImportError: x" >&2; exit 1; }\n'
        '[ $c -ge 90 ] && { echo "RuntimeError: nan" >&2; exit 1; }\nexit 0\n',
    )
    d = doc(
        sleuth("bisect", "list", "l.txt", "--flaky", "off", "--output", "o", "--json", "--", t, cwd=tmp_path)
    )
    assert d["first_bad"]["label"] == "90" and len(d["other_failures"]) >= 2
    assert d["other_failures"] == sorted(d["other_failures"], key=int)
    rel = Path(d["run_dir"]).relative_to(tmp_path)
    again = doc(sleuth("bisect", "resume", str(rel), "--json", cwd=tmp_path))
    assert again["run_dir"] == d["run_dir"] and again["first_bad"] == d["first_bad"]


def test_perf_report_names_the_mode_and_shows_each_value(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("\n".join(str(i) for i in range(1, 21)) + "\n")
    t = script(tmp_path / "t.sh", 'b=100; [ $SLEUTH_CANDIDATE -ge 13 ] && b=150\necho "step_time=$b.$$"\n')
    res = sleuth("bisect", "list", "l.txt", "--metric", r"step=step_time=([0-9.]+)", "--metric", "step",
                 "--output", "o", "--json", "--", t, cwd=tmp_path)  # fmt: skip
    d = doc(res)
    assert d["first_bad"]["label"] == "13"
    report = Path(d["run_dir"], "report.md").read_text()
    assert "performance mode on `step`" in report and "flaky mode" not in report
    assert "| step = 15" in report and "| step = 10" in report


def test_rounds_count_waves_of_parallel_tests_end_checks_included(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("\n".join(str(i) for i in range(1, 101)) + "\n")
    t = script(
        tmp_path / "t.sh", '[ $SLEUTH_CANDIDATE -ge 64 ] && { echo "Error: x" >&2; exit 1; }; exit 0\n'
    )
    one = doc(sleuth("bisect", "list", "l.txt", "--output", "o", "--json", "--", t, cwd=tmp_path))
    assert one["first_bad"]["label"] == "64" and one["rounds"] == one["tests"]
    three = doc(
        sleuth("bisect", "list", "l.txt", "--jobs", "3", "--output", "o", "--json", "--", t, cwd=tmp_path)
    )
    assert three["first_bad"]["label"] == "64"
    # the two ends and the three flakiness reruns share rounds whatever the timing
    assert three["rounds"] <= three["tests"] - 3


def test_the_users_worktrees_and_working_tree_are_left_alone(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 8, 5)
    repo = tmp_path / "repo"
    subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "-q", str(tmp_path / "mine"), shas[2]], check=True
    )
    shutil.rmtree(tmp_path / "mine")  # the user's worktree on a disk that is not mounted now
    (repo / "value").write_text("edited\n")
    (repo / "untracked").write_text("x\n")
    args = (
        "bisect",
        "git",
        "--repo",
        "repo",
        "--good",
        shas[0],
        "--bad",
        shas[-1],
        "--output",
        "o",
        "--json",
    )
    for _ in range(2):  # the second time with the cached worktrees deleted
        d = doc(sleuth(*args, "--", "sh", "-c", TEST, cwd=tmp_path))
        assert d["first_bad"]["label"] == shas[5]
        shutil.rmtree(tmp_path / "cache")
    listed = subprocess.run(
        ["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True
    ).stdout
    assert str(tmp_path / "mine") in listed
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--short"], capture_output=True, text=True
    ).stdout
    assert status.split() == ["M", "value", "??", "untracked"]
