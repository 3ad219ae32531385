"""``sleuth matrix --kill-grace`` and the recipe's ``workload.kill_grace``: how long a trial stopped at
its timeout has between SIGTERM and SIGKILL, kept in ``recipe.resolved.yaml`` for ``matrix resume``.

The workload (``tests/programs/saves_on_term.py``) writes ``ready`` once its SIGTERM handler is
set, ``term`` when SIGTERM comes, and ``saved`` after a save of a few seconds; every assertion is on
those files, never on a duration.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sleuth.matrix.resume import open_resume
from tests.matrix.test_matrix_cli import one_line_error

SAVES = Path(__file__).parents[1] / "programs" / "saves_on_term.py"
#: the timeout a trial gets: far longer than the workload takes to set its handler
TIMEOUT = "3"
#: the workload's save after SIGTERM: longer than a short grace and than the default 5 s (so a
#: grace that was lost on the way fails the long-grace tests), far shorter than a long one
SAVE_S = "6"


def _evidence(tmp_path: Path) -> Path:
    d = tmp_path / "evidence"
    d.mkdir(exist_ok=True)
    for f in d.iterdir():
        f.unlink()
    return d


def _recipe(tmp_path: Path, evidence: Path, **workload: Any) -> Path:
    data = {
        "schema_version": 1,
        "seed": 1,
        "workload": {
            "name": "saves",
            "command": [sys.executable, str(SAVES), str(evidence), SAVE_S],
            "timeout": float(TIMEOUT),
            **workload,
        },
        "trials": 1,
        "cells": [{"name": "baseline", "mitigations": ["none"]}],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _shim() -> list[str]:
    return ["matrix", "--mitigation-axis", "none", "--trials", "1", "--timeout", TIMEOUT]


def _after_dashes(evidence: Path) -> list[str]:
    return ["--", sys.executable, str(SAVES), str(evidence), SAVE_S]


def _ran(res: Any) -> Path:
    assert "Traceback" not in res.stderr, res.stderr
    return Path(res.json()["run_dir"])


def test_a_long_grace_in_the_recipe_lets_the_trial_save(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    ev = _evidence(tmp_path)
    res = sleuth("matrix", "--recipe", _recipe(tmp_path, ev, kill_grace=60), "--json")
    run_dir = _ran(res)
    assert (ev / "ready").exists() and (ev / "term").exists()
    assert (ev / "saved").exists()  # SIGTERM at the timeout, then the grace: the save ended (the
    # default 5 s would have killed it)
    assert yaml.safe_load((run_dir / "recipe.resolved.yaml").read_text())["workload"]["kill_grace"] == 60
    assert open_resume(run_dir).loaded.plan.recipe.workload.kill_grace_s == 60


def test_a_short_grace_flag_kills_the_trial_before_it_saves(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    ev = _evidence(tmp_path)
    res = sleuth(*_shim(), "--kill-grace", "0.2", "--json", *_after_dashes(ev))
    run_dir = _ran(res)
    assert (ev / "term").exists()  # it got SIGTERM and began to save
    assert not (ev / "saved").exists()  # SIGKILL came first (the default 5 s would have let it save)
    assert open_resume(run_dir).loaded.plan.recipe.workload.kill_grace_s == 0.2


def test_the_flag_overrides_the_recipe_and_a_resume_keeps_it(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    ev = _evidence(tmp_path)
    res = sleuth("matrix", "--recipe", _recipe(tmp_path, ev, kill_grace=60), "--kill-grace", "0.2", "--json")
    run_dir = _ran(res)
    assert (ev / "term").exists() and not (ev / "saved").exists()
    assert yaml.safe_load((run_dir / "recipe.resolved.yaml").read_text())["workload"]["kill_grace"] == 0.2
    # as a kill -9 during the trial leaves the journal: the trial runs again on resume, with the
    # run's grace (not the recipe file's 60, not the default 5: either would let it save)
    journal = run_dir / "journal.jsonl"
    kept = [ln for ln in journal.read_text().splitlines() if json.loads(ln)["event"] not in {"trial", "end"}]
    journal.write_text("\n".join(kept) + "\n")
    ev = _evidence(tmp_path)
    again = sleuth("matrix", "resume", run_dir, "--json")
    assert "Traceback" not in again.stderr, again.stderr
    assert (ev / "term").exists() and not (ev / "saved").exists()


def test_without_a_grace_the_resolved_recipe_keeps_the_default(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    res = sleuth("matrix", "--mitigation-axis", "none", "--trials", "1", "--json", "--", "true")
    run_dir = _ran(res)
    assert yaml.safe_load((run_dir / "recipe.resolved.yaml").read_text())["workload"]["kill_grace"] == 5


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("-1", "--kill-grace -1: must be zero or a positive"), ("nan", "--kill-grace nan: must be zero"),
     ("inf", "--kill-grace inf: must be zero"), ("1e9", "--kill-grace 1e+09: at most 3600 seconds"),
     ("abc", "'abc' is not a valid float")],
)  # fmt: skip
@pytest.mark.parametrize("recipe", [False, True], ids=["shim", "recipe"])
def test_a_bad_kill_grace_flag_is_one_line_and_leaves_no_run_dir(
    sleuth: Callable[..., Any], tmp_path: Path, value: str, fragment: str, recipe: bool
) -> None:
    ev = _evidence(tmp_path)
    argv = ["matrix", "--recipe", str(_recipe(tmp_path, ev))] if recipe else _shim()
    tail = [] if recipe else _after_dashes(ev)
    one_line_error(sleuth(*argv, "--kill-grace", value, *tail), "--kill-grace", fragment)
    assert not (tmp_path / "runs").exists()
    assert not (ev / "ready").exists()


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(-1, "greater than or equal to 0"), (1e9, "less than or equal to 3600"), ("5", "valid number"),
     (True, "valid number"), (math.inf, "finite number"), (math.nan, "finite number")],
)  # fmt: skip
def test_a_bad_kill_grace_in_the_recipe_names_the_file_and_key(
    sleuth: Callable[..., Any], tmp_path: Path, value: Any, fragment: str
) -> None:
    ev = _evidence(tmp_path)
    path = _recipe(tmp_path, ev, kill_grace=value)
    one_line_error(sleuth("matrix", "--recipe", path), f"{path}: workload.kill_grace: ", fragment)
    assert not (tmp_path / "runs").exists()


def test_resume_takes_no_kill_grace(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    """The grace is the run's own: ``matrix --kill-grace S resume`` is refused, not ignored."""
    one_line_error(sleuth("matrix", "--kill-grace", "9", "resume", tmp_path), "takes its own options only")


