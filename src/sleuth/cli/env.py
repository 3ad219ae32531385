"""``sleuth env``: snapshot the environment; ``sleuth env diff A.json B.json``: compare two snapshots."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import click

from sleuth.errors import UsageError

__all__ = ["command"]


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _render_snapshot(snap: dict[str, Any]) -> None:
    from rich.table import Table

    from sleuth.snapshot import flatten

    table = Table(title=f"environment snapshot (schema {snap.get('schema')}, {snap.get('taken_at')})")
    for col in ("section", "key", "value"):
        table.add_column(col, overflow="fold")
    for section in sorted(k for k in snap if k not in ("schema", "taken_at")):
        first = True
        for path, value in flatten(snap[section]):
            key = path.removeprefix(section).lstrip(".") or "-"
            table.add_row(section if first else "", key, "absent" if value is None else _show(value))
            first = False
    _console().print(table)


def _check_python(python: str) -> str:
    found = shutil.which(python) if os.sep not in python else python
    if found is None or not os.access(found, os.X_OK) or os.path.isdir(found):
        raise UsageError(f"--python {python}: not an executable interpreter", hint="give a path to python")
    return found


@click.group(name="env", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--package", "packages", multiple=True, metavar="NAME", help="Also record this package.")
@click.option("--python", "python", metavar="PATH", help="Snapshot this interpreter (e.g. a venv's python).")
@click.option("--shallow", is_flag=True, help="Do not import torch/jax for build info (faster).")
@click.pass_context
def command(
    ctx: click.Context, as_json: bool, packages: tuple[str, ...], python: str | None, shallow: bool
) -> None:
    """Snapshot OS, CPU, memory, Python, packages, GPU driver and env vars (secrets redacted)."""
    ctx.ensure_object(dict)
    ctx.obj["json"] = as_json
    if ctx.invoked_subcommand is not None:
        return
    from sleuth.snapshot import collect

    snap = collect(deep=not shallow, packages=packages, python=_check_python(python) if python else None)
    if as_json:
        click.echo(json.dumps(snap, indent=2, sort_keys=True))
    else:
        _render_snapshot(snap)


def _load(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", hint="write one with `sleuth env --json > FILE`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not an environment snapshot (expected a JSON object)")
    return data


@command.command(name="diff")
@click.argument("a", metavar="A.json")
@click.argument("b", metavar="B.json")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def diff_command(ctx: click.Context, a: str, b: str, as_json: bool) -> None:
    """Print what differs between two snapshots; exit 0 when identical, 1 when they differ."""
    from sleuth.snapshot import diff

    changes = diff(_load(a), _load(b))
    if as_json or (ctx.obj or {}).get("json"):
        doc = {"a": a, "b": b, "identical": not changes, "changes": [c.to_dict() for c in changes]}
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        from rich.markup import escape

        console = _console()
        for c in changes:
            if c.kind.value == "changed":
                line = f"[yellow]~ {escape(c.path)}[/]: {escape(_show(c.old))} -> {escape(_show(c.new))}"
            elif c.kind.value == "added":
                line = f"[green]+ {escape(c.path)}[/]: {escape(_show(c.new))}"
            else:
                line = f"[red]- {escape(c.path)}[/]: {escape(_show(c.old))}"
            console.print(line, soft_wrap=True)
        console.print(f"{len(changes)} difference(s)" if changes else "identical", soft_wrap=True)
    ctx.exit(1 if changes else 0)
