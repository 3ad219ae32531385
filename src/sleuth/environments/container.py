"""Container environments: ``docker run --rm`` / ``podman run --rm`` (pyxis lives in ``pyxis.py``).

API (stable; bisect ``images``, ``sleuth run --environment container:IMAGE`` and matrix
``docker``/``podman`` cells use it):

* ``ContainerEnvironment(image=..., runtime=Runtime.DOCKER, mounts=(Mount.parse("SRC:DST"),),
  forward_env={"NCCL_P2P_DISABLE": "1"}, workdir="/w", output_dir=None, gpus=False, rocm=False,
  shm_size=None, network=None, extra_args=(), check_image=False)``; ``prepare()`` resolves the
  runtime on PATH (``EnvironmentBuildError`` when absent; with ``check_image`` also that the tag
  exists) and, for ``gpus=None``/``rocm=None`` (auto), whether this host has such devices.
* ``PreparedContainer.wrap(spec, *, output_dir=None, extra_env=None) -> TrialSpec``: argv becomes
  ``RUNTIME run --rm [--mount ...] [-e NAME ...] [-w DIR] [--shm-size S] [--network N] [EXTRA...]
  IMAGE ARGV...`` and the spec carries a :class:`ContainerRun` hook.  The runner binds it per run
  (:class:`sleuth.model.RunHook`), adding right after ``--rm``::

      --name sleuth-<run>-<trial>-<rand> --label sleuth.run=<run dir> --label sleuth.trial=<trial dir>
      --mount type=bind,src=<output dir or trial dir>,dst=/sleuth-output -e SLEUTH_TRIAL_ID
      -e SLEUTH_OUTPUT_DIR=/sleuth-output -e SLEUTH_TRIAL_DIR=/sleuth-output [GPU flags]

* :func:`resolve_runtime`, :func:`image_exists`, :func:`check_runtime`, :func:`list_tags` (in
  :mod:`sleuth.environments.runtimes`), :func:`container_environment` (``--runtime
  docker|podman|pyxis`` -> the right environment).

**Which variables enter the container.** ``spec.env`` is the complete host environment of the
runtime client; the container must not inherit it (host PATH, HOME, secrets).  Only these are
passed, each as ``-e NAME`` (the value travels in the client's environment, never in argv): the
keys of ``forward_env`` (the user's ``--env`` and a mitigation's variables, given when the
environment is built) and of ``extra_env`` (given per wrap, e.g. a matrix cell's mitigation or
``SLEUTH_CANDIDATE``), whose values are laid over ``spec.env``; every ``SLEUTH_*`` key already in
``spec.env``; ``SLEUTH_TRIAL_ID``; and, unless the run has a device of its own, the runner's
``CUDA_VISIBLE_DEVICES``/``HIP_VISIBLE_DEVICES`` (unset ones are skipped by docker/podman).

**GPUs.** ``gpus=True`` (or auto with NVIDIA devices here: ``/dev/nvidiactl`` for docker, a CDI
spec of ``nvidia.com/gpu`` for podman) gives every run ``--gpus all`` (docker) or ``--device
nvidia.com/gpu=all`` (podman CDI); a run that the runner gives device N (``--gpus N,M`` of
bisect/run/matrix: each running trial its own) gets only that one: ``--gpus device=N`` or
``--device nvidia.com/gpu=N``, and no ``CUDA_VISIBLE_DEVICES`` (inside, it is the only GPU).
``rocm`` adds ``--device /dev/kfd --device /dev/dri --group-add video`` and keeps
``HIP_VISIBLE_DEVICES`` (host numbering: every device is visible).

**Output.** ``output_dir`` (per wrap, else the environment's, else the trial dir at run time) is
mounted at ``/sleuth-output``; inside, ``SLEUTH_OUTPUT_DIR`` and ``SLEUTH_TRIAL_DIR`` point there,
so a workload's ``$SLEUTH_TRIAL_DIR/metrics.json`` lands in the trial dir, where the runner reads it.

**A container never outlives its trial.**  Each run's container is named after the run dir and the
trial (a random suffix: a rerun in the same trial dir never meets what a killed run left), so no
cidfile is needed (podman never deletes one, and a leftover one fails the next run with exit 125).
The cleanup, ``RUNTIME rm -f -t 0 NAME`` (docker: ``rm -f NAME``), runs at once when the runner
stops the trial (timeout, cancel, Ctrl-C) or the client dies of a signal, and at ``resume`` after
a kill -9 of sleuth (see :mod:`sleuth.runner`).  A client exit of 125/126 whose last stderr line
is the runtime's own error (``Error: ...``, ``docker: ...``) is an ERROR with that line, not the
workload's verdict.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.environments.runtimes import (
    Runtime,
    check_runtime,
    image_exists,
    list_tags,
    resolve_runtime,
)
from sleuth.errors import EnvironmentBuildError, InfrastructureError, UsageError
from sleuth.model import RunPlan, TrialSpec

if TYPE_CHECKING:
    from sleuth.environments.pyxis import PyxisEnvironment

__all__ = [
    "OUTPUT_MOUNT",
    "ContainerEnvironment",
    "ContainerRun",
    "Mount",
    "PreparedContainer",
    "Runtime",
    "TrialContainer",
    "check_runtime",
    "container_environment",
    "container_runtime_for",
    "forwarded_env",
    "image_exists",
    "list_tags",
    "make_output_dir",
    "nvidia_available",
    "probe_snapshot",
    "resolve_runtime",
    "rocm_available",
]

log = logging.getLogger(__name__)

OUTPUT_MOUNT = "/sleuth-output"
PROBE_MOUNT = "/sleuth-probe"
#: set by the runner after wrap, so forwarded by name at bind time
_DEVICE_VARS = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
#: what a cleanup after a kill -9 needs of the client's environment (where the store is); no secrets
_STORE_VARS = (
    "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF", "CONTAINER_HOST",
    "CONTAINER_CONNECTION", "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "HOME",
)  # fmt: skip
_CDI_DIRS = ("/etc/cdi", "/var/run/cdi")


@dataclass(frozen=True, slots=True)
class Mount:
    """A host path ``src`` bound at ``dst`` inside the container."""

    src: str
    dst: str
    readonly: bool = False

    @classmethod
    def parse(cls, text: str, flag: str = "--mount") -> Mount:
        """``SRC:DST`` or ``SRC:DST:ro`` (``rw`` accepted); ``src`` made absolute."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1] or parts[2:] not in ([], ["ro"], ["rw"]):
            raise UsageError(f"{flag} {text!r}: expected SRC:DST or SRC:DST:ro")
        if not parts[1].startswith("/"):
            raise UsageError(f"{flag} {text!r}: the container path {parts[1]!r} must be absolute")
        if "," in text:
            raise UsageError(f"{flag} {text!r}: paths with commas cannot be mounted")
        return cls(os.path.abspath(os.path.expanduser(parts[0])), parts[1], parts[2:] == ["ro"])

    def spec(self) -> str:
        """The ``SRC:DST[:ro]`` form that :meth:`parse` reads."""
        return f"{self.src}:{self.dst}{':ro' if self.readonly else ''}"

    def arg(self) -> str:
        """The ``--mount`` value for docker/podman."""
        return f"type=bind,src={self.src},dst={self.dst}{',readonly' if self.readonly else ''}"


