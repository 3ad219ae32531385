"""Every output of the gate verbs hides what their HTML pages hide: a run id or suite that is a token
(``ghp_...``) and the value of a secret variable of the caller's shell.  ``record`` refuses such
names now (test_gate_secret_ids.py); a history an older sleuth recorded with them (it stored them
as given: they are the run's key) is still read, and shown with them hidden.  Real SQLite histories,
read with the real CLI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.badinput import assert_no_secret
from tests.conftest import CliResult

TOKEN = "ghp_" + "Zx8" * 10
#: the suite's name is the value of a secret variable of the shell that runs every command
SUITE = "bench-Sekr1tSuite77"
ENV = {"DEPLOY_PASSWORD": SUITE}
POLICY = "metrics:\n  load_s: {regression: {baseline_runs: 8, recent_runs: 2}}\n  allocs: {kind: counter}\n"


@pytest.fixture
def history(tmp_path: Path) -> str:
    """14 runs ``ghp_...00`` to ``...13`` of suite SUITE, load_s 30% up from the 8th, in a SQLite
    history as an older sleuth recorded them (a run id and suite stored as given)."""
    from sleuth.gate.model import Run, Sample
    from sleuth.gate.store import open_store

    db = f"sqlite:///{tmp_path / 'history.db'}"
    store = open_store(db, create=True)
    try:
        for i in range(14):
            samples = (Sample("load_s", (100.0 + 30 * (i >= 7),), "s"), Sample("allocs", (3.0,), "count"))
            created = f"2025-01-01T00:00:{i:02d}.000000Z"
            assert store.add_run(
                Run(suite=SUITE, run_id=f"{TOKEN}{i:02d}", created_at=created, samples=samples)
            )
    finally:
        store.close()
    return db


def _no_secret(*texts: str, roots: list[Path] = []) -> None:  # noqa: B006 (read only)
    for secret in (TOKEN, SUITE):
        assert_no_secret(secret, *texts, roots=roots)


def test_changepoints_hides_run_ids_in_every_output(
    sleuth: Callable[..., CliResult], history: str, tmp_path: Path
) -> None:
    db = history
    out = tmp_path / "out"
    argv = ("gate", "changepoints", "--suite", SUITE, "--metric", "load_s", "--db", db)
    shown = sleuth(*argv, "--markdown", out / "cp.md", "--junit", out / "cp.xml", "--html", out / "cp.html",
                   env=ENV)  # fmt: skip
    as_json = sleuth(*argv, "--json", env=ENV)
    assert shown.rc == 0 and as_json.rc == 0, shown.stderr + as_json.stderr
    doc = as_json.json()
    assert [cp["index"] for cp in doc["change_points"]] == [7]
    assert doc["change_points"][0]["run_id"] == "<redacted>"
    md = (out / "cp.md").read_text()
    assert "| 7 | `<redacted>` | 100 | 130 |" in md, md
    assert "<redacted>" in shown.stdout
    ET.parse(out / "cp.xml")  # still XML: the marker is escaped there
    _no_secret(shown.stdout, shown.stderr, as_json.stdout, roots=[out])


def test_check_graduate_baseline_and_runs_hide_them_too(
    sleuth: Callable[..., CliResult], history: str, tmp_path: Path
) -> None:
    db = history
    out = tmp_path / "out"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    texts: list[str] = []
    for verb, flags in (
        (("check", "--policy", policy), ("--html", out / "check.html")),
        (("graduate", "--last", "14"), ()),
    ):
        name = verb[0]
        files = ("--markdown", out / f"{name}.md", "--junit", out / f"{name}.xml", *flags)
        shown = sleuth("gate", *verb, "--suite", SUITE, "--db", db, *files, env=ENV)
        as_json = sleuth("gate", *verb, "--suite", SUITE, "--db", db, "--json", env=ENV)
        assert shown.rc in (0, 1, 3) and as_json.rc == shown.rc, shown.stderr
        assert as_json.json()["suite"] == "<redacted>"
        assert "### sleuth gate " + name + ": `<redacted>` (" in (out / f"{name}.md").read_text()
        ET.parse(out / f"{name}.xml")
        texts += [shown.stdout, shown.stderr, as_json.stdout]
    # capture would write the suite into a file to commit: refused (test_gate_secret_ids.py); a file
    # an older sleuth captured keeps it, and diff reads it back
    base = out / "baselines.json"
    metrics = {"load_s": {"value": 130}, "allocs": {"value": 3}}
    base.write_text(json.dumps({"schema": 1, "suite": SUITE, "last": 10, "metrics": metrics}))
    diff = ("gate", "baseline", "diff", base, "--db", db)
    moved = sleuth(*diff, "--markdown", out / "diff.md", "--junit", out / "diff.xml", env=ENV)
    moved_json = sleuth(*diff, "--json", env=ENV)
    assert moved.rc == 0 and moved_json.json()["suite"] == "<redacted>", moved.stderr
    runs = sleuth("gate", "runs", "--suite", SUITE, "--db", db, env=ENV)
    runs_json = sleuth("gate", "runs", "--suite", SUITE, "--db", db, "--json", env=ENV)
    suites = sleuth("gate", "runs", "--db", db, env=ENV)
    assert [r["run_id"] for r in runs_json.json()["runs"]] == ["<redacted>"] * 14
    assert suites.stdout.strip() == "<redacted>" and runs.stdout.count("<redacted>") == 14
    texts += [moved.stdout, moved_json.stdout, runs.stdout, runs_json.stdout]
    _no_secret(*texts, roots=[p for p in out.iterdir() if p != base])


def test_shown_names_hide_the_shells_secret_values_as_they_are_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name cleaned once was kept as first cleaned, whatever the environment became (a cache by
    the text alone): a secret set later was shown, one unset later stayed hidden."""
    from sleuth.gate.model import clean, looks_secret

    name = "bench-Rotated-7777"
    monkeypatch.delenv("SLEUTH_TEST_DEPLOY_TOKEN", raising=False)
    assert clean(f"suite {name}") == f"suite {name}" and not looks_secret(name)
    monkeypatch.setenv("SLEUTH_TEST_DEPLOY_TOKEN", name)
    assert clean(f"suite {name}") == "suite <redacted>" and looks_secret(name)
    monkeypatch.delenv("SLEUTH_TEST_DEPLOY_TOKEN")
    assert clean(f"suite {name}") == f"suite {name}" and not looks_secret(name)
