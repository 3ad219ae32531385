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
