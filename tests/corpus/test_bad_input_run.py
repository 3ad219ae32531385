"""Malformed input to ``sleuth run``: exit 2, one line naming the flag or file, nothing created or changed.

Flags are checked in-process through ``sleuth.cli.main`` (the CLI's own entry point: an unexpected
exception would escape it and fail the test); a few cases also go through a real ``python -m
sleuth`` to show the same holds for the installed command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sleuth.cli import main
from tests.badinput import assert_usage_error, tree_state

HUGE = str(10**22)

#: (flags before `--`, words the error line must name); the command is always `-- true`
FLAG_CASES: list[tuple[list[str], list[str]]] = [
    (["--trials", "0"], ["--trials 0"]),
    (["--trials", "-5"], ["--trials -5"]),
    (["--trials", HUGE], ["--trials", "1_000_000"]),
    (["--trials", "1000001"], ["--trials 1000001"]),
    (["--trials", "abc"], ["--trials"]),
    (["--trials", "1.5"], ["--trials"]),
    (["--jobs", "0"], ["--jobs 0"]),
    (["--jobs", "-1"], ["--jobs -1"]),
    (["--jobs", "100000"], ["--jobs 100000", "1024"]),
    (["--jobs", HUGE], ["--jobs"]),
    (["--timeout", "0"], ["--timeout 0"]),
    (["--timeout", "-1"], ["--timeout -1"]),
    (["--timeout", "nan"], ["--timeout nan"]),
    (["--timeout", "inf"], ["--timeout inf"]),
    (["--timeout", "1e300"], ["--timeout 1e+300"]),
    (["--timeout", "abc"], ["--timeout"]),
    (["--kill-grace", "-1"], ["--kill-grace -1"]),
    (["--kill-grace", "1e9"], ["--kill-grace 1e+09"]),
    (["--kill-grace", "nan"], ["--kill-grace nan"]),
    (["--warmup", "-1"], ["--warmup -1"]),
    (["--warmup", HUGE], ["--warmup"]),
    (["--warmup", "x"], ["--warmup"]),
    (["--max-trials", "5"], ["--max-trials", "--until-fail"]),
    (["--until-fail", "--max-trials", "0"], ["--max-trials 0"]),
    (["--until-fail", "--max-trials", HUGE], ["--max-trials"]),
    (["--until-fail", "--trials", "5"], ["--trials", "--until-fail"]),
    (["--env", "NOEQUALS"], ["--env 'NOEQUALS'"]),
    (["--env", "=value"], ["--env '=value'"]),
    (["--env", "1BAD=x"], ["--env", "not a valid variable name"]),
    (["--env", "A B=x"], ["--env", "not a valid variable name"]),
    (["--env", "X-Y=1"], ["--env", "not a valid variable name"]),
    (["--metric", "x"], ["--metric 'x'"]),
    (["--metric", "=re"], ["--metric '=re'"]),
    (["--metric", "a=(unclosed"], ["--metric", "invalid regex"]),
    (["--metric", "a=step"], ["--metric a=step", "not a number"]),
    (["--metric", r"a=step=\d+"], ["--metric a=step", "starts with 's'"]),
    (["--metric", r"a=\d+ms"], ["--metric a=", "ends with 's'"]),
    (["--metric", "a=(x)", "--metric", "a=(y)"], ["--metric", "defined twice"]),
    (["--metric-series", "a=step"], ["--metric-series a=step"]),
    # the value was the first group: (a)? took part in no match of "42", so nothing was recorded
    (["--metric", r"x=(a)?(\d+)"], ["--metric 'x=(a)?", "2 capturing groups", "(?:...)"]),
    (["--metric-series", r"x=(a)(b)(\d+)"], ["--metric-series", "3 capturing groups"]),
    (["--fail-above", "nope"], ["--fail-above 'nope'"]),
    (["--fail-above", "loss=abc"], ["--fail-above", "not a number"]),
    (["--fail-above", "loss=nan"], ["--fail-above", "NaN"]),
    (["--fail-above", "=3"], ["--fail-above '=3'"]),
    (["--fail-below", "loss="], ["--fail-below", "not a number"]),
    (["--fail-regex", "(unclosed"], ["--fail-regex", "invalid regex"]),
    (["--oracle", "nosuchmod_xyz:f"], ["--oracle 'nosuchmod_xyz:f'"]),
    (["--oracle", "noseparator"], ["--oracle 'noseparator'"]),
    (["--oracle", "os:nosuchfunc_xyz"], ["--oracle", "nosuchfunc_xyz"]),
    (["--oracle", "missing_file.py:f"], ["--oracle", "missing_file.py"]),
    (["--oracle", "os:sep"], ["--oracle", "no callable"]),
    (["--gpus", "x"], ["--gpus 'x'"]),
    (["--gpus", "0,0"], ["--gpus '0,0'", "twice"]),
    (["--gpus", ""], ["--gpus"]),
    (["--gpus", "-1"], ["--gpus '-1'"]),
    (["--gpus", "0,1", "--jobs", "3"], ["--jobs 3", "--gpus"]),
    (["--cwd", "/nonexistent/dir"], ["--cwd /nonexistent/dir"]),
    (["--name", "n" * 300], ["--name", "100"]),
    (["--name", "../x"], ["--name '../x'"]),
    (["--name", ".hidden"], ["--name '.hidden'"]),
    (["--name", "a/b"], ["--name 'a/b'"]),
    (["--name", ""], ["--name ''"]),
    (["--skip-exit", "0"], ["--skip-exit 0"]),
    (["--skip-exit", "256"], ["--skip-exit 256"]),
    (["--stream", "bogus"], ["--stream"]),
    (["--environment", "bogus"], ["--environment"]),
    (["--with", "numpy"], ["--environment venv"]),
    (["--environment", "venv"], ["--environment venv", "--with"]),
    (["--bogus"], ["--bogus"]),
]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLEUTH_OUTPUT", str(tmp_path / "runs"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    (tmp_path / "runs").mkdir()
    return tmp_path


def _check(here: Path, args: list[str], mentions: list[str], capfd: pytest.CaptureFixture[str]) -> None:
    before = tree_state(here)
    rc = main(["run", *args])
    out, err = capfd.readouterr()
    assert_usage_error(rc, out, err, mentions, before=before, after=tree_state(here))


@pytest.mark.parametrize(("flags", "mentions"), FLAG_CASES, ids=[" ".join(c[0])[:40] for c in FLAG_CASES])
def test_bad_flag(
    here: Path, capfd: pytest.CaptureFixture[str], flags: list[str], mentions: list[str]
) -> None:
    _check(here, [*flags, "--", "true"], mentions, capfd)


def test_no_command(here: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _check(here, ["--trials", "3"], ["no command given"], capfd)


def test_cwd_that_is_a_file(here: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (here / "afile").write_text("x")
    _check(here, ["--cwd", str(here / "afile"), "--", "true"], ["--cwd"], capfd)


def test_output_that_is_a_file(here: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (here / "afile").write_text("x")
    _check(here, ["--output", str(here / "afile"), "--", "true"], ["--output"], capfd)


def test_empty_output(here: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _check(here, ["--output", "", "--", "true"], ["--output"], capfd)


def test_sleuth_output_that_is_a_file_or_empty_names_the_variable(
    here: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$SLEUTH_OUTPUT`` naming a file was reported as a bad ``--output`` (a flag never given), one
    under a file as ``--output`` too (after the config was read), and an empty one wrote the run dir
    into the current directory."""
    (here / "afile").write_text("x")
    for value, says in (
        ("afile", "$SLEUTH_OUTPUT 'afile': exists and is not a directory"),
        ("afile/sub", "$SLEUTH_OUTPUT 'afile/sub': 'afile' exists and is not a directory"),
        ("", "$SLEUTH_OUTPUT '': an empty path"),
    ):
        monkeypatch.setenv("SLEUTH_OUTPUT", value)
        _check(here, ["--", "true"], [says, "unset it"], capfd)


