"""Progress for long work that reads well anywhere: a bar on a terminal, plain lines in a log.

On a terminal, :class:`Progress` is a transient rich bar.  When the stream is a pipe or a file
(CI logs, ``| tee``), a bar would be invisible until the end, so a plain line such as
``trials 12/50 (24%), 0:35 elapsed`` is printed every ``SLEUTH_PROGRESS_INTERVAL`` seconds
(default 10; 0 turns it off), so a long run shows it is alive.  Lines the verb prints go through
:meth:`Progress.print`, which keeps them above the bar.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

__all__ = ["Progress"]

_DEFAULT_INTERVAL = 10.0


def _interval() -> float:
    try:
        value = float(os.environ.get("SLEUTH_PROGRESS_INTERVAL", _DEFAULT_INTERVAL))
    except ValueError:
        return _DEFAULT_INTERVAL
    return value if value >= 0 else _DEFAULT_INTERVAL


def _elapsed(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _animated(console: Any) -> bool:
    """A live bar only where it can be redrawn: rich's interactive console on a real terminal
    (or ``TTY_INTERACTIVE=1``).  ``FORCE_COLOR``, which many CI jobs set for coloured logs, makes rich
    call a pipe a terminal: each redraw of the bar went into the log, and no heartbeat line."""
    if not console.is_interactive:
        return False
    if os.environ.get("TTY_INTERACTIVE") == "1":
        return True
    try:
        return bool(console.file.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """``what`` done out of ``total`` on ``console`` (a rich Console), bar or heartbeat lines."""

    def __init__(self, console: Any, what: str, total: int, *, completed: int = 0) -> None:
        self.console = console
        self.what = what
        self.total = total
        self.completed = completed
        self._t0 = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> Progress:
        """Show the bar, or start the heartbeat when the console is not a terminal."""
        if _animated(self.console):
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._task = self._bar.add_task(self.what, total=self.total, completed=self.completed)
            self._bar.start()
        elif (every := _interval()) > 0:
            self._thread = threading.Thread(target=self._beat, args=(every,), daemon=True)
            self._thread.start()
        return self

    def line(self) -> str:
        """``trials 12/50 (24%), 0:35 elapsed``."""
        with self._lock:
            done, total = self.completed, self.total
        pct = f" ({100 * done // total}%)" if total else ""
        return f"{self.what} {done}/{total}{pct}, {_elapsed(time.monotonic() - self._t0)} elapsed"

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.console.print(self.line(), markup=False, highlight=False, soft_wrap=True)
            except BrokenPipeError:  # the reader went away (`| head`): stop as a Ctrl-C does
                from sleuth import hangup

                hangup.reader_gone()
                return

    def advance(self, n: int = 1) -> None:
        """``n`` more done."""
        with self._lock:
            self.completed += n
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def set_total(self, total: int) -> None:
        """The amount of work changed (a cell stopped early, a search needs more tests)."""
        with self._lock:
            self.total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def print(self, *args: Any, **kwargs: Any) -> None:
        """Print a line above the bar (or plainly)."""
        (self._bar.console if self._bar is not None else self.console).print(*args, **kwargs)

    def stop(self) -> None:
        """Remove the bar, stop the heartbeat."""
        self._stop.set()
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._thread is not None:
            self._thread.join(timeout=1)
            self._thread = None
