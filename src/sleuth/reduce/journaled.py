"""What the journal keeps of the values a step tried: small, whatever the axis holds.

The trace (``reduction_trace.jsonl``, written when the reduction ends) keeps each value as
:meth:`~sleuth.reduce.plan.RuntimeAxis.brief` gives it: a list of more than 20 items as
``{"kept", "of", "ranges"}``.  The journal's ``baseline`` and ``candidate`` events, written as the
search goes (what a killed or running reduction's report reads), keep that form with every string
longer than :data:`VALUE_CHARS` cut there and marked ``... [N more characters]``: the ranges of a
50,000-file list that kept every other file, a long line of a file.  The sizes (a list's length,
``kept``, ``of``) stay whole.  Values are cut after they are scrubbed: a secret cut in two would no
longer be found.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["VALUE_CHARS", "bounded"]

#: the most characters of one string of a value that a journal event keeps
VALUE_CHARS = 200


def bounded(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (axis -> scrubbed value) with every string over :data:`VALUE_CHARS` cut and marked."""

    def cut(x: Any) -> Any:
        if isinstance(x, str) and len(x) > VALUE_CHARS:
            return f"{x[:VALUE_CHARS]}... [{len(x) - VALUE_CHARS} more characters]"
        if isinstance(x, dict):
            return {k: cut(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [cut(v) for v in x]
        return x

    return {name: cut(v) for name, v in values.items()}
