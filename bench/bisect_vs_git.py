"""``sleuth bisect git`` against ``git bisect run`` on one generated repository.

A repository of N commits (default 1024) is generated in a temp dir with a known culprit; the test
script reads a file, sleeps ``--test-s`` (a stand-in for a real test's cost) and fails from the
culprit on.  Both tools bisect the same range with the same script; the table prints the culprit
each found, the tests each ran and the wall time, plus the ratio sleuth/git (target <= 1.3).
sleuth runs with ``--flaky off`` (like git: one run per commit) and with the default ``auto``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
       "GIT_COMMITTER_EMAIL": "b@b"}  # fmt: skip


def make_repo(root: Path, n: int, culprit: int) -> list[str]:
    """N commits through fast-import; commit ``culprit`` flips ``bug`` to 1."""
    repo = root / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=ENV)
    stream = []
    for i in range(n):
        body = f"{i}\n"
        bug = "1\n" if i >= culprit else "0\n"
        stream.append(f"commit refs/heads/main\nmark :{i + 1}\ncommitter b <b@b> {1_700_000_000 + i} +0000\n"
                      f"data {len(f'c{i}')}\nc{i}\n" + ("" if i == 0 else f"from :{i}\n")
                      + f"M 644 inline value\ndata {len(body)}\n{body}M 644 inline bug\ndata {len(bug)}\n{bug}\n")  # fmt: skip
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input="".join(stream), text=True,
                   check=True, env=ENV)  # fmt: skip
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "main"], check=True, env=ENV)
    out = subprocess.run(["git", "-C", str(repo), "rev-list", "--reverse", "main"], capture_output=True,
                         text=True, check=True).stdout.split()  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--commits", type=int, default=1024)
    ap.add_argument("--culprit", type=int, default=701)
    ap.add_argument("--test-s", type=float, default=0.5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shas = make_repo(root, args.commits, args.culprit)
        count = root / "count"
        test = root / "test.sh"
        test.write_text(f'#!/bin/sh\necho x >> {count}\nsleep {args.test_s}\n'
                        'test "$(cat bug)" = 0 || { echo "AssertionError: bug" >&2; exit 1; }\n')  # fmt: skip
        test.chmod(0o755)
        repo = root / "repo"
        rows = []
        t0 = time.perf_counter()
        subprocess.run(["git", "-C", str(repo), "bisect", "start", shas[-1], shas[0]], check=True,
                       capture_output=True, env=ENV)  # fmt: skip
        out = subprocess.run(["git", "-C", str(repo), "bisect", "run", str(test)], capture_output=True,
                             text=True, env=ENV, cwd=repo).stdout  # fmt: skip
        git_wall = time.perf_counter() - t0
        found = next((ln.split()[0] for ln in out.splitlines() if "is the first bad commit" in ln), "?")
        subprocess.run(["git", "-C", str(repo), "bisect", "reset"], check=True, capture_output=True, env=ENV)
        rows.append(("git bisect run", found, len(count.read_text().split()), git_wall))
        for flaky in ("off", "auto"):
            count.write_text("")
            t0 = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", "sleuth", "bisect", "git", "--repo", str(repo), "--good",
                                  shas[0], "--bad", shas[-1], "--flaky", flaky, "--json", "--output",
                                  str(root / "out"), "--", str(test)], capture_output=True, text=True,
                                 env={**ENV, "SLEUTH_CACHE": str(root / "cache")})  # fmt: skip
            wall = time.perf_counter() - t0
            d = json.loads(res.stdout) if res.stdout else {}
            label = (d.get("first_bad") or {}).get("label", "?")
            rows.append((f"sleuth --flaky {flaky}", label, len(count.read_text().split()), wall))
    truth = shas[args.culprit]
    print(f"repository: {args.commits} commits, culprit #{args.culprit} {truth[:12]}, test {args.test_s}s")
    print(f"{'tool':<22} {'culprit':<14} {'ok':<4} {'tests':>5} {'wall':>8} {'ratio':>6}")
    for name, found, tests, wall in rows:
        print(f"{name:<22} {found[:12]:<14} {'yes' if found == truth else 'NO':<4} {tests:>5} {wall:>7.2f}s "
              f"{wall / git_wall:>6.2f}")  # fmt: skip
    print(
        "# target: sleuth --flaky off / git bisect run wall ratio <= 1.3 (auto adds 3 reruns of the bad end and 2 of the last good)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
