"""Named workloads (entry point ``sleuth.workloads``) and steps, end to end through ``sleuth matrix``.

The built-in ``numpy_nan`` plugin is found through the real entry point of the package installed in
this venv; a third-party plugin is a distribution on ``PYTHONPATH`` (a dist-info directory with
``entry_points.txt``), as pip would install it.
"""

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

from sleuth.workloads import PARAMS_VAR
from tests.matrix.conftest import CELLWORK
from tests.matrix.test_matrix_cli import one_line_error

PLUGIN = '''
"""A third-party workload plugin."""
import os
import sys

from sleuth.workloads import Workload

#: read when the module is imported, as a CUDA runtime reads its variables at start-up
MITIGATED_AT_START = os.environ.get("MITIGATED") == "1"


def run(steps=5, fail=True):
    print(f"steps={steps} SLEUTH_STEPS={os.environ.get('SLEUTH_STEPS')}", flush=True)
    failed = fail and not MITIGATED_AT_START
    return {"failed": failed, "signature": "custom boom", "step_times": [2.0] * steps}


class SelfReport(Workload):
    """Reports its own verdict and step times."""
    name = "selfreport"
    params = {"steps": 5, "fail": True}
    entry = run
    step_time = {"metric": "step_time"}


class Cellwork(Workload):
    """cellwork.py with its failure chance as a parameter."""
    params = {"fail_p": 1.0}
    oracle = {"kind": "regex", "pattern": "loss is nan", "stream": "stdout"}
    step_time = {"regex": "step_time_ms=([0-9.]+)"}
    env = {"WORK_SEED": "7"}

    def command(self, params):
        return ["env", f"WORK_FAIL_P={params['fail_p']}", sys.executable, CELLWORK, "{STEPS}"]


class Both:
    """One class for both verbs: reduce reads its axes, matrix its command."""
    name = "both"
    workload = {"command": [sys.executable, CELLWORK, "--steps", "{STEPS}"], "env": {"WORK_FAIL_P": "1"}}
    params = {}
    oracle = {"kind": "regex", "pattern": "loss is nan"}

    @property
    def axes(self):
        from sleuth.reduce.spec import NumericAxis
        return [NumericAxis(name="STEPS", kind="param", initial=8, floor=1)]
'''