# --- --resume on what is not a resumable run dir ----------------------------------------------

_CONFIG = {
    "argv": ["true"],
    "env": {},
    "cwd": "/",
    "timeout_s": None,
    "kill_grace_s": 5.0,
    "trials": 2,
    "jobs": 1,
    "gpus": [],
    "metrics": [],
    "oracle": {"skip_exit": [], "fail_regex": None, "stream": "both", "thresholds": [], "callable": None},
    "environment": {"kind": "host"},
    "name": "x",
}


def _start(config: object) -> bytes:
    return (json.dumps({"event": "start", "t": 1.0, "config": config}) + "\n").encode()


def _without(key: str) -> dict[str, object]:
    return {k: v for k, v in _CONFIG.items() if k != key}


#: (name, journal.jsonl bytes (None: no journal), extra files, words the error must name)
RESUME_CASES: list[tuple[str, bytes | None, dict[str, bytes], list[str]]] = [
    ("not a run dir", None, {"notes.txt": b"hello"}, ["journal.jsonl"]),
    ("empty journal", b"", {}, ["journal.jsonl", "start"]),
    ("non-utf8 journal", b'\xff\xfe\xfa {"event": "start"}\n', {}, ["journal.jsonl", "line 1", "UTF-8"]),
    (
        "non-utf8 after start",
        _start(_CONFIG) + b"\xff\xfe\xfa garbage\n",
        {},
        ["journal.jsonl", "line 2", "UTF-8"],
    ),
    ("latin-1 journal", _start({**_CONFIG, "name": "caf\u00e9"}).replace(b"\\u00e9", b"\xe9"), {}, ["UTF-8"]),
    ("binary journal", bytes(range(256)) * 4 + b"\n", {}, ["journal.jsonl"]),
    ("json, not events", b"[1, 2, 3]\n", {}, ["journal.jsonl", "event"]),
    (
        "corrupt middle line",
        _start(_CONFIG) + b"{not json\n" + _start(_CONFIG),
        {},
        ["journal.jsonl", "line 2"],
    ),
    ("start without config", b'{"event": "start", "t": 1}\n', {}, ["journal.jsonl", "config"]),
    ("config not an object", _start([1, 2]), {}, ["journal.jsonl", "config"]),
    ("config without oracle", _start(_without("oracle")), {}, ["journal.jsonl", "oracle"]),
    ("config without argv", _start(_without("argv")), {}, ["journal.jsonl", "argv"]),
    ("config empty argv", _start({**_CONFIG, "argv": []}), {}, ["journal.jsonl", "argv"]),
    ("trials a string", _start({**_CONFIG, "trials": "many"}), {}, ["journal.jsonl", "many"]),
    ("trials absurd", _start({**_CONFIG, "trials": 10**22}), {}, ["journal.jsonl", "--trials"]),
    ("jobs absurd", _start({**_CONFIG, "jobs": 10**9}), {}, ["journal.jsonl", "--jobs"]),
    (
        "bad metric regex",
        _start({**_CONFIG, "metrics": [{"name": "a", "regex": "(", "series": False, "stream": "both"}]}),
        {},
        ["journal.jsonl", "config"],
    ),
    (
        "trial event outside the plan",
        _start(_CONFIG)
        + b'{"event": "trial", "subdir": "trials", "trial": {"id": "0099", "outcome": "pass"}}\n',
        {},
        ["journal.jsonl", "line 2"],
    ),
    (
        "bisect run dir",
        b'{"event": "start", "t": 1, "source": {"kind": "list"}, "flags": {"cmd": ["true"]}}\n',
        {".lock": b""},
        ["bisect", "sleuth bisect resume"],
    ),
    (
        "matrix run dir",
        b'{"event": "start", "t": 1, "verb": "matrix", "cells": ["a"]}\n',
        {".lock": b"", "recipe.resolved.yaml": b"workload: x\n"},
        ["matrix", "sleuth matrix resume"],
    ),
    (
        "redacted env not in secrets.json nor the shell",
        _start({**_CONFIG, "env": {"HF_TOKEN": "<redacted>"}, "redacted_env": ["HF_TOKEN"]}),
        {".lock": b""},
        ["HF_TOKEN", "secrets.json"],
    ),
    (
        "redacted argument without secrets.json",
        _start({**_CONFIG, "argv": ["true", "<redacted>"], "redacted_argv": [1]}),
        {".lock": b""},
        ["argument", "secrets.json"],
    ),
    (
        "malformed redacted names",
        _start({**_CONFIG, "redacted_env": "HF_TOKEN"}),
        {".lock": b""},
        ["journal.jsonl", "redacted"],
    ),
]


