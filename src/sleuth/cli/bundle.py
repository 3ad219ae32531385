"""``sleuth bundle RUN_DIR``: pack a reduction's ``shrunken/`` and ``SHIP.md`` into one ``.tar.gz``."""

from __future__ import annotations

from pathlib import Path

import click

from sleuth.cli._common import console, print_json
from sleuth.errors import UsageError

__all__ = ["command"]


def _check_links(root: Path) -> None:
    """A symlink under ``root`` that dangles, loops or leads outside it is a usage error: the copy
    follows links, so it would pack the file it points at (``~/.aws/credentials``) or never end."""
    import os

    from sleuth.reduce.tree import walk

    if root.is_symlink():
        raise UsageError(
            f"{root}: a symlink to {os.readlink(root)}; bundle packs the run's own shrunken/",
            hint="copy the folder in place of the link, then bundle again",
        )
    if not root.is_dir():
        return  # pack_run says what is missing
    top = root.resolve()
    for dirpath, dirnames, filenames in walk(root):
        for name in [*dirnames, *filenames]:
            link = Path(dirpath, name)
            if not link.is_symlink():
                continue
            why = None
            try:
                target = link.resolve(strict=True)
            except (OSError, RuntimeError):
                why = f"a symlink to {os.readlink(link)}, which is missing or loops"
            else:
                if not target.is_relative_to(top):
                    why = f"a symlink to {target}, outside {root.name}/"
                elif target.is_dir() and link.parent.resolve().is_relative_to(target):
                    why = f"a symlink to {target}, a folder that holds it (the copy would never end)"
            if why is not None:
                raise UsageError(
                    f"{link}: {why}", hint="copy the file in, or remove the link, then bundle again"
                )


def _check_name(run_dir: Path) -> None:
    """The run's name names the archive and its top folder: ``../x`` would write outside and unpack
    outside (reduce checks it; a summary.json edited afterwards may not hold it)."""
    from sleuth.model import check_name
    from sleuth.reduce.rundir import summary_of

    name = dict(summary_of(run_dir)).get("name", "reproducer")
    if not isinstance(name, str) or not check_name(name):
        raise UsageError(
            f"{run_dir / 'summary.json'}: name {name!r} cannot name a file",
            hint="use letters, digits, '_', '.', '-'",
        )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--scrub", multiple=True, metavar="REGEX", help="Redact these too (on top of the run's own).")
@click.option("--out", "dest", type=click.Path(dir_okay=False, path_type=Path),
              help="The archive (.tar.gz) to write [default: RUN_DIR/<name>-repro.tar.gz].")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the archive and its members as JSON.")
def command(run_dir: Path, scrub: tuple[str, ...], dest: Path | None, as_json: bool) -> int:
    """Pack RUN_DIR's reproducer into one archive (scrubbed again, sha256 of every member in SHIP.md)."""
    from sleuth.reduce.pack import pack_run

    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run dir")
    _check_links(run_dir / "shrunken")
    _check_name(run_dir)
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
