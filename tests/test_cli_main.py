"""The top-level CLI: version, help, unknown verbs, python -m sleuth."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sleuth import __version__
from sleuth.cli import VERBS, main
from sleuth.errors import ExitCode


def test_version_and_module_entry(sleuth) -> None:
    res = sleuth("--version")
    assert (res.rc, res.stdout.strip()) == (0, f"sleuth {__version__}")


def test_console_script_exists() -> None:
    exe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import shutil,sys,os;print(shutil.which('sleuth', path=os.path.dirname(sys.executable)))",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert exe != "None"
    assert subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.startswith("sleuth ")


def test_help_lists_the_verbs(sleuth) -> None:
    res = sleuth("--help")
    assert res.rc == 0
    for verb in ("run", "env"):
        assert verb in res.stdout
    assert "Exit codes" in res.stdout


def test_unknown_verb_is_one_line_usage_error(sleuth) -> None:
    res = sleuth("frobnicate")
    assert res.rc == 2
    assert res.stderr.count("\n") == 1 and "frobnicate" in res.stderr


def test_main_returns_exit_codes_in_process(capsys) -> None:
    assert main(["--version"]) == 0
    assert main(["run", "--trials", "-3", "--", "true"]) == ExitCode.USAGE
    assert "--trials -3" in capsys.readouterr().err


def test_every_verb_module_exposes_a_command() -> None:
    from importlib import import_module
    from importlib.util import find_spec

    import click

    for module, _help in VERBS.values():
        if find_spec(module) is not None:
            assert isinstance(import_module(module).command, click.Command), module


def test_exit_codes_are_documented() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 130]


def test_bare_sleuth_prints_the_whole_help_and_exits_2(sleuth) -> None:
    res = sleuth()
    assert res.rc == ExitCode.USAGE  # no command ran, as git and click (>= 8.2) say too
    assert res.stdout == sleuth("--help").stdout  # the same help, on stdout so it pages
    assert res.stderr == ""
    for verb in VERBS:
        assert verb in res.stdout


def test_bare_group_prints_its_help(sleuth) -> None:
    res = sleuth("bisect")
    assert res.rc == ExitCode.USAGE
    assert res.stdout.startswith("Usage: sleuth bisect")
    for source in ("git", "pypi", "images", "list", "resume"):
        assert f"  {source} " in res.stdout
    assert "error" not in res.stderr and res.stderr == ""
    # a group that runs by itself is not affected: `sleuth env` takes a snapshot
    env = sleuth("env", "--json", "--shallow", "--python", sys.executable)
    assert env.rc == 0 and env.json()["schema"] == 1


@pytest.mark.parametrize(
    "args",
    [
        ["run"],
        ["bisect", "list", "l.txt"],
        ["matrix", "--mitigation-axis", "none"],
        ["reduce", "--spec", "nowhere.yaml", "--jobs", "99999999999"],
    ],
    ids=["run", "bisect", "matrix", "reduce"],
)
def test_an_absurd_jobs_is_a_usage_error_in_every_verb(sleuth, tmp_path, args: list[str]) -> None:
    (tmp_path / "l.txt").write_text("a\nb\n")
    res = sleuth(*args) if args[0] == "reduce" else sleuth(*args, "--jobs", "99999999999", "--", "true")
    assert res.rc == 2 and res.stderr.strip().splitlines() == [
        "error: --jobs 99999999999: must be between 1 and 1024"
    ], res.stderr
    assert not (tmp_path / "runs").exists()


def test_schema_help_names_every_schema(sleuth) -> None:
    """``sleuth schema --help`` said NAME was one of "matrix, mitigations": six are served."""
    from sleuth.cli.schema import SCHEMAS

    res = sleuth("schema", "--help")
    assert res.rc == 0
    listed = sleuth("schema", "--list").stdout
    for name in SCHEMAS:
        assert name in res.stdout and name in listed, name
