"""Packaged candidates: released versions on a package index, dated container images.

A PyPI candidate is a cached uv venv with ``PACKAGE==VERSION`` (plus the ``--with`` pins); a
version that does not install for the interpreter is a SKIP.  An image candidate is a tag made
from a template with ``{date}``; a tag that does not exist (checked without pulling) is a SKIP.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sleuth.bisect.candidates import Candidate, Prepared, parse_date, with_candidate
from sleuth.bisect.index import PYPI, is_pypi, normalize, project_urls, read_projects, release_notes
from sleuth.datafile import read_capped
from sleuth.errors import EnvironmentBuildError, UsageError
from sleuth.model import TrialSpec
from sleuth.secrets import scrub_text

__all__ = ["ImageSource", "PypiSource"]

log = logging.getLogger(__name__)


#: how many releases the default older end may step over when it does not install
STEP_MAX = 5
#: a candidate's file listing what its venv holds (``uv pip freeze``)
PACKAGES = "packages.txt"


@dataclass(slots=True)
class PypiSource:
    """Released versions of one package; each candidate is a cached uv venv.

    ``package`` may carry extras (``transformers[torch]``): the releases are the distribution's,
    each venv installs ``transformers[torch]==V``.
    """

    package: str
    good: str | None = None
    bad: str | None = None
    python: str | None = None
    pins: tuple[str, ...] = ()
    #: ``--constraint FILE``'s requirements (read at the start, the package's own left out): every
    #: venv is resolved under them, so the other packages stay where the user's environment has them
    constraints: tuple[str, ...] = ()
    pre: bool = False
    index_url: str = PYPI
    #: extra indexes (``--extra-index-url``, ``$UV_INDEX``...), asked before ``index_url`` as uv does
    extra_index_urls: tuple[str, ...] = ()
    #: the releases an extra index serves: label -> its position in ``extra_index_urls`` (journaled)
    from_extra: dict[str, int] = field(default_factory=dict)
    #: the positions of the extra indexes that have the package (journaled)
    extra_with_package: tuple[int, ...] = ()
    #: the positions of the extra indexes that uv's configuration files add (journaled): an install
    #: cannot leave them out (:mod:`sleuth.bisect.uvconfig`)
    fixed_extras: tuple[int, ...] = ()
    #: give uv ``index_url`` even when it is PyPI (journaled): uv's configuration sets another default
    pypi_over_config: bool = False
    #: where each extra index came from (a flag, a variable, a file), for messages (not journaled)
    origins: dict[str, str] = field(default_factory=dict, repr=False)
    #: the index of uv's own configuration that has the package, when there is one (see resolve)
    only_from: str | None = field(default=None, repr=False)
    #: the failing ``bad`` release is the older one: search for the first release that passes
    find_fix: bool = False
    kind: str = "pypi"
    #: releases the default older end stepped over: ``[{"version", "reason"}]`` (journaled)
    stepped: list[dict[str, str]] = field(default_factory=list, repr=False)
    #: the project's links, as the index gave them with the releases (None: not asked yet, a resume)
    urls: dict[str, str] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The distribution's name: ``package`` without its extras (``transformers[torch]``)."""
        return self.package.partition("[")[0]

    @property
    def _ends(self) -> tuple[tuple[str | None, str], tuple[str | None, str]]:
        """((older version, its flag), (newer version, its flag))."""
        if self.find_fix:
            return (self.bad, "--bad"), (self.good, "--good")
        return (self.good, "--good"), (self.bad, "--bad")

    def resolve(self) -> list[str]:
        """Versions from the index, sorted, cut to the ends (the default older end must install)."""
        from packaging.version import InvalidVersion, Version

        self.check()
        # an end the user named is a candidate even when it is a pre-release or yanked (`==` installs it)
        named = {Version(x) for x in (self.good, self.bad) if x}
        named_public = {v.public for v in named}
        versions: list[Version] = []
        files_of: dict[str, list[dict[str, Any]]] = {}
        extras = self.extra_index_urls
        fixed = frozenset(extras[i] for i in self.fixed_extras if i < len(extras))
        releases, self.urls, having = read_projects(self.index_url, extras, self.name, fixed, self.origins)
        self.extra_with_package = tuple(i for i, u in enumerate(extras) if u in having)
        cut = next((u for u in having if u in fixed), None)  # the indexes after it were not read
        self.only_from = None if cut is None else f"{scrub_text(cut)} ({self.origins.get(cut, 'uv.toml')})"
        for text, files in releases.items():
            try:
                v = Version(text)
            except InvalidVersion:
                continue
            end = v in named or (v.local is not None and v.public in named_public)
            if not files or (
                not end and (all(f.get("yanked") for f in files) or (v.is_prerelease and not self.pre))
            ):
                continue
            versions.append(v)
            files_of[str(v)] = [f for f in files if not f.get("yanked")] or files
        versions.sort()
        labels = [str(v) for v in versions]
        self.from_extra = {lab: extras.index(fs[0]["index"]) for lab, fs in files_of.items()
                           if fs and fs[0].get("index") in extras}  # fmt: skip
        if not labels:
            raise UsageError(f"{self.package}: no releases on {scrub_text(self.index_url)}",
                             hint="check the name, or pass --pre for pre-releases")  # fmt: skip
        (old, old_flag), (new, new_flag) = self._ends
        lo = self._find(labels, old, old_flag) if old else self._oldest_installable(labels, files_of)
        hi = self._find(labels, new, new_flag) if new else len(labels) - 1
        if lo >= hi:
            raise UsageError(f"{old_flag} {labels[lo]} is not older than {new_flag} {labels[hi]}",
                             hint="with --find-fix the failing --bad release is the older one"
                             if self.find_fix else "give an older --good")  # fmt: skip
        if not old:
            lo = self._step_to_installable(labels, lo, hi)
        self.from_extra = {k: v for k, v in self.from_extra.items() if k in labels[lo : hi + 1]}
        return labels[lo : hi + 1]

    def _step_to_installable(self, labels: list[str], lo: int, hi: int) -> int:
        """The default older end, or up to :data:`STEP_MAX` releases later when it does not install."""
        self.stepped.clear()
        while lo < hi - 1 and len(self.stepped) < STEP_MAX:
            try:
                self._venv(labels[lo]).prepare()
                break
            except EnvironmentBuildError as exc:
                self.stepped.append({"version": labels[lo], "reason": scrub_text(exc.message[:300])})
                lo += 1
        return lo

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
        if self.good and self.bad and Version(self.good) == Version(self.bad):
            raise UsageError(f"--good {self.good} and --bad {self.bad} are the same release",
                             hint="a bisection needs two different releases")  # fmt: skip
        for pin in self.pins:
            try:
                Requirement(pin)
            except InvalidRequirement:
                raise UsageError(f"--with {pin!r}: not a requirement", hint="e.g. --with 'numpy<2'") from None
        if self.python is not None:
            from sleuth.environments.venv import find_python

            find_python(self.python)

    def _oldest_installable(self, labels: list[str], files_of: dict[str, list[dict[str, Any]]]) -> int:
        """The default older end: the oldest release with a wheel for the venvs' Python.

        A package that ships no wheel at all: the oldest whose ``Requires-Python`` admits it.  An
        interpreter that cannot be asked its version: the oldest release.
        """
        import re
        import sys

        from packaging.tags import compatible_tags, cpython_tags, sys_tags
        from packaging.utils import InvalidWheelFilename, parse_wheel_filename

        if self.python is None:
            version, tags = ".".join(map(str, sys.version_info[:3])), set(sys_tags())
        else:
            m = re.fullmatch(r"(?:python)?(\d+)\.(\d+)(\.\d+)?", self.python)
            if m is None:
                from sleuth.environments.venv import find_python, python_version

                got = python_version(find_python(self.python))
                if got is None:
                    return 0
                m = re.fullmatch(r"(\d+)\.(\d+)", f"{got[0]}.{got[1]}")
                assert m is not None
            pv = (int(m[1]), int(m[2]))
            version, tags = f"{pv[0]}.{pv[1]}", {*cpython_tags(pv), *compatible_tags(pv)}

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
        # `--good 2.3.0` on an index whose releases carry a local label (torch's 2.3.0+cu121)
        local = [
            i for i, lab in enumerate(labels) if want.local is None and Version(lab).public == want.public
        ]
        if len(local) == 1:
            return local[0]
        if local:
            raise UsageError(
                f"{flag} {version}: several releases of {self.package} are {version}: "
                + ", ".join(labels[i] for i in local),
                hint=f"give one, e.g. {flag} {labels[local[0]]}",
            )
        at = sum(Version(lab) < want for lab in labels)  # the releases either side of it
        near = ", ".join(labels[max(0, at - 2) : at + 2])
        only = f" on {self.only_from}, the index uv installs it from" if self.only_from else ""
        raise UsageError(
            f"{flag} {version}: no such release of {self.name}{only}",
            hint=f"the releases around it: {near}" if near else "see pip index versions",
        )

    def resolve_skip(self, values: tuple[str, ...], labels: list[str]) -> tuple[str, ...]:
        """``--skip VER``: releases strictly between the ends."""
        from packaging.version import InvalidVersion, Version

        out: list[str] = []
        for v in values:
            try:
                want = Version(v)
            except InvalidVersion:
                raise UsageError(f"--skip {v!r}: not a version", hint="e.g. --skip 1.2.0") from None
            lab = next((x for x in labels[1:-1] if Version(x) == want), None)
            if lab is None:
                raise UsageError(f"--skip {v}: not a release between {labels[0]} and {labels[-1]}")
            if lab not in out:
                out.append(lab)
        return tuple(out)

    def _venv(self, version: str) -> Any:
        from sleuth.environments.venv import VenvEnvironment

        index = None if is_pypi(self.index_url) and not self.pypi_over_config else self.index_url
        return VenvEnvironment(
            pins=(f"{self.package}=={version}", *self.pins),
            python=self.python,
            index_url=index,
            constraints=self.constraints,
            extra_index_urls=self._extras_for(version) if self.extra_index_urls else None,
        )

    def _extras_for(self, version: str) -> tuple[str, ...]:
        """The extra indexes of ``version``'s venv: all but those before the one that serves it that
        have the package (uv takes a package from the first index that has it, so a release only a
        later index, or the default, serves would not be found)."""
        at = self.from_extra.get(version, len(self.extra_index_urls))
        return tuple(
            u for i, u in enumerate(self.extra_index_urls) if i >= at or i not in self.extra_with_package
        )

    def prepare(self, cand: Candidate, spec: TrialSpec, cand_dir: Path) -> Prepared:
        """Build (or reuse) the venv with PACKAGE==VERSION; one that does not install is a SKIP."""
        try:
            prepared = self._venv(cand.label).prepare()
        except EnvironmentBuildError as exc:
            cand_dir.mkdir(parents=True, exist_ok=True)
            (cand_dir / "build.log").write_text(scrub_text(str(exc)) + "\n", encoding="utf-8")
            return Prepared(None, f"does not install: {scrub_text(exc.message[:200])}")
        if prepared.packages:  # what else the venv holds: the answer's two are compared
            text = "".join(f"{p}\n" for p in prepared.packages)
            (cand_dir / PACKAGES).write_text(scrub_text(text), encoding="utf-8")
        return Prepared(prepared.wrap(with_candidate(spec, cand)))

    def release_notes(self, version: str) -> list[str]:
        """Where to read what ``version`` changed (:func:`sleuth.bisect.index.release_notes`)."""
        if self.urls is None:
            self.urls = project_urls(self.index_url, self.name)
        return release_notes(self.urls, self.name, version, self.index_url)

    def changed(self, last_good: Path, first_bad: Path) -> list[dict[str, str | None]]:
        """The other packages whose version differs between two candidates' venvs (their
        ``packages.txt``): ``[{"name", "last_good", "first_bad"}]`` (None: not installed), by name;
        empty when either was not recorded."""
        me = normalize(self.name)
        a, b = _installed(last_good / PACKAGES), _installed(first_bad / PACKAGES)
        if a is None or b is None:
            return []
        names = sorted((set(a) | set(b)) - {me})
        return [
            {"name": n, "last_good": a.get(n), "first_bad": b.get(n)} for n in names if a.get(n) != b.get(n)
        ]

    def config(self) -> dict[str, Any]:
        """The flags that rebuild it."""
        return {
            "kind": self.kind,
            "package": self.package,
            "good": self.good,
            "bad": self.bad,
            "python": self.python,
            "pins": list(self.pins),
            "constraints": list(self.constraints),
            "pre": self.pre,
            "index_url": self.index_url,
            "find_fix": self.find_fix,
            **({"pypi_over_config": True} if self.pypi_over_config else {}),
            **(
                {
                    "extra_index_urls": list(self.extra_index_urls),
                    "from_extra": dict(self.from_extra),
                    "extra_with_package": list(self.extra_with_package),
                    **({"fixed_extras": list(self.fixed_extras)} if self.fixed_extras else {}),
                }
                if self.extra_index_urls
                else {}
            ),
        }


