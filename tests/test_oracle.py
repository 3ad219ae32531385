"""Oracles and failure signatures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sleuth.errors import UsageError
from sleuth.model import Outcome, Stream, TrialResult, TrialSpec
from sleuth.oracle import (
    OracleConfig,
    Threshold,
    build_oracle,
    error_line,
    load_callable,
    normalize_line,
    same_failure,
)


def result(
    tmp_path: Path,
    *,
    rc: int | None = 0,
    signal: int | None = None,
    timed_out: bool = False,
    stdout: str = "",
    stderr: str = "",
    metrics: dict | None = None,
    error: str | None = None,
) -> TrialResult:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "stdout").write_text(stdout)
    (tmp_path / "stderr").write_text(stderr)
    return TrialResult(
        spec=TrialSpec(argv=("x",), timeout_s=3.0),
        trial_dir=tmp_path,
        rc=rc,
        signal=signal,
        timed_out=timed_out,
        started_at=0.0,
        wall_s=0.1,
        stdout_path=tmp_path / "stdout",
        stderr_path=tmp_path / "stderr",
        stdout_tail=stdout,
        stderr_tail=stderr,
        metrics=metrics or {},
        error=error,
    )


def judge(cfg: OracleConfig, r: TrialResult) -> tuple[Outcome, str | None]:
    j = build_oracle(cfg).judge(r)
    return j.outcome, j.signature


def test_exit_codes(tmp_path: Path) -> None:
    cfg = OracleConfig(skip_exit=(125,))
    assert judge(cfg, result(tmp_path, rc=0)) == (Outcome.PASS, None)
    assert judge(cfg, result(tmp_path, rc=125))[0] is Outcome.SKIP
    assert judge(cfg, result(tmp_path, rc=2, stderr="boom\n")) == (Outcome.FAIL, "exit 2")
    assert judge(cfg, result(tmp_path, rc=None, signal=11)) == (Outcome.FAIL, "signal SIGSEGV")
    assert judge(cfg, result(tmp_path, timed_out=True, rc=None, signal=15)) == (Outcome.FAIL, "timeout")
    assert judge(cfg, result(tmp_path, rc=None, error="command not found: x"))[0] is Outcome.ERROR


def test_python_traceback_signature_is_stable_across_runs(tmp_path: Path) -> None:
    def tb(step: int, addr: str, path: str) -> str:
        return (
            f'Traceback (most recent call last):\n  File "{path}/train.py", line {step}, in <module>\n'
            f"FloatingPointError: loss is nan at step {step} (tensor at {addr})\n"
        )

    a = judge(OracleConfig(), result(tmp_path / "a", rc=1, stderr=tb(137, "0x7f3a2c", "/home/a/job")))
    b = judge(OracleConfig(), result(tmp_path / "b", rc=1, stderr=tb(4012, "0x55aa10ff", "/scratch/b")))
    assert a == b == (Outcome.FAIL, "exit 1: FloatingPointError: loss is nan at step <n> (tensor at <hex>)")
    other = judge(OracleConfig(), result(tmp_path / "c", rc=1, stderr="RuntimeError: CUDA out of memory\n"))
    assert not same_failure(other[1], a[1])


def test_fail_regex_fails_on_exit_zero_and_respects_stream(tmp_path: Path) -> None:
    rx = re.compile("loss is nan", re.M)
    r = result(tmp_path, rc=0, stdout="step 1\nloss is nan at step 17\n", stderr="")
    assert judge(OracleConfig(fail_regex=rx), r) == (Outcome.FAIL, "output: loss is nan at step <n>")
    assert judge(OracleConfig(fail_regex=rx, stream=Stream.STDERR), r)[0] is Outcome.PASS


def test_thresholds(tmp_path: Path) -> None:
    above = OracleConfig(thresholds=(Threshold(name="loss", limit=2.0, above=True),))
    below = OracleConfig(thresholds=(Threshold(name="tput", limit=100.0, above=False),))
    assert judge(above, result(tmp_path, metrics={"loss": 1.5}))[0] is Outcome.PASS
    assert judge(above, result(tmp_path, metrics={"loss": 2.5})) == (Outcome.FAIL, "metric loss > 2")
    assert judge(above, result(tmp_path, metrics={"loss": (1.0, 3.0, 1.0)}))[0] is Outcome.FAIL
    assert judge(above, result(tmp_path, metrics={"loss": float("nan")}))[0] is Outcome.FAIL
    assert judge(above, result(tmp_path, metrics={}))[1] == "metric missing: loss"
    assert judge(below, result(tmp_path, metrics={"tput": 99.0}))[0] is Outcome.FAIL
    assert judge(below, result(tmp_path, metrics={"tput": 101.0}))[0] is Outcome.PASS


def test_custom_oracle_from_file(tmp_path: Path) -> None:
    f = tmp_path / "myoracle.py"
    f.write_text(
        "from sleuth.model import Outcome\n"
        "def judge(r):\n"
        "    text = r.stdout_path.read_text()\n"
        "    if 'skip me' in text: return Outcome.SKIP\n"
        "    if 'bad' in text: return False\n"
        "    if 'explode' in text: raise RuntimeError('oops')\n"
        "    return None\n"
    )
    cfg = OracleConfig(callable_ref=f"{f}:judge")
    assert judge(cfg, result(tmp_path / "1", rc=0, stdout="bad\n"))[0] is Outcome.FAIL
    assert judge(cfg, result(tmp_path / "2", rc=0, stdout="skip me\n"))[0] is Outcome.SKIP
    assert (
        judge(cfg, result(tmp_path / "3", rc=3, stdout="fine\n"))[0] is Outcome.FAIL
    )  # None keeps the rules
    j = build_oracle(cfg).judge(result(tmp_path / "4", rc=0, stdout="explode\n"))
    assert j.outcome is Outcome.ERROR and "RuntimeError: oops" in j.reason


def test_an_oracle_that_calls_sys_exit_is_an_error_not_the_end_of_sleuth(tmp_path: Path) -> None:
    """``sys.exit()`` in a user's oracle (a script's argparse, a copied main) escaped ``except
    Exception`` and ended ``sleuth run`` mid-run: exit 1, no summary, the next trials never run."""
    f = tmp_path / "exiting.py"
    f.write_text("import sys\ndef judge(r):\n    sys.exit('judge gave up')\n")
    j = build_oracle(OracleConfig(callable_ref=f"{f}:judge")).judge(result(tmp_path / "1", rc=0))
    assert j.outcome is Outcome.ERROR and j.reason == "oracle raised SystemExit: judge gave up"


def test_an_oracle_file_that_exits_when_imported_is_a_usage_error(tmp_path: Path) -> None:
    """A script with argparse at the top level: importing it ran ``parse_args`` on sleuth's own argv,
    printed ``usage: sleuth [-h] x`` and exited with the script's code instead of naming --oracle."""
    f = tmp_path / "script.py"
    f.write_text("import sys\nsys.exit(3)\ndef judge(r):\n    return None\n")
    with pytest.raises(UsageError, match=r"--oracle .*script.py:judge.*it exits when imported"):
        load_callable(f"{f}:judge")


