"""What one candidate checkout costs, by design: the per-candidate prepare step of ``bisect git``.

A repository of N commits (default 1000) with F files (default 20; ``--files 3000`` for a bigger
tree, each commit changing a few files) is generated in a temp dir.  Each design checks out the
same random sequence of commits (a bisection's jumps), interleaved design by design and repeated;
the table prints the median and spread of milliseconds per candidate, and the ratio to an
in-place ``git checkout`` in the user's repository (what ``git bisect`` does).

- ``checkout-in-place``: ``git checkout --detach`` in the repository itself (git bisect's cost).
- ``worktree-add``: a new ``git worktree add --detach`` per candidate (sleuth before).
- ``slot-checkout``: one reusable checkout per running slot, a private repository whose objects are
  borrowed from the user's (``objects/info/alternates``), ``git checkout --force --detach``.
- ``slot-checkout+clean``: the same plus ``git clean -ffdq`` (untracked files a test left behind).
- ``slot-sleuth``: sleuth's own :class:`sleuth.bisect.checkouts.Checkouts` (what ships).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
       "GIT_COMMITTER_EMAIL": "b@b"}  # fmt: skip


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True, env=ENV).stdout


def make_repo(root: Path, n: int, files: int) -> list[str]:
    """N commits through fast-import; the first writes F files, each later one changes three."""
    repo = root / "repo"
    git("init", "-q", "-b", "main", str(repo))
    rng = random.Random(1)
    stream = []
    for i in range(n):
        touched = range(files) if i == 0 else rng.sample(range(files), min(3, files))
        mods = "".join(f"M 644 inline d{k % 50}/f{k}\ndata {len(f'{i}:{k}')}\n{i}:{k}\n" for k in touched)
        stream.append(f"commit refs/heads/main\nmark :{i + 1}\ncommitter b <b@b> {1_700_000_000 + i} +0000\n"
                      f"data {len(f'c{i}')}\nc{i}\n" + ("" if i == 0 else f"from :{i}\n") + mods + "\n")  # fmt: skip
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input="".join(stream), text=True,
                   check=True, env=ENV)  # fmt: skip
    git("-C", str(repo), "checkout", "-q", "main")
    return git("-C", str(repo), "rev-list", "--reverse", "main").split()


def design_in_place(repo: Path, work: Path, seq: list[str]) -> list[float]:
    out = []
    for sha in seq:
        t = time.perf_counter()
        git("-C", str(repo), "checkout", "-q", "--detach", sha)
        out.append(time.perf_counter() - t)
    git("-C", str(repo), "checkout", "-q", "main")
    return out


def design_worktree_add(repo: Path, work: Path, seq: list[str]) -> list[float]:
    out = []
    for j, sha in enumerate(seq):
        t = time.perf_counter()
        git("-C", str(repo), "worktree", "add", "-q", "--force", "--detach", str(work / f"wt{j}"), sha)
        out.append(time.perf_counter() - t)
    shutil.rmtree(work, ignore_errors=True)
    git("-C", str(repo), "worktree", "prune")
    return out


def _slot(repo: Path, work: Path) -> Path:
    slot = work / "slot"
    git("init", "-q", "--template=", str(slot))
    objects = git("-C", str(repo), "rev-parse", "--path-format=absolute", "--git-common-dir").strip()
    (slot / ".git" / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (slot / ".git" / "objects" / "info" / "alternates").write_text(objects + "/objects\n")
    return slot


def design_slot(repo: Path, work: Path, seq: list[str], clean: bool = False) -> list[float]:
    slot = _slot(repo, work)
    out = []
    for sha in seq:
        t = time.perf_counter()
        git("-C", str(slot), "checkout", "-q", "--force", "--detach", sha)
        if clean:
            git("-C", str(slot), "clean", "-ffdq")
        out.append(time.perf_counter() - t)
    shutil.rmtree(work, ignore_errors=True)
    return out


def design_sleuth(repo: Path, work: Path, seq: list[str]) -> list[float]:
    from sleuth.bisect.checkouts import Checkouts

    co = Checkouts(str(repo), work)
    out = []
    for sha in seq:
        t = time.perf_counter()
        co.checkout(sha)
        out.append(time.perf_counter() - t)
    co.close()
    shutil.rmtree(work, ignore_errors=True)
    return out


DESIGNS = {
    "checkout-in-place": design_in_place,
    "worktree-add": design_worktree_add,
    "slot-checkout": design_slot,
    "slot-checkout+clean": lambda r, w, s: design_slot(r, w, s, clean=True),
    "slot-sleuth": design_sleuth,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--candidates", type=int, default=12, help="checkouts per repetition (a bisection's)")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shas = make_repo(root, a.commits, a.files)
        rng = random.Random(7)
        per: dict[str, list[float]] = {d: [] for d in DESIGNS}
        for r in range(a.repeat):
            seq = [rng.choice(shas) for _ in range(a.candidates)]
            for name, fn in DESIGNS.items():  # interleaved: load from other processes hits all alike
                per[name] += fn(root / "repo", root / f"work-{name}-{r}", seq)
        anchor = statistics.median(per["checkout-in-place"])
        print(f"{a.commits} commits, {a.files} files, {a.candidates} checkouts x {a.repeat} repetitions")
        print(f"{'design':<22} {'median ms':>10} {'p10-p90 ms':>16} {'x in-place':>11}")
        for name, xs in per.items():
            xs.sort()
            p10, p90 = xs[len(xs) // 10], xs[(9 * len(xs)) // 10]
            med = statistics.median(xs)
            print(
                f"{name:<22} {1000 * med:>10.1f} {1000 * p10:>7.1f}-{1000 * p90:<8.1f} {med / anchor:>11.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
