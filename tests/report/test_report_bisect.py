"""``sleuth report`` on ``sleuth bisect`` run dirs: real bisections, the real CLI, a real headless Chromium.

Expected values come from the ``summary.json`` each run wrote, never from a hard-coded answer.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from sleuth.bisect.report_md import name_suspects
from sleuth.report.common import MAX_ROWS
from tests.bisect.test_bisect_cli import git
from tests.conftest import CliResult
from tests.report.conftest import external_refs, parse, visible_text

# v13 and later fail; every test prints what it saw
STEP = (
    'n=${SLEUTH_CANDIDATE#v}; echo "testing $n"; '
    'if [ "$n" -ge 13 ]; then echo "RuntimeError: boom at $n" >&2; exit 1; fi'
)
# v13 and later fail 6 runs in 10, decided by a counter (the same each time: the search is deterministic)
FLAKY = (
    'c=$(cat "$CNT" 2>/dev/null || echo 0); c=$((c+1)); echo $c > "$CNT"; n=${SLEUTH_CANDIDATE#v}; '
    'if [ "$n" -ge 13 ] && [ $(( (c * 7919) % 10 )) -lt 6 ]; then echo "CUDA error: illegal access" >&2; exit 1; fi'
)


def _bisect(sleuth: Callable[..., CliResult], tmp_path: Path, *args: str, n: int = 20) -> tuple[Path, dict]:
    (tmp_path / "cands.txt").write_text("".join(f"v{i}\n" for i in range(1, n + 1)))
    result = sleuth("bisect", "list", tmp_path / "cands.txt", "--json", *args)
    assert result.rc in (0, 3), result.stderr
    doc = result.json()
    return Path(doc["run_dir"]), doc


def _report(sleuth: Callable[..., CliResult], run_dir: Path) -> str:
    made = sleuth("report", run_dir)
    assert made.rc == 0, made.stderr
    return (run_dir / "report.html").read_text(encoding="utf-8")


def _headline(page: str) -> str:
    return " ".join(parse(page).by_id["headline"]).strip()


def _tests(run_dir: Path) -> list[dict]:
    lines = (run_dir / "journal.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == "test"]


def test_a_found_answer_has_its_confidence_the_search_drawn_the_logs_and_the_command(
    sleuth: Callable[..., CliResult], browser: Callable[[Path], str], tmp_path: Path
) -> None:
    run_dir, s = _bisect(sleuth, tmp_path, "--flaky", "off", "--", "sh", "-c", STEP)
    _report(sleuth, run_dir)
    dom = browser(run_dir / "report.html")
    text = visible_text(dom)
    fb, lg = s["first_bad"]["label"], s["last_good"]["label"]
    assert _headline(dom) == f"first bad {fb} (last good {lg}), confidence {s['confidence']:.3f}"
    assert 'class="headline good"' in dom
    assert f"v1 -> v20 (good end -> bad end), {s['candidates']} candidates" in text
    assert f"{s['tests']} tests over {s['candidates']} candidates" in text
    assert f"flaky mode {s['flaky']} ({s['strategy']})" in text
    assert s["signature"] in text
    # the search is one inline figure; nothing is fetched
    assert [t for t, _ in parse(dom).tags].count("svg") == 1
    assert external_refs(dom) == []
    # one row per test, in test order
    for t in _tests(run_dir):
        assert f"{t['seq']} {t['phase']} {t['label']} {t['outcome'].upper()}" in text
    # the first bad's failure and the last good's own output, from their trial dirs
    n = fb.removeprefix("v")
    assert f"RuntimeError: boom at {n}" in text and f"testing {lg.removeprefix('v')}" in text
    # the command that reproduces each end
    idx = s["first_bad"]["index"]
    assert f"SLEUTH_CANDIDATE={fb} SLEUTH_CANDIDATE_INDEX={idx} sh -c" in text
    assert f"Working directory: {s['command']['cwd']}." in text


def test_a_flaky_search_shows_its_reruns_its_p_estimate_and_the_same_bytes_twice(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    run_dir, s = _bisect(sleuth, tmp_path, "--env", f"CNT={tmp_path / 'count'}", "--", "sh", "-c", FLAKY)
    assert s["strategy"] == "FlakyBisection" and s["p_estimate"] is not None  # the test is flaky
    page = _report(sleuth, run_dir)
    text = visible_text(page)
    assert f"flaky mode {s['flaky']} ({s['strategy']}, p = {s['p_estimate']:.2f})" in text
    reruns = [t for t in _tests(run_dir) if t["run"] > 1]
    assert reruns and all(f"{t['seq']} {t['phase']} {t['label']} " in text for t in reruns)
    assert sleuth("report", run_dir, "--out", run_dir / "again.html").rc == 0
    assert (run_dir / "again.html").read_bytes() == (run_dir / "report.html").read_bytes()


def test_untestable_candidates_make_an_ambiguous_answer_named_as_the_verb_names_it(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    skip = 'case ${SLEUTH_CANDIDATE#v} in 11|12|13|14) echo "cannot build" >&2; exit 125;; esac; '
    run_dir, s = _bisect(
        sleuth, tmp_path, "--skip-exit", "125", "--flaky", "off", "--", "sh", "-c", skip + STEP
    )
    assert s["status"] == "ambiguous"
    page = _report(sleuth, run_dir)
    assert _headline(page) == (
        f"ambiguous: the first bad is one of: {name_suspects(s['suspects'])} (confidence {s['confidence']:.3f})"
    )
    assert 'class="headline unsure"' in page
    text = visible_text(page)
    assert "skipped (untestable) " + ", ".join(s["skipped"]) in text
    assert text.count(" SKIP ") == sum(t["outcome"] == "skip" for t in _tests(run_dir))


def test_performance_mode_draws_the_metric_per_candidate_with_the_step_and_the_threshold(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    slow = 'n=${SLEUTH_CANDIDATE#v}; b=100; [ "$n" -ge 13 ] && b=150; echo "step_time=$b.$(( $$ % 10 ))"'
    run_dir, s = _bisect(sleuth, tmp_path, "--metric", "t=step_time=([0-9.]+)", "--metric", "t",
                         "--threshold", "3", "--", "sh", "-c", slow)  # fmt: skip
    page = _report(sleuth, run_dir)
    text = visible_text(page)
    perf = s["perf"]
    assert _headline(page).startswith(f"first bad {s['first_bad']['label']} (last good ")
    assert f"performance on t ({perf['method']}), {perf['direction']} is better, threshold 3%" in text
    assert [t for t, _ in parse(page).tags].count("svg") == 2  # the search, and the metric per candidate
    for row in perf["candidates"]:
        assert f"{row['label']} {row['runs']} " in text and row["decision"] in text
    shift = perf["comparisons"][0]["shift_pct"]
    assert (
        f"The ends: {perf['comparisons'][0]['other']} against {perf['comparisons'][0]['ref']} is {shift:+.2f}%"
        in text
    )
    # interrupted in the middle: the values measured so far are still drawn
    lines = (run_dir / "journal.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "journal.jsonl").write_text("".join(lines[: len(lines) // 2]))
    (run_dir / "summary.json").unlink()
    page = _report(sleuth, run_dir)
    assert _headline(page).startswith("Not finished (interrupted or still running): ")
    assert "performance on t" in visible_text(page)
    assert [t for t, _ in parse(page).tags].count("svg") == 2


def test_a_git_bisection_lists_the_commits_between_and_shows_markup_in_titles_and_logs_as_text(
    sleuth: Callable[..., CliResult], browser: Callable[[Path], str], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for i in range(12):
        (repo / "value").write_text(f"{i}\n")
        (repo / "bug").write_text("1\n" if i >= 7 else "0\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"c{i}: <img src=x onerror=alert({i})> change")
    good = git(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    evil = "<script>document.title='pwned'</script>"
    test = f'test "$(cat bug)" = 0 || {{ echo "AssertionError: {evil}" >&2; exit 1; }}'
    result = sleuth("bisect", "git", "--repo", repo, "--good", good, "--bad", "main", "--flaky", "off",
                    "--json", "--", "sh", "-c", test)  # fmt: skip
    assert result.rc == 0, result.stderr
    s = result.json()
    run_dir = Path(s["run_dir"])
    _report(sleuth, run_dir)
    dom = browser(run_dir / "report.html")
    assert not [t for t, _ in parse(dom).tags if t in ("script", "img")]
    text = visible_text(dom)
    assert f"first bad {s['first_bad']['label']} (last good {s['last_good']['label']})" in _headline(dom)
    assert f"{s['first_bad']['label'][:12]} {s['first_bad']['title']}" in text
    for c in s["commits_between"]:
        assert f"{c['sha'][:12]} {c['title']}" in text
    assert f"AssertionError: {evil}" in text


def test_an_interrupted_bisection_says_so_and_shows_the_range_narrowed_so_far_then_its_resume(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    run_dir, s = _bisect(sleuth, tmp_path, "--flaky", "off", "--", "sh", "-c", STEP, n=60)
    # what a kill -9 after three tests leaves: their events, no end, no summary, no report, no links,
    # no trial dirs of the tests after them
    for trial in _tests(run_dir)[3:]:
        shutil.rmtree(run_dir / trial["trial_dir"])
    kept, tests = [], 0
    for line in (run_dir / "journal.jsonl").read_text().splitlines(keepends=True):
        event = json.loads(line)["event"]
        if event == "end" or (event in ("test", "trial") and tests >= 3):
            continue
        tests += event == "test"
        kept.append(line)
    (run_dir / "journal.jsonl").write_text("".join(kept))
    for name in ("summary.json", "report.md", "first-bad", "last-good"):
        (run_dir / name).unlink()
    page = _report(sleuth, run_dir)
    head = _headline(page)
    assert head.startswith("Not finished (interrupted or still running): 3 test(s) of 3 candidate(s) so far")
    assert 'class="headline unsure"' in page
    lo, hi = re.search(r"the first bad is one of v(\d+) \.\. v(\d+)", head).groups()  # type: ignore[union-attr]
    assert int(lo) <= int(s["first_bad"]["label"][1:]) <= int(hi)  # the answer the whole run found is in it
    assert [t for t, _ in parse(page).tags].count("svg") == 1
    # resumed: the three journaled tests are served, the rest run; the page marks the sessions
    again = sleuth("bisect", "resume", run_dir, "--json")
    assert again.rc == 0, again.stderr
    resumed = again.json()
    text = visible_text(_report(sleuth, run_dir))
    got = resumed["resumed"]
    assert f"resumed {got['replayed']} test(s) replayed from the journal, {got['retried']} run again" in text
    rows = _tests(run_dir)
    assert all(f"{t['seq']} {t['phase']} {t['label']} {t['outcome'].upper()} " in text for t in rows)
    for t in rows:  # the session each test ran in: 1 before the resume, 2 after it
        if t["outcome"] == "pass":
            assert re.search(rf"\b{t['seq']} search {t['label']} PASS [0-9.]+s {1 + (t['seq'] >= 3)}\b", text)


def test_the_page_hides_the_runs_secrets_even_in_the_workloads_own_logs(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    token = "ghp_" + "Zx9" * 10
    secret = "hunter2-but-longer-value"
    leak = f'echo "using $API_PASSWORD and {token}" >&2; '
    run_dir, _ = _bisect(sleuth, tmp_path, "--flaky", "off", "--env", f"API_PASSWORD={secret}",
                         "--", "sh", "-c", leak + STEP)  # fmt: skip
    assert any(secret in p.read_text() for p in run_dir.glob("candidates/*/run-*/stderr"))
    page = _report(sleuth, run_dir)
    assert "using " in page
    assert secret not in page and token not in page


def test_a_long_search_cuts_its_table_and_keeps_every_failure(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    rare = (
        'c=$(cat "$CNT" 2>/dev/null || echo 0); c=$((c+1)); echo $c > "$CNT"; '
        'if [ "$SLEUTH_CANDIDATE_INDEX" -ge 6 ] && [ $(( (c * 7919) % 20 )) -lt 1 ]; then exit 1; fi'
    )
    run_dir, s = _bisect(sleuth, tmp_path, "--flaky", "0.05", "--confidence", "0.999", "--max-tests", "210",
                         "--env", f"CNT={tmp_path / 'count'}", "--", "sh", "-c", rare, n=10)  # fmt: skip
    assert s["tests"] > MAX_ROWS
    text = visible_text(_report(sleuth, run_dir))
    assert f"{MAX_ROWS} of {s['tests']} rows shown." in text
    fails = [t for t in _tests(run_dir) if t["outcome"] == "fail"]
    assert fails and all(f"{t['seq']} {t['phase']} {t['label']} FAIL" in text for t in fails)


def test_an_unreadable_summary_is_said_and_the_page_comes_from_the_journal(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    run_dir, _ = _bisect(sleuth, tmp_path, "--flaky", "off", "--", "sh", "-c", STEP)
    (run_dir / "summary.json").write_bytes(b"\xff\xfe not JSON")
    # what a kill -9 before the end leaves too: no end event (whose summary the page reads next)
    lines = (run_dir / "journal.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "journal.jsonl").write_text("".join(ln for ln in lines if json.loads(ln)["event"] != "end"))
    page = _report(sleuth, run_dir)  # before: exit 2, "summary.json: not readable as JSON"
    n = len(_tests(run_dir))
    seen = len({t["label"] for t in _tests(run_dir)})
    assert _headline(page).startswith("summary.json is unreadable (")
    assert f"); from the journal: {n} test(s) of {seen} candidate(s) so far" in _headline(page)
    assert 'class="headline unsure"' in page
