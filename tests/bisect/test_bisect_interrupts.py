"""A Ctrl-C at any moment of ``sleuth bisect``: exit 130, one line, a resumable run dir or none at all.

The moments between the tests (the run dir being journaled, the driver being built, the report being
written) are too short to hit with a timer, so the program (``python -m sleuth``, in its own process)
sends itself a real SIGINT from inside the step named; what happens next is the program's own.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sleuth.bisect.report_md import name_suspects
from tests.bisect.test_bisect_cli import doc, sleuth
from tests.bisect.test_bisect_perf import WORKLOAD
from tests.report.conftest import parse
from tests.signals import sleuth_proc

#: run sleuth as its console script does, with SIGINT sent to itself at one moment (argv[1])
PROGRAM = """
import os, signal, sys
import sleuth.bisect.driver, sleuth.bisect.report, sleuth.journal

def interrupting(owner, name, when=lambda *a, **k: True, sig=signal.SIGINT):
    original = getattr(owner, name)
    def step(*args, **kwargs):
        if name == "write_outputs":  # part of the report is on disk when the Ctrl-C comes
            args[0].run_dir.write_json("summary.json", args[1])
        elif name == "append":
            original(*args, **kwargs)
        if when(*args, **kwargs):
            os.kill(os.getpid(), sig)
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
elif moment == "killed":  # kill -9 while the report is written: every test journaled, no end
    interrupting(sleuth.bisect.report, "write_outputs", sig=signal.SIGKILL)
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a shell, even under nohup
from sleuth.cli import main
sys.exit(main())
"""

TEST = '[ "$SLEUTH_CANDIDATE" -lt 5 ] || { echo "AssertionError: bug" >&2; exit 1; }'


def _interrupted(tmp_path: Path, moment: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(8)))
    argv = ["bisect", "list", "l.txt", "--flaky", "off", "--output", "o", "--", *(cmd or ("sh", "-c", TEST))]
    return _program(tmp_path, moment, *argv)


def _program(tmp_path: Path, moment: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``sleuth ARGV`` with SIGINT sent to itself at ``moment`` (see :data:`PROGRAM`)."""
    return subprocess.run([sys.executable, "-c", PROGRAM, moment, *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache")})  # fmt: skip


def _headline(run_dir: Path, cwd: Path) -> str:
    """The headline of the page ``sleuth report RUN_DIR`` makes (it must make one)."""
    made = subprocess.run([sys.executable, "-m", "sleuth", "report", str(run_dir)], cwd=cwd,
                          env={**os.environ, "SLEUTH_CACHE": str(cwd / "cache")}, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert made.returncode == 0, made.stderr
    return " ".join(parse((run_dir / "report.html").read_text()).by_id["headline"]).strip()


@pytest.mark.parametrize("moment", ["driver", "twice"])
def test_a_ctrl_c_while_the_driver_is_built_leaves_an_interrupted_summary_and_resumes(
    tmp_path: Path, moment: str
) -> None:
    """Before, a stop before the search started (the driver being built) left no summary.json and no
    report.md: now they say what is known (no tests, the whole range) and the command that goes on."""
    res = _interrupted(tmp_path, moment)
    assert res.returncode == 130, res.stderr
    assert "Traceback" not in res.stderr
    (run_dir,) = (tmp_path / "o" / "bisect" / "list").iterdir()
    last = res.stderr.strip().splitlines()[-1]
    assert last == f"error: interrupted; resume with: sleuth bisect resume {run_dir}", res.stderr
    assert res.stderr.count("interrupted") == 1
    events = [json.loads(line)["event"] for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert events[-1] == "interrupted" and "end" not in events
    s = json.loads((run_dir / "summary.json").read_text())
    assert (s["status"], s["tests"], s["candidates"], s["confidence"]) == ("interrupted", 0, 8, None), s
    assert (s["last_good"]["label"], s["first_bad"]["label"]) == ("0", "7")  # nothing narrowed it yet
    assert s["suspects"] == [str(i) for i in range(1, 8)] and s["evidence"] == {}
    assert s["resume"] == f"sleuth bisect resume {run_dir}"
    assert "no search under way, so the bracket is the whole range" in s["note"] and s["resume"] in s["note"]
    assert (run_dir / "report.md").read_text().startswith("# sleuth bisect list: interrupted\n")
    assert _headline(run_dir, tmp_path).startswith(
        "interrupted after 0 test(s); so far the first bad is one of"
    )
    d = doc(sleuth("bisect", "resume", str(run_dir), "--json", cwd=tmp_path))
    assert (d["status"], d["first_bad"]["label"], d["last_good"]["label"]) == ("found", "5", "4")
    assert (run_dir / "report.md").read_text().startswith("# sleuth bisect list: found\n")


def test_a_ctrl_c_while_the_report_is_written_finishes_it_then_exits_130(tmp_path: Path) -> None:
    """Before, a stop while the final files were written left the answer's summary.json beside no
    report.md (or an older one), no links and no ``end``: now they are all written, then sleuth
    stops (130), and the resume prints the answer without testing again."""
    res = _interrupted(tmp_path, "report")
    assert res.returncode == 130, res.stderr
    assert "Traceback" not in res.stderr
    (run_dir,) = (tmp_path / "o" / "bisect" / "list").iterdir()
    last = res.stderr.strip().splitlines()[-1]
    assert last == f"error: interrupted; resume with: sleuth bisect resume {run_dir}", res.stderr
    events = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "end" and "interrupted" not in [e["event"] for e in events]
    s = json.loads((run_dir / "summary.json").read_text())
    assert s == events[-1]["summary"] and (s["status"], s["first_bad"]["label"]) == ("found", "5")
    assert (run_dir / "report.md").read_text().startswith("# sleuth bisect list: found\n")
    assert os.readlink(run_dir / "first-bad") == s["first_bad"]["dir"]
    assert _headline(run_dir, tmp_path).startswith("first bad 5 (last good 4)")
    tested = sorted(run_dir.glob("candidates/*/run-*"))
    d = doc(sleuth("bisect", "resume", str(run_dir), "--json", cwd=tmp_path))
    assert d == s and sorted(run_dir.glob("candidates/*/run-*")) == tested


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


def nth_waits(n: int, test: str) -> str:
    """A shell test whose ``n``-th run tells the test that it started (FIFO ``started``) and waits
    (FIFO ``gate``) before it runs ``test``; made regular files, they let every run through."""
    return ('echo "$SLEUTH_CANDIDATE" >> seen; '
            f'if [ "$(wc -l < seen)" -eq {n} ]; then echo "$SLEUTH_CANDIDATE" > started; cat gate >/dev/null; fi; '
            + test)  # fmt: skip


#: the fourth test waits; candidates from 11 on fail
FOURTH_WAITS = nth_waits(4, '[ "$SLEUTH_CANDIDATE" -lt 11 ] || { echo "AssertionError: bug" >&2; exit 1; }')


def _stopped_while_a_test_waits(tmp_path: Path, env: dict[str, str], argv: list[str],
                                sig: signal.Signals = signal.SIGINT) -> tuple[str, str, str]:  # fmt: skip
    """``sleuth ARGV`` stopped by ``sig`` while the test of :func:`nth_waits` waits: the candidate
    it waited in, stdout, stderr; the gates then let every later run through."""
    for fifo in ("started", "gate"):
        os.mkfifo(tmp_path / fifo)
    with sleuth_proc(argv, env, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True) as proc:  # fmt: skip
        waiting = (tmp_path / "started").read_text().strip()  # the test waits now
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    for fifo in ("started", "gate"):
        (tmp_path / fifo).unlink()
        (tmp_path / fifo).write_text("")
    return waiting, out, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_during_a_test_writes_an_interrupted_summary_that_the_resume_replaces(
    tmp_path: Path, sleuth_env: dict[str, str], sig: signal.Signals
) -> None:
    """Before, the run dir of a bisection stopped during its tests had no summary.json and no report.md."""
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(16)))
    argv = ["bisect", "list", "l.txt", "--flaky", "off", "--", "sh", "-c", FOURTH_WAITS]
    waiting, _, err = _stopped_while_a_test_waits(tmp_path, sleuth_env, argv, sig)
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
    head = _headline(run_dir, tmp_path)
    assert head == (f"interrupted after 3 test(s); so far the first bad is one of: "
                    f"{name_suspects(s['suspects'])}; resume with: {s['resume']}"), head  # fmt: skip
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
    token = "ghp_" + "Z" * 36
    argv = ["bisect", "list", "l.txt", "--flaky", "off", "--json", "--env", f"GH_TOKEN={token}", "--",
            "sh", "-c", FOURTH_WAITS]  # fmt: skip
    _, out, err = _stopped_while_a_test_waits(tmp_path, sleuth_env, argv)
    printed = json.loads(out)
    (run_dir,) = (tmp_path / "runs" / "bisect" / "list").iterdir()
    assert printed == json.loads((run_dir / "summary.json").read_text())
    assert (printed["status"], printed["tests"]) == ("interrupted", 3)
    assert printed["resume"] == f"sleuth bisect resume {run_dir}"
    assert token not in out and token not in err


def test_a_resume_stopped_while_its_driver_is_built_keeps_the_journaled_tests(
    tmp_path: Path, sleuth_env: dict[str, str]
) -> None:
    """A resume stopped before its search started (the journal's tests being read back) wrote no
    summary (after a kill -9 there was none; else an older stop's stayed).  Now the summary counts
    the journaled tests, names the whole range (no search under way) and the resume goes on."""
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(16)))
    argv = ["bisect", "list", "l.txt", "--flaky", "off", "--output", "o", "--", "sh", "-c", FOURTH_WAITS]
    _stopped_while_a_test_waits(tmp_path, sleuth_env, argv)
    (run_dir,) = (tmp_path / "o" / "bisect" / "list").iterdir()
    (run_dir / "summary.json").unlink()  # as after a kill -9: the journal alone has the tests
    res = _program(tmp_path, "driver", "bisect", "resume", str(run_dir))
    assert res.returncode == 130 and "Traceback" not in res.stderr, res.stderr
    assert (
        res.stderr.strip().splitlines()[-1]
        == f"error: interrupted; resume with: sleuth bisect resume {run_dir}"
    )
    s = json.loads((run_dir / "summary.json").read_text())
    assert (s["status"], s["tests"], s["candidates"]) == ("interrupted", 3, 16), s
    assert sum(sum(v.values()) for v in s["evidence"].values()) == 3
    assert (s["last_good"]["label"], s["first_bad"]["label"], len(s["suspects"])) == ("0", "15", 15)
    assert "with no search under way" in s["note"] and "resumed" not in s
    report = (run_dir / "report.md").read_text()
    assert report.startswith("# sleuth bisect list: interrupted\n")
    assert len([ln for ln in report.splitlines() if re.match(r"\| \d+ \|", ln)]) == 3  # the tests table
    assert _headline(run_dir, tmp_path).startswith("interrupted after 3 test(s)")
    d = doc(sleuth("bisect", "resume", str(run_dir), "--json", cwd=tmp_path))
    assert (d["status"], d["first_bad"]["label"], d["resumed"]["replayed"]) == ("found", "11", 3)


