"""``sleuth matrix`` end to end through ``python -m sleuth`` subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.matrix.conftest import CELLWORK, default_signals, recipe_data

JSON_CELL_KEYS = {
    "name", "failure_rate", "failure_rate_ci", "error_rate", "classification", "p_value",
    "step_time_median", "step_time_ratio", "step_time_ratio_ci", "confound",
}  # fmt: skip


def one_line_error(res: Any, *fragments: str) -> str:
    assert res.rc == 2, (res.rc, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert "\n" not in err, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in err, err
    return str(err)


def trial_events(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "journal.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == "trial"]


def test_recipe_run_json_and_artifacts(sleuth: Callable[..., Any], write_recipe: Callable[..., Path],
                                       tmp_path: Path) -> None:  # fmt: skip
    data = recipe_data()
    data["cells"].append({"name": "nocmd", "extra_env": {"PATH": "/nonexistent"}})
    data["workload"]["command"] = ["python3", str(CELLWORK)]
    res = sleuth("matrix", "--recipe", write_recipe(data), "--jobs", "2", "--json")
    assert res.rc == 0, res.stderr
    doc = res.json()
    assert doc["baseline"] == "baseline"
    cells = {c["name"]: c for c in doc["cells"]}
    for c in cells.values():
        assert set(c) >= JSON_CELL_KEYS
    assert cells["baseline"]["classification"] == "baseline"
    assert cells["baseline"]["failure_rate"] == 1.0
    assert cells["fix"]["classification"] == "fixed"
    assert cells["fix"]["p_value"] == pytest.approx(2 / 924, rel=1e-4)  # 0/6 vs 6/6: 2 / C(12, 6)
    assert cells["fix"]["confound"] is None
    assert cells["slow"]["classification"] == "fixed"
    assert cells["slow"]["confound"].startswith("speed (+")
    assert cells["slow"]["step_time_ratio"] == pytest.approx(4.0, rel=0.1)
    assert cells["slow"]["step_time_ratio_ci"][0] > 1.15
    assert cells["noop"]["classification"] in {"no_effect", "inconclusive"}
    assert cells["noop"]["env"] == {"NCCL_P2P_DISABLE": "1"}
    assert cells["nocmd"]["classification"] == "error"
    assert cells["nocmd"]["error_rate"] == 1.0
    assert "command not found" in cells["nocmd"]["note"]
    run_dir = Path(doc["run_dir"])
    assert run_dir.parent == tmp_path / "runs" / "T-1" / "cellwork"
    for rel in ("matrix.md", "matrix.json", "recipe.resolved.yaml", "host_env.json", "environments/host/env.json",
                "cells/fix/trials/0006/stdout", "cells/fix/trials/0006/result.json"):  # fmt: skip
        assert (run_dir / rel).is_file(), rel
    assert json.loads((run_dir / "matrix.json").read_text())["cells"] == doc["cells"]
    assert "| fix |" in (run_dir / "matrix.md").read_text()
    # the trials were interleaved: not all of one cell before the next
    order = [e["cell"] for e in trial_events(run_dir)]
    assert len(order) == 30
    assert order[:5] != ["baseline"] * 5


def test_resolved_recipe_runs_the_same_matrix(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path]
) -> None:
    res = sleuth("matrix", "--recipe", write_recipe(), "--json")
    run_dir = Path(res.json()["run_dir"])
    again = sleuth("matrix", "--recipe", run_dir / "recipe.resolved.yaml", "--dry-run", "--json")
    assert again.rc == 0, again.stderr
    plan = again.json()
    first = sleuth("matrix", "--recipe", write_recipe(), "--dry-run", "--json").json()
    assert plan["cells"] == first["cells"]
    assert plan["seed"] == first["seed"] == 3
    assert plan["baseline"] == "baseline"


def test_dry_run_writes_nothing(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    res = sleuth("matrix", "--recipe", write_recipe(), "--dry-run")
    assert res.rc == 0, res.stderr
    assert "dry run" in res.stdout
    assert "nothing written" in res.stdout
    assert not (tmp_path / "runs").exists()
    doc = sleuth("matrix", "--recipe", write_recipe(), "--dry-run", "--json").json()
    assert doc["trials_total"] == 24
    assert doc["run_dir_parent"].endswith("runs/T-1/cellwork")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda d: d["cells"][2].update(mitigations=["x"]),
         ["recipe.yaml: cells[2].mitigations: unknown mitigation 'x' (see sleuth mitigations)"]),
        (lambda d: d["cells"][1].update(name="baseline"), ["cells[1].name: duplicate cell name 'baseline'"]),
        (lambda d: d.update(schema_version=9), ["schema_version: unsupported version 9"]),
        (lambda d: d.update(colour="red"), ["colour: unknown key"]),
        (lambda d: d["cells"][3].update(mitigations=["nccl_algo_ring", "nccl_algo_tree"]),
         ["cells[3].mitigations:", "set NCCL_ALGO to different values"]),
        (lambda d: d["cells"][0].update(trials=0), ["cells[0].trials: Input should be greater than 0"]),
        (lambda d: d.update(confound={"threshold": -1}), ["confound.threshold: Input should be greater than 0"]),
        (lambda d: d.update(confound={"baseline_cell": "nope"}), ["confound.baseline_cell: no cell named 'nope'"]),
        (lambda d: d["cells"][1].update(environment="mars"), ["cells[1].environment: unknown environment 'mars'"]),
        (lambda d: d["cells"][1].update(name="bad name"), ["cells[1].name: 'bad name' is not a valid cell name"]),
        (lambda d: d["cells"][1].update(name="all"), ["cells[1].name: 'all' is reserved"]),
    ],
)  # fmt: skip
@pytest.mark.parametrize("dry_run", [False, True])
def test_bad_recipes_are_one_line_exit_2_and_write_nothing(  # noqa: PLR0917
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path], tmp_path: Path,
    mutate: Callable[[dict[str, Any]], None], fragments: list[str], dry_run: bool,
) -> None:  # fmt: skip
    data = recipe_data()
    mutate(data)
    path = write_recipe(data)
    res = sleuth("matrix", "--recipe", path, *(["--dry-run"] if dry_run else []))
    err = one_line_error(res, *fragments)
    assert err.startswith(f"error: {path}: ")
    assert not (tmp_path / "runs").exists()


def test_usage_errors(sleuth: Callable[..., Any], write_recipe: Callable[..., Path], tmp_path: Path) -> None:
    path = write_recipe()
    one_line_error(
        sleuth("matrix", "--recipe", path, "--trials", "3"), "--recipe cannot be mixed with --trials"
    )
    one_line_error(sleuth("matrix", "--recipe", path, "--jobs", "0"), "--jobs 0: must be between 1 and 1024")
    one_line_error(
        sleuth("matrix", "--recipe", tmp_path / "missing.yaml"), "missing.yaml: recipe file not found"
    )
    one_line_error(sleuth("matrix"), "give --recipe FILE, or the command after --")
    one_line_error(sleuth("matrix", "--workload-cmd", "true", "--mitigation-axis", "nope"),
                   "--mitigation-axis: unknown mitigation 'nope'")  # fmt: skip
    one_line_error(sleuth("matrix", "--workload-cmd", "true", "--environment-axis", "docker"),
                   "docker needs a value")  # fmt: skip
    one_line_error(sleuth("matrix", "resume", tmp_path / "nowhere"), "no such run dir")
    one_line_error(sleuth("matrix", "resume", tmp_path), "not a sleuth run dir")
    assert not (tmp_path / "runs").exists()


def test_flag_shim_with_a_sidecar_file(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    side = tmp_path / "mine.yaml"
    side.write_text("version: 1\nmitigations:\n  work_fix: {env: {WORK_FAIL_P: '0'}, description: the fix}\n")
    res = sleuth(
        "matrix", "--workload-cmd", f"{sys.executable} {CELLWORK}", "--mitigation-axis", "work_fix,nccl_p2p_off",
        "--environment-axis", "host", "--trials", "5", "--fail-regex", "loss is nan",
        "--step-time-regex", "step_time_ms=([0-9.]+)", "--mitigations-file", side, "--seed", "1", "--json",
        env={"WORK_FAIL_P": "1", "WORK_SEED": "2"},
    )  # fmt: skip
    assert res.rc == 0, res.stderr
    doc = res.json()
    assert [c["name"] for c in doc["cells"]] == ["baseline", "work_fix", "nccl_p2p_off"]
    assert doc["baseline"] == "baseline"
    cells = {c["name"]: c for c in doc["cells"]}
    assert cells["work_fix"]["classification"] == "fixed"
    run_dir = Path(doc["run_dir"])
    assert run_dir.parent == tmp_path / "runs" / "_no_ticket_" / "cellwork"
    assert (run_dir / "sidecars" / "00-mine.yaml").read_text() == side.read_text()
    resolved = yaml.safe_load((run_dir / "recipe.resolved.yaml").read_text())
    assert resolved["resolved"]["mitigations"]["work_fix"]["env"] == {"WORK_FAIL_P": "0"}
    # self-contained: loads without the sidecar file (and says the pinned definition is used)
    again = sleuth("matrix", "--recipe", run_dir / "recipe.resolved.yaml", "--dry-run", "--json")
    assert again.rc == 0, again.stderr
    cell = next(c for c in again.json()["cells"] if c["name"] == "work_fix")
    assert cell["env"] == {"WORK_FAIL_P": "0"}
    assert any("'work_fix' is not installed here" in w for w in again.json()["warnings"])
    # the same sidecar given again agrees with the pin: no warning
    same = sleuth("matrix", "--recipe", run_dir / "recipe.resolved.yaml", "--mitigations-file", side,
                  "--dry-run", "--json")  # fmt: skip
    assert same.rc == 0 and same.json()["warnings"] == [], same.stderr
    # a changed sidecar does not change the rerun: the pinned definition wins, and it says so
    side.write_text("version: 1\nmitigations:\n  work_fix: {env: {WORK_FAIL_P: '1'}}\n")
    changed = sleuth("matrix", "--recipe", run_dir / "recipe.resolved.yaml", "--mitigations-file", side,
                     "--dry-run", "--json")  # fmt: skip
    assert changed.rc == 0, changed.stderr
    assert next(c for c in changed.json()["cells"] if c["name"] == "work_fix")["env"] == {"WORK_FAIL_P": "0"}
    assert any("'work_fix': the installed definition" in w for w in changed.json()["warnings"])


def test_shim_crosses_mitigations_and_environments(sleuth: Callable[..., Any]) -> None:
    res = sleuth("matrix", "--workload-cmd", "python3 train.py", "--mitigation-axis", "tf32_off,nccl_p2p_off+nccl_ib_off",
                 "--environment-axis", "host,venv:numpy==2.1.0 scipy", "--dry-run", "--json")  # fmt: skip
    assert res.rc == 0, res.stderr
    cells = res.json()["cells"]
    assert len(cells) == 6
    names = [c["name"] for c in cells]
    assert names[:3] == ["baseline.host", "tf32_off.host", "nccl_p2p_off-nccl_ib_off.host"]
    assert cells[3]["environment_spec"] == {"venv": ["numpy==2.1.0", "scipy"]}
    assert cells[2]["env"] == {"NCCL_P2P_DISABLE": "1", "NCCL_IB_DISABLE": "1"}
    assert res.json()["baseline"] == "baseline.host"


def test_until_decided_stops_a_clear_cell_early(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path]
) -> None:
    data = recipe_data(trials=40)
    data["cells"] = data["cells"][:2]
    res = sleuth("matrix", "--recipe", write_recipe(data), "--until-decided", "--json")
    assert res.rc == 0, res.stderr
    doc = res.json()
    assert "group-sequential" in doc["sequential_rule"]
    fix = doc["cells"][1]
    assert fix["classification"] == "fixed"
    assert fix["counts"]["total"] == 10  # decided at the first look (25% of 40)
    assert fix["stopped_early_at_alpha"] == pytest.approx(0.005)
    assert doc["cells"][0]["counts"]["total"] == 40  # the baseline always runs in full
    assert "Early stopping" in (Path(doc["run_dir"]) / "matrix.md").read_text()
    # the table says so too (resuming a finished matrix runs nothing and prints the report)
    human = sleuth("matrix", "resume", doc["run_dir"])
    assert human.rc == 0, human.stderr
    assert "fix: stopped early at a look with alpha 0.005 after 10 of 40 trials" in human.stdout
    (row,) = [ln for ln in human.stdout.splitlines() if ln.startswith("fix ")]
    assert "fixed" in row and "0% [0-" in row  # one line per cell


def test_shim_flag_errors_name_the_flag(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    """Not the recipe key the flag turns into (`command line: trials: Input should be ...`)."""
    shim = ("matrix", "--workload-cmd", "true")
    for extra, fragment in [
        (("--trials", "0"), "error: --trials 0: must be between 1 and 1000000"),
        (("--timeout", "-1"), "error: --timeout -1: must be a positive number"),
        (("--confound-threshold", "0"), "error: --confound-threshold 0: must be a positive number"),
        (("--fail-regex", "("), "error: --fail-regex '(': invalid regex"),
        (
            ("--step-time-regex", "(a)(b)"),
            "error: --step-time-regex '(a)(b)': use at most one capturing group",
        ),
        (("--ticket", "a/b"), "error: --ticket 'a/b': cannot name a directory"),
        (("--name", ".x"), "error: --name '.x': cannot name a directory"),
    ]:
        err = one_line_error(sleuth(*shim, *extra), fragment)
        assert "command line:" not in err
    assert not (tmp_path / "runs").exists()


def test_dry_run_prints_the_baseline_reason_verbatim(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path]
) -> None:
    data = recipe_data()
    data["cells"][0]["name"] = "ref"  # no baseline-* name: the first [none] cell is the baseline
    res = sleuth("matrix", "--recipe", write_recipe(data), "--dry-run")
    assert res.rc == 0, res.stderr
    assert "baseline ref (the first cell with mitigations [none])" in res.stdout  # not eaten as markup


def test_tables_are_not_folded_to_80_columns_in_a_pipe(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    code = "from sleuth.cli._common import console; print(console().width)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert int(out.stdout) >= 200


def test_resume_runs_only_missing_trials(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path]
) -> None:
    res = sleuth("matrix", "--recipe", write_recipe(), "--json", "--jobs", "2")
    run_dir = Path(res.json()["run_dir"])
    journal = run_dir / "journal.jsonl"
    lines = journal.read_text().splitlines()
    trial_lines = [i for i, ln in enumerate(lines) if json.loads(ln)["event"] == "trial"]
    keep = lines[: trial_lines[9] + 1]  # as if killed after ten trials
    journal.write_text("\n".join(keep) + "\n")
    (run_dir / "matrix.json").unlink()
    again = sleuth("matrix", "resume", run_dir, "--json")
    assert again.rc == 0, again.stderr
    doc = again.json()
    assert [c["counts"]["total"] for c in doc["cells"]] == [6, 6, 6, 6]
    assert len(trial_events(run_dir)) == 24  # ten replayed, fourteen new
    events = [json.loads(ln) for ln in journal.read_text().splitlines()]
    assert next(e for e in events if e["event"] == "resume")["jobs"] == 2  # as the run started
    assert [c["classification"] for c in doc["cells"]] == [c["classification"] for c in res.json()["cells"]]


def test_interrupt_keeps_partial_results_and_resume_finishes(
    sleuth_env: dict[str, str], write_recipe: Callable[..., Path], tmp_path: Path, sleuth: Callable[..., Any]
) -> None:
    data = recipe_data(trials=5)  # 0/5 against 5/5 survives Holm over 3 cells (p 0.008 x 3)
    data["workload"]["env"]["WORK_SLEEP"] = "0.3"
    argv = [sys.executable, "-m", "sleuth", "matrix", "--recipe", str(write_recipe(data)), "--json"]
    proc = subprocess.Popen(default_signals(argv), env=sleuth_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    journal = None
    while time.monotonic() < deadline:
        found = list((tmp_path / "runs").glob("*/*/*/journal.jsonl"))
        if found and '"event": "trial"' in found[0].read_text():
            journal = found[0]
            break
        time.sleep(0.05)
    assert journal is not None
    proc.send_signal(signal.SIGINT)
    out, _err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    doc = json.loads(out)
    assert doc["interrupted"] is True
    run_dir = journal.parent
    assert json.loads((run_dir / "matrix.json").read_text())["interrupted"] is True
    done = len(trial_events(run_dir))
    assert 1 <= done < 20
    res = sleuth("matrix", "resume", run_dir, "--json")
    assert res.rc == 0, res.stderr
    assert [c["counts"]["total"] for c in res.json()["cells"]] == [5, 5, 5, 5]


def test_an_interrupt_before_any_trial_finished_blames_no_cell(
    sleuth_env: dict[str, str], write_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    """Ctrl-C while the first trials ran said ``the baseline could not run`` and classified every
    cell ``error``: nothing had failed, nothing had finished.  Now: inconclusive, nothing finished yet."""
    data = recipe_data(trials=2)
    # no trial finishes before the interrupt, however slow the machine: the trials sleep, and their
    # timeout, far longer than any wait below (a trial timed out at 60 s would have finished)
    data["workload"]["env"]["WORK_SLEEP"] = "3600"
    data["workload"]["timeout"] = 3600
    argv = [sys.executable, "-m", "sleuth", "matrix", "--recipe", str(write_recipe(data)), "--jobs", "2"]
    with subprocess.Popen(default_signals(argv), env=sleuth_env, cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:  # fmt: skip
        try:
            # the event: both running trials have their directories (generous: a loaded machine)
            deadline = time.monotonic() + 120
            while len(list((tmp_path / "runs").glob("*/*/*/cells/*/trials/*"))) < 2:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no two trials started in 120 s"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=120)  # a hang detector, not a timing claim
        finally:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "could not run" not in out, out
    assert "baseline: no baseline trial has finished yet" in out, out
    rows = {ln.split()[0]: ln for ln in out.splitlines()[2:6]}
    for name in ("fix", "slow", "noop"):
        assert "inconclusive" in rows[name] and "error" not in rows[name], out
        assert f"{name}: no trial has finished yet" in out


def test_schema_and_listings(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    res = sleuth("schema", "matrix")
    assert res.rc == 0
    schema = res.json()
    assert schema["title"].startswith("sleuth matrix recipe")
    assert {"schema_version", "workload", "cells", "confound"} <= set(schema["properties"])
    assert sleuth("schema", "mitigations").json()["properties"]["version"]
    one_line_error(sleuth("schema", "nope"), "unknown schema 'nope'")
    mits = sleuth("mitigations", "--json").json()["mitigations"]
    assert len(mits) >= 25
    assert all(m["description"] and m["docs"] and m["source"] == "built-in" for m in mits)
    one = sleuth("mitigations", "tf32_off", "--json").json()["mitigations"]
    assert one == [m for m in mits if m["name"] == "tf32_off"]
    table = sleuth("mitigations")
    assert table.rc == 0
    assert "NCCL_P2P_DISABLE=1" in table.stdout
    envs = {e["name"]: e for e in sleuth("environments", "--json").json()["environments"]}
    assert {"host", "venv", "docker", "podman", "pyxis"} <= set(envs)
    assert envs["pyxis"]["takes_value"] is True
    side = tmp_path / "e.yaml"
    side.write_text("version: 1\nenvironments:\n  rocm: {docker: 'rocm/pytorch:6.4'}\n")
    listed = sleuth("environments", "--mitigations-file", side, "--json").json()["environments"]
    assert {"name": "rocm", "kind": "alias", "source": f"file {side}"}.items() <= next(
        e for e in listed if e["name"] == "rocm"
    ).items()


def test_entry_point_plugins_are_listed_with_their_source(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    from tests.matrix.test_registry import make_plugin

    plug = make_plugin(tmp_path / "plug") if (tmp_path / "plug").mkdir() is None else None
    assert plug is not None
    env = {"PYTHONPATH": os.pathsep.join([str(plug), os.environ.get("PYTHONPATH", "")])}
    mits = {m["name"]: m for m in sleuth("mitigations", "--json", env=env).json()["mitigations"]}
    assert mits["vendor_fix"]["source"].startswith("entry point vendor = fakeplug:MITIGATIONS")
    envs = {e["name"]: e for e in sleuth("environments", "--json", env=env).json()["environments"]}
    assert envs["vendor-cluster"]["kind"] == "plugin"


def test_mixing_a_recipe_with_flags_names_them_as_typed(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path]
) -> None:
    path = write_recipe()
    one_line_error(
        sleuth(
            "matrix",
            "--recipe",
            path,
            "--confound-threshold=1.3",
            "--baseline-cell",
            "fix",
            "--workload",
            "x",
        ),
        "--recipe cannot be mixed with --confound-threshold, --workload, --baseline-cell",
    )
    # flags that work with both are no mix: the steps, the output directory
    ok = sleuth(
        "matrix", "--recipe", path, "--steps", "3", "--output-dir", "elsewhere", "--dry-run", "--json"
    )
    assert ok.rc == 0, ok.stderr
    assert ok.json()["run_dir_parent"].endswith("elsewhere/T-1/cellwork")


def test_workload_cmd_is_one_shell_command_as_a_recipe_string_is(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    """``--workload-cmd 'a && b; exit 3'`` runs by /bin/sh -c, as a recipe's string ``command``: it was
    split into words, so ``&&`` and ``;`` were arguments of the first program and ``exit`` no program."""
    res = sleuth("matrix", "--workload-cmd", "echo one && echo two; exit 3", "--trials", "1", "--json",
                 "--output-dir", tmp_path / "out")  # fmt: skip
    assert res.rc in (0, 3), res.stderr
    (cell,) = res.json()["cells"]
    assert cell["command"] == ["/bin/sh", "-c", "echo one && echo two; exit 3"]
    trial = cell["trials"][0]
    assert trial["outcome"] == "fail" and trial["signature"] == "exit 3"
    assert (Path(res.json()["run_dir"]) / trial["path"] / "stdout").read_text() == "one\ntwo\n"
    one_line_error(sleuth("matrix", "--workload-cmd", "echo 'open", "--dry-run"), "No closing quotation")


def test_aorta_flag_names(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    """--baseline-cell, --workload (a command here), --steps and --output-dir, as an aorta user types them."""
    res = sleuth("matrix", "--workload", f"{sys.executable} {CELLWORK} {{STEPS}}", "--mitigation-axis", "tf32_off",
                 "--baseline-cell", "tf32_off", "--steps", "2", "--trials", "2", "--output-dir", tmp_path / "out",
                 "--json", env={"WORK_FAIL_P": "0"})  # fmt: skip
    assert res.rc in (0, 3), res.stderr
    doc = res.json()
    assert doc["baseline"] == "tf32_off" and doc["baseline_reason"] == "confound.baseline_cell"
    assert doc["steps"] == 2 and doc["cells"][0]["command"][:2] == ["/bin/sh", "-c"]
    assert doc["cells"][0]["command"][2].endswith(f"{CELLWORK} 2")
    assert Path(doc["run_dir"]).is_relative_to(tmp_path / "out")
    assert not (tmp_path / "runs").exists()
    assert doc["cells"][0]["trials"][0]["path"] == "cells/baseline/trials/0001"
    assert (Path(doc["run_dir"]) / doc["cells"][0]["trials"][0]["path"] / "stdout").is_file()


def test_an_interrupt_before_the_report_is_written_names_the_resume_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A Ctrl-C after the trials, while the report was computed, printed only ``interrupted``: the
    run dir and the resume command were gone from the screen with the progress bar."""
    from sleuth.cli.matrix import _execute

    def call(watch: Any) -> Any:
        watch.start(Path("/my runs/T-1/w/20260101T000000Z"), 3, 3)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _execute(call, as_json=True)
    assert "`sleuth matrix resume '/my runs/T-1/w/20260101T000000Z'` goes on" in capsys.readouterr().err


