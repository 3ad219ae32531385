"""Resolve a validated recipe against the registry into a plan: cells with their final environment
variables, their environment, their trial counts, the baseline, and the interleaved trial order.

Everything a dry run checks happens here, so ``--dry-run`` and a real run fail the same way.
Variable precedence, lowest first: the inherited environment < ``workload.env`` < mitigations
(``append`` pieces join the value below them with a space) < recipe ``extra_env`` < cell ``extra_env``.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.errors import ConfigError
from sleuth.matrix.recipe import CellSpec, Recipe
from sleuth.model import check_name
from sleuth.registry import KINDS, InlineEnvironment, Mitigation, Registry

__all__ = ["RESERVED", "CellPlan", "EnvPlan", "MatrixPlan", "resolve", "trial_order", "workload_name"]

#: cell names sleuth keeps for itself (names starting with ``_`` are reserved too)
RESERVED = frozenset({"all", "none"})
_NAME_HINT = "use letters, digits, '_', '.', '-', not starting with '.' or '-'"


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvPlan:
    """Where a cell runs: ``key`` names ``environments/<key>/`` in the run dir."""

    key: str
    kind: str
    #: the JSON-able spec: ``{"host": true}``, ``{"docker": "img"}``, ``{"venv": [...]}``, ``{"plugin": n}``
    spec: Mapping[str, Any]
    #: the registered name the recipe used, if any
    registered: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CellPlan:
    """One resolved row of the matrix."""

    name: str
    mitigations: tuple[str, ...]
    #: the variables this cell sets on top of the inherited environment
    env: Mapping[str, str]
    environment: EnvPlan
    trials: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MatrixPlan:
    """A recipe made concrete: what will run, in which order, against which baseline."""

    recipe: Recipe
    source: str
    cells: tuple[CellPlan, ...]
    baseline: str
    baseline_reason: str
    workload: str
    argv: tuple[str, ...]
    cwd: str
    seed: int
    mitigations: Mapping[str, Mitigation] = field(default_factory=dict)

    def cell(self, name: str) -> CellPlan:
        """The cell called ``name``."""
        return next(c for c in self.cells if c.name == name)

    @property
    def environments(self) -> dict[str, EnvPlan]:
        """The distinct environments, by key, in first-use order."""
        return {c.environment.key: c.environment for c in self.cells}


def workload_name(recipe: Recipe) -> str:
    """``workload.name``, else the script's stem (``train.py`` -> ``train``), else the program's name."""
    if recipe.workload.name:
        return recipe.workload.name
    cmd = recipe.workload.command
    argv = cmd.split() if isinstance(cmd, str) else cmd
    pick = next((a for a in argv[1:] if a.endswith((".py", ".sh"))), argv[0])
    stem = Path(pick).stem or "workload"
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip(".-")
    return cleaned or "workload"


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
    return _inline_plan(spec)


_VALUE = {"venv": "[PIN, ...]", **{k: "IMAGE" for k in KINDS if k != "venv"}}


def _inline_plan(spec: InlineEnvironment) -> EnvPlan:
    blob = json.dumps(spec.plain(), sort_keys=True)
    digest = hashlib.blake2b(blob.encode(), digest_size=4).hexdigest()
    return EnvPlan(key=f"{spec.kind}-{digest}", kind=spec.kind, spec=spec.plain())


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


def _check_names(recipe: Recipe, source: str) -> None:
    if recipe.ticket is not None and not check_name(recipe.ticket):
        raise ConfigError(f"{source}: ticket: {recipe.ticket!r} cannot name a directory", hint=_NAME_HINT)
    if recipe.workload.name is not None and not check_name(recipe.workload.name):
        raise ConfigError(
            f"{source}: workload.name: {recipe.workload.name!r} cannot name a directory", hint=_NAME_HINT
        )
    first: dict[str, int] = {}
    for i, cell in enumerate(recipe.cells):
        where = f"{source}: cells[{i}].name"
        if not check_name(cell.name):
            raise ConfigError(f"{where}: {cell.name!r} is not a valid cell name", hint=_NAME_HINT)
        if cell.name in RESERVED or cell.name.startswith("_"):
            raise ConfigError(f"{where}: {cell.name!r} is reserved", hint="pick another name")
        if cell.name in first:
            raise ConfigError(f"{where}: duplicate cell name {cell.name!r} (also cells[{first[cell.name]}])")
        first[cell.name] = i


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


def resolve(
    recipe: Recipe,
    registry: Registry,
    source: str,
    *,
    base_dir: Path,
    environ: Mapping[str, str],
) -> MatrixPlan:
    """Check ``recipe`` against ``registry`` and build the plan; ConfigError naming the key path."""
    _check_names(recipe, source)
    registry.add_mitigations(recipe.mitigations, f"recipe {source}")
    registry.add_environments(recipe.environments, f"recipe {source}")
    base = {**environ, **recipe.workload.env}
    cells: list[CellPlan] = []
    for i, spec in enumerate(recipe.cells):
        env = _stack(spec, i, registry, source, base)
        env.update(recipe.extra_env)
        env.update(spec.extra_env)
        cells.append(
            CellPlan(
                name=spec.name,
                mitigations=tuple(spec.mitigations),
                env=env,
                environment=_env_plan(spec, i, registry, source),
                trials=spec.trials or recipe.trials,
            )
        )
    baseline, why = _baseline(recipe, tuple(cells), source)
    cmd = recipe.workload.command
    argv = ("/bin/sh", "-c", cmd) if isinstance(cmd, str) else tuple(cmd)
    cwd = Path(recipe.workload.cwd) if recipe.workload.cwd else base_dir
    cwd = (base_dir / cwd).resolve() if not cwd.is_absolute() else cwd
    seed = recipe.seed if recipe.seed is not None else random.SystemRandom().randrange(2**31)
    used = {m for c in cells for m in c.mitigations}
    return MatrixPlan(
        recipe=recipe.model_copy(update={"seed": seed}),
        source=source,
        cells=tuple(cells),
        baseline=baseline,
        baseline_reason=why,
        workload=workload_name(recipe),
        argv=argv,
        cwd=str(cwd),
        seed=seed,
        mitigations={name: registry.mitigations[name] for name in sorted(used)},
    )


def trial_order(cells: tuple[CellPlan, ...], seed: int) -> list[tuple[str, int]]:
    """Seeded random round-robin: round r runs trial r of every cell that has one, in shuffled order.

    Drift (warm caches, thermals, a neighbour's job) then spreads over all cells instead of lining
    up with one of them.
    """
    rng = random.Random(seed)
    order: list[tuple[str, int]] = []
    for r in range(max(c.trials for c in cells)):
        round_cells = [c.name for c in cells if c.trials > r]
        rng.shuffle(round_cells)
        order.extend((name, r) for name in round_cells)
    return order
