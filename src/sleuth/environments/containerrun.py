"""The per-run part of a docker/podman trial: :class:`ContainerRun`, the hook the runner binds.

:meth:`ContainerRun.bind` adds, right after ``RUNTIME run --rm`` (see :mod:`sleuth.environments.container`)::

    --name sleuth-<run>-<trial>-<rand> --label sleuth.run=<run dir> --label sleuth.trial=<trial dir>
    --mount type=bind,src=<output dir or trial dir>,dst=/sleuth-output -e SLEUTH_TRIAL_ID
    -e SLEUTH_OUTPUT_DIR=/sleuth-output -e SLEUTH_TRIAL_DIR=/sleuth-output [GPU flags]

* **GPUs**: without a device from the runner, every NVIDIA GPU (``--gpus all``, podman CDI
  ``--device nvidia.com/gpu=all``) and the runner's ``CUDA_VISIBLE_DEVICES``/``HIP_VISIBLE_DEVICES``
  by name; with device N, only that one (``--gpus device=N``, ``--device nvidia.com/gpu=N``) and no
  ``CUDA_VISIBLE_DEVICES`` (inside, it is the only GPU); ``amd`` adds ``/dev/kfd``, ``/dev/dri``
  and ``--group-add video`` and keeps ``HIP_VISIBLE_DEVICES``;
* **a container never outlives its trial**: its name is unique per run (the run dir, the trial dir,
  a random suffix: no cidfile); the plan's cleanup is ``RUNTIME rm -f -t 0 NAME`` (docker:
  ``rm -f NAME``), and its environment for a resume after a kill -9 holds only the variables that
  say where the store is (no secrets);
* :meth:`ContainerRun.own_error`: a client exit of 125/126 (127 when the runtime could not start
  the command) whose last stderr line is the runtime's own error is an ERROR with that line.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sleuth.environments.mounts import OUTPUT_MOUNT, Mount
from sleuth.environments.runtimes import Runtime
from sleuth.model import RunPlan, TrialSpec

__all__ = ["ContainerRun", "container_name"]

log = logging.getLogger(__name__)

#: set by the runner after wrap, so forwarded by name at bind time
_DEVICE_VARS = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
#: what a cleanup after a kill -9 needs of the client's environment (where the store is); no secrets
_STORE_VARS = (
    "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF", "CONTAINER_HOST",
    "CONTAINER_CONNECTION", "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "HOME",
)  # fmt: skip


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
