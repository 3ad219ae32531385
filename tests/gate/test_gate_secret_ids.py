"""A suite, run id or branch that looks like a credential is refused wherever the gate would store
it: every output shows it as ``<redacted>``, and ``--emit-metadata`` wrote ``run_id: "<redacted>"``,
which ``record --from-dir`` then skipped as "not a valid name" (the run was lost).  Real ``sleuth``
processes, real SQLite histories."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.badinput import assert_no_secret, assert_usage_error, tree_state
from tests.conftest import CliResult

TOKEN = "ghp_" + "X" * 36
#: the value of a secret variable of the shell (its name says PASSWORD)
SHELL_SECRET = "bench-Sekr1tSuite77"
ENV = {"DEPLOY_PASSWORD": SHELL_SECRET}
#: names people give suites, run ids and branches: 32+ characters mixing cases and digits, which the
#: whole-value rule for environment values would hide; a name is judged by its words
LONG = "nightly-Linux-x86_64-Python3.12-20250101"
LONG_RUN = "run-A100-bf16-Batch256-20251201x1"
LONG_BRANCH = "renovate/Major-Updates-Python3-2025"


@pytest.mark.parametrize(
    ("argv", "flag", "secret"),
    [
        (("record", "--suite", "s", "--run-id", TOKEN, "r.csv"), "--run-id", TOKEN),
        (("record", "--emit-metadata", "art", "--suite", "s", "--run-id", TOKEN, "r.csv"), "--run-id", TOKEN),
        (("record", "--suite", SHELL_SECRET, "--run-id", "1", "r.csv"), "--suite", SHELL_SECRET),
        (("record", "--suite", "s", "--run-id", "1", "--branch", TOKEN, "r.csv"), "--branch", TOKEN),
        (("record", "--from-dir", "art0", "--suite", TOKEN), "--suite", TOKEN),
        (("baseline", "capture", "--suite", SHELL_SECRET, "-o", "b.json"), "--suite", SHELL_SECRET),
        (("baseline", "capture", "--suite", "s", "--branch", TOKEN, "-o", "b.json"), "--branch", TOKEN),
    ],
    ids=[
        "record-run-id",
        "emit-run-id",
        "record-env-suite",
        "record-branch",
        "from-dir-suite",
        "capture-suite",
        "capture-branch",
    ],
)
def test_a_secret_looking_name_is_a_usage_error_before_anything_is_written(
    sleuth: Callable[..., CliResult], tmp_path: Path, argv: tuple[str, ...], flag: str, secret: str
) -> None:
    (tmp_path / "r.csv").write_text("metric,value\nm,1\n")
    (tmp_path / "art0").mkdir()
    db = f"sqlite:///{tmp_path / 'h.db'}"
    made = sleuth("gate", "record", "--suite", "s", "--run-id", "0", "r.csv", "--db", db)  # a history
    assert made.rc == 0, made.stderr
    before = tree_state(tmp_path)
    r = sleuth("gate", *argv, "--db", db, env=ENV)
    assert_usage_error(r.rc, r.stdout, r.stderr, [flag, "looks like a credential"], before=before,
                       after=tree_state(tmp_path))  # fmt: skip
    assert_no_secret(secret, r.stdout, r.stderr)


def test_from_dir_names_the_metadata_key_of_a_secret_looking_run_id_and_records_the_rest(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    """One artifact as an older sleuth's ``--emit-metadata`` wrote it (``run_id: "<redacted>"``),
    one written by hand with a token as its run id, one whose suite is a secret of this shell, one
    good: the good one is recorded, each other skipped with a line naming the file and key."""
    arts = tmp_path / "art"
    for folder, suite, run_id in (
        ("old", "s", "<redacted>"),
        ("hand", "s", TOKEN),
        ("env", SHELL_SECRET, "7"),
        ("good", "s", "8"),
    ):
        (arts / folder).mkdir(parents=True)
        (arts / folder / "r.csv").write_text("metric,value\nm,1\n")
        meta = {"suite": suite, "run_id": run_id, "files": ["r.csv"]}
        (arts / folder / "sleuth-gate.json").write_text(json.dumps(meta))
    db = f"sqlite:///{tmp_path / 'h.db'}"
    r = sleuth("gate", "record", "--from-dir", arts, "--db", db, env=ENV)
    assert r.rc == 0 and "Traceback" not in r.stderr, r.stderr
    skipped = {line.split(":")[0].removeprefix("skipped "): line for line in r.stdout.splitlines()
               if line.startswith("skipped ")}  # fmt: skip
    assert sorted(skipped) == [str(arts / f) for f in ("env", "hand", "old")], r.stdout
    assert "sleuth-gate.json key 'run_id' is <redacted>" in skipped[str(arts / "old")]
    assert "sleuth-gate.json key 'run_id' looks like a credential" in skipped[str(arts / "hand")]
    assert "sleuth-gate.json key 'suite' looks like a credential" in skipped[str(arts / "env")]
    assert "1 recorded, 0 already there, 3 skipped" in r.stdout
    runs = sleuth("gate", "runs", "--suite", "s", "--db", db, "--json")
    assert [run["run_id"] for run in runs.json()["runs"]] == ["8"]
    assert sleuth("gate", "runs", "--db", db, "--json").json()["suites"] == ["s"]
    for secret in (TOKEN, SHELL_SECRET):
        assert_no_secret(secret, r.stdout, r.stderr, runs.stdout)


def test_emit_then_from_dir_keeps_every_run_of_plain_names(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    """The round trip the refusal protects: long names mixing cases and digits (a suite
    ``nightly-Linux-x86_64-Python3.12-20250101``) come back as given.  ``--emit-metadata`` wrote them
    as ``<redacted>`` (the whole-value rule of environment values), and ``--from-dir`` lost the runs."""
    (tmp_path / "r.csv").write_text("metric,value\nm,1\n")
    for i in (1, 2):
        e = sleuth("gate", "record", "--emit-metadata", f"art/{i}", "--suite", LONG, "--run-id",
                   f"{LONG_RUN}-{i}", "--branch", LONG_BRANCH, "r.csv", env=ENV)  # fmt: skip
        assert e.rc == 0, e.stderr
    db = f"sqlite:///{tmp_path / 'h.db'}"
    r = sleuth("gate", "record", "--from-dir", tmp_path / "art", "--db", db, env=ENV)
    assert r.rc == 0 and "0 skipped" in r.stdout, r.stdout + r.stderr
    runs = sleuth("gate", "runs", "--suite", LONG, "--db", db, "--json").json()["runs"]
    assert [(x["run_id"], x["branch"]) for x in runs] == [(f"{LONG_RUN}-{i}", LONG_BRANCH) for i in (1, 2)]


@pytest.mark.parametrize("branch", [LONG_BRANCH, "fix/ghp_abcdefghijkl", "b" * 400])
def test_a_branch_ci_gave_is_found_by_the_name_it_had(
    sleuth: Callable[..., CliResult], tmp_path: Path, branch: str
) -> None:
    """A branch CI gives (``$GITHUB_HEAD_REF``: a fork names it) is stored scrubbed (a token word
    inside hidden) and cut to 300 characters; ``--branch`` and a policy's ``branch`` named it as
    written and found none of its runs.  A long name mixing cases and digits was hidden whole (the
    value of ``$GITHUB_HEAD_REF`` looked like a token): it is now kept as given."""
    (tmp_path / "r.csv").write_text("metric,value\nm,1\n")
    (tmp_path / "policy.yaml").write_text(f"version: 1\nbranch: {branch}\nmetrics:\n  m: {{kind: counter}}\n")
    db = f"sqlite:///{tmp_path / 'h.db'}"
    for i in range(3):
        r = sleuth("gate", "record", "--suite", "s", "--run-id", str(i), "r.csv", "--db", db,
                   env={"GITHUB_HEAD_REF": branch})  # fmt: skip
        assert r.rc == 0, r.stderr
    other = sleuth("gate", "record", "--suite", "s", "--run-id", "9", "--branch", "main", "r.csv", "--db", db)
    assert other.rc == 0, other.stderr
    runs = sleuth("gate", "runs", "--suite", "s", "--branch", branch, "--db", db, "--json")
    assert [x["run_id"] for x in runs.json()["runs"]] == ["0", "1", "2"], runs.stdout + runs.stderr
    graduated = sleuth(
        "gate", "graduate", "--suite", "s", "--branch", branch, "--last", "3", "--db", db, "--json"
    )
    assert graduated.json()["runs"] == 3, graduated.stdout + graduated.stderr
    checked = sleuth("gate", "check", "--suite", "s", "--policy", "policy.yaml", "--db", db, "--json")
    assert checked.rc == 0 and checked.json()["metrics"][0]["verdict"] == "PASS", (
        checked.stdout + checked.stderr
    )
    assert_no_secret("ghp_abcdefghijkl", runs.stdout, graduated.stdout, checked.stdout)
