"""Rendering helpers shared by the verbs: consoles, JSON output, outcome colours, options."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from sleuth.model import Outcome

__all__ = [
    "OUTCOME_STYLE",
    "console",
    "err_console",
    "escape",
    "fmt_rate",
    "fmt_s",
    "lazy_console",
    "may_be_terminal",
    "output_alias_option",
    "output_option",
    "print_json",
]

OUTCOME_STYLE = {
    Outcome.PASS: "green",
    Outcome.FAIL: "bold red",
    Outcome.SKIP: "yellow",
    Outcome.ERROR: "magenta",
}


#: the width tables are laid out for when the stream is a pipe or a file (rich's default is 80, which
#: folds every cell of a wide table into a column of fragments in logs and CI output)
PIPE_WIDTH = 200


def _console(*, stderr: bool) -> Any:
    """A rich console; when its stream is not a terminal, lines are never wrapped or cut.

    On a terminal rich keeps its own behaviour (the terminal's width).  Piped or in a CI log
    there is no width to respect: text is printed on one line however long (``soft_wrap``: a
    long run dir or path stays whole and greppable) and tables are laid out for ``PIPE_WIDTH``
    columns, unless ``COLUMNS`` says otherwise.
    """
    from rich.console import Console

    from sleuth import hangup

    con: Any = Console(stderr=stderr, highlight=False, soft_wrap=True)
    con.on_broken_pipe = hangup.reader_gone  # rich's own exits 1 on the spot, the run dir left open
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con.width = max(con.width, PIPE_WIDTH)
    return con


def console() -> Any:
    """A rich console on stdout (imported lazily: start-up time); see :func:`_console`."""
    return _console(stderr=False)


def err_console() -> Any:
    """A rich console on stderr, for progress and notes; same width rules as :func:`console`."""
    return _console(stderr=True)


def escape(text: str) -> str:
    """rich's markup escape, imported when first used (a ``--json`` path never renders markup).

    rich's escape changes only a ``[`` that may open a tag and a trailing backslash: text with
    neither is returned as it is, without importing rich.
    """
    if "[" not in text and not text.endswith("\\"):
        return text
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def may_be_terminal(*, stderr: bool) -> bool:
    """False only when rich would surely not call the stream a terminal.

    That is: no tty, and neither ``TTY_COMPATIBLE`` nor ``FORCE_COLOR`` is set (rich reads those
    first; when either is set, rich decides).
    """
    if "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ:
        return True
    stream = sys.stderr if stderr else sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no stream, or a closed one: rich says no terminal too
        return False


#: the tags of sleuth's own markup that :func:`_plain_text` takes out itself: ``[/]`` and styles of words
#: (patterns as text: compiled at the first print, through re's cache, not at every verb's start-up)
_STYLE_WORD = "(?:bold|dim|italic|red|green|yellow|blue|magenta|cyan)"
_STYLE_TAG = rf"\[(/|{_STYLE_WORD}(?: {_STYLE_WORD})*)\]"
#: what rich may still read as a tag (a ``[`` then one of these), or as an emoji code (``:smile:``)
_RICH_TAG = r"\[[a-z#/@]"
_EMOJI_CODE = r":\S*?:"


def _plain_text(objects: tuple[Any, ...], kw: dict[str, Any]) -> str | None:
    """What :func:`_console`'s ``print(*objects, **kw)`` writes on a stream that is no terminal, when
    that is surely the text with sleuth's style tags taken out; None when only rich can tell.

    Surely: one string; no option but ``markup``, ``soft_wrap=True`` and ``highlight=False``; no
    backslash (an escape), nothing rich would still take for a tag or an emoji code, no tab or
    control character (rich expands or strips them), no line ending in whitespace (rich may cut
    it), and the tags balanced.  ``sleuth run``'s header and summary piped into a log take this
    path, so a run prints them without importing rich (~20 ms of its start-up).
    """
    if len(objects) != 1 or not isinstance(objects[0], str):
        return None
    if not set(kw) <= {"markup", "soft_wrap", "highlight"}:
        return None
    if kw.get("soft_wrap", True) is not True or kw.get("highlight", False) is not False:
        return None
    text: str = objects[0]
    if "\\" in text or re.search(_EMOJI_CODE, text):
        return None
    if kw.get("markup", True):
        depth = 0
        for tag in re.findall(_STYLE_TAG, text):
            depth += -1 if tag == "/" else 1
            if depth < 0:  # a closing tag with nothing to close: rich raises
                return None
        text = re.sub(_STYLE_TAG, "", text)
        if re.search(_RICH_TAG, text):
            return None
    lines = text.split("\n")
    if not all(line.isprintable() and line == line.rstrip() for line in lines):
        return None
    return text + "\n"


class _Deferred:
    """A console made on first use, standing in where the stream is surely not a terminal.

    Its :meth:`print` writes plain text itself when that is surely what rich would write
    (:func:`_plain_text`); anything else makes the console (and imports rich).
    """

    is_terminal = False
    is_interactive = False

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._con: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._con is None:
            self._con = _console(stderr=self._stderr)
        return getattr(self._con, name)

    def print(self, *objects: Any, **kw: Any) -> None:
        """rich's ``Console.print``, without rich for plain text (see the class docstring)."""
        text = _plain_text(objects, kw)
        if text is None:
            self.__getattr__("print")(*objects, **kw)
            return
        stream = sys.stderr if self._stderr else sys.stdout
        try:
            stream.write(text)
            stream.flush()  # as rich does after each print
        except BrokenPipeError:  # rich's on_broken_pipe, as _console sets it
            from sleuth import hangup

            hangup.reader_gone()


def lazy_console(*, stderr: bool) -> Any:
    """:func:`console` or :func:`err_console`, made (and rich imported) only when first printed to.

    For output that may never come, e.g. ``--json``'s progress on a pipe: a heartbeat line after
    10 s at the earliest.  On a terminal (or when rich may think so) it is the console itself.
    """
    if may_be_terminal(stderr=stderr):
        return _console(stderr=stderr)
    return _Deferred(stderr=stderr)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside: SIGTERM raises KeyboardInterrupt, so a verb stops, journals and hints as for Ctrl-C."""
    from sleuth.cli import raise_interrupt

    old = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Inside: SIGINT, SIGTERM and SIGHUP (those Python handles) are only noted, so short work that
    must not be cut (a run's last files) finishes; the first one noted then acts as it would have
    (its handler runs: it stops the verb as a Ctrl-C does)."""
    noted: list[int] = []
    old: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if callable(signal.getsignal(sig)):  # ignored (`&`, nohup) or the default: left as it is
            old[sig] = signal.signal(sig, lambda signum, _frame: noted.append(signum))
    try:
        yield
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)
    if noted:
        old[noted[0]](noted[0], None)