def nvidia_available(runtime: str | Runtime) -> bool:
    """Whether the runtime can give containers NVIDIA GPUs here (docker: the driver's device
    nodes; podman: a CDI spec naming ``nvidia.com/gpu``)."""
    if Runtime.parse(runtime) is Runtime.DOCKER:
        return os.path.exists("/dev/nvidiactl")
    for path in (
        p for d in _CDI_DIRS for p in glob.glob(f"{d}/*.*") if p.endswith((".yaml", ".yml", ".json"))
    ):
        try:
            with open(path, encoding="utf-8") as fh:
                if "nvidia.com/gpu" in fh.read(1 << 20):
                    return True
        except OSError:
            continue
    return False


def rocm_available() -> bool:
    """Whether this host has AMD GPUs (``/dev/kfd``)."""
    return os.path.exists("/dev/kfd")


def forwarded_env(
    spec_env: Mapping[str, str], values: Mapping[str, str]
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The client environment (``spec_env`` with ``values`` laid over) and the names to pass inside.

    The runner's own variables (``SLEUTH_TRIAL_DIR``, ``SLEUTH_TRIAL_ID``, the device variables)
    are added per run by :class:`ContainerRun`.
    """
    env = {**spec_env, **values}
    own = ("SLEUTH_TRIAL_DIR", "SLEUTH_TRIAL_ID", "SLEUTH_OUTPUT_DIR")
    names = dict.fromkeys([*values, *(k for k in spec_env if k.startswith("SLEUTH_") and k not in own)])
    return env, tuple(n for n in names if n not in own)


def make_output_dir(output_dir: str | Path | None) -> str | None:
    """The absolute host path of ``output_dir``, created; ``None`` passes through."""
    if output_dir is None:
        return None
    path = Path(output_dir).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def container_environment(
    runtime: str | Runtime,
    image: str,
    *,
    mounts: tuple[Mount, ...] = (),
    forward_env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    check_image: bool = False,
    gpus: bool | None = False,
) -> ContainerEnvironment | PyxisEnvironment:
    """docker/podman: a ``ContainerEnvironment``; pyxis: a ``PyxisEnvironment``; same common options.

    ``gpus`` (docker/podman; None: when this host has NVIDIA GPUs); pyxis leaves GPUs to srun.
    """
    rt = Runtime.parse(runtime)
    common: dict[str, Any] = {
        "image": image,
        "mounts": mounts,
        "forward_env": dict(forward_env or {}),
        "workdir": workdir,
        "check_image": check_image,
    }
    if rt is Runtime.PYXIS:
        from sleuth.environments.pyxis import PyxisEnvironment

        return PyxisEnvironment(**common)
    return ContainerEnvironment(runtime=rt, gpus=gpus, rocm=None if gpus is None else False, **common)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerEnvironment:
    """An image run by docker or podman; see the module docstring for every field's effect."""

    image: str
    runtime: Runtime = Runtime.DOCKER
    mounts: tuple[Mount, ...] = ()
    forward_env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    output_dir: str | None = None
    #: NVIDIA GPUs: True, False, or None (auto: when this host has them)
    gpus: bool | None = False
    #: AMD GPUs: True, False, or None (auto)
    rocm: bool | None = False
    shm_size: str | None = None
    network: str | None = None
    extra_args: tuple[str, ...] = ()
    check_image: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        rt = Runtime.parse(self.runtime)
        if rt is Runtime.PYXIS:
            raise UsageError("pyxis images run through sleuth.environments.pyxis.PyxisEnvironment")
        if not self.image.strip():
            raise UsageError("container environment: empty image name")
        if self.image.startswith("-"):  # `run ... --help ARGV` ran no image and passed every trial
            raise UsageError(
                f"container environment: image {self.image!r} starts with '-' (the runtime reads an option)",
                hint="give an image reference, e.g. localhost/app:1 or docker.io/library/python:3.12",
            )
        object.__setattr__(self, "runtime", rt)
        object.__setattr__(self, "name", self.name or f"{rt.value}:{self.image}")

    def describe(self) -> dict[str, Any]:
        """JSON-able form, enough to rebuild it."""
        return {
            "kind": self.runtime.value,
            "image": self.image,
            "mounts": [m.spec() for m in self.mounts],
            "forward_env": dict(self.forward_env),
            "workdir": self.workdir,
            "gpus": self.gpus,
            "rocm": self.rocm,
            "shm_size": self.shm_size,
            "network": self.network,
            "extra_args": list(self.extra_args),
        }

    def prepare(self) -> PreparedContainer:
        """Resolve the runtime (and, with ``check_image``, that the image exists); pulls nothing."""
        exe = resolve_runtime(self.runtime)
        if self.check_image and not image_exists(self.runtime, self.image):
            raise EnvironmentBuildError(f"image {self.image} not found by {self.runtime.value}")
        nvidia = nvidia_available(self.runtime) if self.gpus is None else self.gpus
        amd = rocm_available() if self.rocm is None else self.rocm
        return PreparedContainer(env=self, executable=exe, nvidia=nvidia, amd=amd)


@dataclass(frozen=True, slots=True)
class PreparedContainer:
    """A container environment with its runtime resolved (and its GPUs, when auto)."""

    env: ContainerEnvironment
    executable: str
    nvidia: bool = False
    amd: bool = False

    def _runtime_args(self, names: tuple[str, ...]) -> list[str]:
        e = self.env
        args = [self.executable, "run", "--rm"]
        for m in e.mounts:
            args += ["--mount", m.arg()]
        for name in names:
            args += ["-e", name]
        if e.workdir:
            args += ["-w", e.workdir]
        if e.shm_size:
            args += ["--shm-size", e.shm_size]
        if e.network:
            args += ["--network", e.network]
        return [*args, *e.extra_args, e.image]

    def wrap(
        self,
        spec: TrialSpec,
        *,
        output_dir: str | Path | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> TrialSpec:
        """``spec`` run inside the image: argv prefixed by ``RUNTIME run --rm ... IMAGE``; the
        runner binds the rest per run (name, output mount, GPUs: see the module docstring)."""
        env, names = forwarded_env(spec.env, {**self.env.forward_env, **(extra_env or {})})
        out = make_output_dir(output_dir if output_dir is not None else self.env.output_dir)
        hook = ContainerRun(
            runtime=self.env.runtime,
            executable=self.executable,
            output_dir=out,
            nvidia=self.nvidia,
            amd=self.amd,
        )
        argv = (*self._runtime_args(names), *spec.argv)
        return replace(spec.with_argv(argv).with_env(env), hook=hook)

    def snapshot(self) -> dict[str, Any]:
        """The image's python/packages/env seen by ``python3`` inside it, or an honest placeholder."""
        probe = Mount(_probe_dir(), PROBE_MOUNT, readonly=True)
        inner = PreparedContainer(
            env=replace(self.env, mounts=(*self.env.mounts, probe)), executable=self.executable
        )
        wrapped = inner.wrap(TrialSpec(argv=("python3",), env=dict(os.environ)))
        return probe_snapshot(wrapped.argv, self.env.describe(), env=wrapped.env)


def _run_dir_of(trial_dir: Path) -> Path:
    """The sleuth run dir holding ``trial_dir`` (the nearest parent with a journal), else its parent."""
    for parent in list(trial_dir.parents)[:6]:
        if (parent / "journal.jsonl").is_file():
            return parent
    return trial_dir.parent


def container_name(trial_dir: Path) -> tuple[str, Path]:
    """``sleuth-<run dir name>-<hash of run dir>-<hash of trial dir>-<random>`` and the run dir."""
    run = _run_dir_of(trial_dir)
    slug = "".join(c if c.isalnum() or c in "_.-" else "-" for c in run.name)[:40].strip("-.") or "run"
    h = hashlib.sha1(str(run).encode()).hexdigest()[:6]
    t = hashlib.sha1(str(trial_dir).encode()).hexdigest()[:8]
    return f"sleuth-{slug}-{h}-{t}-{secrets.token_hex(3)}", run


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerRun:
    """The per-run part of a docker/podman trial (a :class:`sleuth.model.RunHook`)."""

    runtime: Runtime
    executable: str
    #: mounted at /sleuth-output; None: the trial dir
    output_dir: str | None = None
    nvidia: bool = False
    amd: bool = False

    def bind(self, spec: TrialSpec, trial_dir: Path, device: str | None) -> RunPlan:
        """The argv for this run (see the module docstring) and ``rm -f`` of its container."""
        tdir = Path(os.path.abspath(trial_dir))
        name, run = container_name(tdir)
        out = self.output_dir or str(tdir)
        extra = ["--name", name, "--label", f"sleuth.run={run}", "--label", f"sleuth.trial={tdir}",
                 "--mount", Mount(out, OUTPUT_MOUNT).arg(), "-e", "SLEUTH_TRIAL_ID",
                 "-e", f"SLEUTH_OUTPUT_DIR={OUTPUT_MOUNT}",
                 "-e", f"SLEUTH_TRIAL_DIR={OUTPUT_MOUNT}"]  # fmt: skip
        docker = self.runtime is Runtime.DOCKER
        # a device from the runner (the user's --gpus) is an NVIDIA GPU unless the host has AMD ones
        nvidia = self.nvidia or (device is not None and not self.amd)
        if nvidia:
            if device is None:
                extra += ["--gpus", "all"] if docker else ["--device", "nvidia.com/gpu=all"]
            else:
                extra += (
                    ["--gpus", f"device={device}"] if docker else ["--device", f"nvidia.com/gpu={device}"]
                )
        if self.amd:
            extra += ["--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", "video"]
        if device is None or not nvidia:  # with a device of its own, it is the container's only GPU
            for var in _DEVICE_VARS:
                extra += ["-e", var]
        elif self.amd:
            extra += ["-e", "HIP_VISIBLE_DEVICES"]
        argv = (*spec.argv[:3], *extra, *spec.argv[3:])
        cleanup = (
            (self.executable, "rm", "-f", name) if docker else (self.executable, "rm", "-f", "-t", "0", name)
        )
        store = {k: spec.env[k] for k in _STORE_VARS if k in spec.env}
        log.debug("container %s for %s", name, tdir)
        return RunPlan(spec=spec.with_argv(argv), cleanup=cleanup, cleanup_env=store)

    def own_error(self, rc: int | None, stderr_tail: str) -> str | None:
        """The runtime's own failure: exit 125/126 with its ``Error: ...`` / ``docker: ...`` line last,
        or 127 when that line says the runtime could not start the command (a test program missing
        from an image: counted as the workload's exit 127, a FAIL, it made an old image look bad)."""
        if rc not in (125, 126, 127):
            return None
        lines = [ln.strip() for ln in stderr_tail.splitlines() if ln.strip()]
        if not lines:
            return None
        last = lines[-1]
        if not last.startswith(("Error: ", "Error response from daemon", "docker: ")):
            return None
        if rc == 127 and not any(w in last for w in ("OCI runtime", "executable file not found", "exec: ")):
            return None  # a workload's own "Error: ..." before its exit 127
        return f"{self.runtime.value}: {last[:300]}"


def container_runtime_for(name: str) -> str:
    """``podman``/``docker`` as given; ``container``: podman when it is on PATH, else docker."""
    if name != "container":
        return Runtime.parse(name).value
    return "podman" if shutil.which("podman") else "docker"


@dataclass(frozen=True, slots=True)
class TrialContainer:
    """A prepared container that passes the named variables of each trial's spec inside
    (``sleuth run --environment container:IMAGE --env K=V``): the values come from the spec."""

    prepared: PreparedContainer
    names: tuple[str, ...] = ()

    def wrap(self, spec: TrialSpec) -> TrialSpec:
        """The spec in the container (the trial dir is its output dir, bound per run)."""
        return self.prepared.wrap(spec, extra_env={k: spec.env[k] for k in self.names if k in spec.env})

    def snapshot(self) -> dict[str, Any]:
        """The image's snapshot."""
        return self.prepared.snapshot()


def _probe_dir() -> str:
    from sleuth import _probe

    return str(Path(_probe.__file__).resolve().parent)


def probe_snapshot(
    prefix: Sequence[str], description: dict[str, Any], env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run the probe mounted at ``/sleuth-probe`` through ``prefix`` (``... IMAGE python3``) with the
    client's ``env`` (where forwarded values travel).

    Returns ``{"schema", "taken_at", "container": description, "python", "packages", "env"}``,
    or ``"probe_error"`` instead of the last three when the image cannot run the probe.
    """
    from sleuth import snapshot

    snap: dict[str, Any] = {
        "schema": snapshot.SCHEMA,
        "taken_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "container": description,
    }
    try:
        snap.update(snapshot.probe_via(prefix, probe_path=f"{PROBE_MOUNT}/_probe.py", env=env))
    except InfrastructureError as exc:
        snap["probe_error"] = str(exc)
    return snap
