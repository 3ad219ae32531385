"""``sleuth report RUN_DIR``: write the run dir's self-contained HTML page (``report.html``)."""

from __future__ import annotations

from pathlib import Path

import click

from sleuth.cli._common import console, print_json

__all__ = ["command"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the page here [default: RUN_DIR/report.html].")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the page's path and verb as JSON.")
def command(run_dir: Path, out: Path | None, as_json: bool) -> int:
    """Write one HTML page for RUN_DIR (a run dir of run, matrix, bisect or reduce): the answer with
    its confidence, figures, tables and the failing logs, secrets hidden. The page has no external
    resource (inline styles, SVG figures): attach it to a ticket or open it offline. It reads the run
    dir as it stands, so a run still going or interrupted gets a page too.
    """
    from sleuth.report import write_report
    from sleuth.report.source import RunDirView

    view = RunDirView.open(run_dir)  # the journal is read (and scrubbed) once
    path = write_report(view, out)
    if as_json:
        print_json({"report": str(path), "verb": view.verb, "run_dir": str(view.path)})
    else:
        console().print(str(path), markup=False, soft_wrap=True)
    return 0
