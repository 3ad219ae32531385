"""Secrets given to ``sleuth run`` reach the workload and nothing else (issue 8 row 4).

Planted through every input path (``--env`` by a secret name, by a token-like value, a URL with
credentials; the command's argv as ``--flag VALUE``, ``--flag=VALUE`` and a flag-named password),
no value may appear in any file of the run dir but ``secrets.json`` (0600), nor in what sleuth
prints; resume still runs the workload with the real values.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

from tests.badinput import assert_no_secret

PY = sys.executable

HF = "hf_" + "Ab3" * 12
TOKEN_LIKE = "Zq9" * 14
URL_PASSWORD = "s3cr3tPassw0rd"
MIRROR = f"https://alice:{URL_PASSWORD}@pypi.example.com/simple"
ARGV_HF = "hf_" + "Cd4" * 12
ARGV_KEY = "sk-" + "Ef5" * 12
ARGV_PASSWORD = "correcthorsebattery"
SECRETS = [HF, TOKEN_LIKE, URL_PASSWORD, ARGV_HF, ARGV_KEY, ARGV_PASSWORD]

ENV_FLAGS = [
    "--env",
    f"HF_TOKEN={HF}",
    "--env",
    f"X={TOKEN_LIKE}",
    "--env",
    f"MIRROR={MIRROR}",
    "--env",
    "NCCL_DEBUG=INFO",
]
ARGS = ["--hf-token", ARGV_HF, f"--api-key={ARGV_KEY}", "--password", ARGV_PASSWORD, "--steps", "3"]

# the workload checks a digest of what it got, so no secret is ever printed by it
WANT = hashlib.sha256(json.dumps([HF, TOKEN_LIKE, MIRROR, "INFO", *ARGS]).encode()).hexdigest()
SCRIPT = (
    "import hashlib, json, os, sys; "
    "got = [os.environ[k] for k in ('HF_TOKEN', 'X', 'MIRROR', 'NCCL_DEBUG')] + sys.argv[1:]; "
    f"ok = hashlib.sha256(json.dumps(got).encode()).hexdigest() == {WANT!r}; "
    "print('values ok' if ok else 'values differ'); sys.exit(0 if ok else 1)"
)

WANT_ENV = hashlib.sha256(json.dumps([HF, TOKEN_LIKE, MIRROR, "INFO"]).encode()).hexdigest()
SCRIPT_ENV = SCRIPT.replace(WANT, WANT_ENV)


def _clean_env(sleuth_env: dict[str, str]) -> None:
    for k in ("HF_TOKEN", "X", "MIRROR"):
        sleuth_env.pop(k, None)


def test_no_secret_reaches_any_file_or_output_and_resume_restores_them(
    sleuth, sleuth_env, tmp_path: Path
) -> None:
    _clean_env(sleuth_env)
    res = sleuth("run", "-n", "2", "--json", *ENV_FLAGS, "--", PY, "-c", SCRIPT, *ARGS)
    assert res.rc == 0, res.stdout + res.stderr
    doc = res.json()
    rd = Path(doc["run_dir"])
    assert all((rd / "trials" / t / "stdout").read_text() == "values ok\n" for t in ("0001", "0002"))
    human = sleuth("run", "--until-fail", "--max-trials", "2", *ENV_FLAGS, "--", PY, "-c", SCRIPT, *ARGS)
    assert human.rc == 0, human.stdout + human.stderr
    assert "--hf-token <redacted>" in human.stdout and "--api-key=<redacted>" in human.stdout
    roots = [tmp_path / "runs"]
    for secret in SECRETS:
        assert_no_secret(secret, res.stdout, res.stderr, human.stdout, human.stderr, roots=roots)
    # what is journaled says what was hidden, and keeps what was not
    start = json.loads((rd / "journal.jsonl").read_text().splitlines()[0])["config"]
    assert start["env"] == {
        "HF_TOKEN": "<redacted>",
        "X": "<redacted>",
        "MIRROR": "<redacted>",
        "NCCL_DEBUG": "INFO",
    }
    assert start["argv"][3:] == [
        "--hf-token",
        "<redacted>",
        "--api-key=<redacted>",
        "--password",
        "<redacted>",
        "--steps",
        "3",
    ]
    assert doc["trials"][0]["argv"] == start["argv"]
    secrets = rd / "secrets.json"
    assert secrets.stat().st_mode & 0o777 == 0o600
    kept = json.loads(secrets.read_text())
    assert kept["HF_TOKEN"] == HF and f"--api-key={ARGV_KEY}" in kept.values()
    # resume: killed before any trial; the workload gets the real values back from secrets.json
    (rd / "journal.jsonl").write_text(json.dumps({"event": "start", "t": 1.0, "config": start}) + "\n")
    shutil.rmtree(rd / "trials")
    (rd / "summary.json").unlink()
    again = sleuth("run", "--resume", rd, "--json")
    assert again.rc == 0, again.stdout + again.stderr
    assert (rd / "trials" / "0001" / "stdout").read_text() == "values ok\n"
    for secret in SECRETS:
        assert_no_secret(secret, again.stdout, again.stderr, roots=roots)
    # without secrets.json, argv values cannot come from anywhere: say so, change nothing
    (rd / "journal.jsonl").write_text(json.dumps({"event": "start", "t": 1.0, "config": start}) + "\n")
    secrets.unlink()
    missing = sleuth("run", "--resume", rd, env={"HF_TOKEN": HF, "X": TOKEN_LIKE, "MIRROR": MIRROR})
    assert missing.rc == 2 and "argument" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1


def test_env_secrets_come_back_from_the_shell_when_secrets_json_was_not_shared(sleuth, sleuth_env) -> None:
    _clean_env(sleuth_env)
    res = sleuth("run", "--json", *ENV_FLAGS, "--", PY, "-c", SCRIPT_ENV)
    assert res.rc == 0, res.stdout + res.stderr
    rd = Path(res.json()["run_dir"])
    lines = (rd / "journal.jsonl").read_text().splitlines()
    (rd / "journal.jsonl").write_text(lines[0] + "\n")
    shutil.rmtree(rd / "trials")
    (rd / "secrets.json").unlink()
    missing = sleuth("run", "--resume", rd)
    assert missing.rc == 2 and "HF_TOKEN" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    from_shell = sleuth(
        "run", "--resume", rd, "--json", env={"HF_TOKEN": HF, "X": TOKEN_LIKE, "MIRROR": MIRROR}
    )
    assert from_shell.rc == 0, from_shell.stdout + from_shell.stderr
    assert (rd / "trials" / "0001" / "stdout").read_text() == "values ok\n"
    for secret in (HF, TOKEN_LIKE, URL_PASSWORD):
        assert_no_secret(secret, from_shell.stdout, from_shell.stderr, roots=[rd])


def test_short_flag_values_are_not_treated_as_secrets(sleuth) -> None:
    """`--num-keys 4` names a KEY, but hiding every "4" would mangle ids and paths."""
    res = sleuth("run", "--json", "--", PY, "-c", "pass", "--num-keys", "4")
    assert res.rc == 0
    assert res.json()["trials"][0]["argv"][-2:] == ["--num-keys", "4"]


def test_short_values_named_by_their_flag_are_hidden_everywhere(sleuth) -> None:
    """`--password hunter2` and `--api-key=abc123x` (6-7 characters) are hidden in every file, not
    only where the argument stands alone: the report's command line, result.json, the journal."""
    res = sleuth("run", "--json", "--", PY, "-c", "pass", "--password", "hunter2", "--api-key=abc123x")
    assert res.rc == 0
    doc = res.json()
    assert doc["trials"][0]["argv"][-3:] == ["--password", "<redacted>", "--api-key=<redacted>"]
    rd = Path(doc["run_dir"])
    assert json.loads((rd / "secrets.json").read_text()) == {
        "argv[4]": "hunter2",
        "argv[5]": "--api-key=abc123x",
    }
    for secret in ("hunter2", "abc123x"):
        assert_no_secret(secret, res.stdout, res.stderr, roots=[rd])


