"""What users of ``git bisect`` expect, through the real CLI: ``--skip``, ``--path``, ``--find-fix``.

Tests marked ``needs bisect-search branch`` check the search half (the driver honours
``Options.skip`` and ``Options.find_fix``), which lands on that branch.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.bisect.test_bisect_cli import TEST, doc, git, make_repo, script, sleuth


def events(run_dir: str | Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in Path(run_dir, "journal.jsonl").read_text().splitlines() if x.strip()]


def labels_tested(run_dir: str | Path) -> set[str]:
    return {e["label"] for e in events(run_dir) if e["event"] == "test"}


def make_paths_repo(root: Path, n: int, culprit: int) -> list[str]:
    """Commits alternate between ``src/`` (even i) and ``docs/`` (odd i); ``culprit`` (even) adds the bug."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "src").mkdir()
    (repo / "docs").mkdir()
    (repo / "bug").write_text("0\n")
    (repo / "value").write_text("0\n")
    shas = []
    for i in range(n):
        where = repo / ("src" if i % 2 == 0 else "docs") / "file"
        where.write_text(f"{i}\n")
        if i == culprit:
            (repo / "bug").write_text("1\n")
            (repo / "value").write_text(f"{i}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"c{i} {'src' if i % 2 == 0 else 'docs'}")
        shas.append(git(repo, "rev-parse", "HEAD").strip())
    return shas


def test_path_keeps_only_commits_that_change_it_and_the_ends(tmp_path: Path) -> None:
    shas = make_paths_repo(tmp_path, 21, 12)
    res = sleuth("bisect", "git", "--repo", "repo", "--good", shas[1], "--bad", shas[19], "--path", "src",
                 "--flaky", "off", "--json", "--output", "o", "--", "sh", "-c", TEST, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert d["first_bad"]["label"] == shas[12] and d["last_good"]["label"] == shas[10]
    (cands,) = [e["labels"] for e in events(d["run_dir"]) if e["event"] == "candidates"]
    # the ends (both docs commits) stay; between them only the src commits 2, 4, ..., 18
    assert cands == [shas[1], *[shas[i] for i in range(2, 19, 2)], shas[19]]
    assert labels_tested(d["run_dir"]) <= set(cands)
    # without --path every commit is a candidate
    d2 = doc(sleuth("bisect", "git", "--repo", "repo", "--good", shas[1], "--bad", shas[19], "--flaky", "off",
                    "--json", "--output", "o", "--", "sh", "-c", TEST, cwd=tmp_path))  # fmt: skip
    assert d2["candidates"] == 19 and d["candidates"] == 11


def test_path_that_no_commit_changes_is_a_usage_error(tmp_path: Path) -> None:
    shas = make_paths_repo(tmp_path, 6, 2)
    res = sleuth("bisect", "git", "--repo", "repo", "--good", shas[0], "--bad", shas[5], "--path", "srcc",
                 "--output", "o", "--", "true", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2 and "--path srcc" in res.stderr and "no commit" in res.stderr
    assert not (tmp_path / "o").exists()


def test_skip_revs_are_resolved_to_full_shas_and_checked_against_the_range(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 12, 7)
    git(tmp_path / "repo", "tag", "broken", shas[4])
    res = sleuth("bisect", "git", "--repo", "repo", "--good", shas[0], "--bad", "main", "--skip", "broken",
                 "--skip", shas[5][:10], "--flaky", "off", "--json", "--output", "o", "--", "sh", "-c", TEST,
                 cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = doc(res)
    (start,) = [e for e in events(d["run_dir"]) if e["event"] == "start"]
    assert start["flags"]["skip"] == [shas[4], shas[5]]
    assert d["skip_requested"] == [shas[4], shas[5]]
    for bad, why in ((shas[0], "older end"), ("main", "newer end"), ("nope", "not a commit")):
        res = sleuth("bisect", "git", "--repo", "repo", "--good", shas[0], "--bad", "main", "--skip", bad,
                     "--output", "o2", "--", "true", cwd=tmp_path)  # fmt: skip
        assert res.returncode == 2 and "--skip" in res.stderr and why in res.stderr, res.stderr
    assert not (tmp_path / "o2").exists()


def test_skip_outside_the_range_is_a_usage_error(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 12, 7)
    repo = tmp_path / "repo"
    git(repo, "checkout", "-q", "-b", "side", shas[2])
    (repo / "other").write_text("x\n")
    git(repo, "add", "other")
    git(repo, "commit", "-q", "-m", "side work")
    res = sleuth("bisect", "git", "--repo", "repo", "--good", shas[3], "--bad", "main", "--skip", "side",
                 "--output", "o", "--", "true", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2 and "is not between the ends" in res.stderr, res.stderr


def test_skipped_commits_are_never_tested(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 30, 17)
    res = sleuth("bisect", "git", "--repo", "repo", "--good", shas[0], "--bad", "main", "--skip", shas[17],
                 "--skip", shas[16], "--flaky", "off", "--json", "--output", "o", "--", "sh", "-c", TEST,
                 cwd=tmp_path)  # fmt: skip
    d = doc(res)
    assert not {shas[16], shas[17]} & labels_tested(d["run_dir"])
    # the culprit is skipped: the answer is one of the skipped ones and the first failing one
    assert d["status"] == "ambiguous" and d["suspects"] == shas[16:19]


def _fixed_list(tmp_path: Path) -> tuple[Path, str]:
    (tmp_path / "l.txt").write_text("\n".join(f"v{i}" for i in range(1, 41)) + "\n")
    t = script(
        tmp_path / "t.sh",
        'n=${SLEUTH_CANDIDATE#v}; [ "$n" -lt 23 ] && { echo "Error: broken" >&2; exit 1; }; exit 0\n',
    )
    return tmp_path / "l.txt", t


def test_find_fix_finds_the_first_list_entry_that_passes(tmp_path: Path) -> None:
    listing, t = _fixed_list(tmp_path)
    res = sleuth("bisect", "list", str(listing), "--find-fix", "--flaky", "off", "--output", "o", "--", t,
                 cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "first fixed v23  (last failing v22)" in res.stdout
    (run,) = (tmp_path / "o").glob("bisect/list/*")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["find_fix"] is True
    assert (summary["first_bad"]["label"], summary["last_good"]["label"]) == ("v23", "v22")
    report = (run / "report.md").read_text()
    assert "First fixed: `v23`" in report and "Last failing: `v22`" in report and "First bad" not in report


def test_find_fix_on_git_takes_the_older_failing_end_as_bad(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 20, 0)  # every commit has the bug ...
    repo = tmp_path / "repo"
    for i in range(20, 26):  # ... until commit 23 fixes it
        (repo / "value").write_text(f"{i}\n")
        (repo / "bug").write_text("0\n" if i >= 23 else "1\n")
        git(repo, "commit", "-q", "-am", f"c{i}")
        shas.append(git(repo, "rev-parse", "HEAD").strip())
    res = sleuth("bisect", "git", "--repo", "repo", "--bad", shas[2], "--good", "main", "--find-fix",
                 "--flaky", "off", "--json", "--output", "o", "--", "sh", "-c", TEST, cwd=tmp_path)  # fmt: skip
    d = doc(res)
    assert d["find_fix"] and d["first_bad"]["label"] == shas[23] and d["last_good"]["label"] == shas[22]


def test_find_fix_orders_the_git_ends_the_other_way(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 6, 3)
    # without --find-fix an older --bad is an error that names the flags as given ...
    res = sleuth("bisect", "git", "--repo", "repo", "--good", "main", "--bad", shas[1], "--output", "o", "--",
                 "true", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2 and f"--good main is not an ancestor of --bad {shas[1]}" in res.stderr
    # ... with it, an older --good is the error, and the hint says why
    res = sleuth("bisect", "git", "--repo", "repo", "--good", shas[1], "--bad", "main", "--find-fix",
                 "--output", "o", "--", "true", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2 and f"--bad main is not an ancestor of --good {shas[1]}" in res.stderr
    assert "older one" in res.stderr
    # and the journal keeps the flags as given, with find_fix
    res = sleuth("bisect", "git", "--repo", "repo", "--bad", shas[1], "--good", "main", "--find-fix",
                 "--flaky", "off", "--json", "--output", "o", "--", "true", cwd=tmp_path)  # fmt: skip
    (start,) = [e for e in events(doc(res)["run_dir"]) if e["event"] == "start"]
    assert start["source"]["find_fix"] is True and start["flags"]["find_fix"] is True
    (cands,) = [e["labels"] for e in events(doc(res)["run_dir"]) if e["event"] == "candidates"]
    assert cands == shas[1:]  # oldest first: the failing --bad end leads


def test_multi_repo_rejects_single_repo_flags(tmp_path: Path) -> None:
    for flag in (["--find-fix"], ["--path", "x"], ["--skip", "HEAD"]):
        res = sleuth("bisect", "git", "--repo", "a=.", "--repo", "b=.", "--good", "a=x", "--good", "b=x",
                     "--bad", "a=y", "--bad", "b=y", *flag, "--", "true", cwd=tmp_path)  # fmt: skip
        assert res.returncode == 2 and flag[0] in res.stderr and "single --repo" in res.stderr


def test_bisect_alone_prints_its_help(tmp_path: Path) -> None:
    res = sleuth("bisect", cwd=tmp_path)  # the whole help on stdout; exit 2 as for every bare group
    assert res.returncode == 2 and not res.stderr
    assert res.stdout.startswith("Usage: sleuth bisect") and "resume" in res.stdout and "pypi" in res.stdout
    assert res.stdout == sleuth("bisect", "--help", cwd=tmp_path).stdout


@pytest.mark.parametrize(
    ("args", "example"),
    [
        (["list", "l.txt"], "sleuth bisect list "),
        (["git", "--repo", "repo", "--good", "HEAD~2", "--bad", "HEAD"], "sleuth bisect git --repo "),
        (["pypi", "six"], "sleuth bisect pypi six -- python -c 'import six'"),
        (
            ["images", "--template", "r/x:{date}", "--end-date", "2024-01-02"],
            "sleuth bisect images --template",
        ),
    ],
)
def test_missing_command_shows_an_example_of_the_subcommand_used(
    tmp_path: Path, args: list[str], example: str
) -> None:
    make_repo(tmp_path, 3, 2)
    (tmp_path / "l.txt").write_text("a\nb\n")
    res = sleuth("bisect", *args, cwd=tmp_path, env={"PIP_INDEX_URL": "", "UV_INDEX_URL": ""})
    assert res.returncode == 2 and example in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_help_has_no_doubled_percent_and_shows_the_new_flags(tmp_path: Path) -> None:
    out = sleuth("bisect", "git", "--help", cwd=tmp_path, env={"COLUMNS": "200"}).stdout
    assert "PCT %%" not in out and "PCT %" in out
    for flag in ("--skip REV", "--path PATH", "--find-fix"):
        assert flag in out
    assert "--index-url URL" in sleuth("bisect", "pypi", "--help", cwd=tmp_path).stdout


def test_not_found_claims_no_confidence(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("a\nb\nc\n")
    res = sleuth("bisect", "list", "l.txt", "--output", "o", "--", "true", cwd=tmp_path)
    assert res.returncode == 3
    assert "no answer, so no confidence" in res.stdout and "confidence 0.000" not in res.stdout
    res = sleuth("bisect", "list", "l.txt", "--output", "o", "--json", "--", "true", cwd=tmp_path)
    d = doc(res)
    assert d["status"] == "not_found" and d["confidence"] is None
    assert "no answer, so no confidence" in Path(d["run_dir"], "report.md").read_text()


def test_piped_lines_carry_the_whole_detail(tmp_path: Path) -> None:
    labels = [
        f"release-candidate-with-a-very-long-name-number-{i:03d}-built-on-the-nightly-runner"
        for i in range(8)
    ]
    (tmp_path / "l.txt").write_text("\n".join(labels) + "\n")
    msg = "RuntimeError: " + "a long failure message that goes on " * 3 + "and ends here"
    t = script(
        tmp_path / "t.sh", f'case "$SLEUTH_CANDIDATE" in *-00[5-7]-*) echo "{msg}" >&2; exit 1;; esac\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["SLEUTH_CACHE"] = str(tmp_path / "cache")
    res = subprocess.run([*sleuth_argv(), "bisect", "list", "l.txt", "--output", "o", "--flaky", "off", "--", t],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    tests = [ln for ln in lines if ln[:4].strip().isdigit()]
    fails = [ln for ln in tests if " FAIL " in ln]
    assert fails and all(labels[5] in ln or labels[6] in ln or labels[7] in ln for ln in fails)
    assert all(ln.rstrip().endswith("and ends here") for ln in fails), fails
    passes = [ln for ln in tests if " PASS" in ln]
    assert passes and all(ln == ln.rstrip() for ln in tests), tests  # no trailing blank after PASS
    (head,) = [ln for ln in lines if ln.startswith("sleuth bisect list -> ")]
    assert Path(
        head.removeprefix("sleuth bisect list -> ").rstrip(), "journal.jsonl"
    ).is_file()  # not wrapped
    assert f"first bad {labels[5]}  (last good {labels[4]})" in res.stdout


def sleuth_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "sleuth"]


def test_image_commits_help_speaks_of_two_images_not_dates(tmp_path: Path) -> None:
    """``image-commits --help`` described --source as "after the dates, bisect its commits inside the
    first bad image": image-commits has no dates, only --passing and --failing."""
    out = sleuth("bisect", "image-commits", "--help", cwd=tmp_path).stdout
    options = " ".join(out.split("Options:")[1].split())
    source = options.split("--source NAME=PATH")[1].split(" --")[0]
    assert "failing image" in source and "after the dates" not in source, source
