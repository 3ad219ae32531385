"""Several repositories that change together (like JAX + XLA): :class:`MultiGitSource`.

They are searched in *stages*.  Stage ``k`` varies repository ``k`` (the primary) over its commits
between the stage's ends; repositories before it are pinned, and every later repository takes, for
each primary commit, its newest commit whose committer time is not after the primary commit's
(times are made monotone with a running maximum; the bad end takes every repository's bad commit).
A candidate's label is ``name=sha,name=sha,...`` in the order the repositories were given
(:func:`encode`, :func:`decode`).  The blame rule lives in :meth:`MultiGitSource.blame_probe` and
:meth:`MultiGitSource.next_stage`.  Checkouts, ``--build`` and the test's spec are as for one
repository (:mod:`sleuth.bisect.git`).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

from sleuth.bisect.candidates import Candidate, Prepared
from sleuth.bisect.checkouts import Checkouts, run_git
from sleuth.bisect.git import CHECKOUTS_LOCK, TITLE, build_first, env_name, in_checkout, submodule_notes
from sleuth.bisect.githistory import history
from sleuth.model import TrialSpec

__all__ = ["MultiGitSource", "RepoSpec", "decode", "encode"]


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
    _co: dict[str, Checkouts] = field(default_factory=dict, init=False, repr=False)

    @property
    def notes(self) -> list[str]:
        """What the user should know before the tests run (:func:`submodule_notes`)."""
        return submodule_notes([r.path for r in self.repos], self.build)

    def names(self) -> list[str]:
        """Repository names in the order given."""
        return [r.name for r in self.repos]

    def title(self, name: str, sha: str) -> str:
        """``subject (author, date)`` of repository ``name``'s commit (empty when git cannot say)."""
        r = next(x for x in self.repos if x.name == name)
        return run_git(r.path, "log", "-1", "--date=short", f"--format={TITLE}", sha, check=False).strip()

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

    @property
    def first_stage(self) -> int:
        """The first repository that changed between its ends: the primary of the first stage (one
        that did not change is held at its commit; the test still runs in the first one's checkout)."""
        return next((i for i, r in enumerate(self.repos) if len(self.history(r.name)) > 1), 0)

    def resolve(self) -> list[str]:
        """The first stage: its primary's commits, the others aligned, from all goods to all bads."""
        lo = {r.name: self.history(r.name)[0][0] for r in self.repos}
        hi = {r.name: self.history(r.name)[-1][0] for r in self.repos}
        return self.timeline(self.first_stage, lo, hi)

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

    def _checkouts_of(self, r: RepoSpec) -> Checkouts:
        with CHECKOUTS_LOCK:
            if r.name not in self._co:
                self._co[r.name] = Checkouts(r.path, Path(self.cache) if self.cache else None)
            return self._co[r.name]

    def prepare(self, cand: Candidate, spec: TrialSpec, cand_dir: Path) -> Prepared:
        """A checkout per repository (``$SLEUTH_REPO_<NAME>``); the test runs in the first one's."""
        vec = decode(cand.label)
        paths = {}
        for r in self.repos:
            co = self._checkouts_of(r)
            paths[r.name] = co.cached(vec[r.name]) if self.build else co.checkout(vec[r.name])
        extra = {env_name(n): str(p) for n, p in paths.items()}
        first = paths[self.repos[0].name]
        spec = in_checkout(spec, cand, first, self.repos[0].path, SLEUTH_REPO=str(first), **extra)
        return build_first(spec, self.build, cand_dir, first)

    def close(self) -> None:
        """Let other processes use the checkouts this one held."""
        for co in self._co.values():
            co.close()

    def config(self) -> dict[str, Any]:
        """The flags that rebuild it."""
        repos = [{"name": r.name, "path": str(Path(r.path).resolve()), "good": r.good, "bad": r.bad}
                 for r in self.repos]  # fmt: skip
        return {"kind": "multigit", "repos": repos, "build": self.build, "first_parent": self.first_parent,
                "cache": self.cache}  # fmt: skip
