"""``sleuth VERB ... | head -n 2``: the reader of sleuth's output goes away while the work runs.

Every long verb (run, matrix, reduce, bisect, supervise, and each one's resume) stops as a Ctrl-C
stops it: its children stopped, its journal ended as for an interrupt, its run dir resumable, exit
130, no traceback and no "Exception ignored ... BrokenPipeError" on stderr.  Before, reduce exited 1
on the spot (rich's own broken-pipe handling) leaving no summary and no end event, and every verb
went on with its work until its next line hit the closed pipe.

The workloads wait on a FIFO nobody writes (``cat GATE``): the first run cannot end before the
reader goes, whatever the machine's speed; the gate is then made a plain file and a resume finishes.
Synchronisation is by reading sleuth's own lines, never by sleeping.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.matrix.conftest import recipe_data
from tests.signals import sleuth_proc

NOISE = ("Traceback", "Exception ignored", "BrokenPipeError")


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in (run_dir / "journal.jsonl").read_text().splitlines() if ln.strip()]


@dataclass(frozen=True)
class Cut:
    """What a run whose reader went away left: its exit code, the lines read, its stderr (when
    stderr was not the closed pipe itself)."""

    rc: int
    lines: list[str]
    err: str

    def run_dir(self) -> Path:
        """The run dir the verb named on its first line (``... -> RUN_DIR``)."""
        for line in self.lines:
            if " -> " in line:
                return Path(line.rpartition(" -> ")[2].strip())
        raise AssertionError(f"no run dir in {self.lines}")


def cut(args: list[str], env: dict[str, str], cwd: Path, *, lines: int, joined: bool,
        sync_on_stderr: bool = False) -> Cut:  # fmt: skip
    """``sleuth ARGS | head -n LINES`` (``2>&1 |`` when ``joined``): read LINES lines (of stderr when
    ``sync_on_stderr``: the verb prints on stdout only at the end), close stdout, wait for the exit."""
    proc = sleuth_proc(args, env, cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT if joined else subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None
    err: list[bytes] = []
    try:
        src = proc.stderr if sync_on_stderr else proc.stdout
        assert src is not None
        got = [src.readline().decode() for _ in range(lines)]
        proc.stdout.close()  # the reader is gone
        if proc.stderr is not None:  # read to its end beside the wait (a full pipe would block sleuth)
            reader = threading.Thread(target=lambda: err.append(proc.stderr.read()))  # type: ignore[union-attr]
            reader.start()
        rc = proc.wait(timeout=120)  # a hang detector, not a timing claim
        if proc.stderr is not None:
            reader.join(timeout=60)
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    text = b"".join(err).decode(errors="replace")
    for noise in NOISE:
        assert noise not in text, text
    return Cut(rc, got, text)


@dataclass(frozen=True)
class Verb:
    """One verb's gated workload, how it starts and resumes, and what its run dir says."""

    start: Callable[[Path, Path], list[str]]  # (tmp_path, gate) -> argv
    resume: Callable[[Path], list[str]]  # run dir -> argv
    lines: int  # lines it prints (stderr and stdout together) once its run dir exists, before a test
    interrupted: Callable[[Path], bool]
    finished: Callable[[Path], bool]
    finished_rc: int = 0


def _run_start(tmp: Path, gate: Path) -> list[str]:
    return ["run", "-n", "3", "--", "sh", "-c", f"cat {gate} >/dev/null"]


