"""Git candidates: one repository (:class:`GitSource`) or several co-varying ones (:class:`MultiGitSource`).

The user's repository is only read: every candidate is checked out in the cache, in a worktree of
a shared clone (:mod:`sleuth.bisect.checkouts`): one reusable checkout per running test, or with
``--build`` one per commit so that a revisit reuses its build.  ``--build`` runs in the checkout
first and a build that fails makes the candidate a SKIP.  ``--path`` keeps only the commits that
change those paths (relative to their first parent), like ``git bisect start -- PATH``; the two
ends always stay.  With ``--find-fix`` the failing ``--bad`` end is the older one.

Several repositories (like JAX + XLA) are searched in *stages*.  Stage ``k`` varies repository
``k`` (the primary) over its commits between the stage's ends; repositories before it are pinned,
and every later repository takes, for each primary commit, its newest commit whose committer time
is not after the primary commit's (times are made monotone with a running maximum; the bad end
takes every repository's bad commit).  A candidate's label is ``name=sha,name=sha,...`` in the
order the repositories were given.  The blame rule lives in :meth:`MultiGitSource.blame_probe` and
:meth:`MultiGitSource.next_stage`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import accumulate
from pathlib import Path
from typing import Any, TypeVar

from sleuth._spawn import join
from sleuth.bisect.candidates import Candidate, Prepared, with_candidate
from sleuth.bisect.checkouts import GIT_REDIRECTS, Checkouts, git_env, run_git
from sleuth.errors import UsageError
from sleuth.model import TrialSpec

__all__ = ["GitSource", "MultiGitSource", "RepoSpec", "decode", "encode", "env_name"]

_CHECKOUTS_LOCK = threading.Lock()
T = TypeVar("T")


def _cache_root() -> Path:
    from sleuth.environments import cache_dir

    return cache_dir() / "bisect-git"


def _git(repo: str, *args: str) -> str:
    return run_git(repo, *args)


#: a commit's title in summaries and reports: ``subject (author, date)``
_TITLE = "%s (%an, %ad)"


def env_name(name: str) -> str:
    """``$SLEUTH_REPO_<NAME>``: upper-cased, every character that is not a letter or digit made ``_``."""
    return "SLEUTH_REPO_" + (re.sub(r"[^A-Za-z0-9]", "_", name).upper() or "REPO")


def _rev(repo: str, ref: str, flag: str, shown: str) -> str:
    from sleuth.runner import run_tool

    if not ref or ref.startswith("-") or "\n" in ref or "\0" in ref:
        raise UsageError(f"{flag} {shown!r}: not a commit in {repo}", hint="give a SHA, tag or branch")
    res = run_tool(["git", "-C", repo, "rev-parse", "--verify", "--quiet", "--end-of-options",
                    f"{ref}^{{commit}}"], env=git_env())  # fmt: skip
    if not res.ok:
        raise UsageError(
            f"{flag} {shown}: not a commit in {repo}", hint=_shallow_hint(repo, "give a SHA, tag or branch")
        )
    return res.stdout.strip()


def submodule_notes(repos: list[str], build: str | None) -> list[str]:
    """A note per repository with submodules when no ``--build`` populates them: a checkout has
    their folders empty, so a test that needs them fails on every commit (``.gitmodules`` in the
    user's tree is looked at: no git command)."""
    if build:
        return []
    fill = "--build 'git submodule update --init --recursive'"
    return [
        f"{r} has submodules; the checkouts leave them empty (give {fill} if the test needs them)"
        for r in repos
        if Path(r, ".gitmodules").is_file()
    ]


def _shallow_hint(repo: str, hint: str) -> str:
    """``hint``, or for a shallow clone (whose history stops short) how to fetch the rest."""
    from sleuth.runner import run_tool

    res = run_tool(["git", "-C", repo, "rev-parse", "--is-shallow-repository"], env=git_env())
    if res.ok and res.stdout.strip() == "true":
        return f"{repo} is a shallow clone: git -C {repo} fetch --unshallow, then try again"
    return hint


def is_repository(repo: str) -> bool:
    """Whether ``repo`` is the top of a git repository (a work tree or a bare one)."""
    return (Path(repo) / ".git").exists() or Path(repo, "HEAD").is_file()


def _beside(fn: Callable[[], T]) -> Callable[[], T]:
    """Start ``fn`` in a thread now; the returned call waits for its result (or raises its error).

    Two git commands that do not depend on each other run at once (start-up is measured).
    """
    got: list[T] = []
    err: list[BaseException] = []

    def run() -> None:
        try:
            got.append(fn())
        except BaseException as exc:  # handed to the caller
            err.append(exc)

    t = threading.Thread(target=run, name="sleuth-git")
    t.start()

    def wait() -> T:
        join(t)
        if err:
            raise err[0]
        return got[0]

    return wait


def history(repo: str, old: str, new: str, first_parent: bool, name: str = "", *,
            flags: tuple[str, str] = ("--good", "--bad"),
            paths: tuple[str, ...] = (), times: bool = True,
            parents: dict[str, list[str]] | None = None) -> list[tuple[str, int]]:  # fmt: skip
    """``[(sha, committer time)]`` from ``old`` to ``new`` inclusive, oldest first.

    ``flags`` name the flags that gave ``old`` and ``new`` (``--bad``, ``--good`` with
    ``--find-fix``); with ``paths``, only the commits between that change one of them stay.
    Without ``times`` every time is 0 (one git command fewer); ``parents`` is filled with the
    parents of every commit after ``old`` (the same command reads them).
    """
    pre = f"{name}=" if name else ""
    if not is_repository(repo):
        inside = Path(repo).is_dir()
        top = run_git(repo, "rev-parse", "--show-toplevel", check=False).strip() if inside else ""
        if top:  # a folder inside a work tree: the checkouts are of the whole repository
            raise UsageError(f"--repo {pre}{repo}: not the top of a git repository (it is inside {top})",
                             hint=f"give --repo {pre}{top}; --cwd runs the test in a subfolder")  # fmt: skip
        raise UsageError(f"--repo {pre}{repo}: not a git repository")
    newer = _beside(lambda: _rev(repo, new, flags[1], pre + new))
    g = _rev(repo, old, flags[0], pre + old)
    b = newer()
    from sleuth.runner import run_tool

    fp = ["--first-parent"] if first_parent else []
    fmt = ("--format=%H %ct" if times else "--format=%H 0") + (" %P" if parents is not None else "")
    is_ancestor = ["git", "-C", repo, "merge-base", "--is-ancestor", g, b]
    ancestor = _beside(lambda: run_tool(is_ancestor, env=git_env()))
    out = _git(repo, "log", fmt, "--reverse", *fp, f"{g}..{b}")
    if not ancestor().ok:
        raise UsageError(
            f"{flags[0]} {pre}{old} is not an ancestor of {flags[1]} {pre}{new}",
            hint=_shallow_hint(
                repo,
                "swap them, or pick a commit on the other one's history"
                + (
                    " (with --find-fix the failing --bad end is the older one)" if flags[0] == "--bad" else ""
                ),
            ),
        )
    first = _git(repo, "log", "-1", "--format=%H %ct", g).split() if times else [g, "0"]
    rows = []
    for sha, ts, *ps in (ln.split() for ln in out.splitlines() if ln.strip()):
        rows.append((sha, int(ts)))
        if parents is not None:
            parents[sha] = ps
    if paths and rows:
        rows = _touching(repo, f"{g}..{b}", fp, paths, rows)
    return [(first[0], int(first[1])), *rows]


def program_path(repo: str, program: str, cwd: str | None = None) -> str:
    """Where the test's ``program`` (``./test.sh``) is found, since the test runs in a checkout.

    A relative path with a slash is the user's file, taken from ``cwd``: made absolute, unless the
    repository tracks it, then made relative to the folder the test runs in (the checkout's top, or
    the ``--cwd`` folder of the repository: :func:`checkout_cwd`) so each checkout runs its own copy
    (as ``git bisect run`` would).  Names without a slash and absolute paths stay.
    """
    if os.sep not in program or os.path.isabs(program):
        return program
    path = Path(cwd or os.getcwd(), program).resolve()
    if not path.is_file():
        return program
    top = Path(repo).resolve()
    if path.is_relative_to(top):
        rel = str(path.relative_to(top))
        from sleuth.runner import run_tool

        tracked = run_tool(["git", "-C", repo, "ls-files", "--error-unmatch", "--", rel], env=git_env())
        run_in = Path(cwd).resolve() if cwd else top  # the same folder of each checkout (checkout_cwd)
        if tracked.ok and run_in.is_relative_to(top):
            return "./" + os.path.relpath(path, run_in)
    return str(path)


def _touching(repo: str, span: str, fp: list[str], paths: tuple[str, ...],
              rows: list[tuple[str, int]]) -> list[tuple[str, int]]:  # fmt: skip
    """The commits of ``rows`` that change one of ``paths``, and the last one (the bad end)."""
    from sleuth.runner import run_tool

    res = run_tool(["git", "-C", repo, "log", "--format=%H", *fp, span, "--", *paths], env=git_env())
    if not res.ok:
        why = (res.stderr.strip().splitlines() or ["git log failed"])[-1].removeprefix("fatal: ")
        raise UsageError(f"--path {' '.join(paths)}: {why}", hint="give paths inside the repository")
    touching = set(res.stdout.split())
    kept = [r for r in rows[:-1] if r[0] in touching]
    if not kept and len(rows) > 1:
        raise UsageError(
            f"--path {' '.join(paths)}: no commit between the ends changes it",
            hint="check the spelling (paths are relative to the repository's top)",
        )
    return [*kept, rows[-1]]


def checkout_cwd(cwd: str | None, repo: str, path: Path) -> str:
    """Where the test runs in the checkout ``path`` of ``repo``: its top, or with ``--cwd`` a folder of
    the repository (``--cwd repo/python``) the same folder of the checkout; a ``--cwd`` elsewhere as given.

    Never the user's own tree: that holds another commit (and the user's edits).
    """
    if cwd is None:
        return str(path)
    top, where = Path(repo).resolve(), Path(cwd).resolve()
    return str(path / where.relative_to(top)) if where.is_relative_to(top) else cwd


def _in_checkout(spec: TrialSpec, cand: Candidate, path: Path, repo: str, **extra: str) -> TrialSpec:
    """The test's spec in a checkout: cwd there (:func:`checkout_cwd`), and no ``GIT_DIR`` that would
    point at the user's repo."""
    env = {k: v for k, v in spec.env.items() if k not in GIT_REDIRECTS}
    return with_candidate(replace(spec, env=env), cand, **extra).with_cwd(checkout_cwd(spec.cwd, repo, path))


def _build(spec: TrialSpec, build: str | None, cand_dir: Path, top: Path) -> Prepared:
    """``--build`` at the checkout's top ``top`` (whatever ``--cwd`` says), then the test's spec."""
    if build:
        from sleuth.runner import run_trial

        res = run_trial(spec.with_argv(("sh", "-c", build)).with_cwd(str(top)), cand_dir / "build")
        if res.error or res.rc != 0 or res.timed_out:
            why = res.error or (f"exit {res.rc}" if res.rc is not None else f"signal {res.signal}")
            return Prepared(None, f"build failed ({why}); log in {cand_dir.name}/build")
    return Prepared(spec)


@dataclass(slots=True)
class GitSource:
    """Commits ``good..bad`` of one repository (``bad..good`` with ``find_fix``), checked out in the cache."""

    repo: str
    good: str
    bad: str
    build: str | None = None
    first_parent: bool = False
    cache: str | None = None
    #: only commits that change one of these paths (the ends always stay)
    paths: tuple[str, ...] = ()
    #: the failing ``bad`` end is the older one: search for the first commit that passes
    find_fix: bool = False
    kind: str = "git"
    _checkouts: Checkouts | None = field(default=None, init=False, repr=False)
    _cloning: threading.Thread | None = field(default=None, init=False, repr=False)
    #: the directory the early clone created (removed at exit if nothing was checked out)
    _made: Path | None = field(default=None, init=False, repr=False)
    #: parents and titles of commits, as read along with the history (fewer git commands)
    _parents: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    _titles: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    @property
    def notes(self) -> list[str]:
        """What the user should know before the tests run (:func:`submodule_notes`)."""
        return submodule_notes([self.repo], self.build)

    @property
    def ends(self) -> tuple[str, str]:
        """(older ref, newer ref)."""
        return (self.bad, self.good) if self.find_fix else (self.good, self.bad)

    @property
    def end_flags(self) -> tuple[str, str]:
        """The flags that gave the older and the newer end."""
        return ("--bad", "--good") if self.find_fix else ("--good", "--bad")

    def resolve(self) -> list[str]:
        """``[older end, ...first-parent commits between..., newer end]``.

        Always the first-parent chain: a linearized DAG is not monotone (a good commit of one branch
        can come after a bad one of another).  Without ``--first-parent`` the driver then descends
        into the merged branch of a first bad merge (:meth:`merged_branch`).
        """
        old, new = self.ends
        self._clone_early()
        rows = history(self.repo, old, new, True, flags=self.end_flags, paths=self.paths, times=False,
                       parents=self._parents)  # fmt: skip
        return [sha for sha, _ in rows]

    def resolve_skip(self, revs: tuple[str, ...], labels: list[str]) -> tuple[str, ...]:
        """``--skip REV``: full SHAs of commits strictly between the ends (a UsageError otherwise)."""
        from sleuth.runner import run_tool

        out: list[str] = []
        for rev in revs:
            sha = _rev(self.repo, rev, "--skip", rev)
            if sha in (labels[0], labels[-1]):
                which = "older" if sha == labels[0] else "newer"
                raise UsageError(f"--skip {rev}: that is the {which} end of the range",
                                 hint="skip only commits between the ends")  # fmt: skip
            inside = sha in labels or all(
                run_tool(["git", "-C", self.repo, "merge-base", "--is-ancestor", a, b], env=git_env()).ok
                for a, b in ((labels[0], sha), (sha, labels[-1]))
            )
            if not inside:
                raise UsageError(f"--skip {rev}: {sha[:12]} is not between the ends of the range",
                                 hint="skip only commits between --good and --bad")  # fmt: skip
            if sha not in out:
                out.append(sha)
        return tuple(out)

    def title(self, sha: str) -> str:
        """``subject (author, date)`` of a commit, for the summary and the report.

        Its first parent's comes with it: a first bad's last good is usually that parent.
        """
        if sha not in self._titles:
            fmt = f"--format=%H {_TITLE}"
            for ln in _git(self.repo, "log", "-2", "--first-parent", "--date=short", fmt, sha).splitlines():
                got, _, title = ln.partition(" ")
                self._titles.setdefault(got, title.strip())
        return self._titles.get(sha, "")

    def between(self, old: str, new: str, limit: int = 200) -> list[tuple[str, str]]:
        """``[(sha, title)]`` of the commits in ``old..new`` (merged ones too), oldest first.

        The usual answer, ``new`` whose only parent is ``old`` (as the history read it), needs no git.
        """
        if self._parents.get(new) == [old]:
            return [(new, self.title(new))]
        out = _git(self.repo, "log", "--reverse", "--date=short", f"--format=%H {_TITLE}",
                   f"-{limit}", f"{old}..{new}")  # fmt: skip
        return [(ln[:40], ln[41:]) for ln in out.splitlines() if ln.strip()]

    def parents(self, sha: str) -> list[str]:
        """The commit's parents, first parent first (as the history read them, when it did)."""
        if sha in self._parents:
            return list(self._parents[sha])
        return _git(self.repo, "rev-list", "--parents", "-n", "1", sha).split()[1:]

    def merged_branch(self, first_parent: str, other: str) -> list[str]:
        """The first-parent chain of a merged parent ``other`` from its merge base with ``first_parent``."""
        base = _git(self.repo, "merge-base", first_parent, other).strip()
        return [sha for sha, _ in history(self.repo, base, other, True, times=False, parents=self._parents)]

    def checkouts(self) -> Checkouts:
        """The cache's checkouts of this repository (made on first use)."""
        with _CHECKOUTS_LOCK:
            if self._checkouts is None:
                self._checkouts = Checkouts(self.repo, Path(self.cache) if self.cache else None)
            return self._checkouts

    def _clone_early(self) -> None:
        """Make (or refresh) the cache clone while the history is read: both are git processes.

        :meth:`close` waits for it and, if nothing was checked out (bad input found after the
        history: a usage error leaves no files behind), removes what it created.  An error here is
        left to the first checkout, which makes the clone again and reports it.
        """
        if self._cloning is None and self._checkouts is None:
            top = Path(self.cache) if self.cache else _cache_root()
            while not top.parent.exists() and top.parent != top:
                top = top.parent  # the first directory the clone would create
            fresh = None if top.exists() else top
            self._cloning = threading.Thread(target=self._clone_quietly, args=(fresh,), name="sleuth-clone")
            self._cloning.start()

    def _clone_quietly(self, fresh: Path | None) -> None:
        with contextlib.suppress(Exception):  # the first checkout makes it again and reports it
            co = self.checkouts()
            self._made = fresh or (None if co.dir.exists() else co.dir)
            co.ensure_clone()

    def prepare(self, cand: Candidate, spec: TrialSpec, cand_dir: Path) -> Prepared:
        """Check the commit out in the cache, run ``--build`` there; a failed build is a SKIP."""
        co = self.checkouts()
        path = co.cached(cand.label) if self.build else co.checkout(cand.label)
        extra = {"SLEUTH_REPO": str(path), env_name(Path(self.repo).resolve().name): str(path)}
        return _build(_in_checkout(spec, cand, path, self.repo, **extra), self.build, cand_dir, path)

    def warm(self, labels: list[str], keep: tuple[str, ...] = ()) -> None:
        """Check out the commits the next tests can be, in spare checkouts (not with ``--build``);
        those of ``keep``, tests submitted and not prepared yet, stay."""
        if not self.build:
            self.checkouts().warm(labels, keep)

    def close(self) -> None:
        """Let other processes use the checkouts this one held (a clone nothing used is removed)."""
        if self._cloning is not None:
            self._cloning.join()
            if self._made is not None and (self._checkouts is None or not self._checkouts.used):
                shutil.rmtree(self._made, ignore_errors=True)
                self._made = None
        if self._checkouts is not None:
            self._checkouts.close()

    def config(self) -> dict[str, Any]:
        """The flags that rebuild it."""
        return {"kind": self.kind, "repo": str(Path(self.repo).resolve()), "good": self.good, "bad": self.bad,
                "build": self.build, "first_parent": self.first_parent, "cache": self.cache,
                "paths": list(self.paths), "find_fix": self.find_fix}  # fmt: skip


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
        return run_git(r.path, "log", "-1", "--date=short", f"--format={_TITLE}", sha, check=False).strip()

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
        with _CHECKOUTS_LOCK:
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
        spec = _in_checkout(spec, cand, first, self.repos[0].path, SLEUTH_REPO=str(first), **extra)
        return _build(spec, self.build, cand_dir, first)

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