#: a named workload (``file.py:Class``) that runs the saving workload with its own timeout and grace
_PLUGIN = """
import sys

class Saves:
    name = "saves"
    timeout = {timeout}
    kill_grace = {grace}

    def command(self, params):
        return [sys.executable, {saves!r}, {evidence!r}, {save_s!r}]
"""


def _plugin(tmp_path: Path, evidence: Path, grace: str = "60", timeout: str = TIMEOUT) -> str:
    path = tmp_path / "saves_plugin.py"
    path.write_text(_PLUGIN.format(timeout=timeout, grace=grace, saves=str(SAVES), evidence=str(evidence),
                                   save_s=SAVE_S))  # fmt: skip
    return f"{path}:Saves"


def test_a_plugins_grace_lets_the_trial_save_and_a_resume_keeps_it(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    ev = _evidence(tmp_path)
    res = sleuth(
        "matrix", "--workload", _plugin(tmp_path, ev), "--mitigation-axis", "none", "--trials", "1", "--json"
    )
    run_dir = _ran(res)
    assert (ev / "term").exists()  # stopped at the plugin's timeout
    assert (
        ev / "saved"
    ).exists()  # then the plugin's grace: the save ended (the default 5 s would have killed it)
    assert yaml.safe_load((run_dir / "recipe.resolved.yaml").read_text())["workload"]["kill_grace"] == 60
    assert open_resume(run_dir).loaded.plan.recipe.workload.kill_grace_s == 60


@pytest.mark.parametrize("where", ["recipe", "flag"])
def test_the_recipe_or_the_flag_overrides_a_plugins_grace(
    sleuth: Callable[..., Any], tmp_path: Path, where: str
) -> None:
    ev = _evidence(tmp_path)
    workload: dict[str, Any] = {"plugin": _plugin(tmp_path, ev)}
    workload |= {"kill_grace": 0.2} if where == "recipe" else {}
    data = {"schema_version": 1, "seed": 1, "workload": workload, "trials": 1,
            "cells": [{"name": "baseline", "mitigations": ["none"]}]}  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    flag = ["--kill-grace", "0.2"] if where == "flag" else []
    run_dir = _ran(sleuth("matrix", "--recipe", path, *flag, "--json"))
    assert (ev / "term").exists()  # it got SIGTERM at the plugin's timeout and began to save
    assert not (ev / "saved").exists()  # SIGKILL came first (the plugin's 60 s would have let it save)
    assert yaml.safe_load((run_dir / "recipe.resolved.yaml").read_text())["workload"]["kill_grace"] == 0.2


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [("kill_grace", "-1", "greater than or equal to 0"), ("kill_grace", "1e9", "less than or equal to 3600"),
     ("kill_grace", "'5'", "valid number"), ("kill_grace", "True", "valid number"),
     ("kill_grace", "float('inf')", "finite number"), ("kill_grace", "float('nan')", "finite number"),
     ("timeout", "0", "greater than 0"), ("timeout", "1e12", "1e+12: at most 2.592e+06 seconds"),
     ("timeout", "31 * 86400.0", "2.6784e+06: at most 2.592e+06 seconds"),
     ("timeout", "float('inf')", "finite number")],
)  # fmt: skip
def test_a_bad_grace_or_timeout_of_a_plugin_names_the_plugin_and_key(
    sleuth: Callable[..., Any], tmp_path: Path, key: str, value: str, fragment: str
) -> None:
    """A plugin's seconds are checked as the recipe's own (its timeout took inf and 1e12)."""
    ev = _evidence(tmp_path)
    ref = _plugin(tmp_path, ev, **{"grace" if key == "kill_grace" else key: value})
    res = sleuth("matrix", "--workload", ref, "--mitigation-axis", "none", "--trials", "1", "--dry-run")
    one_line_error(res, f"workload {ref}: {key}: ", fragment)
    assert not (tmp_path / "runs").exists()
