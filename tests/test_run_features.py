"""``sleuth run`` as users of familiar tools expect it (issue 7): --until-fail, --warmup, report.md,
a metric typo stopped at the first trial, and output that reads well in a log."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

PY = sys.executable

#: fails (exit 1, a traceback) on the trial ids listed in $FAILS; prints a metric
FAILS_ON = (
    "import os, sys; i = os.environ['SLEUTH_TRIAL_ID']; print(f'step_ms={int(i) * 10}'); "
    "sys.exit('ValueError: loss is nan') if i in os.environ.get('FAILS', '').split() else None"
)


def _rd(doc: dict) -> Path:
    return Path(doc["run_dir"])


def test_until_fail_stops_at_the_first_failure_and_says_where_its_logs_are(sleuth) -> None:
    res = sleuth(
        "run", "--until-fail", "--max-trials", "50", "--", PY, "-c", FAILS_ON, env={"FAILS": "0004 0009"}
    )
    assert res.rc == 1, res.stderr
    m = re.search(r"reproduced: trial 0004 failed after 4 trial\(s\)", res.stdout)
    assert m, res.stdout
    logs = re.findall(r"(/\S+/trials/0004/(?:stdout|stderr))$", res.stdout, re.M)
    assert len(logs) == 2, res.stdout
    assert "loss is nan" in Path(logs[1]).read_text()
    rd = Path(logs[0]).parents[2]
    assert sorted(p.name for p in (rd / "trials").iterdir()) == ["0001", "0002", "0003", "0004"]
    s = json.loads((rd / "summary.json").read_text())["summary"]
    assert s["until_fail"] == {
        "max_trials": 50,
        "reproduced": True,
        "first_fail": "0004",
        "logs": logs,
    }
    assert (s["trials"], s["fail"], s["planned"]) == (4, 1, 50) and "interrupted" not in s


def test_until_fail_not_reproduced_states_the_upper_bound(sleuth) -> None:
    res = sleuth("run", "--until-fail", "--max-trials", "20", "--json", "--", "true")
    assert res.rc == 0, res.stderr
    uf = res.json()["summary"]["until_fail"]
    assert uf["reproduced"] is False and uf["upper_bound"] == pytest.approx(1 - 0.05 ** (1 / 20))
    human = sleuth("run", "--until-fail", "--max-trials", "20", "--", "true")
    assert human.rc == 0
    assert "not reproduced: 20 of 20 trial(s) passed; failure rate < 14% (95% upper bound)" in human.stdout


def test_until_fail_in_parallel_leaves_no_half_run_trial(sleuth) -> None:
    script = "import os, sys, time; i = int(os.environ['SLEUTH_TRIAL_ID']); time.sleep(0 if i == 2 else 0.5); sys.exit(i == 2)"
    res = sleuth("run", "--until-fail", "--max-trials", "40", "-j", "4", "--json", "--", PY, "-c", script)
    assert res.rc == 1, res.stderr
    doc = res.json()
    assert doc["summary"]["until_fail"]["first_fail"] == "0002"
    rd = _rd(doc)
    dirs = sorted(p.name for p in (rd / "trials").iterdir())
    assert all((rd / "trials" / d / "result.json").is_file() for d in dirs), dirs
    assert [t["id"] for t in doc["trials"]] == dirs
    assert len(dirs) < 40


def test_warmup_trials_run_first_and_are_not_counted(sleuth) -> None:
    # warm-up trials fail and report a huge metric: neither may reach the statistics
    script = (
        "import os, sys; w = '/warmup/' in os.environ['SLEUTH_TRIAL_DIR']; "
        "print('step_ms=', 1000 if w else 1); sys.exit(1 if w else 0)"
    )
    res = sleuth(
        "run",
        "-n",
        "3",
        "--warmup",
        "2",
        "-j",
        "2",
        "--json",
        "--metric",
        r"step=step_ms= (\d+)",
        "--",
        PY,
        "-c",
        script,
    )
    assert res.rc == 0, res.stderr
    doc = res.json()
    s = doc["summary"]
    assert (s["trials"], s["pass"], s["fail"]) == (3, 3, 0)
    assert s["metrics"]["step"]["max"] == 1 and s["metrics"]["step"]["n"] == 3
    assert s["warmup"] == {"trials": 2, "pass": 0, "fail": 2, "skip": 0, "error": 0, "planned": 2}
    rd = _rd(doc)
    assert sorted(p.name for p in (rd / "warmup").iterdir()) == ["w0001", "w0002"]
    events = [json.loads(x) for x in (rd / "journal.jsonl").read_text().splitlines()]
    warm = [e for e in events if e["event"] == "trial" and e["subdir"] == "warmup"]
    counted = [e for e in events if e["event"] == "trial" and e["subdir"] == "trials"]
    assert len(warm) == 2 and all(e["warmup"] is True for e in warm) and len(counted) == 3
    last_warm_end = max(e["trial"]["started_at"] + e["trial"]["wall_s"] for e in warm)
    assert all(e["trial"]["started_at"] >= last_warm_end for e in counted), (
        "a counted trial started during warm-up"
    )
    assert [t["id"] for t in doc["warmup_trials"]] == ["w0001", "w0002"]


def test_report_md_has_command_counts_interval_statistics_signatures_and_trials(
    sleuth, tmp_path: Path
) -> None:
    res = sleuth(
        "run",
        "-n",
        "6",
        "--json",
        "--metric",
        r"step=step_ms=(\d+)",
        "--",
        PY,
        "-c",
        FAILS_ON,
        env={"FAILS": "0002 0005"},
    )
    assert res.rc == 1
    rd = _rd(res.json())
    report = (rd / "report.md").read_text()
    assert f"| command | `{PY} -c " in report
    assert "| host |" in report and "Python" in report
    assert "**2 of 6 trial(s) failed**" in report
    assert "failure rate: 33.3% [95% CI" in report
    assert re.search(r"\| step \| 6 \| 35 \| 55 \| 10 \| 60 \|", report), report
    assert "| 2 | 0002 | exit 1: ValueError: loss is nan |" in report
    rows = [line for line in report.splitlines() if re.match(r"\| 000\d \|", line)]
    assert [r.split("|")[1].strip() for r in rows] == [f"000{i}" for i in range(1, 7)]
    assert "| 0005 | FAIL | 1 |" in report


def test_report_md_of_many_trials_lists_the_failing_ones(sleuth) -> None:
    res = sleuth("run", "-n", "60", "-j", "2", "--json", "--", "sh", "-c", '[ "$SLEUTH_TRIAL_ID" != 0033 ]')
    assert res.rc == 1
    report = (_rd(res.json()) / "report.md").read_text()
    assert "## Failing trials (1 of 1 shown)" in report
    rows = [line for line in report.splitlines() if re.match(r"\| 00\d\d \|", line)]
    assert len(rows) == 1 and rows[0].startswith("| 0033 | FAIL |")


def test_a_threshold_on_a_metric_no_trial_produces_stops_after_the_first_trial(
    sleuth, tmp_path: Path
) -> None:
    res = sleuth(
        "run",
        "-n",
        "5",
        "--metric",
        r"step=step_ms=(\d+)",
        "--fail-above",
        "nope=3",
        "--",
        PY,
        "-c",
        FAILS_ON,
    )
    assert res.rc == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert "--fail-above nope: no trial produced a metric 'nope'; metrics seen: step" in lines[0]
    (rd,) = (tmp_path / "runs" / "run").glob("*/*")
    events = [json.loads(x) for x in (rd / "journal.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "trial", "stopped", "end"]
    assert "nope" in events[2]["reason"]
    assert sorted(p.name for p in (rd / "trials").iterdir()) == ["0001"]
    again = sleuth("run", "--resume", rd)
    assert again.rc == 2 and "already finished" in again.stderr


def test_a_metric_regex_that_never_matches_stops_after_the_first_trial(sleuth) -> None:
    res = sleuth("run", "-n", "5", "--json", "--metric", r"a=no such line (\d+)", "--", PY, "-c", FAILS_ON)
    assert res.rc == 2
    assert "--metric a: no trial produced a metric 'a'; metrics seen: none" in res.stderr
    assert res.json()["summary"]["trials"] == 1


def test_metrics_from_metrics_json_count_as_produced(sleuth) -> None:
    script = (
        "import json, os; json.dump({'loss': 0.5}, "
        "open(os.path.join(os.environ['SLEUTH_TRIAL_DIR'], 'metrics.json'), 'w'))"
    )
    res = sleuth("run", "-n", "3", "--json", "--fail-above", "loss=1", "--", PY, "-c", script)
    assert res.rc == 0, res.stderr
    assert res.json()["summary"]["trials"] == 3


def test_the_metric_check_waits_for_a_trial_that_ran_to_completion(sleuth) -> None:
    """A crash before the metric is printed says nothing about a typo."""
    script = (
        "import os, sys; i = os.environ['SLEUTH_TRIAL_ID']; sys.exit(3) if i == '0001' else print('loss=0.5')"
    )
    res = sleuth("run", "-n", "3", "--json", "--metric", r"loss=loss=([0-9.]+)", "--", PY, "-c", script)
    assert res.rc == 1, res.stderr
    assert res.json()["summary"]["trials"] == 3


def test_piped_output_keeps_long_lines_whole(sleuth, tmp_path: Path) -> None:
    out = tmp_path / ("o" * 120) / ("p" * 120)
    res = sleuth(
        "run",
        "-n",
        "2",
        "--output",
        out,
        "--",
        PY,
        "-c",
        "print('x')",
        env={"COLUMNS": "", "SLEUTH_PROGRESS_INTERVAL": "0"},
    )
    assert res.rc == 0, res.stderr
    (rd,) = (out / "run").glob("*/*")
    lines = res.stdout.splitlines()
    assert any(line.startswith("sleuth run ") and line.endswith(f"-> {rd}") for line in lines), res.stdout
    assert any(line.split() == ["run", "dir", str(rd)] for line in lines), res.stdout
    assert any(line.split() == ["report", str(rd / "report.md")] for line in lines), res.stdout
    assert not any(line.strip() == "run dir" or line.rstrip().endswith("->") for line in lines)


@pytest.mark.parametrize("color", [{}, {"FORCE_COLOR": "1"}], ids=["plain", "force-color"])
def test_piped_output_shows_a_heartbeat(sleuth, color: dict[str, str]) -> None:
    """FORCE_COLOR (set in many CI jobs) makes rich call a pipe a terminal: the log got every redraw
    of the bar and no heartbeat line."""
    res = sleuth(
        "run",
        "-n",
        "3",
        "--",
        PY,
        "-c",
        "import time; time.sleep(0.4)",
        env={"SLEUTH_PROGRESS_INTERVAL": "0.2", **color},
    )
    assert res.rc == 0
    assert re.search(r"^trials \d/3 \(\d+%\), 0:0\d elapsed$", res.stdout, re.M), res.stdout
    assert "\r" not in res.stdout


def test_no_counted_trial_starts_before_every_warm_up_has_ended(sleuth, tmp_path: Path) -> None:
    # four slots, two slow warm-ups: the counted trials wait for both, though slots are free
    log = tmp_path / "order.log"
    script = (
        "import os, sys, time; t = os.environ['SLEUTH_TRIAL_ID']; f = open(sys.argv[1], 'a'); "
        "f.write('start ' + t + '\\n'); f.flush(); time.sleep(0.3 if t.startswith('w') else 0); "
        "f.write('end ' + t + '\\n')"
    )
    res = sleuth("run", "-n", "3", "--warmup", "2", "-j", "4", "--json", "--", PY, "-c", script, str(log))
    assert res.rc == 0, res.stderr
    lines = log.read_text().splitlines()
    assert len(lines) == 10, lines
    last_warm_end = max(i for i, ln in enumerate(lines) if ln.startswith("end w"))
    first_counted = min(i for i, ln in enumerate(lines) if ln.startswith("start 0"))
    assert last_warm_end < first_counted, lines


def test_warm_ups_that_skip_say_so_in_the_summary_and_report(sleuth, tmp_path: Path) -> None:
    """Warm-ups that were SKIPs (or ERRORs) read "0 pass  0 fail": as if none had run."""
    code = "import os, sys; sys.exit(3 if os.environ['SLEUTH_TRIAL_ID'].startswith('w') else 0)"
    res = sleuth("run", "-n", "1", "--warmup", "2", "--skip-exit", "3", "--", PY, "-c", code)
    assert res.rc == 0, res.stderr
    assert "not counted: 0 pass  0 fail  2 skip" in res.stdout
    (report,) = (tmp_path / "runs").glob("run/*/*/report.md")
    assert "not counted (0 pass, 0 fail, 2 skip)" in report.read_text()
