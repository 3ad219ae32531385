"""Several co-varying repositories: timestamp alignment, blame probes, the CLI end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sleuth.bisect.git import env_name
from sleuth.bisect.multigit import MultiGitSource, RepoSpec, decode, encode
from sleuth.errors import UsageError


def git(repo: Path, *args: str, when: int | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"@{when} +0000"
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout


def make(root: Path, name: str, times: list[int], culprit: int | None) -> list[str]:
    """A repo whose commit ``i`` (at ``times[i]``) writes ``bug`` = 1 from ``culprit`` on."""
    repo = root / name
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    shas = []
    for i, t in enumerate(times):
        (repo / "n").write_text(f"{i}\n")
        (repo / "bug").write_text("1\n" if culprit is not None and i >= culprit else "0\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"{name} {i}", when=t)
        shas.append(git(repo, "rev-parse", "HEAD").strip())
    return shas


# jax commits at 1000, 1020, ...; xla commits at 1010, 1030, ... (interleaved)
JAX_T = [1000 + 20 * i for i in range(16)]
XLA_T = [1010 + 20 * j for j in range(16)]


def pair(tmp: Path, jax_culprit: int | None, xla_culprit: int | None) -> tuple[list[str], list[str]]:
    return make(tmp, "jax", JAX_T, jax_culprit), make(tmp, "xla-lib", XLA_T, xla_culprit)


def source(tmp: Path, jax: list[str], xla: list[str]) -> MultiGitSource:
    return MultiGitSource(
        (
            RepoSpec("jax", str(tmp / "jax"), jax[0], jax[-1]),
            RepoSpec("xla-lib", str(tmp / "xla-lib"), xla[0], xla[-1]),
        ),
        cache=str(tmp / "cache"),
    )


def test_alignment_takes_the_newest_commit_not_after_the_primary(tmp_path: Path) -> None:
    jax, xla = pair(tmp_path, None, None)
    labels = source(tmp_path, jax, xla).resolve()
    assert len(labels) == 16
    vecs = [decode(lab) for lab in labels]
    assert [v["jax"] for v in vecs] == jax
    assert vecs[0]["xla-lib"] == xla[0]  # nothing older than jax[0]: the good end
    for i in range(1, 15):  # jax i is at 1000+20i; xla j at 1010+20j <= it  <=>  j <= i-1
        assert vecs[i]["xla-lib"] == xla[i - 1]
    assert vecs[-1]["xla-lib"] == xla[-1]  # the bad end takes every bad commit
    assert encode(vecs[3]) == labels[3]
    assert env_name("xla-lib") == "SLEUTH_REPO_XLA_LIB"


def test_blame_probe_and_next_stage(tmp_path: Path) -> None:
    jax, xla = pair(tmp_path, None, None)
    src = source(tmp_path, jax, xla)
    labels = src.resolve()
    probe = src.blame_probe(0, labels[5], labels[6])
    assert probe is not None and decode(probe) == {"jax": jax[5], "xla-lib": xla[5]}
    k, stage = src.next_stage(0, labels[5], probe)
    assert k == 1 and [decode(x) for x in stage] == [{"jax": jax[5], "xla-lib": xla[j]} for j in (4, 5)]
    # the last pair: xla jumps from xla[14] to xla[15] with jax
    assert decode(src.blame_probe(0, labels[14], labels[15]) or "")["xla-lib"] == xla[15]


def test_bad_ref_names_the_repo(tmp_path: Path) -> None:
    jax, xla = pair(tmp_path, None, None)
    src = MultiGitSource(
        (
            RepoSpec("jax", str(tmp_path / "jax"), jax[0], jax[-1]),
            RepoSpec("x", str(tmp_path / "xla-lib"), "nope", xla[-1]),
        )
    )
    with pytest.raises(UsageError, match="--good x=nope"):
        src.resolve()


TEST = """#!/bin/sh
a=$(cat "$SLEUTH_REPO_JAX/bug"); b=$(cat "$SLEUTH_REPO_XLA_LIB/bug")
echo "jax $(cat $SLEUTH_REPO_JAX/n) xla $(cat $SLEUTH_REPO_XLA_LIB/n)"
[ "$a" = 0 ] && [ "$b" = 0 ] || { echo "AssertionError: numerics" >&2; exit 1; }
"""


def bisect(tmp: Path, jax: list[str], xla: list[str], *extra: str) -> tuple[int, Any]:
    t = tmp / "t.sh"
    t.write_text(TEST)
    t.chmod(0o755)
    args = ["bisect", "git", "--repo", "jax=jax", "--repo", f"xla-lib={tmp / 'xla-lib'}",
            "--good", f"jax={jax[0]}", "--good", f"xla-lib={xla[0]}", "--bad", "jax=main", "--bad", "xla-lib=main",
            "--flaky", "off", "--json", "--output", "o", *extra, "--", str(t)]  # fmt: skip
    env = {**os.environ, "SLEUTH_CACHE": str(tmp / "cache")}
    res = subprocess.run([sys.executable, "-m", "sleuth", *args], cwd=tmp, env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    return res.returncode, (json.loads(res.stdout) if res.stdout else res.stderr)


def test_cli_culprit_in_the_primary(tmp_path: Path) -> None:
    jax, xla = pair(tmp_path, 9, None)
    rc, d = bisect(tmp_path, jax, xla, "--build", 'test -d "$SLEUTH_REPO_XLA_LIB"')
    assert rc == 0, d
    assert d["status"] == "found" and d["culprit_repo"] == "jax"
    assert d["first_bad"]["label"] == jax[9] and d["last_good"]["label"] == jax[8]
    assert d["components"] == {"jax": jax[9], "xla-lib": xla[8]}
    assert git(tmp_path / "jax", "status", "--porcelain") == ""  # the user's trees are untouched
    assert "Culprit repository: jax" in Path(tmp_path, d["run_dir"], "report.md").read_text()
    # a SHA alone tells a reader nothing: the culprit repository's titles, as one repository has them
    assert (
        d["first_bad"]["title"] == "jax 9 (t, 1970-01-01)"
        and d["last_good"]["title"] == "jax 8 (t, 1970-01-01)"
    )
    assert f"`{jax[9]}` jax 9 (t, 1970-01-01)" in Path(tmp_path, d["run_dir"], "report.md").read_text()


@pytest.mark.parametrize("extra", [(), ("--flaky", "auto", "-j", "3")])
def test_cli_culprit_in_the_secondary(tmp_path: Path, extra: tuple[str, ...]) -> None:
    jax, xla = pair(tmp_path, None, 5)
    rc, d = bisect(tmp_path, jax, xla, *extra)
    assert rc == 0, d
    assert d["culprit_repo"] == "xla-lib"
    assert d["first_bad"]["label"] == xla[5] and d["last_good"]["label"] == xla[4]
    assert d["components"] == {"jax": jax[5], "xla-lib": xla[5]}
    assert d["first_bad"]["title"] == "xla-lib 5 (t, 1970-01-01)"
    phases = [json.loads(x) for x in Path(tmp_path, d["run_dir"], "journal.jsonl").read_text().splitlines()]
    assert any(e.get("phase") == "blame" and e["outcome"] == "fail" for e in phases)


def test_cli_resume_after_the_blame_stage_replays(tmp_path: Path) -> None:
    jax, xla = pair(tmp_path, None, 5)
    rc, d = bisect(tmp_path, jax, xla)
    assert rc == 0
    res = subprocess.run([sys.executable, "-m", "sleuth", "bisect", "resume", str(tmp_path / d["run_dir"]), "--json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache")})  # fmt: skip
    again = json.loads(res.stdout)
    assert (again["culprit_repo"], again["first_bad"]["label"]) == ("xla-lib", xla[5])
    assert again["tests"] == d["tests"]  # every test was served from the journal


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--repo", "a=.", "--good", "a=x", "--bad", "b=y"], "--bad"),
        (["--repo", "a=.", "--repo", "a=.", "--good", "a=x", "--bad", "a=y"], "--repo"),
        (["--repo", "a=nowhere", "--good", "a=x", "--bad", "a=y"], "--repo"),
        (["--repo", ".", "--good", "x", "--good", "y", "--bad", "z"], "--good"),
    ],
)
def test_multi_repo_flags_are_usage_errors(tmp_path: Path, args: list[str], flag: str) -> None:
    res = subprocess.run([sys.executable, "-m", "sleuth", "bisect", "git", *args, "--", "true"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 2 and flag in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("several", [False, True])
def test_a_shallow_clone_says_to_unshallow_it(tmp_path: Path, several: bool) -> None:
    from tests.bisect.test_bisect_cli import sleuth

    jax, xla = pair(tmp_path, None, 5)
    subprocess.run(["git", "clone", "-q", "--depth", "3", (tmp_path / "xla-lib").as_uri(), str(tmp_path / "xs")],
                   check=True, capture_output=True)  # fmt: skip
    old = xla[2]  # beyond the clone's depth: not there
    if several:
        args = ["--repo", "jax=jax", "--repo", "xla=xs", "--good", f"jax={jax[0]}", "--good", f"xla={old}",
                "--bad", f"jax={jax[-1]}", "--bad", "xla=main"]  # fmt: skip
    else:
        args = ["--repo", "xs", "--good", old, "--bad", "main"]
    res = sleuth("bisect", "git", *args, "--output", "o", "--", "true", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert f"not a commit in {tmp_path / 'xs'}; {tmp_path / 'xs'} is a shallow clone: git -C" in line, line
    assert "fetch --unshallow" in line and not (tmp_path / "o").exists()


def test_the_terminal_answer_names_the_culprit_repository(tmp_path: Path) -> None:
    jax, xla = pair(tmp_path, None, 5)
    rc, d = bisect(tmp_path, jax, xla)
    assert rc == 0, d
    res = subprocess.run([sys.executable, "-m", "sleuth", "bisect", "resume", str(tmp_path / d["run_dir"])],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache")})  # fmt: skip
    # a SHA alone does not say which repository it is in
    assert f"first bad {xla[5]}" in res.stdout
    assert (
        f"in repository xla-lib; the first bad combination: jax={jax[5][:12]}, xla-lib={xla[5][:12]}"
        in res.stdout
    )


def test_a_repository_with_submodules_is_told_that_the_checkouts_leave_them_empty(tmp_path: Path) -> None:
    from tests.bisect.test_bisect_cli import sleuth

    sub = make(tmp_path, "sub", [1000, 1010], 1)  # `bug` is 1 from its second commit on
    sup = tmp_path / "sup"
    sup.mkdir()
    git(sup, "init", "-q", "-b", "main")
    (sup / "n").write_text("0\n")
    git(sup, "add", "-A")
    git(sup, "commit", "-q", "-m", "p0", when=1000)
    git(sup, "-c", "protocol.file.allow=always", "submodule", "-q", "add", str(tmp_path / "sub"), "third")
    git(sup / "third", "checkout", "-q", sub[0])
    git(sup, "add", "-A")
    git(sup, "commit", "-q", "-m", "p1 adds the submodule", when=1010)
    git(sup / "third", "checkout", "-q", sub[1])
    git(sup, "add", "-A")
    git(sup, "commit", "-q", "-m", "p2 bumps it", when=1020)
    test = ["--", "sh", "-c", "grep -q 0 third/bug"]
    args = [
        "bisect",
        "git",
        "--repo",
        "sup",
        "--good",
        "main~1",
        "--bad",
        "main",
        "--flaky",
        "off",
        "--output",
        "o",
    ]
    res = sleuth(*args, *test, cwd=tmp_path)
    note = "sup has submodules; the checkouts leave them empty (give --build 'git submodule update --init"
    assert note in res.stderr, res.stderr
    fill = "git -c protocol.file.allow=always submodule -q update --init"
    res = sleuth(*args, "--build", fill, *test, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "first bad" in res.stdout and "p2 bumps it" in res.stdout and note not in res.stderr


def test_a_first_repository_that_did_not_change_is_held_and_the_next_one_bisected(tmp_path: Path) -> None:
    jax, xla = pair(tmp_path, None, 5)
    t = tmp_path / "t.sh"
    t.write_text('#!/bin/sh\ntest "$PWD" = "$SLEUTH_REPO_JAX" || exit 3\n'  # the test runs in the first one's
                 'grep -q 0 "$SLEUTH_REPO_XLA_LIB/bug"\n')  # fmt: skip
    t.chmod(0o755)
    args = ["bisect", "git", "--repo", "jax=jax", "--repo", "xla-lib=xla-lib", "--good", f"jax={jax[-1]}",
            "--good", f"xla-lib={xla[0]}", "--bad", f"jax={jax[-1]}", "--bad", "xla-lib=main", "--flaky", "off",
            "--json", "--output", "o", "--", str(t)]  # fmt: skip
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-m", "sleuth", *args], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert (d["culprit_repo"], d["first_bad"]["label"], d["last_good"]["label"]) == (
        "xla-lib",
        xla[5],
        xla[4],
    )
    assert d["components"] == {"jax": jax[-1], "xla-lib": xla[5]}
    # neither changed: one line, no run dir
    args[args.index(f"xla-lib={xla[0]}")] = "xla-lib=main"
    res = subprocess.run([sys.executable, "-m", "sleuth", *args], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2 and "every --repo's --good and --bad are the same commit" in res.stderr
