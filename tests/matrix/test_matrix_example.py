"""examples/matrix-nan end to end: the classifications the README promises."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "matrix-nan"


@pytest.mark.slow
def test_matrix_nan_example(sleuth: Callable[..., Any]) -> None:
    # MATRIX_NAN_SEED makes every trial reproducible; without it the example is really random
    env = {
        "MATRIX_NAN_SEED": "2024",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    res = sleuth("matrix", "--recipe", EXAMPLE / "recipe.yaml", "--jobs", "2", "--json", env=env, timeout=600)
    assert res.rc == 0, res.stderr
    doc = res.json()
    cells = {c["name"]: c for c in doc["cells"]}
    assert doc["baseline"] == "baseline"
    base = cells["baseline"]
    assert 0.15 < base["failure_rate"] < 0.6
    assert cells["tf32-off"]["classification"] == "fixed"
    assert cells["tf32-off"]["confound"] is None
    blocking = cells["launch-blocking"]
    assert blocking["classification"] == "fixed"
    assert blocking["confound"] is not None
    assert blocking["confound"].startswith("speed (+")
    assert blocking["step_time_ratio_ci"][0] > 1.15
    assert cells["no-p2p"]["classification"] in {"no_effect", "inconclusive"}
    assert cells["no-p2p"]["confound"] is None
    md = (Path(doc["run_dir"]) / "matrix.md").read_text()
    assert "the slowdown itself may be what helps" in md


@pytest.mark.slow
def test_matrix_plugin_example(sleuth: Callable[..., Any]) -> None:
    """examples/matrix-plugin: the built-in named workload, steps, a baseline-* cell; seeded."""
    recipe = Path(__file__).parents[2] / "examples" / "matrix-plugin" / "recipe.yaml"
    res = sleuth("matrix", "--recipe", recipe, "--jobs", "2", "--json", timeout=600)
    assert res.rc == 0, res.stderr
    doc = res.json()
    cells = {c["name"]: c for c in doc["cells"]}
    assert doc["baseline"] == "baseline-fp16" and doc["workload"] == "numpy_nan"
    assert 0.15 < cells["baseline-fp16"]["failure_rate"] < 0.6
    assert cells["tf32-off"]["classification"] == "fixed" and cells["tf32-off"]["confound"] is None
    assert cells["launch-blocking"]["classification"] == "fixed"
    assert (cells["launch-blocking"]["confound"] or "").startswith("speed (+")
    assert cells["no-p2p"]["classification"] in {"no_effect", "inconclusive"}
    assert cells["short-run"]["steps"] == 10 and cells["short-run"]["classification"] == "fixed"
