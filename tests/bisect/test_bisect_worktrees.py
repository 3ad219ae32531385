"""``bisect git`` never touches the user's repository: after a run, a Ctrl-C and a kill -9.

Every test snapshots the user's repository (worktree list, status, refs, config, and every file
under ``.git/``) and compares after; checkouts live in the cache's shared clone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sleuth.bisect.checkouts import WARM_MAX
from tests.badinput import tree_state
from tests.bisect.test_bisect_cli import TEST, doc, git, make_repo, script, sleuth


def snapshot(repo: Path) -> dict[str, Any]:
    """Everything of the user's repository that a bisection could change."""

    def out(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
        ).stdout

    return {
        "worktrees": out("worktree", "list", "--porcelain"),
        "status": out("status", "--porcelain", "--untracked-files=all"),
        "refs": out("for-each-ref", "--format=%(refname) %(objectname)"),
        "config": (repo / ".git" / "config").read_text(),
        "head": (repo / ".git" / "HEAD").read_text(),
        # git status refreshes the index's stat data: compare the tree without it
        "files": {k: v for k, v in tree_state(repo / ".git").items() if not k.endswith("/index")},
        "work": {k: v for k, v in tree_state(repo).items() if "/.git/" not in k and not k.endswith("/.git")},
    }


#: the suite may run with SIGINT ignored (nohup, & in a script): sleuth starts with the defaults
DEFAULT_SIGNALS = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                   "signal.signal(signal.SIGTERM, signal.SIG_DFL); os.execv(sys.executable, sys.argv[1:])",
                   sys.executable]  # fmt: skip


def _user_repo(tmp_path: Path, n: int = 50, culprit: int = 31) -> tuple[Path, list[str]]:
    shas = make_repo(tmp_path, n, culprit)
    repo = tmp_path / "repo"
    git(repo, "tag", "v1.0", shas[0])
    (repo / "value").write_text("edited by the user\n")  # a dirty tree, an untracked file
    (repo / "notes.txt").write_text("mine\n")
    return repo, shas


