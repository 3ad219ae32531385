"""``--backend`` / ``--backend-opt`` end to end: a third-party backend registered through a real entry
point (tests/backends/plugin.py) dispatches the trials of every verb, a resumed run keeps it, and
every bad choice is one line, exit 2, before any run dir exists."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.backends.plugin import install, marks

TOKEN = "ghp_abcdefghijklmnopqrstuvwx123456"
#: a trial that passes only when the fake backend dispatched it
MARKED = 'test "$FAKE_BACKEND_MARK" = m1'


@pytest.fixture
def plug(tmp_path: Path) -> dict[str, str]:
    return install(tmp_path / "plug")


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("journal.jsonl")) if root.exists() else []


def test_run_dispatches_through_the_plugin_and_says_so(sleuth, tmp_path: Path, plug) -> None:
    res = sleuth("run", "-n", "3", "--output", "o", "--backend", "fake", "--backend-opt", "mark=m1",
                 "--", "sh", "-c", MARKED, env=plug)  # fmt: skip
    assert res.rc == 0, res.stderr
    assert "3 at a time" not in res.stdout and "on fake (mark=m1)" in res.stdout.splitlines()[0]
    (rd,) = _run_dirs(tmp_path / "o")
    assert marks(rd) == ["m1"] * 3
    assert "on fake (mark=m1)" in (rd / "report.md").read_text()
    doc = json.loads((rd / "summary.json").read_text())
    assert doc["summary"]["backend"] == "fake" and doc["summary"]["pass"] == 3


def test_matrix_dispatches_through_the_plugin(sleuth, tmp_path: Path, plug) -> None:
    res = sleuth("matrix", "--mitigation-axis", "none,tf32_off", "--trials", "2", "--output", "o", "--json",
                 "--backend", "fake", "--backend-opt", "mark=m1", "--", "sh", "-c", MARKED, env=plug)  # fmt: skip
    (rd,) = _run_dirs(tmp_path / "o")
    assert marks(rd) == ["m1"] * 4, res.stderr
    doc = res.json()
    assert all(c["counts"]["fail"] == 0 and c["counts"]["pass"] == 2 for c in doc["cells"]), doc["cells"]
    start = json.loads((rd / "journal.jsonl").read_text().splitlines()[0])
    assert start["backend"] == {"name": "fake", "options": {"mark": "m1"}}


def test_bisect_list_dispatches_through_the_plugin(sleuth, tmp_path: Path, plug) -> None:
    (tmp_path / "c.txt").write_text("a\nb\nc\nd\ne\n")
    script = f'{MARKED} || exit 125; case "$SLEUTH_CANDIDATE" in a|b) exit 0;; *) exit 1;; esac'
    res = sleuth("bisect", "list", "c.txt", "--flaky", "off", "--output", "o", "--json",
                 "--backend", "fake", "--backend-opt", "mark=m1", "--", "sh", "-c", script, env=plug)  # fmt: skip
    assert res.rc == 0, res.stderr
    assert res.json()["first_bad"]["label"] == "c"
    (rd,) = _run_dirs(tmp_path / "o")
    assert marks(rd) and set(marks(rd)) == {"m1"}


def test_reduce_dispatches_through_the_plugin(sleuth, tmp_path: Path, plug) -> None:
    (tmp_path / "lines.txt").write_text("a\nb\nalpha\nc\nd\ne\n")
    check = f"{MARKED} || exit 3; if grep -q alpha {{LINES}}; then echo 'Error: boom' >&2; exit 1; fi"
    spec = {"name": "tiny", "workload": {"command": ["sh", "-c", check], "timeout": 60},
            "oracle": {"kind": "signature"}, "budget": {"baseline_trials": 1},
            "axes": [{"name": "LINES", "kind": "file_lines", "path": "lines.txt"}]}  # fmt: skip
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))
    res = sleuth("reduce", "--spec", "spec.yaml", "--output", "o", "--json",
                 "--backend", "fake", "--backend-opt", "mark=m1", env=plug)  # fmt: skip
    assert res.rc == 0, res.stderr
    (rd,) = _run_dirs(tmp_path / "o")
    assert res.json()["axes"]["LINES"]["final"] == ["alpha"], res.stdout
    assert marks(rd) and set(marks(rd)) == {"m1"}
    assert json.loads((rd / "reduce.json").read_text())["backend"]["name"] == "fake"


def test_a_killed_run_resumes_through_the_same_backend_and_secret(sleuth, tmp_path: Path, plug) -> None:
    """kill -9 of sleuth mid-run; ``--resume`` (no flags) runs the rest through ``fake`` again, its
    secret option back from secrets.json (nowhere else in the run dir)."""
    killed = tmp_path / "killed"
    script = f'{MARKED} || exit 1; [ "$SLEUTH_TRIAL_ID" = 0002 ] && [ ! -e {killed} ] && : > {killed} && kill -9 "$PPID"; true'
    res = sleuth("run", "-n", "4", "--output", "o", "--backend", "fake", "--backend-opt", "mark=m1",
                 "--backend-opt", f"token={TOKEN}", "--", "sh", "-c", script, env=plug)  # fmt: skip
    assert res.rc == -signal.SIGKILL, res.stderr
    (rd,) = _run_dirs(tmp_path / "o")
    before = len(marks(rd))
    assert before < 4
    again = sleuth("run", "--resume", rd, "--json", env=plug)
    assert again.rc == 0, again.stderr
    assert again.json()["summary"]["pass"] == 4
    assert len(marks(rd)) >= 4 and set(marks(rd)) == {"m1"}
    leaked = [p for p in rd.rglob("*") if p.is_file() and p.name != "secrets.json" and TOKEN in p.read_text()]
    assert not leaked and TOKEN not in again.stdout + again.stderr + res.stdout + res.stderr
    assert TOKEN in (rd / "secrets.json").read_text()


def test_a_run_dir_from_before_backends_resumes_as_local(sleuth, tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    script = f'[ "$SLEUTH_TRIAL_ID" = 0002 ] && [ ! -e {killed} ] && : > {killed} && kill -9 "$PPID"; true'
    res = sleuth("run", "-n", "3", "--output", "o", "--", "sh", "-c", script)
    assert res.rc == -signal.SIGKILL, res.stderr
    (rd,) = _run_dirs(tmp_path / "o")
    lines = (rd / "journal.jsonl").read_text().splitlines()
    start = json.loads(lines[0])
    del start["config"]["backend"]  # as an older sleuth wrote it
    (rd / "journal.jsonl").write_text("\n".join([json.dumps(start), *lines[1:]]) + "\n")
    again = sleuth("run", "--resume", rd, "--json")
    assert again.rc == 0 and again.json()["summary"]["pass"] == 3, again.stderr


def _verbs(tmp_path: Path) -> dict[str, list[str]]:
    (tmp_path / "c.txt").write_text("a\nb\n")
    (tmp_path / "spec.yaml").write_text(json.dumps({
        "name": "tiny", "workload": {"command": ["true"]}, "oracle": {"kind": "signature"},
        "axes": [{"name": "N", "kind": "env", "initial": 3}]}))  # fmt: skip
    return {
        "run": ["run", "--output", "o", "-n", "1"],
        "matrix": ["matrix", "--mitigation-axis", "none", "--trials", "1", "--output", "o"],
        "bisect": ["bisect", "list", "c.txt", "--output", "o"],
        "reduce": ["reduce", "--spec", "spec.yaml", "--output", "o"],
    }


BAD: dict[str, tuple[list[str], str]] = {
    "unknown": (["--backend", "nope"], "--backend nope: no such backend; choose one of broken, fake, local"),
    "shape": (["--backend", "fake", "--backend-opt", "mark"], "--backend-opt 'mark': expected KEY=VALUE"),
    "gpus": (["--backend", "fake", "--gpus", "0"], "--gpus does not go with --backend fake"),
    "import": (["--backend", "broken"], "--backend broken: cannot load fakebackend_gone:Backend: ModuleNotFoundError"),
    "unknown key": (["--backend", "fake", "--backend-opt", "zz=1"], "fake has no option 'zz'; its options: mark, token"),
    "bad value": (["--backend", "fake", "--backend-opt", "mark=a-b"], "--backend-opt mark=a-b: must be letters"),
    "local opt": (["--backend-opt", "a=1"], "--backend-opt a=1: the local backend takes no options"),
}  # fmt: skip


@pytest.mark.parametrize("verb", ["run", "matrix", "bisect", "reduce"])
@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_choice_is_one_line_exit_2_and_no_run_dir(
    sleuth, tmp_path: Path, plug, verb: str, case: str
) -> None:
    args, message = BAD[case]
    argv: list[Any] = [*_verbs(tmp_path)[verb], *args]
    if verb != "reduce":
        argv += ["--", "true"]
    res = sleuth(*argv, env=plug)
    assert res.rc == 2, (res.stdout, res.stderr)
    (line,) = res.stderr.strip().splitlines()
    assert message in line and "Traceback" not in line
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_the_builtin_names_are_registered() -> None:
    """slurm and ray come from sleuth's own entry points, listed without importing their modules (a
    fresh interpreter: other test files import them)."""
    code = (
        "import json, sys; from sleuth.backends.choice import available; "
        "print(json.dumps([available(), [m for m in sys.modules if m.startswith('sleuth.backends.')]]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    names, loaded = json.loads(out)
    assert {"local", "slurm", "ray"} <= set(names)
    assert not {"sleuth.backends.slurm", "sleuth.backends.ray"} & set(loaded)


def test_a_killed_matrix_resumes_through_the_same_backend(sleuth, tmp_path: Path, plug) -> None:
    killed = tmp_path / "killed"
    script = f'{MARKED} || exit 1; [ -e {killed} ] || {{ : > {killed}; kill -9 "$PPID"; }}; true'
    res = sleuth("matrix", "--mitigation-axis", "none,tf32_off", "--trials", "2", "--output", "o",
                 "--backend", "fake", "--backend-opt", "mark=m1", "--", "sh", "-c", script, env=plug)  # fmt: skip
    assert res.rc == -signal.SIGKILL, res.stderr
    (rd,) = _run_dirs(tmp_path / "o")
    again = sleuth("matrix", "resume", rd, "--json", env=plug)
    assert all(c["counts"]["fail"] == 0 and c["counts"]["pass"] == 2 for c in again.json()["cells"]), (
        again.stderr
    )
    assert len(marks(rd)) >= 4 and set(marks(rd)) == {"m1"}


def test_a_killed_bisection_resumes_through_the_same_backend(sleuth, tmp_path: Path, plug) -> None:
    (tmp_path / "c.txt").write_text("a\nb\nc\nd\ne\n")
    killed = tmp_path / "killed"
    script = (f'{MARKED} || exit 125; [ -e {killed} ] || {{ : > {killed}; kill -9 "$PPID"; }}; '
              'case "$SLEUTH_CANDIDATE" in a|b) exit 0;; *) exit 1;; esac')  # fmt: skip
    res = sleuth("bisect", "list", "c.txt", "--flaky", "off", "--output", "o", "--backend", "fake",
                 "--backend-opt", "mark=m1", "--backend-opt", f"token={TOKEN}", "--", "sh", "-c", script,
                 env=plug)  # fmt: skip
    assert res.rc == -signal.SIGKILL, res.stderr
    (rd,) = _run_dirs(tmp_path / "o")
    again = sleuth("bisect", "resume", rd, "--json", env=plug)
    assert again.rc == 0 and again.json()["first_bad"]["label"] == "c", again.stderr
    assert set(marks(rd)) == {"m1"}
    leaked = [p for p in rd.rglob("*") if p.is_file() and p.name != "secrets.json" and TOKEN in p.read_text()]
    assert not leaked and TOKEN not in again.stdout + again.stderr


def test_a_killed_reduction_resumes_through_the_same_backend(sleuth, tmp_path: Path, plug) -> None:
    (tmp_path / "lines.txt").write_text("a\nb\nalpha\nc\nd\ne\n")
    killed = tmp_path / "killed"
    check = (f'{MARKED} || exit 3; [ -e {killed} ] || {{ : > {killed}; kill -9 "$PPID"; }}; '
             "if grep -q alpha {LINES}; then echo 'Error: boom' >&2; exit 1; fi")  # fmt: skip
    spec = {"name": "tiny", "workload": {"command": ["sh", "-c", check], "timeout": 60},
            "oracle": {"kind": "signature"}, "budget": {"baseline_trials": 1},
            "axes": [{"name": "LINES", "kind": "file_lines", "path": "lines.txt"}]}  # fmt: skip
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))
    res = sleuth("reduce", "--spec", "spec.yaml", "--output", "o", "--backend", "fake", "--backend-opt", "mark=m1",
                 env=plug)  # fmt: skip
    assert res.rc == -signal.SIGKILL, res.stderr
    (rd,) = _run_dirs(tmp_path / "o")
    again = sleuth("reduce", "resume", rd, "--json", env=plug)
    assert again.rc == 0, again.stderr
    assert again.json()["axes"]["LINES"]["final"] == ["alpha"]
    assert set(marks(rd)) == {"m1"}


def test_secret_option_values_are_shown_redacted(sleuth, tmp_path: Path, plug) -> None:
    """A short value under a secret name and a token: neither printed, journaled nor in report.md."""
    res = sleuth("run", "--output", "o", "--backend", "fake", "--backend-opt", f"token={TOKEN}",
                 "--backend-opt", "mark=m1", "--", "sh", "-c", MARKED, env=plug)  # fmt: skip
    assert res.rc == 0, res.stderr
    assert "on fake (token=<redacted>, mark=m1)" in res.stdout
    (rd,) = _run_dirs(tmp_path / "o")
    assert (
        TOKEN
        not in res.stdout + res.stderr + (rd / "journal.jsonl").read_text() + (rd / "report.md").read_text()
    )
    bad = sleuth("run", "--output", "o2", "--backend", "fake", "--backend-opt", f"zz={TOKEN}", "--", "true",
                 env=plug)  # fmt: skip
    assert bad.rc == 2 and TOKEN not in bad.stderr and "zz=<redacted>" in bad.stderr


def test_resume_takes_no_other_backend(sleuth, tmp_path: Path, plug) -> None:
    """The backend is part of the run: ``--resume`` refuses ``--backend`` as it refuses every flag."""
    res = sleuth(
        "run", "--output", "o", "--backend", "fake", "--backend-opt", "mark=m1", "--", "true", env=plug
    )
    (rd,) = _run_dirs(tmp_path / "o")
    again = sleuth("run", "--resume", rd, "--backend", "local", env=plug)
    assert res.rc == 0 and again.rc == 2
    assert "--resume takes no --backend" in again.stderr


def test_the_matrix_rerun_line_runs_on_the_same_backend(sleuth, tmp_path: Path, plug) -> None:
    """matrix.json's ``rerun`` and matrix.md's ``Rerun:`` said ``sleuth matrix --recipe RESOLVED``:
    run as printed, the matrix ran on the local backend.  Now they repeat ``--backend`` and its
    options, the secret one ``<redacted>`` (the run dir's secrets.json gives it back), and
    ``--jobs`` when it was given."""
    res = sleuth("matrix", "--mitigation-axis", "none", "--trials", "2", "--output", "o", "--json",
                 "--backend", "fake", "--backend-opt", "mark=m1", "--backend-opt", f"token={TOKEN}",
                 "--jobs", "2", "--", "sh", "-c", MARKED, env=plug)  # fmt: skip
    assert res.rc == 0, res.stderr
    (rd,) = _run_dirs(tmp_path / "o")
    rerun = res.json()["rerun"]
    tail = "--backend fake --backend-opt mark=m1 --backend-opt 'token=<redacted>' --jobs 2"
    assert rerun.endswith(tail), rerun
    assert f"Rerun: `{rerun}`" in (rd / "matrix.md").read_text()
    assert json.loads((rd / "matrix.json").read_text())["rerun"] == rerun
    leaked = [p for p in rd.rglob("*") if p.is_file() and p.name != "secrets.json" and TOKEN in p.read_text()]
    assert not leaked and TOKEN not in res.stdout + res.stderr
    argv = shlex.split(rerun)
    assert argv[:2] == ["sleuth", "matrix"]
    again = sleuth(*argv[1:], "--output", "o2", "--json", env=plug)
    assert again.rc == 0, again.stderr
    (rd2,) = _run_dirs(tmp_path / "o2")
    assert marks(rd2) == ["m1"] * 2 and again.json()["cells"][0]["counts"]["pass"] == 2
    assert again.json()["rerun"].endswith(tail)
    finished = sleuth("matrix", "resume", rd, "--json", env=plug)  # a finished matrix reported again
    assert finished.rc == 0 and finished.json()["rerun"].endswith(tail), finished.stderr
    (rd / "secrets.json").unlink()  # the word is never the value
    lost = sleuth(*argv[1:], "--output", "o3", env=plug)
    assert lost.rc == 2 and "value(s) of --backend-opt token are not in secrets.json" in lost.stderr
    assert len(lost.stderr.strip().splitlines()) == 1 and not (tmp_path / "o3").exists()


def _files(rd: Path) -> dict[str, bytes]:
    return {str(p.relative_to(rd)): p.read_bytes() for p in sorted(rd.rglob("*")) if p.is_file()}


def test_resume_with_gpus_on_a_cluster_run_is_refused_before_the_run_dir_is_touched(
    sleuth, tmp_path: Path, plug
) -> None:
    """``bisect resume RUN_DIR --gpus 0`` of a run on another backend reopened the run dir (``.lock``, a
    ``resume`` event in the journal) before it said that --gpus does not go with it; ``matrix
    resume`` checked --gpus against the local backend.  Both: one line, exit 2, nothing written."""
    (tmp_path / "c.txt").write_text("a\nb\nc\nd\ne\n")
    killed = tmp_path / "killed"
    kill = f'[ -e {killed} ] || {{ : > {killed}; kill -9 "$PPID"; }}'
    res = sleuth("bisect", "list", "c.txt", "--flaky", "off", "--output", "b", "--backend", "fake",
                 "--", "sh", "-c", f"{kill}; exit 0", env=plug)  # fmt: skip
    killed.unlink()
    mat = sleuth("matrix", "--mitigation-axis", "none", "--trials", "2", "--output", "m", "--backend", "fake",
                 "--", "sh", "-c", f"{kill}; true", env=plug)  # fmt: skip
    assert res.rc == mat.rc == -signal.SIGKILL, res.stderr + mat.stderr
    for verb, (rd,) in (("bisect", _run_dirs(tmp_path / "b")), ("matrix", _run_dirs(tmp_path / "m"))):
        before = _files(rd)
        for flags in (["--gpus", "0"], ["--gpus", "0,1", "--jobs", "2"]):
            again = sleuth(verb, "resume", rd, *flags, env=plug)
            assert again.rc == 2, (verb, flags, again.stderr)
            (line,) = again.stderr.strip().splitlines()
            assert "--gpus does not go with --backend fake" in line, (verb, line)
            assert _files(rd) == before, verb


def test_matrix_and_reduce_check_jobs_with_the_one_helper() -> None:
    """``cli.matrix._check_jobs`` and ``cli.reduce._jobs`` were two copies of one check."""
    from sleuth.backends.choice import BackendChoice
    from sleuth.cli import matrix, reduce
    from sleuth.cli._options import check_jobs
    from sleuth.errors import UsageError

    assert not hasattr(matrix, "_check_jobs") and not hasattr(reduce, "_jobs")
    assert check_jobs(2, "0,1") == ("0", "1") and check_jobs(3, None, BackendChoice("slurm")) == ()
    with pytest.raises(UsageError, match="--jobs 0: must be between 1 and"):
        check_jobs(0, None)
    with pytest.raises(UsageError, match="--gpus does not go with --backend slurm"):
        check_jobs(1, "0", BackendChoice("slurm"))