def test_a_setting_the_rule_hides_is_restored_on_resume(sleuth, tmp_path: Path) -> None:
    """A ``--fail-regex 'password=\\S+'`` is journaled hidden (the rule cannot tell a pattern from a
    password); a resumed run must judge with the real pattern, not with ``password=<redacted>``."""
    script = "print('password=hunter2')"
    res = sleuth("run", "-n", "1", "--json", "--fail-regex", r"password=\S+", "--", PY, "-c", script)
    assert res.rc == 1, res.stdout + res.stderr
    rd = Path(res.json()["run_dir"])
    start = json.loads((rd / "journal.jsonl").read_text().splitlines()[0])["config"]
    assert start["oracle"]["fail_regex"] == "password=<redacted>"
    assert start["redacted_paths"] == ["oracle.fail_regex"]
    kept = [(rd / f).read_text() for f in ("journal.jsonl", "summary.json", "report.md")]
    assert_no_secret("hunter2", res.stdout, res.stderr, *kept)
    # killed before any trial: the resumed run fails its trial as the first run did
    (rd / "journal.jsonl").write_text(json.dumps({"event": "start", "t": 1.0, "config": start}) + "\n")
    shutil.rmtree(rd / "trials")
    (rd / "summary.json").unlink()
    again = sleuth("run", "--resume", rd, "--json")
    assert again.rc == 1, again.stdout + again.stderr
    assert [t["outcome"] for t in again.json()["trials"]] == ["fail"]
