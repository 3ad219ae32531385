"""The journal's ``baseline`` and ``candidate`` events carry the values each step tried, scrubbed and
cut short, so ``sleuth report`` on a reduction still running (or killed: no trace, no summary) shows
them; a journal from before they were journaled still resumes and still has a page."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.reduce.conftest import doc, env_with_path
from tests.reduce.test_interrupt import _wait_for
from tests.reduce.test_resume import journal_trials
from tests.report.conftest import visible_text
from tests.signals import sleuth_proc

TOKEN = "hf_PlantedTokenValue0123456789"
#: --scrub sekrit-[0-9a-f]{8} hides them; the second straddles the cut of a journaled value (at 200
#: characters, sleuth.reduce.journaled.VALUE_CHARS): cut before it is scrubbed, its head would show
FILE_SECRET, CUT_SECRET = "sekrit-4f2a9c77", "sekrit-0badf00d"
#: fails (boom) when N >= 7 and its file holds "needle"; a candidate of the file (fewer lines than
#: the original's) says so in $STARTED and then waits on the FIFO $GATE
WORKLOAD = """\
import os, sys
lines = open(sys.argv[1]).read().splitlines()
if len(lines) < int(os.environ["TOTAL"]):
    open(os.environ["STARTED"], "a").close()
    open(os.environ["GATE"]).read()
if int(sys.argv[2]) >= 7 and "needle" in lines:
    print("boom")
    raise SystemExit(1)
"""


def _spec(tmp_path: Path) -> Path:
    lines = [f"l{i}" for i in range(10)]
    lines += [f"api_key={FILE_SECRET}", f"token={TOKEN}", "x" * 190 + CUT_SECRET + "y" * 300]
    lines += ["needle"]
    (tmp_path / "lines.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "w.py").write_text(WORKLOAD)
    env = {"TOTAL": str(len(lines)), "STARTED": str(tmp_path / "started"), "GATE": str(tmp_path / "gate"),
           "HF_TOKEN": TOKEN}  # fmt: skip
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "vals",
        "workload": {"command": [sys.executable, "w.py", "{LINES}", "{N}"], "timeout": 120, "env": env},
        "oracle": {"kind": "exit_code"},
        "budget": {"baseline_trials": 1},
        "axes": [{"name": "N", "kind": "param", "initial": 100, "floor": 1},
                 {"name": "LINES", "kind": "file_lines", "path": "lines.txt"}],
    }))  # fmt: skip
    return spec


def _events(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "journal.jsonl").read_text().splitlines() if x.endswith("}")]


def _report(cli, run: Path) -> str:
    res = cli("report", run, "--out", run.parent / f"{run.name}.html")
    assert res.returncode == 0, res.stderr[-2000:]
    return (run.parent / f"{run.name}.html").read_text(encoding="utf-8")


def _stopped_at_the_gate(
    tmp_path: Path, *flags: str, look: Callable[[Path], None] = lambda _run: None
) -> Path:
    """Run the reduction until a candidate of the file waits at the gate (a FIFO nobody writes), call
    ``look`` with the run dir, interrupt it (exit 130); the run dir."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    proc = sleuth_proc(["reduce", "--spec", str(_spec(tmp_path)), *flags], env_with_path(tmp_path), tmp_path,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _wait_for((tmp_path / "started").exists, proc, "a candidate of the file to wait at the gate")
        (run,) = (tmp_path / "runs" / "reduce" / "vals").iterdir()
        look(run)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):  # let a workload still waiting go (a failed test)
            os.close(os.open(gate, os.O_WRONLY | os.O_NONBLOCK))
    assert proc.returncode == 130, err[-2000:]
    return run


