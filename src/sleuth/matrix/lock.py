"""Pinning what a matrix used: the ``resolved:`` section of ``recipe.resolved.yaml``.

A resolved recipe carries the full definition of every mitigation and environment alias the
matrix used that the recipe does not define itself (built-in, entry-point plugin, sidecar file),
with sleuth's version.  Running it again pins those definitions in the registry
(:meth:`~sleuth.registry.Registry.pin_mitigation`): on a machine without the plugin or the
sidecar, or with a sleuth whose built-in changed, the cells get the variables they ran with, and
the plan says so in its warnings.  What a pin cannot hold: an image named by tag (the tag may
move), an unpinned venv requirement, a plugin environment's code (a factory), and the workload
plugin's code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sleuth import __version__
from sleuth.matrix.recipe import Recipe
from sleuth.registry import Mitigation, Registry

__all__ = ["apply_lock", "lock_data"]

RECIPE_SOURCE = "recipe "


def apply_lock(recipe: Recipe, registry: Registry, source: str) -> list[str]:
    """Pin the recipe's ``resolved`` definitions in ``registry``; the warnings they give."""
    lock = recipe.resolved
    if lock is None:
        return []
    warnings: list[str] = []
    if lock.sleuth_version != __version__:
        warnings.append(
            f"{source} was resolved by sleuth {lock.sleuth_version}; this is sleuth {__version__}"
        )
    for name, m in lock.mitigations.items():
        pinned = Mitigation(
            name=name,
            env=dict(m.env),
            append=dict(m.append),
            description=m.description,
            docs=m.docs,
            source=m.source or f"pinned by {source}",
        )
        warning = registry.pin_mitigation(pinned)
        if warning is not None:
            warnings.append(warning)
    for name, e in lock.environments.items():
        warning = registry.pin_environment(name, e, e.source or f"pinned by {source}")
        if warning is not None:
            warnings.append(warning)
    return warnings


def lock_data(
    mitigations: Mapping[str, Mitigation], environments: Mapping[str, Any], registry: Registry
) -> dict[str, Any]:
    """The ``resolved`` section: the used definitions that the recipe does not define itself.

    ``environments`` maps the environment keys the cells use to their registered name (or None).
    """
    mits = {
        name: {
            "env": dict(m.env),
            "append": dict(m.append),
            "description": m.description,
            "docs": m.docs,
            "source": m.source,
        }
        for name, m in sorted(mitigations.items())
        if not m.source.startswith(RECIPE_SOURCE)
    }
    envs: dict[str, Any] = {}
    for name in environments.values():
        d = registry.environments.get(name or "")
        if d is not None and d.spec is not None and not d.source.startswith(RECIPE_SOURCE):
            envs[d.name] = {**d.spec.plain(), "source": d.source}
    return {"sleuth_version": __version__, "mitigations": mits, "environments": envs}
