"""Pyxis environments: ``srun --container-image=IMG ...`` on a Slurm cluster with the pyxis plugin.

API (stable): ``PyxisEnvironment(image=..., mounts=(Mount.parse("SRC:DST"),), forward_env={...},
workdir=None, output_dir=None, writable=False, mount_home=False, srun_args=(), check_image=False)``;
``prepare()`` resolves ``srun`` on PATH; ``PreparedPyxis.wrap(spec, *, output_dir=None,
extra_env=None)`` gives::

    srun [SRUN_ARGS...] --container-image=IMG [--container-mounts=SRC:DST[:ro],...]
         --no-container-mount-home [--container-writable] [--container-workdir=DIR]
         [--export=ALL,SLEUTH_OUTPUT_DIR=/sleuth-output,SLEUTH_TRIAL_DIR=/sleuth-output] ARGV...

``image`` is pyxis syntax (``[USER@][REGISTRY#]IMAGE[:TAG]`` or a squashfs path).  Unlike
docker/podman, Slurm exports the whole client environment to the task by default and pyxis keeps
it inside the container, so every variable of ``spec.env`` reaches the workload; ``forward_env``
and ``extra_env`` values are laid over it.  The output dir is mounted at ``/sleuth-output`` and
``SLEUTH_OUTPUT_DIR``/``SLEUTH_TRIAL_DIR`` point there (``--export=ALL,...``), as for docker.
GPUs and nodes are srun's business: pass ``srun_args=("--gpus=1",)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sleuth.environments.mounts import (
    OUTPUT_MOUNT,
    PROBE_MOUNT,
    Mount,
    _probe_dir,
    make_output_dir,
    probe_snapshot,
)
from sleuth.environments.runtimes import Runtime, image_exists, resolve_runtime
from sleuth.errors import EnvironmentBuildError, UsageError
from sleuth.model import TrialSpec

__all__ = ["PreparedPyxis", "PyxisEnvironment"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PyxisEnvironment:
    """An image run by ``srun --container-image`` (Slurm + pyxis)."""

    image: str
    mounts: tuple[Mount, ...] = ()
    forward_env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    output_dir: str | None = None
    writable: bool = False
    mount_home: bool = False
    srun_args: tuple[str, ...] = ()
    check_image: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        if not self.image.strip():
            raise UsageError("pyxis environment: empty image name")
        object.__setattr__(self, "name", self.name or f"pyxis:{self.image}")

    def describe(self) -> dict[str, Any]:
        """JSON-able form, enough to rebuild it."""
        return {
            "kind": "pyxis",
            "image": self.image,
            "mounts": [m.spec() for m in self.mounts],
            "forward_env": dict(self.forward_env),
            "workdir": self.workdir,
            "writable": self.writable,
            "mount_home": self.mount_home,
            "srun_args": list(self.srun_args),
        }

    def prepare(self) -> PreparedPyxis:
        """Resolve ``srun`` (and, with ``check_image``, that the image exists); imports nothing."""
        exe = resolve_runtime(Runtime.PYXIS)
        if self.check_image and not image_exists(Runtime.PYXIS, self.image):
            raise EnvironmentBuildError(f"image {self.image} not found (pyxis)")
        return PreparedPyxis(env=self, executable=exe)


@dataclass(frozen=True, slots=True)
class PreparedPyxis:
    """A pyxis environment with ``srun`` resolved."""

    env: PyxisEnvironment
    executable: str

    def wrap(
        self,
        spec: TrialSpec,
        *,
        output_dir: str | Path | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> TrialSpec:
        """``spec`` run inside the image: argv prefixed by ``srun --container-image=IMG ...``."""
        e = self.env
        values = {**e.forward_env, **(extra_env or {})}
        out = make_output_dir(output_dir if output_dir is not None else e.output_dir)
        mounts = [*e.mounts, *([Mount(out, OUTPUT_MOUNT)] if out else [])]
        args = [self.executable, *e.srun_args, f"--container-image={e.image}"]
        if mounts:
            spec_mounts = ",".join(m.spec() for m in mounts)
            args.append(f"--container-mounts={spec_mounts}")
        args.append("--container-mount-home" if e.mount_home else "--no-container-mount-home")
        if e.writable:
            args.append("--container-writable")
        if e.workdir:
            args.append(f"--container-workdir={e.workdir}")
        if out is not None:
            # the runner sets SLEUTH_TRIAL_DIR to the host path after wrap; srun's --export wins
            args.append(f"--export=ALL,SLEUTH_OUTPUT_DIR={OUTPUT_MOUNT},SLEUTH_TRIAL_DIR={OUTPUT_MOUNT}")
        return spec.with_argv((*args, *spec.argv)).with_env(values)

    def snapshot(self) -> dict[str, Any]:
        """The image's python/packages/env seen by ``python3`` inside it, or an honest placeholder."""
        probe = Mount(_probe_dir(), PROBE_MOUNT, readonly=True)
        inner = PreparedPyxis(
            env=replace(self.env, mounts=(*self.env.mounts, probe)), executable=self.executable
        )
        prefix = inner.wrap(TrialSpec(argv=("python3",), env=dict(os.environ))).argv
        return probe_snapshot(prefix, self.env.describe())