def print_json(obj: Any) -> None:
    """One JSON document on stdout."""
    from sleuth.atomic import json_text

    sys.stdout.write(json_text(obj) + "\n")
    sys.stdout.flush()


#: ``ctx.meta`` key: ``(path, flag)`` of another name ``--output`` was given under (``--output-dir``)
_ALIAS_KEY = "sleuth.output_alias"


def _output_root(ctx: click.Context, param: click.Parameter, value: str | Path) -> Path:
    from click.core import ParameterSource

    from sleuth.errors import UsageError
    from sleuth.journal import output_root

    alias: tuple[Path, str] | None = ctx.meta.get(_ALIAS_KEY)
    if ctx.get_parameter_source(str(param.name)) is not ParameterSource.DEFAULT:
        if alias is not None:
            raise UsageError(f"give --output or {alias[1]} (the same flag), not both")
        return output_root(value)
    if alias is not None:  # the flag wins over $SLEUTH_OUTPUT, which is then not even looked at
        return alias[0]
    # the default: an error names where the value came from, not a flag the user never gave
    return output_root(value, "$SLEUTH_OUTPUT" if "SLEUTH_OUTPUT" in os.environ else "--output's default")


def _output_alias(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    from sleuth.journal import output_root

    if value is not None:
        flag = next(o for o in param.opts if o.startswith("--"))
        ctx.meta[_ALIAS_KEY] = (output_root(value, flag), flag)


def output_alias_option(name: str, help: str) -> Callable[[Any], Any]:
    """``name`` (``--output-dir``) as another name of :func:`output_option`'s ``--output``; it goes
    before ``output_option`` and is taken first (eager), so it wins over ``$SLEUTH_OUTPUT``, and
    errors name it as typed."""
    return click.option(
        name, type=click.Path(), callback=_output_alias, is_eager=True, expose_value=False, help=help
    )


def output_option(func: Any) -> Any:
    """``--output DIR``: where run dirs go (default ``$SLEUTH_OUTPUT`` or ``./sleuth-runs``)."""
    return click.option(
        "--output",
        # a str, not a Path: Path('') is '.', and an empty --output must stay visible to be refused
        type=click.Path(),  # a file there is refused by the callback, naming --output or $SLEUTH_OUTPUT
        callback=_output_root,
        default=lambda: os.environ.get("SLEUTH_OUTPUT", "sleuth-runs"),
        show_default="$SLEUTH_OUTPUT or ./sleuth-runs",
        help="Root folder for run dirs.",
    )(func)


def fmt_s(seconds: float | None) -> str:
    """Seconds for people: 0.042s, 3.1s, 2m05s."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.3f}s"
    if seconds < 120:
        return f"{seconds:.1f}s"
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s"


def fmt_rate(rate: float | None, ci: list[float] | tuple[float, float] | None) -> str:
    """``33.3% [95% CI 12.1-64.6%]``."""
    if rate is None:
        return "n/a (no judged trials)"
    text = f"{100 * rate:.1f}%"
    if ci is not None:
        text += f" [95% CI {100 * ci[0]:.1f}-{100 * ci[1]:.1f}%]"
    return text
