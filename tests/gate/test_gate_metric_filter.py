"""A reading verb's ``--metric`` names a metric as the user recorded it: the name goes through what
``record`` does to a name (secrets hidden, a name over 500 characters fitted) before it is looked
up, as ``--branch`` does.  Named as given, a hyperfine command line holding ``--api-key=...``, a name
holding the value of a secret variable of the shell, or a long name found none of its runs.  Real
``sleuth`` processes, real SQLite and directory histories."""

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
NAMES = (FLAGGED, IN_SHELL, LONG)
ENV = {"DEPLOY_PASSWORD": SHELL_SECRET, "SLEUTH_GATE_DB": ""}
RUNS = 4


@pytest.fixture(params=["sqlite", "dir"])
def history(request: pytest.FixtureRequest, sleuth: Callable[..., CliResult], tmp_path: Path) -> str:
    """A history of RUNS runs of the three metrics (and one more)."""
    db = f"sqlite:///{tmp_path / 'h.db'}" if request.param == "sqlite" else f"dir://{tmp_path / 'hist'}"
    for i in range(RUNS):
        doc = {name: [1.0 + k] for k, name in enumerate(NAMES)}
        (tmp_path / f"r{i}.json").write_text(json.dumps({**doc, "other": [9.0]}))
        r = sleuth("gate", "record", "--suite", "s", "--run-id", str(i), "--no-provenance", "--db", db,
                   f"r{i}.json", env=ENV)  # fmt: skip
        assert r.rc == 0, r.stderr
    return db


def _flags(names: tuple[str, ...]) -> list[str]:
    return [a for n in names for a in ("--metric", n)]


def test_changepoints_finds_the_metric_by_the_name_it_was_recorded_under(
    sleuth: Callable[..., CliResult], history: str
) -> None:
    for name in NAMES:
        cp = sleuth("gate", "changepoints", "--suite", "s", "--metric", name, "--min-segment", "2", "--json",
                    "--db", history, env=ENV)  # fmt: skip
        assert cp.rc == 0, cp.stderr
        assert cp.json()["n"] == RUNS, (name[:40], cp.stdout)


def test_graduate_check_and_baseline_capture_find_them_too(
    sleuth: Callable[..., CliResult], history: str, tmp_path: Path
) -> None:
    grad = sleuth("gate", "graduate", "--suite", "s", *_flags(NAMES), "--last", "3", "--json", "--db", history,
                  env=ENV)  # fmt: skip
    assert grad.rc == 0, grad.stderr
    rows = grad.json()["metrics"]
    assert [r["verdict"] for r in rows] == ["OK"] * 3 and [r["runs"] for r in rows] == [3] * 3, grad.stdout
    (tmp_path / "policy.yaml").write_text('version: 1\nmetrics:\n  "*": {kind: counter}\n')
    chk = sleuth("gate", "check", "--suite", "s", "--policy", "policy.yaml", *_flags(NAMES), "--json",
                 "--db", history, env=ENV)  # fmt: skip
    assert chk.rc == 0, chk.stderr
    assert len(chk.json()["metrics"]) == 3 and {r["verdict"] for r in chk.json()["metrics"]} == {"PASS"}
    cap = sleuth("gate", "baseline", "capture", "--suite", "s", *_flags(NAMES), "-o", "b.json", "--db", history,
                 env=ENV)  # fmt: skip
    assert cap.rc == 0, cap.stderr
    entries = json.loads((tmp_path / "b.json").read_text())["metrics"]
    assert len(entries) == 3 and {e["runs"] for e in entries.values()} == {RUNS}, entries
    for out in (grad.stdout, chk.stdout, (tmp_path / "b.json").read_text()):
        assert SHELL_SECRET not in out and "abcdef123456" not in out


def test_a_name_recorded_where_the_value_was_no_secret_is_one_series_with_it_hidden(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    """Runs recorded in a shell without the secret variable keep the value in the name; read in a
    shell with it, the name hides it as a run recorded there does, and both are one series."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    for i in range(RUNS):
        (tmp_path / f"r{i}.json").write_text(json.dumps({IN_SHELL: [1.0 + 0.001 * i]}))
        env = ENV if i % 2 else {"SLEUTH_GATE_DB": ""}
        r = sleuth("gate", "record", "--suite", "s", "--run-id", str(i), "--no-provenance", "--db", db,
                   f"r{i}.json", env=env)  # fmt: skip
        assert r.rc == 0, r.stderr
    cp = sleuth("gate", "changepoints", "--suite", "s", "--metric", IN_SHELL, "--min-segment", "2", "--json",
                "--db", db, env=ENV)  # fmt: skip
    assert cp.rc == 0 and cp.json()["n"] == RUNS, cp.stdout + cp.stderr
    runs = sleuth("gate", "runs", "--suite", "s", "--json", "--db", db, env=ENV).json()["runs"]
    assert {s["metric"] for r in runs for s in r["samples"]} == {"latency <redacted> p50"}


def test_a_name_an_older_sleuth_stored_with_its_secret_is_found_hidden(
    sleuth: Callable[..., CliResult], store_url: str
) -> None:
    """A run an older sleuth stored with a secret in a metric name (its rule did not hide it) is read
    with the name hidden; ``--metric`` with the name as recorded finds it there."""
    from dataclasses import replace

    from sleuth.gate.model import Run, Sample
    from sleuth.gate.store import open_store

    raw = "bench --db-url x password=hunter2pw"
    old = Run(suite="s", run_id="old", created_at="2026-01-01T00:00:00+00:00", samples=(Sample(raw, (1.0,)),))
    store = open_store(store_url, create=True)
    try:
        for i in range(3):
            assert store.add_run(
                replace(old, run_id=f"old{i}", created_at=f"2026-01-0{i + 1}T00:00:00+00:00")
            )
    finally:
        store.close()
    cp = sleuth("gate", "changepoints", "--suite", "s", "--metric", raw, "--min-segment", "2", "--json",
                "--db", store_url, env=ENV)  # fmt: skip
    assert cp.rc == 3 and cp.json()["n"] == 3, cp.stdout + cp.stderr  # 3 points: too few, found
    assert "hunter2pw" not in cp.stdout and "password=<redacted>" in cp.json()["series"]
