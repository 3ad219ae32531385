"""Per-trial overhead of ``sleuth run`` over a bare subprocess loop, and CLI start-up time.

Prints, from one run on this machine:
  * bare ``subprocess.run(["true"])`` x N: ms per trial (the anchor);
  * ``sleuth run --trials N --jobs 1 -- true``: ms per trial, from (T(N) - T(1)) / (N - 1), so
    start-up is not spread over the trials; the overhead (difference) and the ratio;
  * ``sleuth --version`` start-up (median of R runs) next to ``python -c pass``.
Targets (issue #2): overhead <= 3 ms per trial, start-up <= 0.3 s.

Usage: python bench/overhead.py [--trials 300] [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

SLEUTH = [sys.executable, "-m", "sleuth"]


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    n = args.trials
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SLEUTH_OUTPUT": tmp}
        t0 = time.perf_counter()
        for _ in range(n):
            subprocess.run(["true"], check=False)
        bare = (time.perf_counter() - t0) / n
        one = statistics.median(timed([*SLEUTH, "run", "--trials", "1", "--", "true"], env) for _ in range(3))
        many = timed([*SLEUTH, "run", "--trials", str(n), "--jobs", "1", "--", "true"], env)
        per = (many - one) / (n - 1)
        json_many = timed([*SLEUTH, "run", "--json", "--trials", str(n), "--jobs", "1", "--", "true"], env)
        json_per = (json_many - one) / (n - 1)
        start = statistics.median(timed([*SLEUTH, "--version"], env) for _ in range(args.repeats))
        script = (
            statistics.median(timed(["sleuth", "--version"], env) for _ in range(args.repeats))
            if any(
                os.access(os.path.join(p, "sleuth"), os.X_OK) for p in os.environ.get("PATH", "").split(":")
            )
            else float("nan")
        )
        py = statistics.median(timed([sys.executable, "-c", "pass"], env) for _ in range(args.repeats))
    print(f"{'measure':<44}{'value':>12}{'anchor':>12}{'ratio':>8}")
    print(f"{'bare subprocess.run(true), ms/trial':<44}{bare * 1e3:>12.2f}{'':>12}{'':>8}")
    print(
        f"{f'sleuth run --trials {n} -- true, ms/trial':<44}{per * 1e3:>12.2f}{bare * 1e3:>12.2f}"
        f"{per / bare:>8.2f}"
    )
    print(f"{'  overhead over bare, ms/trial (target <= 3)':<44}{(per - bare) * 1e3:>12.2f}")
    print(f"{'  same with --json, overhead ms/trial':<44}{(json_per - bare) * 1e3:>12.2f}")
    print(f"{'sleuth run --trials 1 (whole command), s':<44}{one:>12.3f}")
    print(f"{'python -m sleuth --version, s':<44}{start:>12.3f}{py:>12.3f}{start / py:>8.2f}")
    print(f"{'sleuth --version (console script), s':<44}{script:>12.3f}{py:>12.3f}{script / py:>8.2f}")
    print("start-up target <= 0.3 s; anchor column = python -c pass")


if __name__ == "__main__":
    main()
