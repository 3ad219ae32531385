"""Build a demo git repository whose history hides a flaky regression.

    python examples/bisect-git/make_repo.py DEST [--commits 400] [--culprit 263]

The repository holds a tiny "training step" (``model.py``) and its check (``check.py``).  One commit
changes the normalization epsilon from 1e-6 to 0; from then on a step produces a NaN loss when its
random batch happens to be constant, which ``check.py`` hits about half the time.  Every other
commit is harmless churn.  Tags ``demo-good`` (the first commit) and ``demo-bad`` (the last) mark the
ends.  An existing DEST is rebuilt from scratch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

MODEL = '''"""A toy normalized training step."""

import math
import random

EPS = {eps}
REVISION = {rev}


def step(batch: list[float]) -> float:
    mean = sum(batch) / len(batch)
    var = sum((x - mean) ** 2 for x in batch) / len(batch)
    normed = [(x - mean) / math.sqrt(var + EPS) if var + EPS > 0 else math.nan for x in batch]
    return sum(v * v for v in normed) / len(normed)


def batch(rng: random.Random) -> list[float]:
    # about half the batches are constant (a padded tail), which only EPS keeps finite
    return [1.0] * 8 if rng.random() < 0.5 else [rng.gauss(0, 1) for _ in range(8)]
'''

CHECK = '''"""Run one training step; exit 1 with 'loss is nan' when it diverges."""

import math
import random
import sys

import model

loss = model.step(model.batch(random.Random()))
print(f"revision={model.REVISION} loss={loss:.4f}")
if math.isnan(loss):
    print("loss is nan", file=sys.stderr)
    sys.exit(1)
'''


def git(repo: Path, *args: str, date: int | None = None) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "demo",
        "GIT_AUTHOR_EMAIL": "demo@example.com",
        "GIT_COMMITTER_NAME": "demo",
        "GIT_COMMITTER_EMAIL": "demo@example.com",
    }
    if date is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"{date} +0000"
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--commits", type=int, default=400)
    ap.add_argument("--culprit", type=int, default=263, help="index of the commit that sets EPS = 0")
    args = ap.parse_args()
    repo: Path = args.dest
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "check.py").write_text(CHECK)
    t0 = 1_760_000_000
    for i in range(args.commits):
        eps = "0.0" if i >= args.culprit else "1e-6"
        (repo / "model.py").write_text(MODEL.format(eps=eps, rev=i))
        git(repo, "add", "-A")
        msg = "normalize without epsilon (faster)" if i == args.culprit else f"refactor step {i}"
        git(repo, "commit", "-q", "-m", msg, date=t0 + 3600 * i)
    git(repo, "tag", "demo-good", "HEAD~" + str(args.commits - 1))
    git(repo, "tag", "demo-bad", "HEAD")
    print(
        f"{repo}: {args.commits} commits; the culprit is commit #{args.culprit} "
        "('normalize without epsilon (faster)')"
    )


if __name__ == "__main__":
    main()