#: the largest ``--constraint`` file read (a ``pip freeze`` of a big environment is a few KiB)
CONSTRAINTS_MAX_BYTES = 1024 * 1024


def read_constraints(path: Path, package: str) -> tuple[list[str], list[str]]:
    """``(constraints, left out)`` of a ``--constraint`` file (``pip freeze`` or ``uv pip freeze``
    output, a constraints.txt): one requirement a line, ``#`` comments and blank lines skipped; the
    lines naming ``package`` are left out (they would hold it at one version).  A line that is not a
    requirement (``-e``, ``-r``, an option) is a UsageError naming the file and the line."""
    from packaging.requirements import InvalidRequirement, Requirement

    raw = read_capped(
        path,
        CONSTRAINTS_MAX_BYTES,
        what=f"--constraint {path}",
        error=UsageError,
        hint="give a requirements file",
    )
    me = normalize(package.partition("[")[0])
    keep: list[str] = []
    dropped: list[str] = []
    for n, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        text = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not text:
            continue
        try:
            req = Requirement(text)
        except InvalidRequirement:
            raise UsageError(
                f"--constraint {path}:{n}: {scrub_text(text)[:80]!r} is not a requirement",
                hint="one requirement a line, e.g. numpy==1.26.4 (no -e, -r or options)",
            ) from None
        (dropped if normalize(req.name) == me else keep).append(text)
    return keep, dropped


def _installed(path: Path) -> dict[str, str] | None:
    """``{normalized name: version or direct reference}`` of a ``packages.txt``; None if absent."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    out: dict[str, str] = {}
    for line in lines:
        name, sep, ver = line.partition("==")
        if not sep:
            name, sep, ver = line.partition(" @ ")
        if sep and name.strip():
            out[normalize(name.strip())] = ver.strip()
    return out


def _admits(requires_python: str | None, version: str) -> bool:
    """Whether a file's ``Requires-Python`` admits ``version`` (no or an unparsable one does)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if not requires_python:
        return True
    try:
        return SpecifierSet(requires_python).contains(version, prereleases=True)
    except InvalidSpecifier:
        return True


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
