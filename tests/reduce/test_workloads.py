"""Wrapped workloads: axes declared in Python, found through the ``sleuth.workloads`` entry point."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.reduce.conftest import PROGRAMS, doc

MODULE = """
from sleuth.model import TrialResult
from sleuth.reduce.spec import NumericAxis

class Knobs:
    name = "wrapped"
    workload = {{"command": [{python!r}, "knobs.py", "--steps", "{{STEPS}}", "lines.txt"],
                "env": {{"NEED": "1", "SIZE": "25"}}}}
    budget = {{"baseline_trials": 1}}
    axes = [NumericAxis(name="STEPS", kind="param", initial=300, floor=1)]

    def predicate(self, result: TrialResult) -> bool:
        return "boom" not in result.stdout_tail
"""


def setup(tmp_path: Path) -> None:
    (tmp_path / "knobs.py").write_text((PROGRAMS / "knobs.py").read_text())
    (tmp_path / "lines.txt").write_text("alpha\nomega\n")
    (tmp_path / "mywl.py").write_text(MODULE.format(python=sys.executable))


def test_module_class_reference(cli, tmp_path: Path) -> None:
    setup(tmp_path)
    res = cli("reduce", "--workload", "mywl:Knobs", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    d = doc(res)
    assert d["name"] == "wrapped" and d["final"]["axes"] == {"STEPS": 37}


def test_entry_point_group(cli, tmp_path: Path) -> None:
    setup(tmp_path)
    dist = tmp_path / "mywl-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mywl\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sleuth.workloads]\nknobs = mywl:Knobs\n")
    env = {"PYTHONPATH": str(tmp_path)}
    dry = cli("reduce", "--workload", "knobs", "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    assert doc(dry)["oracle"]["kind"] == "python"
    res = cli("reduce", "--workload", "knobs", "--json", env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert doc(res)["final"]["axes"] == {"STEPS": 37}


def test_unknown_workload_is_one_line(cli, tmp_path: Path) -> None:
    res = cli("reduce", "--workload", "nope", "--json")
    assert res.returncode == 2 and "nope" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    both = cli("reduce", "--workload", "nope", "--spec", "x.yaml")
    assert both.returncode == 2 and "one of them" in both.stderr


LAUNCHED = """
import os
from sleuth.reduce.spec import EnvSetAxis
from sleuth.workloads import Workload

TOKEN = {token!r}

def go(token=""):
    with open("/proc/self/cmdline", "rb") as fh:  # what ps shows every user of the machine
        hidden = token.encode() not in fh.read()
    if token == TOKEN and hidden and os.environ.get("NEED") == "1":
        print("boom", flush=True)
        return 1
    return 0

class Launched(Workload):
    name = "launched"
    params = {{"token": TOKEN}}
    entry = go
    env = {{"NEED": "1", "NOISE": "1", "MORE": "2"}}
    oracle = {{"kind": "signature"}}
    budget = {{"baseline_trials": 1}}
    axes = [EnvSetAxis(name="ENVS", kind="env_set")]
"""


def test_an_entry_workload_gets_its_parameters_off_the_command_line(cli, tmp_path: Path) -> None:
    """An ``entry`` workload's parameters reach the launcher in its environment, not its argv (which
    ``ps`` shows every user); an env_set axis never drops that variable (the command needs it)."""
    token = "ghp_" + "Rk8" * 12
    (tmp_path / "launchedwl.py").write_text(LAUNCHED.format(token=token))
    res = cli("reduce", "--workload", "launchedwl:Launched", "--json")
    assert res.returncode == 0, res.stderr[-2000:]  # was: the token in the argv, no failure to reduce
    assert doc(res)["final"]["axes"] == {"ENVS": ["NEED"]}