def test_a_performance_search_stopped_midway_names_its_bracket(
    tmp_path: Path, sleuth_env: dict[str, str]
) -> None:
    """Before, an interrupted performance search's summary had no bracket (``suspects`` empty, the
    candidates it had measured "sampled"): now the bracket runs from the last candidate classified
    good to the first classified bad, and the report's decisions say the same."""
    (tmp_path / "builds.txt").write_text("\n".join(f"b{i}" for i in range(1, 41)) + "\n")
    (tmp_path / "w.py").write_text(WORKLOAD)  # a 30% step at b27 under 3% noise, seeded per run
    env = {**sleuth_env, "SEED": "1", "STEP": "27", "RISE": "0.3", "COUNT": str(tmp_path / "count")}
    argv = ["bisect", "list", "builds.txt", "--metric", r"t=step_time=([0-9.]+)", "--metric", "t",
            "--threshold", "3", "--json", "--output", "o", "--", "sh", "-c",
            nth_waits(23, f"exec {shlex.quote(sys.executable)} w.py")]  # fmt: skip
    _, out, _ = _stopped_while_a_test_waits(tmp_path, env, argv)
    (run_dir,) = (tmp_path / "o" / "bisect" / "list").iterdir()
    s = json.loads((run_dir / "summary.json").read_text())
    assert json.loads(out) == s and (s["status"], s["tests"]) == ("interrupted", 22)
    lo, hi = s["last_good"]["index"], s["first_bad"]["index"]
    assert 0 < lo < 26 < hi < 39, s  # narrower than the range, the step (b27, index 26) inside it
    assert s["suspects"] == [f"b{i + 1}" for i in range(lo + 1, hi + 1)]
    rows = {r["label"]: r["decision"] for r in s["perf"]["candidates"]}
    assert (rows[s["last_good"]["label"]], rows[s["first_bad"]["label"]]) == ("good", "bad"), rows
    between = [r for r in s["perf"]["candidates"] if lo < r["index"] < hi]
    assert all(r["decision"] not in ("good", "bad") for r in between), between
    report = (run_dir / "report.md").read_text()
    assert f"So far the first bad is one of: {name_suspects([f'`{x}`' for x in s['suspects']])}." in report
    assert _headline(run_dir, tmp_path).startswith(
        f"interrupted after 22 test(s); so far the first bad is one of: {name_suspects(s['suspects'])}"
    )
    res = subprocess.run([sys.executable, "-m", "sleuth", "bisect", "resume", str(run_dir), "--json"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    d = doc(res)
    assert (d["status"], d["first_bad"]["label"], d["resumed"]["replayed"]) == ("found", "b27", 22)
