"""Dated image tags: which dates exist, stepping to the nearest one, thinning by ``--threshold-days``.

A template such as ``ghcr.io/nvidia/jax:nightly-{date}`` names one image per day, but registries
skip days.  When the runtime can list the repository's tags (local images, ``skopeo list-tags``,
``podman search --list-tags``; see :func:`sleuth.environments.runtimes.list_tags`), the candidates
are the dates that exist, a date given on the command line steps to the nearest existing one (the
start older first, the end newer first), and the gallop back from a failing end steps from tag to
tag.  When nothing can list them, every day is a candidate and a missing tag is a SKIP.

The dates are pure functions; :class:`sleuth.bisect.imagesource.ImageSource` asks the runtime, and
:func:`image_ends` runs the driver's tests of the ends when no passing start is known.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from sleuth.errors import ExitCode, SleuthError

if TYPE_CHECKING:
    from sleuth.bisect.driver import Driver
    from sleuth.bisect.imagesource import ImageSource
    from sleuth.bisect.strategies import SearchResult
    from sleuth.bisect.trials import TestEvent

__all__ = [
    "RuntimeUnavailable",
    "bad_reference",
    "dated_tags",
    "gallop",
    "image_ends",
    "nearest",
    "older_than",
    "split_template",
    "thin",
]

#: how far back the gallop goes without a passing image
GALLOP_DAYS = 512


class RuntimeUnavailable(SleuthError):
    """The container runtime or registry cannot answer: the bisection stops (exit 4), resumable.

    Not an ``InfrastructureError``: the trial engine turns those into one ERROR test and the search
    would go on counting every image as untestable.
    """

    exit_code = ExitCode.INFRASTRUCTURE


_HOST = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
#: docker/podman's image reference grammar (distribution/reference), without a digest
_REFERENCE_RE = re.compile(
    rf"(?:(?:{_HOST}(?:\.{_HOST})*(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)/)?{_PATH}(?:/{_PATH})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
)


def bad_reference(image: str) -> str | None:
    """Why ``image`` is not a docker/podman image reference (upper case in the repository, a
    ``/`` or a space in the tag ...), or None."""
    if _REFERENCE_RE.fullmatch(image):
        return None
    name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
    if name != name.lower() and name.rsplit("/", 1)[-1] != name.rsplit("/", 1)[-1].lower():
        return "a repository name must be lower case"
    if tag:
        return "a tag is letters, digits, '_', '.' and '-' (at most 128)"
    return "not an image reference (e.g. ghcr.io/org/image:tag)"


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


def nearest(days: list[date], want: date, *, lo: date | None = None, hi: date | None = None,
            newer_first: bool = False) -> date | None:  # fmt: skip
    """The existing day nearest to ``want`` in ``[lo, hi]``: ``want`` itself, else the newest older
    one, else the oldest newer one (``newer_first``: the oldest newer one, else the newest older
    one); None when there is none.  ``days`` sorted.

    The start of a search steps older and its end newer: a date before a passing one passes too,
    and one after a failing one fails too (``--find-fix``: one after a fixed image is fixed too).
    """
    inside = [d for d in days if (lo is None or d >= lo) and (hi is None or d <= hi)]
    if want in inside:
        return want
    before = [d for d in inside if d < want]
    after = [d for d in inside if d > want]
    if newer_first:
        return after[0] if after else (before[-1] if before else None)
    return before[-1] if before else (after[0] if after else None)


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


def gallop(driver: Driver, src: ImageSource, origin: date) -> list[TestEvent]:
    """Step back 1, 2, 4 ... days from ``origin`` until an image passes; with the tags listed,
    each step lands on the newest existing date older than the last one tested."""
    from sleuth.model import Outcome

    days = src.available()
    found: list[TestEvent] = []
    step, last = 1, origin
    while step <= GALLOP_DAYS:
        day: date | None = origin - timedelta(days=step)
        if days is not None and day is not None:
            day = older_than(days, day, last)
        if day is None:
            break
        (ev,) = driver.run_now([(-1, src.tag(day))], "gallop")
        found.append(ev)
        last = day
        if ev.counted is Outcome.PASS:
            src.start = day.isoformat()
            return found
        step *= 2
    return found


def image_ends(driver: Driver, src: ImageSource) -> list[TestEvent] | SearchResult:
    """The dated ends without a known-good start (or with ``step_back`` and a failing one).

    The end must fail (not tested with ``--skip-precondition-checks``); then the gallop back from
    it, or from the start when the start fails too, finds a passing date.  The tests, or the
    search's answer when the ends misbehave.
    """
    from sleuth.bisect.candidates import parse_date
    from sleuth.bisect.endchecks import not_found
    from sleuth.model import Outcome

    end = parse_date(src.end, "--end-date")
    if driver.opt.check_ends:
        bad = driver.run_now([(-1, src.tag(end))], "bad end")[0]
        if bad.outcome is not Outcome.FAIL:
            return driver._ends_failed(None, bad)
        driver.signature = bad.signature
    found: list[TestEvent] = []
    origin = end
    if src.start:  # --step-back: the given start first
        good = driver.run_now([(-1, src.tag(parse_date(src.start, "--start-date")))], "good end")[0]
        found.append(good)
        if good.counted is Outcome.PASS:
            return found
        if good.outcome is not Outcome.FAIL:
            return driver._ends_failed(good, None)
        origin = parse_date(src.start, "--start-date")
    found += gallop(driver, src, origin)
    if not found or found[-1].counted is not Outcome.PASS:
        where = f"{GALLOP_DAYS} days before {origin}" if src.available() is None else f"tags before {origin}"
        return not_found(f"no passing image in the {where}")
    if driver.signature is None:  # the end was not tested: the first failure seen defines "bad"
        driver.signature = next((e.signature for e in found if e.outcome is Outcome.FAIL), None)
    return found
