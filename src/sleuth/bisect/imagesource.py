"""Dated container images as candidates: :class:`ImageSource`, a tag made from a template with ``{date}``.

A tag that does not exist (checked without pulling) is a SKIP.  The dates themselves (listing,
thinning, the nearest existing one) are :mod:`sleuth.bisect.images`' pure functions; PyPI releases
are :mod:`sleuth.bisect.packaged`'s.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sleuth.bisect.candidates import Candidate, Prepared, parse_date, with_candidate
from sleuth.errors import UsageError
from sleuth.model import TrialSpec

__all__ = ["ImageSource"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ImageSource:
    """Dated image tags from a template with ``{date}``; a tag that does not exist is a SKIP.

    With the repository's tags listed (:mod:`sleuth.bisect.images`), only existing dates are
    candidates and the ends step to the nearest existing date; ``threshold_days`` keeps only as
    many dates as a final last-good/first-bad gap of that many days needs.  ``env_names``: the
    user's ``--env`` variables, passed into every container (values from the spec).  ``sources``
    (``NAME=PATH``), ``build`` and ``cache_mount`` are the commits stage that follows
    (:mod:`sleuth.bisect.chain`).
    """

    template: str
    start: str
    end: str
    runtime: str = "docker"
    mounts: tuple[str, ...] = ()
    date_format: str = "%Y-%m-%d"
    kind: str = "images"
    env_names: tuple[str, ...] = ()
    threshold_days: int = 1
    #: a failing ``start`` is stepped back from (1, 2, 4 ... days) until an image passes
    step_back: bool = False
    #: list the repository's tags when the runtime can (False: every day is a candidate)
    list_tags: bool = True
    sources: tuple[str, ...] = ()
    build: str | None = None
    cache_mount: str | None = None
    #: what resolving stepped over, for the user (not journaled as config)
    notes: list[str] = field(default_factory=list, init=False, repr=False)
    _dates: dict[date, str] | None = field(default=None, init=False, repr=False)
    _listed: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        from sleuth.bisect.images import bad_reference, split_template

        for name in ("mounts", "env_names", "sources"):
            setattr(self, name, tuple(getattr(self, name)))  # a resumed config holds lists
        if "{date}" not in self.template:
            raise UsageError(
                f"--template {self.template!r}: needs a {{date}} placeholder",
                hint="e.g. --template 'ghcr.io/org/image:nightly-{date}'",
            )
        day = date(2024, 2, 28)
        try:
            same = self.tag(day) == self.tag(day + timedelta(days=1))
        except ValueError as exc:
            raise UsageError(f"--date-format {self.date_format!r}: {exc}", hint="e.g. %Y-%m-%d") from None
        if same:
            raise UsageError(
                f"--date-format {self.date_format!r}: gives two days the same tag",
                hint="e.g. %Y-%m-%d or %Y%m%d",
            )
        if self.threshold_days < 1:
            raise UsageError(f"--threshold-days {self.threshold_days}: must be at least 1")
        why = bad_reference(self.tag(day)) if self.runtime in ("docker", "podman") else None
        if why is not None:  # docker and podman would refuse every tag, after the run dir exists
            stamp = day.strftime(self.date_format)
            if re.fullmatch(r"[A-Za-z0-9_.-]+", stamp):
                raise UsageError(f"--template {self.template!r} makes {self.tag(day)!r}: {why}",
                                 hint="e.g. --template 'ghcr.io/org/image:nightly-{date}'")  # fmt: skip
            raise UsageError(f"--date-format {self.date_format!r} makes {stamp!r}, not part of an image tag",
                             hint="letters, digits, '_', '.', '-' only: e.g. %Y-%m-%d")  # fmt: skip
        if not self.list_tags or split_template(self.template) is None:
            self._listed = True  # nothing to list

    def tag(self, day: date) -> str:
        """The image for one day."""
        return self.template.replace("{date}", day.strftime(self.date_format))

    def available(self) -> list[date] | None:
        """The days whose tag exists (listed once), sorted; None when the tags cannot be listed."""
        from sleuth.bisect.images import dated_tags, split_template
        from sleuth.environments.runtimes import list_tags, repository_of

        if not self._listed:
            self._listed = True
            parts = split_template(self.template)
            if parts is not None:
                repo = repository_of(parts[0] + "x")
                tags = list_tags(self.runtime, repo)
                if tags is not None:
                    self._dates = dated_tags(self.template, self.date_format, tags)
                    log.debug("%s lists %d tags of %s, %d of them dated", self.runtime, len(tags), repo,
                              len(self._dates))  # fmt: skip
                else:
                    log.debug("%s cannot list the tags of %s: every day is a candidate", self.runtime, repo)
        return sorted(self._dates) if self._dates is not None else None

    def newest(self) -> str | None:
        """The newest listed date (the default ``--end-date``), or None."""
        days = self.available()
        return days[-1].isoformat() if days else None

    def step_end(self) -> None:
        """Without ``start``: ``end`` stepped to the nearest existing date (newer first, a note
        says so), so that the end the gallop starts from is an image that exists."""
        from sleuth.bisect.images import nearest

        days = self.available()
        want = parse_date(self.end, "--end-date")
        got = nearest(days, want, newer_first=True) if days else None
        if got is not None and got != want:
            self.notes.append(f"--end-date {want}: no such tag; the nearest existing date is {got}")
            self.end = got.isoformat()

    def resolve(self) -> list[str]:
        """The images from ``start`` to ``end``: the existing dates when they can be listed (the
        ends stepped to the nearest existing ones: the start older first, the end newer first), else
        one per day; thinned by ``threshold_days``."""
        from sleuth.bisect.images import nearest, thin

        a, b = parse_date(self.start, "--start-date"), parse_date(self.end, "--end-date")
        if a >= b:
            raise UsageError(f"--start-date {self.start} must be before --end-date {self.end}")
        days = self.available()
        if days is None:
            return [
                self.tag(d)
                for d in thin([a + timedelta(days=i) for i in range((b - a).days + 1)], self.threshold_days)
            ]
        end = nearest(days, b, lo=a + timedelta(days=1), newer_first=True)
        if end is None or end <= a:
            raise UsageError(
                f"no tag of {self.template} between --start-date {self.start} and --end-date {self.end}",
                hint="check the template and the dates",
            )
        start = nearest(days, a, hi=end - timedelta(days=1))
        if start is None:
            raise UsageError(f"no tag of {self.template} before {end}", hint="give an older --start-date")
        for flag, want, got in (("--start-date", a, start), ("--end-date", b, end)):
            if want != got:
                self.notes.append(f"{flag} {want}: no such tag; the nearest existing date is {got}")
        self.start, self.end = start.isoformat(), end.isoformat()  # the ends tested (--step-back)
        return [self.tag(d) for d in thin([d for d in days if start <= d <= end], self.threshold_days)]

    def resolve_skip(self, values: tuple[str, ...], labels: list[str]) -> tuple[str, ...]:
        """``--skip DATE`` or ``--skip TAG``: images strictly between the ends."""
        out: list[str] = []
        for v in values:
            tag = v
            if len(v) == 10 and v[4:5] == "-":
                tag = self.tag(parse_date(v, "--skip"))
            if tag not in labels[1:-1]:
                raise UsageError(
                    f"--skip {v}: not an image between {labels[0]} and {labels[-1]}",
                    hint="give a date (YYYY-MM-DD) or a tag inside the range",
                )
            if tag not in out:
                out.append(tag)
        return tuple(out)

    def prepare(self, cand: Candidate, spec: TrialSpec, cand_dir: Path) -> Prepared:
        """Check the tag exists (no pull), then wrap the spec to run inside it; a runtime that
        cannot answer stops the bisection (:class:`~sleuth.bisect.images.RuntimeUnavailable`)."""
        from sleuth.bisect.images import RuntimeUnavailable
        from sleuth.environments.container import Mount, container_environment, image_exists
        from sleuth.errors import InfrastructureError

        try:
            exists = image_exists(self.runtime, cand.label)
            log.debug("%s: image %s %s", self.runtime, cand.label, "exists" if exists else "does not exist")
            if not exists:
                return Prepared(None, f"image {cand.label} does not exist")
        except InfrastructureError as exc:
            raise RuntimeUnavailable(exc.message, hint=exc.hint) from None
        forward = {k: spec.env[k] for k in self.env_names if k in spec.env}
        env = container_environment(
            self.runtime,
            cand.label,
            mounts=tuple(Mount.parse(m) for m in self.mounts),
            forward_env=forward,
            gpus=None,
        )
        prepared = env.prepare()
        inner = with_candidate(spec, cand)
        return Prepared(prepared.wrap(inner, extra_env={"SLEUTH_CANDIDATE": cand.label}))

    def config(self) -> dict[str, Any]:
        """The flags that rebuild it."""
        return {
            "kind": self.kind,
            "template": self.template,
            "start": self.start,
            "end": self.end,
            "runtime": self.runtime,
            "mounts": list(self.mounts),
            "date_format": self.date_format,
            "env_names": list(self.env_names),
            "threshold_days": self.threshold_days,
            "step_back": self.step_back,
            "list_tags": self.list_tags,
            "sources": list(self.sources),
            "build": self.build,
            "cache_mount": self.cache_mount,
        }
