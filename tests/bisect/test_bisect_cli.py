"""``sleuth bisect`` end to end: real subprocesses, real git repos, a fake container runtime."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

FAKE = Path(__file__).parent.parent / "programs" / "fake_runtime.py"


def sleuth(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # uv's own cache too: it keys an index's wheels by URL, and a later test's index server can get
    # an earlier one's port with other wheels under the same names (a stale tinypkg 1.2 passed)
    e = {
        **os.environ,
        "SLEUTH_CACHE": str(cwd / "cache"),
        "UV_CACHE_DIR": str(cwd / "uv-cache"),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "sleuth", *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=120
    )


def doc(res: subprocess.CompletedProcess[str]) -> Any:
    assert res.stdout, res.stderr
    return json.loads(res.stdout)


def script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def listing(tmp_path: Path) -> Path:
    (tmp_path / "list.txt").write_text("\n".join(f"v{i}" for i in range(1, 61)) + "\n")
    return tmp_path / "list.txt"


def test_list_finds_the_first_bad_line(tmp_path: Path, listing: Path) -> None:
    t = script(
        tmp_path / "t.sh",
        'n=${SLEUTH_CANDIDATE#v}; [ "$n" -ge 42 ] && { echo "Error: boom $n" >&2; exit 1; }; exit 0\n',
    )
    res = sleuth("bisect", "list", str(listing), "--output", "out", "--json", "--", t, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert d["status"] == "found"
    assert (d["first_bad"]["label"], d["last_good"]["label"]) == ("v42", "v41")
    # bisection (6), the bad end and its 3 reruns, then the flaky model's confirmation near the answer
    assert d["candidates"] == 60 and d["tests"] <= 6 + 4 + 10 and d["confidence"] < 1
    run_dir = Path(tmp_path / d["run_dir"])
    assert os.readlink(run_dir / "first-bad") == d["first_bad"]["dir"]
    assert (run_dir / "first-bad" / "run-1" / "stderr").read_text().startswith("Error: boom 42")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "found"
    assert "First bad: `v42`" in (run_dir / "report.md").read_text()


def test_other_signature_is_skipped_and_listed(tmp_path: Path, listing: Path) -> None:
    t = script(
        tmp_path / "t.sh",
        'n=${SLEUTH_CANDIDATE#v}\n[ "$n" -ge 30 ] && [ "$n" -le 35 ] && { echo "OOM killed" >&2; exit 3; }\n'
        '[ "$n" -ge 33 ] && { echo "Error: boom" >&2; exit 1; }\nexit 0\n',
    )
    # the bad end is tested first (auto): its signature is the target
    res = sleuth("bisect", "list", str(listing), "--output", "o", "--json", "--", t, cwd=tmp_path)
    d = doc(res)
    assert res.returncode == 3 and d["status"] == "ambiguous"
    assert "v33" in d["suspects"] and d["other_failures"]
    assert set(d["other_failures"]) <= {f"v{i}" for i in range(30, 36)}
    res = sleuth("bisect", "list", str(listing), "--output", "o", "--flaky", "off", "--any-failure", "--json",
                 "--", t, cwd=tmp_path)  # fmt: skip
    assert doc(res)["first_bad"]["label"] == "v30"


def test_flaky_off_asks_the_bad_end_when_two_failures_disagree(tmp_path: Path, listing: Path) -> None:
    # the first probe (v31) fails with an OOM, a later one (v24) with the bad end's failure: the bad
    # end is tested then, its failure is the target, and the search is told again (v31 is a skip)
    t = script(
        tmp_path / "t.sh",
        'n=${SLEUTH_CANDIDATE#v}\n[ "$n" -ge 30 ] && [ "$n" -le 35 ] && { echo "OOM killed" >&2; exit 3; }\n'
        '[ "$n" -ge 20 ] && { echo "Error: boom" >&2; exit 1; }\nexit 0\n',
    )
    res = sleuth(
        "bisect", "list", str(listing), "--output", "o", "--flaky", "off", "--json", "--", t, cwd=tmp_path
    )
    d = doc(res)
    assert (d["status"], d["first_bad"]["label"], d["last_good"]["label"]) == ("found", "v20", "v19")
    assert "boom" in d["signature"] and d["other_failures"] == ["v31"]
    events = [json.loads(x) for x in (tmp_path / d["run_dir"] / "journal.jsonl").read_text().splitlines()]
    ends = [e["label"] for e in events if e["event"] == "test" and e["phase"] == "end check"]
    assert ends == ["v60"]  # asked once, when the failures disagreed; the good end never
    # without a disagreement the first failure is the target (git bisect's "any failure is bad")
    one = script(
        tmp_path / "one.sh",
        'n=${SLEUTH_CANDIDATE#v}\n[ "$n" -ge 20 ] && { echo "OOM" >&2; exit 3; }\nexit 0\n',
    )
    d = doc(sleuth("bisect", "list", str(listing), "--output", "o", "--flaky", "off", "--json", "--", one,
                   cwd=tmp_path))  # fmt: skip
    assert (d["first_bad"]["label"], d["tests"]) == ("v20", 6) and d["signature"] == "exit 3"


def test_flaky_off_tests_the_bad_end_when_skips_leave_no_clean_answer(tmp_path: Path, listing: Path) -> None:
    # only v10 (passes) and v50 (fails) can be tested in between: the answer is ambiguous, so the
    # bad end is asked; one that cannot be tested either makes it not_found (as when checked first)
    body = 'case "$SLEUTH_CANDIDATE" in v1|v10) exit 0;; v50{end}) echo "Error: nan" >&2; exit 1;; esac\nexit 125\n'
    sparse = script(tmp_path / "sparse.sh", body.format(end=""))
    d = doc(sleuth("bisect", "list", str(listing), "--flaky", "off", "--skip-exit", "125", "--output", "o", "--json", "--", sparse,
                   cwd=tmp_path))  # fmt: skip
    assert d["status"] == "not_found" and "the bad end v60 did not fail" in d["note"]
    testable = script(tmp_path / "testable.sh", body.format(end="|v60"))
    d = doc(sleuth("bisect", "list", str(listing), "--flaky", "off", "--skip-exit", "125", "--output", "o", "--json", "--", testable,
                   cwd=tmp_path))  # fmt: skip
    assert d["status"] == "ambiguous" and (d["last_good"]["label"], d["first_bad"]["label"]) == ("v10", "v50")
    events = [json.loads(x) for x in (tmp_path / d["run_dir"] / "journal.jsonl").read_text().splitlines()]
    assert [e["label"] for e in events if e["event"] == "test" and e["phase"] == "end check"] == ["v60"]


def test_ends_that_misbehave_are_not_found(tmp_path: Path, listing: Path) -> None:
    res = sleuth("bisect", "list", str(listing), "--output", "o", "--json", "--", "true", cwd=tmp_path)
    assert res.returncode == 3
    d = doc(res)
    assert d["status"] == "not_found" and "bad end" in d["note"]


def test_flaky_list_search_reports_confidence(tmp_path: Path, listing: Path) -> None:
    # bad lines fail two runs in three, decided by a counter file so the test is reproducible
    t = script(
        tmp_path / "t.sh",
        'n=${SLEUTH_CANDIDATE#v}; c=$(cat "$0.count" 2>/dev/null || echo 0); echo $((c+1)) > "$0.count"\n'
        '[ "$n" -ge 20 ] && [ $((c % 3)) -ne 2 ] && { echo "Error: flaky" >&2; exit 1; }; exit 0\n',
    )
    res = sleuth(
        "bisect", "list", str(listing), "--output", "o", "--flaky", "0.66", "--json", "--", t, cwd=tmp_path
    )
    d = doc(res)
    assert d["strategy"] == "FlakyBisection"
    assert d["confidence"] >= 0.95 and d["first_bad"]["label"] == "v20", d


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--flaky", "often"], "--flaky"),
        (["--jobs", "0"], "--jobs"),
        (["--confidence", "2"], "--confidence"),
        (["--timeout", "-1"], "--timeout"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(
    tmp_path: Path, listing: Path, args: list[str], flag: str
) -> None:
    res = sleuth("bisect", "list", str(listing), "--output", "o", *args, "--", "true", cwd=tmp_path)
    assert res.returncode == 2
    assert flag in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_missing_command_and_file(tmp_path: Path, listing: Path) -> None:
    assert sleuth("bisect", "list", str(listing), cwd=tmp_path).returncode == 2
    res = sleuth("bisect", "list", "nope.txt", "--", "true", cwd=tmp_path)
    assert res.returncode == 2 and "nope.txt" in res.stderr


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout


def make_repo(root: Path, n: int, culprit: int, broken_build: frozenset[int] = frozenset()) -> list[str]:
    """A repo of ``n`` commits; ``value`` holds i; commit ``culprit`` introduces the bug."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    shas = []
    for i in range(n):
        (repo / "value").write_text(f"{i}\n")
        (repo / "bug").write_text("1\n" if i >= culprit else "0\n")
        (repo / "build_ok").write_text("0\n" if i in broken_build else "1\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"c{i}")
        shas.append(git(repo, "rev-parse", "HEAD").strip())
    return shas


TEST = 'test "$(cat bug)" = 0 || { echo "AssertionError: bug at $(cat value)" >&2; exit 1; }\n'


def test_git_finds_the_culprit_with_build_skips(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 40, 23, broken_build=frozenset({19, 20}))
    t = script(tmp_path / "t.sh", TEST)
    before = (tmp_path / "repo" / "value").read_text()
    res = sleuth("bisect", "git", "--repo", "repo", "--good", shas[0], "--bad", "main", "--build",
                 'test "$(cat build_ok)" = 1 && test -n "$SLEUTH_REPO"', "-j", "2", "--json", "--output", "o",
                 "--", t, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert d["first_bad"]["label"] == shas[23] and d["last_good"]["label"] == shas[22]
    assert (tmp_path / "repo" / "value").read_text() == before  # the user's tree is untouched
    assert git(tmp_path / "repo", "status", "--porcelain") == ""


def test_git_exit_125_skips_to_an_ambiguous_answer(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 20, 10)
    t = script(tmp_path / "t.sh", 'v=$(cat value); [ "$v" -ge 8 ] && [ "$v" -le 10 ] && exit 125\n' + TEST)
    res = sleuth("bisect", "git", "--repo", "repo", "--good", shas[0], "--bad", shas[-1], "--flaky", "off",
                 "--json", "--output", "o", "--", t, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 3
    d = doc(res)
    assert d["status"] == "ambiguous"
    assert d["suspects"] == shas[8:12]  # 8..10 untestable, 11 fails: any of them may be first
    assert set(d["skipped"]) == set(shas[8:11])


def test_git_bad_refs_are_usage_errors(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 3, 2)
    res = sleuth(
        "bisect", "git", "--repo", "repo", "--good", "nope", "--bad", "main", "--", "true", cwd=tmp_path
    )
    assert res.returncode == 2 and "--good nope" in res.stderr
    res = sleuth(
        "bisect", "git", "--repo", "repo", "--good", shas[2], "--bad", shas[0], "--", "true", cwd=tmp_path
    )
    assert res.returncode == 2 and "ancestor" in res.stderr


def test_resume_after_kill_never_reruns_a_test(tmp_path: Path, listing: Path) -> None:
    log = tmp_path / "ran.log"
    t = script(
        tmp_path / "t.sh",
        f'echo "$SLEUTH_CANDIDATE" >> {log}; sleep 0.3\n'
        'n=${SLEUTH_CANDIDATE#v}; [ "$n" -ge 37 ] && { echo "Error: boom" >&2; exit 1; }; exit 0\n',
    )
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "sleuth", "bisect", "list", str(listing), "--output", "o",
                             "--flaky", "off", "--json", "--", t], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().split()) < 4):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = next((tmp_path / "o" / "bisect" / "list").iterdir())
    assert not (run_dir / "summary.json").exists()
    journal = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines() if x.strip()]
    done = [e["label"] for e in journal if e["event"] == "test"]
    assert len(done) >= 2
    before = log.read_text().split()
    res = sleuth("bisect", "resume", str(run_dir), "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert d["first_bad"]["label"] == "v37"
    rerun = log.read_text().split()[len(before) :]
    assert not set(rerun) & set(done), (done, rerun)
    assert d["tests"] == len(set(before) | set(rerun)) or d["tests"] >= len(done)


class Fake:
    def __init__(self, root: Path) -> None:
        self.bin = root / "fakebin"
        self.bin.mkdir()
        for tool in ("docker", "podman"):
            shim = self.bin / tool
            shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" {tool} "$@"\n')
            shim.chmod(0o755)
        self.log = root / "runtime.jsonl"

    def env(self, images: list[str]) -> dict[str, str]:
        return {"PATH": f"{self.bin}{os.pathsep}/usr/bin{os.pathsep}/bin", "FAKE_RUNTIME_LOG": str(self.log),
                "FAKE_RUNTIME_IMAGES": " ".join(images)}  # fmt: skip


def test_images_gallop_back_and_bisect_dates(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    days = [f"2024-09-{d:02d}" for d in range(1, 31)]
    images = [f"reg.io/jax:nightly-{d}" for d in days if d != "2024-09-20"]  # one tag is missing
    t = script(
        tmp_path / "t.sh",
        'd=${FAKE_CONTAINER_IMAGE##*-}; echo "$SLEUTH_CANDIDATE" > "$SLEUTH_OUTPUT_DIR/seen"\n'
        '[ "$d" -ge 19 ] && { echo "XlaRuntimeError: bad" >&2; exit 1; }; exit 0\n',
    )
    res = sleuth("bisect", "images", "--template", "reg.io/jax:nightly-{date}", "--end-date", "2024-09-30",
                 "--flaky", "off", "--json", "--output", "o", "--", t, cwd=tmp_path, env=fake.env(images))  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert d["first_bad"]["label"] == "reg.io/jax:nightly-2024-09-19"
    calls = [json.loads(x) for x in fake.log.read_text().splitlines()]
    runs = [c for c in calls if c["argv"][:1] == ["run"]]
    assert all(c["argv"][1] == "--rm" for c in runs)
    assert any("dst=/sleuth-output" in " ".join(c["argv"]) for c in runs)
    assert not any(c["argv"][:1] == ["pull"] for c in calls)
    seen = Path(d["run_dir"]) if Path(d["run_dir"]).is_absolute() else tmp_path / d["run_dir"]
    assert (seen / "first-bad" / "run-1" / "output" / "seen").exists() or (seen / "first-bad").exists()


@pytest.mark.network
def test_pypi_releases_in_real_venvs(tmp_path: Path) -> None:
    import urllib.request

    try:
        urllib.request.urlopen("https://pypi.org/pypi/six/json", timeout=10).close()
    except OSError as exc:
        pytest.skip(f"package index unreachable: {exc}")
    t = script(tmp_path / "t.sh", "python -c \"import six, sys; sys.exit(six.__version__ >= '1.15')\"\n")
    res = sleuth("bisect", "pypi", "six", "--good", "1.12.0", "--bad", "1.16.0", "--flaky", "off", "--json",
                 "--output", "o", "--", t, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert d["first_bad"]["label"] == "1.15.0" and d["last_good"]["label"] == "1.14.0"
    assert d["release_notes"][0] == "https://pypi.org/project/six/1.15.0/"  # and the project's own link


def test_a_bad_end_that_passes_once_is_retried_under_flaky_modes(tmp_path: Path, listing: Path) -> None:
    # the bad end (v60) passes on its first run only; every candidate from v30 on fails after that
    t = script(
        tmp_path / "t.sh",
        'n=${SLEUTH_CANDIDATE#v}; [ "$n" -lt 30 ] && exit 0\n'
        'if [ "$n" = 60 ] && [ ! -e first-done ]; then touch first-done; exit 0; fi\n'
        'echo "Error: nan" >&2; exit 1\n',
    )
    res = sleuth("bisect", "list", str(listing), "--output", "out", "--json", "--", t, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert d["status"] == "found" and d["first_bad"]["label"] == "v30"
    # the pass of the bad end was evidence of flakiness: the Bayesian search took over
    assert d["strategy"] == "FlakyBisection", d
    phases = [
        json.loads(line).get("phase")
        for line in (tmp_path / d["run_dir"] / "journal.jsonl").read_text().splitlines()
    ]
    assert "bad end retry" in phases


def test_flaky_off_tests_an_end_when_the_answer_rests_on_it(tmp_path: Path, listing: Path) -> None:
    # --flaky off trusts the ends as git bisect does, unless the answer is an end: a test that always
    # passes blames the bad end, which is then tested, passes, and nothing is found
    ok = script(tmp_path / "ok.sh", "exit 0\n")
    off = sleuth(
        "bisect", "list", str(listing), "--flaky", "off", "--output", "out", "--json", "--", ok, cwd=tmp_path
    )
    assert off.returncode == 3
    d = doc(off)
    assert d["status"] == "not_found" and "the bad end v60 did not fail" in d["note"]
    bad = script(tmp_path / "bad.sh", 'echo "Error: nan" >&2; exit 1\n')
    d = doc(sleuth("bisect", "list", str(listing), "--flaky", "off", "--output", "out", "--json", "--", bad,
                   cwd=tmp_path))  # fmt: skip
    assert d["status"] == "not_found" and "the good end v1 did not pass" in d["note"]
    assert d["tests"] <= 1 + math.ceil(math.log2(59))
    # the bad end passes on its first run and fails after: off never runs it (the answer is v30)
    first = script(
        tmp_path / "first.sh",
        'n=${SLEUTH_CANDIDATE#v}; [ "$n" -lt 30 ] && exit 0\n'
        'if [ "$n" = 60 ] && [ ! -e first-done ]; then touch first-done; exit 0; fi\n'
        'echo "Error: nan" >&2; exit 1\n',
    )
    d = doc(sleuth("bisect", "list", str(listing), "--flaky", "off", "--output", "out", "--json", "--", first,
                   cwd=tmp_path))  # fmt: skip
    assert d["first_bad"]["label"] == "v30" and not (tmp_path / "first-done").exists()
