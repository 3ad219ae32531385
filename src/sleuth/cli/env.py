"""``sleuth env``: snapshot the environment; ``sleuth env diff A.json B.json``: compare two snapshots."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import click

from sleuth.cli._common import console as _console
from sleuth.errors import UsageError
from sleuth.model import printable

__all__ = ["command"]


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    # a snapshot is data (maybe another machine's): an ANSI escape in it must not reach the terminal
    return printable(text)


def _render_snapshot(snap: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from sleuth.snapshot import flatten

    console = _console()
    interp = snap.get("interpreter")
    if isinstance(interp, dict):
        exe = (snap.get("python") or {}).get("executable")
        real = f" -> {exe}" if exe and exe != interp.get("path") else ""  # a pyenv shim, a symlink
        console.print(
            f"[bold]python described:[/] {escape(str(interp.get('path')))}{escape(real)} "
            f"(Python {escape(str(interp.get('version')))}, {escape(str(interp.get('chosen_by')))})"
        )

    table = Table(title=f"environment snapshot (schema {snap.get('schema')}, {snap.get('taken_at')})")
    for col in ("section", "key", "value"):
        table.add_column(col, overflow="fold")
    for section in sorted(k for k in snap if k not in ("schema", "taken_at")):
        first = True
        for path, value in flatten(snap[section]):
            key = path.removeprefix(section).lstrip(".") or "-"
            shown = "absent" if value is None else _show(value)
            table.add_row(section if first else "", escape(key), escape(shown))  # values are text, not markup
            first = False
    console.print(table)


def _check_python(python: str) -> str:
    found = shutil.which(python) if os.sep not in python else python
    if found is None or not os.access(found, os.X_OK) or os.path.isdir(found):
        raise UsageError(f"--python {python}: not an executable interpreter", hint="give a path to python")
    return found


def _interpreter(python: str | None) -> tuple[str | None, str]:
    """Which interpreter to describe (``None``: sleuth's own, in-process) and how it was chosen."""
    if python:
        return _check_python(python), "--python"
    from sleuth.snapshot import workload_python

    found = workload_python()
    if found is None:
        return None, "sleuth's own (no python or python3 on PATH)"
    return found[0], f"first {found[1]} on PATH"


@click.group(name="env", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--package", "packages", multiple=True, metavar="NAME", help="Also record this package.")
@click.option(
    "--python",
    "python",
    metavar="PATH",
    help="Describe this interpreter (default: the workload's, the first python, then python3, on PATH).",
)
@click.option("--shallow", is_flag=True, help="Do not import torch/jax for build info (faster).")
@click.pass_context
def command(
    ctx: click.Context, as_json: bool, packages: tuple[str, ...], python: str | None, shallow: bool
) -> None:
    """Snapshot OS, CPU, memory, Python, packages, GPU driver and env vars (secrets redacted).

    The Python described is the one a workload started as `python ...` runs (the first python,
    then python3, on PATH), not sleuth's own; --python PATH describes another.
    """
    ctx.ensure_object(dict)
    ctx.obj["json"] = as_json
    if ctx.invoked_subcommand is not None:
        return
    from sleuth.errors import InfrastructureError
    from sleuth.snapshot import collect

    exe, chosen_by = _interpreter(python)
    try:
        snap = collect(deep=not shallow, packages=packages, python=exe, chosen_by=chosen_by)
    except InfrastructureError as exc:
        if python:
            raise
        raise InfrastructureError(exc.message, hint="describe another one with --python PATH") from None
    if as_json:
        click.echo(json.dumps(snap, indent=2, sort_keys=True))
    else:
        _render_snapshot(snap)


def _load(path: str) -> dict[str, Any]:
    try:  # utf-8-sig: a snapshot saved by an editor or PowerShell starts with a byte-order mark
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", hint="write one with `sleuth env --json > FILE`") from None
    except IsADirectoryError:
        raise UsageError(
            f"{path}: a directory, not a snapshot", hint="give the file `sleuth env --json` wrote"
        ) from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start : exc.start + 1].hex()} at "
                         f"offset {exc.start})", hint="save the file as UTF-8") from None  # fmt: skip
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:  # an integer past the digit limit (5000 digits)
        raise UsageError(f"{path}: not JSON ({str(exc)[:120]})") from None
    except RecursionError:  # nested deeper than the parser goes
        raise UsageError(f"{path}: not an environment snapshot (nested too deep)") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not an environment snapshot (expected a JSON object)")
    if _too_deep(data):
        raise UsageError(f"{path}: not an environment snapshot (nested too deep)")
    return data


def _too_deep(data: Any, limit: int = 64) -> bool:
    """Whether ``data`` nests deeper than ``limit`` (a snapshot nests about 5; the diff recurses)."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        obj, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(obj, dict):
            stack.extend((v, depth + 1) for v in obj.values())
        elif isinstance(obj, list):
            stack.extend((v, depth + 1) for v in obj)
    return False


@command.command(name="diff")
@click.argument("a", metavar="A.json")
@click.argument("b", metavar="B.json")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def diff_command(ctx: click.Context, a: str, b: str, as_json: bool) -> None:
    """Print what differs between two snapshots; exit 0 when identical, 1 when they differ."""
    from sleuth.snapshot import diff, public_changes

    changes = public_changes(diff(_load(a), _load(b)))
    if as_json or (ctx.obj or {}).get("json"):
        doc = {"a": a, "b": b, "identical": not changes, "changes": [c.to_dict() for c in changes]}
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        from rich.markup import escape

        console = _console()
        for c in changes:
            path = escape(_show(c.path))
            if c.kind.value == "changed":
                line = f"[yellow]~ {path}[/]: {escape(_show(c.old))} -> {escape(_show(c.new))}"
            elif c.kind.value == "added":
                line = f"[green]+ {path}[/]: {escape(_show(c.new))}"
            else:
                line = f"[red]- {path}[/]: {escape(_show(c.old))}"
            console.print(line)
        console.print(f"{len(changes)} difference(s)" if changes else "identical")
    ctx.exit(1 if changes else 0)
