"""The spec's ``environment:`` and ``mitigations:`` are honoured by every trial of the search."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.fakebin import isolated_path
from tests.reduce.conftest import KNOBS_MINIMUM, doc, knobs_spec


def test_container_environment_runs_every_trial_in_the_image(cli, tmp_path: Path) -> None:
    spec = knobs_spec(tmp_path, environment={"docker": "lab/img:1"})
    log = tmp_path / "calls.jsonl"
    env = {"PATH": isolated_path(tmp_path / "fakebin", fakes=("docker",)), "FAKE_RUNTIME_LOG": str(log),
           "FAKE_RUNTIME_IMAGES": "lab/img:1"}  # fmt: skip
    res = cli("reduce", "--spec", spec, "--json", env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    d = doc(res)
    assert d["final"]["axes"] == KNOBS_MINIMUM
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    trials = [
        c["argv"]
        for c in calls
        if c["tool"] == "docker" and any(str(a).endswith("knobs.py") for a in c["argv"])
    ]
    assert len(trials) == d["trials"]
    assert all("lab/img:1" in a and "SIZE" in a for a in trials)  # the workload's variables go in by name
    recipe = yaml.safe_load((Path(d["run_dir"]) / "shrunken" / "recipe.yaml").read_text())
    assert recipe["cells"][0]["environment"] == {"docker": "lab/img:1"}


def test_mitigations_apply_to_every_trial_and_go_to_the_recipe(cli, tmp_path: Path) -> None:
    spec = knobs_spec(
        tmp_path, mitigations=["cuda_launch_blocking"], budget={"baseline_trials": 1, "max_trials": 6}
    )
    d = doc(cli("reduce", "--spec", spec, "--json"))
    run = Path(d["run_dir"])
    env = json.loads((run / "shrunken" / "env.json").read_text())["workload_env"]
    assert env["CUDA_LAUNCH_BLOCKING"] == "1"
    recipe = yaml.safe_load((run / "shrunken" / "recipe.yaml").read_text())
    assert recipe["cells"][0]["mitigations"] == ["cuda_launch_blocking"]
    assert "CUDA_LAUNCH_BLOCKING" not in recipe["workload"]["env"]
