"""Simulated bisection: tests, accuracy and rounds of sleuth's search against the usual baselines.

A culprit f is drawn uniformly from 1..N-1; a bad candidate (index >= f) fails with probability p,
a good one never fails.  Every method starts from the same end checks a user would run.

methods
  sleuth off     ``--flaky off``: good end, bad end, deterministic bisection (multisection with jobs)
  sleuth auto    ``--flaky auto`` (default): the bad end 1+3 times, then (if it never passed)
                 bisection that reruns its last good twice and turns Bayesian when the test proves
                 flaky, else the Bayesian search with p estimated (it reruns the bad end more)
  sleuth p=P     ``--flaky P``: the Bayesian search with the failure probability given
  plain          git-bisect style, one run per probe (jobs=1 only)
  rerun<=k       each probe rerun up to k times, FAIL at the first failure (jobs=1 only)
  bound          the information limit log2(N-1) / capacity(p) (+2 end checks), no confidence margin

Tests and rounds include the end checks.  A round is one batch of ``jobs`` parallel tests of equal
duration.  Run: ``python bench/bisect_sim.py [--seeds 200] [--quick]``; one cell with more seeds and
the reported confidence against the hit rate: ``--n 1000 --p 0.2 --jobs 1 --method auto --seeds 800
--calibration``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import sys
import time
from collections.abc import Callable

import numpy as np

from sleuth.bisect.flaky import z_channel_capacity
from sleuth.bisect.policy import AUTO_RERUNS, FlakyMode, choose_strategy
from sleuth.bisect.strategies import Bisection, Query, Strategy
from sleuth.model import Outcome

Oracle = Callable[[int], Outcome]


def _oracle(rng: random.Random, f: int, p: float) -> Oracle:
    return lambda i: Outcome.FAIL if i >= f and rng.random() < p else Outcome.PASS


#: reported confidence of each sleuth search in the current row (for ``--calibration``)
CONFIDENCES: list[float] = []
#: calibration tables waiting to be printed
CALIBRATION: list[str] = []


def run_sleuth(n: int, test: Oracle, mode: FlakyMode, jobs: int) -> tuple[int, int, int | None]:
    """(tests, rounds, answer) for one search as the driver runs it."""
    ends = [Outcome.PASS, Outcome.FAIL]  # the end checks pass (conditioned on by the simulation)
    extra = AUTO_RERUNS if mode.auto else 0
    ends_bad = [Outcome.FAIL] + [test(n - 1) for _ in range(extra)]
    rounds = math.ceil((2 + extra) / jobs)
    strat: Strategy = choose_strategy(n, mode, ends_bad)
    strat.observe(Query(0, 0), ends[0])
    for j, o in enumerate(ends_bad):
        strat.observe(Query(1 + j, n - 1), o)
    while not strat.done:
        batch = strat.propose(jobs)
        if not batch:
            break
        rounds += 1
        for q in batch:
            strat.observe(q, test(q.index))
    res = strat.result()
    CONFIDENCES.append(res.confidence)
    return strat.tests, rounds, res.first_bad


def run_rerun(n: int, test: Oracle, k: int) -> tuple[int, int, int | None]:
    """Bisection where each probe is rerun up to ``k`` times and FAILs at the first failure."""
    s = Bisection(n)
    tests = 2
    while not s.done:
        (q,) = s.propose(1)
        outcome = Outcome.PASS
        for _ in range(k):
            tests += 1
            if test(q.index) is Outcome.FAIL:
                outcome = Outcome.FAIL
                break
        s.observe(q, outcome)
    return tests, tests, s.result().first_bad


def rerun_k(p: float) -> int:
    """Reruns so that a bad candidate passes every one with probability <= 1%."""
    return 1 if p >= 1 else math.ceil(math.log(0.01) / math.log(1 - p))


def measure(
    n: int,
    p: float,
    seeds: int,
    fn: Callable[[Oracle], tuple[int, int, int | None]],
    calibration: bool = False,
) -> str:
    """Mean/p90 tests, accuracy and mean rounds over ``seeds`` simulated culprits."""
    tests, rounds, hits, right = [], [], 0, []
    CONFIDENCES.clear()
    for seed in range(seeds):
        rng = random.Random(seed * 7919 + n)
        f = rng.randint(1, n - 1)
        t, r, got = fn(_oracle(rng, f, p))
        tests.append(t)
        rounds.append(r)
        hits += got == f
        right.append(got == f)
    arr = np.array(tests)
    row = f"{arr.mean():7.1f} {np.percentile(arr, 90):6.0f} {100 * hits / seeds:6.1f}% {np.mean(rounds):7.1f}"
    if calibration and len(CONFIDENCES) == seeds:
        CALIBRATION.append(calibration_table(np.array(CONFIDENCES), np.array(right)))
    return row


def calibration_table(conf: np.ndarray, right: np.ndarray) -> str:
    """Searches binned by the confidence they reported, with the fraction that was right."""
    lines = ["#   reported confidence   searches   right   mean reported"]
    edges = [0.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99, 0.999, 1.0001]
    for lo, hi in itertools.pairwise(edges):
        m = (conf >= lo) & (conf < hi)
        if m.any():
            rate = 100 * right[m].mean()
            lines.append(
                f"#   [{lo:.3f}, {min(hi, 1):.3f})  {m.sum():>9} {rate:6.1f}%   {conf[m].mean():.4f}"
            )
    lines.append(f"#   all: mean reported {conf.mean():.4f}, right {100 * right.mean():.1f}%")
    return "\n".join(lines)


Method = Callable[[Oracle], tuple[int, int, int | None]]


def methods(n: int, p: float, jobs: int) -> list[tuple[str, Method]]:
    """The rows of one (N, p, jobs) cell."""
    rows: list[tuple[str, Method]] = []
    if p == 1.0:
        rows.append(("sleuth off", lambda t: run_sleuth(n, t, FlakyMode(False, 1.0), jobs)))
    rows.append(("sleuth auto", lambda t: run_sleuth(n, t, FlakyMode(True), jobs)))
    if p < 1.0:
        rows.append((f"sleuth p={p:g}", lambda t: run_sleuth(n, t, FlakyMode(False, p), jobs)))
    if jobs == 1:
        rows.append(("plain", lambda t: run_rerun(n, t, 1)))
        if p < 1.0:
            k = rerun_k(p)
            rows.append((f"rerun<={k}", lambda t: run_rerun(n, t, k)))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--seeds-10k", type=int, default=40, help="seeds per row at N=10000 (slow rows)")
    ap.add_argument("--quick", action="store_true", help="N=1000 only")
    ap.add_argument("--n", type=int, action="append", help="only this N (repeatable)")
    ap.add_argument("--p", type=float, action="append", help="only this p (repeatable)")
    ap.add_argument("--jobs", type=int, action="append", help="only this jobs (repeatable)")
    ap.add_argument("--method", action="append", help="only methods whose name contains this (repeatable)")
    ap.add_argument("--calibration", action="store_true", help="reported confidence vs. right, per row")
    args = ap.parse_args(argv)
    sizes = args.n or ([1000] if args.quick else [100, 1000, 10000])
    print(
        f"{'N':>6} {'p':>4} {'jobs':>4}  {'method':<13} {'tests':>7} {'p90':>6} {'acc':>7} {'rounds':>7} {'seeds':>6}"
    )
    t0 = time.perf_counter()
    for n in sizes:
        seeds = args.seeds_10k if n >= 10000 else args.seeds
        bound = math.log2(n - 1)
        for p in args.p or (1.0, 0.9, 0.5, 0.2):
            for jobs in args.jobs or (1, 3, 7):
                rows = methods(n, p, jobs)
                for name, fn in rows:
                    if args.method and not any(m in name for m in args.method):
                        continue
                    row = measure(n, p, seeds, fn, args.calibration)
                    print(f"{n:>6} {p:>4g} {jobs:>4}  {name:<13} {row} {seeds:>6}", flush=True)
                    while CALIBRATION:
                        print(CALIBRATION.pop(), flush=True)
                if jobs == 1 and not args.method:
                    cap = z_channel_capacity(p)
                    print(f"{n:>6} {p:>4g} {jobs:>4}  {'bound':<13} {bound / cap + 2:7.1f}")
    print("# targets: p=1 'sleuth off' <= ceil(log2 N)+2 tests; N=1000 p=0.5: acc >= 95% with <= 33 tests;")
    print(f"# jobs=7 p=0.5: <= 10 rounds.  seeds per row in the last column; {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
