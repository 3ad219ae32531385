"""``sleuth bundle RUN_DIR``: pack a reduction's ``shrunken/`` and ``SHIP.md`` into one ``.tar.gz``."""

from __future__ import annotations

from pathlib import Path

import click

from sleuth.cli._common import console, print_json
from sleuth.errors import UsageError

__all__ = ["command"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--scrub", multiple=True, metavar="REGEX", help="Redact these too (on top of the run's own).")
@click.option("--out", "dest", type=click.Path(dir_okay=False, path_type=Path),
              help="The archive to write [default: RUN_DIR/<name>-repro.tar.gz].")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the archive and its members as JSON.")
def command(run_dir: Path, scrub: tuple[str, ...], dest: Path | None, as_json: bool) -> int:
    """Pack RUN_DIR's reproducer into one archive (scrubbed again, sha256 of every member in SHIP.md)."""
    from sleuth.reduce.pack import pack_run

    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run dir")
    archive, members = pack_run(run_dir, extra_scrub=scrub, dest=dest)
    if as_json:
        print_json(
            {
                "archive": str(archive),
                "members": [{"path": p, "bytes": n, "sha256": h} for p, n, h in members],
            }
        )
        return 0
    con = console()
    con.print(f"{archive}  ({len(members)} files; unpack and run: sh */shrunken/run_repro.sh)", markup=False)
    return 0