@pytest.mark.parametrize(
    ("name", "journal", "files", "mentions"), RESUME_CASES, ids=[c[0] for c in RESUME_CASES]
)
def test_bad_resume(
    here: Path,
    capfd: pytest.CaptureFixture[str],
    *,
    name: str,
    journal: bytes | None,
    files: dict[str, bytes],
    mentions: list[str],
) -> None:
    rd = here / "runs" / "run" / "x" / "20250101T000000Z"
    rd.mkdir(parents=True)
    if journal is not None:
        (rd / "journal.jsonl").write_bytes(journal)
    for fname, data in files.items():
        (rd / fname).write_bytes(data)
    _check(here, ["--resume", str(rd)], mentions, capfd)


def test_resume_of_a_missing_dir(here: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _check(here, ["--resume", str(here / "nope")], ["--resume"], capfd)


def test_resume_of_a_file(here: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (here / "afile").write_text("x")
    _check(here, ["--resume", str(here / "afile")], ["--resume"], capfd)


@pytest.mark.parametrize(
    ("extra", "mentions"),
    [(["--trials", "5"], ["--resume", "--trials"]), (["--", "true"], ["--resume", "command"])],
)
def test_resume_with_what_the_run_dir_knows(
    here: Path, capfd: pytest.CaptureFixture[str], extra: list[str], mentions: list[str]
) -> None:
    rd = here / "runs" / "run" / "x" / "20250101T000000Z"
    rd.mkdir(parents=True)
    (rd / "journal.jsonl").write_bytes(_start(_CONFIG))
    (rd / ".lock").write_bytes(b"")
    _check(here, ["--resume", str(rd), *extra], mentions, capfd)


@pytest.mark.parametrize(
    "args",
    [
        ["--trials", HUGE, "--", "true"],
        ["--metric", "a=step", "--", "true"],
        ["--name", "n" * 300, "--", "true"],
    ],
)
def test_the_installed_command_says_the_same(tmp_path: Path, args: list[str]) -> None:
    """Through a real ``python -m sleuth``: one line, exit 2, no run dir (not even an empty parent)."""
    before = tree_state(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "sleuth", "run", "--output", str(tmp_path / "runs"), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert_usage_error(
        proc.returncode, proc.stdout, proc.stderr, args[0], before=before, after=tree_state(tmp_path)
    )


def test_corpus_is_large_enough() -> None:
    assert len(FLAG_CASES) + len(RESUME_CASES) + 9 >= 60
