"""Git candidates: one repository (:class:`GitSource`) or several co-varying ones (:class:`MultiGitSource`).

Every candidate commit is checked out in its own worktree under the cache dir (created once and
reused; the user's working tree is never touched).  ``--build`` runs in the checkout first and a
build that fails makes the candidate a SKIP.

Several repositories (like JAX + XLA) are searched in *stages*.  Stage ``k`` varies repository
``k`` (the primary) over its commits between the stage's ends; repositories before it are pinned,
and every later repository takes, for each primary commit, its newest commit whose committer time
is not after the primary commit's (times are made monotone with a running maximum; the bad end
takes every repository's bad commit).  A candidate's label is ``name=sha,name=sha,...`` in the
order the repositories were given.  The blame rule lives in :meth:`MultiGitSource.blame_probe` and
:meth:`MultiGitSource.next_stage`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

from sleuth.bisect.candidates import Candidate, Prepared, with_candidate
from sleuth.errors import InfrastructureError, UsageError
from sleuth.model import TrialSpec

__all__ = ["GitSource", "MultiGitSource", "RepoSpec", "decode", "encode", "env_name"]

_WORKTREE_LOCK = threading.Lock()


def _git(repo: str, *args: str) -> str:
    from sleuth.runner import run_tool

    res = run_tool(["git", "-C", repo, *args], timeout_s=600)
    if not res.ok:
        raise InfrastructureError(f"git {' '.join(args)} in {repo}: {res.brief()}")
    return res.stdout


def env_name(name: str) -> str:
    """``$SLEUTH_REPO_<NAME>``: upper-cased, every character that is not a letter or digit made ``_``."""
    return "SLEUTH_REPO_" + (re.sub(r"[^A-Za-z0-9]", "_", name).upper() or "REPO")


def _rev(repo: str, ref: str, flag: str, shown: str) -> str:
    from sleuth.runner import run_tool

    res = run_tool(["git", "-C", repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"])
    if not res.ok:
        raise UsageError(f"{flag} {shown}: not a commit in {repo}", hint="give a SHA, tag or branch")
    return res.stdout.strip()


def history(repo: str, good: str, bad: str, first_parent: bool, name: str = "") -> list[tuple[str, int]]:
    """``[(sha, committer time)]`` from ``good`` to ``bad`` inclusive, oldest first."""
    pre = f"{name}=" if name else ""
    if not (Path(repo) / ".git").exists() and not Path(repo, "HEAD").is_file():
        raise UsageError(f"--repo {pre}{repo}: not a git repository")
    g, b = _rev(repo, good, "--good", pre + good), _rev(repo, bad, "--bad", pre + bad)
    from sleuth.runner import run_tool

    if not run_tool(["git", "-C", repo, "merge-base", "--is-ancestor", g, b]).ok:
        raise UsageError(
            f"--good {pre}{good} is not an ancestor of --bad {pre}{bad}",
            hint="swap them, or pick a good commit on the bad one's history",
        )
    fp = ["--first-parent"] if first_parent else []
    out = _git(repo, "log", "--format=%H %ct", "--reverse", *fp, f"{g}..{b}")
    first = _git(repo, "log", "-1", "--format=%H %ct", g).split()
    rows = [(sha, int(ts)) for sha, ts in (ln.split() for ln in out.splitlines() if ln.strip())]
    return [(first[0], int(first[1])), *rows]


def worktree(repo: str, sha: str, cache: str | None) -> Path:
    """The cached worktree of ``sha`` (created on first use)."""
    from sleuth.environments import cache_dir

    root = Path(cache) if cache else cache_dir() / "bisect-worktrees"
    repo_id = hashlib.sha256(str(Path(repo).resolve()).encode()).hexdigest()[:12]
    path = root / repo_id / sha
    with _WORKTREE_LOCK:  # git locks its worktree list: one add at a time
        if not (path / ".git").exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # no ``worktree prune``: it would drop the user's own worktrees that are missing right
            # now (an unmounted disk); ``--force`` reuses our path if its directory was deleted
            _git(repo, "worktree", "add", "--force", "--detach", str(path), sha)
    return path


def _build(spec: TrialSpec, build: str | None, cand_dir: Path) -> Prepared:
    if build:
        from sleuth.runner import run_trial

        res = run_trial(spec.with_argv(("sh", "-c", build)), cand_dir / "build")
        if res.error or res.rc != 0 or res.timed_out:
            why = res.error or (f"exit {res.rc}" if res.rc is not None else f"signal {res.signal}")
            return Prepared(None, f"build failed ({why}); log in {cand_dir.name}/build")
    return Prepared(spec)


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

    def resolve(self) -> list[str]:
        """``[good, ...first-parent commits after good..., bad]``.

        Always the first-parent chain: a linearized DAG is not monotone (a good commit of one branch
        can come after a bad one of another).  Without ``--first-parent`` the driver then descends
        into the merged branch of a first bad merge (:meth:`merged_branch`).
        """
        return [sha for sha, _ in history(self.repo, self.good, self.bad, True)]

    def title(self, sha: str) -> str:
        """``subject (author, date)`` of a commit, for the summary and the report."""
        return _git(self.repo, "log", "-1", "--date=short", "--format=%s (%an, %ad)", sha).strip()

    def parents(self, sha: str) -> list[str]:
        """The commit's parents, first parent first."""
        return _git(self.repo, "rev-list", "--parents", "-n", "1", sha).split()[1:]

    def merged_branch(self, first_parent: str, other: str) -> list[str]:
        """The first-parent chain of a merged parent ``other`` from its merge base with ``first_parent``."""
        base = _git(self.repo, "merge-base", first_parent, other).strip()
        return [sha for sha, _ in history(self.repo, base, other, True)]

    def prepare(self, cand: Candidate, spec: TrialSpec, cand_dir: Path) -> Prepared:
        """Check the commit out in its worktree, run ``--build`` there; a failed build is a SKIP."""
        path = worktree(self.repo, cand.label, self.cache)
        extra = {"SLEUTH_REPO": str(path), env_name(Path(self.repo).resolve().name): str(path)}
        return _build(with_candidate(spec, cand, **extra).with_cwd(str(path)), self.build, cand_dir)

    def config(self) -> dict[str, Any]:
        """The flags that rebuild it."""
        return {"kind": self.kind, "repo": str(Path(self.repo).resolve()), "good": self.good, "bad": self.bad,
                "build": self.build, "first_parent": self.first_parent, "cache": self.cache}  # fmt: skip


