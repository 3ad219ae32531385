"""A resume takes back the trial timeout its run recorded, though it is over the 30-day cap that new
input has now: ``matrix`` allowed a year (``recipe.resolved.yaml``), ``reduce`` any (its spec, whose
hash ``reduce.json`` keeps).  A run dir that was valid when it started resumes as it began; the
resume's own bound is the year (:data:`sleuth.model.RECORDED_MAX_TIMEOUT_S`).

The records are edited by hand here into what an older sleuth wrote.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from sleuth.model import MAX_TIMEOUT_S, RECORDED_MAX_TIMEOUT_S

#: what an older sleuth recorded: over today's cap (30 days)
DAYS_31 = 31 * 86400.0


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]


def _as_killed(run_dir: Path, keep: Callable[[dict[str, Any]], bool]) -> None:
    """The journal as a kill -9 during the first trial leaves it (the events ``keep`` keeps)."""
    kept = [e for e in _events(run_dir) if keep(e)]
    (run_dir / "journal.jsonl").write_text("".join(json.dumps(e) + "\n" for e in kept))


def _matrix_run_dir(sleuth: Callable[..., Any], tmp_path: Path, timeout: float) -> Path:
    """A matrix of 2 trials that ran, its journal cut before them, its recorded timeout ``timeout``."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"schema_version": 1, "seed": 1, "trials": 2,
                                      "workload": {"name": "w", "command": ["true"], "timeout": 60},
                                      "cells": [{"name": "baseline", "mitigations": ["none"]}]}))  # fmt: skip
    res = sleuth("matrix", "--recipe", recipe, "--output", tmp_path / "runs", "--json")
    assert res.rc == 0, res.stderr
    run_dir = Path(json.loads(res.stdout)["run_dir"])
    _as_killed(run_dir, lambda e: e["event"] not in ("trial", "end"))
    resolved = run_dir / "recipe.resolved.yaml"
    data = yaml.safe_load(resolved.read_text())
    data["workload"]["timeout"] = timeout
    resolved.write_text(yaml.safe_dump(data, sort_keys=False))
    return run_dir


def test_matrix_resume_keeps_a_recorded_timeout_over_30_days(sleuth, tmp_path: Path) -> None:
    run_dir = _matrix_run_dir(sleuth, tmp_path, DAYS_31)
    res = sleuth("matrix", "resume", run_dir, "--json")
    assert res.rc == 0, res.stderr  # was: exit 2, "workload.timeout: 2.6784e+06: at most 2.592e+06 seconds"
    assert sum(e["event"] == "trial" for e in _events(run_dir)) == 2
    assert yaml.safe_load((run_dir / "recipe.resolved.yaml").read_text())["workload"]["timeout"] == DAYS_31


def test_matrix_resume_refuses_a_recorded_timeout_over_a_year(sleuth, tmp_path: Path) -> None:
    run_dir = _matrix_run_dir(sleuth, tmp_path, RECORDED_MAX_TIMEOUT_S + 1)
    before = (run_dir / "journal.jsonl").read_text()
    res = sleuth("matrix", "resume", run_dir)
    assert res.rc == 2 and "Traceback" not in res.stderr, res.stderr
    assert "recipe.resolved.yaml: workload.timeout: " in res.stderr
    assert f"at most {RECORDED_MAX_TIMEOUT_S:g} seconds" in res.stderr and len(res.stderr.splitlines()) == 1
    assert (run_dir / "journal.jsonl").read_text() == before


def test_a_new_matrix_still_refuses_a_timeout_over_30_days(sleuth, tmp_path: Path) -> None:
    res = sleuth(
        "matrix", "--mitigation-axis", "none", "--trials", "1", "--timeout", str(DAYS_31), "--", "true"
    )
    assert res.rc == 2 and f"at most {MAX_TIMEOUT_S:g} seconds" in res.stderr, res.stderr


def _reduce_run_dir(sleuth: Callable[..., Any], tmp_path: Path, timeout: float) -> Path:
    """A reduction (every trial prints ``boom``, the failure) whose trials ran, its journal cut back
    to its start, its spec (and the hash ``reduce.json`` keeps of it) with the timeout ``timeout``,
    as an older sleuth took it."""
    spec = tmp_path / "spec.yaml"
    data: dict[str, Any] = {
        "name": "r", "workload": {"command": ["sh", "-c", "echo boom", "sh", "{N}"], "timeout": 60},
        "oracle": {"kind": "regex", "pattern": "boom"}, "budget": {"baseline_trials": 1},
        "axes": [{"name": "N", "kind": "param", "initial": 4, "floor": 1}],
    }  # fmt: skip
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    res = sleuth("reduce", "--spec", spec, "--output", tmp_path / "out", "--json")
    assert res.rc == 0, res.stderr
    (run_dir,) = (tmp_path / "out" / "reduce" / "r").iterdir()
    for done in ("summary.json", "shrunken"):
        shutil.rmtree(run_dir / done, ignore_errors=True)
        (run_dir / done).unlink(missing_ok=True)
    _as_killed(run_dir, lambda e: e["event"] == "start")
    data["workload"]["timeout"] = timeout
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    config = json.loads((run_dir / "reduce.json").read_text())
    config["spec_sha256"] = hashlib.sha256(spec.read_text().encode()).hexdigest()
    (run_dir / "reduce.json").write_text(json.dumps(config))
    return run_dir


def test_reduce_resume_keeps_a_recorded_timeout_over_30_days(sleuth, tmp_path: Path) -> None:
    run_dir = _reduce_run_dir(sleuth, tmp_path, DAYS_31)
    res = sleuth("reduce", "resume", run_dir, "--json")
    assert res.rc == 0 and "Traceback" not in res.stderr, res.stderr  # was: exit 2 naming workload.timeout
    assert any(e["event"] == "resume" for e in _events(run_dir))
    # the bundle's spec and recipe are new input: their timeout is the cap, so both are taken
    bundle = run_dir / "shrunken"
    for verb, flag, name in (("reduce", "--spec", "spec.yaml"), ("matrix", "--recipe", "recipe.yaml")):
        assert yaml.safe_load((bundle / name).read_text())["workload"]["timeout"] == MAX_TIMEOUT_S
        again = sleuth(verb, flag, bundle / name, "--dry-run", "--output", tmp_path / "dry")
        assert again.rc == 0, again.stderr


def test_reduce_resume_refuses_a_recorded_timeout_over_a_year(sleuth, tmp_path: Path) -> None:
    run_dir = _reduce_run_dir(sleuth, tmp_path, RECORDED_MAX_TIMEOUT_S + 1)
    res = sleuth("reduce", "resume", run_dir)
    assert res.rc == 2 and "Traceback" not in res.stderr, res.stderr
    assert "spec.yaml: workload.timeout: " in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr
