"""A bisection's output: ``sleuth.log`` in its run dir, and its console made while the first tests run.

``sleuth.log`` keeps every test line whole, and sleuth's debug messages.

The console fits a test line to the terminal (a second repository's SHA may not show); this file
keeps what it leaves out: the whole line of every test, each image's existence check and the tag
listing made during the run, each container's name, the notes.  Everything written is scrubbed
like the rest of the run dir.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["HeldConsole", "debug_log"]


class _Scrub(logging.Filter):
    """Hides secrets in each record's message (the run's own rule, :mod:`sleuth.secrets`)."""

    def __init__(self, scrub: Callable[[Any], Any]) -> None:
        super().__init__()
        self.scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = str(self.scrub(record.getMessage()))
        record.args = None
        return True


@contextmanager
def debug_log(run_dir: Path, scrub: Callable[[Any], Any]) -> Iterator[Callable[[str], None]]:
    """Append sleuth's log (DEBUG and up) to ``run_dir/sleuth.log`` meanwhile; yields a function
    that records one test line."""
    logger = logging.getLogger("sleuth")
    handler = logging.FileHandler(run_dir / "sleuth.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Scrub(scrub))
    # with a handler of ours, Python's last-resort console handler no longer sees sleuth's warnings
    console = logging.lastResort
    old_level = logger.level
    logger.addHandler(handler)
    if console is not None:
        logger.addHandler(console)
    logger.setLevel(logging.DEBUG)
    tests = logging.getLogger("sleuth.bisect.tests")
    try:
        yield lambda line: tests.info("%s", line)
    finally:
        logger.removeHandler(handler)
        if console is not None:
            logger.removeHandler(console)
        logger.setLevel(old_level)
        handler.close()


class HeldConsole:
    """stderr's console of a bisection, made when the first tests have started; lines before them wait.

    rich and its markup escape take about 20 ms to import.  Made beside the first tests (the driver's
    ``on_first_wait``) they are not part of the time to the first test (issue 9).  ``header`` prints
    the lines that come before any test; calling the object gives the console, made (and the header
    printed) on first use, so a resume's replayed tests or an error still come after the header.
    """

    def __init__(self, header: Callable[[Any], None]) -> None:
        self._header: Callable[[Any], None] | None = header
        self._con: Any = None

    def __call__(self) -> Any:
        if self._con is None:
            from sleuth.cli._common import err_console

            self._con = err_console()
            header, self._header = self._header, None
            if header is not None:
                header(self._con)
        return self._con