def test_the_rerun_line_repeats_jobs_and_gpus_when_they_were_given(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    """matrix.json's ``rerun`` and matrix.md's ``Rerun:`` repeated ``--backend`` but not ``--jobs``
    nor ``--gpus``: run as printed, the matrix ran one trial at a time on no device of its own."""
    import shlex

    work = ("--mitigation-axis", "tf32_off", "--trials", "2", "--json", "--",
            "sh", "-c", 'echo "dev=$CUDA_VISIBLE_DEVICES"')  # fmt: skip
    res = sleuth("matrix", "--jobs", "2", "--gpus", "0,1", "--output", tmp_path / "o", *work)
    assert res.rc in (0, 3), res.stderr
    run_dir = Path(res.json()["run_dir"])
    rerun = res.json()["rerun"]
    recipe = str(run_dir / "recipe.resolved.yaml")
    assert rerun == shlex.join(["sleuth", "matrix", "--recipe", recipe, "--jobs", "2", "--gpus", "0,1"])
    assert f"Rerun: `{rerun}`" in (run_dir / "matrix.md").read_text()
    assert json.loads((run_dir / "matrix.json").read_text())["rerun"] == rerun
    again = sleuth(*shlex.split(rerun)[1:], "--output", tmp_path / "o2", "--json")  # run as printed
    assert again.rc in (0, 3), again.stderr
    lines = (Path(again.json()["run_dir"]) / "journal.jsonl").read_text().splitlines()
    start = next(e for e in map(json.loads, lines) if e["event"] == "start")
    assert (start["jobs"], start["gpus"]) == (2, ["0", "1"])
    outs = {p.read_text().strip() for p in Path(again.json()["run_dir"]).rglob("trials/*/stdout")}
    assert outs == {"dev=0", "dev=1"}  # two at a time, each on its own device
    finished = sleuth("matrix", "resume", run_dir, "--json")  # a finished matrix reported again
    assert finished.rc in (0, 3) and finished.json()["rerun"] == rerun, finished.stderr
    plain = sleuth("matrix", "--output", tmp_path / "o3", *work)  # the defaults are not repeated
    assert plain.json()["rerun"] == shlex.join(
        ["sleuth", "matrix", "--recipe", str(Path(plain.json()["run_dir"]) / "recipe.resolved.yaml")]
    )
