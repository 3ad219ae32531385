"""Checkouts of a user's repository that never touch it: a cache clone and reusable worktrees.

The user's repository is only read (``rev-parse``, ``log``, and as the origin of a clone).  Per
repository, ``<cache>/bisect-git/<id>/clone`` is a bare ``git clone --shared`` of it: it borrows
the user's objects through ``objects/info/alternates`` (nothing is copied) and holds its branches
and tags, fetched again once per process so that ``git describe`` in a build sees today's tags.
Every checkout is a worktree registered in that clone, never in the user's repository:

* ``slot-K``: one per running test (per worker thread), switched per candidate with
  ``git checkout --force --detach`` and ``git clean -ffdq`` (files a test left behind are removed,
  ignored ones such as ``__pycache__`` stay, as with ``git bisect``).  This costs about what
  ``git bisect``'s in-place checkout costs (``bench/git_prepare_cost.py``).
* ``commit-<sha>[-K]`` (with ``--build``): one per commit, kept so that a revisit reuses its build
  (its tracked files are checked out again on each use, its untracked ones stay); ``-K`` when the
  first is in use by a test running now.

A checkout is held (an ``flock`` on ``locks/<name>``) by the worker thread that prepared it until
that thread prepares its next candidate.  The backends run a test's prepare step and the test in
the same worker thread, so a checkout never changes under a running test, and two sleuth
processes never share one.  A kill -9 releases the locks; a checkout it left half-switched is
forced clean on its next use.

Warm checkouts hide the switch: while a test runs, :meth:`Checkouts.warm` switches spare ``slot-K``
checkouts (held by this object, not by a thread) to the commits the next test can be (in a
deterministic bisection, one of two), one after the other in a background thread.  When a worker
then asks for one of them it takes it over, already checked out and cleaned, and lets its previous
checkout go.  Spare checkouts are made only while a checkout of this tree is quick to make
(:data:`WARM_MAX_ADD_S`), so a huge tree is not checked out several times over.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import threading
import time
from pathlib import Path
from typing import IO

from sleuth.errors import InfrastructureError

__all__ = ["GIT_REDIRECTS", "WARM_MAX_ADD_S", "Checkouts", "git_env", "run_git"]

#: spare checkouts are made only when adding a checkout of this tree took less than this (seconds)
WARM_MAX_ADD_S = 1.0
#: at most this many spare checkouts at a time
WARM_MAX = 2

#: variables that would point our git commands at another repository (a user's hook or shell)
GIT_REDIRECTS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)


def git_env() -> dict[str, str]:
    """This process's environment without the variables that redirect git, and no prompts."""
    env = {k: v for k, v in os.environ.items() if k not in GIT_REDIRECTS}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def run_git(repo: str | Path, *args: str, check: bool = True, timeout_s: float = 600) -> str:
    """``git -C repo ARGS``; its stdout, or an ``InfrastructureError`` naming the command."""
    from sleuth.runner import run_tool

    res = run_tool(["git", "-C", str(repo), *args], env=git_env(), timeout_s=timeout_s)
    if check and not res.ok:
        raise InfrastructureError(f"git {' '.join(args)} in {repo}: {res.brief()}")
    return res.stdout if res.ok else ""


