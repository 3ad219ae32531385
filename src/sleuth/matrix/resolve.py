"""Resolve a validated recipe against the registry into a :class:`~sleuth.matrix.plan.MatrixPlan`:
cells with their final environment variables, their environment, their trial counts, the baseline.

Everything a dry run checks happens here, so ``--dry-run`` and a real run fail the same way.
Variable precedence, lowest first: the inherited environment < ``workload.env`` < mitigations
(``append`` pieces join the value below them with a space) < recipe ``extra_env`` < cell ``extra_env``.

Baselines: the *reference* baseline is chosen by :func:`_baseline`; its environment is the
reference environment.  Every other environment gets a baseline of its own: the first cell there
with the reference baseline's mitigations and ``extra_env`` (normally ``none @ env``).  When an
environment has none, one is added (named ``<baseline>.<env>``) and listed in ``MatrixPlan.added``,
so each cell is compared with the baseline of its own environment and each environment's baseline
with the reference baseline (the environment's own effect).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from sleuth.errors import ConfigError
from sleuth.matrix.lock import apply_lock
from sleuth.matrix.plan import (
    CellPlan,
    EnvPlan,
    MatrixPlan,
    check_names,
    fresh_name,
    name_problem,
    shown_name,
    workload_name,
)
from sleuth.matrix.recipe import CellSpec, Recipe
from sleuth.matrix.workload import Workload, resolve_workload
from sleuth.model import NAME_HINT
from sleuth.registry import KINDS, InlineEnvironment, Registry

__all__ = ["resolve"]


def _env_plan(cell: CellSpec, i: int, reg: Registry, source: str) -> EnvPlan:
    where = f"{source}: cells[{i}].environment"
    spec = cell.environment
    if isinstance(spec, str):
        d = reg.environments.get(spec)
        if d is None:
            raise ConfigError(f"{where}: unknown environment {spec!r} (see sleuth environments)")
        if d.kind == "host":
            return EnvPlan(key=d.name, kind="host", spec={"host": True}, registered=d.name)
        if d.kind == "plugin":
            return EnvPlan(key=d.name, kind="plugin", spec={"plugin": d.name}, registered=d.name)
        if d.spec is None:
            raise ConfigError(
                f"{where}: environment {spec!r} needs a value: write {{{spec}: {_VALUE[d.kind]}}}"
            )
        return EnvPlan(key=d.name, kind=d.spec.kind, spec=d.spec.plain(), registered=d.name)
    return _inline_plan(spec, reg, where)


_VALUE = {"venv": "[PIN, ...]", **{k: "IMAGE" for k in KINDS if k != "venv"}}


def _inline_plan(spec: InlineEnvironment, reg: Registry, where: str) -> EnvPlan:
    """A spelled-out environment, keyed ``<kind>-<hash of the spec>``: a namespace of its own, so
    a registered environment of that name is an error, never the same environment."""
    blob = json.dumps(spec.plain(), sort_keys=True)
    digest = hashlib.blake2b(blob.encode(), digest_size=4).hexdigest()
    key = f"{spec.kind}-{digest}"
    taken = reg.environments.get(key)
    if taken is not None:
        raise ConfigError(
            f"{where}: the inline environment {spec.plain()} gets the generated key {key!r}, which is "
            f"also the name of the registered environment {key!r} ({taken.source})",
            hint="rename the registered environment, or use it by name",
        )
    return EnvPlan(key=key, kind=spec.kind, spec=spec.plain(), inline=True)


def _stack(cell: CellSpec, i: int, reg: Registry, source: str, base: Mapping[str, str]) -> dict[str, str]:
    where = f"{source}: cells[{i}].mitigations"
    setters: dict[str, tuple[str, str]] = {}
    pieces: dict[str, list[str]] = {}
    seen: set[str] = set()
    for name in cell.mitigations:
        m = reg.mitigations.get(name)
        if m is None:
            raise ConfigError(f"{where}: unknown mitigation {name!r} (see sleuth mitigations)")
        if name in seen:
            raise ConfigError(f"{where}: mitigation {name!r} is listed twice")
        seen.add(name)
        for var, value in m.env.items():
            prev = setters.get(var)
            if prev is not None and prev[1] != value:
                raise ConfigError(
                    f"{where}: {prev[0]!r} and {name!r} set {var} to different values "
                    f"({prev[1]!r} vs {value!r})",
                    hint="stack only mitigations that agree, or make two cells",
                )
            setters[var] = (name, value)
        for var, piece in m.append.items():
            pieces.setdefault(var, []).append(piece)
    env = {var: value for var, (_, value) in setters.items()}
    for var, extra in pieces.items():
        if var in env:
            raise ConfigError(f"{where}: {var} is both set by {setters[var][0]!r} and appended to")
        below = base.get(var, "")
        env[var] = " ".join([below, *extra]) if below else " ".join(extra)
    return env


def _baseline(recipe: Recipe, cells: tuple[CellPlan, ...], source: str) -> tuple[str, str]:
    names = [c.name for c in cells]
    wanted = recipe.confound.baseline_cell
    if wanted is not None:
        if wanted not in names:
            raise ConfigError(
                f"{source}: confound.baseline_cell: no cell named {wanted!r} (cells: {', '.join(names)})"
            )
        return wanted, "confound.baseline_cell"
    for c in cells:
        if c.name == "baseline" or c.name.startswith("baseline-"):
            return c.name, "the first cell named baseline or baseline-*"
    for c in cells:
        if all(m == "none" for m in c.mitigations):
            return c.name, "the first cell with mitigations [none]"
    if len(cells) == 1:
        return cells[0].name, "the only cell"
    raise ConfigError(
        f"{source}: confound.baseline_cell: cannot tell which cell is the baseline",
        hint="set confound.baseline_cell, name a cell baseline-*, or add a cell with mitigations [none]",
    )


def _cell_plan(
    spec: CellSpec, i: int, work: Workload, registry: Registry, *, source: str, base: Mapping[str, str]
) -> CellPlan:
    recipe = work.recipe
    env = _stack(spec, i, registry, source, base)
    env.update(recipe.extra_env)
    env.update(spec.extra_env)
    environment = _env_plan(spec, i, registry, source)
    steps = work.steps_of(spec.steps)
    where = f"cells[{i}] ({spec.name})"
    return CellPlan(
        name=spec.name,
        mitigations=tuple(spec.mitigations),
        env=env,
        environment=environment,
        trials=spec.trials or recipe.trials,
        steps=steps,
        argv=work.argv(steps, environment.kind, where),
        launch_env=work.launch_env(steps),
    )


def _same_treatment(a: CellSpec, b: CellSpec, steps: int | None) -> bool:
    """Same mitigations (``none`` aside, in any order), cell variables and steps."""
    return (
        sorted(m for m in a.mitigations if m != "none") == sorted(m for m in b.mitigations if m != "none")
        and dict(a.extra_env) == dict(b.extra_env)
        and (a.steps or steps) == (b.steps or steps)
    )


def _env_baselines(
    recipe: Recipe, cells: list[CellPlan], reference: str
) -> tuple[Recipe, dict[str, str], tuple[str, ...]]:
    """Find each environment's baseline; add ``<reference>.<env>`` cells where one is missing.

    Returns the recipe (with the added cells, each placed before the first cell of its
    environment), environment key -> baseline cell, and the names of the added cells.
    """
    specs = list(recipe.cells)
    ref_i = next(i for i, c in enumerate(cells) if c.name == reference)
    ref_spec, ref_env = specs[ref_i], cells[ref_i].environment.key
    baselines: dict[str, str] = {ref_env: reference}
    first_of: dict[str, int] = {}
    for i, (spec, plan) in enumerate(zip(specs, cells, strict=True)):
        key = plan.environment.key
        first_of.setdefault(key, i)
        if key not in baselines and _same_treatment(spec, ref_spec, recipe.steps):
            baselines[key] = spec.name
    taken = {c.name for c in cells}
    added: list[tuple[int, CellSpec]] = []
    for key, i in first_of.items():
        if key in baselines:
            continue
        name = fresh_name([f"{reference}.{key}", f"baseline.{key}"], taken)
        taken.add(name)
        baselines[key] = name
        added.append(
            (
                i,
                ref_spec.model_copy(
                    update={
                        "name": name,
                        "environment": specs[i].environment,
                        "trials": cells[ref_i].trials,
                    }
                ),
            )
        )
    if not added:
        return recipe, baselines, ()
    for i, spec in sorted(added, key=lambda t: t[0], reverse=True):
        specs.insert(i, spec)
    return recipe.model_copy(update={"cells": specs}), baselines, tuple(s.name for _, s in added)


def _cwd(recipe: Recipe, base_dir: Path, source: str) -> Path:
    cwd = Path(recipe.workload.cwd) if recipe.workload.cwd else base_dir
    cwd = (base_dir / cwd).resolve() if not cwd.is_absolute() else cwd
    if not cwd.is_dir():
        why = "is not a directory" if cwd.exists() else "no such directory"
        raise ConfigError(
            f"{source}: workload.cwd: {cwd}: {why}", hint="give the directory the command runs in"
        )
    return cwd


def resolve(
    recipe: Recipe,
    registry: Registry,
    source: str,
    *,
    base_dir: Path,
    environ: Mapping[str, str],
) -> MatrixPlan:
    """Check ``recipe`` against ``registry`` and build the plan; ConfigError naming the key path.

    A resolved recipe's pinned definitions (``resolved:``) are pinned in ``registry`` first.
    """
    check_names(recipe, source)
    warnings = apply_lock(recipe, registry, source)
    registry.add_mitigations(recipe.mitigations, f"recipe {source}")
    registry.add_environments(recipe.environments, f"recipe {source}")
    work = resolve_workload(recipe, source)
    recipe = work.recipe
    name = workload_name(recipe)
    problem = name_problem(name)
    if problem is not None:
        raise ConfigError(f"{source}: workload.plugin: its name {shown_name(name)} {problem}", hint=NAME_HINT)
    base = {**environ, **recipe.workload.env}

    def plans(w: Workload) -> list[CellPlan]:
        return [_cell_plan(c, i, w, registry, source=source, base=base) for i, c in enumerate(w.recipe.cells)]

    cells = plans(work)
    baseline, why = _baseline(recipe, tuple(cells), source)
    recipe, baselines, added = _env_baselines(recipe, cells, baseline)
    if added:
        work = replace(work, recipe=recipe)
        cells = plans(work)
    cwd = _cwd(recipe, base_dir, source)
    seed = recipe.seed if recipe.seed is not None else random.SystemRandom().randrange(2**31)
    used = {m for c in cells for m in c.mitigations}
    ref = next(c for c in cells if c.name == baseline)
    return MatrixPlan(
        recipe=recipe.model_copy(update={"seed": seed}),
        source=source,
        cells=tuple(cells),
        baseline=baseline,
        baseline_reason=why,
        workload=name,
        argv=ref.argv,
        cwd=str(cwd),
        seed=seed,
        mitigations={m: registry.mitigations[m] for m in sorted(used)},
        baselines=baselines,
        added=added,
        plugin=(work.named.ref, work.named.origin) if work.named is not None else None,
        warnings=tuple(warnings),
    )
