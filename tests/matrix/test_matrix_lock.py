"""``recipe.resolved.yaml`` pins every definition it used: a rerun without the plugin runs the same matrix."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sleuth import __version__
from tests.matrix.conftest import recipe_data
from tests.matrix.test_matrix_cli import one_line_error
from tests.matrix.test_registry import make_plugin


def test_a_resolved_recipe_runs_without_the_plugin_that_defined_its_mitigation(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    root = tmp_path / "plug"
    root.mkdir()
    plugin = {"PYTHONPATH": os.pathsep.join([str(make_plugin(root)), os.environ.get("PYTHONPATH", "")])}
    data = recipe_data(trials=2)
    data["cells"] = [{"name": "baseline"}, {"name": "vendor", "mitigations": ["vendor_fix", "tf32_off"]}]
    res = sleuth("matrix", "--recipe", write_recipe(data), "--json", env=plugin)
    assert res.rc in (0, 3), res.stderr
    run_dir = Path(res.json()["run_dir"])
    resolved_path = run_dir / "recipe.resolved.yaml"
    resolved = yaml.safe_load(resolved_path.read_text())
    pins = resolved["resolved"]
    assert pins["sleuth_version"] == __version__
    assert pins["mitigations"]["vendor_fix"]["env"] == {"VENDOR_FIX": "1"}
    assert pins["mitigations"]["vendor_fix"]["source"].startswith("entry point vendor = fakeplug:MITIGATIONS")
    assert pins["mitigations"]["tf32_off"]["source"] == "built-in"  # built-ins are pinned too
    assert "none" in pins["mitigations"]
    # the plugin is gone: the resolved recipe still runs, with the same variables, and says why
    without = sleuth("matrix", "--recipe", resolved_path, "--json")
    assert without.rc in (0, 3), without.stderr
    doc = without.json()
    assert {c["name"]: c["env"] for c in doc["cells"]} == {c["name"]: c["env"] for c in res.json()["cells"]}
    assert doc["cells"][1]["env"]["VENDOR_FIX"] == "1"
    assert [w for w in doc["warnings"] if "vendor_fix" in w] == [
        f"mitigation 'vendor_fix' is not installed here ({pins['mitigations']['vendor_fix']['source']}): "
        "the pinned definition is used"
    ]
    # with the plugin back, the pin agrees with it: no warning
    with_plugin = sleuth("matrix", "--recipe", resolved_path, "--dry-run", "--json", env=plugin)
    assert with_plugin.rc == 0 and with_plugin.json()["warnings"] == [], with_plugin.stderr


def test_a_plugin_environment_alias_is_pinned_and_a_factory_cannot_be(
    sleuth: Callable[..., Any],
    write_recipe: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sleuth.matrix.driver import load_file
    from sleuth.matrix.output import resolved_recipe_data

    root = tmp_path / "plug"
    root.mkdir()
    monkeypatch.syspath_prepend(str(make_plugin(root)))  # installed for this process only
    data = recipe_data(trials=2)
    data["cells"] = [{"name": "baseline"}, {"name": "img", "environment": "vendor-img"}]
    loaded = load_file(write_recipe(data))  # what a run writes into recipe.resolved.yaml
    data2 = resolved_recipe_data(loaded.plan, dict(loaded.inline))
    assert data2["resolved"]["environments"]["vendor-img"]["docker"] == "vendor/img:1"
    path = tmp_path / "resolved.yaml"
    path.write_text(yaml.safe_dump(data2))
    without = sleuth("matrix", "--recipe", path, "--dry-run", "--json")
    assert without.rc == 0, without.stderr
    img = next(c for c in without.json()["cells"] if c["name"] == "img")
    assert img["environment_spec"] == {"docker": "vendor/img:1"}
    # a factory environment is code, not data: without its plugin it is unknown, in one line
    data["cells"][1]["environment"] = "vendor-cluster"
    one_line_error(
        sleuth("matrix", "--recipe", write_recipe(data), "--dry-run"), "unknown environment 'vendor-cluster'"
    )


def test_a_changed_builtin_does_not_change_a_rerun(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path]
) -> None:
    data = recipe_data(trials=1)
    data["cells"] = [{"name": "baseline"}, {"name": "t", "mitigations": ["tf32_off"]}]
    res = sleuth("matrix", "--recipe", write_recipe(data), "--json")
    run_dir = Path(res.json()["run_dir"])
    resolved = yaml.safe_load((run_dir / "recipe.resolved.yaml").read_text())
    # as if this sleuth's built-in had changed since (or the file came from another version)
    resolved["resolved"]["mitigations"]["tf32_off"]["env"] = {"NVIDIA_TF32_OVERRIDE": "7"}
    resolved["resolved"]["sleuth_version"] = "0.0.1"
    path = run_dir.parent / "edited.yaml"
    path.write_text(yaml.safe_dump(resolved))
    doc = sleuth("matrix", "--recipe", path, "--dry-run", "--json").json()
    assert next(c for c in doc["cells"] if c["name"] == "t")["env"] == {"NVIDIA_TF32_OVERRIDE": "7"}
    assert any("'tf32_off': the installed definition (built-in) differs" in w for w in doc["warnings"])
    assert any(f"resolved by sleuth 0.0.1; this is sleuth {__version__}" in w for w in doc["warnings"])
    human = sleuth("matrix", "--recipe", path, "--dry-run")
    assert "warning: mitigation 'tf32_off'" in human.stdout
