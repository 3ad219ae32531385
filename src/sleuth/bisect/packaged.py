"""Packaged candidates: released versions on a package index, dated container images.

A PyPI candidate is a cached uv venv with ``PACKAGE==VERSION`` (plus the ``--with`` pins); a
version that does not install for the interpreter is a SKIP.  An image candidate is a tag made
from a template with ``{date}``; a tag that does not exist (checked without pulling) is a SKIP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sleuth.bisect.candidates import Candidate, Prepared, parse_date, with_candidate
from sleuth.errors import EnvironmentBuildError, InfrastructureError, UsageError
from sleuth.model import TrialSpec

__all__ = ["ImageSource", "PypiSource"]


@dataclass(slots=True)
class PypiSource:
    """Released versions of one package; each candidate is a cached uv venv."""

    package: str
    good: str | None = None
    bad: str | None = None
    python: str | None = None
    pins: tuple[str, ...] = ()
    pre: bool = False
    index_url: str = "https://pypi.org/pypi"
    kind: str = "pypi"

    def resolve(self) -> list[str]:
        """Versions from the index's JSON API, sorted, cut to ``good..bad``."""
        from packaging.version import InvalidVersion, Version

        data = _fetch_json(f"{self.index_url}/{self.package}/json")
        versions: list[Version] = []
        for text, files in data.get("releases", {}).items():
            try:
                v = Version(text)
            except InvalidVersion:
                continue
            if not files or all(f.get("yanked") for f in files) or (v.is_prerelease and not self.pre):
                continue
            versions.append(v)
        versions.sort()
        labels = [str(v) for v in versions]
        lo = self._find(labels, self.good, "--good") if self.good else 0
        hi = self._find(labels, self.bad, "--bad") if self.bad else len(labels) - 1
        if lo >= hi:
            raise UsageError(f"--good {labels[lo]} is not older than --bad {labels[hi]}")
        return labels[lo : hi + 1]

    def _find(self, labels: list[str], version: str, flag: str) -> int:
        from packaging.version import Version

        want = Version(version)
        for i, lab in enumerate(labels):
            if Version(lab) == want:
                return i
        raise UsageError(
            f"{flag} {version}: no such release of {self.package}", hint="see pip index versions"
        )

    def prepare(self, cand: Candidate, spec: TrialSpec, cand_dir: Path) -> Prepared:
        """Build (or reuse) the venv with PACKAGE==VERSION; one that does not install is a SKIP."""
        from sleuth.environments.venv import VenvEnvironment

        env = VenvEnvironment(pins=(f"{self.package}=={cand.label}", *self.pins), python=self.python)
        try:
            prepared = env.prepare()
        except EnvironmentBuildError as exc:
            cand_dir.mkdir(parents=True, exist_ok=True)
            (cand_dir / "build.log").write_text(str(exc) + "\n", encoding="utf-8")
            return Prepared(None, f"does not install: {exc.message[:200]}")
        return Prepared(prepared.wrap(with_candidate(spec, cand)))

    def config(self) -> dict[str, Any]:
        """The flags that rebuild it."""
        return {
            "kind": self.kind,
            "package": self.package,
            "good": self.good,
            "bad": self.bad,
            "python": self.python,
            "pins": list(self.pins),
            "pre": self.pre,
            "index_url": self.index_url,
        }


def _fetch_json(url: str) -> Any:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise UsageError(f"{url}: no such package on the index") from exc
        raise InfrastructureError(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise InfrastructureError(f"{url}: the package index is unreachable ({exc})") from exc


@dataclass(slots=True)
class ImageSource:
    """Dated image tags from a template with ``{date}``; a missing tag is a SKIP."""

    template: str
    start: str
    end: str
    runtime: str = "docker"
    mounts: tuple[str, ...] = ()
    date_format: str = "%Y-%m-%d"
    kind: str = "images"

    def __post_init__(self) -> None:
        if "{date}" not in self.template:
            raise UsageError(f"--template {self.template!r}: needs a {{date}} placeholder")

    def tag(self, day: date) -> str:
        """The image for one day."""
        return self.template.replace("{date}", day.strftime(self.date_format))

    def resolve(self) -> list[str]:
        """One image per day from ``start`` to ``end``."""
        a, b = parse_date(self.start, "--start-date"), parse_date(self.end, "--end-date")
        if a >= b:
            raise UsageError(f"--start-date {self.start} must be before --end-date {self.end}")
        return [self.tag(a + timedelta(days=i)) for i in range((b - a).days + 1)]

    def prepare(self, cand: Candidate, spec: TrialSpec, cand_dir: Path) -> Prepared:
        """Check the tag exists (no pull), then wrap the spec to run inside it."""
        from sleuth.environments.container import Mount, container_environment, image_exists

        if not image_exists(self.runtime, cand.label):
            return Prepared(None, f"image {cand.label} does not exist")
        env = container_environment(
            self.runtime, cand.label, mounts=tuple(Mount.parse(m) for m in self.mounts)
        )
        prepared = env.prepare()
        out = cand_dir / "output"
        inner = with_candidate(spec, cand)
        return Prepared(prepared.wrap(inner, output_dir=out, extra_env={"SLEUTH_CANDIDATE": cand.label}))

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
        }
