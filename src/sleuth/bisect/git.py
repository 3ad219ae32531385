"""Git candidates of one repository (:class:`GitSource`), and what every git source shares: a
candidate's checkout, ``--build`` in it, the test's spec there (:func:`in_checkout`, :func:`build_first`).

The user's repository is only read: every candidate is checked out in the cache, in a worktree of
a shared clone (:mod:`sleuth.bisect.checkouts`): one reusable checkout per running test, or with
``--build`` one per commit so that a revisit reuses its build.  ``--build`` runs in the checkout
first and a build that fails makes the candidate a SKIP.  ``--path`` keeps only the commits that
change those paths (relative to their first parent), like ``git bisect start -- PATH``; the two
ends always stay.  With ``--find-fix`` the failing ``--bad`` end is the older one.  The history is
read by :mod:`sleuth.bisect.githistory`; several co-varying repositories are
:mod:`sleuth.bisect.multigit`'s.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sleuth.bisect.candidates import Candidate, Prepared, with_candidate
from sleuth.bisect.checkouts import GIT_REDIRECTS, Checkouts, git_env, run_git
from sleuth.bisect.githistory import commit_of, history
from sleuth.errors import UsageError
from sleuth.model import TrialSpec

__all__ = [
    "CHECKOUTS_LOCK",
    "TITLE",
    "GitSource",
    "build_first",
    "checkout_cwd",
    "env_name",
    "in_checkout",
    "program_path",
    "submodule_notes",
]

#: held while a source makes its :class:`~sleuth.bisect.checkouts.Checkouts` (tests prepared at once)
CHECKOUTS_LOCK = threading.Lock()


def _cache_root() -> Path:
    from sleuth.environments import cache_dir

    return cache_dir() / "bisect-git"


def _git(repo: str, *args: str) -> str:
    return run_git(repo, *args)


#: a commit's title in summaries and reports: ``subject (author, date)``
TITLE = "%s (%an, %ad)"


def env_name(name: str) -> str:
    """``$SLEUTH_REPO_<NAME>``: upper-cased, every character that is not a letter or digit made ``_``."""
    return "SLEUTH_REPO_" + (re.sub(r"[^A-Za-z0-9]", "_", name).upper() or "REPO")


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


def checkout_cwd(cwd: str | None, repo: str, path: Path) -> str:
    """Where the test runs in the checkout ``path`` of ``repo``: its top, or with ``--cwd`` a folder of
    the repository (``--cwd repo/python``) the same folder of the checkout; a ``--cwd`` elsewhere as given.

    Never the user's own tree: that holds another commit (and the user's edits).
    """
    if cwd is None:
        return str(path)
    top, where = Path(repo).resolve(), Path(cwd).resolve()
    return str(path / where.relative_to(top)) if where.is_relative_to(top) else cwd


def in_checkout(spec: TrialSpec, cand: Candidate, path: Path, repo: str, **extra: str) -> TrialSpec:
    """The test's spec in a checkout: cwd there (:func:`checkout_cwd`), and no ``GIT_DIR`` that would
    point at the user's repo."""
    env = {k: v for k, v in spec.env.items() if k not in GIT_REDIRECTS}
    return with_candidate(replace(spec, env=env), cand, **extra).with_cwd(checkout_cwd(spec.cwd, repo, path))


def build_first(spec: TrialSpec, build: str | None, cand_dir: Path, top: Path) -> Prepared:
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
            sha = commit_of(self.repo, rev, "--skip", rev)
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
            fmt = f"--format=%H {TITLE}"
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
        out = _git(self.repo, "log", "--reverse", "--date=short", f"--format=%H {TITLE}",
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
        with CHECKOUTS_LOCK:
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
        return build_first(in_checkout(spec, cand, path, self.repo, **extra), self.build, cand_dir, path)

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
