"""Mitigations x environments: each cell against its own environment's baseline, each environment's
effect against the reference baseline, missing baselines added and said so.

The environments are real: a plugin environment registered through an entry point (this machine
with one variable changed, as a patched driver would be) and, with the package index, a uv venv.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.matrix.conftest import CELLWORK, recipe_data
from tests.test_venv import network

PLUGIN = '''
"""Host-kind environments that differ from the host by variables."""
import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Patched:
    """This machine with variables forced for every trial."""
    name: str
    extra: dict

    def prepare(self):
        return self

    def wrap(self, spec: Any) -> Any:
        return dataclasses.replace(spec, env={**spec.env, **self.extra})

    def snapshot(self) -> dict:
        return {"kind": "patched", "extra": dict(self.extra)}

    def describe(self) -> dict:
        return {"kind": "patched", "extra": dict(self.extra)}


def environments():
    return {
        "broken-driver": lambda: Patched("broken-driver", {"WORK_FAIL_P": "1"}),
        "same-host": lambda: Patched("same-host", {}),
    }
'''

SIDECAR = "version: 1\nmitigations:\n  work_fix: {env: {WORK_FIX: '1'}, description: the fix}\n"


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH with an installed-looking distribution registering the plugin environments."""
    root = tmp_path / "plug"
    info = root / "envplug-0.1.dist-info"
    info.mkdir(parents=True)
    (root / "envplug.py").write_text(PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: envplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[sleuth.environments]\nenvs = envplug:environments\n")
    return {
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        "WORK_SEED": "7",
        "WORK_FAIL_P": "0",
    }


def shim(side: Path, *extra: str) -> list[str]:
    return [
        "matrix", "--mitigation-axis", "work_fix,nccl_p2p_off", "--environment-axis", "host,broken-driver",
        "--trials", "6", "--fail-regex", "loss is nan", "--mitigations-file", str(side), "--seed", "1",
        *extra, "--", sys.executable, str(CELLWORK),
    ]  # fmt: skip


def test_each_cell_is_judged_against_its_own_environment(
    sleuth: Callable[..., Any], tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    side = tmp_path / "side.yaml"
    side.write_text(SIDECAR)
    res = sleuth(*shim(side, "--json"), env=plugin_env)
    assert res.rc == 0, res.stderr
    doc = res.json()
    assert doc["reference_environment"] == "host"
    assert doc["environment_baselines"] == {
        "host": "baseline.host",
        "broken-driver": "baseline.broken-driver",
    }
    assert doc["added_cells"] == []  # the shim gives every environment its none cell
    cells = {c["name"]: c for c in doc["cells"]}
    assert cells["baseline.host"]["failure_rate"] == 0.0
    assert cells["baseline.broken-driver"]["failure_rate"] == 1.0
    assert cells["baseline.broken-driver"]["role"] == "environment_baseline"
    # against the host baseline (0%) these two would read "inconclusive" and "worse"; against
    # their own environment's baseline (100%) the fix is a fix and the no-op is no fix
    fix, noop = cells["work_fix.broken-driver"], cells["nccl_p2p_off.broken-driver"]
    assert fix["baseline_cell"] == noop["baseline_cell"] == "baseline.broken-driver"
    assert fix["classification"] == "fixed"
    assert fix["p_value"] == pytest.approx(2 / 924, rel=1e-4)  # 0/6 vs 6/6
    assert noop["classification"] in {"no_effect", "inconclusive"}
    assert cells["work_fix.host"]["baseline_cell"] == "baseline.host"
    # the environment's own effect is a row of its own
    (effect,) = doc["environment_effects"]
    assert effect["environment"] == "broken-driver"
    assert effect["baseline_cell"] == "baseline.broken-driver"
    assert effect["reference"] == "baseline.host"
    assert effect["classification"] == "worse"
    run_dir = Path(doc["run_dir"])
    md = (run_dir / "matrix.md").read_text()
    assert "## Environments: each environment's baseline against baseline.host (host)" in md
    assert "| broken-driver | baseline.broken-driver | 100% [61%, 100%] | worse |" in md
    # the people's report says the same (resuming a finished matrix prints it, runs nothing)
    human = sleuth("matrix", "resume", run_dir, env=plugin_env)
    assert human.rc == 0, human.stderr
    out = human.stdout
    assert "each cell against its environment's baseline" in out
    assert "environments: each environment's baseline against baseline.host @ host" in out
    (row,) = [ln for ln in out.splitlines() if ln.startswith("broken-driver ")]
    assert row.split()[:2] == ["broken-driver", "baseline.broken-driver"]
    assert "worse" in row


def test_a_missing_environment_baseline_is_added_and_said_so(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path], tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    side = tmp_path / "side.yaml"
    side.write_text(SIDECAR)
    # 5 trials: 0/5 against 5/5 (p = 0.008) survives Holm over the matrix's two testable comparisons
    data = recipe_data(trials=5)
    data["workload"]["env"]["WORK_FAIL_P"] = "0"  # the host passes; broken-driver forces a failure
    data["cells"] = [
        {"name": "baseline"},
        {"name": "fix-there", "mitigations": ["work_fix"], "environment": "broken-driver"},
        {"name": "same", "mitigations": ["none"], "environment": "same-host"},  # its own baseline
    ]
    path = write_recipe(data)
    dry = sleuth("matrix", "--recipe", path, "--mitigations-file", side, "--dry-run", env=plugin_env)
    assert dry.rc == 0, dry.stderr
    assert "baseline.broken-driver: would be added by sleuth, the baseline of its environment" in dry.stdout
    plan = sleuth(
        "matrix", "--recipe", path, "--mitigations-file", side, "--dry-run", "--json", env=plugin_env
    ).json()
    assert [c["name"] for c in plan["cells"]] == ["baseline", "baseline.broken-driver", "fix-there", "same"]
    assert plan["added_cells"] == ["baseline.broken-driver"]
    assert plan["trials_total"] == 20
    assert plan["environment_baselines"] == {
        "host": "baseline",
        "broken-driver": "baseline.broken-driver",
        "same-host": "same",
    }
    assert not (tmp_path / "runs").exists()
    res = sleuth("matrix", "--recipe", path, "--mitigations-file", side, "--json", env=plugin_env)
    assert res.rc == 0, res.stderr
    doc = res.json()
    cells = {c["name"]: c for c in doc["cells"]}
    assert cells["baseline.broken-driver"]["counts"]["target_fail"] == 5
    assert cells["fix-there"]["classification"] == "fixed"
    effects = {e["environment"]: e["classification"] for e in doc["environment_effects"]}
    assert effects["broken-driver"] == "worse"
    assert effects["same-host"] == "inconclusive"  # 0% and 0%: neither showed the failure
    run_dir = Path(doc["run_dir"])
    resolved = yaml.safe_load((run_dir / "recipe.resolved.yaml").read_text())
    assert [c["name"] for c in resolved["cells"]] == [c["name"] for c in plan["cells"]]
    start = json.loads((run_dir / "journal.jsonl").read_text().splitlines()[0])
    assert start["added"] == ["baseline.broken-driver"]
    assert "baseline.broken-driver" in (run_dir / "matrix.md").read_text().split("Added by sleuth")[1]
    # the resolved recipe names the cell: nothing is added a second time, and resume says it was added
    again = sleuth(
        "matrix", "--recipe", run_dir / "recipe.resolved.yaml", "--dry-run", "--json", env=plugin_env
    )
    assert again.json()["added_cells"] == []
    assert [c["name"] for c in again.json()["cells"]] == [c["name"] for c in plan["cells"]]
    human = sleuth("matrix", "resume", run_dir, env=plugin_env)
    assert "baseline.broken-driver: added by sleuth" in human.stdout


@pytest.mark.network
@network
def test_a_venv_environment_gets_its_own_baseline(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    """A real uv venv in which the failure cannot happen (six 1.16.0 "fixes" it)."""
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
        "WORK_SEED": "7",
        "WORK_FAIL_P": "1",
        "WORK_FIXED_BY": "six==1.16.0",
    }
    res = sleuth(
        "matrix", "--mitigation-axis", "nccl_p2p_off", "--environment-axis", "host,venv:six==1.16.0",
        "--trials", "5", "--fail-regex", "loss is nan", "--seed", "2", "--json", "--", "python", str(CELLWORK),
        env=env, timeout=300,
    )  # fmt: skip
    assert res.rc in (0, 3), res.stderr
    doc = res.json()
    cells = {c["name"]: c for c in doc["cells"]}
    venv_base = next(n for n in cells if n.startswith("baseline.venv-"))
    if cells[venv_base]["classification"] == "error":
        pytest.skip(f"uv could not build the venv here: {cells[venv_base]['note']}")
    key = cells[venv_base]["environment"]
    assert doc["environment_baselines"] == {"host": "baseline.host", key: venv_base}
    assert cells[venv_base]["failure_rate"] == 0.0
    assert cells["baseline.host"]["failure_rate"] == 1.0
    (effect,) = doc["environment_effects"]
    assert (effect["environment"], effect["classification"]) == (key, "fixed")
    in_venv = next(c for c in doc["cells"] if c["name"].startswith("nccl_p2p_off.venv-"))
    assert in_venv["baseline_cell"] == venv_base
    assert in_venv["classification"] == "inconclusive"  # against the host baseline it would be "fixed"
