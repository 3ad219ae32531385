"""Every error line of every verb goes through the redaction rule and hides the values of the
shell's secret variables, as the rest of the output does: ``--timeout "$MY_TOKEN"`` gave click's
"'<the token>' is not a valid float".  Real ``sleuth`` processes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.badinput import assert_no_secret, assert_usage_error, tree_state
from tests.conftest import CliResult

#: the value of a secret variable (its name says TOKEN) of the shell that runs sleuth
SECRET = "abcdef123456secretvalue"
POLICY = f'version: 1\nmetrics:\n  m: {{kind: counter, tolerance: "{SECRET}"}}\n'


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (("run", "--timeout", SECRET, "--", "true"), "--timeout"),  # click's float type
        (("run", "--env", f"1BAD={SECRET}", "--", "true"), "--env"),  # sleuth's own message
        (("gate", "graduate", "--suite", "s", "--last", SECRET), "--last"),  # click's int type
        (
            ("gate", "record", "--suite", "s", "--run-id", "1", "--created-at", SECRET, "r.csv"),
            "--created-at",
        ),
        (
            ("gate", "check", "--suite", "s", "--policy", "policy.yaml"),
            "metrics.m.tolerance",
        ),  # a config file
    ],
    ids=["click-float", "env-pair", "click-int", "gate-flag", "config-file"],
)
def test_an_error_line_hides_the_value_of_a_secret_variable(
    sleuth: Callable[..., CliResult], tmp_path: Path, argv: tuple[str, ...], names: str
) -> None:
    (tmp_path / "r.csv").write_text("metric,value\nm,1\n")
    (tmp_path / "policy.yaml").write_text(POLICY)
    db = ("--db", f"sqlite:///{tmp_path / 'h.db'}") if argv[0] == "gate" else ()
    before = tree_state(tmp_path)
    r = sleuth(*argv, *db, env={"MY_TOKEN": SECRET})
    assert_usage_error(
        r.rc, r.stdout, r.stderr, [names, "<redacted>"], before=before, after=tree_state(tmp_path)
    )
    assert_no_secret(SECRET, r.stdout, r.stderr)


@pytest.mark.parametrize(
    "argv",
    [
        ("run", "--env", "DB_PASSWORD=hunter2pw", "--timeout", "hunter2pw", "--", "true"),
        ("run", "--env=HF_TOKEN=hunter2pw99", "--timeout", "hunter2pw99", "--", "true"),
        ("run", "--timeout", "hunter2pw", "--", "curl", "--password", "hunter2pw"),
        # the name given twice: a dict of the pairs kept the last value only, and the first was shown
        (
            "run",
            "--env",
            "DB_PASSWORD=hunter2pw",
            "--env",
            "DB_PASSWORD=later9pw",
            "--timeout",
            "hunter2pw",
            "--",
            "true",
        ),
        ("run", "--timeout", "hunter2pw", "--", "env", "API_TOKEN=hunter2pw", "true"),
    ],
    ids=["env-pair", "env-equals", "workload-flag", "env-pair-twice", "bare-pair"],
)
def test_an_error_line_hides_a_secret_the_command_line_names(
    sleuth: Callable[..., CliResult], tmp_path: Path, argv: tuple[str, ...]
) -> None:
    """A secret given on the same command line (an ``--env`` pair whose name says secret, a workload
    flag that names one) is hidden in the error that quotes it, as it is in the run dir."""
    before = tree_state(tmp_path)
    r = sleuth(*argv)
    assert_usage_error(
        r.rc, r.stdout, r.stderr, ["--timeout", "<redacted>"], before=before, after=tree_state(tmp_path)
    )
    assert_no_secret("hunter2pw", r.stdout, r.stderr)


def test_an_error_line_keeps_the_value_of_a_pair_whose_name_is_harmless(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    """``--env CUDA_VISIBLE_DEVICES=...`` names no secret: the error that quotes its value shows it."""
    before = tree_state(tmp_path)
    r = sleuth("run", "--env", "CUDA_VISIBLE_DEVICES=gpu-0-gpu-1", "--timeout", "gpu-0-gpu-1", "--", "true")
    assert_usage_error(
        r.rc, r.stdout, r.stderr, ["--timeout", "gpu-0-gpu-1"], before=before, after=tree_state(tmp_path)
    )


#: a GitHub-token-shaped word: the one rule hides it whole, but not a start of it cut off by a quote
TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.mark.parametrize("pad", [0, 7, 16, 40, 150])
@pytest.mark.parametrize(
    ("argv", "name"),
    [(("matrix", "--recipe"), "recipe.yaml"), (("gate", "check", "--suite", "s", "--policy"), "policy.yaml")],
    ids=["matrix-recipe", "gate-policy"],
)
def test_a_config_file_that_does_not_parse_quotes_no_part_of_a_token_on_its_line(
    sleuth: Callable[..., CliResult], tmp_path: Path, pad: int, argv: tuple[str, ...], name: str
) -> None:
    """PyYAML quotes the offending line cut to its own width (``yyghp_A1b2C3d4 ... ^``), and sleuth cut
    the message at 200 characters before hiding anything: either way a token kept its start, which no
    rule can recognise.  The error names the file, the line and the column, and quotes none of it."""
    (tmp_path / name).write_text('workload:\n  command: ["a"\n  : ' + "y" * pad + TOKEN + "\n")
    db = ("--db", f"sqlite:///{tmp_path / 'h.db'}") if argv[0] == "gate" else ()
    before = tree_state(tmp_path)
    r = sleuth(*argv, str(tmp_path / name), *db)
    assert_usage_error(
        r.rc,
        r.stdout,
        r.stderr,
        [name, "not valid YAML", "line 3"],
        before=before,
        after=tree_state(tmp_path),
    )
    for i in range(len(TOKEN) - 7):
        assert TOKEN[i : i + 8] not in r.stderr + r.stdout, TOKEN[i : i + 8]
