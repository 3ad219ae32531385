"""Secrets planted through every input of ``bisect`` reach no file of the run dir but ``secrets.json``.

Inputs: ``--env`` with a secret name, a token-shaped value under a harmless name, URL credentials
in a value, a token in the command's argv, short values named by their flag in the command
(``--password VALUE``, ``--api-key=VALUE``) and in ``--build``, a token in ``--build``.  Every file of the run dir and
everything printed (terminal lines, ``--json``) is grepped; a resume after a kill -9 must run with
the real values again (the test and the build check them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.badinput import assert_no_secret
from tests.bisect.test_bisect_cli import make_repo, sleuth

HF = "hf_PlantedHuggingFaceToken0123456789"
SHAPED = "Zq8vN3kL0pR7sT2uW9xY4bC6dF1gH5jK7mP"
PASSWORD = "s3cretPassw0rdInUrl"
ARGV = "ghp_PlantedGithubTokenInArgv0123456789"
BUILD = "glpat-PlantedGitlabTokenInBuild42"
#: short values that only their flag names as secret (`--password VALUE`, `--api-key=VALUE`)
NAMED, KEYED, BUILD_PW = "hunter2", "AbcDef12", "BuildPw9"
SECRETS = (HF, SHAPED, PASSWORD, ARGV, BUILD, NAMED, KEYED, BUILD_PW)

#: the test fails with another signature whenever a value it was given is not the real one
CHECK = (
    f'[ "$HF_TOKEN" = {HF} ] && [ "$MODEL_ID" = {SHAPED} ] && [ "$1" = {ARGV} ] '
    f'&& [ "$3" = {NAMED} ] && [ "$4" = --api-key={KEYED} ] '
    f'&& [ "$MIRROR" = https://bob:{PASSWORD}@mirror.example/simple ] '
    '|| { echo "LookupError: a value was lost" >&2; exit 3; }\n'
    'sleep "${PAUSE:-0}"\n'
    'test "$(cat bug)" = 0 || { echo "AssertionError: bug at $(cat value)" >&2; exit 1; }\n'
)


def _args(shas: list[str]) -> list[str]:
    return ["bisect", "git", "--repo", "repo", "--good", shas[0], "--bad", "main", "--flaky", "off",
            "--env", f"HF_TOKEN={HF}", "--env", f"MODEL_ID={SHAPED}",
            "--env", f"MIRROR=https://bob:{PASSWORD}@mirror.example/simple",
            "--build", f'true --password={BUILD_PW} && test "$(printf %s {BUILD})" = {BUILD}',
            "--output", "o"]  # fmt: skip


def _cmd() -> list[str]:
    return ["--", "sh", "-c", CHECK, "sh", ARGV, "--password", NAMED, f"--api-key={KEYED}"]


def _all_output(run_dir: Path) -> list[str]:
    return [p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file()]


def test_no_planted_secret_reaches_the_run_dir_or_the_output(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 16, 9)
    plain = sleuth(*_args(shas), *_cmd(), cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    as_json = sleuth(*_args(shas), "--json", *_cmd(), cwd=tmp_path)
    d = json.loads(as_json.stdout)
    assert d["first_bad"]["label"] == shas[9] and not d["other_failures"], d
    runs = sorted((tmp_path / "o" / "bisect" / "git").iterdir())
    assert len(runs) == 2
    for secret in SECRETS:
        assert_no_secret(secret, plain.stdout, plain.stderr, as_json.stdout, as_json.stderr, roots=runs)
    for run in runs:
        kept = run / "secrets.json"
        assert kept.stat().st_mode & 0o777 == 0o600
        text = kept.read_text()
        assert all(s in text for s in SECRETS)
        start = next(
            json.loads(x) for x in (run / "journal.jsonl").read_text().splitlines() if '"start"' in x
        )
        assert set(start["redacted"]) >= {"--env HF_TOKEN", "--env MODEL_ID", "--env MIRROR",
                                          "argument 3 of the command", "argument 5 of the command",
                                          "argument 7 of the command", "argument 8 of the command", "--build"}  # fmt: skip
    # what the report shows instead
    report = (runs[1] / "report.md").read_text()
    assert "HF_TOKEN=<redacted>" in report and d["command"]["argv"][4] == "<redacted>"
    assert d["command"]["argv"][5:] == ["--password", "<redacted>", "--api-key=<redacted>"]


def test_resume_after_kill_runs_with_the_real_values(tmp_path: Path) -> None:
    from sleuth.runner import reap_orphans

    shas = make_repo(tmp_path, 40, 29)
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache"), "PAUSE": "0.3"}
    proc = subprocess.Popen([sys.executable, "-m", "sleuth", *_args(shas), "--json", *_cmd()], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    run_dir = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = list((tmp_path / "o" / "bisect" / "git").glob("*/journal.jsonl"))
        if found and found[0].read_text().count('"event": "test"') >= 3:
            run_dir = found[0].parent
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run_dir is not None
    reap_orphans(run_dir)
    # shared without secrets.json and nothing exported: the resume says what it lacks
    kept = (run_dir / "secrets.json").read_bytes()
    (run_dir / "secrets.json").unlink()
    bare = {k: v for k, v in env.items() if k not in {"HF_TOKEN", "MODEL_ID", "MIRROR"}}
    res = sleuth("bisect", "resume", str(run_dir), cwd=tmp_path, env=bare)
    assert res.returncode == 2 and "--env HF_TOKEN" in res.stderr and "secrets.json" in res.stderr, res.stderr
    (run_dir / "secrets.json").write_bytes(kept)
    (run_dir / "secrets.json").chmod(0o600)
    res = sleuth("bisect", "resume", str(run_dir), "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["first_bad"]["label"] == shas[29] and not d["other_failures"] and not d["skipped"], d
    for secret in SECRETS:
        assert_no_secret(secret, res.stdout, res.stderr, roots=[run_dir])


@pytest.mark.parametrize(
    ("flag", "value", "secret"),
    [
        ("--env", f"HF_TOKEN={HF}", HF),
        ("--env", f"OPAQUE={SHAPED}", SHAPED),
        ("--env", f"PROXY=http://u:{PASSWORD}@proxy:3128", PASSWORD),
    ],
)
def test_list_runs_hide_env_secrets_too(tmp_path: Path, flag: str, value: str, secret: str) -> None:
    (tmp_path / "l.txt").write_text("\n".join(f"v{i}" for i in range(1, 9)) + "\n")
    check = f'test "${value.split("=", maxsplit=1)[0]}" = "{value.split("=", 1)[1]}" || exit 3\n'
    res = sleuth("bisect", "list", "l.txt", flag, value, "--json", "--output", "o", "--", "sh", "-c",
                 check + 'case $SLEUTH_CANDIDATE in v[5-8]) echo "Error: x" >&2; exit 1;; esac', cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["first_bad"]["label"] == "v5"
    assert_no_secret(secret, res.stdout, res.stderr, roots=[tmp_path / "o"])


def test_a_resume_without_secrets_json_says_an_argument_cannot_come_from_the_shell(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(12)))
    body = f'test "$HF_TOKEN" = {HF} || exit 9; sleep 0.3; [ "$SLEUTH_CANDIDATE" -lt 7 ]'
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "sleuth", "bisect", "list", "l.txt", "--env", f"HF_TOKEN={HF}",
                             "--output", "o", "--", "sh", "-c", body], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and '"event": "test"' not in "".join(
        p.read_text() for p in (tmp_path / "o").glob("bisect/list/*/journal.jsonl")
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_dir,) = (tmp_path / "o" / "bisect" / "list").iterdir()
    (run_dir / "secrets.json").unlink()  # the run dir was shared without it
    res = sleuth("bisect", "resume", str(run_dir), cwd=tmp_path, env={"HF_TOKEN": HF})
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    # the test's script holds the token: only secrets.json has it, exporting cannot help
    assert "argument 3 of the command" in res.stderr and "export" not in res.stderr, res.stderr
    assert "copy the run's secrets.json back" in res.stderr
    assert HF not in res.stderr


def test_list_lines_with_credentials_are_hidden_and_a_resume_tests_them_whole(tmp_path: Path) -> None:
    from tests.bisect.test_bisect_interrupts import PROGRAM

    urls = [f"https://bob:{PASSWORD}@mirror.example/torch-2.{i}.whl" for i in range(8)]
    (tmp_path / "l.txt").write_text("".join(u + "\n" for u in urls) + f"{HF}\n")
    # the lines reach the test whole (exit 9: a scrubbed one); the command itself names no secret
    check = ('case "$SLEUTH_CANDIDATE" in *redacted*) exit 9;; *torch-2.[0-4].whl) exit 0;; esac; '
             'echo "Error: broken" >&2; exit 1')  # fmt: skip
    args = ["bisect", "list", "l.txt", "--flaky", "off", "--output", "o", "--", "sh", "-c", check]
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache")}
    # interrupted while the driver is built (nothing tested): the resume runs every test
    first = subprocess.run([sys.executable, "-c", PROGRAM, "driver", *args], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert first.returncode == 130, first.stderr
    (run_dir,) = (tmp_path / "o" / "bisect" / "list").iterdir()
    res = sleuth("bisect", "resume", str(run_dir), "--json", cwd=tmp_path)
    d = json.loads(res.stdout)
    assert (
        d["status"] == "found"
        and d["first_bad"]["label"] == "https://<redacted>@mirror.example/torch-2.5.whl"
    )
    assert not d["other_failures"]  # exit 9: a test given the scrubbed line
    for secret in (PASSWORD, HF):
        assert_no_secret(secret, first.stdout, first.stderr, res.stdout, res.stderr, roots=[run_dir])
    assert not [p for p in run_dir.rglob("*") if PASSWORD in p.name]
    # shared without secrets.json: the lines cannot be tested, and the resume says so
    (run_dir / "secrets.json").unlink()
    (run_dir / "journal.jsonl").write_text(
        "".join(ln + "\n" for ln in (run_dir / "journal.jsonl").read_text().splitlines() if '"end"' not in ln)
    )
    again = sleuth("bisect", "resume", str(run_dir), cwd=tmp_path)
    assert again.returncode == 2 and "candidates 1, 2" in again.stderr and "secrets.json" in again.stderr
