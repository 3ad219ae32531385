"""The program's entry (the ``sleuth`` console script, ``python -m sleuth``).

The CLI's imports take a few tens of milliseconds; a Ctrl-C in them printed Python's traceback of the
import.  It is an interrupt like any other (nothing has started yet): one line, exit 130.  From
there on :func:`sleuth.cli.main` takes a Ctrl-C the same way (its own start-up, the verb's imports).
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> int:
    """Import the CLI and run it (:func:`sleuth.cli.main`)."""
    try:
        from sleuth.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130  # ExitCode.INTERRUPTED, not imported: the import is what was interrupted
    return cli_main()
