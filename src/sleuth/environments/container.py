"""Container environments: ``docker run --rm`` / ``podman run --rm`` (pyxis lives in ``pyxis.py``).

API (stable; bisect ``images`` and matrix ``docker``/``podman`` cells use it):

* ``ContainerEnvironment(image=..., runtime=Runtime.DOCKER, mounts=(Mount.parse("SRC:DST"),),
  forward_env={"NCCL_P2P_DISABLE": "1"}, workdir="/w", output_dir=None, gpus=False, rocm=False,
  shm_size=None, extra_args=(), check_image=False)``; ``prepare()`` resolves the runtime on PATH
  (``EnvironmentBuildError`` when absent; with ``check_image`` also that the tag exists).
* ``PreparedContainer.wrap(spec, *, output_dir=None, extra_env=None) -> TrialSpec``: argv becomes
  ``RUNTIME run --rm [--mount ...] [-e NAME ...] [-w DIR] [--gpus all] [--device ...] [--shm-size S]
  [EXTRA...] IMAGE ARGV...``.
* :func:`resolve_runtime`, :func:`image_exists` (checks a tag without pulling it),
  :func:`container_environment` (``--runtime docker|podman|pyxis`` -> the right environment).

**Which variables enter the container.** ``spec.env`` is the complete host environment of the
runtime client; the container must not inherit it (host PATH, HOME, secrets).  Only these are
passed, each as ``-e NAME`` (the value travels in the client's environment, never in argv): the
keys of ``forward_env`` (the user's ``--env`` and a mitigation's variables, given when the
environment is built) and of ``extra_env`` (given per wrap, e.g. a matrix cell's mitigation or
``SLEUTH_CANDIDATE``), whose values are laid over ``spec.env``; every ``SLEUTH_*`` key already in
``spec.env``; and the names the runner sets per trial after wrapping (``SLEUTH_TRIAL_ID``,
``CUDA_VISIBLE_DEVICES``, ``HIP_VISIBLE_DEVICES``: unset ones are skipped by docker/podman).

**Output.** ``output_dir`` (per wrap, else the environment's) is created on the host and mounted
at ``/sleuth-output``; inside, ``SLEUTH_OUTPUT_DIR`` and ``SLEUTH_TRIAL_DIR`` point there, so pass
the trial directory as ``output_dir`` to have ``$SLEUTH_TRIAL_DIR/metrics.json`` reach the runner.

Limits: a timeout stops the runtime client (SIGTERM, then SIGKILL); docker/podman proxy SIGTERM
to the container, but after a SIGKILL of the client a container may outlive its trial.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.errors import EnvironmentBuildError, InfrastructureError, UsageError
from sleuth.model import TrialSpec

if TYPE_CHECKING:
    from sleuth.environments.pyxis import PyxisEnvironment

__all__ = [
    "OUTPUT_MOUNT",
    "ContainerEnvironment",
    "Mount",
    "PreparedContainer",
    "Runtime",
    "container_environment",
    "forwarded_env",
    "image_exists",
    "make_output_dir",
    "probe_snapshot",
    "resolve_runtime",
]

log = logging.getLogger(__name__)

OUTPUT_MOUNT = "/sleuth-output"
PROBE_MOUNT = "/sleuth-probe"
#: set by the runner after wrap, so forwarded by name whatever the spec holds
_RUNNER_VARS = ("SLEUTH_TRIAL_ID", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
_INSPECT_TIMEOUT_S = 120.0


class Runtime(Enum):
    """A container runtime and the executable that drives it."""

    DOCKER = "docker"
    PODMAN = "podman"
    PYXIS = "pyxis"

    @property
    def executable(self) -> str:
        """The program on PATH: ``docker``, ``podman`` or ``srun``."""
        return "srun" if self is Runtime.PYXIS else self.value

    @classmethod
    def parse(cls, name: str | Runtime) -> Runtime:
        """``Runtime`` from its name; ``UsageError`` naming the choices otherwise."""
        if isinstance(name, Runtime):
            return name
        try:
            return cls(name.strip().lower())
        except ValueError:
            choices = ", ".join(r.value for r in cls)
            raise UsageError(f"unknown container runtime {name!r}", hint=f"use one of: {choices}") from None


@dataclass(frozen=True, slots=True)
class Mount:
    """A host path ``src`` bound at ``dst`` inside the container."""

    src: str
    dst: str
    readonly: bool = False

    @classmethod
    def parse(cls, text: str) -> Mount:
        """``SRC:DST`` or ``SRC:DST:ro`` (``rw`` accepted); ``src`` made absolute."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1] or parts[2:] not in ([], ["ro"], ["rw"]):
            raise UsageError(f"--mount {text!r}: expected SRC:DST or SRC:DST:ro")
        if not parts[1].startswith("/"):
            raise UsageError(f"--mount {text!r}: the container path {parts[1]!r} must be absolute")
        if "," in text:
            raise UsageError(f"--mount {text!r}: paths with commas cannot be mounted")
        return cls(os.path.abspath(os.path.expanduser(parts[0])), parts[1], parts[2:] == ["ro"])

    def spec(self) -> str:
        """The ``SRC:DST[:ro]`` form that :meth:`parse` reads."""
        return f"{self.src}:{self.dst}{':ro' if self.readonly else ''}"


