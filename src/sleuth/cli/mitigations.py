"""``sleuth mitigations``: every known mitigation, its variables, and where it comes from."""

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
    help="Also load this sidecar file (version: 1). Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of a table.")
@click.argument("names", nargs=-1)
def command(mitigations_file: tuple[Path, ...], as_json: bool, names: tuple[str, ...]) -> int:
    """List mitigations (all, or NAMES): variables, description, documentation, source."""
    from rich.markup import escape
    from rich.table import Table

    from sleuth.errors import UsageError
    from sleuth.registry import load_registry

    reg = load_registry(mitigations_file)
    unknown = [n for n in names if n not in reg.mitigations]
    if unknown:
        raise UsageError(f"unknown mitigation {unknown[0]!r}", hint="run sleuth mitigations to list them")
    items = [reg.mitigations[n] for n in names] if names else list(reg.mitigations.values())
    if as_json:
        print_json({"mitigations": [m.to_dict() for m in items]})
        return 0
    t = Table(title=f"{len(items)} mitigations", title_justify="left")
    for col in ("name", "variables", "description", "documented at", "source"):
        t.add_column(col, overflow="fold")
    for m in items:
        env = [f"{k}={v}" for k, v in m.env.items()] + [f"{k}+=' {v}'" for k, v in m.append.items()]
        t.add_row(
            escape(m.name),
            escape(" ".join(env) or "-"),
            escape(m.description),
            escape(m.docs),
            escape(m.source),
        )
    console().print(t)
    return 0