@dataclass(frozen=True, slots=True)
class RepoSpec:
    """One of several repositories: ``--repo NAME=PATH --good NAME=REF --bad NAME=REF``."""

    name: str
    path: str
    good: str
    bad: str


def encode(vec: dict[str, str]) -> str:
    """``name=sha,name=sha`` (the label of a multi-repo candidate)."""
    return ",".join(f"{k}={v}" for k, v in vec.items())


def decode(label: str) -> dict[str, str]:
    """The inverse of :func:`encode`."""
    return dict(part.split("=", 1) for part in label.split(","))


@dataclass(slots=True)
class MultiGitSource:
    """Several repositories that change together; the first one is the primary of stage 0."""

    repos: tuple[RepoSpec, ...]
    build: str | None = None
    first_parent: bool = False
    cache: str | None = None
    kind: str = "git"
    _hist: dict[str, list[tuple[str, int]]] = field(default_factory=dict, repr=False)

    def names(self) -> list[str]:
        """Repository names in the order given."""
        return [r.name for r in self.repos]

    def history(self, name: str) -> list[tuple[str, int]]:
        """One repository's ``good..bad`` commits with their times (asked of git once)."""
        if name not in self._hist:  # first parents only: a linearized DAG is not monotone
            r = next(x for x in self.repos if x.name == name)
            self._hist[name] = history(r.path, r.good, r.bad, True, name)
        return self._hist[name]

    def timeline(self, k: int, lo: dict[str, str], hi: dict[str, str]) -> list[str]:
        """Stage ``k``'s candidate labels from ``lo`` to ``hi``, aligned by commit time."""
        prim = self.repos[k].name
        ph = self.history(prim)
        shas = [s for s, _ in ph]
        a, b = shas.index(lo[prim]), shas.index(hi[prim])
        ptimes = list(accumulate((t for _, t in ph), max))[a : b + 1]
        later: dict[str, tuple[list[str], list[int]]] = {}
        for r in self.repos[k + 1 :]:
            h = [s for s, _ in self.history(r.name)]
            x, y = h.index(lo[r.name]), h.index(hi[r.name])
            times = list(accumulate((t for _, t in self.history(r.name)), max))
            later[r.name] = (h[x : y + 1], times[x : y + 1])
        out = []
        for j, sha in enumerate(shas[a : b + 1]):
            vec = {}
            for r in self.repos:
                if r.name == prim:
                    vec[r.name] = sha
                elif r.name not in later:
                    vec[r.name] = lo[r.name]
                elif j == b - a:
                    vec[r.name] = hi[r.name]
                else:
                    hs, ts = later[r.name]
                    vec[r.name] = hs[max(0, bisect_right(ts, ptimes[j]) - 1)]
            out.append(encode(vec))
        return out

    def resolve(self) -> list[str]:
        """Stage 0: the primary's commits, the others aligned, from all goods to all bads."""
        lo = {r.name: self.history(r.name)[0][0] for r in self.repos}
        hi = {r.name: self.history(r.name)[-1][0] for r in self.repos}
        return self.timeline(0, lo, hi)

    def blame_probe(self, k: int, lo: str, hi: str) -> str | None:
        """The older primary with the newer others, or None when only the primary changed."""
        prim = self.repos[k].name
        probe = {**decode(hi), prim: decode(lo)[prim]}
        return None if probe == decode(lo) else encode(probe)

    def next_stage(self, k: int, lo: str, probe: str) -> tuple[int, list[str]]:
        """The probe failed: pin the primary, the next repository that changed becomes primary."""
        a, b = decode(lo), decode(probe)
        j = next(i for i in range(k + 1, len(self.repos)) if a[self.repos[i].name] != b[self.repos[i].name])
        return j, self.timeline(j, a, b)

    def prepare(self, cand: Candidate, spec: TrialSpec, cand_dir: Path) -> Prepared:
        """A worktree per repository (``$SLEUTH_REPO_<NAME>``); the test runs in the first one's."""
        vec = decode(cand.label)
        paths = {r.name: worktree(r.path, vec[r.name], self.cache) for r in self.repos}
        extra = {env_name(n): str(p) for n, p in paths.items()}
        first = str(paths[self.repos[0].name])
        spec = with_candidate(spec, cand, SLEUTH_REPO=first, **extra).with_cwd(first)
        return _build(spec, self.build, cand_dir)

    def config(self) -> dict[str, Any]:
        """The flags that rebuild it."""
        repos = [{"name": r.name, "path": str(Path(r.path).resolve()), "good": r.good, "bad": r.bad}
                 for r in self.repos]  # fmt: skip
        return {"kind": "multigit", "repos": repos, "build": self.build, "first_parent": self.first_parent,
                "cache": self.cache}  # fmt: skip
