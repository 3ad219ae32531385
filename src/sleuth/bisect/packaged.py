"""PyPI candidates: released versions of one package on a package index (:class:`PypiSource`).

A PyPI candidate is a cached uv venv with ``PACKAGE==VERSION`` (plus the ``--with`` pins); a
version that does not install for the interpreter is a SKIP.  What is read besides the index (a
``--constraint`` file, a candidate's ``packages.txt``, which files fit the interpreter) is
:mod:`sleuth.bisect.pypifiles`'; dated container images are :mod:`sleuth.bisect.imagesource`'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.bisect.candidates import Candidate, Prepared, with_candidate
from sleuth.bisect.index import PYPI, is_pypi, normalize, project_urls, read_projects, release_notes
from sleuth.bisect.pypifiles import installed, oldest_installable
from sleuth.errors import EnvironmentBuildError, UsageError
from sleuth.model import TrialSpec
from sleuth.secrets import scrub_text

__all__ = ["PypiSource"]


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
        lo = self._find(labels, old, old_flag) if old else oldest_installable(labels, files_of, self.python)
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
            return Prepared(None, f"does not install: {scrub_text(exc.message)[:200]}")
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
        a, b = installed(last_good / PACKAGES), installed(first_bad / PACKAGES)
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
