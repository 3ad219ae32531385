"""The chain of ``sleuth bisect images --source`` on the example's images: tests, wall time, builds.

Builds ``examples/bisect-images`` (dated images with two git repositories) into a podman store of
its own, then, round after round (interleaved, so load drifts hit every variant alike):

  * ``chain``: ``bisect images --source dep --source lib --build ... --cache-mount`` (both stages);
  * ``commits+cache``: ``bisect image-commits`` between the last good and first bad image with a
    fresh cache mount;
  * ``commits, no cache``: the same without the cache mount (every build starts cold).

For each: tests (per stage), wall time, and the build times the summary records (first build, the
later ones, the sum); medians over the rounds with the spread (min-max).  ``--flaky off`` unless
``--flaky auto`` is given.  Needs podman (and runc on these machines).  Nothing asserts anything.

Usage: python bench/bisect_images_chain.py [--rounds 3] [--flaky off|auto] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APP = "localhost/sleuth-demo/app"
SOURCES = ["--source", "dep=/opt/dep", "--source", "lib=/opt/lib", "--build", "python3 /opt/build.py",
           "--env", "BUILD_CACHE=/cache"]  # fmt: skip


def sleuth(env: dict[str, str], cwd: Path, *args: str) -> tuple[dict[str, Any], float]:
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "sleuth", *args], cwd=cwd, env=env, capture_output=True, text=True,
                         check=False)  # fmt: skip
    wall = time.monotonic() - t0
    if not res.stdout:
        raise SystemExit(f"sleuth {' '.join(args[:2])} failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout), wall


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):7.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--flaky", default="off")
    ap.add_argument("--out", default=None, help="where the images are built (default: a temp dir)")
    args = ap.parse_args()
    if shutil.which("podman") is None:
        print("podman is not installed", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="sleuth-chain-bench-"))
    t0 = time.monotonic()
    built = subprocess.run([sys.executable, str(ROOT / "examples/bisect-images/build_images.py"), "--out", str(out)],
                           capture_output=True, text=True, check=True)  # fmt: skip
    print(f"images built in {time.monotonic() - t0:.1f}s ({out})")
    env = dict(os.environ)
    for line in built.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    rows: dict[str, dict[str, list[float]]] = {}
    for r in range(args.rounds):
        for name in ("chain", "commits+cache", "commits, no cache"):
            work = out / f"run-{r}-{name.replace(' ', '').replace(',', '')}"
            work.mkdir()
            env["SLEUTH_CACHE"] = str(work / "sleuth-cache")
            common = ["--runtime", "podman", "--flaky", args.flaky, "--json", "--output", "o", *SOURCES]
            cache = ["--cache-mount", f"{work}/build-cache:/cache"] if name != "commits, no cache" else []
            if name == "chain":
                doc, wall = sleuth(env, work, "bisect", "images", "--template", f"{APP}:{{date}}", "--start-date",
                                   "2025-03-01", *common, *cache, "--", "sh", "/opt/test.sh")  # fmt: skip
                stage = doc["commits"]
                tests = [doc["tests"], stage["tests"]]
            else:
                doc, wall = sleuth(env, work, "bisect", "image-commits", "--passing", f"{APP}:2025-03-08",
                                   "--failing", f"{APP}:2025-03-09", *common, *cache, "--", "sh", "/opt/test.sh")  # fmt: skip
                stage = doc
                tests = [0, doc["tests"]]
            if stage["status"] != "found" or stage["culprit_repo"] != "dep":
                raise SystemExit(f"{name}: a wrong answer: {stage}")
            builds = [b["seconds"] for b in stage["builds"]]
            row = rows.setdefault(
                name, {k: [] for k in ("dates", "commits", "wall", "first", "later", "sum")}
            )
            row["dates"].append(tests[0])
            row["commits"].append(tests[1])
            row["wall"].append(wall)
            row["first"].append(builds[0])
            row["later"].append(statistics.median(builds[1:]) if len(builds) > 1 else 0.0)
            row["sum"].append(sum(builds))
    print(f"\n{args.rounds} rounds, --flaky {args.flaky}; median (min-max), seconds")
    print(f"{'variant':<18} {'date tests':>10} {'commit tests':>12} {'wall':>18} {'first build':>18} "
          f"{'later builds (median)':>22} {'all builds':>18}")  # fmt: skip
    for name, row in rows.items():
        print(f"{name:<18} {statistics.median(row['dates']):>10.0f} {statistics.median(row['commits']):>12.0f} "
              f"{spread(row['wall']):>18} {spread(row['first']):>18} {spread(row['later']):>22} "
              f"{spread(row['sum']):>18}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
