"""``sleuth env`` and ``sleuth env diff`` end to end, as a subprocess."""

from __future__ import annotations

import json
import os
import platform
import shutil
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


#: this interpreter's bin dir first on PATH, so the workload's `python` is the test venv's
HERE_FIRST = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
#: the `python` a workload finds with HERE_FIRST: this interpreter, under the name `python` even when
#: pytest runs as `python3` (a venv's bin/pytest), which names the same file
HERE_PYTHON = shutil.which("python", path=HERE_FIRST["PATH"]) or ""


@pytest.fixture(scope="module")
def snapshot_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot written by ``sleuth env --json``."""
    proc = sleuth("env", "--json", "--package", "click", env={"NCCL_DEBUG": "INFO", **HERE_FIRST})
    assert proc.returncode == 0, proc.stderr
    path = tmp_path_factory.mktemp("snap") / "a.json"
    path.write_text(proc.stdout)
    return path


def test_env_json_is_one_document(snapshot_file: Path) -> None:
    snap = json.loads(snapshot_file.read_text())
    assert snap["schema"] == 1
    assert snap["packages"]["click"]
    assert snap["env"]["NCCL_DEBUG"] == "INFO"
    # this interpreter, by the path a workload's `python` resolves to on PATH
    assert (
        os.path.samefile(HERE_PYTHON, sys.executable)
        and Path(HERE_PYTHON).parent == Path(sys.executable).parent
    )
    assert snap["python"]["executable"] == HERE_PYTHON
    assert snap["python"]["prefix"] == sys.prefix  # this venv, not only its base interpreter
    assert snap["interpreter"] == {
        "path": HERE_PYTHON,
        "version": platform.python_version(),
        "chosen_by": "first python on PATH",
    }
    assert snap["torch"]["importable"] in (True, False)  # deep by default


@pytest.fixture(scope="module")
def other_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real venv (no pip) that is not sleuth's: its python sees none of sleuth's packages."""
    root = tmp_path_factory.mktemp("workload") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    return root


def _bin_with(dir_: Path, **shims: Path) -> Path:
    """``dir_`` holding executables NAME that run the interpreter TARGET (as pyenv's shims do)."""
    dir_.mkdir()
    for name, target in shims.items():
        (dir_ / name).write_text(f'#!/bin/sh\nexec "{target}" "$@"\n')
        (dir_ / name).chmod(0o755)
    return dir_


def test_env_describes_the_workloads_python_by_default(tmp_path: Path, other_venv: Path) -> None:
    """Not sleuth's own venv: the python a workload started as `python ...` would run."""
    bin_dir = _bin_with(tmp_path / "bin", python=other_venv / "bin" / "python")
    proc = sleuth("env", "--json", "--shallow", env={"PATH": str(bin_dir)})
    assert proc.returncode == 0, proc.stderr
    snap = json.loads(proc.stdout)
    assert snap["interpreter"]["path"] == str(bin_dir / "python")
    assert snap["interpreter"]["chosen_by"] == "first python on PATH"
    assert Path(snap["python"]["prefix"]).resolve() == other_venv.resolve()
    assert snap["packages"]["numpy"] is None  # the workload's venv, not sleuth's (which has numpy)


