"""A source's git repository read out of a container image (the commits stage, :mod:`sleuth.bisect.chain`).

:func:`copied_git` copies ``PATH/.git`` of an image to the host: the whole directory (every
object: the failing image's, which the tests check commits out of) or only ``HEAD`` and the refs
(the passing image's, whose commit is all that is needed).  :func:`head_commit` reads the commit a
copied ``HEAD`` names, and :func:`has_commit` whether a copied repository holds a commit.

Invariants: nothing runs in the image (a container is created, copied from and removed); a copy is
cached under ``<cache>/image-sources/<image id>/`` by the image's id and the path, made in a
temporary directory and renamed into place under a lock, so a copy that exists is whole and two
runs copy it once; a path that is not a git repository directory is a usage error naming the
``--source``.  Reading ``HEAD`` runs no git (a copy of refs only is not a repository).
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
from pathlib import Path

from sleuth.errors import UsageError

__all__ = ["copied_git", "has_commit", "head_commit"]


def head_commit(gitdir: Path) -> str | None:
    """The commit ``HEAD`` of a copied ``.git`` names (detached, a loose ref, or a packed one)."""
    try:
        head = (gitdir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head if re.fullmatch(r"[0-9a-f]{40,64}", head) else None
    ref = head[4:].strip()
    loose = gitdir / ref
    if loose.is_file():
        return loose.read_text(encoding="utf-8").strip() or None
    packed = gitdir / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    return None


def copied_git(runtime: str, image: str, path: str, name: str, *, whole: bool) -> Path:
    """The image's ``PATH/.git`` on the host (``whole``: every object; else HEAD and refs only)."""
    from sleuth.environments import cache_dir
    from sleuth.environments.runtimes import copy_out, image_exists, image_id

    if not image_exists(runtime, image):
        raise UsageError(f"image {image} not found by {runtime}", hint="check the name and the --runtime")
    ident = image_id(runtime, image)[:16]
    root = cache_dir() / "image-sources" / ident
    slug = hashlib.sha1(path.encode()).hexdigest()[:8]
    dest = root / f"{name}-{slug}{'' if whole else '-refs'}.git"
    if (dest / "HEAD").is_file():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (dest / "HEAD").is_file():
            return dest
        tmp = root / f".{dest.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        parts = (
            [(f"{path}/.git", str(tmp / "g"), True)]
            if whole
            else [
                (f"{path}/.git/HEAD", str(tmp / "HEAD"), True),
                (f"{path}/.git/packed-refs", str(tmp / "packed-refs"), False),
                (f"{path}/.git/refs", str(tmp / "refs"), False),
            ]
        )
        try:
            copy_out(runtime, image, parts)
        except UsageError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UsageError(
                f"--source {name}={path}: {image} has no git repository there",
                hint="give the path of a git checkout inside the image",
            ) from None
        got = tmp / "g" if whole else tmp
        if whole and not (got / "HEAD").is_file():  # PATH/.git was a file (a worktree, a submodule)
            shutil.rmtree(tmp, ignore_errors=True)
            raise UsageError(f"--source {name}={path}: {path}/.git in {image} is not a repository directory")
        shutil.rmtree(dest, ignore_errors=True)
        got.rename(dest)
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def has_commit(repo: Path, sha: str) -> bool:
    """Whether the copied repository ``repo`` holds the commit ``sha``."""
    from sleuth.bisect.checkouts import git_env
    from sleuth.runner import run_tool

    return run_tool(["git", "-C", str(repo), "cat-file", "-e", f"{sha}^{{commit}}"], env=git_env()).ok
