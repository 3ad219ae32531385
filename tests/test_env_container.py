"""Container environments (docker, podman, pyxis) against a fake runtime on a tmp PATH.

No container engine runs here: ``tests/programs/fake_runtime.py`` records each call and, for
``run``/``srun``, executes the wrapped command on the host with mount paths mapped back, so the
argv we build is checked exactly and a trial runs end to end through the real runner.  The same
paths run against a real podman in ``tests/containers/``; docker (and its ``--gpus``) only here.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from sleuth.environments.container import (
    ContainerEnvironment,
    Mount,
    Runtime,
    check_runtime,
    container_environment,
    image_exists,
    list_tags,
    resolve_runtime,
)
from sleuth.environments.pyxis import PyxisEnvironment
from sleuth.errors import EnvironmentBuildError, InfrastructureError, UsageError
from sleuth.model import TrialSpec
from sleuth.runner import run_trial
from tests.fakebin import RUNTIMES, install_fake, isolated_path

DEVICE_VARS = ["-e", "CUDA_VISIBLE_DEVICES", "-e", "HIP_VISIBLE_DEVICES"]
OUTPUT_VARS = ["-e", "SLEUTH_OUTPUT_DIR=/sleuth-output", "-e", "SLEUTH_TRIAL_DIR=/sleuth-output"]


def per_run(plan_argv: tuple[str, ...], out: Path, trial: Path) -> list[str]:
    """The arguments the runner's bind put after ``run --rm`` (the name is random: taken from argv)."""
    assert plan_argv[3] == "--name"
    name = plan_argv[4]
    assert name.startswith("sleuth-") and len(name) <= 100, name
    return ["--name", name, "--label", f"sleuth.run={trial.parent}", "--label", f"sleuth.trial={trial}",
            "--mount", f"type=bind,src={out},dst=/sleuth-output", "-e", "SLEUTH_TRIAL_ID", *OUTPUT_VARS]  # fmt: skip


class FakeRuntimes:
    """Shims named like runtimes in a tmp bin dir that is the whole PATH; ``calls()`` reads what they saw."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = root / "bin"
        self.log = root / "calls.jsonl"
        self.monkeypatch = monkeypatch
        monkeypatch.setenv("FAKE_RUNTIME_LOG", str(self.log))
        monkeypatch.delenv("FAKE_RUNTIME_IMAGES", raising=False)
        monkeypatch.delenv("FAKE_RUNTIME_LOCAL_IMAGES", raising=False)
        # a PATH of its own: the host's docker, podman, srun or skopeo must never be found
        monkeypatch.setenv("PATH", isolated_path(self.bin))

    def install(self, *tools: str) -> FakeRuntimes:
        """Put a shim for each tool on PATH."""
        install_fake(self.bin, *tools)
        return self

    def images(self, remote: str = "", local: str = "") -> None:
        """Which tags the registry (remote) and the local store hold."""
        self.monkeypatch.setenv("FAKE_RUNTIME_IMAGES", remote)
        self.monkeypatch.setenv("FAKE_RUNTIME_LOCAL_IMAGES", local)

    def calls(self) -> list[dict[str, Any]]:
        """Every recorded call, in order."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeRuntimes:
    return FakeRuntimes(tmp_path, monkeypatch)


