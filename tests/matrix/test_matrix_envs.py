"""Matrix cells in other environments: a uv venv, and docker/podman/pyxis through the fake runtime."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakebin import isolated_path
from tests.matrix.conftest import default_signals, recipe_data


def fake_path(tmp_path: Path, *tools: str) -> str:
    """A PATH of its own: shims for ``tools`` and the basics, never a real docker/podman/srun/skopeo."""
    return isolated_path(tmp_path / "fakebin", fakes=tools)


@pytest.mark.parametrize("kind", ["docker", "podman", "pyxis"])
def test_container_cells_and_a_missing_image_error_row(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path], tmp_path: Path, kind: str
) -> None:
    # 5 trials: 0/5 against 5/5 is p = 0.008, significant after Holm over the matrix's two
    # comparisons (the fix, and the image's own effect); 0/4 against 4/4 (p = 0.029) would not be
    data = recipe_data(trials=5)
    data["cells"] = [
        {"name": "baseline"},
        {"name": "img-fix", "environment": {kind: "lab/img:1"}, "extra_env": {"WORK_FAIL_P": "0"}},
        {"name": "gone", "environment": {kind: "lab/missing:1"}},
    ]
    log = tmp_path / "calls.jsonl"
    env = {
        "PATH": fake_path(tmp_path, "docker", "podman", "srun"),
        "FAKE_RUNTIME_LOG": str(log),
        "FAKE_RUNTIME_IMAGES": "lab/img:1",
    }
    res = sleuth("matrix", "--recipe", write_recipe(data), "--json", env=env)
    assert res.rc == 0, res.stderr
    doc = res.json()
    cells = {c["name"]: c for c in doc["cells"]}
    assert cells["img-fix"]["counts"] == {"pass": 5, "fail": 0, "target_fail": 0, "other_fail": 0,
                                          "error": 0, "skip": 0, "total": 5}  # fmt: skip
    # the image had no baseline of its own (img-fix sets a variable): sleuth added one, and the
    # fix is judged against it
    key = cells["img-fix"]["environment"]
    assert doc["environment_baselines"][key] == f"baseline.{key}" == cells["img-fix"]["baseline_cell"]
    assert doc["added_cells"] == [f"baseline.{key}"]
    assert cells[f"baseline.{key}"]["counts"]["target_fail"] == 5
    assert cells["img-fix"]["classification"] == "fixed"
    # gone (none @ the missing image) is its environment's baseline, and an error row
    assert doc["environment_baselines"][cells["gone"]["environment"]] == "gone"
    assert cells["gone"]["classification"] == "error"
    assert "lab/missing:1 not found" in cells["gone"]["note"]
    assert cells["gone"]["counts"]["total"] == 0
    assert key.startswith(f"{kind}-")
    run_dir = Path(doc["run_dir"])
    assert (
        json.loads((run_dir / "environments" / key / "env.json").read_text())["container"]["image"]
        == "lab/img:1"
    )
    missing = json.loads((run_dir / "environments" / cells["gone"]["environment"] / "env.json").read_text())
    assert missing["placeholder"] is True
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    runs = [c["argv"] for c in calls if "run" in c["argv"][:1] or c["tool"] == "srun"]
    trial_runs = [a for a in runs if any(str(x).endswith("cellwork.py") for x in a)]
    assert len(trial_runs) == 10  # img-fix and the image's baseline
    argv = trial_runs[0]
    if kind == "pyxis":
        assert "--container-image=lab/img:1" in argv
    else:
        assert "lab/img:1" in argv
        assert "WORK_FAIL_P" in argv  # the cell's variables enter the container by name
        assert "SLEUTH_CELL" in argv


def test_venv_cell_runs_in_its_own_interpreter(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    data = recipe_data(trials=2)
    data["workload"]["command"] = ["python", data["workload"]["command"][1]]
    data["cells"] = [{"name": "baseline"}, {"name": "in-venv", "environment": {"venv": []}}]
    res = sleuth(
        "matrix",
        "--recipe",
        write_recipe(data),
        "--json",
        env={"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"},
    )
    assert res.rc in (0, 3), res.stderr
    doc = res.json()
    cells = {c["name"]: c for c in doc["cells"]}
    if cells["in-venv"]["classification"] == "error" and "uv" in cells["in-venv"]["note"]:
        pytest.skip(f"uv could not build a venv here: {cells['in-venv']['note']}")
    assert cells["in-venv"]["counts"]["total"] == 2
    run_dir = Path(doc["run_dir"])
    snap = json.loads((run_dir / "environments" / cells["in-venv"]["environment"] / "env.json").read_text())
    assert str(tmp_path / "cache") in json.dumps(snap["python"])


def test_ctrl_c_while_an_environment_is_prepared_writes_the_report_and_resumes(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path], tmp_path: Path, sleuth_env: dict[str, str]
) -> None:
    """A Ctrl-C while an image was checked (or a venv built) left the run dir without a report, a
    journaled interrupt or the resume hint: only ``interrupted``.  It is a Ctrl-C like any other now."""
    data = recipe_data(trials=2)
    data["cells"] = [{"name": "baseline"}, {"name": "img", "environment": {"docker": "lab/img:1"}}]
    recipe = write_recipe(data)
    bin_dir = tmp_path / "fakebin"
    path = isolated_path(bin_dir)
    asked = tmp_path / "docker-asked"
    hang = f"import pathlib, time; pathlib.Path({str(asked)!r}).touch(); time.sleep(120)"
    (bin_dir / "docker").write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "{hang}"\n')
    (bin_dir / "docker").chmod(0o755)
    argv = [sys.executable, "-m", "sleuth", "matrix", "--recipe", str(recipe)]
    proc = subprocess.Popen(default_signals(argv), env={**sleuth_env, "PATH": path, "SLEUTH_OUTPUT": str(tmp_path / "my runs")}, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not asked.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    (run_dir,) = (tmp_path / "my runs").glob("*/*/*/journal.jsonl")
    run_dir = run_dir.parent
    resume = f"`sleuth matrix resume {shlex.quote(str(run_dir))}`"  # a command to paste, quoted
    assert f"interrupted: {resume}" in out, out
    assert resume in (run_dir / "matrix.md").read_text()
    assert json.loads((run_dir / "matrix.json").read_text())["interrupted"] is True
    events = [json.loads(ln)["event"] for ln in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert events[-2:] == ["interrupted", "end"]
    (bin_dir / "docker").unlink()
    env = {"PATH": fake_path(tmp_path, "docker"), "FAKE_RUNTIME_IMAGES": "lab/img:1"}
    res = sleuth("matrix", "resume", run_dir, "--json", env=env)
    assert res.rc in (0, 3), res.stderr
    assert [c["counts"]["total"] for c in res.json()["cells"]] == [2, 2]
