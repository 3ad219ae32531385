"""``sleuth schema NAME``: print the JSON Schema of a config file, for editors and validators."""

from __future__ import annotations

from importlib import import_module
from typing import Any

import click

from sleuth.cli._common import print_json
from sleuth.errors import UsageError

__all__ = ["SCHEMAS", "command"]

#: NAME -> ("module:function" returning the schema dict, what the file is)
SCHEMAS: dict[str, tuple[str, str]] = {
    "matrix": ("sleuth.matrix.recipe:recipe_schema", "a sleuth matrix recipe (--recipe)"),
    "reduce": ("sleuth.reduce.spec:reduce_schema", "a sleuth reduce spec (--spec)"),
    "mitigations": ("sleuth.registry:sidecar_schema", "a mitigations/environments file (--mitigations-file)"),
    "attribution": (
        "sleuth.attribution.config:config_schema",
        "a file with an attribution: block (--config)",
    ),
    "catalog": ("sleuth.attribution.signatures:catalog_schema", "a signature catalog file (--catalog)"),
    "gate-policy": ("sleuth.gate.policy:policy_schema", "a sleuth gate check policy (--policy)"),
}


def _schema(name: str) -> dict[str, Any]:
    ref, _ = SCHEMAS[name]
    module, func = ref.split(":")
    schema: dict[str, Any] = getattr(import_module(module), func)()
    return schema


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("name", required=False)
@click.option("--list", "list_", is_flag=True, help="List the schema names.")
def command(name: str | None, list_: bool) -> int:
    """Print the JSON Schema of config file NAME.

    NAME: matrix, reduce, mitigations, attribution, catalog or gate-policy (--list says what each is).
    """
    if list_ or name is None:
        if name is None and not list_:
            raise UsageError("which schema?", hint=f"give one of: {', '.join(SCHEMAS)}")
        for key, (_, what) in SCHEMAS.items():
            click.echo(f"{key:<12} {what}")
        return 0
    if name not in SCHEMAS:
        raise UsageError(f"unknown schema {name!r}", hint=f"give one of: {', '.join(SCHEMAS)}")
    print_json(_schema(name))
    return 0