@pytest.fixture
def host_runtimes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Decoy docker/podman/srun/skopeo first on the PATH the suite started with, as on a loaded host."""
    decoys = tmp_path / "host-bin"
    decoys.mkdir()
    for tool in RUNTIMES:
        (decoys / tool).write_text(f"#!/bin/sh\necho host {tool} >&2\nexit 99\n")
        (decoys / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{decoys}{os.pathsep}{os.environ.get('PATH', '')}")
    return decoys


def test_fake_path_never_finds_the_hosts_runtimes(
    host_runtimes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeRuntimes(tmp_path / "fake", monkeypatch)
    for runtime in ("docker", "podman", "pyxis"):
        with pytest.raises(EnvironmentBuildError, match="not found on PATH"):
            resolve_runtime(runtime)
    with caplog.at_level(logging.WARNING):
        assert image_exists("pyxis", "a/b:1")  # nothing to ask, so not the decoy skopeo
    assert "assuming it does" in caplog.text
    fake.install("podman")
    assert resolve_runtime("podman") == str(fake.bin / "podman")
    # what the code spawns by name is there, and runs this interpreter
    assert {p.name for p in fake.bin.iterdir()} == {"sh", "python", "python3", "true", "env", "podman"}
    out = run_trial(TrialSpec(argv=("python3", "-c", "import sys; print(sys.prefix)"), env=dict(os.environ)),
                    tmp_path / "t")  # fmt: skip
    assert out.stdout_tail.strip() == sys.prefix


def test_docker_argv_is_exact(fake: FakeRuntimes, tmp_path: Path) -> None:
    fake.install("docker")
    data = tmp_path / "data"
    env = ContainerEnvironment(
        image="rocm/pytorch:latest",
        mounts=(Mount.parse(f"{data}:/data:ro"),),
        forward_env={"NCCL_P2P_DISABLE": "1"},
        workdir="/data",
        gpus=True,
        shm_size="8g",
        extra_args=("--ipc", "host"),
    )
    prepared = env.prepare()
    spec = TrialSpec(
        argv=("python", "train.py"),
        env={
            "PATH": "/usr/bin",
            "HOME": "/root",
            "SECRET": "s",
            "SLEUTH_CANDIDATE": "c",
            "SLEUTH_TRIAL_DIR": "/h",
            "CONTAINERS_CONF": "/etc/c.conf",
        },
    )
    out = tmp_path / "out"
    wrapped = prepared.wrap(spec, output_dir=out, extra_env={"FOO": "bar"})
    tail = ("-w", "/data", "--shm-size", "8g", "--ipc", "host", "rocm/pytorch:latest", "python", "train.py")
    assert wrapped.argv == (
        str(fake.bin / "docker"),
        *("run", "--rm"),
        *("--mount", f"type=bind,src={data},dst=/data,readonly"),
        *("-e", "NCCL_P2P_DISABLE", "-e", "FOO", "-e", "SLEUTH_CANDIDATE"),
        *tail,
    )
    # values travel in the client's environment, never in argv
    assert wrapped.env["NCCL_P2P_DISABLE"] == "1"
    assert wrapped.env["FOO"] == "bar"
    assert out.is_dir()
    assert env.name == "docker:rocm/pytorch:latest"
    # the runner binds each run: its name, the output mount, all GPUs or the run's own
    assert wrapped.hook is not None
    trial = tmp_path / "run" / "0001"
    plan = wrapped.hook.bind(wrapped, trial, None)
    head = (str(fake.bin / "docker"), "run", "--rm", *per_run(plan.spec.argv, out, trial))
    assert plan.spec.argv[: len(head)] == head
    mid = plan.spec.argv[len(head) :]
    assert mid == ("--gpus", "all", *DEVICE_VARS, *wrapped.argv[3:])
    name = plan.spec.argv[4]
    assert plan.cleanup == (str(fake.bin / "docker"), "rm", "-f", name)
    assert dict(plan.cleanup_env) == {"HOME": "/root", "CONTAINERS_CONF": "/etc/c.conf"}  # never SECRET
    one = wrapped.hook.bind(wrapped, trial, "3")
    assert one.spec.argv[4] != name  # a rerun in the same dir never meets a leftover container
    assert "device=3" in one.spec.argv and "CUDA_VISIBLE_DEVICES" not in one.spec.argv
    assert one.spec.argv[-len(tail) :] == tail
    assert fake.calls() == []  # preparing, wrapping and binding run nothing


def test_podman_gpu_and_rocm_flags(fake: FakeRuntimes, tmp_path: Path) -> None:
    fake.install("podman")
    prepared = ContainerEnvironment(image="img", runtime=Runtime.PODMAN, gpus=True, rocm=True).prepare()
    wrapped = prepared.wrap(TrialSpec(argv=("true",)))
    assert wrapped.argv == (str(fake.bin / "podman"), "run", "--rm", "img", "true")
    assert wrapped.hook is not None
    trial = tmp_path / "t"
    plan = wrapped.hook.bind(wrapped, trial, None)
    assert plan.spec.argv == (
        *wrapped.argv[:3],
        *per_run(plan.spec.argv, trial, trial),
        *("--device", "nvidia.com/gpu=all"),
        *("--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", "video"),
        *DEVICE_VARS,
        *("img", "true"),
    )
    assert plan.cleanup == (str(fake.bin / "podman"), "rm", "-f", "-t", "0", plan.spec.argv[4])
    one = wrapped.hook.bind(wrapped, trial, "1").spec.argv
    assert one[one.index("nvidia.com/gpu=1") - 1] == "--device"
    assert "nvidia.com/gpu=all" not in one
    assert "CUDA_VISIBLE_DEVICES" not in one and "HIP_VISIBLE_DEVICES" in one  # ROCm sees every device


def test_runtime_own_errors_are_not_the_workloads(fake: FakeRuntimes) -> None:
    fake.install("podman")
    hook = (
        ContainerEnvironment(image="img", runtime=Runtime.PODMAN).prepare().wrap(TrialSpec(argv=("t",))).hook
    )
    assert hook is not None
    assert hook.own_error(125, "Error: statfs /nope: no such file or directory\n") == (
        "podman: Error: statfs /nope: no such file or directory"
    )
    assert hook.own_error(126, "Error: OCI runtime error: crun: cgroups in hybrid mode not supported")
    assert hook.own_error(125, "test says skip this one\n") is None  # the workload's own 125
    assert hook.own_error(1, "Error: boom") is None
    # a test program missing from an image: the runtime's 127 (it read as the test's FAIL)
    missing = (
        'Error: runc: exec failed: unable to start container process: exec: "/opt/run": stat /opt/run: '
        "no such file or directory: OCI runtime attempted to invoke a command that was not found"
    )
    assert (hook.own_error(127, missing) or "").startswith("podman: Error: runc: exec failed")
    docker = 'docker: Error response from daemon: failed to create task: exec: "t": executable file not found'
    assert hook.own_error(127, docker) is not None
    assert hook.own_error(127, "sh: t: not found\n") is None  # the workload's own 127
    assert hook.own_error(127, "Error: no such dataset\n") is None
    assert hook.own_error(125, "") is None


def test_pyxis_argv_is_exact(fake: FakeRuntimes, tmp_path: Path) -> None:
    fake.install("srun")
    env = PyxisEnvironment(
        image="nvcr.io#nvidia/pytorch:24.01-py3",
        mounts=(Mount.parse(f"{tmp_path}:/ws"), Mount.parse("/scratch:/scratch:ro")),
        workdir="/ws",
        writable=True,
        srun_args=("--gpus=1", "-n", "1"),
        forward_env={"NCCL_DEBUG": "INFO"},
    )
    out = tmp_path / "o"
    wrapped = env.prepare().wrap(TrialSpec(argv=("python", "t.py"), env={"A": "1"}), output_dir=out)
    assert wrapped.argv == (
        str(fake.bin / "srun"),
        *("--gpus=1", "-n", "1"),
        "--container-image=nvcr.io#nvidia/pytorch:24.01-py3",
        f"--container-mounts={tmp_path}:/ws,/scratch:/scratch:ro,{out}:/sleuth-output",
        "--no-container-mount-home",
        "--container-writable",
        "--container-workdir=/ws",
        "--export=ALL,SLEUTH_OUTPUT_DIR=/sleuth-output,SLEUTH_TRIAL_DIR=/sleuth-output",
        *("python", "t.py"),
    )
    assert dict(wrapped.env) == {"A": "1", "NCCL_DEBUG": "INFO"}


@pytest.mark.parametrize("text", ["nodst", ":/x", "a:relative", "a:/b:rx", "a,b:/c", "a:/b:ro:x"])
def test_bad_mounts_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="--mount"):
        Mount.parse(text)


def test_mount_parse() -> None:
    assert Mount.parse("/a:/b:ro") == Mount("/a", "/b", readonly=True)
    assert Mount.parse("rel:/b").src == os.path.abspath("rel")


def test_runtime_names() -> None:
    assert Runtime.parse("Docker") is Runtime.DOCKER
    assert Runtime.PYXIS.executable == "srun"
    with pytest.raises(UsageError, match="unknown container runtime 'lxc'"):
        Runtime.parse("lxc")
    with pytest.raises(UsageError, match="pyxis"):
        ContainerEnvironment(image="x", runtime=Runtime.PYXIS)
    with pytest.raises(UsageError, match="empty image"):
        ContainerEnvironment(image=" ")


@pytest.mark.parametrize("runtime", ["docker", "podman", "pyxis"])
def test_missing_runtime_is_one_line_build_error(fake: FakeRuntimes, runtime: str) -> None:
    with pytest.raises(EnvironmentBuildError, match="not found on PATH") as err:
        resolve_runtime(runtime)
    assert "\n" not in str(err.value)
    env = (
        PyxisEnvironment(image="x")
        if runtime == "pyxis"
        else ContainerEnvironment(image="x", runtime=Runtime(runtime))
    )
    with pytest.raises(EnvironmentBuildError):
        env.prepare()


@pytest.mark.parametrize("runtime", ["docker", "podman"])
def test_image_exists_never_pulls(fake: FakeRuntimes, runtime: str) -> None:
    fake.install(runtime)
    fake.images(remote="reg/img:2024-01-02", local="mine:dev")
    assert image_exists(runtime, "reg/img:2024-01-02")
    assert image_exists(runtime, "mine:dev")
    assert not image_exists(runtime, "reg/img:2024-01-03")
    subcommands = {tuple(c["argv"][:2]) for c in fake.calls()}
    local = ("image", "inspect") if runtime == "docker" else ("image", "exists")
    assert subcommands == {local, ("manifest", "inspect")}


def test_pyxis_image_check_prefers_skopeo(fake: FakeRuntimes, tmp_path: Path) -> None:
    fake.install("skopeo", "docker")
    fake.images(remote="nvcr.io/nvidia/pytorch:24.01-py3")
    assert image_exists("pyxis", "nvcr.io#nvidia/pytorch:24.01-py3")
    assert image_exists("pyxis", "me@nvcr.io#nvidia/pytorch:24.01-py3")
    assert not image_exists("pyxis", "nvcr.io#nvidia/pytorch:23.01-py3")
    assert {c["tool"] for c in fake.calls()} == {"skopeo"}
    assert fake.calls()[0]["argv"] == ["inspect", "--raw", "docker://nvcr.io/nvidia/pytorch:24.01-py3"]
    sqsh = tmp_path / "image.sqsh"
    assert not image_exists("pyxis", str(sqsh))
    sqsh.write_bytes(b"")
    assert image_exists("pyxis", str(sqsh))


def test_pyxis_image_check_falls_back(
    fake: FakeRuntimes, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.images(remote="a/b:1")
    with caplog.at_level(logging.WARNING):
        assert image_exists("pyxis", "a/b:never")  # nothing to ask: assumed, with a warning
    assert "assuming it does" in caplog.text
    fake.install("podman")
    assert not image_exists("pyxis", "a/b:never")
    assert fake.calls()[-1] == {
        "tool": "podman",
        "argv": ["manifest", "inspect", "a/b:never"],
        "cwd": os.getcwd(),
    }


def test_check_image_on_prepare(fake: FakeRuntimes) -> None:
    fake.install("docker")
    fake.images(remote="a:1")
    ContainerEnvironment(image="a:1", check_image=True).prepare()
    with pytest.raises(EnvironmentBuildError, match="image a:2 not found"):
        ContainerEnvironment(image="a:2", check_image=True).prepare()


WORKLOAD = """
import json, os, pathlib, sys
print("FOO=" + os.environ.get("FOO", "-"))
print("HOST_ONLY=" + os.environ.get("HOST_ONLY", "-"))
print("IMAGE=" + os.environ["FAKE_CONTAINER_IMAGE"])
print("CWD=" + os.getcwd())
print("DATA=" + pathlib.Path(sys.argv[1]).read_text().strip())  # a path inside the "container"
pathlib.Path(os.environ["SLEUTH_TRIAL_DIR"], "metrics.json").write_text(json.dumps({"loss": 0.5}))
sys.exit(int(os.environ.get("EXIT", "0")))
"""


@pytest.mark.parametrize("kind", ["docker", "podman", "pyxis"])
def test_trial_runs_end_to_end(fake: FakeRuntimes, tmp_path: Path, kind: str) -> None:
    fake.install("docker", "podman", "srun")
    fake.images(remote="img:1")
    data = tmp_path / "data"
    data.mkdir()
    (data / "input.txt").write_text("hello\n")
    mounts = (Mount.parse(f"{data}:/data:ro"),)
    env: ContainerEnvironment | PyxisEnvironment
    if kind == "pyxis":
        env = PyxisEnvironment(image="img:1", mounts=mounts, workdir="/data", forward_env={"FOO": "x"})
    else:
        env = ContainerEnvironment(
            image="img:1", runtime=Runtime(kind), mounts=mounts, workdir="/data", forward_env={"FOO": "x"}
        )
    prepared = env.prepare()
    spec = TrialSpec(
        argv=(sys.executable, "-c", WORKLOAD, "/data/input.txt"), env={**os.environ, "HOST_ONLY": "1"}
    )
    trial_dir = tmp_path / "trials" / "0001"
    result = run_trial(prepared.wrap(spec, output_dir=trial_dir, extra_env={"EXIT": "3"}), trial_dir)
    assert result.error is None
    assert result.rc == 3, result.stderr_tail
    out = result.stdout_tail
    assert "FOO=x" in out
    assert "IMAGE=img:1" in out
    assert f"CWD={data}" in out
    assert "DATA=hello" in out
    # docker/podman pass only forwarded variables; srun exports the whole environment
    assert ("HOST_ONLY=1" if kind == "pyxis" else "HOST_ONLY=-") in out
    assert result.metrics == {"loss": 0.5}
    tool = "srun" if kind == "pyxis" else kind
    assert [c["tool"] for c in fake.calls()] == [tool]


def test_missing_image_fails_the_trial_not_sleuth(fake: FakeRuntimes, tmp_path: Path) -> None:
    fake.install("docker")
    fake.images(remote="img:1")
    prepared = ContainerEnvironment(image="img:404").prepare()
    result = run_trial(prepared.wrap(TrialSpec(argv=("true",), env=dict(os.environ))), tmp_path / "t")
    assert result.rc == 125
    assert "Unable to find image" in result.stderr_tail
    # the runtime's own error, not the workload's exit code: an ERROR with its words
    assert result.error is not None and "manifest for img:404 not found" in result.error


@pytest.mark.parametrize("kind", ["docker", "pyxis"])
def test_snapshot_probes_inside_the_image(
    fake: FakeRuntimes, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.install("docker", "srun")
    fake.images(remote="img:1")
    monkeypatch.setenv("NCCL_DEBUG", "WARN")
    env = PyxisEnvironment(image="img:1") if kind == "pyxis" else ContainerEnvironment(image="img:1")
    snap = env.prepare().snapshot()
    assert snap["container"]["image"] == "img:1"
    assert snap["python"]["version"]
    assert "numpy" in snap["packages"]
    if kind == "docker":  # only forwarded variables exist inside, and NCCL_DEBUG was not one
        assert "NCCL_DEBUG" not in snap["env"]
    broken = PyxisEnvironment(image="gone:1") if kind == "pyxis" else ContainerEnvironment(image="gone:1")
    snap = broken.prepare().snapshot()
    assert "probe_error" in snap
    assert "python" not in snap


def test_describe_is_json(fake: FakeRuntimes) -> None:
    env = ContainerEnvironment(image="i", mounts=(Mount("/a", "/b", readonly=True),), forward_env={"K": "V"})
    desc = env.describe()
    assert json.loads(json.dumps(desc)) == desc
    assert desc["kind"] == "docker"
    assert desc["mounts"] == ["/a:/b:ro"]
    assert PyxisEnvironment(image="i").describe()["kind"] == "pyxis"


def test_container_environment_factory(fake: FakeRuntimes) -> None:
    assert isinstance(container_environment("pyxis", "i"), PyxisEnvironment)
    env = container_environment("podman", "i", forward_env={"K": "V"}, workdir="/w")
    assert isinstance(env, ContainerEnvironment)
    assert env.runtime is Runtime.PODMAN
    assert env.describe()["forward_env"] == {"K": "V"}


def test_check_runtime_says_why_in_one_line(fake: FakeRuntimes, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "docker not found on PATH" in (check_runtime("docker") or "")
    fake.install("docker")
    assert check_runtime("docker") is None
    assert fake.calls()[-1]["argv"][:1] == ["info"]
    monkeypatch.setenv("FAKE_RUNTIME_DOWN", "1")
    why = check_runtime("docker")
    assert why is not None and "Cannot connect to the Docker daemon" in why and "\n" not in why


def test_a_daemon_that_is_down_is_not_a_missing_image(
    fake: FakeRuntimes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.install("docker")
    fake.images(remote="reg/img:1")
    assert not image_exists("docker", "reg/img:2")  # the registry says there is no such tag
    monkeypatch.setenv("FAKE_RUNTIME_DOWN", "1")
    with pytest.raises(InfrastructureError, match="Cannot connect to the Docker daemon"):
        image_exists("docker", "reg/img:1")


def test_list_tags_needs_the_registrys_list(fake: FakeRuntimes, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.install("docker", "skopeo")
    fake.images(remote="reg/app:2025-01-01 reg/app:2025-01-03 other/app:2025-01-02", local="reg/app:dev")
    assert list_tags("docker", "reg/app") == ["reg/app:2025-01-01", "reg/app:2025-01-03", "reg/app:dev"]
    monkeypatch.setenv("FAKE_RUNTIME_NO_LIST", "1")
    assert list_tags("docker", "reg/app") is None  # the local images alone are only what was pulled


def test_a_timeout_removes_the_docker_container(fake: FakeRuntimes, tmp_path: Path) -> None:
    fake.install("docker")
    prepared = ContainerEnvironment(image="img:1").prepare()
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(30)"
    spec = TrialSpec(argv=("python3", "-c", stubborn), env=dict(os.environ), timeout_s=1.0, kill_grace_s=20.0)  # fmt: skip
    result = run_trial(prepared.wrap(spec), tmp_path / "t")
    assert result.timed_out
    runs = [c["argv"] for c in fake.calls() if c["argv"][:1] == ["run"]]
    removes = [c["argv"] for c in fake.calls() if c["argv"][:1] == ["rm"]]
    name = runs[0][runs[0].index("--name") + 1]
    assert removes == [["rm", "-f", name]]
