"""Tables that read well anywhere: one line per row when it fits, folded columns when it does not.

A name is never broken.  On a terminal (or with ``COLUMNS`` set) the first layout that fits the
width is used: every column on one line; then the same with short headers; then rows of two or
three lines (the names first, the numbers below, indented); last, one ``header: value`` line per
field.  Piped or in a CI log without ``COLUMNS``, a row is one line however long it is: nothing
is wrapped at 80 columns or cut.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Cell", "Column", "Layout", "available_width", "render", "render_lines"]

GAP = "  "
INDENT = "    "


@dataclass(frozen=True, slots=True)
class Column:
    """A column: its header, a shorter header for narrow layouts, right-aligned or not."""

    header: str
    short: str = ""
    right: bool = False


@dataclass(frozen=True, slots=True)
class Cell:
    """One value, with an optional rich style (never markup: names are printed as they are)."""

    text: str
    style: str = ""


#: a layout: the lines of one row, each the indices of the columns it shows
Layout = Sequence[Sequence[int]]


def available_width(console: Any) -> int | None:
    """The width to fit: the terminal's or ``COLUMNS``; None (unlimited) in a pipe or a log."""
    if not console.is_terminal and "COLUMNS" not in os.environ:
        return None
    return int(console.width)


def _widths(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], short: bool) -> list[int]:
    heads = [(c.short or c.header) if short else c.header for c in columns]
    return [max([len(heads[i]), *(len(r[i].text) for r in rows)]) for i in range(len(columns))]


def _line_width(line: Sequence[int], widths: Sequence[int], first: bool) -> int:
    used = [widths[i] for i in line if widths[i]]
    return (0 if first else len(INDENT)) + sum(used) + len(GAP) * max(0, len(used) - 1)


def _fits(layout: Layout, widths: Sequence[int], width: int) -> bool:
    # a row's first line holds the names: it is printed whole even when longer than the width
    return all(
        _line_width(line, widths, i == 0) <= width for i, line in enumerate(layout) if i or len(layout) == 1
    )


def render_lines(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    width: int | None,
    layouts: Sequence[Layout],
) -> list[list[Cell]]:
    """The lines to print (each a list of styled pieces): the header lines, then every row's."""
    full = [list(range(len(columns)))]
    candidates: list[tuple[Layout, bool]] = [(full, False), (full, True)]
    candidates += [(lay, True) for lay in layouts]
    for layout, short in candidates:
        widths = _widths(columns, rows, short)
        if width is None or _fits(layout, widths, width):
            ragged = width is not None and _line_width(layout[0], widths, True) > width
            return _lay_out(columns, rows, layout, widths, short=short, ragged=ragged)
    return _blocks(columns, rows, width or 80)


def _lay_out(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    layout: Layout,
    widths: Sequence[int],
    *,
    short: bool,
    ragged: bool,
) -> list[list[Cell]]:
    def line(cells: Sequence[Cell], cols: Sequence[int], first: bool) -> list[Cell]:
        out: list[Cell] = [] if first else [Cell(INDENT)]
        for n, i in enumerate(cols):
            c = cells[i]
            last = n == len(cols) - 1
            if ragged and first:  # the names' line does not fit padded: names stay whole, unaligned
                text = c.text
            elif columns[i].right:
                text = c.text.rjust(widths[i])
            else:
                text = c.text if last else c.text.ljust(widths[i])
            out.append(Cell(text, c.style))
            if not last:
                out.append(Cell(GAP))
        while out and not out[-1].text.strip():  # no trailing blanks (an empty last column)
            out.pop()
        if out:
            out[-1] = Cell(out[-1].text.rstrip(), out[-1].style)
        return out

    heads = [Cell((c.short or c.header) if short else c.header, "bold") for c in columns]
    out = [line(heads, cols, k == 0) for k, cols in enumerate(layout)]
    for row in rows:
        lines = [line(row, cols, k == 0) for k, cols in enumerate(layout)]
        out.extend(ln for k, ln in enumerate(lines) if k == 0 or ln)  # an empty folded line is left out
    return out


def _words(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width``, broken only at spaces (a longer word stays whole)."""
    lines: list[str] = []
    cur = ""
    for word in text.split(" "):
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    return [*lines, cur]


def _blocks(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int) -> list[list[Cell]]:
    """Last resort: the first field on a line of its own, then ``header: value`` lines."""
    out: list[list[Cell]] = []
    for row in rows:
        out.append([Cell(row[0].text, row[0].style or "bold")])
        for col, cell in zip(columns[1:], row[1:], strict=True):
            if not cell.text:
                continue
            label = f"{INDENT}{col.short or col.header}: "
            for k, piece in enumerate(_words(cell.text, max(8, width - len(label)))):
                out.append([Cell(label if k == 0 else " " * len(label), "dim"), Cell(piece, cell.style)])
    return out


def render(
    console: Any,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    layouts: Sequence[Layout] = (),
    title: str | None = None,
) -> None:
    """Print the table on ``console`` in the first layout that fits (see the module docstring)."""
    from rich.text import Text

    if title is not None:
        console.print(Text(title), soft_wrap=True)
    for pieces in render_lines(columns, rows, available_width(console), layouts):
        text = Text()
        for p in pieces:
            text.append(p.text, style=p.style or None)
        console.print(text, soft_wrap=True)
