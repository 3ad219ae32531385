"""Candidate sources: git commits, PyPI releases, dated images, lines of a file.

A source resolves its ordered candidates once (oldest first; the journal keeps them, so a resume
never asks git or the index again) and, per test, turns the workload's ``TrialSpec`` into the
spec for one candidate: a git worktree (plus the build step), a uv venv, a container image, or
just ``$SLEUTH_CANDIDATE``.  Preparing a candidate that cannot be prepared (a failed build, a
release that does not install, an image tag that does not exist) is a SKIP, never an exception.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

from sleuth.errors import EnvironmentBuildError, InfrastructureError, UsageError
from sleuth.model import TrialSpec

__all__ = [
    "Candidate",
    "GitSource",
    "ImageSource",
    "ListSource",
    "Prepared",
    "PypiSource",
    "Source",
    "candidate_key",
    "source_from_config",
]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One point of the search: its label (SHA, version, tag, line) and its position."""

    index: int
    label: str


@dataclass(frozen=True, slots=True)
class Prepared:
    """A candidate ready to test: the spec to run, or why it cannot be tested."""

    spec: TrialSpec | None
    skip_reason: str = ""


def candidate_key(c: Candidate) -> str:
    """A directory name for a candidate: ``0007-<label slug>`` (path-safe, unique by index)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", c.label)[:48].strip("._-") or "x"
    return f"{c.index:04d}-{slug}"


class Source(Protocol):
    """Where candidates come from and how one is made ready."""

    kind: str

    def resolve(self) -> list[str]:
        """The candidate labels, oldest first (queries git, the index, ...)."""
        ...

    def prepare(self, cand: Candidate, spec: TrialSpec, cand_dir: Path) -> Prepared:
        """The spec to run for ``cand`` (called from worker threads)."""
        ...

    def config(self) -> dict[str, Any]:
        """JSON-able form, enough to rebuild the source on resume."""
        ...


def _with_candidate(spec: TrialSpec, cand: Candidate, **extra: str) -> TrialSpec:
    return spec.with_env({"SLEUTH_CANDIDATE": cand.label, "SLEUTH_CANDIDATE_INDEX": str(cand.index), **extra})


@dataclass(slots=True)
class ListSource:
    """``sleuth bisect list FILE``: one label per line, oldest first (blank and ``#`` lines ignored)."""

    path: str
    kind: str = "list"

    def resolve(self) -> list[str]:
        """The file's lines."""
        try:
            text = Path(self.path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"sleuth bisect list {self.path}: cannot read it ({exc.strerror})") from exc
        labels = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if len(set(labels)) != len(labels):
            dup = next(x for x in labels if labels.count(x) > 1)
            raise UsageError(f"sleuth bisect list {self.path}: {dup!r} is listed twice")
        return labels

    def prepare(self, cand: Candidate, spec: TrialSpec, cand_dir: Path) -> Prepared:
        """``$SLEUTH_CANDIDATE`` is the line."""
        return Prepared(_with_candidate(spec, cand))

    def config(self) -> dict[str, Any]:
        """``{"kind": "list", "path": ...}``."""
        return {"kind": self.kind, "path": str(Path(self.path).resolve())}


def _git(repo: str, *args: str) -> str:
    from sleuth.runner import run_tool

    res = run_tool(["git", "-C", repo, *args], timeout_s=600)
    if not res.ok:
        raise InfrastructureError(f"git {' '.join(args)} in {repo}: {res.brief()}")
    return res.stdout


@dataclass(slots=True)
class GitSource:
    """Commits ``good..bad`` of one repository, each tested in its own cached worktree."""

    repo: str
    good: str
    bad: str
    build: str | None = None
    first_parent: bool = False
    cache: str | None = None
    kind: str = "git"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _rev(self, ref: str, flag: str) -> str:
        from sleuth.runner import run_tool

        res = run_tool(["git", "-C", self.repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"])
        if not res.ok:
            raise UsageError(f"{flag} {ref}: not a commit in {self.repo}", hint="give a SHA, tag or branch")
        return res.stdout.strip()

    def resolve(self) -> list[str]:
        """``[good, ...commits after good..., bad]`` from ``git rev-list --reverse``."""
        if not (Path(self.repo) / ".git").exists() and not Path(self.repo, "HEAD").is_file():
            raise UsageError(f"--repo {self.repo}: not a git repository")
        good, bad = self._rev(self.good, "--good"), self._rev(self.bad, "--bad")
        from sleuth.runner import run_tool

        anc = run_tool(["git", "-C", self.repo, "merge-base", "--is-ancestor", good, bad])
        if not anc.ok:
            raise UsageError(
                f"--good {self.good} is not an ancestor of --bad {self.bad}",
                hint="swap them, or pick a good commit on the bad one's history",
            )
        fp = ["--first-parent"] if self.first_parent else []
        revs = _git(self.repo, "rev-list", "--reverse", *fp, f"{good}..{bad}").split()
        return [good, *revs]

    def _worktree(self, sha: str) -> Path:
        from sleuth.environments import cache_dir

        root = Path(self.cache) if self.cache else cache_dir() / "bisect-worktrees"
        repo_id = hashlib.sha256(str(Path(self.repo).resolve()).encode()).hexdigest()[:12]
        path = root / repo_id / sha
        with self._lock:  # git locks its worktree list: one add at a time
            if not (path / ".git").exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                _git(self.repo, "worktree", "prune")
                _git(self.repo, "worktree", "add", "--force", "--detach", str(path), sha)
        return path

    def prepare(self, cand: Candidate, spec: TrialSpec, cand_dir: Path) -> Prepared:
        """Check the commit out in its worktree, run ``--build`` there; a failed build is a SKIP."""
        path = self._worktree(cand.label)
        name = re.sub(r"[^A-Za-z0-9_]", "_", Path(self.repo).resolve().name).upper() or "REPO"
        extra = {"SLEUTH_REPO": str(path), f"SLEUTH_REPO_{name}": str(path)}
        spec = _with_candidate(spec, cand, **extra).with_cwd(str(path))
        if self.build:
            from sleuth.runner import run_trial

            build = spec.with_argv(("sh", "-c", self.build))
            res = run_trial(build, cand_dir / "build")
            if res.error or res.rc != 0 or res.timed_out:
                why = res.error or (f"exit {res.rc}" if res.rc is not None else f"signal {res.signal}")
                return Prepared(None, f"build failed ({why}); log in {cand_dir.name}/build")
        return Prepared(spec)

    def config(self) -> dict[str, Any]:
        """The flags that rebuild it."""
        return {
            "kind": self.kind,
            "repo": str(Path(self.repo).resolve()),
            "good": self.good,
            "bad": self.bad,
            "build": self.build,
            "first_parent": self.first_parent,
            "cache": self.cache,
        }


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
        return Prepared(prepared.wrap(_with_candidate(spec, cand)))

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
        inner = _with_candidate(spec, cand)
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


def parse_date(text: str, flag: str) -> date:
    """``YYYY-MM-DD`` or raise a UsageError naming the flag."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected a date like 2024-09-19") from None


def source_from_config(cfg: dict[str, Any]) -> Source:
    """Rebuild a source from :meth:`Source.config` (resume)."""
    kind = cfg["kind"]
    args = {k: v for k, v in cfg.items() if k != "kind"}
    if kind == "list":
        return ListSource(**args)
    if kind == "git":
        return GitSource(**args)
    if kind == "pypi":
        return PypiSource(**{**args, "pins": tuple(args["pins"])})
    if kind == "images":
        return ImageSource(**{**args, "mounts": tuple(args["mounts"])})
    raise UsageError(f"unknown candidate source {kind!r} in the run dir")