class Checkouts:
    """The checkouts of one user repository, kept under the cache dir."""

    def __init__(self, repo: str, root: Path | None = None) -> None:
        from sleuth.environments import cache_dir

        self.repo = repo
        common = run_git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").strip()
        repo_id = hashlib.sha256(os.path.realpath(common).encode()).hexdigest()[:12]
        self.dir = (root or cache_dir() / "bisect-git") / repo_id
        self.clone = self.dir / "clone"
        self._mutex = threading.Lock()
        self._clone_mutex = threading.Lock()
        self._fetched = False
        #: ``worktree prune`` ran (once per process; a clone made by this process has nothing stale)
        self._pruned = False
        #: worker thread -> (checkout name, its open lock file)
        self._held: dict[int, tuple[str, IO[str]]] = {}
        #: commit -> a spare checkout switched (or being switched) to it
        self._warm: dict[str, _Warm] = {}
        #: commits to warm next, most wanted first
        self._wanted: list[str] = []
        self._warmer: threading.Thread | None = None
        self._closed = False
        #: the longest ``worktree add`` seen (spare checkouts only while it is quick)
        self._add_s = 0.0
        #: checkouts served by taking over a warm spare
        self.warm_hits = 0
        #: a checkout was asked for (not only the clone made)
        self.used = False

    def _locked_dir(self) -> IO[str]:
        """The lock of the clone itself (creating, fetching, adding worktrees), held until closed."""
        (self.dir / "locks").mkdir(parents=True, exist_ok=True)
        fh = open(self.dir / "locks" / "clone", "a")  # noqa: SIM115 - closed by the caller
        fcntl.flock(fh, fcntl.LOCK_EX)
        return fh

    def ensure_clone(self) -> None:
        """The bare shared clone exists and, once per process, has the user's current refs."""
        if self._fetched:
            return
        with self._clone_mutex, self._locked_dir():
            if self._done_fetching():  # another thread fetched while this one waited
                return
            if not (self.clone / "objects" / "info" / "alternates").is_file():
                self._reclone()
            else:
                try:
                    run_git(self.clone, "fetch", "--quiet", "--force", "--prune", "origin",
                            "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")  # fmt: skip
                except InfrastructureError:  # the user rewrote history and pruned what we referenced
                    self._reclone()
            self._fetched = True

    def _done_fetching(self) -> bool:
        return self._fetched

    def _reclone(self) -> None:
        tmp = self.dir / "clone.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        run_git(self.dir, "clone", "--quiet", "--bare", "--shared", os.path.abspath(self.repo), str(tmp))
        shutil.rmtree(self.clone, ignore_errors=True)
        os.replace(tmp, self.clone)
        self._pruned = True

    def _try_hold(self, name: str) -> IO[str] | None:
        fh = open(self.dir / "locks" / name, "a")  # noqa: SIM115 - kept open while held
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return None
        return fh

    def _release(self, tid: int) -> None:
        held = self._held.pop(tid, None)
        if held is not None:
            held[1].close()

    def _hold(self, prefix: str, keep: bool) -> str:
        """Hold the first free checkout named ``prefix``, ``prefix-1``, ... for this thread."""
        tid = threading.get_ident()
        with self._mutex:
            held = self._held.get(tid)
            if held is not None and keep and held[0].startswith(prefix):
                return held[0]
            self._release(tid)
            for k in range(10_000):
                name = prefix if k == 0 and not keep else f"{prefix}{k}" if keep else f"{prefix}-{k}"
                fh = self._try_hold(name)
                if fh is not None:
                    self._held[tid] = (name, fh)
                    return name
        raise InfrastructureError(f"{self.dir}: no free checkout slot")

    def _switch(self, path: Path, sha: str, clean: bool) -> None:
        """Check ``sha`` out in the worktree ``path`` (added to the clone on first use)."""
        gitfile = path / ".git"
        if gitfile.is_file():
            # a kill -9 during a checkout leaves the index locked; this thread holds the checkout
            gitdir = gitfile.read_text(encoding="utf-8").partition("gitdir:")[2].strip()
            if gitdir:
                (Path(gitdir) / "index.lock").unlink(missing_ok=True)
            try:
                run_git(path, "checkout", "--quiet", "--force", "--detach", sha)
                if clean:
                    run_git(path, "clean", "-ffdq")
                return
            except InfrastructureError:  # not a worktree of the clone any more (the clone was rebuilt)
                pass
        shutil.rmtree(path, ignore_errors=True)
        with self._locked_dir():
            t0 = time.monotonic()
            if not self._pruned:  # our clone only: the user's list is never pruned
                run_git(self.clone, "worktree", "prune")  # stale entries of removed checkouts
                self._pruned = True  # (``add --force`` takes a registered path that is missing)
            run_git(self.clone, "worktree", "add", "--quiet", "--force", "--detach", str(path), sha)
            self._add_s = max(self._add_s, time.monotonic() - t0)

    def checkout(self, sha: str) -> Path:
        """This thread's reusable checkout, switched to ``sha`` (a warm one when there is one)."""
        self.used = True
        self.ensure_clone()
        with self._mutex:
            warm = self._warm.pop(sha, None)
            self._wanted = [w for w in self._wanted if w != sha]
        if warm is not None:
            warm.done.wait()
            with self._mutex:
                if warm.ok and not self._closed:  # take it over; the previous checkout is let go
                    tid = threading.get_ident()
                    self._release(tid)
                    self._held[tid] = (warm.name, warm.fh)
                    self.warm_hits += 1
                    return self.dir / warm.name
                warm.fh.close()
        path = self.dir / self._hold("slot-", keep=True)
        self._switch(path, sha, clean=True)
        return path

    def warm(self, shas: list[str], keep: tuple[str, ...] = ()) -> None:
        """Switch spare checkouts to ``shas`` (the most wanted first) in the background.

        Spare checkouts of other commits than these and ``keep`` (tests submitted and not yet
        prepared) are let go; nothing happens once a checkout of this tree took
        :data:`WARM_MAX_ADD_S` or more to make.
        """
        with self._mutex:
            if self._closed or self._add_s >= WARM_MAX_ADD_S:
                return
            self.used = True
            wanted = list(dict.fromkeys(shas))[:WARM_MAX]
            for sha in [
                s for s, w in self._warm.items() if s not in wanted and s not in keep and w.done.is_set()
            ]:
                self._warm.pop(sha).fh.close()
            self._wanted = [s for s in wanted if s not in self._warm]
            if self._wanted and self._warmer is None:
                self._warmer = threading.Thread(target=self._warm_loop, name="sleuth-warm", daemon=True)
                self._warmer.start()

    def _warm_loop(self) -> None:
        """The background thread of :meth:`warm`: one spare checkout at a time."""
        while True:
            with self._mutex:
                if self._closed or not self._wanted or len(self._warm) >= 2 * WARM_MAX:
                    self._warmer = None
                    return
                sha = self._wanted.pop(0)
                spare = self._spare(sha)
                if spare is None:
                    self._warmer = None
                    return
            try:
                self.ensure_clone()
                self._switch(self.dir / spare.name, sha, clean=True)
                spare.ok = True
            except InfrastructureError:  # the worker that wants it switches a checkout itself
                spare.ok = False
            finally:
                spare.done.set()

    def _spare(self, sha: str) -> _Warm | None:
        """A free ``slot-K`` held for a warm checkout of ``sha`` (called with the mutex held)."""
        (self.dir / "locks").mkdir(parents=True, exist_ok=True)
        for k in range(len(self._held) + WARM_MAX + 8):
            name = f"slot-{k}"
            fh = self._try_hold(name)
            if fh is not None:
                spare = _Warm(name, fh)
                self._warm[sha] = spare
                return spare
        return None

    def cached(self, sha: str) -> Path:
        """A checkout kept for ``sha`` alone (its build outputs are reused when it is tested again).

        Its tracked files are checked out again each time (only those that changed are rewritten): a
        test or build that edited one (a regenerated golden file, a ``sed -i``) must not change what
        the next run of the same commit sees.  Untracked and ignored files, the build's outputs, stay.
        """
        self.used = True
        self.ensure_clone()
        path = self.dir / self._hold(f"commit-{sha}", keep=False)
        self._switch(path, sha, clean=False)
        return path

    def close(self) -> None:
        """Release every checkout this process holds (after the warm checkout being made, if any)."""
        with self._mutex:
            self._closed = True
            self._wanted.clear()
            warmer = self._warmer
        if warmer is not None:
            warmer.join()
        with self._mutex:
            for tid in list(self._held):
                self._release(tid)
            for spare in self._warm.values():
                spare.fh.close()
            self._warm.clear()


class _Warm:
    """A spare checkout switched (``done``, ``ok``) or being switched to one commit."""

    __slots__ = ("done", "fh", "name", "ok")

    def __init__(self, name: str, fh: IO[str]) -> None:
        self.name = name
        self.fh = fh
        self.done = threading.Event()
        self.ok = False
