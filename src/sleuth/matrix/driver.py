"""Run a matrix: check everything, claim the run dir, hand the trials to the loop.

Everything that can be wrong with the input is checked by :func:`load` before the run dir exists
(so bad input leaves no files); :func:`run` then writes the resolved recipe (secrets hidden) and
the ``start`` event, and :func:`sleuth.matrix.loop.execute` prepares the environments and runs the
interleaved trials.  ``sleuth matrix resume`` lives in :mod:`sleuth.matrix.resume`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sleuth.backends import closed_on_error
from sleuth.backends.choice import BackendChoice, check_backend, journal_form, make_backend
from sleuth.journal import RunDir
from sleuth.matrix.lock import lock_data
from sleuth.matrix.loop import OnStart, OnTrial, execute, oracle_config
from sleuth.matrix.output import resolved_recipe_data, resolved_recipe_yaml
from sleuth.matrix.plan import MatrixPlan
from sleuth.matrix.recipe import Recipe, load_recipe
from sleuth.matrix.redact import command_secrets, secret_paths
from sleuth.matrix.resolve import resolve
from sleuth.matrix.result import MatrixResult
from sleuth.registry import Registry, load_registry
from sleuth.secrets import Secrets

__all__ = ["NO_TICKET", "RESOLVED", "Loaded", "load", "load_file", "run", "run_parent"]

NO_TICKET = "_no_ticket_"
RESOLVED = "recipe.resolved.yaml"


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """A validated plan with the registry it was resolved against."""

    plan: MatrixPlan
    registry: Registry
    sidecars: tuple[Path, ...] = ()
    #: what the resolved recipe adds: ``resolved``, the definitions the plan used (pinned)
    inline: Mapping[str, Any] = field(default_factory=dict)
    #: key paths of the resolved recipe whose values are secret (``<redacted>`` in the file)
    secret_paths: tuple[str, ...] = ()


def load(
    recipe: Recipe,
    source: str,
    *,
    base_dir: Path,
    mitigation_files: Sequence[Path] = (),
    entry_points: bool = True,
) -> Loaded:
    """Resolve ``recipe`` against built-ins, entry points and sidecar files; every check runs here."""
    registry = load_registry(mitigation_files, entry_points=entry_points)
    plan = resolve(recipe, registry, source, base_dir=base_dir, environ=os.environ)
    oracle_config(plan)  # a bad oracle callable fails now
    used_envs = {c.environment.key: c.environment.registered for c in plan.cells}
    inline = {"resolved": lock_data(plan.mitigations, used_envs, registry)}
    in_command = command_secrets(plan.recipe.workload.command)
    paths = secret_paths(resolved_recipe_data(plan, inline), in_command)
    # by key path (to restore each field on resume) and by variable name (so a short value, hidden
    # only under its name, is hidden in every env mapping printed or written); a value the command
    # names by its flag (--password VALUE) is hidden inside every text
    by_name = Secrets.of(plan.recipe.workload.env, *(c.env for c in plan.cells))
    secrets = Secrets(paths).merged(by_name).merged(in_command)
    return Loaded(
        plan=replace(plan, secrets=secrets),
        registry=registry,
        sidecars=tuple(mitigation_files),
        inline=inline,
        secret_paths=tuple(sorted(paths)),
    )


def load_file(path: Path, mitigation_files: Sequence[Path] = ()) -> Loaded:
    """:func:`load` for a recipe file (the workload's cwd defaults to the file's directory)."""
    return load(
        load_recipe(path), str(path), base_dir=path.resolve().parent, mitigation_files=mitigation_files
    )


def run_parent(plan: MatrixPlan, output: Path) -> Path:
    """``<output>/<ticket or _no_ticket_>/<workload>``: where the run dir is claimed."""
    return output / (plan.recipe.ticket or NO_TICKET) / plan.workload


def run(
    loaded: Loaded,
    *,
    output: Path,
    jobs: int = 1,
    gpus: Sequence[str] = (),
    backend: BackendChoice | None = None,
    on_trial: OnTrial | None = None,
    on_start: OnStart | None = None,
) -> MatrixResult:
    """Run the matrix into a fresh run dir under ``output`` (``backend``: ``--backend``, default local)."""
    choice = backend if backend is not None else BackendChoice()
    check_backend(choice, jobs, gpus)  # a bad --jobs fails before the run dir exists
    plan = loaded.plan
    started = make_backend(choice, jobs, gpus)  # so does a backend that cannot start
    with closed_on_error(started):
        run_dir = RunDir.create(output, plan.recipe.ticket or NO_TICKET, plan.workload)
    plan.secrets.save(run_dir.path)
    run_dir.write_text(RESOLVED, resolved_recipe_yaml(plan, dict(loaded.inline)))
    for i, path in enumerate(loaded.sidecars):
        # the copy is for people (the resolved recipe inlines what it uses): secrets hidden
        text = plan.secrets.scrub(path.read_text(encoding="utf-8"))
        run_dir.write_text(f"sidecars/{i:02d}-{path.name[:100]}", text)
    run_dir.journal.append(
        "start",
        verb="matrix",
        baseline=plan.baseline,
        seed=plan.seed,
        jobs=jobs,
        gpus=list(gpus),
        backend=journal_form(choice, run_dir.path),
        cells=[c.name for c in plan.cells],
        added=list(plan.added),
        redacted=list(loaded.secret_paths),
    )
    return execute(plan, loaded.registry, run_dir, jobs=jobs, gpus=gpus, backend=started, choice=choice,
                   on_trial=on_trial, on_start=on_start)  # fmt: skip