def _summary(rd: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((rd / "summary.json").read_text())
    return doc


def _run_interrupted(rd: Path) -> bool:
    return _summary(rd)["summary"].get("interrupted") is True and _events(rd)[-1]["event"] == "end"


def _run_finished(rd: Path) -> bool:
    return not _summary(rd)["summary"].get("interrupted") and _summary(rd)["summary"]["pass"] == 3


def _matrix_start(tmp: Path, gate: Path) -> list[str]:
    data = recipe_data(trials=2)
    data["cells"] = data["cells"][:2]
    data["workload"]["command"] = ["sh", "-c", f"cat {gate} >/dev/null; exec {sys.executable} \"$@\"", "sh",
                                   *data["workload"]["command"][1:]]  # fmt: skip
    (tmp / "recipe.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return ["matrix", "--recipe", "recipe.yaml"]


def _matrix_end(rd: Path) -> dict[str, Any]:
    ends = [e for e in _events(rd) if e["event"] == "end"]
    return ends[-1] if ends else {}


def _reduce_start(tmp: Path, gate: Path) -> list[str]:
    (tmp / "win.yaml").write_text(yaml.safe_dump({
        "name": "win",
        "workload": {"command": f"cat {gate} >/dev/null; test {{N}} -lt 7 || {{ echo boom >&2; exit 1; }}",
                     "shell": True, "timeout": 60},
        "oracle": {"kind": "exit_code"},
        "budget": {"baseline_trials": 1},
        "axes": [{"name": "N", "kind": "param", "initial": 100}],
    }))  # fmt: skip
    return ["reduce", "--spec", "win.yaml"]


def _reduce_status(rd: Path) -> str | None:
    done = [e for e in _events(rd) if e["event"] == "done"]
    summary = rd / "summary.json"
    if not done or not summary.is_file():
        return None
    status = json.loads(summary.read_text()).get("status")
    return str(status) if status == done[-1]["status"] else None


def _bisect_list_start(tmp: Path, gate: Path) -> list[str]:
    (tmp / "l.txt").write_text("".join(f"{i}\n" for i in range(8)))
    test = f'cat {gate} >/dev/null; [ "$SLEUTH_CANDIDATE" -lt 5 ] || {{ echo "AssertionError: bug" >&2; exit 1; }}'
    return ["bisect", "list", "l.txt", "--flaky", "off", "--", "sh", "-c", test]


def _bisect_git_start(tmp: Path, gate: Path) -> list[str]:
    from tests.bisect.test_bisect_resume import make_repo

    shas = make_repo(tmp, 8, 5)
    test = f'cat {gate} >/dev/null; test "$(cat bug)" = 0 || {{ echo "AssertionError: bug" >&2; exit 1; }}'
    return ["bisect", "git", "--repo", "repo", "--good", shas[0], "--bad", shas[-1], "--flaky", "off",
            "--", "sh", "-c", test]  # fmt: skip


def _bisect_interrupted(rd: Path) -> bool:
    """Journaled as interrupted, with a summary.json that says so (before, none was written)."""
    summary = json.loads((rd / "summary.json").read_text())
    return _events(rd)[-1]["event"] == "interrupted" and summary["status"] == "interrupted"


def _bisect_finished(rd: Path) -> bool:
    return bool(json.loads((rd / "summary.json").read_text()).get("status") == "found")


VERBS = {
    "run": Verb(_run_start, lambda rd: ["run", "--resume", str(rd)], 2, _run_interrupted, _run_finished),
    "matrix": Verb(
        _matrix_start,
        lambda rd: ["matrix", "resume", str(rd)],
        2,
        lambda rd: _matrix_end(rd).get("interrupted") is True,
        lambda rd: _matrix_end(rd).get("interrupted") is False,
        finished_rc=3,
    ),
    "reduce": Verb(
        _reduce_start,
        lambda rd: ["reduce", "resume", str(rd)],
        2,
        lambda rd: _reduce_status(rd) == "interrupted",
        lambda rd: _reduce_status(rd) == "reduced",
    ),
    "bisect list": Verb(
        _bisect_list_start, lambda rd: ["bisect", "resume", str(rd)], 1, _bisect_interrupted, _bisect_finished
    ),
    "bisect git": Verb(
        _bisect_git_start, lambda rd: ["bisect", "resume", str(rd)], 1, _bisect_interrupted, _bisect_finished
    ),
}


@pytest.fixture
def env(sleuth_env: dict[str, str]) -> dict[str, str]:
    """A heartbeat line every 50 ms while a verb waits (a line to read, on a pipe)."""
    return {**sleuth_env, "SLEUTH_PROGRESS_INTERVAL": "0.05"}


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """A FIFO the workloads wait on; at the end, whatever still waits (a test that failed) is let go."""
    path = tmp_path / "gate"
    os.mkfifo(path)
    yield path
    with contextlib.suppress(OSError):  # ENXIO: nobody waits; a plain file: already open
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def _open(gate: Path) -> None:
    gate.unlink()
    gate.write_text("")


@pytest.mark.parametrize("joined", [True, False], ids=["2>&1 | head", "| head, stderr apart"])
@pytest.mark.parametrize("name", list(VERBS))
def test_a_reader_gone_stops_the_verb_and_its_resume_as_ctrl_c_does(
    env: dict[str, str], tmp_path: Path, gate: Path, name: str, joined: bool
) -> None:
    verb = VERBS[name]
    # run prints its rows on stdout; the others print progress on stderr and their answer at the end
    on_stderr = not joined and name != "run"
    first = cut(verb.start(tmp_path, gate), env, tmp_path, lines=verb.lines, joined=joined,
                sync_on_stderr=on_stderr)  # fmt: skip
    assert first.rc == 130, first
    rd = first.run_dir()
    assert verb.interrupted(rd), _events(rd)[-3:]
    again = cut(verb.resume(rd), env, tmp_path, lines=verb.lines, joined=joined, sync_on_stderr=on_stderr)
    assert again.rc == 130, again
    assert again.run_dir() == rd and verb.interrupted(rd), _events(rd)[-3:]
    _open(gate)
    final = subprocess.run([sys.executable, "-m", "sleuth", *verb.resume(rd)], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=240)  # fmt: skip
    assert final.returncode == verb.finished_rc, final.stderr
    assert verb.finished(rd), _events(rd)[-3:]


def test_run_json_whose_reader_goes_stops_and_resumes(
    env: dict[str, str], tmp_path: Path, gate: Path
) -> None:
    """``sleuth run --json ... | consumer`` and the consumer dies: stdout gets nothing before the
    document, so the run went on to its end; now it stops when the reader goes."""
    argv = ["run", "--json", "-n", "3", "--", "sh", "-c", f"cat {gate} >/dev/null"]
    res = cut(argv, env, tmp_path, lines=1, joined=False, sync_on_stderr=True)  # a heartbeat line
    assert res.rc == 130 and "trials 0/3" in res.lines[0], res
    (rd,) = (tmp_path / "runs" / "run").glob("*/*")
    assert _run_interrupted(rd)
    _open(gate)
    final = subprocess.run([sys.executable, "-m", "sleuth", "run", "--resume", str(rd), "--json"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=240)  # fmt: skip
    assert final.returncode == 0 and json.loads(final.stdout)["summary"]["pass"] == 3, final.stderr


def test_supervise_whose_reader_goes_stops_its_workload_as_ctrl_c_does(
    env: dict[str, str], tmp_path: Path, gate: Path
) -> None:
    """supervise prints only when a cycle ends: a reader gone mid-cycle went unnoticed until then
    (an hour later), and then the line's EPIPE unwound it with exit 0 and no word.  (``exec cat``: a
    ``cat`` forked by the shell just after the forwarded SIGINT never got it, and was SIGKILLed.)"""
    started = tmp_path / "started"
    os.mkfifo(started)
    argv = ["supervise", "--log-dir", "sup", "--max-restarts", "0", "--",
            "sh", "-c", f"echo up > {started}; exec cat {gate} >/dev/null"]  # fmt: skip
    proc = sleuth_proc(argv, env, tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        with open(started) as fh:  # the workload runs
            assert fh.readline() == "up\n"
        proc.stdout.close()
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    text = err.decode()
    assert proc.returncode == 130 and not any(n in text for n in NOISE), text
    cycles = [json.loads(ln) for ln in (tmp_path / "sup" / "cycles.jsonl").read_text().splitlines()]
    assert cycles[-1]["event"] == "cycle" and cycles[-1]["outcome"] == "signalled", cycles
    _open(gate)
    started.unlink()
    again = subprocess.run([sys.executable, "-m", "sleuth", *argv], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["attribute", "--json", "a.log"],
        ["attribute", "a.log"],
        ["gate", "runs", "--db", "sqlite:///g.db"],
        ["run", "-n", "2", "--", "true"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_reader_gone_before_the_verb_starts_stops_it_before_anything_runs(
    sleuth_env: dict[str, str], tmp_path: Path, args: list[str]
) -> None:
    """``sleuth ... | true`` (the reader gone first): the answer met EPIPE and the verb exited 0 (or 1,
    from rich) with "Exception ignored ... BrokenPipeError" at exit, or ran a whole run for nobody."""
    (tmp_path / "a.log").write_text(
        "step 1\nRuntimeError: CUDA error: an illegal memory access was encountered\n"
    )
    read, write = os.pipe()
    os.close(read)  # the reader is gone before sleuth starts
    try:
        res = subprocess.run([sys.executable, "-m", "sleuth", *args], env=sleuth_env, cwd=tmp_path,
                             stdin=subprocess.DEVNULL, stdout=write, stderr=subprocess.PIPE, text=True,
                             timeout=120)  # fmt: skip
    finally:
        os.close(write)
    assert res.returncode == 130, res.stderr
    # one line: click put an empty one first when the stop landed inside it
    assert res.stderr == "interrupted: the reader of the output went away\n"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "g.db").exists()
