"""Start-up of ``bisect git``: the cache clone is made while the history is read, one git command
fewer per history when the times are not needed, and ``worktree prune`` only where it can matter.

Real repositories, real clones; the git commands a run spawns are counted through ``GIT_TRACE``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sleuth.bisect.checkouts import Checkouts
from sleuth.bisect.git import GitSource
from sleuth.bisect.githistory import history
from sleuth.errors import UsageError
from tests.bisect.test_bisect_cli import git, make_repo
from tests.bisect.test_bisect_merges import merged_repo


def _traced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    trace = tmp_path / "trace"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    return trace


def _commands(trace: Path, name: str) -> int:
    """How many ``git NAME`` commands the trace saw (built-ins, as run)."""
    if not trace.exists():
        return 0
    return sum(f"trace: built-in: git {name}" in ln for ln in trace.read_text().splitlines())


def test_resolving_the_range_makes_the_cache_clone_before_any_checkout(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 6, 3)
    src = GitSource(str(tmp_path / "repo"), shas[0], shas[-1], cache=str(tmp_path / "cache"))
    assert src.resolve() == shas
    assert src._cloning is not None
    src._cloning.join()  # the clone started beside the history
    (clone,) = (tmp_path / "cache").glob("*/clone")
    assert (clone / "objects" / "info" / "alternates").is_file()
    assert not list((tmp_path / "cache").glob("*/slot-*")), "no checkout was asked for"
    # the user's repository knows nothing of it
    listed = subprocess.run(["git", "-C", str(tmp_path / "repo"), "worktree", "list"], capture_output=True,
                            text=True, check=True).stdout.splitlines()  # fmt: skip
    assert len(listed) == 1
    # the first checkout finds it made: no second clone
    path = src.checkouts().checkout(shas[2])
    assert (path / "value").read_text() == "2\n"
    src.close()
    assert clone.is_dir()


def test_a_clone_that_no_checkout_used_is_removed_on_close(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 4, 2)
    cache = tmp_path / "deep" / "cache"
    src = GitSource(str(tmp_path / "repo"), shas[0], shas[-1], cache=str(cache))
    src.resolve()  # then bad input is found (a --skip outside the range, say): the run never starts
    src.close()
    assert not (tmp_path / "deep").exists()  # everything the clone created, and nothing more
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_a_usage_error_after_the_history_leaves_no_cache_behind(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 4, 2)
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-m", "sleuth", "bisect", "git", "--repo", "repo", "--good", shas[0],
                          "--bad", shas[-1], "--skip", shas[0], "--output", "o", "--", "true"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2 and "--skip" in res.stderr and "good end" not in res.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_a_failed_early_clone_is_reported_by_the_first_checkout(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 4, 2)
    cache = tmp_path / "cache"
    cache.write_text("a file where the cache directory should be\n")
    src = GitSource(str(tmp_path / "repo"), shas[0], shas[-1], cache=str(cache))
    assert src.resolve() == shas  # the history does not depend on the clone
    with pytest.raises((FileExistsError, NotADirectoryError)):  # made again, and it fails loudly
        src.checkouts().checkout(shas[1])
    src.close()


def test_history_without_times_is_the_same_commits_with_one_command_fewer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shas = make_repo(tmp_path, 5, 2)
    repo = str(tmp_path / "repo")
    trace = _traced(tmp_path, monkeypatch)
    timed = history(repo, shas[0], shas[-1], True)
    with_times = _commands(trace, "log")
    trace.unlink()
    plain = history(repo, shas[0], shas[-1], True, times=False)
    assert [s for s, _ in timed] == [s for s, _ in plain] == shas
    assert all(t > 0 for _, t in timed) and all(t == 0 for _, t in plain)
    assert (with_times, _commands(trace, "log")) == (2, 1)


def test_history_still_refuses_ends_in_the_wrong_order(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 3, 1)
    with pytest.raises(UsageError, match=r"--good \S+ is not an ancestor of --bad"):
        history(str(tmp_path / "repo"), shas[2], shas[0], True, times=False)
    with pytest.raises(UsageError, match="--bad nope: not a commit"):
        history(str(tmp_path / "repo"), shas[0], "nope", True)


def test_worktree_prune_runs_once_on_an_old_clone_and_never_on_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shas = make_repo(tmp_path, 4, 2)
    repo, cache = str(tmp_path / "repo"), tmp_path / "cache"
    trace = _traced(tmp_path, monkeypatch)
    co = Checkouts(repo, cache)
    first = co.checkout(shas[1])
    co.close()
    assert _commands(trace, "worktree prune") == 0  # this process made the clone: nothing is stale

    shutil.rmtree(first)  # a checkout removed behind sleuth's back: registered, missing
    trace.unlink()
    again = Checkouts(repo, cache)
    path = again.checkout(shas[2])
    assert path == first and (path / "value").read_text() == "2\n"
    assert _commands(trace, "worktree prune") == 1
    again.close()
    trace.unlink()
    third = Checkouts(repo, cache)
    assert (third.checkout(shas[3]) / "value").read_text() == "3\n"
    third.close()
    assert _commands(trace, "worktree prune") == 0  # the slot is there: nothing to add, nothing to prune


def test_parents_come_with_the_history_and_agree_with_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = merged_repo(tmp_path)
    repo = str(tmp_path / "repo")
    src = GitSource(repo, c["m2"], c["m6"], cache=str(tmp_path / "cache"))
    labels = src.resolve()
    src.close()
    assert labels == [c[n] for n in ("m2", "m3", "m4", "merge", "m5", "m6")]
    trace = _traced(tmp_path, monkeypatch)
    got = {sha: src.parents(sha) for sha in labels[1:]}
    assert _commands(trace, "rev-list") == 0  # read along with the history
    assert got[c["merge"]] == [c["m4"], c["f4"]]
    for sha, parents in got.items():
        want = git(Path(repo), "rev-list", "--parents", "-n", "1", sha).split()[1:]
        assert parents == want
    trace.unlink()  # (the checks above asked git themselves)
    # a commit outside the history still asks git; so does the merged branch's own history
    assert src.parents(c["f3"]) == [c["f2"]] and _commands(trace, "rev-list") == 1
    assert src.merged_branch(c["m4"], c["f4"]) == [c[n] for n in ("m2", "f1", "f2", "f3", "f4")]
    assert src.parents(c["f4"]) == [c["f3"]] and _commands(trace, "rev-list") == 1
    assert _commands(trace, "log") == 1  # the merged branch's history


def test_a_title_brings_its_first_parents_along(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = merged_repo(tmp_path)
    src = GitSource(str(tmp_path / "repo"), c["m2"], c["m6"])
    trace = _traced(tmp_path, monkeypatch)
    assert src.title(c["m5"]).startswith("m5 (") and src.title(c["merge"]).startswith("merge feat (")
    assert _commands(trace, "log") == 1
    assert src.title(c["m4"]).startswith("m4 (") and _commands(trace, "log") == 2
    assert src.title(c["m1"]).startswith("m1 (")  # a root commit: one line
