"""A report page as plain data: what each verb's module builds and :mod:`sleuth.report.html` renders.

Nothing here knows HTML: text is text (escaped when rendered), figures are SVG documents made by
:mod:`sleuth.report.figures`, and a :class:`Status` says how the page's headline is coloured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

__all__ = ["Block", "Figure", "Log", "Note", "Page", "Section", "Status", "Table"]


class Status(Enum):
    """How the headline reads: the colour a person scans for first."""

    GOOD = "good"  # passed, found, reduced, fixed
    BAD = "bad"  # failed, regressed
    UNSURE = "unsure"  # inconclusive, ambiguous, interrupted, still running
    NEUTRAL = "neutral"


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of cells under a header; ``numeric`` columns are right-aligned."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    numeric: frozenset[int] = frozenset()
    #: rows cut to keep the page small: ``(shown, total)``, or None when all are shown
    cut: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Figure:
    """An SVG drawing (a whole ``<svg>`` document from :func:`sleuth.report.figures.svg`)."""

    svg: str
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Log:
    """The tail of a log file, scrubbed: ``title`` names the file (relative to the run dir)."""

    title: str
    text: str
    #: bytes of the file left out above the tail (0: the whole file is shown)
    omitted: int = 0


@dataclass(frozen=True, slots=True)
class Note:
    """A paragraph of plain text."""

    text: str


Block = Table | Figure | Log | Note


@dataclass(frozen=True, slots=True)
class Section:
    """A titled part of the page."""

    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class Page:
    """One report: a headline with its status, key facts, then sections."""

    verb: str
    title: str
    headline: str
    status: Status
    run_dir: str
    facts: tuple[tuple[str, str], ...] = ()
    sections: tuple[Section, ...] = ()
    #: the command that made the run (shell-quoted, scrubbed), when known
    command: str = ""
    generated: str = field(default="")
