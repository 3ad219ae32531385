"""Which values of a matrix recipe are secret, and putting them back on resume.

The rule of what is secret is ``sleuth.secrets``' (the variable's name, or a token-shaped value or
word); this module only finds the values in a recipe and keys them by their *key path*
(``workload.env.HF_TOKEN``, ``cells[2].extra_env.API_KEY``, ``workload.command[3]``), so two
cells that set one variable to two secrets keep both, and ``matrix resume`` restores each field
exactly.  ``recipe.resolved.yaml`` holds ``<redacted>`` there; ``secrets.json`` (0600) the values.
Run again (``sleuth matrix --recipe RUN_DIR/recipe.resolved.yaml``, the report's ``rerun``), a
resolved recipe gets them back the same way (:func:`restore_hidden`), never the word ``<redacted>``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sleuth.secrets import REDACTED, Secrets, is_secret

__all__ = ["command_secrets", "paths_of", "restore", "restore_hidden", "secret_paths", "secrets_for_resume"]


def paths_of(data: Any, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """Every string leaf of JSON-like ``data`` as (key path, the key that holds it, value)."""
    stack: list[tuple[str, str, Any]] = [(prefix, "", data)]
    while stack:
        path, key, obj = stack.pop()
        if isinstance(obj, str):
            yield path, key, obj
        elif isinstance(obj, Mapping):
            stack.extend((f"{path}.{k}" if path else str(k), str(k), v) for k, v in obj.items())
        elif isinstance(obj, list | tuple):
            stack.extend((f"{path}[{i}]", key, v) for i, v in enumerate(obj))


def command_secrets(command: list[str] | str | None) -> Secrets:
    """The values the workload's command names as secret (``--api-key VALUE``), as
    :attr:`Secrets.words`: every text is scrubbed of them."""
    return Secrets({}, Secrets.of_argv(command or []).words)


def secret_paths(data: Mapping[str, Any], in_command: Secrets | None = None) -> dict[str, str]:
    """The secret values of a resolved recipe's ``data``, by key path (a string holding one of
    ``in_command``'s words, :func:`command_secrets`, is secret whole)."""
    rule = in_command or Secrets()
    return {
        path: value
        for path, key, value in paths_of(data)
        if value != REDACTED and (is_secret(key, value) or rule.scrub(value) != value)
    }


def restore(data: Any, secrets: Secrets) -> Any:
    """A copy of ``data`` with every key path that ``secrets`` knows set back to its value."""
    values = secrets.values

    def walk(path: str, obj: Any) -> Any:
        if isinstance(obj, str):
            return values[path] if obj != values.get(path, obj) and REDACTED in obj else obj
        if isinstance(obj, Mapping):
            return {k: walk(f"{path}.{k}" if path else str(k), v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [walk(f"{path}[{i}]", v) for i, v in enumerate(obj)]
        return obj

    return walk("", data)


def secrets_for_resume(
    run_dir: Path, names: list[str], hint: str = "export them in this shell before resuming"
) -> Secrets:
    """The values of the key paths ``names`` from ``secrets.json``; failing that, a variable's
    value from this shell (``workload.env.HF_TOKEN`` takes ``$HF_TOKEN``)."""
    environ = {n: os.environ[leaf] for n in names if (leaf := n.rpartition(".")[2]) in os.environ}
    return Secrets.load(run_dir, names, environ=environ, hint=hint)


def restore_hidden(data: Any, recipe: Path) -> Any:
    """``data`` of a recipe file with each ``<redacted>`` value put back: from the ``secrets.json``
    next to it (a run dir's ``recipe.resolved.yaml``), else from this shell.  Without this a rerun
    ran the workload with the word ``<redacted>`` as its token (and ``/bin/sh`` read a command
    ``<redacted>`` as a redirection); a value found nowhere is a one-line error."""
    names = sorted(path for path, _key, value in paths_of(data) if REDACTED in value)
    if not names:
        return data
    hint = (
        "keep the run's secrets.json next to the recipe, export the variables in this shell, "
        "or write the values back in place of <redacted>"
    )
    return restore(data, secrets_for_resume(recipe.resolve().parent, names, hint=hint))
