"""``sleuth run --environment container:IMAGE`` and matrix cells in a podman environment, for real;
and ``--gpus`` reaching a container through CDI (a fake ``nvidia.com/gpu`` spec: no GPU here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.containers.conftest import BUSYBOX, PYTHON, Podman, needs_podman
from tests.matrix.conftest import CELLWORK

pytestmark = needs_podman

WRITE = (
    "import json, os, pathlib; d = pathlib.Path(os.environ['SLEUTH_TRIAL_DIR']); "
    "(d / 'metrics.json').write_text(json.dumps({'n': len(os.environ['MYV'])})); "
    "print(os.environ['MYV'], os.environ.get('HOST_ONLY', '-'), os.environ['SLEUTH_TRIAL_ID'])"
)


def sleuth(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache"), "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "sleuth", *args], cwd=tmp_path, env=e, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


def test_sleuth_run_in_a_container(podman: Podman, tmp_path: Path) -> None:
    res = sleuth(tmp_path, "run", "--environment", f"container:{PYTHON}", "--trials", "3", "--jobs", "2",
                 "--env", "MYV=a value", "--json", "--output", "o", "--", "python3", "-c", WRITE,
                 env={"HOST_ONLY": "leak"})  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    run = tmp_path / doc["run_dir"]
    outs = sorted((run / "trials").glob("*/stdout"))
    assert [p.read_text().split() for p in outs] == [["a", "value", "-", p.parent.name] for p in outs]
    metrics = [json.loads((p.parent / "result.json").read_text())["metrics"] for p in outs]
    assert metrics == [{"n": 7}] * 3  # metrics.json written inside, read from the trial dir
    snap = json.loads((run / "environment_env.json").read_text())
    assert snap["container"]["image"] == PYTHON and snap["python"]["version"].startswith("3.")
    assert podman.containers(run) == []


def test_sleuth_run_with_a_missing_image_is_infrastructure(podman: Podman, tmp_path: Path) -> None:
    res = sleuth(tmp_path, "run", "--environment", "podman:localhost/sleuth-test/none:1", "--output", "o", "--",
                 "true")  # fmt: skip
    assert res.returncode == 4, res.stderr
    assert "localhost/sleuth-test/none:1 not found" in res.stderr
    assert not (tmp_path / "o").exists()  # no run dir for an environment that cannot be prepared


@pytest.mark.parametrize("image", ["--help", "-v"])
def test_an_image_that_reads_as_an_option_is_a_usage_error(
    podman: Podman, tmp_path: Path, image: str
) -> None:
    """``podman:--help``: ``podman image exists --help`` answers 0 and ``podman run ... --help true``
    prints podman's help and exits 0, so every trial PASSed though nothing ran."""
    res = sleuth(tmp_path, "run", "--environment", f"podman:{image}", "--output", "o", "--", "true")
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"image {image!r} starts with '-'" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_matrix_cells_in_a_podman_environment(podman: Podman, tmp_path: Path) -> None:
    shutil.copy(CELLWORK, tmp_path / "cellwork.py")
    recipe = {
        "schema_version": 1,
        "ticket": "T-1",
        "seed": 3,
        "workload": {
            "name": "cellwork",
            "command": ["python3", "cellwork.py"],
            "oracle": {"kind": "regex", "pattern": "loss is nan", "stream": "stdout"},
            "env": {"WORK_SEED": "7", "WORK_FAIL_P": "1"},
            "timeout": 120,
        },
        "trials": 6,
        "cells": [
            {"name": "in-image", "environment": {"podman": PYTHON}},
            {"name": "fixed", "environment": {"podman": PYTHON}, "extra_env": {"WORK_FAIL_P": "0"}},
        ],
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    res = sleuth(tmp_path, "matrix", "--recipe", "recipe.yaml", "--jobs", "2", "--json", "--output", "o")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    cells = {c["name"]: c for c in doc["cells"]}
    assert cells["in-image"]["counts"]["target_fail"] == 6
    assert cells["fixed"]["counts"]["pass"] == 6
    assert cells["fixed"]["classification"] == "fixed"
    run = tmp_path / doc["run_dir"]  # relative to where sleuth ran, or absolute
    results = [json.loads(p.read_text()) for p in run.glob("cells/*/trials/*/result.json")]
    assert len(results) == 12
    assert all(r["argv"][0].endswith("podman") and "--name" in r["argv"] for r in results)
    assert podman.containers(run) == []


@pytest.fixture
def fake_cdi() -> Iterator[None]:
    """A CDI spec naming ``nvidia.com/gpu`` devices 0, 1 and all that only set SLEUTH_FAKE_GPU."""
    cdi = Path("/var/run/cdi")
    real = [p for d in ("/etc/cdi", "/var/run/cdi") for p in Path(d).glob("*") if "nvidia" in p.name]
    if os.geteuid() != 0:
        pytest.skip("writing a CDI spec in /var/run/cdi needs root")
    if real:
        pytest.skip(f"this host has a real NVIDIA CDI spec ({real[0]}): not faking one beside it")
    made = not cdi.exists()
    cdi.mkdir(parents=True, exist_ok=True)
    spec = cdi / f"sleuth-test-{os.getpid()}.yaml"
    devices = [{"name": n, "containerEdits": {"env": [f"SLEUTH_FAKE_GPU={n}"]}} for n in ("0", "1", "all")]
    spec.write_text(yaml.safe_dump({"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu", "devices": devices}))
    try:
        yield
    finally:
        spec.unlink(missing_ok=True)
        if made:
            shutil.rmtree(cdi, ignore_errors=True)


def test_gpus_reach_the_container_one_per_trial(podman: Podman, tmp_path: Path, fake_cdi: None) -> None:
    script = 'echo "$SLEUTH_FAKE_GPU ${CUDA_VISIBLE_DEVICES-unset}" > "$SLEUTH_TRIAL_DIR/gpu"'
    res = sleuth(tmp_path, "run", "--environment", f"podman:{BUSYBOX}", "--gpus", "0,1", "--trials", "4", "--json",
                 "--output", "o", "--", "sh", "-c", script)  # fmt: skip
    assert res.returncode == 0, res.stderr
    run = tmp_path / json.loads(res.stdout)["run_dir"]
    seen: list[Any] = []
    for trial in sorted((run / "trials").iterdir()):
        got, cuda = (trial / "gpu").read_text().split()
        rec = json.loads((trial / "result.json").read_text())
        assert rec["device"] == got and cuda == "unset"  # its own device, and the only one inside
        seen.append(got)
    assert set(seen) <= {"0", "1"} and len(seen) == 4
    # without --gpus every container gets all of them (auto: this host now "has" NVIDIA GPUs)
    res = sleuth(tmp_path, "run", "--environment", f"podman:{BUSYBOX}", "--json", "--output", "o2", "--",
                 "sh", "-c", script)  # fmt: skip
    assert res.returncode == 0, res.stderr
    trial = next((tmp_path / json.loads(res.stdout)["run_dir"] / "trials").iterdir())
    assert (trial / "gpu").read_text().split()[0] == "all"