SIDECAR = "version: 1\nmitigations:\n  mitigate: {env: {MITIGATED: '1'}, description: the fix}\n"


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH with an installed-looking distribution registering three workloads."""
    root = tmp_path / "plug"
    root.mkdir()
    (root / "myplug.py").write_text(f"CELLWORK = {str(CELLWORK)!r}\n" + PLUGIN)
    info = root / "myplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[sleuth.workloads]\nselfreport = myplug:SelfReport\ncellwork = myplug:Cellwork\nboth = myplug:Both\n"
    )
    (tmp_path / "side.yaml").write_text(SIDECAR)
    return {"PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}


def write(tmp_path: Path, data: dict[str, Any], name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_builtin_plugin_runs_an_aorta_style_recipe(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    """Done-when of issue 11: a recipe with a named workload and steps runs once the plugin is installed."""
    data = {
        "schema_version": 1,
        "ticket": "NAN-9",
        "seed": 4,
        "workload": {"plugin": "numpy_nan", "seed": 5, "spike_p": 0.3, "step_ms": 0.0},
        "trials": 5,
        "steps": 12,
        "confound": {"threshold": 1.15, "baseline_cell": "baseline-fp16"},
        "cells": [
            {"name": "baseline-fp16", "mitigations": ["none"]},
            {"name": "tf32-off", "mitigations": ["tf32_off"]},
            {"name": "short", "mitigations": ["none"], "steps": 1},
        ],
    }
    path = write(tmp_path, data)
    human = sleuth("matrix", "--recipe", path, timeout=300)
    assert human.rc == 0, human.stderr
    run_dir = next((tmp_path / "runs" / "NAN-9" / "numpy_nan").iterdir())
    assert f"rerun: sleuth matrix --recipe {run_dir}/recipe.resolved.yaml" in human.stdout
    doc = json.loads((run_dir / "matrix.json").read_text())
    assert doc["workload_plugin"]["origin"].startswith("entry point numpy_nan = sleuth.example_workloads:")
    assert doc["workload_plugin"]["params"]["steps"] == 12
    cells = {c["name"]: c for c in doc["cells"]}
    assert [cells[n]["steps"] for n in ("baseline-fp16", "tf32-off", "short")] == [12, 12, 1]
    # the mitigation reached a fresh interpreter before numpy was imported: float32 math, no NaN
    assert cells["tf32-off"]["env"] == {"NVIDIA_TF32_OVERRIDE": "0"}
    assert cells["tf32-off"]["counts"]["target_fail"] == 0
    assert cells["baseline-fp16"]["counts"]["target_fail"] == 5
    assert cells["tf32-off"]["classification"] == "fixed"
    # the workload reported its own verdict and step times (through the launcher)
    assert doc["target_signature"] == "reported: FloatingPointError: loss is nan"
    assert doc["step_time_source"] == "metric:step_time"
    trial = cells["tf32-off"]["trials"][0]
    tdir = run_dir / trial["path"]
    assert json.loads((tdir / "verdict.json").read_text())["outcome"] == "pass"
    assert len(json.loads((tdir / "metrics.json").read_text())["step_time"]) == 12
    assert "SLEUTH_STEPS" not in cells["short"]["env"]  # exported per trial, not a cell variable
    for c in doc["cells"]:
        assert c["step_time"]["p50"] is not None and c["step_time"]["p99"] >= c["step_time"]["p50"]
        assert all((run_dir / t["path"] / "result.json").is_file() for t in c["trials"])
    # the resolved recipe runs the same plan again
    again = sleuth("matrix", "--recipe", run_dir / "recipe.resolved.yaml", "--dry-run", "--json")
    assert again.rc == 0, again.stderr
    plan = again.json()
    assert [(c["name"], c["steps"], c["env"]) for c in plan["cells"]] == [
        (c["name"], c["steps"], c["env"]) for c in doc["cells"]
    ]
    assert plan["workload_plugin"]["params"] == doc["workload_plugin"]["params"]


def test_steps_reach_the_command_and_the_environment(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    show = "import os, sys; print('argv', sys.argv[1], 'env', os.environ['SLEUTH_STEPS'])"
    data = {
        "schema_version": 1,
        "workload": {"name": "show", "command": [sys.executable, "-c", show, "{STEPS}"]},
        "trials": 1,
        "steps": 7,
        "cells": [
            {"name": "baseline"},
            {"name": "longer", "mitigations": ["none"], "extra_env": {"X": "1"}, "steps": 30},
        ],
    }
    path = write(tmp_path, data)
    res = sleuth("matrix", "--recipe", path, "--json")
    assert res.rc in (0, 3), res.stderr
    run_dir = Path(res.json()["run_dir"])
    out = {c: (run_dir / f"cells/{c}/trials/0001/stdout").read_text().strip() for c in ("baseline", "longer")}
    assert out == {"baseline": "argv 7 env 7", "longer": "argv 30 env 30"}
    # --steps sets the recipe's steps (a cell's own steps still win), with a recipe or with the flags
    dry = sleuth("matrix", "--recipe", path, "--steps", "9", "--dry-run", "--json").json()
    assert [(c["steps"], c["command"][-1]) for c in dry["cells"]] == [(9, "9"), (30, "30")]
    shim = sleuth("matrix", "--steps", "4", "--mitigation-axis", "tf32_off", "--dry-run", "--json", "--",
                  "sh", "-c", "echo {STEPS}")  # fmt: skip
    assert [c["command"] for c in shim.json()["cells"]] == [["sh", "-c", "echo 4"]] * 2
    string = dict(data, workload={"command": "echo {STEPS} $SLEUTH_STEPS"})
    plan = sleuth("matrix", "--recipe", write(tmp_path, string, "s.yaml"), "--dry-run", "--json").json()
    assert plan["cells"][1]["command"] == ["/bin/sh", "-c", "echo 30 $SLEUTH_STEPS"]


def test_steps_mistakes_are_one_line(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    data = {
        "schema_version": 1,
        "workload": {"command": ["echo", "{STEPS}"]},
        "cells": [{"name": "baseline"}],
    }
    one_line_error(
        sleuth("matrix", "--recipe", write(tmp_path, data), "--dry-run"),
        "workload.command: uses {STEPS} but cells[0] (baseline) has no steps",
    )
    for bad, fragment in [(0, "steps: Input should be greater than 0"), (True, "steps: Input should be a valid integer"),
                          ("5", "steps: Input should be a valid integer")]:  # fmt: skip
        one_line_error(
            sleuth("matrix", "--recipe", write(tmp_path, {**data, "steps": bad}), "--dry-run"), fragment
        )
    one_line_error(sleuth("matrix", "--steps", "0", "--", "true"), "--steps 0: must be between 1 and")


def test_a_third_party_plugin_reports_for_itself(
    sleuth: Callable[..., Any], tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    res = sleuth("matrix", "--workload", "selfreport", "--mitigation-axis", "mitigate", "--mitigations-file",
                 tmp_path / "side.yaml", "--trials", "5", "--steps", "3", "--seed", "1", "--json",
                 env=plugin_env)  # fmt: skip
    assert res.rc == 0, res.stderr
    doc = res.json()
    cells = {c["name"]: c for c in doc["cells"]}
    assert doc["workload"] == "selfreport"
    assert doc["target_signature"] == "reported: custom boom"
    assert (cells["baseline"]["counts"]["target_fail"], cells["mitigate"]["counts"]["target_fail"]) == (5, 0)
    assert cells["mitigate"]["classification"] == "fixed"
    assert cells["mitigate"]["step_time"]["median"] == 2.0  # self-reported, not the wall time
    stdout = (Path(doc["run_dir"]) / "cells/mitigate/trials/0001/stdout").read_text()
    assert "steps=3 SLEUTH_STEPS=3" in stdout


def test_a_command_plugin_with_its_own_oracle(
    sleuth: Callable[..., Any], tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    data = {
        "schema_version": 1,
        "workload": {"plugin": "cellwork", "fail_p": 0.0},
        "trials": 2,
        "steps": 3,
        "cells": [{"name": "baseline"}, {"name": "fails", "extra_env": {"X": "1"}}],
    }
    res = sleuth("matrix", "--recipe", write(tmp_path, data), "--json", env=plugin_env)
    assert res.rc in (0, 3), res.stderr
    doc = res.json()
    assert doc["workload"] == "cellwork"  # no name of its own: the entry point's
    assert doc["target_signature"] == "the oracle pattern"  # the plugin's regex oracle
    assert doc["step_time_source"] == "regex:step_time_ms=([0-9.]+)"
    assert doc["cells"][0]["command"][:2] == ["env", "WORK_FAIL_P=0.0"]
    assert doc["cells"][0]["command"][-1] == "3"
    resolved = yaml.safe_load((Path(doc["run_dir"]) / "recipe.resolved.yaml").read_text())
    assert resolved["workload"]["params"] == {"fail_p": 0.0}
    assert resolved["workload"]["env"] == {"WORK_SEED": "7"}  # the plugin's variables


def test_plugin_mistakes_are_one_line(
    sleuth: Callable[..., Any], tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    def recipe(**workload: Any) -> Path:
        data = {"schema_version": 1, "workload": workload, "cells": [{"name": "baseline"}]}
        return write(tmp_path, data)

    def dry(path: Path) -> Any:
        return sleuth("matrix", "--recipe", path, "--dry-run", env=plugin_env)

    one_line_error(dry(recipe(plugin="selfreport", fail=1)), "workload.fail: expected bool, got int 1")
    one_line_error(dry(recipe(plugin="selfreport", steps="5")), "workload.steps: expected int, got str '5'")
    one_line_error(
        dry(recipe(plugin="selfreport", steps=True)), "workload.steps: expected int, got bool True"
    )
    one_line_error(dry(recipe(plugin="cellwork", fail_p=True)), "workload.fail_p: expected a number")
    one_line_error(dry(recipe(plugin="selfreport", colour=1)),
                   "workload.colour: workload selfreport has no parameter 'colour' (its parameters: fail, steps)")  # fmt: skip
    one_line_error(dry(recipe(plugin="selfreport", params={"fail": False}, fail=True)), "given twice")
    res = dry(recipe(plugin="nope"))
    one_line_error(res, "workload.plugin: plugin 'nope': no workload plugin of that name")
    assert "numpy_nan" in res.stderr and "selfreport" in res.stderr  # the installed ones are listed
    one_line_error(dry(recipe(plugin="numpy_nan", command=["x"])), "exactly one of command")
    one_line_error(dry(recipe(command=["x"], lr=0.1)), "workload.lr: unknown key")
    one_line_error(
        sleuth("matrix", "--recipe", recipe(plugin="numpy_nan"), "--workload", "numpy_nan"),
        "--recipe cannot be mixed with --workload",
    )
    one_line_error(
        sleuth("matrix", "--workload", "numpy_nan", "--", "python", "x.py"), "--workload numpy_nan"
    )


def test_module_and_file_references(
    sleuth: Callable[..., Any], tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    by_module = sleuth("matrix", "--workload", "myplug:SelfReport", "--trials", "1", "--dry-run", "--json",
                       env=plugin_env)  # fmt: skip
    assert by_module.rc == 0, by_module.stderr
    assert by_module.json()["workload_plugin"]["origin"] == "myplug:SelfReport"
    plug = Path(plugin_env["PYTHONPATH"].split(os.pathsep)[0]) / "myplug.py"
    by_file = sleuth("matrix", "--workload", f"{plug}:SelfReport", "--trials", "1", "--dry-run", "--json",
                     env=plugin_env)  # fmt: skip
    assert by_file.rc == 0, by_file.stderr
    # a word that is no plugin is a command
    cmd = sleuth("matrix", "--workload", "echo hi", "--trials", "1", "--dry-run", "--json")
    assert cmd.json()["cells"][0]["command"] == ["/bin/sh", "-c", "echo hi"]  # one string, as --workload-cmd


def test_one_class_serves_reduce_and_matrix(
    sleuth: Callable[..., Any], tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    red = sleuth("reduce", "--workload", "both", "--dry-run", "--json", env=plugin_env)
    assert red.rc == 0, red.stderr
    assert red.json()["argv"][-1] == "8"
    mat = sleuth("matrix", "--workload", "both", "--steps", "8", "--dry-run", "--json", env=plugin_env)
    assert mat.rc == 0, mat.stderr
    assert mat.json()["cells"][0]["command"] == red.json()["argv"]
    # a matrix-only plugin says so to reduce, in one line
    one_line_error(
        sleuth("reduce", "--workload", "numpy_nan", "--dry-run"), "declare at least workload and axes"
    )


def test_the_launcher_runs_a_module_file_the_interpreter_cannot_import(tmp_path: Path) -> None:
    """In a venv or an image without sleuth (or the plugin's package), the module is loaded from its file."""
    from sleuth.workloads import LAUNCHER

    mod = tmp_path / "wl.py"
    mod.write_text("import os\nSEEN = os.environ.get('KNOB')\ndef go(n=1):\n"
                   "    print('go', n, SEEN)\n    return {'failed': n > 2, 'signature': 'too many', 'step_times': [n]}\n")  # fmt: skip
    trial = tmp_path / "trial"
    trial.mkdir()
    env = {**os.environ, "SLEUTH_TRIAL_DIR": str(trial), "KNOB": "on", PARAMS_VAR: json.dumps({"n": 3})}
    argv = [sys.executable, "-c", LAUNCHER, "ghostpkg.wl:go", str(mod)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path / "trial", timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.strip() == "go 3 on"
    assert "workload failed: too many" in proc.stderr
    assert json.loads((trial / "verdict.json").read_text()) == {"outcome": "fail", "signature": "too many"}
    assert json.loads((trial / "metrics.json").read_text()) == {"step_time": [3.0]}
    missing = subprocess.run([*argv[:4], ""], capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 1 and "ModuleNotFoundError" in missing.stderr
    del env[PARAMS_VAR]  # never run with the function's own defaults instead of the plan's
    unset = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert (unset.returncode, unset.stdout) == (1, "")
    assert unset.stderr == f"sleuth's launcher: ${PARAMS_VAR} (the parameters of ghostpkg.wl:go) is not set\n"


SECRET_PLUGIN = """
import json, os, subprocess, sys
from sleuth.workloads import Workload

def run(token="", steps=1):
    with open("/proc/self/cmdline", "rb") as fh:  # what ps shows every user of the machine
        cmdline = fh.read()
    child = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.environ))"],
                           capture_output=True, text=True, check=True).stdout
    seen = {"token": token, "steps": steps, "in_cmdline": token.encode() in cmdline,
            "child_env_names": child}
    with open(os.path.join(os.environ["SLEUTH_TRIAL_DIR"], "seen.json"), "w") as fh:
        json.dump(seen, fh)
    return 0

class Secret(Workload):
    name = "secretwl"
    params = {"token": "", "steps": 1}
    entry = run
"""


def test_a_plugins_parameters_stay_off_the_launchers_command_line(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    """Any user may read a process's argv (``ps``, ``/proc/PID/cmdline``): a parameter may be a token.
    It reached the launcher as JSON in its argv; now the launcher reads it from its environment
    (readable by its own user only) and takes it out before calling the workload."""
    token = "ghp_" + "Zq4" * 12
    plug = tmp_path / "secretwl.py"
    plug.write_text(SECRET_PLUGIN)
    data = {
        "schema_version": 1,
        "workload": {"plugin": f"{plug}:Secret", "token": token},
        "trials": 1,
        "cells": [{"name": "baseline"}, {"name": "longer", "steps": 4}],
    }
    res = sleuth("matrix", "--recipe", write(tmp_path, data), "--json")
    assert res.rc == 3, res.stderr  # inconclusive: nothing fails, there is nothing to mitigate
    doc = res.json()
    assert [c["counts"]["pass"] for c in doc["cells"]] == [1, 1]
    for cell, steps in (("baseline", 1), ("longer", 4)):
        seen = json.loads((Path(doc["run_dir"]) / f"cells/{cell}/trials/0001/seen.json").read_text())
        assert (seen["token"], seen["steps"]) == (token, steps)  # the workload still gets its parameters
        assert seen["in_cmdline"] is False  # was: True
        assert PARAMS_VAR not in seen["child_env_names"]  # the workload's own children do not inherit it
        assert token not in json.dumps(doc["cells"])  # nor does the command matrix.json shows hold it
