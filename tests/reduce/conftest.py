"""Helpers for the reduce tests: a spec over programs/knobs.py and a CLI runner with PATH set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

PROGRAMS = Path(__file__).parent / "programs"
#: the interpreter's directory first on PATH, so "python", torchrun and sleuth resolve to this venv
BIN = str(Path(sys.executable).parent)


def knobs_spec(tmp_path: Path, **over: Any) -> Path:
    """Write lines.txt (60 lines, two needed) and spec.yaml for knobs.py; returns the spec path."""
    lines = [f"line{i:02d}" for i in range(60)]
    lines[11], lines[47] = "alpha", "omega"
    (tmp_path / "lines.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "knobs.py").write_text((PROGRAMS / "knobs.py").read_text())
    data: dict[str, Any] = {
        "name": "knobs",
        "workload": {
            "command": [sys.executable, "knobs.py", "--steps", "{STEPS}", "{LINES}", "{FLAGS}"],
            "env": {f"V{i}": str(i) for i in range(10)} | {"NEED": "1"},
            "timeout": 60,
        },
        "oracle": {"kind": "signature"},
        "budget": {"baseline_trials": 2},
        "axes": [
            {
                "name": "STEPS",
                "kind": "param",
                "initial": 400,
                "floor": 1,
                "step_regex": r"boom at step (\d+)",
            },
            {"name": "SIZE", "kind": "env", "initial": 300, "floor": 0},
            {"name": "LINES", "kind": "file_lines", "path": "lines.txt"},
            {"name": "ENVS", "kind": "env_set"},
            {"name": "FLAGS", "kind": "arg_set", "values": ["--fast", "--slow"]},
        ],
    }
    for key, value in over.items():
        node = data
        parts = key.split("__")
        for p in parts[:-1]:
            node = node[int(p)] if p.isdigit() else node[p]
        node[parts[-1]] = value
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec


KNOBS_MINIMUM = {"STEPS": 37, "SIZE": 20, "LINES": ["alpha", "omega"], "ENVS": ["NEED"], "FLAGS": []}


def env_with_path(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', os.defpath)}"
    env["SLEUTH_OUTPUT"] = str(tmp_path / "runs")
    env["SLEUTH_CACHE"] = str(tmp_path / "cache")
    env["SLEUTH_PROGRESS_INTERVAL"] = "0"
    env["COLUMNS"] = "200"
    return env


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m sleuth ARGS`` in tmp_path, this venv first on PATH."""

    def run(*args: str | Path, timeout: float = 600, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return subprocess.run(
            [sys.executable, "-m", "sleuth", *map(str, args)],
            capture_output=True, text=True, timeout=timeout, cwd=cwd or tmp_path,
            env={**env_with_path(tmp_path), **(env or {})}, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    return run


def run_detached(
    argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as an orphan (``setsid --fork``) and wait for it through files.

    The pytest worker never waits for it, so its memory (torchrun's ranks import torch: ~250 MB
    each) does not enter the worker's RUSAGE_CHILDREN, which other tests measure.
    """
    import shlex
    import time

    out, err, rc = cwd / ".detached.out", cwd / ".detached.err", cwd / ".detached.rc"
    script = f"{shlex.join(argv)} >{shlex.quote(str(out))} 2>{shlex.quote(str(err))}; echo $? >{shlex.quote(str(rc))}.tmp; mv {shlex.quote(str(rc))}.tmp {shlex.quote(str(rc))}"
    subprocess.run(
        ["setsid", "--fork", "sh", "-c", script], cwd=cwd, env=env, check=True, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout
    while not rc.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{argv} did not finish in {timeout}s")
        time.sleep(0.2)
    return subprocess.CompletedProcess(argv, int(rc.read_text()), out.read_text(), err.read_text())


def doc(res: subprocess.CompletedProcess[str]) -> Any:
    assert res.stdout.strip(), res.stderr
    return json.loads(res.stdout)
