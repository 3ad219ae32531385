"""Turn a cell's :class:`EnvPlan` into a core ``Environment``, prepare it, and wrap trials in it.

Container images (docker, podman, pyxis) are checked to exist (never pulled) when prepared.  They
get the workload's working directory mounted at the same path and used as the working directory
inside, so ``python train.py`` finds its script; only the cell's own variables (mitigations,
``extra_env``, ``workload.env``) and ``SLEUTH_*`` enter the container.  A trial's directory is the
container's output dir, so ``$SLEUTH_TRIAL_DIR/metrics.json`` comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.errors import SleuthError
from sleuth.matrix.plan import EnvPlan
from sleuth.model import TrialSpec
from sleuth.registry import Registry

__all__ = ["ReadyEnvironment", "build_environment", "prepare_environment", "wrap"]

log = logging.getLogger(__name__)


def build_environment(env: EnvPlan, registry: Registry, *, cwd: str) -> Any:
    """The core environment object for ``env`` (nothing is built yet)."""
    spec = env.spec
    if env.kind == "host":
        from sleuth.environments.host import HostEnvironment

        return HostEnvironment()
    if env.kind == "venv":
        from sleuth.environments.venv import VenvEnvironment

        return VenvEnvironment(pins=tuple(spec["venv"]), name=env.key)
    if env.kind in ("docker", "podman", "pyxis"):
        from sleuth.environments.container import Mount, container_environment

        mount = (Mount(cwd, cwd),)
        image = str(spec[env.kind])
        return container_environment(env.kind, image, mounts=mount, workdir=cwd, check_image=True)
    definition = registry.environments[str(spec["plugin"])]
    if definition.factory is None:
        raise SleuthError(f"environment {env.key!r} has no factory")
    return definition.factory()


@dataclass(frozen=True, slots=True)
class ReadyEnvironment:
    """The outcome of preparing one environment: the prepared object, or why it failed."""

    plan: EnvPlan
    prepared: Any
    error: str | None
    describe: Mapping[str, Any]


def prepare_environment(env: EnvPlan, registry: Registry, *, cwd: str) -> ReadyEnvironment:
    """Build and prepare ``env``; a failure becomes ``error`` (its cells become error rows)."""
    try:
        obj = build_environment(env, registry, cwd=cwd)
        describe = dict(obj.describe()) if hasattr(obj, "describe") else {"kind": env.kind}
        return ReadyEnvironment(plan=env, prepared=obj.prepare(), error=None, describe=describe)
    except SleuthError as exc:
        return ReadyEnvironment(plan=env, prepared=None, error=str(exc), describe=dict(env.spec))
    except Exception as exc:  # a plugin's environment must not take the other cells down
        log.exception("environment %s failed to prepare", env.key)
        msg = f"{type(exc).__name__}: {exc}"
        return ReadyEnvironment(plan=env, prepared=None, error=msg, describe=dict(env.spec))


def snapshot_of(ready: ReadyEnvironment, host: Mapping[str, Any]) -> dict[str, Any]:
    """The environment's own snapshot, or an honest placeholder saying why there is none."""
    if ready.error is not None:
        return {
            "placeholder": True,
            "reason": f"environment failed to prepare: {ready.error}",
            "spec": ready.describe,
        }
    if ready.plan.kind == "host":
        return dict(host)
    try:
        snap = ready.prepared.snapshot()
    except Exception as exc:  # a snapshot is evidence, never a reason to stop the matrix
        return {
            "placeholder": True,
            "reason": f"snapshot failed: {type(exc).__name__}: {exc}",
            "spec": ready.describe,
        }
    if not isinstance(snap, dict):
        return {"placeholder": True, "reason": "the environment gave no snapshot", "spec": ready.describe}
    return snap


def wrap(
    ready: ReadyEnvironment, spec: TrialSpec, *, trial_dir: Path, cell_env: Mapping[str, str]
) -> TrialSpec:
    """``spec`` run inside the prepared environment."""
    from sleuth.environments.container import PreparedContainer
    from sleuth.environments.pyxis import PreparedPyxis

    prepared = ready.prepared
    if isinstance(prepared, PreparedContainer | PreparedPyxis):
        return prepared.wrap(spec, output_dir=trial_dir, extra_env=cell_env)
    wrapped: TrialSpec = prepared.wrap(spec)
    return wrapped
