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

Its parts, re-exported here: :mod:`sleuth.environments.mounts` (:class:`Mount`, the output and
probe mounts, :func:`probe_snapshot`; pyxis uses them too) and :mod:`sleuth.environments.containerrun`
(:class:`ContainerRun`, the per-run hook: name, labels, output mount, GPUs, cleanup).
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.environments.containerrun import ContainerRun
from sleuth.environments.mounts import (
    OUTPUT_MOUNT,
    PROBE_MOUNT,
    Mount,
    _probe_dir,
    make_output_dir,
    probe_snapshot,
)
from sleuth.environments.runtimes import (
    Runtime,
    check_runtime,
    image_exists,
    list_tags,
    resolve_runtime,
)
from sleuth.errors import EnvironmentBuildError, UsageError
from sleuth.model import TrialSpec

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

_CDI_DIRS = ("/etc/cdi", "/var/run/cdi")


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
