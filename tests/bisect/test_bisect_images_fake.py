"""``sleuth bisect images`` through the fake docker (tests/programs/fake_runtime.py): the paths a
real podman does not cover here (docker's flags, a docker daemon that is down)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakebin import isolated_path

DAYS = [f"2024-09-{d:02d}" for d in range(1, 11)]
TEST = 'd=${FAKE_CONTAINER_IMAGE##*-}; [ "$MYVAR" = "a b" ] || exit 3; [ "$d" -lt 7 ]'


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    log = tmp_path / "calls.jsonl"
    e = {**os.environ, "PATH": isolated_path(tmp_path / "bin", fakes=("docker",)), "FAKE_RUNTIME_LOG": str(log),
         "FAKE_RUNTIME_IMAGES": " ".join(f"reg.io/app:{d}" for d in DAYS), "SLEUTH_CACHE": str(tmp_path / "c"),
         **env}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "sleuth", "bisect", "images", "--template", "reg.io/app:{date}",
                           "--start-date", DAYS[0], "--end-date", DAYS[-1], "--flaky", "off", "--json", "--output",
                           "o", "--env", "MYVAR=a b", *args, "--", "sh", "-c", TEST], cwd=tmp_path, env=e,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def calls(tmp_path: Path) -> list[list[str]]:
    return [json.loads(x)["argv"] for x in (tmp_path / "calls.jsonl").read_text().splitlines()]


def test_env_and_one_gpu_per_test_reach_docker(tmp_path: Path) -> None:
    res = run(tmp_path, "--gpus", "0,1", "--jobs", "2")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["first_bad"]["label"] == "reg.io/app:2024-09-07"
    runs = [a for a in calls(tmp_path) if a[:1] == ["run"]]
    assert runs
    for argv in runs:
        gpu = argv[argv.index("--gpus") + 1]
        assert gpu in ("device=0", "device=1"), argv
        assert "MYVAR" in argv and "a b" not in argv  # the name in argv, the value in the client's env
        assert "CUDA_VISIBLE_DEVICES" not in argv  # the container's only GPU
    assert not [a for a in calls(tmp_path) if a[:1] == ["pull"]]


def test_a_daemon_that_is_down_exits_4_with_its_message(tmp_path: Path) -> None:
    res = run(tmp_path, FAKE_RUNTIME_DOWN="1")
    assert res.returncode == 4, res.stderr
    assert "Cannot connect to the Docker daemon" in res.stderr and "Traceback" not in res.stderr


def test_relative_mounts_are_journaled_absolute(tmp_path: Path) -> None:
    """A resume reads the mounts back from the journal, maybe from another directory: a relative
    ``--mount data:/data`` once mounted the resuming shell's ``./data`` (missing: every test an
    ERROR, the answer not_found)."""
    (tmp_path / "data").mkdir()
    res = run(tmp_path, "--mount", "data:/data:ro", "--source", "jax=/opt/jax", "--cache-mount", "cache:/c")
    assert res.returncode == 3, res.stderr  # the dates are found; the fake images hold no repository
    run_dir = tmp_path / json.loads(res.stdout)["run_dir"]
    start = next(json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines())
    cfg = start["source"]
    assert cfg["mounts"] == [f"{tmp_path}/data:/data:ro"], cfg
    assert cfg["cache_mount"] == f"{tmp_path}/cache:/c", cfg