def test_a_running_reduction_s_page_shows_the_values_tried_scrubbed_then_an_old_journal_resumes(
    cli, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def look(run: Path) -> None:  # still running: no trace, no summary; the page comes from the journal
        assert not (run / "reduction_trace.jsonl").exists() and not (run / "summary.json").exists()
        seen["events"], seen["page"] = _events(run), _report(cli, run)

    run = _stopped_at_the_gate(tmp_path, "--scrub", r"sekrit-[0-9a-f]{8}", look=look)
    events, page, gate = seen["events"], seen["page"], tmp_path / "gate"
    base = next(e for e in events if e["event"] == "baseline")
    cands = [e for e in events if e["event"] == "candidate"]
    assert cands and all(set(e["values"]) == {"N"} for e in cands)  # N is searched first, quickly
    # the original's values: scrubbed, then the long line cut where its secret was (and said so)
    kept = base["values"]["LINES"]
    assert base["values"]["N"] == 100 and len(kept) == 14 and kept[-1] == "needle"
    assert kept[10] == "api_key=<redacted>" and kept[11] == "token=<redacted>"
    assert kept[12] == "x" * 190 + "<redacted>... [300 more characters]"
    text = visible_text(page)
    for i, e in enumerate(cands, start=2):  # row 1 is the baseline
        assert f"{i} {e['round']} N {e['values']['N']} {e['verdict']}" in text
    best = [e["values"]["N"] for e in cands if e["verdict"] == "reproduces" and not e["speculative_wasted"]]
    assert best, "no candidate was accepted before the gate"
    said = f"candidate(s) tested; best so far: the last accepted candidate (axis N): N 100 -> {best[-1]}"
    assert f"Not finished (interrupted or still running): {len(cands)} {said}" in text
    assert "N param 100" in text and "LINES file_lines 14 items 14 items not yet" in text  # axes so far
    for secret in (TOKEN, FILE_SECRET, CUT_SECRET, "sekrit-"):
        assert secret not in page and secret not in (run / "journal.jsonl").read_text()

    # a journal written before steps carried values, as a kill -9 leaves it: still a page, and it resumes
    lines = []
    for e in _events(run):
        e.pop("values", None)
        lines.append(json.dumps(e) + "\n")
    (run / "journal.jsonl").write_text("".join(lines))
    for name in ("summary.json", "reduction_trace.jsonl", "SHIP.md"):
        (run / name).unlink(missing_ok=True)
    text = visible_text(_report(cli, run))
    assert f"2 1 N candidate {cands[0]['hash'][:12]}" in text
    assert "The journal keeps no values" in text
    gate.unlink()
    gate.write_text("")  # a plain file: the candidates of the file go on at once
    res = cli("reduce", "resume", run, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    d = doc(res)
    assert d["status"] == "reduced" and d["final"]["axes"] == {"N": 7, "LINES": ["needle"]}, d["final"]
    trials = journal_trials(run)
    assert len(trials) == len(set(trials)), "a journaled trial ran again"


def test_a_value_of_a_huge_list_is_journaled_bounded_and_says_so() -> None:
    from sleuth.reduce.journaled import VALUE_CHARS, bounded

    every_other = {"kept": 25_000, "of": 50_000, "ranges": ",".join(str(i) for i in range(0, 50_000, 2))}
    got = bounded({"FILES": every_other, "N": 3, "W": [0, 9], "L": ["a" * 500, "b"]})
    assert got["FILES"]["kept"] == 25_000 and got["FILES"]["of"] == 50_000
    ranges = every_other["ranges"]
    assert (
        got["FILES"]["ranges"] == f"{ranges[:VALUE_CHARS]}... [{len(ranges) - VALUE_CHARS} more characters]"
    )
    assert (
        got["N"] == 3
        and got["W"] == [0, 9]
        and got["L"] == ["a" * VALUE_CHARS + "... [300 more characters]", "b"]
    )
    assert len(json.dumps(got)) < 1000


def test_a_resumed_reduction_killed_after_it_lists_each_step_once(cli, tmp_path: Path) -> None:
    """A resume journals the original again and each replayed step again; a page read from that journal
    (killed after the resume: no trace) listed those steps twice, and its caption named a trace file
    that is not there."""
    run = _stopped_at_the_gate(tmp_path)
    gate = tmp_path / "gate"
    gate.unlink()
    gate.write_text("")
    assert cli("reduce", "resume", run, "--json").returncode == 0
    for name in ("summary.json", "reduction_trace.jsonl"):  # as a kill -9 just before the end leaves it
        (run / name).unlink()
    steps = [e for e in _events(run) if e["event"] in ("baseline", "candidate")]
    second = [i for i, e in enumerate(steps) if e["event"] == "baseline"][1]  # the resume's start
    first, again = steps[:second], steps[second + 1 :]
    repeats = [e for e in again if e.get("replayed")]
    assert repeats, "the resume journaled no step again: nothing to test"
    assert {(e["round"], e["axis"], e["hash"]) for e in repeats} <= {
        (e.get("round"), e.get("axis"), e.get("hash")) for e in first
    }
    text = visible_text(_report(cli, run))
    table = text.split("Search steps", 1)[1]
    rows = [int(n) for n in re.findall(r"(?:^| )(\d+) (?:baseline|\d+ [A-Z]+) ", table)]
    expected = len(first) + len(again) - len(repeats)  # the first process's steps and the resume's own
    assert rows == list(range(1, expected + 1)), table
    assert f": {expected - 1} candidate(s) tested" in text  # the headline counts them once too
    assert "journal.jsonl" in table and "reduction_trace.jsonl is written when the run ends" in table