def test_error_line_prefers_the_last_exception() -> None:
    r = TrialResult(
        spec=TrialSpec(argv=("x",)),
        trial_dir=Path("/t"),
        rc=1,
        signal=None,
        timed_out=False,
        started_at=0,
        wall_s=0,
        stdout_path=Path("/t/o"),
        stderr_path=Path("/t/e"),
        stderr_tail="warning: foo\nKeyError: 'a'\n\nDuring handling...\nValueError: bad value 3\n",
    )
    assert error_line(r) == "ValueError: bad value 3"


@given(
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=2**48),
    st.sampled_from(["/tmp/x/y.py", "/home/user/run_12/log.txt", "./data/shard-0003.bin"]),
)
def test_normalize_hides_run_specific_parts(n: int, addr: int, path: str) -> None:
    a = normalize_line(f"2026-11-25T10:00:{n % 60:02d}Z rank {n}: illegal access at 0x{addr:x} in {path}")
    b = normalize_line("2025-01-01T23:59:59Z rank 7: illegal access at 0x1 in /other/place.py")
    assert a == b == "<ts> rank <n>: illegal access at <hex> in <path>"


def test_normalize_keeps_words() -> None:
    assert normalize_line("NCCL error: unhandled system error (run with NCCL_DEBUG=INFO)") == (
        "NCCL error: unhandled system error (run with NCCL_DEBUG=INFO)"
    )
    assert normalize_line("loss  is   nan") == "loss is nan"


def test_module_oracle_is_found_in_the_current_directory(tmp_path: Path, monkeypatch) -> None:
    """The console script does not put the current directory on sys.path; --oracle mod:f must
    still find ./mod.py (the README's `--oracle module:function`)."""
    import sys

    from sleuth.oracle import load_callable

    (tmp_path / "qa_here_judge.py").write_text("def judge(r):\n    return True\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    func = load_callable("qa_here_judge:judge")
    assert func(None) is True
    assert str(tmp_path) not in sys.path  # borrowed for the import only


def test_normalize_paths_only_where_a_path_starts() -> None:
    assert normalize_line('File "/a/b/train.py", line 3') == 'File "<path>", line <n>'
    assert normalize_line("cwd=/scratch/job7 rank=3") == "cwd=<path> rank=<n>"
    assert normalize_line("[bold]x[/bold] failed") == "[bold]x[/bold] failed"
