"""A repository's history read with git: the commits between two ends (``--path`` kept to the
commits that change those paths), a ref checked to be a commit, the hint for a shallow clone.

Only reads the user's repository; two git commands that do not depend on each other run at once
(:func:`_beside`: start-up is measured).  :class:`~sleuth.bisect.git.GitSource` and
:class:`~sleuth.bisect.multigit.MultiGitSource` take their candidates from :func:`history`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sleuth._spawn import join
from sleuth.bisect.checkouts import git_env, run_git
from sleuth.errors import UsageError

__all__ = ["commit_of", "history", "is_repository"]

T = TypeVar("T")


def commit_of(repo: str, ref: str, flag: str, shown: str) -> str:
    """The full SHA of the commit ``ref`` names in ``repo``; a UsageError naming ``flag`` and the
    ref as ``shown`` when it names none (for a shallow clone, the hint says how to fetch the rest)."""
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
    newer = _beside(lambda: commit_of(repo, new, flags[1], pre + new))
    g = commit_of(repo, old, flags[0], pre + old)
    b = newer()
    from sleuth.runner import run_tool

    fp = ["--first-parent"] if first_parent else []
    fmt = ("--format=%H %ct" if times else "--format=%H 0") + (" %P" if parents is not None else "")
    is_ancestor = ["git", "-C", repo, "merge-base", "--is-ancestor", g, b]
    ancestor = _beside(lambda: run_tool(is_ancestor, env=git_env()))
    out = run_git(repo, "log", fmt, "--reverse", *fp, f"{g}..{b}")
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
    first = run_git(repo, "log", "-1", "--format=%H %ct", g).split() if times else [g, "0"]
    rows = []
    for sha, ts, *ps in (ln.split() for ln in out.splitlines() if ln.strip()):
        rows.append((sha, int(ts)))
        if parents is not None:
            parents[sha] = ps
    if paths and rows:
        rows = _touching(repo, f"{g}..{b}", fp, paths, rows)
    return [(first[0], int(first[1])), *rows]


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
