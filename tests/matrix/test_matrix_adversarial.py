"""Odd input paths of ``sleuth matrix``: a FIFO (or other non-regular file) as --mitigations-file or
--recipe is a one-line error naming the flag's file, exit 2, never a read that waits forever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("flag", ["--mitigations-file", "--recipe"])
def test_a_fifo_is_refused_not_read(flag: str, tmp_path: Path, write_recipe) -> None:
    recipe = write_recipe()
    fifo = tmp_path / "side.yaml"
    os.mkfifo(fifo)  # nothing ever writes to it: reading it would block
    args = (
        ["--recipe", str(recipe), "--mitigations-file", str(fifo)]
        if flag != "--recipe"
        else [flag, str(fifo)]
    )
    res = subprocess.run(
        [sys.executable, "-m", "sleuth", "matrix", *args, "--dry-run", "--output", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and str(fifo) in lines[0] and "not a regular file" in lines[0], res.stderr
    assert not (tmp_path / "runs").exists()


def test_url_credentials_in_an_environment_axis_pin_stay_out_of_its_generated_name(tmp_path: Path) -> None:
    """``venv:PKG @ https://user:PASS@index/...`` (a private index) names its cell and directories
    after the pin: the password must not be part of that name."""
    pin = "venv:mypkg @ https://bob:S3cretPw77@pypi.example.com/mypkg-1.0.whl"
    res = subprocess.run(
        [sys.executable, "-m", "sleuth", "matrix", "--mitigation-axis", "tf32_off", "--environment-axis",
         f"host,{pin}", "--trials", "2", "--dry-run", "--json", "--", sys.executable, "w.py"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "venv-mypkg" in res.stdout  # the name still says what it is
    assert "S3cretPw77" not in res.stdout + res.stderr


def test_a_workloads_metrics_json_nested_too_deep_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    """``$SLEUTH_TRIAL_DIR/metrics.json`` is the workload's to write: 100,000 nested brackets (or
    bytes that are not UTF-8) leave the trial without metrics; matrix runs to its end."""
    (tmp_path / "w.py").write_text(
        "import os, sys\n"
        "d = os.environ['SLEUTH_TRIAL_DIR']\n"
        "deep = b'{\"step_time\": ' + b'[' * 100000 + b']' * 100000 + b'}'\n"
        "open(os.path.join(d, 'metrics.json'), 'wb').write(deep if os.environ['SLEUTH_CELL'] == 'baseline' else b'\\xff{')\n"
        "print('step done')\n"
    )  # fmt: skip
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "schema_version: 1\nseed: 1\n"
        f"workload: {{name: w, command: [{sys.executable!r}, w.py], oracle: {{kind: exit_code}}, step_time: {{metric: step_time}}}}\n"
        "trials: 2\ncells:\n  - {name: baseline, mitigations: [none]}\n  - {name: a, mitigations: [tf32_off]}\n"
    )  # fmt: skip
    res = subprocess.run(
        [sys.executable, "-m", "sleuth", "matrix", "--recipe", str(recipe), "--json", "--output", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert "Traceback" not in res.stderr and res.returncode in (0, 3), res.stderr[-2000:]
    import json

    cells = {c["name"]: c["counts"] for c in json.loads(res.stdout)["cells"]}
    assert cells["baseline"]["pass"] == cells["a"]["pass"] == 2


@pytest.mark.parametrize(
    "axis",
    [
        "venvx:https://bob:S3cretPw77@h.example/x",
        "venv:p @ https://bob:S3cretPw77@h/x,venv:p @ https://bob:S3cretPw77@h/x",
    ],
)
def test_an_environment_axis_error_does_not_echo_url_credentials(axis: str, tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "sleuth", "matrix", "--mitigation-axis", "tf32_off", "--environment-axis", axis,
         "--dry-run", "--", sys.executable, "w.py"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "--environment-axis" in res.stderr and "S3cretPw77" not in res.stderr


@pytest.mark.parametrize(("key", "workload"), [
    ("workload.command", '["python", "w.py", "a\\0b"]'), ("workload.cwd", '["python", "w.py"], cwd: "a\\0b"'),
])  # fmt: skip
def test_a_nul_byte_in_the_command_or_cwd_is_one_line(tmp_path: Path, key: str, workload: str) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"schema_version: 1\nworkload: {{name: w, command: {workload}, oracle: {{kind: exit_code}}}}\n"
        "trials: 1\ncells:\n  - {name: baseline, mitigations: [none]}\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "sleuth", "matrix", "--recipe", str(recipe), "--output", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr[-1500:]
    assert key in res.stderr and "NUL" in res.stderr
    assert not (tmp_path / "runs").exists()
