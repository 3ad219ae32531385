"""A policy's metric keys and a baseline file's name a metric as the user recorded it: each key goes
through what ``record`` does to a name (secrets hidden, this shell's secret values too, control
characters replaced, a name over 500 characters fitted) before it is looked up, as ``--metric`` does.
Through the rule alone, a key over 500 characters, one holding the value of a secret variable of
the shell or a flagged secret (``--api-key=...``) named no recorded metric: the policy silently did
not apply to it (an INSUFFICIENT row of its own), the baseline entry was not its reference.  Two keys
that become one stored name are a usage error naming the file and both keys.  Real ``sleuth``
processes, a real SQLite history."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sleuth.gate.model import METRIC_MAX
from tests.conftest import CliResult

#: the value of a secret variable of the shell (its name says PASSWORD)
SHELL_SECRET = "bench-Sekr1tSuite77"
FLAGGED = "curl --api-key=abcdef123456 https://example.invalid/x"
IN_SHELL = f"latency {SHELL_SECRET} p50"
LONG = "case " * (METRIC_MAX // 5 + 20)
CTRL = "bench\a p50"
NAMES = (FLAGGED, IN_SHELL, LONG, CTRL)
ENV = {"DEPLOY_PASSWORD": SHELL_SECRET, "SLEUTH_GATE_DB": ""}
PLAIN_ENV = {"SLEUTH_GATE_DB": ""}
RUNS = 3


def _history(sleuth: Callable[..., CliResult], tmp_path: Path, env: dict[str, str]) -> str:
    """RUNS runs of NAMES (each metric's value constant) and one more metric, recorded in ``env``."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    for i in range(RUNS):
        doc = {name: [1.0 + k] for k, name in enumerate(NAMES)}
        (tmp_path / f"r{i}.json").write_text(json.dumps({**doc, "other": [9.0]}))
        r = sleuth("gate", "record", "--suite", "s", "--run-id", str(i), "--no-provenance", "--db", db,
                   f"r{i}.json", env=env)  # fmt: skip
        assert r.rc == 0, r.stderr
    return db


def _policy(path: Path, keys: tuple[str, ...], body: str = "{kind: counter, baseline_runs: 2}") -> Path:
    # JSON strings are YAML strings: a key with a BEL or a newline stays one key
    path.write_text("version: 1\nmetrics:\n" + "".join(f"  {json.dumps(k)}: {body}\n" for k in keys))
    return path


def test_a_policy_applies_to_a_metric_by_the_name_it_was_recorded_under(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    db = _history(sleuth, tmp_path, ENV)
    _policy(tmp_path / "policy.yaml", NAMES)
    chk = sleuth("gate", "check", "--suite", "s", "--policy", "policy.yaml", "--json", "--db", db, env=ENV)
    assert chk.rc == 0, chk.stdout + chk.stderr
    rows = chk.json()["metrics"]
    # judged on their runs: no key left over as an INSUFFICIENT row of its own, "other" not covered
    assert [(r["verdict"], r["runs"]) for r in rows] == [("PASS", RUNS)] * len(NAMES), rows
    assert SHELL_SECRET not in chk.stdout and "abcdef123456" not in chk.stdout


def test_a_baseline_file_names_its_metrics_as_they_were_recorded(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    """A baseline file written by hand with the names as given is each counter's reference (its
    value 5 against the runs' 1..4: FAIL); named as given, no entry was found and the counters
    passed against their own history."""
    db = _history(sleuth, tmp_path, ENV)
    _policy(tmp_path / "policy.yaml", ("*",))
    entries = {name: {"value": 5.0 + k, "tolerance": 0} for k, name in enumerate(NAMES)}
    (tmp_path / "b.json").write_text(json.dumps({"schema": 1, "suite": "s", "metrics": entries}))
    chk = sleuth("gate", "check", "--suite", "s", "--policy", "policy.yaml", "--baseline", "b.json", "--json",
                 "--db", db, env=ENV)  # fmt: skip
    assert chk.rc == 1, chk.stdout + chk.stderr
    got = sorted((r["verdict"], r["runs"]) for r in chk.json()["metrics"])
    assert got == [("FAIL", RUNS)] * len(NAMES) + [("PASS", RUNS)], chk.stdout  # "other" has no entry


def test_a_baseline_captured_where_a_value_was_no_secret_diffs_clean_where_it_is(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    """Captured in a shell without the secret variable, the file keeps the value in a name; diffed in
    a shell with it (runs read with the value hidden), every metric is the same, none gone and new.
    The long name, stored fitted, reads back as itself."""
    db = _history(sleuth, tmp_path, PLAIN_ENV)
    cap = sleuth("gate", "baseline", "capture", "--suite", "s", "-o", "b.json", "--db", db, env=PLAIN_ENV)
    assert cap.rc == 0, cap.stderr
    assert IN_SHELL in json.loads((tmp_path / "b.json").read_text())["metrics"]
    diff = sleuth("gate", "baseline", "diff", "b.json", "--json", "--db", db, env=ENV)
    assert diff.rc == 0, diff.stdout + diff.stderr
    rows = diff.json()["metrics"]
    assert [r["status"] for r in rows] == ["same"] * (len(NAMES) + 1), rows
    assert SHELL_SECRET not in diff.stdout


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("curl --api-key=abcdef123456 x", "curl --api-key=zyxwvu987654 x"),  # two secrets, one hidden name
        (IN_SHELL, "latency <redacted> p50"),  # the shell's secret value, and the name as stored
        (LONG, "<fitted>"),  # the long name, and the name as stored (its start and a hash of the whole)
    ],
    ids=["flagged", "shell", "long"],
)
def test_two_policy_keys_that_become_one_stored_name_are_a_usage_error(
    sleuth: Callable[..., CliResult], tmp_path: Path, first: str, second: str
) -> None:
    db = _history(sleuth, tmp_path, ENV)
    if second == "<fitted>":
        runs = sleuth("gate", "runs", "--suite", "s", "--json", "--db", db, env=ENV).json()["runs"]
        (second,) = {s["metric"] for s in runs[0]["samples"] if s["metric"].startswith("case")}
        assert len(second) == METRIC_MAX and second != LONG
    _policy(tmp_path / "policy.yaml", ("other", first, second))
    chk = sleuth("gate", "check", "--suite", "s", "--policy", "policy.yaml", "--db", db, env=ENV)
    assert chk.rc == 2, chk.stdout + chk.stderr
    (line,) = chk.stderr.splitlines()
    assert line.startswith("error: policy.yaml: metrics: keys #2 ") and " and #3 " in line, line
    assert "keep one" in line and "Traceback" not in chk.stderr
    assert SHELL_SECRET not in line and "abcdef123456" not in line and "zyxwvu987654" not in line


def test_two_baseline_keys_that_become_one_stored_name_are_a_usage_error(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    db = _history(sleuth, tmp_path, ENV)
    _policy(tmp_path / "policy.yaml", ("*",))
    entries = {IN_SHELL: {"value": 1.0}, "latency <redacted> p50": {"value": 2.0}}
    (tmp_path / "b.json").write_text(json.dumps({"schema": 1, "suite": "s", "metrics": entries}))
    for argv in (
        ("check", "--suite", "s", "--policy", "policy.yaml", "--baseline", "b.json"),
        ("baseline", "diff", "b.json"),
    ):
        r = sleuth("gate", *argv, "--db", db, env=ENV)
        assert r.rc == 2, r.stdout + r.stderr
        (line,) = r.stderr.splitlines()
        assert "b.json: metrics: keys #1 " in line and " and #2 " in line and SHELL_SECRET not in line, line
