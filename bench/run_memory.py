"""Peak RSS of ``sleuth run --trials N -- true`` for several N: memory must not grow with N.

Target (issue 9): peak RSS at 100,000 trials <= 1.2x that at 1,000.  Each measurement runs the real
CLI in a fresh wrapper process, so ``RUSAGE_CHILDREN`` holds only that sleuth's peak.  Rounds are
interleaved; the median and spread of each count are printed with the ratio to the smallest count.

``--series K``: each trial prints K values of a per-trial series (``seq``: ``v=1`` ... ``v=K``) read
by ``--metric-series``; the summary keeps a bounded sample of them (``run_tally.SAMPLE_MAX``, 65,536
values), so 20,000 trials x 1,000 values (20 million) must take about the memory of 1,000 x 1,000.

    python bench/run_memory.py                 # 1000 and 100000 trials, 3 rounds
    python bench/run_memory.py 1000 20000 -r 5 --jobs 4
    python bench/run_memory.py 1000 20000 --series 1000

Measured on the development machine (2 shared cores, one round, --jobs 2): ``--series 1000``,
1,000 trials 40.2 MiB, 20,000 trials 41.6 MiB (ratio 1.04; 137 s).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

WRAPPER = (
    "import resource, subprocess, sys; "
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_kib(trials: int, jobs: int, out: str, series: int = 0) -> tuple[int, float]:
    """Peak RSS (KiB) and wall time of one run (with ``series`` values per trial, when not 0)."""
    argv = [sys.executable, "-m", "sleuth", "run", "--trials", str(trials), "--jobs", str(jobs)]
    workload = ["seq", "-f", "v=%g", str(series)] if series else ["true"]
    if series:
        argv += ["--metric-series", "v=v=([0-9.e+]+)"]
    argv += ["--output", out, "--", *workload]
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-c", WRAPPER, *argv], capture_output=True, text=True, check=True)
    return int(res.stdout.strip()), time.monotonic() - t0


def main() -> None:
    """Measure and print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("counts", nargs="*", type=int, default=[1000, 100_000])
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--series", type=int, default=0, metavar="K", help="values of a series per trial")
    args = ap.parse_args()
    peaks: dict[int, list[int]] = {n: [] for n in args.counts}
    with tempfile.TemporaryDirectory() as out:
        for r in range(args.rounds):
            for n in args.counts:
                kib, wall = peak_kib(n, args.jobs, out, args.series)
                peaks[n].append(kib)
                what = f" x {args.series} values" if args.series else ""
                print(
                    f"round {r + 1}: --trials {n:>7}{what}: peak RSS {kib / 1024:7.1f} MiB  ({wall:.1f} s)",
                    flush=True,
                )
    base = statistics.median(peaks[args.counts[0]])
    print(f"\n{'trials':>8} {'median MiB':>11} {'min-max MiB':>15} {'ratio':>6}")
    for n, ks in peaks.items():
        med = statistics.median(ks)
        print(f"{n:>8} {med / 1024:11.1f} {min(ks) / 1024:7.1f}-{max(ks) / 1024:<7.1f} {med / base:6.2f}")


if __name__ == "__main__":
    main()