def test_a_run_leaves_the_users_repository_as_it_was(tmp_path: Path) -> None:
    repo, shas = _user_repo(tmp_path)
    before = snapshot(repo)
    # the test also leaves an untracked file behind: the next candidate must not see it
    t = script(tmp_path / "t.sh", 'test ! -e left-behind || { echo "Error: stale file" >&2; exit 1; }\n'
               "touch left-behind\n" + TEST)  # fmt: skip
    res = sleuth("bisect", "git", "--repo", "repo", "--good", "v1.0", "--bad", "main", "-j", "2", "--json",
                 "--output", "o", "--", t, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert d["first_bad"]["label"] == shas[31]
    assert snapshot(repo) == before
    # one reusable checkout per running test, registered in the cache's clone only
    (clone,) = (tmp_path / "cache" / "bisect-git").glob("*/clone")
    listed = subprocess.run(["git", "-C", str(clone), "worktree", "list", "--porcelain"], capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    # the bare clone itself + one slot per running test and the spare (warm) ones
    assert 1 <= listed.count("worktree ") - 1 <= 2 + 2 * WARM_MAX, listed


def test_interrupts_leave_the_users_repository_as_it_was(tmp_path: Path) -> None:
    from sleuth.runner import reap_orphans

    repo, _ = _user_repo(tmp_path, 40, 30)
    before = snapshot(repo)
    log = tmp_path / "ran.log"
    t = script(tmp_path / "t.sh", f'echo "$SLEUTH_CANDIDATE" >> {log}; sleep 0.4\n' + TEST)
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache")}
    for how in (signal.SIGINT, signal.SIGKILL):
        log.unlink(missing_ok=True)
        proc = subprocess.Popen([*DEFAULT_SIGNALS, "-m", "sleuth", "bisect", "git", "--repo", "repo", "--good",
                                 "v1.0", "--bad", "main", "-j", "2", "--output", f"o-{how.name}", "--", t],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not log.exists() or len(log.read_text().split()) < 3):
            time.sleep(0.05)
        proc.send_signal(how)
        _, err = proc.communicate(timeout=60)
        (run_dir,) = (tmp_path / f"o-{how.name}" / "bisect" / "git").iterdir()
        if how is signal.SIGINT:
            assert proc.returncode == 130, err
            assert "sleuth bisect resume" in err.decode()
        else:
            assert proc.returncode == -signal.SIGKILL
            reap_orphans(run_dir)  # the tests a killed sleuth left running
        assert snapshot(repo) == before, how.name
    # and a resume after the kill -9 finishes in the cache's checkouts too
    res = sleuth("bisect", "resume", str(run_dir), "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert snapshot(repo) == before


def test_builds_are_kept_per_commit_and_reused_on_a_second_run(tmp_path: Path) -> None:
    repo, shas = _user_repo(tmp_path, 12, 7)
    before = snapshot(repo)
    build = 'if [ -e built ]; then echo reused >> "$SLEUTH_TRIAL_DIR/../../../builds"; else touch built; fi'
    args = ("bisect", "git", "--repo", "repo", "--good", "v1.0", "--bad", "main", "--build", build,
            "--flaky", "off", "--json", "--output", "o", "--", "sh", "-c", TEST)  # fmt: skip
    first = doc(sleuth(*args, cwd=tmp_path))
    assert first["first_bad"]["label"] == shas[7]
    second = doc(sleuth(*args, cwd=tmp_path))
    assert second["first_bad"]["label"] == shas[7]
    reused = Path(second["run_dir"], "builds")
    # the same commits are visited again: every build of the second run found its outputs
    assert reused.is_file() and len(reused.read_text().split()) == second["tests"], reused
    assert not Path(first["run_dir"], "builds").exists()
    assert snapshot(repo) == before


def test_a_kept_build_checkout_gets_its_tracked_files_back_before_each_test(tmp_path: Path) -> None:
    # the test rewrites a tracked file (a regenerated golden file): a rerun of the same commit in its
    # kept checkout read the rewritten one, passed, and the deterministic test looked flaky
    repo, shas = _user_repo(tmp_path, 12, 7)
    before = snapshot(repo)
    rewrites = 'b=$(cat bug); echo 0 > bug; test "$b" = 0 || { echo "AssertionError: bug" >&2; exit 1; }'
    res = sleuth("bisect", "git", "--repo", "repo", "--good", "v1.0", "--bad", "main", "--build",
                 "test -e built || touch built", "--json", "--output", "o", "--", "sh", "-c", rewrites,
                 cwd=tmp_path)  # fmt: skip
    d = doc(res)
    assert (d["status"], d["first_bad"]["label"]) == ("found", shas[7]), d["note"]
    assert "pass" not in d["evidence"][shas[-1]] and d["tests"] < 20, d["evidence"]  # never looked flaky
    assert snapshot(repo) == before


def test_the_checkout_sees_the_users_tags_and_a_redirecting_git_dir_changes_nothing(tmp_path: Path) -> None:
    repo, shas = _user_repo(tmp_path, 10, 6)
    git(repo, "tag", "v0.9-late", shas[5])
    before = snapshot(repo)
    # setuptools-scm and friends run git describe in the build
    t = script(tmp_path / "t.sh", 'git describe --tags >> "$SLEUTH_TRIAL_DIR/describe" || exit 3\n' + TEST)
    for _ in range(2):
        res = sleuth("bisect", "git", "--repo", "repo", "--good", "v1.0", "--bad", "main", "--flaky", "off",
                     "--json", "--output", "o", "--", t, cwd=tmp_path,
                     env={"GIT_DIR": str(repo / ".git"), "GIT_WORK_TREE": str(repo)})  # fmt: skip
        d = doc(res)
        assert d["first_bad"]["label"] == shas[6], res.stderr
        # made after the cache's clone: the second run sees it (at the first bad, which is always tested)
        git(repo, "tag", "-f", "v0.95", shas[6])
    run = Path(d["run_dir"])
    described = {p.read_text().strip() for p in run.glob("candidates/*/run-*/describe")}
    assert any(x.startswith("v0.95") for x in described), described
    after = snapshot(repo)
    assert after["refs"].replace(f"refs/tags/v0.95 {shas[6]}\n", "") == before["refs"]
    after["files"].pop(str(repo / ".git" / "refs" / "tags" / "v0.95"))  # the tag this test added
    assert {**after, "refs": before["refs"]} == before


def test_a_linked_worktree_of_the_user_is_a_repository_too(tmp_path: Path) -> None:
    repo, shas = _user_repo(tmp_path, 10, 4)
    git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "linked"), "main")
    before = snapshot(repo)
    res = sleuth("bisect", "git", "--repo", "linked", "--good", shas[0], "--bad", "HEAD", "--flaky", "off",
                 "--json", "--output", "o", "--", "sh", "-c", TEST, cwd=tmp_path)  # fmt: skip
    assert doc(res)["first_bad"]["label"] == shas[4], res.stderr
    assert snapshot(repo) == before


@pytest.mark.parametrize("jobs", ["1", "3"])
def test_each_running_test_has_its_own_checkout(tmp_path: Path, jobs: str) -> None:
    shas = make_repo(tmp_path, 30, 20)
    # a test that finds another test's file in its checkout fails with its own signature
    t = script(tmp_path / "t.sh", 'test ! -e busy || { echo "Error: shared checkout" >&2; exit 1; }\n'
               'touch busy; sleep 0.2; rm busy\n' + TEST)  # fmt: skip
    res = sleuth("bisect", "git", "--repo", "repo", "--good", shas[0], "--bad", "main", "-j", jobs,
                 "--json", "--output", "o", "--", t, cwd=tmp_path)  # fmt: skip
    d = doc(res)
    assert d["first_bad"]["label"] == shas[20], d
    events = [json.loads(x) for x in Path(d["run_dir"], "journal.jsonl").read_text().splitlines()]
    assert not any("shared checkout" in (e.get("signature") or "") for e in events if e["event"] == "test")


def test_a_relative_test_script_is_the_callers_unless_the_repository_tracks_it(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 12, 7)
    repo = tmp_path / "repo"
    script(tmp_path / "outside.sh", TEST)  # the caller's file, next to the repository
    res = sleuth("bisect", "git", "--repo", "repo", "--good", shas[0], "--bad", "main", "--flaky", "off",
                 "--json", "--output", "o", "--", "./outside.sh", cwd=tmp_path)  # fmt: skip
    assert doc(res)["first_bad"]["label"] == shas[7], res.stderr
    # a script the repository tracks: each checkout runs its own copy (the last commit breaks it)
    (repo / "ci").mkdir()
    script(repo / "ci" / "check.sh", "exit 0\n")
    git(repo, "add", "ci")
    git(repo, "commit", "-q", "-m", "ci: the check")
    script(repo / "ci" / "check.sh", 'echo "Error: the new check fails everything" >&2; exit 1\n')
    git(repo, "commit", "-q", "-am", "ci: a stricter check")
    res = sleuth("bisect", "git", "--repo", ".", "--good", "main~1", "--bad", "main", "--flaky", "off",
                 "--json", "--output", str(tmp_path / "o"), "--", "./ci/check.sh", cwd=repo)  # fmt: skip
    d = doc(res)
    assert d["first_bad"]["title"].startswith("ci: a stricter check"), d
    assert Path(d["run_dir"], "candidates").is_dir()
