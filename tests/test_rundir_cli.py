"""Usage errors about where a run goes leave nothing behind (issue 8 rows 8, 9): an empty
``--output``, a name too long for a path, a ``--resume`` of a directory that is not a run dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliResult


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_an_empty_output_is_a_usage_error_naming_it(tmp_path: Path, sleuth: Callable[..., CliResult]) -> None:
    res = sleuth("run", "--output", "", "--", "true")
    assert res.rc == 2, res.stderr
    assert "--output" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr
    assert _tree(tmp_path) == []  # not ./run/...


def test_a_300_character_name_creates_nothing(tmp_path: Path, sleuth: Callable[..., CliResult]) -> None:
    out = tmp_path / "sleuth-runs"
    res = sleuth("run", "--output", out, "--name", "n" * 300, "--", "true")
    assert res.rc == 2 and "--name" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists()


def test_resuming_a_directory_that_is_not_a_run_dir_creates_no_lock(
    tmp_path: Path, sleuth: Callable[..., CliResult]
) -> None:
    d = tmp_path / "not-a-run"
    d.mkdir()
    (d / "notes.txt").write_text("hello\n")
    res = sleuth("run", "--resume", d)
    assert res.rc == 2 and str(d) in res.stderr and "Traceback" not in res.stderr
    assert _tree(d) == ["notes.txt"]
