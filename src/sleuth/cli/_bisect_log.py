"""``sleuth.log`` in a bisection's run dir: every test line whole, and sleuth's debug messages.

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

__all__ = ["debug_log"]


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
