"""``sleuth environments``: every known environment name or kind, and where it comes from."""

from __future__ import annotations

from pathlib import Path

import click

from sleuth.cli._common import console, print_json

__all__ = ["command"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--mitigations-file",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also load this sidecar file (its environments). Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of a table.")
def command(mitigations_file: tuple[Path, ...], as_json: bool) -> int:
    """List environments: built-in places and kinds, aliases from files, plugins."""
    from rich.markup import escape
    from rich.table import Table

    from sleuth.registry import load_registry

    reg = load_registry(mitigations_file)
    items = list(reg.environments.values())
    if as_json:
        print_json({"environments": [e.to_dict() for e in items]})
        return 0
    t = Table(title=f"{len(items)} environments", title_justify="left")
    for col in ("name", "kind", "in a recipe", "description", "source"):
        t.add_column(col, overflow="fold")
    for e in items:
        usage = f"{{{e.name}: {'[PIN, ...]' if e.name == 'venv' else 'IMAGE'}}}" if e.takes_value else e.name
        t.add_row(escape(e.name), e.kind, escape(usage), escape(e.description), escape(e.source))
    console().print(t)
    return 0