def resolve_runtime(name: str | Runtime) -> str:
    """The absolute path of the runtime's executable; ``EnvironmentBuildError`` when not on PATH."""
    runtime = Runtime.parse(name)
    found = shutil.which(runtime.executable)
    if found is None:
        raise EnvironmentBuildError(
            f"container runtime {runtime.value}: {runtime.executable} not found on PATH",
            hint=f"install {runtime.executable} or choose another --runtime",
        )
    return found


def _inspect(argv: list[str]) -> bool:
    from sleuth.runner import run_tool

    res = run_tool(argv, timeout_s=_INSPECT_TIMEOUT_S)
    if res.timed_out:
        raise InfrastructureError(f"{' '.join(argv)} timed out", hint="is the registry reachable?")
    if not res.ok:
        log.debug("%s: %s", " ".join(argv), res.brief())
    return res.ok


def image_exists(runtime: str | Runtime, image: str) -> bool:
    """True when ``image`` exists locally or in its registry; never pulls it.

    docker/podman: a local image, else ``manifest inspect``.  pyxis: a squashfs file path, else
    ``skopeo inspect``/``docker``/``podman`` when one is on PATH, else assumed (with a warning).
    """
    rt = Runtime.parse(runtime)
    if rt is Runtime.PYXIS:
        if image.startswith(("/", "./")) or image.endswith(".sqsh"):
            return os.path.isfile(image)
        ref = image
        if "#" in ref:  # pyxis syntax [USER@][REGISTRY#]IMAGE[:TAG]
            head, tail = ref.split("#", 1)
            ref = f"{head.rsplit('@', 1)[-1]}/{tail}"
        if shutil.which("skopeo"):
            return _inspect(["skopeo", "inspect", "--raw", f"docker://{ref}"])
        for tool in ("docker", "podman"):
            if shutil.which(tool):
                return _inspect([tool, "manifest", "inspect", ref])
        log.warning("cannot check that %s exists (no skopeo, docker or podman); assuming it does", image)
        return True
    exe = resolve_runtime(rt)
    local = [exe, "image", "inspect", image] if rt is Runtime.DOCKER else [exe, "image", "exists", image]
    return _inspect(local) or _inspect([exe, "manifest", "inspect", image])


