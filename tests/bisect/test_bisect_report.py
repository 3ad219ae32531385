"""``report.md`` of a bisection: tests in order, the command, the commits between, whole signatures."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.bisect.test_bisect_cli import TEST, doc, git, make_repo, script, sleuth


def rows(report: str) -> list[list[str]]:
    """The cells of the tests table."""
    out = []
    for ln in report.split("## Tests", 1)[1].splitlines():
        if ln.startswith("| ") and not ln.startswith("| #"):
            out.append([c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]])
    return out


def test_rows_are_in_test_order_and_the_command_is_there(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("\n".join(str(i) for i in range(1, 101)) + "\n")
    # later candidates finish first, so completion order differs from test order
    t = script(tmp_path / "t.sh", 'sleep 0.$((100 - SLEUTH_CANDIDATE))\n'
               '[ $SLEUTH_CANDIDATE -ge 64 ] && { echo "Error: x" >&2; exit 1; }; exit 0\n')  # fmt: skip
    res = sleuth("bisect", "list", "l.txt", "-j", "3", "--env", "MODE=fast", "--cwd", str(tmp_path),
                 "--output", "o", "--json", "--", t, "--flag", "a b", cwd=tmp_path)  # fmt: skip
    d = doc(res)
    report = Path(d["run_dir"], "report.md").read_text()
    seqs = [int(r[0]) for r in rows(report)]
    assert seqs == list(range(d["tests"]))
    assert f"{t} --flag 'a b'" in report  # the argv, quoted as a shell would need it
    assert f"Working directory: {tmp_path}" in report
    assert "`MODE=fast`" in report
    assert d["command"] == {"argv": [t, "--flag", "a b"], "cwd": str(tmp_path), "env": {"MODE": "fast"}}


def test_the_commits_between_and_the_whole_signature(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 10, 6)
    repo = tmp_path / "repo"
    # a merge brings three commits; the second of them adds the bug
    git(repo, "checkout", "-q", "-b", "side", shas[9])
    for i, title in enumerate(("side: refactor", "side: the change that breaks it", "side: docs")):
        (repo / "side").write_text(f"{i}\n")
        if i == 1:
            (repo / "bug").write_text("2\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", title)
    git(repo, "checkout", "-q", "main")
    (repo / "other").write_text("x\n")
    git(repo, "add", "other")
    git(repo, "commit", "-q", "-m", "main: unrelated")
    git(repo, "merge", "-q", "--no-ff", "side", "-m", "Merge branch side")
    (repo / "more").write_text("y\n")
    git(repo, "add", "more")
    git(repo, "commit", "-q", "-m", "main: after the merge")
    long = "ValueError: " + "the tensor shapes (3, 4) and (4, 5) do not line up for the fused kernel " * 3
    test = f'test "$(cat bug)" = 2 && {{ echo "{long.strip()}" >&2; exit 1; }}; exit 0\n'
    res = sleuth("bisect", "git", "--repo", "repo", "--good", shas[9], "--bad", "main", "--first-parent",
                 "--flaky", "off", "--json", "--output", "o", "--", "sh", "-c", test, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert d["first_bad"]["title"].startswith("Merge branch side")
    titles = [c["title"].split(" (")[0] for c in d["commits_between"]]
    assert titles == ["side: refactor", "side: the change that breaks it", "side: docs", "Merge branch side"]
    report = Path(d["run_dir"], "report.md").read_text()
    section = report.split("## Commits from last good (exclusive) to first bad", 1)[1].split("##", 1)[0]
    assert "side: the change that breaks it" in section and "main: unrelated" not in section
    assert d["signature"] and len(d["signature"]) > 120
    assert d["signature"] in report  # whole, not cut at 120 characters
    fails = [r for r in rows(report) if r[3] == "fail"]
    assert fails and all(d["signature"] in r[5] for r in fails)


def test_performance_rows_say_good_or_bad_by_the_metric(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("\n".join(str(i) for i in range(1, 21)) + "\n")
    t = script(tmp_path / "t.sh", 'b=100; [ $SLEUTH_CANDIDATE -ge 13 ] && b=150\necho "step_time=$b.$$"\n')
    res = sleuth("bisect", "list", "l.txt", "--metric", r"step=step_time=([0-9.]+)", "--metric", "step",
                 "--output", "o", "--json", "--", t, cwd=tmp_path)  # fmt: skip
    d = doc(res)
    assert d["first_bad"]["label"] == "13"
    table = rows(Path(d["run_dir"], "report.md").read_text())
    outcomes = {r[2].strip("`"): r[3] for r in table}
    assert "pass" not in outcomes.values()
    assert outcomes["1"] == "good (end)" and outcomes["20"] == "bad (end)"
    assert outcomes["13"] == "bad" and outcomes["12"] == "good"
    # the terminal shows the sampled value, not PASS
    plain = sleuth("bisect", "list", "l.txt", "--metric", r"step=step_time=([0-9.]+)", "--metric", "step",
                   "--output", "o", "--", t, cwd=tmp_path)  # fmt: skip
    lines = [ln for ln in plain.stderr.splitlines() if ln[:4].strip().isdigit()]
    assert lines and all("SAMPLE" in ln and "step=1" in ln and "PASS" not in ln for ln in lines)


def test_a_test_that_is_not_found_still_tells_the_command(tmp_path: Path) -> None:
    make_repo(tmp_path, 4, 2)
    res = sleuth("bisect", "git", "--repo", "repo", "--good", "main~3", "--bad", "main", "--json", "--output",
                 "o", "--", "sh", "-c", "exit 0", cwd=tmp_path)  # fmt: skip
    d = doc(res)
    assert d["status"] == "not_found"
    report = Path(d["run_dir"], "report.md").read_text()
    assert "sh -c 'exit 0'" in report and "the checkout of each commit" in report
    assert "Commits from" not in report
    _ = TEST


def test_an_inconclusive_answer_is_called_a_guess_not_the_first_bad(tmp_path: Path) -> None:
    flaky = Path(__file__).parent.parent / "programs" / "flaky.py"
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(16)))
    body = f'[ "$SLEUTH_CANDIDATE" -lt 9 ] && exit 0; exec "{sys.executable}" {flaky} 0.5 seed'
    args = ("bisect", "list", "l.txt", "--max-tests", "8", "--output", "o", "--", "sh", "-c", body)
    res = sleuth(*args, cwd=tmp_path)  # seeded by the trial ids: the same tests every time
    assert res.returncode == 3, res.stderr
    assert "inconclusive: not settled; the best guess for the first bad: " in res.stdout, res.stdout
    assert "is one of" not in res.stdout  # a low-confidence block read as an answer
    (report,) = (tmp_path / "o").glob("bisect/list/*/report.md")
    text = report.read_text()
    assert "Not settled; the best guess for the first bad: `" in text and "is one of" not in text, text
    assert doc(sleuth(*args[:-4], "--json", *args[-4:], cwd=tmp_path))["status"] == "inconclusive"


def test_flaky_off_keeps_to_max_tests_and_names_a_long_block_by_its_ends(tmp_path: Path) -> None:
    # --flaky off ignored --max-tests (a 1000-candidate list ran all its tests whatever the budget);
    # now every test counts, the end checks included, and the block left is named by its ends
    (tmp_path / "l.txt").write_text("".join(f"c{i}\n" for i in range(1000)))
    body = '[ "${SLEUTH_CANDIDATE#c}" -lt 701 ]'
    for budget in (1, 2, 5, 8):
        out = tmp_path / f"o{budget}"
        res = sleuth("bisect", "list", "l.txt", "--flaky", "off", "--max-tests", str(budget), "--output",
                     str(out), "--", "sh", "-c", body, cwd=tmp_path)  # fmt: skip
        assert res.returncode == 3, res.stderr
        (summary,) = out.glob("bisect/list/*/summary.json")
        d = json.loads(summary.read_text())
        assert d["status"] == "inconclusive" and d["tests"] <= budget, (budget, d["tests"])
        assert "c701" in d["suspects"] and len(d["suspects"]) > 8
        assert f"({len(d['suspects'])} candidates)" in res.stdout, res.stdout
        assert "--max-tests" in res.stdout and res.stdout.count(", ") < 8
    res = sleuth("bisect", "list", "l.txt", "--flaky", "off", "--max-tests", "12", "--json", "--output",
                 str(tmp_path / "o"), "--", "sh", "-c", body, cwd=tmp_path)  # fmt: skip
    assert (doc(res)["status"], doc(res)["first_bad"]["label"]) == ("found", "c701")


def test_a_bad_end_that_passes_is_retried_only_within_max_tests(tmp_path: Path) -> None:
    # under auto a bad end that passes is run again up to 8 times: --max-tests 3 ran all 8
    (tmp_path / "l.txt").write_text("a\nb\nc\nd\ne\n")
    for jobs in ("1", "2"):
        out = tmp_path / f"o{jobs}"
        res = sleuth("bisect", "list", "l.txt", "--max-tests", "3", "-j", jobs, "--output", str(out), "--", "true",
                     cwd=tmp_path)  # fmt: skip
        assert res.returncode == 3, res.stderr
        (summary,) = out.glob("bisect/list/*/summary.json")
        d = json.loads(summary.read_text())
        # at most the budget (with -j 2 the good end may finish after the bad end's reruns were counted)
        assert d["status"] == "not_found" and 2 <= d["tests"] <= 3, (jobs, d["tests"])
        assert "the bad end e did not fail" in d["note"], d


def test_adjacent_commits_between_are_git_log_s_answer_without_running_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``commits_between`` of a first bad whose only parent is the last good is that one commit, as
    ``git log old..new`` says, taken from the history already read (one git command fewer at the end)."""
    import sleuth.bisect.git as gitmod

    shas = make_repo(tmp_path, 6, 3)
    src = gitmod.GitSource(str(tmp_path / "repo"), shas[0], shas[-1])
    labels = src.resolve()
    src.title(labels[3])  # as the summary does for the first bad, before the commits between
    expected = gitmod.GitSource(str(tmp_path / "repo"), shas[0], shas[-1]).between(labels[2], labels[3])
    assert [sha for sha, _ in expected] == [labels[3]]

    def no_git(*args: object) -> str:
        raise AssertionError(f"git ran: {args}")

    with_merge = gitmod.GitSource(str(tmp_path / "repo"), shas[0], shas[-1])
    with_merge.resolve()
    monkeypatch.setattr(gitmod, "_git", no_git)
    assert src.between(labels[2], labels[3]) == expected
    with_merge._parents[labels[3]] = [labels[2], labels[1]]  # two parents: git is asked
    with pytest.raises(AssertionError, match="git ran"):
        with_merge.between(labels[2], labels[3])
