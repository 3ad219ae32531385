"""Every output of the gate verbs hides what their HTML pages hide: a run id or suite that is a token
(``--run-id ghp_...``, stored as given: it is the run's key) and the value of a secret variable of
the caller's shell.  Real histories recorded with the real CLI into SQLite."""

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
def history(sleuth: Callable[..., CliResult], tmp_path: Path) -> tuple[str, CliResult]:
    """14 runs ``ghp_...00`` to ``...13`` of suite SUITE, load_s 30% up from the 8th, recorded with
    ``gate record --from-dir`` (its own output returned)."""
    for i in range(14):
        folder = tmp_path / "artifacts" / f"b{i:02d}"
        folder.mkdir(parents=True)
        (folder / "r.csv").write_text(f"metric,value,unit\nload_s,{100 + 30 * (i >= 7)},s\nallocs,3,count\n")
        meta = {"suite": SUITE, "run_id": f"{TOKEN}{i:02d}", "created_at": f"2025-01-01T00:00:{i:02d}Z",
                "files": ["r.csv"]}  # fmt: skip
        (folder / "sleuth-gate.json").write_text(json.dumps(meta))
    db = f"sqlite:///{tmp_path / 'history.db'}"
    made = sleuth("gate", "record", "--from-dir", tmp_path / "artifacts", "--db", db, env=ENV)
    assert made.rc == 0, made.stderr
    return db, made


def _no_secret(*texts: str, roots: list[Path] = []) -> None:  # noqa: B006 (read only)
    for secret in (TOKEN, SUITE):
        assert_no_secret(secret, *texts, roots=roots)


def test_changepoints_hides_run_ids_in_every_output(
    sleuth: Callable[..., CliResult], history: tuple[str, CliResult], tmp_path: Path
) -> None:
    db, recorded = history
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
    _no_secret(recorded.stdout, shown.stdout, shown.stderr, as_json.stdout, roots=[out])


def test_check_graduate_baseline_runs_and_record_hide_them_too(
    sleuth: Callable[..., CliResult], history: tuple[str, CliResult], tmp_path: Path
) -> None:
    db, recorded = history
    out = tmp_path / "out"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    texts = [recorded.stdout, recorded.stderr]
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
    base = out / "baselines.json"  # the file keeps the suite: baseline diff reads it back
    captured = sleuth("gate", "baseline", "capture", "--suite", SUITE, "-o", base, "--db", db, env=ENV)
    assert captured.rc == 0, captured.stderr
    diff = ("gate", "baseline", "diff", base, "--db", db)
    moved = sleuth(*diff, "--markdown", out / "diff.md", "--junit", out / "diff.xml", env=ENV)
    moved_json = sleuth(*diff, "--json", env=ENV)
    assert moved.rc == 0 and moved_json.json()["suite"] == "<redacted>", moved.stderr
    runs = sleuth("gate", "runs", "--suite", SUITE, "--db", db, env=ENV)
    runs_json = sleuth("gate", "runs", "--suite", SUITE, "--db", db, "--json", env=ENV)
    suites = sleuth("gate", "runs", "--db", db, env=ENV)
    assert [r["run_id"] for r in runs_json.json()["runs"]] == ["<redacted>"] * 14
    assert suites.stdout.strip() == "<redacted>" and runs.stdout.count("<redacted>") == 14
    again = sleuth("gate", "record", "--from-dir", tmp_path / "artifacts", "--db", db, "--json", env=ENV)
    assert again.rc == 0 and again.json()["already_recorded"] == ["<redacted>/<redacted>"] * 14
    texts += [captured.stdout, moved.stdout, moved_json.stdout, runs.stdout, runs_json.stdout, again.stdout]
    _no_secret(*texts, roots=[p for p in out.iterdir() if p != base])
