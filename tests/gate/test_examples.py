"""The gate examples: the tracecore-style workflow runs end to end; the GitHub Actions workflow is sound."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_tracecore_example_runs_end_to_end(tmp_path: Path) -> None:
    sleuth = Path(sys.executable).with_name("sleuth")
    env = {**os.environ, "SLEUTH": str(sleuth), "TMPDIR": str(tmp_path), "COLUMNS": "200"}
    db = f"dir://{tmp_path / 'db'}"
    proc = subprocess.run(
        [str(ROOT / "examples" / "gate-tracecore" / "run.sh"), db],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert out.count("1 recorded") == 24
    assert re.search(r"BenchmarkDetector:allocs/event\s*│\s*OK", out)
    assert re.search(r"install_to_ready_seconds\s*│\s*PASS\s*│.*median 268 <= 300", out)
    assert "exit 0 (soft mode" in out
    assert len(list((tmp_path / "db" / "detectors").glob("*.json"))) == 12


def _sleuth_commands(workflow: dict) -> list[list[str]]:
    cmds = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                line = line.strip()
                if line.startswith(("sleuth gate", "if sleuth gate")):
                    cmds.append(shlex.split(line.removeprefix("if ").removesuffix("; then"))[:3])
    return cmds


def test_github_actions_workflow_uploads_always_and_uses_real_subcommands(sleuth) -> None:  # type: ignore[no-untyped-def]
    wf = yaml.safe_load((ROOT / "examples" / "github-actions" / "bench.yml").read_text())
    bench, gate = wf["jobs"]["bench"], wf["jobs"]["gate"]
    upload = next(s for s in bench["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["retention-days"] == 90
    assert gate["needs"] == "bench" and gate["if"] == "always()"
    cmds = _sleuth_commands(wf)
    subs = {c[2] for c in cmds}
    assert {"record", "graduate", "check", "changepoints"} <= subs
    for sub in subs:
        assert sleuth("gate", sub, "--help").rc == 0
    policy = ROOT / "examples" / "github-actions" / "sleuth-policy.yaml"
    from sleuth.gate.policy import load_policy

    assert load_policy(policy).metrics
