"""A matrix plan: a recipe made concrete (:class:`MatrixPlan`: its cells, each with its environment
and trial count, the baselines), the names sleuth gives and checks, and the interleaved trial order.

:func:`sleuth.matrix.resolve.resolve` builds a plan from a recipe and the registry (every check a
dry run makes); the plan is frozen and small: the trials are counted, never listed.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.errors import ConfigError
from sleuth.matrix.recipe import Recipe
from sleuth.model import NAME_HINT, NAME_MAX, check_name
from sleuth.registry import Mitigation
from sleuth.secrets import Secrets

__all__ = [
    "RESERVED",
    "CellPlan",
    "EnvPlan",
    "MatrixPlan",
    "check_names",
    "fresh_name",
    "iter_trial_order",
    "name_problem",
    "short_name",
    "shown_name",
    "trial_order",
    "workload_name",
]

#: cell names sleuth keeps for itself (names starting with ``_`` are reserved too)
RESERVED = frozenset({"all", "none"})


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvPlan:
    """Where a cell runs: ``key`` names ``environments/<key>/`` in the run dir."""

    key: str
    kind: str
    #: the JSON-able spec: ``{"host": true}``, ``{"docker": "img"}``, ``{"venv": [...]}``, ``{"plugin": n}``
    spec: Mapping[str, Any]
    #: the registered name the recipe used, if any
    registered: str | None = None
    #: spelled out in the recipe: the key is generated (``docker-<hash>``)
    inline: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CellPlan:
    """One resolved row of the matrix."""

    name: str
    mitigations: tuple[str, ...]
    #: the variables this cell sets on top of the inherited environment
    env: Mapping[str, str]
    environment: EnvPlan
    trials: int
    #: the workload's steps in this cell (``{STEPS}``, ``SLEUTH_STEPS``); None when not set
    steps: int | None = None
    #: the command this cell runs (``{STEPS}`` replaced; a plugin's built for this cell)
    argv: tuple[str, ...] = ()
    #: the variables the command needs (a plugin's parameters for its launcher: off its argv)
    launch_env: Mapping[str, str] = field(default_factory=dict)


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
    #: environment key -> the name of its baseline cell (the reference environment included)
    baselines: Mapping[str, str] = field(default_factory=dict)
    #: baseline cells sleuth added because their environment had none
    added: tuple[str, ...] = ()
    #: the secret values of the recipe (by key path) and of the cells' variables: every document
    #: rendered from this plan goes through ``secrets.scrub``
    secrets: Secrets = field(default_factory=Secrets)
    #: the named workload (``plugin``) and where it was found: ``(ref, origin)``
    plugin: tuple[str, str] | None = None
    #: what the plan could not make exactly as the recipe says (pinned definitions, versions)
    warnings: tuple[str, ...] = ()

    def cell(self, name: str) -> CellPlan:
        """The cell called ``name``."""
        return next(c for c in self.cells if c.name == name)

    @property
    def environments(self) -> dict[str, EnvPlan]:
        """The distinct environments, by key, in first-use order."""
        return {c.environment.key: c.environment for c in self.cells}

    @property
    def reference_env(self) -> str:
        """The environment of the reference baseline."""
        return self.cell(self.baseline).environment.key

    def baseline_of(self, name: str) -> str:
        """The baseline cell that cell ``name`` is compared with (its environment's)."""
        return self.baselines.get(self.cell(name).environment.key, self.baseline)

    def is_baseline(self, name: str) -> bool:
        """True for the reference baseline and every environment's baseline."""
        return name in self.baselines.values() or name == self.baseline

    @property
    def trials_total(self) -> int:
        """Every planned trial (computed, never listed: a plan of a million trials stays small)."""
        return sum(c.trials for c in self.cells)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a directory, or None when it can."""
    if check_name(name):
        return None
    if len(name) > NAME_MAX:
        return f"is {len(name)} characters long (at most {NAME_MAX})"
    return "cannot name a directory"


def short_name(name: str) -> str:
    """``name`` cut to :data:`~sleuth.model.NAME_MAX` with a digest of the whole, when it is longer."""
    if len(name) <= NAME_MAX:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    return f"{name[: NAME_MAX - len(digest) - 1].rstrip('.-')}-{digest}"


def workload_name(recipe: Recipe) -> str:
    """``workload.name``, else the plugin, else the script's stem (``train.py`` -> ``train``), else
    the program's name."""
    if recipe.workload.name:
        return recipe.workload.name
    cmd = recipe.workload.command if recipe.workload.command is not None else recipe.workload.plugin or ""
    argv = cmd.split() if isinstance(cmd, str) else cmd
    pick = next((a for a in argv[1:] if a.endswith((".py", ".sh"))), argv[0] if argv else "")
    stem = Path(pick).stem or "workload"
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip(".-")
    return short_name(cleaned) if cleaned else "workload"


def shown_name(name: str) -> str:
    """``name`` quoted for a message, cut when it is long."""
    return repr(name) if len(name) <= 60 else repr(name[:40] + "...")


def check_names(recipe: Recipe, source: str) -> None:
    """The ticket, the workload's and the cells' names: each can name a directory, no cell name is
    reserved, none repeats (nor differs from another only in case); a ConfigError naming the key."""
    for key, name in (("ticket", recipe.ticket), ("workload.name", recipe.workload.name)):
        problem = None if name is None else name_problem(name)
        if name is not None and problem is not None:
            raise ConfigError(f"{source}: {key}: {shown_name(name)} {problem}", hint=NAME_HINT)
    first: dict[str, int] = {}
    for i, cell in enumerate(recipe.cells):
        where = f"{source}: cells[{i}].name"
        problem = name_problem(cell.name)
        if problem is not None:
            why = "is not a valid cell name" if len(cell.name) <= NAME_MAX else problem
            raise ConfigError(f"{where}: {shown_name(cell.name)} {why}", hint=NAME_HINT)
        if cell.name in RESERVED or cell.name.startswith("_"):
            raise ConfigError(f"{where}: {cell.name!r} is reserved", hint="pick another name")
        other = first.get(cell.name.lower())
        if other is not None and recipe.cells[other].name == cell.name:
            raise ConfigError(f"{where}: duplicate cell name {cell.name!r} (also cells[{other}])")
        if other is not None:  # cells/<name>/ would be one directory on macOS and Windows
            raise ConfigError(
                f"{where}: {cell.name!r} and {recipe.cells[other].name!r} (cells[{other}]) differ only in "
                "case; on a case-insensitive file system they would share one directory",
                hint="rename one of them",
            )
        first[cell.name.lower()] = i


def fresh_name(wanted: list[str], taken: set[str]) -> str:
    """The first of ``wanted`` (cut by :func:`short_name`) that is free, else the last one numbered from 2."""
    for name in wanted:
        name = short_name(name)
        if check_name(name) and name not in taken and name not in RESERVED:
            return name
    stem = short_name(wanted[-1])[: NAME_MAX - 6]
    return next(f"{stem}-{n}" for n in itertools.count(2) if f"{stem}-{n}" not in taken)


def iter_trial_order(cells: tuple[CellPlan, ...], seed: int) -> Iterator[tuple[str, int]]:
    """Seeded random round-robin: round r runs trial r of every cell that has one, in shuffled order.

    Drift (warm caches, thermals, a neighbour's job) then spreads over all cells instead of lining
    up with one of them.  Lazy: memory does not grow with the number of planned trials.
    """
    rng = random.Random(seed)
    for r in range(max(c.trials for c in cells)):
        round_cells = [c.name for c in cells if c.trials > r]
        rng.shuffle(round_cells)
        yield from ((name, r) for name in round_cells)


def trial_order(cells: tuple[CellPlan, ...], seed: int) -> list[tuple[str, int]]:
    """:func:`iter_trial_order` as a list (for small plans and tests)."""
    return list(iter_trial_order(cells, seed))
