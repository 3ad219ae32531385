"""Loading a reduction: a spec (or a wrapped workload) checked and resolved, nothing written.

:func:`load` checks everything a run needs (the spec's shape and files, its mitigations and
environment from the registry, the oracle's callable, the ``--scrub`` patterns, ``--name``,
``--kill-grace``) and gathers the secrets the run dir must never hold; ``--dry-run`` stops at
:func:`plan_doc`.  Running what was loaded is :mod:`sleuth.reduce.session`'s.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sleuth.errors import ConfigError, UsageError
from sleuth.model import Stream
from sleuth.oracle import OracleConfig
from sleuth.reduce.plan import Plan, materialize
from sleuth.reduce.resolve import resolve
from sleuth.reduce.scrub import Scrubber, compile_patterns
from sleuth.reduce.spec import ReduceSpec, load_spec
from sleuth.secrets import Secrets

__all__ = ["Loaded", "load", "plan_doc"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """A spec checked and resolved, ready to run."""

    plan: Plan
    #: the spec file, or None for a wrapped workload (``--workload``)
    spec_path: Path | None
    scrubber: Scrubber
    environment: Any
    oracle_config: OracleConfig
    #: a wrapped workload's reference and predicate
    workload: str | None = None
    custom: Any = None


def _mitigation_env(spec: ReduceSpec, source: str) -> dict[str, str]:
    from sleuth.registry import load_registry

    reg = load_registry()
    env: dict[str, str] = {}
    pieces: dict[str, list[str]] = {}
    for i, name in enumerate(spec.mitigations):
        m = reg.mitigations.get(name)
        if m is None:
            raise ConfigError(
                f"{source}: mitigations[{i}]: unknown mitigation {name!r} (see sleuth mitigations)"
            )
        env.update(m.env)
        for var, piece in m.append.items():
            pieces.setdefault(var, []).append(piece)
    for var, extra in pieces.items():
        below = spec.workload.env.get(var, os.environ.get(var, ""))
        env[var] = " ".join([below, *extra]) if below else " ".join(extra)
    return env


def _environment(spec: ReduceSpec, source: str, cwd: Path, output: Path) -> Any:
    """The core environment object for ``spec.environment`` (nothing built yet)."""
    from sleuth.registry import InlineEnvironment, load_registry

    value = spec.environment
    if isinstance(value, str):
        reg = load_registry()
        d = reg.environments.get(value)
        if d is None:
            raise ConfigError(
                f"{source}: environment: unknown environment {value!r} (see sleuth environments)"
            )
        if d.kind == "host":
            from sleuth.environments.host import HostEnvironment

            return HostEnvironment()
        if d.kind == "plugin" and d.factory is not None:
            return d.factory()
        if d.spec is None:
            raise ConfigError(f"{source}: environment: {value!r} needs a value, e.g. {{{value}: ...}}")
        value = d.spec
    assert isinstance(value, InlineEnvironment)
    if value.kind == "venv":
        from sleuth.environments.venv import VenvEnvironment

        return VenvEnvironment(pins=tuple(value.value))
    from sleuth.environments.container import Mount, container_environment

    out = str(output.resolve())
    mounts = (Mount(str(cwd), str(cwd)), Mount(out, out))
    return container_environment(
        value.kind, str(value.value), mounts=mounts, workdir=str(cwd), check_image=True
    )


def _oracle_config(spec: ReduceSpec, base_dir: Path) -> OracleConfig:
    o = spec.oracle
    ref = o.callable
    if ref is not None:
        mod, _, func = ref.rpartition(":")
        if mod.endswith(".py") and not Path(mod).is_absolute():
            ref = f"{(base_dir / mod).resolve()}:{func}"
    return OracleConfig(
        skip_exit=tuple(o.skip_exit),
        fail_regex=re.compile(o.pattern, re.MULTILINE) if o.pattern else None,
        stream=Stream(o.stream),
        callable_ref=ref,
    )


def load(spec_path: Path | None, *, output: Path, name: str | None = None, scrub: tuple[str, ...] = (),
         workload: str | None = None, kill_grace: float | None = None,
         resumed: bool = False) -> Loaded:  # fmt: skip
    """Check the spec (or the wrapped workload), its files, names and patterns; nothing is written.

    ``kill_grace`` (``--kill-grace``, checked) overrides the spec's ``workload.kill_grace``.
    ``resumed``: the spec of a run being resumed (its hash is checked after): its timeout may be what
    an older sleuth took (:func:`sleuth.reduce.spec.parse_spec`'s ``recorded``)."""
    patterns = compile_patterns(scrub)
    custom = None
    if workload is not None:
        from sleuth.reduce.spec import parse_spec
        from sleuth.reduce.workloads import load_workload

        wrapped = load_workload(workload)
        source, text, base_dir = f"workload {workload}", wrapped.text, Path.cwd()
        spec, custom = parse_spec(wrapped.data, source, recorded=resumed), wrapped.predicate
    elif spec_path is not None:
        spec, text = load_spec(spec_path, recorded=resumed)
        source = str(spec_path)
        base_dir = spec_path.resolve().parent
    else:
        raise UsageError(
            "give --spec FILE or --workload NAME", hint="see `sleuth schema reduce` for the spec"
        )
    if name is not None and not name.strip():
        raise UsageError("--name '': give a run name")
    plan = resolve(
        spec, source, text, base_dir=base_dir, mitigation_env=_mitigation_env(spec, source), name=name
    )
    if kill_grace is not None:
        over = spec.workload.model_copy(update={"kill_grace": kill_grace})
        plan = replace(plan, spec=spec.model_copy(update={"workload": over}))
    env = _environment(spec, source, plan.cwd, output)
    oc = _oracle_config(spec, base_dir)
    if custom is not None:
        oc = OracleConfig(skip_exit=oc.skip_exit, fail_regex=oc.fail_regex, stream=oc.stream)
    elif oc.callable_ref:
        from sleuth.oracle import load_callable

        try:  # named by its key path: the message named --oracle, a flag reduce does not have
            load_callable(oc.callable_ref, source=f"{source}: oracle.callable")
        except UsageError as exc:
            raise ConfigError(exc.message, hint=exc.hint) from None
    secrets = Secrets.of(spec.workload.env).merged(
        Secrets.of_argv(spec.workload.command, "workload.command[{}]".format)
    )
    for i, axis in enumerate(spec.axes):  # an arg_set's values join the command line
        if axis.kind == "arg_set":
            secrets = secrets.merged(Secrets.of_argv(axis.values, f"axes[{i}].values[{{}}]".format))
    return Loaded(
        plan=plan,
        spec_path=spec_path.resolve() if spec_path else None,
        scrubber=Scrubber(secrets, patterns),
        environment=env,
        oracle_config=oc,
        workload=workload,
        custom=custom,
    )


def plan_doc(loaded: Loaded, output: Path) -> dict[str, Any]:
    """What a run would do (``--dry-run``), scrubbed."""
    plan = loaded.plan
    cand = materialize(plan, plan.initial_point())
    doc: dict[str, Any] = loaded.scrubber.obj(
        {
            "spec": str(loaded.spec_path) if loaded.spec_path else f"workload {loaded.workload}",
            "name": plan.name,
            "cwd": str(plan.cwd),
            "argv": list(cand.argv),
            "env": dict(cand.env),
            "oracle": plan.spec.oracle.model_dump(mode="json"),
            "budget": plan.spec.budget.model_dump(mode="json"),
            "axes": [
                {
                    "name": a.name,
                    "kind": a.kind,
                    "initial": a.render(a.search().initial),
                    "items": len(a.items) if a.items else None,
                    "pinned": a.search().pinned,
                }
                for a in plan.axes
            ],
            "environment": loaded.environment.describe(),
            "run_dir_parent": str(output / "reduce" / plan.name),
        }
    )
    return doc
