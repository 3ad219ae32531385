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

        self.check()
        data = _fetch_json(f"{self.index_url}/{self.package}/json")
        versions: list[Version] = []
        files_of: dict[str, list[dict[str, Any]]] = {}
        for text, files in data.get("releases", {}).items():
            try:
                v = Version(text)
            except InvalidVersion:
                continue
            if not files or all(f.get("yanked") for f in files) or (v.is_prerelease and not self.pre):
                continue
            versions.append(v)
            files_of[str(v)] = [f for f in files if not f.get("yanked")]
        versions.sort()
        labels = [str(v) for v in versions]
        lo = (
            self._find(labels, self.good, "--good")
            if self.good
            else self._oldest_installable(labels, files_of)
        )
        hi = self._find(labels, self.bad, "--bad") if self.bad else len(labels) - 1
        if lo >= hi:
            raise UsageError(f"--good {labels[lo]} is not older than --bad {labels[hi]}")
        return labels[lo : hi + 1]

    def check(self) -> None:
        """The flags that need no index: versions, ``--with`` requirements, ``--python``."""
        from packaging.requirements import InvalidRequirement, Requirement
        from packaging.version import InvalidVersion, Version

        for flag, ver in (("--good", self.good), ("--bad", self.bad)):
            try:
                if ver is not None:
                    Version(ver)
            except InvalidVersion:
                raise UsageError(f"{flag} {ver!r}: not a version", hint="e.g. --good 1.2.0") from None
        for pin in self.pins:
            try:
                Requirement(pin)
            except InvalidRequirement:
                raise UsageError(f"--with {pin!r}: not a requirement", hint="e.g. --with 'numpy<2'") from None
        if self.python is not None:
            from sleuth.environments.venv import uv_bin
            from sleuth.runner import run_tool

            found = run_tool(
                [str(uv_bin()), "python", "find", "--no-python-downloads", self.python], timeout_s=60
            )
            if not found.ok:
                raise UsageError(
                    f"--python {self.python}: no such interpreter here", hint="e.g. --python 3.11, or a path"
                )

    def _oldest_installable(self, labels: list[str], files_of: dict[str, list[dict[str, Any]]]) -> int:
        """The default good end: the oldest release with a wheel for the venvs' Python.

        A package that ships no wheel at all: the oldest whose ``Requires-Python`` admits it.  An
        interpreter given by path or name (not ``X.Y``) is not inspected: the oldest release.
        """
        import re
        import sys

        from packaging.tags import compatible_tags, cpython_tags, sys_tags
        from packaging.utils import InvalidWheelFilename, parse_wheel_filename

        if self.python is None:
            version, tags = ".".join(map(str, sys.version_info[:3])), set(sys_tags())
        elif m := re.fullmatch(r"(\d+)\.(\d+)(\.\d+)?", self.python):
            pv = (int(m[1]), int(m[2]))
            version, tags = self.python, {*cpython_tags(pv), *compatible_tags(pv)}
        else:
            return 0

        def wheel_fits(f: dict[str, Any]) -> bool:
            try:
                return bool(parse_wheel_filename(f.get("filename", ""))[3] & tags)
            except InvalidWheelFilename:
                return False

        def ok(lab: str, need_wheel: bool) -> bool:
            fs = [f for f in files_of[lab] if _admits(f.get("requires_python"), version)]
            return any(wheel_fits(f) for f in fs) if need_wheel else bool(fs)

        wheels = any(f.get("packagetype") == "bdist_wheel" for fs in files_of.values() for f in fs)
        return next((i for i, lab in enumerate(labels) if ok(lab, wheels)), 0)

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


def _admits(requires_python: str | None, version: str) -> bool:
    """Whether a file's ``Requires-Python`` admits ``version`` (no or an unparsable one does)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if not requires_python:
        return True
    try:
        return SpecifierSet(requires_python).contains(version, prereleases=True)
    except InvalidSpecifier:
        return True


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
