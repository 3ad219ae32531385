"""``sleuth bisect images`` over dated images built here, with a real podman.

APP's tags are 2025-01-01 .. 2025-01-10 without 2025-01-05 (see conftest.py).  The test breaks
from 2025-01-08 on and exits 125 (skip) on 2025-01-06, so the answer is 2025-01-08 with last good
2025-01-07, whatever the search tries on the way.
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

from tests.containers.conftest import APP, APP_DATES, BUSYBOX, Podman, needs_podman
from tests.containers.images import build_from

pytestmark = needs_podman

#: the app's test: needs MYVAR (given with --env), skips 01-06, fails from 01-08, writes a metric
TEST = r"""
[ "$MYVAR" = "two words" ] || { echo "MYVAR did not arrive: '$MYVAR'" >&2; exit 3; }
d=${APP_DATE##*-}; d=${d#0}
echo "{\"step\": $([ $d -ge 8 ] && echo 2.0 || echo 1.0)}" > "$SLEUTH_TRIAL_DIR/metrics.json"
[ "$d" -eq 6 ] && { echo "cannot test this one" >&2; exit 125; }
[ "$d" -ge 8 ] && { echo "AppError: broken on $APP_DATE" >&2; exit 1; }
exit 0
"""


def sleuth(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "sleuth", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def images(tmp_path: Path, *args: str, template: str = f"{APP}:{{date}}") -> subprocess.CompletedProcess[str]:
    return sleuth(tmp_path, "bisect", "images", "--runtime", "podman", "--template", template, "--flaky", "off",
                  "--env", "MYVAR=two words", "--json", "--output", "o", *args, "--", "sh", "-c", TEST)  # fmt: skip


def sub(tmp_path: Path, name: str) -> Path:
    """A directory of its own for a second run in one test."""
    (tmp_path / name).mkdir()
    return tmp_path / name


def doc(res: subprocess.CompletedProcess[str]) -> Any:
    assert res.stdout, res.stderr
    return json.loads(res.stdout)


def tag(day: str) -> str:
    return f"{APP}:{day}"


def test_eight_dated_tags_one_missing_one_skipped(podman: Podman, tmp_path: Path) -> None:
    res = images(tmp_path, "--start-date", "2025-01-01")  # --end-date: the newest tag
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert (d["first_bad"]["label"], d["last_good"]["label"]) == (tag("2025-01-08"), tag("2025-01-07"))
    assert d["candidates"] == len(APP_DATES) == 9  # listed: the missing date is no candidate
    assert tag("2025-01-05") not in d["evidence"]
    assert d["evidence"].get(tag("2025-01-06")) == {"skip": 1}, d["evidence"]  # exit 125: a skip
    assert tag("2025-01-06") in d["skipped"]
    run = tmp_path / d["run_dir"]
    # the symlinks point at the directories that hold the logs
    for link in ("first-bad", "last-good"):
        assert any((run / link).glob("run-*/stdout")), f"{link} -> {os.readlink(run / link)} holds no logs"
    # the metric file the test wrote lands in the trial dir and is read back
    results = [json.loads(p.read_text()) for p in run.glob("candidates/*/run-*/result.json")]
    assert results and all(r["metrics"].get("step") in (1.0, 2.0) for r in results if r.get("rc") in (0, 1))
    # sleuth.log keeps the whole line of every test, and the container names
    log = (run / "sleuth.log").read_text()
    assert f"{tag('2025-01-08')} FAIL" in log and "container sleuth-" in log
    assert podman.containers(run) == []


def test_no_start_date_gallops_back_over_listed_tags(podman: Podman, tmp_path: Path) -> None:
    res = images(tmp_path)
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert d["first_bad"]["label"] == tag("2025-01-08")
    phases = [json.loads(x) for x in (tmp_path / d["run_dir"] / "journal.jsonl").read_text().splitlines()]
    gallop = [e["label"] for e in phases if e.get("event") == "test" and e["phase"] == "gallop"]
    # 1, 2, 4, 8 days back from 01-10, each on an existing tag: 01-09, 01-08, 01-06 (skip), 01-02
    assert gallop == [tag("2025-01-09"), tag("2025-01-08"), tag("2025-01-06"), tag("2025-01-02")]
    run = tmp_path / d["run_dir"]
    assert any((run / "first-bad").glob("run-*/stdout"))  # tested in the gallop: the link follows


def test_skip_precondition_checks_does_not_test_the_end(podman: Podman, tmp_path: Path) -> None:
    res = images(tmp_path, "--skip-precondition-checks")
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert d["first_bad"]["label"] == tag("2025-01-08")
    assert tag("2025-01-10") not in d["evidence"]


def test_a_failing_start_date_steps_back(podman: Podman, tmp_path: Path) -> None:
    plain = images(sub(tmp_path, "plain"), "--start-date", "2025-01-09")
    assert plain.returncode == 3 and doc(plain)["status"] == "not_found"  # without --step-back
    res = images(tmp_path, "--start-date", "2025-01-09", "--step-back")
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert (d["first_bad"]["label"], d["last_good"]["label"]) == (tag("2025-01-08"), tag("2025-01-07"))


def test_step_back_from_a_start_date_without_a_tag(podman: Podman, tmp_path: Path) -> None:
    """The note said the start stepped to 01-04, but --step-back tested the missing 01-05 itself
    (a skip: not_found)."""
    res = images(tmp_path, "--start-date", "2025-01-05", "--end-date", "2025-01-10", "--step-back")
    assert res.returncode == 0, res.stderr
    assert "--start-date 2025-01-05: no such tag; the nearest existing date is 2025-01-04" in res.stderr
    d = doc(res)
    assert (d["first_bad"]["label"], d["last_good"]["label"]) == (tag("2025-01-08"), tag("2025-01-07"))
    assert tag("2025-01-05") not in d["evidence"]


def test_threshold_days_ends_the_date_search_early(podman: Podman, tmp_path: Path) -> None:
    full = doc(images(sub(tmp_path, "full"), "--start-date", "2025-01-01"))
    res = images(tmp_path, "--start-date", "2025-01-01", "--threshold-days", "3")
    assert res.returncode == 0, res.stderr
    d = doc(res)
    good, bad = (d[k]["label"].rsplit(":", 1)[1] for k in ("last_good", "first_bad"))
    assert good < "2025-01-08" <= bad  # the boundary is inside, the gap at most 3 days
    assert (int(bad[-2:]) - int(good[-2:])) <= 3
    assert d["candidates"] < full["candidates"]


def test_only_two_existing_dates_are_found(podman: Podman, tmp_path: Path) -> None:
    repo = "localhost/sleuth-test/sparse"
    for day in ("2025-02-01", "2025-02-20"):
        build_from(
            podman.env, f"{APP}:2025-01-01" if day < "2025-02-10" else f"{APP}:2025-01-09", f"{repo}:{day}"
        )
    res = images(
        tmp_path, "--start-date", "2025-01-25", "--end-date", "2025-02-25", template=f"{repo}:{{date}}"
    )
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert (d["first_bad"]["label"], d["last_good"]["label"]) == (f"{repo}:2025-02-20", f"{repo}:2025-02-01")
    assert d["tests"] == 2 and d["candidates"] == 2
    assert "nearest existing date is 2025-02-01" in res.stderr
    # without the listing every day is a candidate, and the given ends do not exist
    blind = images(tmp_path, "--start-date", "2025-01-25", "--end-date", "2025-02-25", "--no-tag-listing",
                   template=f"{repo}:{{date}}")  # fmt: skip
    assert blind.returncode == 3 and doc(blind)["status"] == "not_found"


def test_an_end_date_without_a_tag_steps_to_a_newer_one(podman: Podman, tmp_path: Path) -> None:
    """The end steps newer (a date after a failing image fails too), the start older; it stepped
    older, to a passing image (not_found, or a usage error), and without --start-date it tested the
    missing tag itself (a skip: not_found)."""
    repo = "localhost/sleuth-test/gap"
    for day, base in (("2025-02-01", "2025-01-01"), ("2025-02-20", "2025-01-09")):
        if podman.run("image", "exists", f"{repo}:{day}", check=False).returncode != 0:
            build_from(podman.env, f"{APP}:{base}", f"{repo}:{day}")
    for name, extra in (("dated", ("--start-date", "2025-01-25")), ("gallop", ())):
        res = images(sub(tmp_path, name), "--end-date", "2025-02-10", *extra, template=f"{repo}:{{date}}")
        assert res.returncode == 0, (name, res.stderr)
        d = doc(res)
        assert (d["first_bad"]["label"], d["last_good"]["label"]) == (
            f"{repo}:2025-02-20",
            f"{repo}:2025-02-01",
        )
        note = "--end-date 2025-02-10: no such tag; the nearest existing date is 2025-02-20"
        assert note in res.stderr
        assert f"{repo}:2025-02-10" not in d["evidence"]
        # sleuth.log keeps the notes and the image checks (docs/bisect.md says so; it had neither)
        log = (tmp_path / name / d["run_dir"] / "sleuth.log").read_text()
        assert f"note: {note}" in log and f"podman: image {repo}:2025-02-20 exists" in log


@pytest.mark.parametrize(
    ("template", "fmt"), [(f"{APP}-nothing:{{date}}", "%Y-%m-%d"), (f"{APP}:{{date}}", "%Y%m%d")]
)
def test_no_matching_tag_is_not_a_listing_failure(
    podman: Podman, tmp_path: Path, template: str, fmt: str
) -> None:
    """podman listed the tags and none matches: it said 'cannot list the tags of ... with podman'."""
    res = images(tmp_path, "--date-format", fmt, template=template)
    assert res.returncode == 2, res.stderr
    assert f"--end-date: podman lists no tag of {template} (with --date-format {fmt})" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "o").exists()


def test_performance_mode_reads_metrics_json_from_the_trial_dir(podman: Podman, tmp_path: Path) -> None:
    res = images(tmp_path, "--start-date", "2025-01-01", "--end-date", "2025-01-10", "--metric", "step",
                 "--threshold", "20")  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert d["first_bad"]["label"] == tag("2025-01-08")
    assert d["perf"]["bad_mean"] == 2.0 and d["perf"]["good_mean"] == 1.0


@pytest.mark.parametrize("case", ["registry", "service"])
def test_infrastructure_is_not_a_verdict(podman: Podman, tmp_path: Path, case: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    if case == "registry":  # nothing listens there: podman cannot reach the registry
        res = images(tmp_path, "--start-date", "2025-01-01", "--end-date", "2025-01-04", "--no-tag-listing",
                     template="127.0.0.1:9/nothing/app:{date}")  # fmt: skip
        said = "127.0.0.1:9"
    else:  # a podman service that is down
        monkeypatch.setenv("CONTAINER_HOST", f"unix://{tmp_path}/down.sock")
        res = images(tmp_path, "--start-date", "2025-01-01", "--end-date", "2025-01-04", "--no-tag-listing")
        said = "down.sock"
    assert res.returncode == 4, (res.returncode, res.stderr)
    assert said in res.stderr and "Traceback" not in res.stderr
    assert "podman" in res.stderr


def test_kill_9_mid_trial_then_resume_leaves_no_container(podman: Podman, tmp_path: Path) -> None:
    marker = tmp_path / "slept"
    marker.mkdir()
    # the first test of 01-08 hangs (PID 1 ignores SIGTERM); once resumed, it answers at once
    hang = ('[ "$APP_DATE" = 2025-01-08 ] && [ ! -e /m/once ] && { touch /m/once; trap "" TERM; '
            "while true; do sleep 1; done; }; d=${APP_DATE##*-}; d=${d#0}; [ $d -lt 8 ]")  # fmt: skip
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "sleuth", "bisect", "images", "--runtime", "podman", "--template", f"{APP}:{{date}}",
            "--start-date", "2025-01-07", "--end-date", "2025-01-08", "--flaky", "off", "--mount",
            f"{marker}:/m", "--output", "o", "--", "sh", "-c", hang]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (marker / "once").exists():
            time.sleep(0.2)
        assert (marker / "once").exists(), "the hanging test never started"
        time.sleep(1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    run = next((tmp_path / "o" / "bisect" / "images").iterdir())
    left = podman.containers(run)
    assert [c["state"] for c in left] == ["running"], left  # what a kill -9 leaves behind ...
    res = sleuth(tmp_path, "bisect", "resume", str(run), "--json")
    assert res.returncode == 0, res.stderr
    assert doc(res)["first_bad"]["label"] == tag("2025-01-08")
    assert podman.containers(run) == []  # ... and resume removed it
    assert not list(run.rglob(".sleuth-cleanup.json"))


def test_busybox_sanity(podman: Podman) -> None:
    assert podman.run("run", "--rm", BUSYBOX, "echo", "ok").stdout == "ok\n"
