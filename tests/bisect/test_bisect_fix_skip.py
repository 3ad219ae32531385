"""``find_fix`` (the first candidate where a failure goes away) and ``skip`` labels, on real processes.

Through the Driver API with :class:`~sleuth.bisect.trials.Options` (the CLI flags ``--find-fix`` and
``--skip REV`` are wired by ``cli/bisect.py``); real git repositories and list files, real test
scripts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sleuth.bisect.candidates import ListSource
from sleuth.bisect.driver import Driver
from sleuth.bisect.git import GitSource
from sleuth.bisect.policy import FlakyMode
from sleuth.bisect.strategies import SearchResult, SearchStatus
from sleuth.bisect.trials import Options
from sleuth.errors import UsageError
from sleuth.journal import RunDir, read_journal
from sleuth.model import TrialSpec
from sleuth.oracle import OracleConfig, StandardOracle
from tests.bisect.test_bisect_cli import doc, sleuth
from tests.bisect.test_bisect_resume import make_repo

OFF, AUTO = FlakyMode(False, 1.0), FlakyMode(True)


def bisect(tmp_path: Path, source: object, argv: list[str], opts: Options) -> tuple[SearchResult, Driver]:
    rd = RunDir.create(tmp_path / "out", "bisect", "t")
    spec = TrialSpec(argv=tuple(argv), env=dict(os.environ), timeout_s=60)
    labels = source.resolve()  # type: ignore[attr-defined]
    driver = Driver(source, spec, StandardOracle(OracleConfig()), rd, opts, labels=labels)  # type: ignore[arg-type]
    try:
        res, _ = driver.run()
    finally:
        rd.close()
        if hasattr(source, "close"):  # a GitSource's checkout locks, as the CLI closes them
            source.close()
    return res, driver


def listing(tmp_path: Path, n: int) -> ListSource:
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(n)))
    return ListSource(str(tmp_path / "l.txt"))


# a failure that goes away at commit 23: ``bug`` holds 1 before it (make_repo's culprit is the fix)
FIXED = 'test "$(cat bug)" = 1 || { echo "AssertionError: loss is nan" >&2; exit 1; }'


@pytest.mark.parametrize("mode", [OFF, AUTO])
def test_find_fix_on_a_git_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: FlakyMode
) -> None:
    monkeypatch.setenv("SLEUTH_CACHE", str(tmp_path / "cache"))
    shas = make_repo(tmp_path, 40, 23)
    src = GitSource(str(tmp_path / "repo"), shas[0], shas[-1])
    res, driver = bisect(tmp_path, src, ["sh", "-c", FIXED], Options(flaky=mode, find_fix=True))
    assert res.status is SearchStatus.FOUND
    # first_bad: the first candidate showing the change (the first fixed); last_good: the last failing
    assert (res.first_bad, res.last_good) == (23, 22)
    assert driver.labels[res.first_bad] == shas[23]
    assert "AssertionError: loss is nan" in str(driver.signature)  # the old end's failure
    assert driver.opt.find_fix and res.confidence <= (1.0 if mode is OFF else 0.9999)
    ends = {e.label: e.outcome.value for e in driver.events if e.phase == "end check"}
    if mode is OFF:  # lazy ends: the answer rests on neither end, so neither was tested
        assert not ends
    else:
        assert ends[shas[0]] == "fail"  # the old end must fail: its signature is the target


def test_find_fix_counts_another_failure_as_a_skip(tmp_path: Path) -> None:
    # 0..29 fail with the target (nan), 30.. pass, except 10..19 which fail with an ImportError
    body = ('c=$SLEUTH_CANDIDATE\n[ $c -ge 10 ] && [ $c -lt 20 ] && { echo "ImportError: x" >&2; exit 1; }\n'
            '[ $c -lt 30 ] && { echo "RuntimeError: loss is nan" >&2; exit 1; }\nexit 0\n')  # fmt: skip
    res, driver = bisect(
        tmp_path, listing(tmp_path, 64), ["sh", "-c", body], Options(flaky=OFF, find_fix=True)
    )
    assert (res.status, res.first_bad, res.last_good) == (SearchStatus.FOUND, 30, 29)
    others = [e for e in driver.events if e.outcome.value == "fail" and e.counted.value == "skip"]
    assert all(10 <= e.index < 20 for e in others)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("exit 0", "the old end 0 did not fail"),
        ('echo "Error: x" >&2; exit 1', "the new end 29 did not pass"),
    ],
)
def test_find_fix_checks_that_the_old_end_fails_and_the_new_end_passes(
    tmp_path: Path, body: str, needle: str
) -> None:
    res, _ = bisect(
        tmp_path, listing(tmp_path, 30), ["sh", "-c", body], Options(flaky=OFF, find_fix=True, jobs=2)
    )
    assert res.status is SearchStatus.NOT_FOUND and needle in res.note


def test_find_fix_journals_the_mode(tmp_path: Path) -> None:
    body = '[ "$SLEUTH_CANDIDATE" -ge 7 ] || { echo "Error: x" >&2; exit 1; }'
    res, driver = bisect(
        tmp_path, listing(tmp_path, 20), ["sh", "-c", body], Options(flaky=OFF, find_fix=True)
    )
    assert res.first_bad == 7
    (strategy,) = [e for e in read_journal(driver.run_dir.path / "journal.jsonl") if e["event"] == "strategy"]
    assert strategy["find_fix"] is True


def test_skipped_commits_are_never_tested_and_the_answer_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLEUTH_CACHE", str(tmp_path / "cache"))
    shas = make_repo(tmp_path, 40, 23)
    bad = 'test "$(cat bug)" = 0 || { echo "AssertionError: bug" >&2; exit 1; }'
    src = GitSource(str(tmp_path / "repo"), shas[0], shas[-1])
    skip = tuple(shas[21:25])
    res, driver = bisect(tmp_path, src, ["sh", "-c", bad], Options(flaky=OFF, skip=skip))
    assert res.status is SearchStatus.AMBIGUOUS
    assert [driver.labels[i] for i in res.suspects] == [*shas[21:25], shas[25]]
    assert not {e.label for e in driver.events} & set(skip)
    assert not [p for p in (driver.run_dir.path / "candidates").iterdir() if any(s in p.name for s in skip)]


@pytest.mark.parametrize("mode", [OFF, AUTO])
def test_skipped_lines_the_search_goes_around(tmp_path: Path, mode: FlakyMode) -> None:
    body = '[ "$SLEUTH_CANDIDATE" -lt 41 ] || { echo "Error: x" >&2; exit 1; }'
    skip = (*(str(i) for i in range(25, 40)), "not-a-line")
    res, driver = bisect(tmp_path, listing(tmp_path, 64), ["sh", "-c", body], Options(flaky=mode, skip=skip))
    assert (res.status, res.first_bad, res.last_good) == (SearchStatus.FOUND, 41, 40)
    assert not {e.label for e in driver.events} & set(skip)


def test_skipping_an_end_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--skip 0: that is the good end"):
        bisect(tmp_path, listing(tmp_path, 10), ["true"], Options(flaky=OFF, skip=("0",)))
    with pytest.raises(UsageError, match="--skip 0: that is the bad end"):
        bisect(tmp_path, listing(tmp_path, 10), ["true"], Options(flaky=OFF, skip=("0",), find_fix=True))


#: the bad end's first run fails; its reruns cannot run (exit 125: the first run's state is in the way),
#: until the 30th (so a search that reruns it for ever ends, and is seen to have run 30 tests)
ONCE = """n=$SLEUTH_CANDIDATE; [ "$n" -lt 23 ] && exit 0
c=$(cat "runs-$n" 2>/dev/null || echo 0); echo $((c + 1)) > "runs-$n"
[ "$c" -ge 1 ] && [ "$c" -lt 30 ] && exit 125
echo "AssertionError: bug" >&2; exit 1
"""


@pytest.mark.parametrize("checks", [[], ["--skip-precondition-checks"]])
def test_a_bad_end_that_cannot_be_rerun_stops_the_flaky_search(tmp_path: Path, checks: list[str]) -> None:
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(40)))
    res = sleuth("bisect", "list", "l.txt", *checks, "--skip-exit", "125", "--json", "--output", "o", "--",
                 "sh", "-c", ONCE, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 3, res.stderr
    d = doc(res)
    assert d["status"] == "not_found" and d["tests"] == 4, d["tests"]  # the end, then 3 skipped reruns
    assert d["note"].startswith("the bad end 39 could not be rerun: its last 3 reruns were skipped")
    assert "--flaky off" in d["note"]


#: the bad end's reruns crash on the state its first run left (another failure), until the 30th;
#: ``ALTERNATING``: every other rerun does (a test with two ways to fail), which the search must bear
OTHER = ONCE.replace("exit 125", '{ echo "RuntimeError: cache dir exists" >&2; exit 1; }')
ALTERNATING = OTHER.replace('[ "$c" -lt 30 ]', "[ $((c % 2)) = 1 ]")


def test_a_bad_end_whose_reruns_fail_otherwise_stops_later_and_two_ways_to_fail_are_borne(
    tmp_path: Path,
) -> None:
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(40)))
    res = sleuth("bisect", "list", "l.txt", "--json", "--output", "o", "--", "sh", "-c", OTHER, cwd=tmp_path)
    d = doc(res)
    assert d["status"] == "not_found" and d["tests"] == 9, d["tests"]  # the end, then 8 other failures
    assert "its last 8 reruns failed otherwise than its first run (exit 1: RuntimeError" in d["note"], d[
        "note"
    ]
    for f in tmp_path.glob("runs-*"):
        f.unlink()
    res = sleuth("bisect", "list", "l.txt", "--json", "--output", "o", "--", "sh", "-c", ALTERNATING,
                 cwd=tmp_path)  # fmt: skip
    d = doc(res)
    assert (d["status"], d["first_bad"]["label"]) == ("found", "23"), d["note"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_flaky_off_stops_early_when_the_test_cannot_run(tmp_path: Path, jobs: str) -> None:
    """Lazy ends test the bad end as soon as a test could not run at all: a test that runs nowhere
    (not executable here; in bisect images a --gpus without GPUs, a broken runtime) took one
    container per candidate, 29 of 30, before the end check said exit 4."""
    (tmp_path / "list.txt").write_text("".join(f"{i}\n" for i in range(30)))
    test = tmp_path / "noexec.sh"
    test.write_text("#!/bin/sh\nexit 0\n")
    test.chmod(0o644)
    res = sleuth("bisect", "list", "list.txt", "--flaky", "off", "--jobs", jobs, "--output", "o", "--",
                 str(test), cwd=tmp_path)  # fmt: skip
    assert res.returncode == 4, res.stderr
    assert "the bad end 29 could not be tested" in res.stderr
    run = next((tmp_path / "o" / "bisect" / "list").iterdir())
    tests = [e for e in read_journal(run / "journal.jsonl") if e.get("event") == "test"]
    assert len(tests) <= 1 + int(jobs), [(e["phase"], e["label"]) for e in tests]
