"""Secrets planted through every input path of ``sleuth matrix`` reach the workload whole and no file
of the run dir but ``secrets.json`` (0600), nor any output; resume puts them back."""

from __future__ import annotations

import hashlib
import json
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.badinput import assert_no_secret, assert_usage_error, tree_state
from tests.matrix.conftest import CELLWORK, recipe_data

#: input path -> (variable, value); every value is caught by the rule of sleuth.secrets
PLANTED = {
    "workload.env": ("HF_TOKEN", "hf_workloadEnvSecret0123456789"),
    "extra_env": ("SERVICE_API_KEY", "recipeExtraEnvValue_5678"),
    "cells[1].extra_env": ("DB_PASSWORD", "cellExtraEnvPass_9012"),
    "sidecar": ("VENDOR_SECRET", "sidecarMitigationValue_3456"),
}
COMMAND_TOKEN = "ghp_commandLineToken0123456789AB"
SHIM_TOKEN = "hf_shimEnvFlagToken0123456789ab"
#: short values only their flag names as secret
NAMED, KEYED = "hunter2", "abc123x"
TAIL = [f"--token={COMMAND_TOKEN}", "--password", NAMED, f"--api-key={KEYED}"]
ALL = [v for _, v in PLANTED.values()] + [COMMAND_TOKEN, SHIM_TOKEN, NAMED, KEYED]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _recipe(tmp_path: Path) -> tuple[Path, Path]:
    side = tmp_path / "side.yaml"
    var, value = PLANTED["sidecar"]
    side.write_text(yaml.safe_dump({"version": 1, "mitigations": {"vendor_fix": {"env": {var: value}}}}))
    data = recipe_data(trials=3)
    data["cells"] = [
        {"name": "baseline"},
        {"name": "fix", "mitigations": ["vendor_fix"], "extra_env": dict([PLANTED["cells[1].extra_env"]])},
    ]
    data["workload"]["env"].update(dict([PLANTED["workload.env"]]))
    data["workload"]["env"]["WORK_SHOW_SHA"] = ",".join(v for v, _ in PLANTED.values())
    data["workload"]["command"] = [sys.executable, str(CELLWORK), *TAIL]
    data["extra_env"] = dict([PLANTED["extra_env"]])
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, side


def _check_shas(run_dir: Path, argv_tail: str) -> None:
    """Every trial saw every planted value whole (the workload prints digests, never values)."""
    outs = sorted(run_dir.glob("cells/*/trials/*/stdout"))
    assert outs
    for out in outs:
        text = out.read_text()
        assert f"sha argv={sha(argv_tail)}" in text, out
        for where, (var, value) in PLANTED.items():
            if where == "sidecar" and "/cells/baseline/" in str(out):
                assert f"sha {var}={sha('(unset)')}" in text
            elif where == "cells[1].extra_env" and "/cells/baseline/" in str(out):
                continue
            else:
                assert f"sha {var}={sha(value)}" in text, (out, var)


