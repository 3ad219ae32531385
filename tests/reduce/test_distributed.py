"""Distributed reduction: the per-rank oracle on made-up output, and for real with torchrun + gloo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sleuth.model import Outcome, Stream, TrialResult, TrialSpec
from sleuth.oracle import OracleConfig, StandardOracle
from sleuth.reduce.ranks import WORLD_SIZE_VAR, RankOracle, split_ranks
from sleuth.reduce.spec import DEFAULT_LAUNCHER
from tests.reduce.conftest import PROGRAMS, doc, env_with_path, run_detached

PREFIX = re.compile(r"^\[default(\d+)\]:", re.MULTILINE)
TRACE = "[default{r}]:[rank{r}]: Traceback (most recent call last):\n[default{r}]:[rank{r}]: RuntimeError: {msg}\n"
LAUNCHER_TAIL = "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \ntrain.py FAILED\n"


def result(tmp_path: Path, stderr: str, rc: int = 1, ranks: int = 4) -> TrialResult:
    (tmp_path / "stdout").write_text("")
    (tmp_path / "stderr").write_text(stderr)
    spec = TrialSpec(argv=("torchrun",), env={WORLD_SIZE_VAR: str(ranks)})
    return TrialResult(spec=spec, trial_dir=tmp_path, rc=rc, signal=None, timed_out=False, started_at=0.0,
                       wall_s=1.0, stdout_path=tmp_path / "stdout", stderr_path=tmp_path / "stderr",
                       stdout_tail="", stderr_tail=stderr[-4000:])  # fmt: skip


def test_split_ranks() -> None:
    got = split_ranks("[default1]:a\nplain\n[default0]:b\n[default1]:c\n", PREFIX)
    assert got == {1: [(0, "a"), (3, "c")], 0: [(2, "b")]}


def test_earliest_failing_rank_names_the_failure_not_the_launcher(tmp_path: Path) -> None:
    err = (
        "[default3]:ok\n" + TRACE.format(r=2, msg="bad sum with 4 ranks") + TRACE.format(r=0, msg="peer died")
    )
    err += LAUNCHER_TAIL
    j = RankOracle(StandardOracle(OracleConfig()), PREFIX, "any").judge(result(tmp_path, err))
    assert j.outcome is Outcome.FAIL
    assert j.signature == "rank: RuntimeError: bad sum with <n> ranks" and "rank 2 failed first" in j.reason


def test_a_rank_that_only_warned_did_not_fail(tmp_path: Path) -> None:
    # every rank warns at import (torch without numpy); rank 1 was killed before it printed more, and
    # its warning, the earliest line, named the failure (a CI run reduced 4 ranks to 1 on it)
    warn = "[default{r}]:/v/torch/_tensor.py:12: UserWarning: Failed to initialize NumPy: No module named 'numpy'\n"
    err = warn.format(r=1) + warn.format(r=2) + TRACE.format(r=2, msg="bad sum with 4 ranks") + LAUNCHER_TAIL
    j = RankOracle(StandardOracle(OracleConfig()), PREFIX, "any").judge(result(tmp_path, err))
    assert j.signature == "rank: RuntimeError: bad sum with <n> ranks" and "rank 2 failed first" in j.reason


def test_aggregate_all_and_rank0(tmp_path: Path) -> None:
    err = TRACE.format(r=1, msg="boom") + "[default0]:fine\n[default2]:fine\n[default3]:fine\n"
    base = StandardOracle(OracleConfig())
    assert (
        RankOracle(base, PREFIX, "any").judge(result(tmp_path, err)).signature == "rank: RuntimeError: boom"
    )
    j = RankOracle(base, PREFIX, "all").judge(result(tmp_path, err))
    assert j.outcome is Outcome.FAIL and j.signature == "ranks: partial failure"
    j = RankOracle(base, PREFIX, "rank0").judge(result(tmp_path, err))
    assert j.signature == "ranks: partial failure"
    every = "".join(TRACE.format(r=r, msg="boom") for r in range(4))
    assert (
        RankOracle(base, PREFIX, "all").judge(result(tmp_path, every)).signature == "rank: RuntimeError: boom"
    )


def test_regex_oracle_per_rank_and_no_prefix_fallback(tmp_path: Path) -> None:
    cfg = OracleConfig(fail_regex=re.compile("NaN at step"), stream=Stream.BOTH)
    err = "[default0]:loss fine\n[default1]:NaN at step 12\n"
    j = RankOracle(StandardOracle(cfg), PREFIX, "any").judge(result(tmp_path, err, rc=0))
    assert j.outcome is Outcome.FAIL and j.signature is not None and j.signature.startswith("output")
    plain = RankOracle(StandardOracle(OracleConfig()), PREFIX, "any").judge(
        result(tmp_path, "ValueError: x\n")
    )
    assert plain.signature == "exit 1: ValueError: x"  # another launcher: judged as one output


REPO = Path(__file__).parents[2]


def torch_python() -> str | None:
    """An interpreter with PyTorch: $SLEUTH_TORCH_PYTHON, .venv-torch (what .ci/run builds), or this one.

    Looked up without importing torch (find_spec), so no ~250 MB child enters the worker's rusage.
    """
    for cand in (
        os.environ.get("SLEUTH_TORCH_PYTHON"),
        str(REPO / ".venv-torch" / "bin" / "python"),
        sys.executable,
    ):
        if not cand or not Path(cand).is_file() or not (Path(cand).parent / "torchrun").is_file():
            continue
        probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"
        if subprocess.run([cand, "-c", probe], check=False).returncode == 0:
            return cand
    return None


@pytest.mark.torch
@pytest.mark.slow
def test_collective_failing_from_three_ranks_reduces_to_three(tmp_path: Path) -> None:
    py = torch_python()
    if py is None:
        pytest.skip("no PyTorch: set SLEUTH_TORCH_PYTHON, or build .venv-torch as .ci/run does")
    (tmp_path / "collective.py").write_text((PROGRAMS / "collective.py").read_text())
    launcher = [str(Path(py).parent / "torchrun"), *DEFAULT_LAUNCHER[1:]]
    spec = {
        "name": "collective",
        "workload": {"command": [py, "collective.py"], "timeout": 240, "env": {"OMP_NUM_THREADS": "1"}},
        "budget": {"baseline_trials": 2},
        "axes": [{"name": "RANKS", "kind": "world_size", "initial": 4, "floor": 1, "launcher": launcher}],
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    argv = [sys.executable, "-m", "sleuth", "reduce", "--spec", str(tmp_path / "spec.yaml"), "--json"]
    res = run_detached(argv, cwd=tmp_path, env=env_with_path(tmp_path), timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    d = doc(res)
    assert d["final"]["axes"] == {"RANKS": 3}
    assert d["signature"] == "rank: RuntimeError: all_reduce produced a bad sum with <n> ranks"
    repro = (Path(d["run_dir"]) / "shrunken" / "run_repro.sh").read_text()
    assert "--nproc-per-node 3" in repro
