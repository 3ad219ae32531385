"""Real podman: an isolated store for the test run, small images built here, helpers to look at it.

Every test here is marked ``podman`` and skipped, with the reason, only when podman is not
installed (``.ci/run`` installs it with runc, so CI runs them all).  The store lives in the run's
temp dir (shared by the xdist workers; images are built once, under a lock) and podman is pointed
at it with ``CONTAINERS_CONF``/``CONTAINERS_STORAGE_CONF``: runc, explicit ulimits and no network,
as ``../shared/research/containers.md`` found necessary on these machines.  Nothing touches the
host's own store.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.containers.images import (
    build_from,
    busybox_rootfs,
    import_rootfs,
    python_rootfs,
    write_store_config,
)

PODMAN = shutil.which("podman")
#: CI sets this so that a machine without podman fails the container tests instead of skipping them
REQUIRED = os.environ.get("SLEUTH_REQUIRE_PODMAN") == "1"
needs_podman = [
    pytest.mark.podman,
    pytest.mark.skipif(
        PODMAN is None and not REQUIRED,
        reason="podman is not installed here (.ci/run installs podman and runc)",
    ),
]

BUSYBOX = "localhost/sleuth-test/busybox:base"
PYTHON = "localhost/sleuth-test/python:base"
APP = "localhost/sleuth-test/app"
#: the dated tags of APP: 2025-01-01 .. 2025-01-10 without 01-05; the app breaks on 01-08
APP_DATES = [f"2025-01-{d:02d}" for d in range(1, 11) if d != 5]


@dataclass
class Podman:
    """The test run's store and what a test asks of it."""

    root: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``podman ARGS`` against the store."""
        res = subprocess.run(["podman", *args], env={**os.environ, **self.env}, capture_output=True, text=True,
                             timeout=timeout, check=False)  # fmt: skip
        if check and res.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {res.stderr}")
        return res

    def containers(self, run_dir: Path | str, *, all_states: bool = True) -> list[dict[str, str]]:
        """The containers a sleuth run dir started that still exist (``sleuth.run`` label)."""
        args = ["ps", "--format", "json", "--filter", f"label=sleuth.run={run_dir}"]
        out = self.run(*(args + (["-a"] if all_states else []))).stdout
        return [{"name": c["Names"][0], "state": c.get("State", "")} for c in json.loads(out or "[]")]


def _shared_root(factory: pytest.TempPathFactory) -> Path:
    base = factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "podman-store"


@pytest.fixture(scope="session")
def podman_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """The store with the base images and the dated app tags (built once per test run).

    Shared by the xdist workers through a count of users: the last one to finish checks that no
    container is left (a container never outlives its trial) and resets the store, which also
    unmounts what podman's overlay driver mounted there.
    """
    if PODMAN is None:
        if REQUIRED:
            pytest.fail("SLEUTH_REQUIRE_PODMAN=1 but podman is not on PATH: install podman and runc")
        pytest.skip("podman is not installed here")
    root = _shared_root(tmp_path_factory)
    root.mkdir(parents=True, exist_ok=True)
    lock_path = root.parent / "podman-store.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        env = write_store_config(root)
        if not (root / "built").exists():
            _build(root, env)
        users = root / "users"
        users.write_text(str(int(users.read_text() or 0) + 1 if users.exists() else 1))
    store = Podman(root, env)
    yield store
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        left = int(users.read_text() or 1) - 1
        users.write_text(str(left))
        if left > 0:
            return
        leftover = store.run("ps", "-a", "--format", "{{.Names}} {{.Labels}}", check=False).stdout.strip()
        store.run("system", "reset", "--force", check=False, timeout=300)
        (root / "built").unlink(missing_ok=True)
    assert not leftover, f"containers outlived their tests: {leftover}"


def _build(root: Path, env: dict[str, str]) -> None:
    work = root / "work"
    shutil.rmtree(work, ignore_errors=True)
    busybox_rootfs(work / "busybox")
    import_rootfs(env, work / "busybox", BUSYBOX, work / "busybox.tar")
    python_rootfs(work / "python")
    import_rootfs(env, work / "python", PYTHON, work / "python.tar")
    for day in APP_DATES:
        build_from(env, BUSYBOX, f"{APP}:{day}", lines=(f"ENV APP_DATE={day}",))
    shutil.rmtree(work, ignore_errors=True)
    (root / "built").write_text("ok\n")


@pytest.fixture(autouse=True)
def podman(podman_store: Podman, monkeypatch: pytest.MonkeyPatch) -> Podman:
    """The store, with this process (and the sleuth it starts) pointed at it (autouse: first, so
    that ``sleuth_env`` copies an environment that names it)."""
    for key, value in podman_store.env.items():
        monkeypatch.setenv(key, value)
    for key in ("CONTAINER_HOST", "CONTAINER_CONNECTION", "DOCKER_HOST"):
        monkeypatch.delenv(key, raising=False)
    return podman_store