def test_python_wins_over_an_earlier_python3(tmp_path: Path, other_venv: Path) -> None:
    first = _bin_with(tmp_path / "a", python3=Path(sys.executable))
    second = _bin_with(tmp_path / "b", python=other_venv / "bin" / "python")
    proc = sleuth("env", "--json", "--shallow", env={"PATH": f"{first}{os.pathsep}{second}"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["interpreter"]["path"] == str(second / "python")


def test_env_falls_back_to_python3(tmp_path: Path, other_venv: Path) -> None:
    bin_dir = _bin_with(tmp_path / "bin", python3=other_venv / "bin" / "python")
    proc = sleuth("env", "--json", "--shallow", env={"PATH": str(bin_dir)})
    assert proc.returncode == 0, proc.stderr
    snap = json.loads(proc.stdout)
    assert snap["interpreter"]["path"] == str(bin_dir / "python3")
    assert snap["interpreter"]["chosen_by"] == "first python3 on PATH"
    assert Path(snap["python"]["prefix"]).resolve() == other_venv.resolve()
    assert snap["packages"]["numpy"] is None  # the workload's venv, not sleuth's (which has numpy)


def test_env_without_python_on_path_says_it_describes_its_own(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = sleuth("env", "--json", "--shallow", env={"PATH": str(tmp_path / "empty")})
    assert proc.returncode == 0, proc.stderr
    snap = json.loads(proc.stdout)
    assert snap["interpreter"]["path"] == sys.executable
    assert snap["interpreter"]["chosen_by"] == "sleuth's own (no python or python3 on PATH)"


def test_env_table_names_the_interpreter(tmp_path: Path, other_venv: Path) -> None:
    bin_dir = _bin_with(tmp_path / "bin", python=other_venv / "bin" / "python")
    proc = sleuth("env", "--shallow", env={"PATH": str(bin_dir)})
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith(f"python described: {bin_dir / 'python'} -> {other_venv / 'bin' / 'python'} ")
    assert first.endswith(f"(Python {platform.python_version()}, first python on PATH)")


def test_env_python_flag_wins(tmp_path: Path, other_venv: Path) -> None:
    bin_dir = _bin_with(tmp_path / "bin", python=Path(sys.executable))
    proc = sleuth("env", "--json", "--shallow", "--python", str(other_venv / "bin" / "python"),
                  env={"PATH": str(bin_dir)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    snap = json.loads(proc.stdout)
    assert snap["interpreter"]["chosen_by"] == "--python"
    assert snap["interpreter"]["path"] == str(other_venv / "bin" / "python")


def test_broken_workload_python_is_one_line_with_a_hint(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text("#!/bin/sh\necho 'python: broken' >&2\nexit 1\n")
    (bin_dir / "python").chmod(0o755)
    proc = sleuth("env", "--json", "--shallow", env={"PATH": str(bin_dir)})
    assert proc.returncode == 4
    assert len(proc.stderr.strip().splitlines()) == 1
    assert str(bin_dir / "python") in proc.stderr
    assert "--python PATH" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_env_table(tmp_path: Path) -> None:
    proc = sleuth("env", "--shallow", "--package", "click", env={"CUDA_API_KEY": "hunter2", **HERE_FIRST})
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
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        ("[1, 2]", "not an environment snapshot"),
        ('{"a": ' + "1" * 5000 + "}", "not JSON"),  # past the int digit limit: a ValueError
        # said "cannot read: 'utf-8' codec can't decode byte 0xff in position 1: invalid start byte"
        (b"{\xff}", "not UTF-8 text (byte 0xff at offset 1); save the file as UTF-8"),
        ("dir", "a directory, not a snapshot"),  # said "cannot read: [Errno 21] Is a directory: ..."
    ],
)
def test_diff_bad_file_is_one_line_exit_2(
    snapshot_file: Path, tmp_path: Path, content: str | None, message: str
) -> None:
    bad = tmp_path / "bad.json"
    if content == "dir":
        bad.mkdir()
    elif isinstance(content, bytes):
        bad.write_bytes(content)
    elif content is not None:
        bad.write_text(content)
    proc = sleuth("env", "diff", str(snapshot_file), str(bad))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert str(bad) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_diff_reads_a_snapshot_saved_with_a_byte_order_mark(snapshot_file: Path, tmp_path: Path) -> None:
    """A snapshot re-saved by an editor (or PowerShell's Out-File) starts with a UTF-8 BOM: it was
    refused as "not JSON (Unexpected UTF-8 BOM (decode using utf-8-sig) ...)"."""
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + snapshot_file.read_bytes())
    proc = sleuth("env", "diff", str(snapshot_file), str(bom))
    assert proc.returncode == 0 and "identical" in proc.stdout, proc.stderr


def test_diff_hides_secrets_the_snapshots_hold(snapshot_file: Path, tmp_path: Path) -> None:
    """A snapshot from an older sleuth or edited by hand may hold raw values: the diff shows none."""
    snap: dict[str, Any] = json.loads(snapshot_file.read_text())
    planted = {
        "HF_TOKEN": "plainvalue-1234abcd",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
        "NCCL_OPTS": "token=sk-abcdefghijklmnop1234",
        "PIP_INDEX_URL": "https://user:pipsecret99@pypi.example/simple",
    }
    snap["env"].update(planted)
    b = tmp_path / "b.json"
    b.write_text(json.dumps(snap))
    for args in (["env", "diff"], ["env", "diff", "--json"]):
        proc = sleuth(*args, str(snapshot_file), str(b))
        assert proc.returncode == 1, proc.stderr
        for secret in (
            "plainvalue-1234abcd",
            "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
            "sk-abcdef",
            "pipsecret99",
        ):
            assert secret not in proc.stdout + proc.stderr
        assert "env.HF_TOKEN" in proc.stdout and "env.PIP_INDEX_URL" in proc.stdout


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_ctrl_c_while_probing_an_interpreter_leaves_nothing_running(tmp_path: Path, signame: str) -> None:
    """Ctrl-C, or the SIGTERM of a CI cancel or `timeout`: sleuth exits 130 and stops the probe."""
    import signal
    import time

    from tests.signals import sleuth_proc

    pid_file = tmp_path / "probe.pid"
    slow = tmp_path / "slowpython"
    slow.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {pid_file}\nwait\n")  # a child of the probe too
    slow.chmod(0o755)
    err_file = tmp_path / "stderr"
    with open(err_file, "wb") as err_fh:  # not a pipe: a probe left running would hold it open
        proc = sleuth_proc(["env", "--shallow", "--python", str(slow)], dict(os.environ), tmp_path,
                           stdout=subprocess.DEVNULL, stderr=err_fh)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (pid_file.is_file() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    probe_pid = int(pid_file.read_text())
    proc.send_signal(getattr(signal, signame))
    assert proc.wait(timeout=60) == 130, err_file.read_text()
    deadline = time.monotonic() + 15  # sleuth stops its tools within its grace (2 s)
    while time.monotonic() < deadline:
        try:
            os.kill(probe_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(probe_pid, signal.SIGKILL)
        raise AssertionError("the interpreter being probed outlived sleuth's Ctrl-C")


def test_env_table_shows_values_that_look_like_markup_as_they_are() -> None:
    """A variable's value is text, not rich markup: ``[/]`` crashed the table (MarkupError)."""
    proc = sleuth("env", "--shallow", env={"CUDA_X": "[/]", "NCCL_Y": "[red]boom[/red]", **HERE_FIRST})
    assert proc.returncode == 0, proc.stderr
    assert "[/]" in proc.stdout and "[red]boom[/red]" in proc.stdout


@pytest.mark.parametrize("depth", [900, 100_000])
def test_diff_of_a_deeply_nested_file_is_one_line_exit_2(
    snapshot_file: Path, tmp_path: Path, depth: int
) -> None:
    """Past the JSON parser's recursion limit, or just under it (the diff walks the tree too)."""
    bad = tmp_path / "deep.json"
    bad.write_text('{"a": ' * depth + "1" + "}" * depth)
    proc = sleuth("env", "diff", str(snapshot_file), str(bad))
    assert proc.returncode == 2, proc.stderr[-500:]
    assert str(bad) in proc.stderr and "deep" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "line", ["{}", '{"python": 5, "env": {"A": 1}}', '{"python": {}, "packages": [], "env": {}}']
)
def test_an_interpreter_that_prints_other_json_is_one_line(tmp_path: Path, line: str) -> None:
    """A wrapper or shim that prints a JSON line of its own is not a probe result: no traceback."""
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\necho '{line}'\n")
    fake.chmod(0o755)
    proc = sleuth("env", "--json", "--shallow", "--python", str(fake))
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and str(fake) in proc.stderr


def test_diff_prints_no_terminal_escape_a_snapshot_holds(snapshot_file: Path, tmp_path: Path) -> None:
    """A snapshot from another machine is data: an ANSI escape in it must not reach the terminal."""
    snap: dict[str, Any] = json.loads(snapshot_file.read_text())
    snap["env"]["NCCL_EVIL"] = "\x1b]0;pwned\x07\x1b[31mred"
    snap["env"]["NCCL_\x1b[2J"] = "1"  # in a key too
    b = tmp_path / "b.json"
    b.write_text(json.dumps(snap))
    proc = sleuth("env", "diff", str(snapshot_file), str(b))
    assert proc.returncode == 1, proc.stderr
    assert "env.NCCL_EVIL" in proc.stdout and "\x1b" not in proc.stdout and "\x07" not in proc.stdout
