"""Dated image tags: which dates exist, stepping to the nearest one, thinning by ``--threshold-days``.

A template such as ``ghcr.io/nvidia/jax:nightly-{date}`` names one image per day, but registries
skip days.  When the runtime can list the repository's tags (local images, ``skopeo list-tags``,
``podman search --list-tags``; see :func:`sleuth.environments.runtimes.list_tags`), the candidates
are the dates that exist, a date given on the command line steps to the nearest existing one (older
first), and the gallop back from a failing end steps from tag to tag.  When nothing can list them,
every day is a candidate and a missing tag is a SKIP.

Pure functions here; :class:`sleuth.bisect.packaged.ImageSource` asks the runtime.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, datetime

from sleuth.errors import ExitCode, SleuthError

__all__ = ["RuntimeUnavailable", "dated_tags", "nearest", "older_than", "split_template", "thin"]


class RuntimeUnavailable(SleuthError):
    """The container runtime or registry cannot answer: the bisection stops (exit 4), resumable.

    Not an ``InfrastructureError``: the trial engine turns those into one ERROR test and the search
    would go on counting every image as untestable.
    """

    exit_code = ExitCode.INFRASTRUCTURE


def split_template(template: str) -> tuple[str, str] | None:
    """(text before ``{date}``, text after) when ``{date}`` is in the tag, so that tags can be
    listed; None when it is in the repository's name (nothing lists those)."""
    head, sep, tail = template.partition("{date}")
    if not sep or "{date}" in tail:
        return None
    name_part = head.rsplit("/", 1)[-1]
    if ":" not in name_part or "/" in tail or "@" in head:
        return None
    return head, tail


def dated_tags(template: str, date_format: str, tags: list[str]) -> dict[date, str]:
    """``{day: tag}`` of the listed ``tags`` that the template makes for some day."""
    parts = split_template(template)
    if parts is None:
        return {}
    head, tail = parts
    out: dict[date, str] = {}
    for tag in tags:
        if not (tag.startswith(head) and tag.endswith(tail)) or len(tag) <= len(head) + len(tail):
            continue
        middle = tag[len(head) : len(tag) - len(tail)]
        try:
            day = datetime.strptime(middle, date_format).date()
        except ValueError:
            continue
        if template.replace("{date}", day.strftime(date_format)) == tag:  # a round trip, not a lookalike
            out[day] = tag
    return out


def nearest(days: list[date], want: date, *, lo: date | None = None, hi: date | None = None) -> date | None:
    """The existing day nearest to ``want`` in ``[lo, hi]``: ``want`` itself, else the newest older
    one, else the oldest newer one; None when there is none.  ``days`` sorted."""
    inside = [d for d in days if (lo is None or d >= lo) and (hi is None or d <= hi)]
    if want in inside:
        return want
    before = [d for d in inside if d < want]
    if before:
        return before[-1]
    after = [d for d in inside if d > want]
    return after[0] if after else None


def older_than(days: list[date], day: date, before: date) -> date | None:
    """The newest existing day at or before ``day`` and strictly before ``before``."""
    i = bisect_right(days, min(day, before))
    while i > 0 and days[i - 1] >= before:
        i -= 1
    return days[i - 1] if i > 0 else None


def thin(days: list[date], threshold_days: int) -> list[date]:
    """The fewest days from ``days`` (sorted; both ends kept) such that neighbours are at most
    ``threshold_days`` apart wherever the full list allows it: a bisection over them ends with a
    last good and a first bad at most that far apart (``--threshold-days``)."""
    if threshold_days <= 1 or len(days) <= 2:
        return list(days)
    kept = [days[0]]
    i = 0
    while i < len(days) - 1:
        j = i + 1
        while j + 1 < len(days) and (days[j + 1] - days[i]).days <= threshold_days:
            j += 1
        kept.append(days[j])
        i = j
    return kept
