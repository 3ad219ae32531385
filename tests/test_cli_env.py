"""``sleuth env`` and ``sleuth env diff`` end to end, as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

try:
    from sleuth.cli import main as _main  # noqa: F401
except ImportError:  # pragma: no cover - the CLI entry point lands with the foundation
    pytest.skip("sleuth.cli:main is not there yet", allow_module_level=True)


def sleuth(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sleuth ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "sleuth", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
    )


@pytest.fixture(scope="module")
def snapshot_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot written by ``sleuth env --json``."""
    proc = sleuth("env", "--json", "--package", "click", env={"NCCL_DEBUG": "INFO"})
    assert proc.returncode == 0, proc.stderr
    path = tmp_path_factory.mktemp("snap") / "a.json"
    path.write_text(proc.stdout)
    return path


def test_env_json_is_one_document(snapshot_file: Path) -> None:
    snap = json.loads(snapshot_file.read_text())
    assert snap["schema"] == 1
    assert snap["packages"]["click"]
    assert snap["env"]["NCCL_DEBUG"] == "INFO"
    assert snap["python"]["executable"] == sys.executable
    assert snap["torch"]["importable"] in (True, False)  # deep by default


def test_env_table(tmp_path: Path) -> None:
    proc = sleuth("env", "--shallow", "--package", "click", env={"CUDA_API_KEY": "hunter2"})
    assert proc.returncode == 0, proc.stderr
    for word in ("section", "python", "packages", "click", "CUDA_API_KEY", "<redacted>", "nvidia_smi"):
        assert word in proc.stdout
    assert "hunter2" not in proc.stdout


def test_env_of_another_interpreter(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")], check=True)
    proc = sleuth("env", "--json", "--python", str(tmp_path / "v" / "bin" / "python"))
    assert proc.returncode == 0, proc.stderr
    snap = json.loads(proc.stdout)
    assert Path(snap["python"]["prefix"]).resolve() == (tmp_path / "v").resolve()
    assert snap["packages"]["numpy"] is None


def test_bad_interpreter_is_a_usage_error(tmp_path: Path) -> None:
    proc = sleuth("env", "--python", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert "nope" in proc.stderr
    assert "Traceback" not in proc.stderr


def _edited(snapshot_file: Path, tmp_path: Path) -> Path:
    snap: dict[str, Any] = json.loads(snapshot_file.read_text())
    snap["taken_at"] = "2000-01-01T00:00:00Z"
    snap["packages"]["numpy"] = "0.0.1"
    snap["env"]["NCCL_P2P_DISABLE"] = "1"
    del snap["packages"]["click"]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(snap))
    return path


def test_diff_identical_exits_0(snapshot_file: Path) -> None:
    proc = sleuth("env", "diff", str(snapshot_file), str(snapshot_file))
    assert proc.returncode == 0, proc.stderr
    assert "identical" in proc.stdout


def test_diff_prints_changes_and_exits_1(snapshot_file: Path, tmp_path: Path) -> None:
    b = _edited(snapshot_file, tmp_path)
    proc = sleuth("env", "diff", str(snapshot_file), str(b))
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "~ packages.numpy" in out
    assert "-> 0.0.1" in out
    assert "+ env.NCCL_P2P_DISABLE: 1" in out
    assert "- packages.click" in out
    assert "taken_at" not in out
    assert "3 difference(s)" in out


def test_diff_json(snapshot_file: Path, tmp_path: Path) -> None:
    b = _edited(snapshot_file, tmp_path)
    proc = sleuth("env", "diff", "--json", str(snapshot_file), str(b))
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["identical"] is False
    kinds = {c["path"]: c["kind"] for c in doc["changes"]}
    assert kinds == {
        "packages.numpy": "changed",
        "env.NCCL_P2P_DISABLE": "added",
        "packages.click": "removed",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), ("{not json", "not JSON"), ("[1, 2]", "not an environment snapshot")],
)
def test_diff_bad_file_is_one_line_exit_2(
    snapshot_file: Path, tmp_path: Path, content: str | None, message: str
) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    proc = sleuth("env", "diff", str(snapshot_file), str(bad))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert str(bad) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
