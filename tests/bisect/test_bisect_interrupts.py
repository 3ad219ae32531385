"""A Ctrl-C at any moment of ``sleuth bisect``: exit 130, one line, a resumable run dir or none at all.

The moments between the tests (the run dir being journaled, the driver being built, the report being
written) are too short to hit with a timer, so the program (``python -m sleuth``, in its own process)
sends itself a real SIGINT from inside the step named; what happens next is the program's own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sleuth.bisect.report_md import name_suspects
from tests.bisect.test_bisect_cli import doc, sleuth
from tests.report.conftest import parse
from tests.signals import sleuth_proc

#: run sleuth as its console script does, with SIGINT sent to itself at one moment (argv[1])
PROGRAM = """
import os, signal, sys
import sleuth.bisect.driver, sleuth.bisect.report, sleuth.journal

def interrupting(owner, name, when=lambda *a, **k: True):
    original = getattr(owner, name)
    def step(*args, **kwargs):
        if name == "write_outputs":  # part of the report is on disk when the Ctrl-C comes
            args[0].run_dir.write_json("summary.json", args[1])
        elif name == "append":
            original(*args, **kwargs)
        if when(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
        if name != "append":
            return original(*args, **kwargs)
    setattr(owner, name, step)

moment = sys.argv.pop(1)
if moment == "journaling":
    interrupting(sleuth.journal.Journal, "append", lambda self, event, **kw: event == "candidates")
elif moment in ("driver", "twice"):
    interrupting(sleuth.bisect.driver.Driver, "__init__")
    if moment == "twice":  # the second Ctrl-C comes while the first one's stopping runs
        import sleuth.runner
        interrupting(sleuth.runner, "kill_all")
elif moment == "report":
    interrupting(sleuth.bisect.report, "write_outputs")
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a shell, even under nohup
from sleuth.cli import main
sys.exit(main())
"""

TEST = '[ "$SLEUTH_CANDIDATE" -lt 5 ] || { echo "AssertionError: bug" >&2; exit 1; }'


def _interrupted(tmp_path: Path, moment: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(8)))
    argv = ["bisect", "list", "l.txt", "--flaky", "off", "--output", "o", "--", *(cmd or ("sh", "-c", TEST))]
    return subprocess.run([sys.executable, "-c", PROGRAM, moment, *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache")})  # fmt: skip


@pytest.mark.parametrize("moment", ["driver", "report", "twice"])
def test_a_ctrl_c_between_the_tests_names_the_resume_and_the_run_resumes(tmp_path: Path, moment: str) -> None:
    res = _interrupted(tmp_path, moment)
    assert res.returncode == 130, res.stderr
    assert "Traceback" not in res.stderr
    (run_dir,) = (tmp_path / "o" / "bisect" / "list").iterdir()
    last = res.stderr.strip().splitlines()[-1]
    assert last == f"error: interrupted; resume with: sleuth bisect resume {run_dir}", res.stderr
    assert res.stderr.count("interrupted") == 1
    events = [json.loads(line)["event"] for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert events[-1] == "interrupted" and "end" not in events
    d = doc(sleuth("bisect", "resume", str(run_dir), "--json", cwd=tmp_path))
    assert (d["status"], d["first_bad"]["label"], d["last_good"]["label"]) == ("found", "5", "4")
    assert (run_dir / "report.md").is_file()


def test_a_ctrl_c_before_the_run_is_journaled_leaves_no_run_dir(tmp_path: Path) -> None:
    res = _interrupted(tmp_path, "journaling")
    assert res.returncode == 130, res.stderr
    assert res.stderr.strip() == "interrupted", res.stderr
    assert not (tmp_path / "o" / "bisect").exists()  # nothing ran, so there is nothing to resume


def test_a_resume_from_another_directory_runs_the_tests_where_the_run_started(tmp_path: Path) -> None:
    (tmp_path / "t.sh").write_text('#!/bin/sh\npwd > "$SLEUTH_TRIAL_DIR/where"\n' + TEST + "\n")
    (tmp_path / "t.sh").chmod(0o755)
    assert _interrupted(tmp_path, "driver", "./t.sh").returncode == 130  # journaled, nothing tested
    (run_dir,) = (tmp_path / "o" / "bisect" / "list").iterdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    d = doc(sleuth("bisect", "resume", str(run_dir), "--json", cwd=elsewhere))
    assert (d["status"], d["first_bad"]["label"]) == ("found", "5"), d["note"]
    ran = {p.read_text().strip() for p in run_dir.glob("candidates/*/run-*/where")}
    assert ran == {str(tmp_path)}, ran


def test_a_resume_where_the_start_directory_is_gone_runs_where_it_is(tmp_path: Path) -> None:
    start = tmp_path / "start"  # another machine: the directory the run started in is not there
    start.mkdir()
    probe = 'pwd > "$SLEUTH_TRIAL_DIR/where"; ' + TEST
    assert _interrupted(start, "driver", "sh", "-c", probe).returncode == 130
    (run_dir,) = (start / "o" / "bisect" / "list").iterdir()
    moved = tmp_path / "moved"
    start.rename(moved)
    run_dir = moved / run_dir.relative_to(start)
    d = doc(sleuth("bisect", "resume", str(run_dir), "--json", cwd=moved))
    assert (d["status"], d["first_bad"]["label"]) == ("found", "5"), d["note"]
    assert {p.read_text().strip() for p in run_dir.glob("candidates/*/run-*/where")} == {str(moved)}


#: the fourth test tells the test that it started (FIFO ``started``) and waits (FIFO ``gate``)
FOURTH_WAITS = (
    'echo "$SLEUTH_CANDIDATE" >> seen; '
    'if [ "$(wc -l < seen)" -eq 4 ]; then echo "$SLEUTH_CANDIDATE" > started; cat gate >/dev/null; fi; '
    '[ "$SLEUTH_CANDIDATE" -lt 11 ] || { echo "AssertionError: bug" >&2; exit 1; }'
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_during_a_test_writes_an_interrupted_summary_that_the_resume_replaces(
    tmp_path: Path, sleuth_env: dict[str, str], sig: signal.Signals
) -> None:
    """Before, the run dir of a bisection stopped during its tests had no summary.json and no report.md."""
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(16)))
    for fifo in ("started", "gate"):
        os.mkfifo(tmp_path / fifo)
    argv = ["bisect", "list", "l.txt", "--flaky", "off", "--", "sh", "-c", FOURTH_WAITS]
    with sleuth_proc(argv, sleuth_env, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                     text=True) as proc:  # fmt: skip
        waiting = (tmp_path / "started").read_text().strip()  # the fourth test runs now
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    (run_dir,) = (tmp_path / "runs" / "bisect" / "list").iterdir()
    assert err.strip().splitlines()[-1] == f"error: interrupted; resume with: sleuth bisect resume {run_dir}"
    events = [json.loads(line)["event"] for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert events[-1] == "interrupted" and "end" not in events
    s = json.loads((run_dir / "summary.json").read_text())
    assert (s["status"], s["tests"], s["confidence"], s["strategy"]) == (
        "interrupted",
        3,
        None,
        "Bisection",
    ), s
    assert s["resume"] == f"sleuth bisect resume {run_dir}" and s["resume"] in s["note"]
    assert s["command"]["argv"] == ["sh", "-c", FOURTH_WAITS]
    assert sum(sum(v.values()) for v in s["evidence"].values()) == 3 and waiting not in s["evidence"]
    lo, hi = int(s["last_good"]["label"]), int(s["first_bad"]["label"])  # the bracket of the search
    assert s["suspects"] == [str(i) for i in range(lo + 1, hi + 1)] and lo < 11 <= hi and hi - lo < 15, s
    assert waiting in s["suspects"]  # the test stopped was a probe inside the bracket
    report = (run_dir / "report.md").read_text()
    assert report.startswith("# sleuth bisect list: interrupted\n") and s["resume"] in report
    assert not (run_dir / "first-bad").exists() and not (run_dir / "last-good").exists()
    # sleuth report reads it: the bracket and the resume command in the headline
    made = subprocess.run([sys.executable, "-m", "sleuth", "report", str(run_dir)], cwd=tmp_path,
                          env=sleuth_env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert made.returncode == 0, made.stderr
    head = " ".join(parse((run_dir / "report.html").read_text()).by_id["headline"]).strip()
    assert head == (f"interrupted after 3 test(s); so far the first bad is one of: "
                    f"{name_suspects(s['suspects'])}; resume with: {s['resume']}"), head  # fmt: skip
    for fifo in ("started", "gate"):  # the resume's fourth test does not wait
        (tmp_path / fifo).unlink()
        (tmp_path / fifo).write_text("")
    d = doc(sleuth("bisect", "resume", str(run_dir), "--json", cwd=tmp_path))
    assert (d["status"], d["first_bad"]["label"], d["last_good"]["label"]) == ("found", "11", "10")
    assert d["resumed"]["replayed"] == 3
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "found"
    assert (run_dir / "report.md").read_text().startswith("# sleuth bisect list: found\n")
    assert os.readlink(run_dir / "first-bad") == d["first_bad"]["dir"]


def test_an_interrupted_json_bisection_prints_its_interrupted_document(
    tmp_path: Path, sleuth_env: dict[str, str]
) -> None:
    """``--json`` stopped during a test: stdout holds the interrupted summary (as ``run --json`` holds
    its partial one), the same document as summary.json, secrets hidden; it printed nothing."""
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(16)))
    for fifo in ("started", "gate"):
        os.mkfifo(tmp_path / fifo)
    token = "ghp_" + "Z" * 36
    argv = ["bisect", "list", "l.txt", "--flaky", "off", "--json", "--env", f"GH_TOKEN={token}", "--",
            "sh", "-c", FOURTH_WAITS]  # fmt: skip
    with sleuth_proc(argv, sleuth_env, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True) as proc:  # fmt: skip
        (tmp_path / "started").read_text()  # the fourth test runs now
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    printed = json.loads(out)
    (run_dir,) = (tmp_path / "runs" / "bisect" / "list").iterdir()
    assert printed == json.loads((run_dir / "summary.json").read_text())
    assert (printed["status"], printed["tests"]) == ("interrupted", 3)
    assert printed["resume"] == f"sleuth bisect resume {run_dir}"
    assert token not in out and token not in err
