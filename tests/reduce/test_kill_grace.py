"""``sleuth reduce --kill-grace`` and the spec's ``workload.kill_grace``: how long a trial stopped at
its timeout has between SIGTERM and SIGKILL, kept in ``reduce.json`` for ``reduce resume``.

The workload (``tests/programs/saves_on_term.py``) writes ``ready`` once its SIGTERM handler is
set, ``term`` when SIGTERM comes, and ``saved`` after a save longer than the default grace; every
assertion is on those files, never on a duration.  The oracle looks for output the workload never
prints, so the reduction stops after its one baseline trial (not reproducible).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sleuth.errors import UsageError
from sleuth.reduce import rundir

SAVES = Path(__file__).parents[1] / "programs" / "saves_on_term.py"
#: the workload's save after SIGTERM: longer than a short grace and than the default 5 s (so a
#: grace lost on the way fails the long-grace test), far shorter than a long one
SAVE_S = "6"


def _evidence(tmp_path: Path) -> Path:
    d = tmp_path / "evidence"
    d.mkdir(exist_ok=True)
    for f in d.iterdir():
        f.unlink()
    return d


def _spec(tmp_path: Path, evidence: Path, **workload: Any) -> Path:
    data = {
        "name": "saves",
        "workload": {
            "command": [sys.executable, str(SAVES), str(evidence), SAVE_S, "{N}"],
            "timeout": 3,  # far longer than the workload takes to set its handler
            **workload,
        },
        "oracle": {"kind": "regex", "pattern": "never printed"},
        "budget": {"baseline_trials": 1},
        "axes": [{"name": "N", "kind": "param", "initial": 4, "floor": 1}],
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _run_dir(tmp_path: Path) -> Path:
    (run_dir,) = (tmp_path / "out" / "reduce" / "saves").iterdir()
    return run_dir


def test_a_long_grace_in_the_spec_lets_the_trial_save(cli: Callable[..., Any], tmp_path: Path) -> None:
    ev = _evidence(tmp_path)
    res = cli("reduce", "--spec", _spec(tmp_path, ev, kill_grace=60), "--output", tmp_path / "out", "--json")
    assert res.returncode == 3, res.stderr  # the original never printed the pattern
    assert (ev / "ready").exists() and (ev / "term").exists()
    assert (ev / "saved").exists()  # SIGTERM at the timeout, then the grace: the save ended (the
    # default 5 s would have killed it)
    assert json.loads((_run_dir(tmp_path) / "reduce.json").read_text())["kill_grace"] == 60


def test_a_short_grace_flag_overrides_the_spec_and_a_resume_keeps_it(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    ev = _evidence(tmp_path)
    spec = _spec(tmp_path, ev, kill_grace=60)
    res = cli("reduce", "--spec", spec, "--kill-grace", "0.2", "--output", tmp_path / "out", "--json")
    assert res.returncode == 3, res.stderr
    assert (ev / "term").exists()  # it got SIGTERM and began to save
    assert not (ev / "saved").exists()  # SIGKILL came first (the spec's 60 s would have let it save)
    run_dir = _run_dir(tmp_path)
    assert json.loads((run_dir / "reduce.json").read_text())["kill_grace"] == 0.2
    # as a kill -9 during the baseline trial leaves the journal: a resume runs it again with the
    # run's grace (not the spec file's 60, not the default 5: either would let it save)
    journal = run_dir / "journal.jsonl"
    start = journal.read_text().splitlines()[0]
    assert json.loads(start)["event"] == "start"
    journal.write_text(start + "\n")
    ev = _evidence(tmp_path)
    again = cli("reduce", "resume", run_dir, "--json")
    assert again.returncode == 3, again.stderr
    assert (ev / "term").exists() and not (ev / "saved").exists()


def test_resume_refuses_a_damaged_kill_grace(tmp_path: Path) -> None:
    """``reduce.json``'s kill_grace is read back as the run wrote it, or the resume stops naming it."""
    config = {"spec": None, "workload": "w", "name": "n", "output": str(tmp_path), "spec_sha256": "x",
              "jobs": 1, "gpus": [], "one_minimal": False}  # fmt: skip
    for bad in (-1, "5", True, 1e9):
        (tmp_path / "reduce.json").write_text(json.dumps({**config, "kill_grace": bad}))
        with pytest.raises(UsageError, match=r"reduce\.json: kill_grace: "):
            rundir.read_config(tmp_path)
    (tmp_path / "reduce.json").write_text(json.dumps(config))  # a run dir from before: the spec's
    assert "kill_grace" not in rundir.read_config(tmp_path)


def test_resume_takes_no_kill_grace(cli: Callable[..., Any], tmp_path: Path) -> None:
    """The grace is the run's own: ``reduce --kill-grace S resume`` is refused, not ignored."""
    res = cli("reduce", "--kill-grace", "9", "resume", tmp_path)
    assert res.returncode == 2 and "takes its own options only" in res.stderr, res.stderr


#: a named workload (``file.py:Class``) without a ``workload`` section: it gives its command, timeout
#: and grace the core way (:mod:`sleuth.workloads`)
_PLUGIN = """
import sys

class Saves:
    name = "saves"
    timeout = 3
    kill_grace = {grace}
    oracle = {{"kind": "regex", "pattern": "never printed"}}
    budget = {{"baseline_trials": 1}}
    axes = [{{"name": "N", "kind": "param", "initial": 4, "floor": 1}}]

    def command(self, params):
        return [sys.executable, {saves!r}, {evidence!r}, {save_s!r}, "{{N}}"]
"""


def _plugin(tmp_path: Path, evidence: Path, grace: str) -> str:
    path = tmp_path / "saves_plugin.py"
    path.write_text(_PLUGIN.format(grace=grace, saves=str(SAVES), evidence=str(evidence), save_s=SAVE_S))
    return f"{path}:Saves"


@pytest.mark.parametrize(
    ("flag", "grace"), [([], 60), (["--kill-grace", "0.2"], 0.2)], ids=["plugin", "flag"]
)
def test_a_plugins_grace_reaches_the_trials_and_the_flag_overrides_it(
    cli: Callable[..., Any], tmp_path: Path, flag: list[str], grace: float
) -> None:
    ev = _evidence(tmp_path)
    res = cli(
        "reduce", "--workload", _plugin(tmp_path, ev, "60"), *flag, "--output", tmp_path / "out", "--json"
    )
    assert res.returncode == 3, res.stderr
    assert (ev / "term").exists()  # stopped at the plugin's timeout
    # the plugin's 60 s let the save end (the default 5 s would have killed it); the flag's 0.2 did not
    assert (ev / "saved").exists() is (grace == 60)
    assert json.loads((_run_dir(tmp_path) / "reduce.json").read_text())["kill_grace"] == grace


def test_a_bad_grace_of_a_plugin_is_one_line(cli: Callable[..., Any], tmp_path: Path) -> None:
    ev = _evidence(tmp_path)
    for grace, fragment in (("-1", "greater than or equal to 0"), ("'5'", "workload.kill_grace")):
        res = cli("reduce", "--workload", _plugin(tmp_path, ev, grace), "--output", tmp_path / "out")
        assert res.returncode == 2, res.stderr
        assert "workload.kill_grace" in res.stderr and fragment in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "out").exists() and not (ev / "ready").exists()