def forwarded_env(
    spec_env: Mapping[str, str], values: Mapping[str, str]
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The client environment (``spec_env`` with ``values`` laid over) and the names to pass inside."""
    env = {**spec_env, **values}
    names = dict.fromkeys(
        [
            *values,
            *(k for k in spec_env if k.startswith("SLEUTH_") and k != "SLEUTH_TRIAL_DIR"),
            *_RUNNER_VARS,
        ]
    )
    return env, tuple(names)


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
) -> ContainerEnvironment | PyxisEnvironment:
    """docker/podman: a ``ContainerEnvironment``; pyxis: a ``PyxisEnvironment``; same common options."""
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
    return ContainerEnvironment(runtime=rt, **common)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerEnvironment:
    """An image run by docker or podman; see the module docstring for every field's effect."""

    image: str
    runtime: Runtime = Runtime.DOCKER
    mounts: tuple[Mount, ...] = ()
    forward_env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    output_dir: str | None = None
    gpus: bool = False
    rocm: bool = False
    shm_size: str | None = None
    extra_args: tuple[str, ...] = ()
    check_image: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        rt = Runtime.parse(self.runtime)
        if rt is Runtime.PYXIS:
            raise UsageError("pyxis images run through sleuth.environments.pyxis.PyxisEnvironment")
        if not self.image.strip():
            raise UsageError("container environment: empty image name")
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
            "extra_args": list(self.extra_args),
        }

    def prepare(self) -> PreparedContainer:
        """Resolve the runtime (and, with ``check_image``, that the image exists); pulls nothing."""
        exe = resolve_runtime(self.runtime)
        if self.check_image and not image_exists(self.runtime, self.image):
            raise EnvironmentBuildError(f"image {self.image} not found by {self.runtime.value}")
        return PreparedContainer(env=self, executable=exe)


@dataclass(frozen=True, slots=True)
class PreparedContainer:
    """A container environment with its runtime resolved."""

    env: ContainerEnvironment
    executable: str

    def _runtime_args(self, mounts: list[Mount], names: tuple[str, ...], out: str | None) -> list[str]:
        e = self.env
        args = [self.executable, "run", "--rm"]
        for m in mounts:
            args += ["--mount", f"type=bind,src={m.src},dst={m.dst}{',readonly' if m.readonly else ''}"]
        for name in names:
            args += ["-e", name]
        if out is not None:
            args += ["-e", f"SLEUTH_OUTPUT_DIR={OUTPUT_MOUNT}", "-e", f"SLEUTH_TRIAL_DIR={OUTPUT_MOUNT}"]
        if e.workdir:
            args += ["-w", e.workdir]
        if e.gpus:
            args += ["--gpus", "all"] if e.runtime is Runtime.DOCKER else ["--device", "nvidia.com/gpu=all"]
        if e.rocm:
            args += ["--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", "video"]
        if e.shm_size:
            args += ["--shm-size", e.shm_size]
        return [*args, *e.extra_args, e.image]

    def wrap(
        self,
        spec: TrialSpec,
        *,
        output_dir: str | Path | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> TrialSpec:
        """``spec`` run inside the image: argv prefixed by ``RUNTIME run --rm ... IMAGE``."""
        env, names = forwarded_env(spec.env, {**self.env.forward_env, **(extra_env or {})})
        out = make_output_dir(output_dir if output_dir is not None else self.env.output_dir)
        mounts = [*self.env.mounts, *([Mount(out, OUTPUT_MOUNT)] if out else [])]
        argv = (*self._runtime_args(mounts, names, out), *spec.argv)
        return spec.with_argv(argv).with_env(env)

    def snapshot(self) -> dict[str, Any]:
        """The image's python/packages/env seen by ``python3`` inside it, or an honest placeholder."""
        probe = Mount(_probe_dir(), PROBE_MOUNT, readonly=True)
        inner = PreparedContainer(
            env=replace(self.env, mounts=(*self.env.mounts, probe)), executable=self.executable
        )
        prefix = inner.wrap(TrialSpec(argv=("python3",), env=dict(os.environ))).argv
        return probe_snapshot(prefix, self.env.describe())


def _probe_dir() -> str:
    from sleuth import _probe

    return str(Path(_probe.__file__).resolve().parent)


def probe_snapshot(prefix: Sequence[str], description: dict[str, Any]) -> dict[str, Any]:
    """Run the probe mounted at ``/sleuth-probe`` through ``prefix`` (``... IMAGE python3``).

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
        snap.update(snapshot.probe_via(prefix, probe_path=f"{PROBE_MOUNT}/_probe.py"))
    except InfrastructureError as exc:
        snap["probe_error"] = str(exc)
    return snap