def test_planted_secrets_reach_no_file_and_no_output(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    recipe, side = _recipe(tmp_path)
    args = ("matrix", "--recipe", recipe, "--mitigations-file", side)
    dry, dry_json = sleuth(*args, "--dry-run"), sleuth(*args, "--dry-run", "--json")
    assert dry.rc == dry_json.rc == 0, dry.stderr
    assert "<redacted>" in dry_json.stdout
    human, as_json = sleuth(*args), sleuth(*args, "--json")
    assert human.rc == as_json.rc == 3, human.stderr  # 3 trials a cell decide nothing
    shim_args = (
        "matrix", "--mitigation-axis", "nccl_p2p_off", "--trials", "2", "--fail-regex", "loss is nan",
        "--env", f"GH_TOKEN={SHIM_TOKEN}", "--env", "WORK_SHOW_SHA=GH_TOKEN", "--seed", "1",
    )  # fmt: skip
    cmd = ("--", sys.executable, str(CELLWORK), *TAIL)
    shim_dry = sleuth(*shim_args, "--dry-run", "--json", *cmd)
    shim_run = sleuth(*shim_args, "--json", *cmd)
    assert shim_dry.rc == 0 and shim_run.rc in (0, 3), shim_run.stderr
    outputs = [r.stdout + r.stderr for r in (dry, dry_json, human, as_json, shim_dry, shim_run)]
    runs = tmp_path / "runs"
    assert len(list(runs.glob("*/*/*/journal.jsonl"))) == 3
    for secret in ALL:
        assert_no_secret(secret, *outputs, roots=[runs])
    # they were hidden, not dropped: the resolved recipe says where they were
    run_dir = Path(as_json.json()["run_dir"])
    resolved = yaml.safe_load((run_dir / "recipe.resolved.yaml").read_text())
    assert resolved["workload"]["env"]["HF_TOKEN"] == "<redacted>"
    assert resolved["extra_env"]["SERVICE_API_KEY"] == "<redacted>"
    assert resolved["cells"][1]["extra_env"]["DB_PASSWORD"] == "<redacted>"
    assert resolved["resolved"]["mitigations"]["vendor_fix"]["env"]["VENDOR_SECRET"] == "<redacted>"
    assert resolved["workload"]["command"][2:] == ["<redacted>", "--password", "<redacted>", "<redacted>"]
    kept = run_dir / "secrets.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    values = json.loads(kept.read_text())
    assert values["workload.env.HF_TOKEN"] == PLANTED["workload.env"][1]
    assert values["workload.command[2]"] == f"--token={COMMAND_TOKEN}"
    assert values["workload.command[4]"] == NAMED and values["workload.command[5]"] == f"--api-key={KEYED}"
    _check_shas(run_dir, " ".join(TAIL))
    shim_dir = Path(shim_run.json()["run_dir"])
    for out in shim_dir.glob("cells/*/trials/*/stdout"):
        assert f"sha GH_TOKEN={sha(SHIM_TOKEN)}" in out.read_text()


def test_resume_puts_the_secrets_back(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    recipe, side = _recipe(tmp_path)
    res = sleuth("matrix", "--recipe", recipe, "--mitigations-file", side, "--json")
    assert res.rc == 3, res.stderr  # three trials a cell decide nothing
    run_dir = Path(res.json()["run_dir"])
    journal = run_dir / "journal.jsonl"
    lines = journal.read_text().splitlines()
    trial_lines = [i for i, ln in enumerate(lines) if json.loads(ln)["event"] == "trial"]
    journal.write_text("\n".join(lines[: trial_lines[1] + 1]) + "\n")  # as if killed after two trials
    for out in run_dir.glob("cells/*/trials/*/stdout"):
        out.unlink()
    again = sleuth("matrix", "resume", run_dir, "--json")
    assert again.rc == 3, again.stderr
    assert [c["counts"]["total"] for c in again.json()["cells"]] == [3, 3]
    assert len(list(run_dir.glob("cells/*/trials/*/stdout"))) == 4  # the four that ran again
    _check_shas(run_dir, " ".join(TAIL))  # each saw the real values, not <redacted>
    for secret in ALL:
        assert_no_secret(secret, again.stdout, again.stderr, roots=[run_dir])
    # a run dir shared without secrets.json resumes from the caller's environment, or says what is missing
    (run_dir / "secrets.json").unlink()
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(ln for ln in lines if json.loads(ln)["event"] != "end") + "\n")
    missing = sleuth("matrix", "resume", run_dir)
    assert missing.rc == 2
    assert "the redacted value(s) of" in missing.stderr and "secrets.json" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_short_secret_is_hidden_under_its_name_only(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    """``USE_AUTH=0`` is secret by its name; hiding every "0" of every text would wreck the report."""
    data = recipe_data(trials=2)
    data["cells"] = [{"name": "baseline"}, {"name": "tf32", "mitigations": ["tf32_off"]}]
    data["extra_env"] = {"USE_AUTH": "0"}
    data["workload"]["env"]["WORK_SHOW_SHA"] = "USE_AUTH"
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    dry = sleuth("matrix", "--recipe", path, "--dry-run", "--json").json()
    assert dry["cells"][1]["env"] == {"NVIDIA_TF32_OVERRIDE": "0", "USE_AUTH": "<redacted>"}
    res = sleuth("matrix", "--recipe", path, "--json")
    doc = res.json()
    run_dir = Path(doc["run_dir"])
    assert run_dir.is_dir()  # the path (full of 0s) is intact
    assert doc["cells"][1]["env"]["NVIDIA_TF32_OVERRIDE"] == "0"
    resolved = yaml.safe_load((run_dir / "recipe.resolved.yaml").read_text())
    assert resolved["extra_env"] == {"USE_AUTH": "<redacted>"}
    journal = run_dir / "journal.jsonl"
    journal.write_text("\n".join(journal.read_text().splitlines()[:1]) + "\n")  # killed before any trial
    again = sleuth("matrix", "resume", run_dir, "--json")
    assert again.rc == res.rc, again.stderr
    for out in run_dir.glob("cells/*/trials/*/stdout"):
        assert f"sha USE_AUTH={sha('0')}" in out.read_text()  # resume put the value back


def test_the_rerun_line_runs_the_same_matrix_with_the_real_values(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    """``rerun: sleuth matrix --recipe RUN_DIR/recipe.resolved.yaml`` ran the workload with the word
    ``<redacted>`` as its token and password (and ``/bin/sh`` read a command ``<redacted>`` as a
    redirection).  The values come back from the run's secrets.json, as for resume."""
    recipe, side = _recipe(tmp_path)
    first = sleuth("matrix", "--recipe", recipe, "--mitigations-file", side, "--json")
    assert first.rc == 3, first.stderr
    resolved = Path(first.json()["run_dir"]) / "recipe.resolved.yaml"
    again = sleuth("matrix", "--recipe", resolved, "--json", "--output", tmp_path / "again")
    assert again.rc == 3, again.stderr
    run_dir = Path(again.json()["run_dir"])
    _check_shas(run_dir, " ".join(TAIL))  # each trial saw the real values
    for secret in ALL:
        assert_no_secret(secret, again.stdout, again.stderr, roots=[tmp_path / "again"])
    # the resolved recipe shared without secrets.json: one line saying what is missing, nothing written
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "r.yaml").write_text(resolved.read_text())
    before = tree_state(tmp_path)
    lost = sleuth("matrix", "--recipe", shared / "r.yaml", "--output", tmp_path / "lost")
    assert_usage_error(lost.rc, lost.stdout, lost.stderr, ["workload.env.HF_TOKEN", "secrets.json"],
                       before=before, after=tree_state(tmp_path))  # fmt: skip


def test_a_short_password_printed_by_a_failing_workload_stays_in_its_own_output(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    """``--env PASSWORD=hunter2``, and the workload fails printing it: the failure signature carried
    it into result.json, the journal, matrix.json, matrix.md and --json.  Only the workload's own
    stderr keeps it (its own log, kept as written), and secrets.json."""
    script = "import os, sys; sys.exit('RuntimeError: login rejected for ' + os.environ['PASSWORD'])"
    res = sleuth(
        "matrix", "--mitigation-axis", "tf32_off", "--trials", "2", "--env", "PASSWORD=hunter2",
        "--json", "--", sys.executable, "-c", script,
    )  # fmt: skip
    assert res.rc == 3, res.stderr
    run_dir = Path(res.json()["run_dir"])
    assert res.json()["cells"][0]["trials"][0]["signature"].endswith("login rejected for <redacted>")
    holding = {
        p.relative_to(run_dir).as_posix()
        for p in run_dir.rglob("*")
        if p.is_file() and "hunter2" in p.read_text()
    }
    assert holding == {"secrets.json"} | {
        f"cells/{c}/trials/000{i}/stderr" for c in ("baseline", "tf32_off") for i in (1, 2)
    }
    assert_no_secret("hunter2", res.stdout, res.stderr)
