"""The lines a gate verb prints besides its tables (an ``INSUFFICIENT`` warning on stderr, a skipped
artifact's reason, the history it names) go through the rule an error line goes through: the value
of a secret variable of the shell is hidden wherever it appears in them, and a long quote is cut
after hiding (cut first, a secret's start was left where its whole was no longer found).  Real
``sleuth`` processes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.badinput import assert_no_secret
from tests.conftest import CliResult

#: the values of the shell's secret variables; SECRET is a valid suite name, LONG is longer than
#: the 40 characters of a quoted metadata value and the 80 of a quoted list of file names
SECRET = "Zq7deploySecret4242xx"
LONG = "Lq9-" + "deploySecretValue" * 4
ENV = {"DEPLOY_TOKEN": SECRET, "DEPLOY_PASSWORD": LONG, "SLEUTH_GATE_DB": ""}


def test_an_insufficient_warning_hides_the_secret_it_quotes(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    (tmp_path / "b.json").write_text(json.dumps({"suite": SECRET, "metrics": {"m": {"value": 3}}}))
    r = sleuth("gate", "baseline", "diff", "b.json", "--db", f"dir://{tmp_path / SECRET}", env=ENV)
    assert r.rc == 3, r.stderr
    assert r.stderr.strip() == "INSUFFICIENT: no runs recorded for suite <redacted>", r.stderr
    assert_no_secret(SECRET, r.stdout, r.stderr)


def test_the_history_named_in_a_line_hides_the_secret_in_its_path(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    db = f"dir://{tmp_path / SECRET / 'hist'}"
    suites = sleuth("gate", "runs", "--db", db, env=ENV)
    runs = sleuth("gate", "runs", "--suite", "s", "--db", db, env=ENV)
    assert suites.rc == runs.rc == 0, (suites.stderr, runs.stderr)
    assert suites.stdout.strip() == f"no suites in dir://{tmp_path}/<redacted>/hist"
    assert runs.stdout.strip() == f"no runs of s in dir://{tmp_path}/<redacted>/hist"
    assert_no_secret(SECRET, suites.stdout, suites.stderr, runs.stdout, runs.stderr)


def test_a_skipped_artifacts_reason_hides_a_secret_before_it_is_cut(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    """A metadata value and a file list are quoted cut (40 and 80 characters): cut first, the start
    of the secret stayed, since the whole value was no longer there to be found."""
    meta = {"schema": 1, "suite": "s", "run_id": "1", "created_at": LONG}
    (tmp_path / "dl" / "a").mkdir(parents=True)
    (tmp_path / "dl" / "a" / "sleuth-gate.json").write_text(json.dumps(meta))
    (tmp_path / "dl" / "b").mkdir()
    listed = {**meta, "run_id": "2", "created_at": None, "files": ["x" * 70 + SECRET]}
    (tmp_path / "dl" / "b" / "sleuth-gate.json").write_text(json.dumps(listed))
    r = sleuth("gate", "record", "--from-dir", "dl", "--db", f"dir://{tmp_path / SECRET}", env=ENV)
    assert r.rc == 3, r.stderr
    assert "skipped dl/a: metadata key 'created_at' '<redacted>' is not an ISO 8601 time" in r.stdout
    assert "skipped dl/b: none of the listed files is there (xxx" in r.stdout
    assert f"-> dir://{tmp_path}/<redacted>" in r.stdout, r.stdout
    for secret in (SECRET, LONG):
        assert_no_secret(secret[:10], r.stdout, r.stderr)
