"""Formatting and colour rules shared by the report pages."""

from __future__ import annotations

import math
import time
from typing import Any

from sleuth.report import figures

__all__ = ["MAX_ROWS", "fmt_num", "fmt_pct", "fmt_seconds", "fmt_time", "outcome_colour"]

#: the most rows a table shows (the run dir's JSON files keep every one)
MAX_ROWS = 200


def fmt_num(x: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; '' for a missing one, 'nan'/'inf' as such."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return ""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"


def fmt_pct(x: Any) -> str:
    """A fraction as a percentage with one decimal."""
    return "?" if not isinstance(x, int | float) or isinstance(x, bool) else f"{100 * x:.1f}%"


def fmt_seconds(x: Any) -> str:
    """Seconds, to the millisecond below a minute."""
    if not isinstance(x, int | float) or isinstance(x, bool) or not math.isfinite(x):
        return ""
    return f"{x:.3f}s" if x < 60 else f"{x / 60:.1f} min"


def fmt_time(t: Any) -> str:
    """A UNIX time as UTC ``YYYY-MM-DD HH:MM:SS UTC``."""
    if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def outcome_colour(outcome: str) -> str:
    """The colour of a trial outcome in every figure."""
    return {"pass": figures.GOOD, "fail": figures.BAD, "error": figures.UNSURE}.get(outcome, figures.MUTED)
