"""``sleuth reduce`` end to end: the example, the bundle from a clean directory, the recipe under
the real ``sleuth matrix``, ``sleuth bundle``, and what the run dir holds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.reduce.conftest import KNOBS_MINIMUM, doc, env_with_path, knobs_spec

EXAMPLE = Path(__file__).parents[2] / "examples" / "reduce-nan"


def sh(script: Path, *args: str, cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=env_with_path(tmp_path), stdin=subprocess.DEVNULL)  # fmt: skip


@pytest.mark.slow
def test_example_end_to_end(cli, tmp_path: Path) -> None:
    work = tmp_path / "example"
    shutil.copytree(EXAMPLE, work)
    res = cli("reduce", "--spec", work / "spec.yaml", "--jobs", "2", "--json", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    d = doc(res)
    assert d["status"] == "reduced"
    assert d["final"]["axes"] == {
        "NUM_STEPS": 138, "BATCH_SIZE": 435, "SHAPES": ["embed 50257x768", "lm_head 768x50257"],
        "EXTRA_ENV": ["TRAIN_FAST_MATH"], "FLAGS": [],
    }  # fmt: skip
    assert d["reproduction_rate"] == 1.0 and d["trials"] >= d["oracle_calls"] > 0
    run = Path(d["bundle_dir"])
    for f in ("spec.yaml", "reduction_trace.jsonl", "SHIP.md", "summary.json", "shrunken/run_repro.sh",
              "shrunken/verify.sh", "shrunken/spec.yaml", "shrunken/recipe.yaml", "shrunken/env.json"):  # fmt: skip
        assert (run / f).is_file(), f
    assert (work / "shapes.txt").read_text().count("\n") == 500, "the original was modified"
    trace = [json.loads(line) for line in (run / "reduction_trace.jsonl").read_text().splitlines()]
    assert trace[0]["phase"] == "baseline" and len(trace) == d["oracle_calls"] + d["cache_hits"]
    for rec in trace[1:]:
        assert {"axis", "values", "hash", "trials", "outcomes", "signature", "cache_hit", "seconds"} <= set(
            rec
        )

    # run_repro.sh from a clean directory, away from the run dir and the example
    clean = tmp_path / "clean"
    shutil.copytree(run / "shrunken", clean / "shrunken")
    out = sh(clean / "shrunken" / "run_repro.sh", cwd=tmp_path, tmp_path=tmp_path)
    assert out.returncode == 1 and "NaN detected at step 137" in out.stdout, out.stdout + out.stderr
    ver = sh(clean / "shrunken" / "verify.sh", "2", cwd=tmp_path, tmp_path=tmp_path)
    assert ver.returncode == 0 and "reproduced 2/2" in ver.stdout, ver.stdout + ver.stderr

    # the recipe runs under the real sleuth matrix, as it is
    recipe = clean / "shrunken" / "recipe.yaml"
    dry = cli("matrix", "--recipe", recipe, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert doc(dry)["trials_total"] == 10
    mx = cli("matrix", "--recipe", recipe, "--jobs", "2", "--json", timeout=600)
    assert mx.returncode == 0, mx.stderr[-2000:]
    cell = doc(mx)["cells"][0]
    assert cell["name"] == "baseline" and cell["counts"]["fail"] == 10

    # the shrunken spec is reducible again (dry run from the bundle)
    again = cli("reduce", "--spec", clean / "shrunken" / "spec.yaml", "--dry-run", "--json")
    assert again.returncode == 0, again.stderr
    assert doc(again)["argv"][-4:] == ["--steps", "138", "--shapes", "shapes.txt"]

    # sleuth bundle: one archive that unpacks and reproduces
    b = cli("bundle", run, "--json")
    assert b.returncode == 0, b.stderr
    packed = doc(b)
    archive = Path(packed["archive"])
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    top = unpacked / "reduce-nan-repro"
    ship = (top / "SHIP.md").read_text()
    for m in packed["members"]:
        if not m["path"].endswith("SHIP.md"):
            assert m["sha256"] in ship, m
    out = sh(top / "shrunken" / "run_repro.sh", cwd=unpacked, tmp_path=tmp_path)
    assert out.returncode == 1 and "NaN detected at step 137" in out.stdout


def test_knobs_reduce_to_the_known_minimum_with_signature_oracle(cli, tmp_path: Path) -> None:
    spec = knobs_spec(tmp_path)
    res = cli("reduce", "--spec", spec, "--json", "--one-minimal")
    assert res.returncode == 0, res.stderr[-3000:]
    d = doc(res)
    assert d["final"]["axes"] == KNOBS_MINIMUM
    assert d["signature"] == "exit 1"  # a plain exit with no error line: the head alone
    run = Path(d["run_dir"])
    journal = [json.loads(x) for x in (run / "journal.jsonl").read_text().splitlines()]
    ids = [(e["subdir"], e["trial"]["id"]) for e in journal if e["event"] == "trial"]
    assert len(ids) == len(set(ids)) == d["trials"]
    # the step hint: the failure at step 36 makes STEPS=37 one of the first candidates
    trace = [json.loads(x) for x in (run / "reduction_trace.jsonl").read_text().splitlines()]
    steps = [r for r in trace if r.get("axis") == "STEPS"]
    assert steps[0]["values"] == {"STEPS": 37} and steps[1]["values"] == {"STEPS": 36}
    later = [r for r in steps if r["round"] > 1]
    assert len(later) <= 1, "a later round only confirms the boundary"
    assert not list(run.glob("candidates/*/work")), "scratch copies are removed once judged"


def test_not_reproducible_exit_3_and_nothing_shrinks(cli, tmp_path: Path) -> None:
    spec = knobs_spec(tmp_path, workload__env={"NEED": "0"})
    res = cli("reduce", "--spec", spec, "--json")
    assert res.returncode == 3, res.stderr
    d = doc(res)
    assert d["status"] == "not_reproducible" and "did not reproduce" in d["note"]
    assert not (Path(d["run_dir"]) / "shrunken").exists()


def test_nothing_shrinks_bundle_equals_input_and_says_why(cli, tmp_path: Path) -> None:
    spec = knobs_spec(tmp_path)
    data = yaml.safe_load(spec.read_text())
    data["axes"] = [{"name": "STEPS", "kind": "param", "initial": 37, "floor": 1},
                    {"name": "LINES", "kind": "file_lines", "path": "lines.txt"}]  # fmt: skip
    data["workload"]["command"] = [sys.executable, "knobs.py", "--steps", "{STEPS}", "{LINES}"]
    data["workload"]["env"] = {"NEED": "1", "SIZE": "25"}
    (tmp_path / "lines.txt").write_text("alpha\nomega\n")
    spec.write_text(yaml.safe_dump(data))
    d = doc(cli("reduce", "--spec", spec, "--json"))
    assert d["status"] == "not_reduced"
    assert d["axes"]["STEPS"]["final"] == 37 and "none reproduced" in d["axes"]["STEPS"]["why"]
    assert "pass" in d["axes"]["LINES"]["why"]
    ship = (Path(d["run_dir"]) / "SHIP.md").read_text()
    assert "Axes that did not move" in ship and "STEPS" in ship


def test_budget_exhausted_still_writes_the_best_so_far(cli, tmp_path: Path) -> None:
    spec = knobs_spec(tmp_path, budget={"baseline_trials": 1, "max_trials": 8})
    res = cli("reduce", "--spec", spec, "--json")
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert d["status"] == "budget_exhausted" and d["trials"] <= 8 and "max_trials" in d["stopped"]
    repro = Path(d["run_dir"]) / "shrunken" / "run_repro.sh"
    out = sh(repro, cwd=tmp_path, tmp_path=tmp_path)
    assert out.returncode == 1 and "boom" in out.stdout


def _budget_spec(tmp_path: Path, candidate_sleep: int, max_wall_clock: int) -> Path:
    """The original (N=500) fails after 2 s; every candidate passes after ``candidate_sleep`` s."""
    spec = tmp_path / "budget.yaml"
    script = f"if [ $N -eq 500 ]; then sleep 2; exit 1; fi; sleep {candidate_sleep}"
    spec.write_text(yaml.safe_dump({
        "name": "budget",
        "workload": {"command": script, "shell": True, "timeout": 20},
        "oracle": {"kind": "exit_code"},
        "budget": {"baseline_trials": 1, "max_wall_clock": max_wall_clock},
        "axes": [{"name": "N", "kind": "env", "type": "int", "initial": 500, "floor": 0}],
    }))  # fmt: skip
    return spec


def _search_trials(run_dir: Path) -> list[dict]:
    events = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    return [e for e in events if e.get("event") == "trial" and e.get("axis") != "baseline"]


def test_max_wall_clock_stops_the_trials_running_when_it_ends(cli, tmp_path: Path) -> None:
    """The budget was checked only between trials: a candidate started a moment before it ended ran
    whole (here until its 20 s timeout: a budget of 6 s spent 22).  Now the running trials are
    stopped at the deadline, never journaled, and the best so far is the answer."""
    res = cli("reduce", "--spec", _budget_spec(tmp_path, 100, 6), "--jobs", "2", "--json")
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert _search_trials(Path(d["run_dir"])) == []  # stopped, not journaled: a resume runs them
    assert d["status"] == "budget_exhausted" and d["stopped"].startswith("budget spent: max_wall_clock"), d
    assert "2 running trial(s) stopped" in d["stopped"], d["stopped"]
    assert d["trials"] == 1 and d["final"]["axes"] == {"N": 500}
    assert (Path(d["run_dir"]) / "shrunken" / "run_repro.sh").is_file()


def test_max_wall_clock_starts_no_trial_it_has_no_time_for(cli, tmp_path: Path) -> None:
    """After a 2 s original, 3 s of budget leave less than a trial takes: no candidate starts (one
    did, and ran past the budget by a whole trial)."""
    res = cli("reduce", "--spec", _budget_spec(tmp_path, 2, 3), "--json")
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert _search_trials(Path(d["run_dir"])) == [] and d["trials"] == 1
    assert d["status"] == "budget_exhausted" and d["stopped"].startswith("budget spent: max_wall_clock"), d
    assert "budget spent" in cli("reduce", "resume", d["run_dir"]).stdout  # and the answer says so


def test_other_failures_are_never_accepted(cli, tmp_path: Path) -> None:
    """A candidate without "omega" crashes differently (KeyError): recorded, never progress."""
    spec = knobs_spec(tmp_path)
    script = (
        (tmp_path / "knobs.py")
        .read_text()
        .replace(
            "for step in range(steps):",
            'if "omega" not in lines:\n    raise KeyError("omega")\nfor step in range(steps):',
        )
    )
    (tmp_path / "knobs.py").write_text(script)
    d = doc(cli("reduce", "--spec", spec, "--json"))
    assert d["final"]["axes"]["LINES"] == ["alpha", "omega"]
    trace = [json.loads(x) for x in (Path(d["run_dir"]) / "reduction_trace.jsonl").read_text().splitlines()]
    others = [r for r in trace if "other_failure" in r["outcomes"]]
    assert others and all(r["verdict"] == "rejected" for r in others)
    assert any("KeyError" in str(r["signature"]) for r in others)


def test_human_output_shows_progress_and_the_table(cli, tmp_path: Path) -> None:
    spec = knobs_spec(tmp_path)
    res = cli("reduce", "--spec", spec, env={"SLEUTH_PROGRESS_INTERVAL": "0.2"})
    assert res.returncode == 0, res.stderr
    assert "sleuth reduce ->" in res.stderr and "STEPS -> 37" in res.stderr
    assert "reduced: knobs" in res.stdout and "bundle:" in res.stdout


def test_schema_reduce_is_valid_json_schema(cli) -> None:
    res = cli("schema", "reduce")
    assert res.returncode == 0
    schema = json.loads(res.stdout)
    assert schema["title"] == "sleuth reduce spec" and "axes" in schema["properties"]


def test_python_oracle_and_choice_axis(cli, tmp_path: Path) -> None:
    spec = knobs_spec(tmp_path)
    data = yaml.safe_load(spec.read_text())
    data["oracle"] = {"kind": "python", "callable": "judge.py:judge"}
    data["axes"][1] = {"name": "SIZE", "kind": "env", "type": "choice", "values": ["0", "10", "20", "40"],
                       "initial": "40"}  # fmt: skip
    spec.write_text(yaml.safe_dump(data))
    (tmp_path / "judge.py").write_text("def judge(r):\n    return 'boom' not in r.stdout_tail\n")
    d = doc(cli("reduce", "--spec", spec, "--json", cwd=tmp_path / "runs" if False else None))
    assert d["final"]["axes"]["SIZE"] == "20"
    assert d["final"]["axes"]["LINES"] == ["alpha", "omega"]
    assert os.path.isfile(Path(d["run_dir"]) / "shrunken" / "recipe.yaml")


def test_file_set_and_window_axes(cli, tmp_path: Path) -> None:
    """Shards of a directory (the originals untouched) and a step window, through the real CLI."""
    shards = tmp_path / "data"
    shards.mkdir()
    for i in range(12):
        (shards / f"shard_{i:02d}.jsonl").write_text("nan\n" if i == 9 else "1.0\n")
    (tmp_path / "job.py").write_text(
        "import os, sys\n"
        "d, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
        "names = sorted(os.listdir(d))\n"
        "bad = any(open(os.path.join(d, n)).read().strip() == 'nan' for n in names)\n"
        "if bad and 'shard_03.jsonl' in names and start <= 40 < end:\n"
        "    print('loss is nan at step 40'); sys.exit(1)\n"
    )
    spec = {
        "name": "shards",
        "workload": {"command": [sys.executable, "job.py", "{SHARDS}", "{W_START}", "{W_END}"]},
        "oracle": {"kind": "regex", "pattern": "loss is nan"},
        "budget": {"baseline_trials": 1},
        "axes": [{"name": "SHARDS", "kind": "file_set", "path": "data"},
                 {"name": "W", "kind": "window", "start": 0, "end": 1000, "step_regex": r"at step (\d+)"}],
    }  # fmt: skip
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    d = doc(cli("reduce", "--spec", tmp_path / "spec.yaml", "--json"))
    assert d["final"]["axes"] == {"SHARDS": ["shard_03.jsonl", "shard_09.jsonl"], "W": [40, 41]}
    assert len(list(shards.iterdir())) == 12
    inputs = Path(d["run_dir"]) / "shrunken" / "inputs" / "data"
    assert sorted(p.name for p in inputs.iterdir()) == ["shard_03.jsonl", "shard_09.jsonl"]
    out = sh(Path(d["run_dir"]) / "shrunken" / "run_repro.sh", cwd=tmp_path, tmp_path=tmp_path)
    assert out.returncode == 1 and "loss is nan" in out.stdout
