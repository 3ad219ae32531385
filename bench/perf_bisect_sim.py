"""Performance bisection, simulated: the real driver, sequential search, engine and journal; only the process is fake.

Each search runs :class:`sleuth.bisect.driver.Driver` in performance mode (``--metric t``) over N
list candidates with :class:`sleuth.bisect.sim.SimBackend`: every run takes one unit of virtual
time and reports a value: 100 before the culprit, 100 (1 + regression) from it on, times a noise
factor (:class:`sleuth.bisect.sim.Noise`: Gaussian, log-normal, bimodal = two clusters of timings,
outliers = Gaussian plus 2% of runs 20-100% slower) with coefficient of variation CV.  The culprit
is uniform in 1..N-1; a regression of 0 is a null range.  The threshold is 0.6 x the regression
(a 5% regression is hunted with ``--threshold 3``); null ranges use 3.

methods
  seq      the sequential search (the default of ``sleuth bisect --metric``)
  fixed5   every candidate runs 5 times, the ends are compared once (Mann-Whitney, 0.01), a probe
           is bad when its median is nearer the bad end's: bisection on those verdicts
  fixed10  the same with 10 runs

Columns: right = found and right (Wilson 95% interval); wrong = found (or ambiguous) and not the
culprit, for a null range any found; other = not_found / inconclusive; runs = mean runs per search
(ends included), p90; rounds = mean virtual time (test durations; jobs > 1 runs in parallel).
Rows marked x2 hold two steps of the regression each (one in each half of the range); "both
steps" is the share of searches that reported both.  Then the calibration tables (answers binned
by reported confidence), the sequential rank test's decision rates alone, and the targets of
issue 10 with whether each is met.

  python bench/perf_bisect_sim.py            # every table (slow: 10-16 minutes on 2 cores)
  python bench/perf_bisect_sim.py --quick    # the targets and a few rows, 100 seeds (a minute or two)
  python bench/perf_bisect_sim.py --row 0.05 0.03 gauss 200 --method seq --seeds 500 --calibration
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

from _report import print_targets  # bench/ is sys.path[0] when a bench runs

from sleuth.bisect.perf import PerfSpec
from sleuth.bisect.seqtest import ALPHA, LOOKS
from sleuth.bisect.sim import NOISE_KINDS, CalibrationBin, Noise, PerfSimResult, simulate_perf
from sleuth.bisect.sim import calibration as bin_confidence
from sleuth.bisect.trials import Options
from sleuth.stats import wilson

KINDS = ("gauss", "lognormal", "bimodal", "outliers")


@dataclass(frozen=True, slots=True)
class Cell:
    """One row: a method on (regression, CV, noise, N, jobs)."""

    regression: float
    cv: float
    kind: str
    n: int
    method: str = "seq"
    jobs: int = 1
    seeds: int = 200
    culprit: int | None = None
    #: two steps of ``regression`` each (first bads drawn in the first and the second half)
    two: bool = False

    @property
    def threshold(self) -> float:
        """0.6 x the regression in percent (3 for a null range)."""
        return round(60 * self.regression, 1) if self.regression else 3.0

    def options(self) -> Options:
        """The search's options."""
        fixed = {"fixed5": 5, "fixed10": 10}.get(self.method)
        return Options(jobs=self.jobs, perf=PerfSpec("t", threshold=self.threshold, fixed=fixed))


_ROOT: Path | None = None


def _init(root: str) -> None:
    global _ROOT
    _ROOT = Path(tempfile.mkdtemp(prefix="perfsim-", dir=root))


def _one(task: tuple[Cell, int]) -> tuple[Cell, PerfSimResult, float]:
    cell, seed = task
    assert _ROOT is not None
    t0 = time.perf_counter()
    steps = None
    if cell.two:
        rng = random.Random(seed)
        half = cell.n // 2
        steps = (
            (rng.randint(1, half - 1), cell.regression),
            (rng.randint(half, cell.n - 1), cell.regression),
        )
    res = simulate_perf(cell.n, cell.options(), seed * 7919 + cell.n + int(1000 * cell.cv), _ROOT,
                        regression=cell.regression, noise=Noise(cell.kind, cell.cv), culprit=cell.culprit,
                        steps=steps)  # fmt: skip
    return cell, res, time.perf_counter() - t0


def run(cells: Sequence[Cell], procs: int, root: str) -> dict[Cell, list[PerfSimResult]]:
    """Every seed of every cell over ``procs`` processes; prints the cost per run."""
    tasks = [(c, s) for c in cells for s in range(c.seeds)]
    out: dict[Cell, list[PerfSimResult]] = {c: [] for c in cells}
    spent, tests = 0.0, 0
    t0 = time.perf_counter()
    with Pool(procs, initializer=_init, initargs=(root,)) as pool:
        for cell, res, dt in pool.imap_unordered(_one, tasks, chunksize=2):
            out[cell].append(res)
            spent += dt
            tests += res.tests
    print(f"# {len(tasks)} searches, {tests} runs in {time.perf_counter() - t0:.0f}s on {procs} processes: "
          f"{1000 * spent / max(tests, 1):.2f} ms per run (driver, search, engine, journal, result files)",
          flush=True)  # fmt: skip
    return out


@dataclass(frozen=True, slots=True)
class Row:
    """The summary of one cell."""

    right: float
    right_ci: tuple[float, float]
    wrong: float
    wrong_ci: tuple[float, float]
    other: float
    runs: float
    p90: float
    rounds: float
    max_conf: float
    #: two-step rows: every step reported (the answer being one of them)
    both: float = 0.0


def summarize(cell: Cell, rs: list[PerfSimResult]) -> Row:
    """Accuracy, cost, the highest confidence reported."""
    m = len(rs)
    right = sum(r.right for r in rs)
    if cell.regression:
        wrong = sum(r.status in ("found", "ambiguous") and not r.hit for r in rs)
    else:
        wrong = sum(r.status == "found" for r in rs)
    runs = sorted(r.tests for r in rs)
    return Row(right / m, wilson(right, m), wrong / m, wilson(wrong, m), (m - right - wrong) / m,
               sum(runs) / m, runs[min(m - 1, int(0.9 * m))], sum(r.rounds for r in rs) / m,
               max(r.confidence for r in rs), sum(set(r.found) == set(r.culprits) for r in rs) / m)  # fmt: skip


HEADER = (f"{'noise':<18} {'N':>5} {'reg':>5} {'CV':>4} {'thr':>4} {'method':<7} {'jobs':>4} {'right':>6} "
          f"{'(95% CI)':>15} {'wrong':>6} {'other':>6} {'runs':>6} {'p90':>5} {'rounds':>7} {'seeds':>5}")  # fmt: skip


def line(cell: Cell, row: Row) -> str:
    """One table line (for a null range, "wrong" is found at all)."""
    lo, hi = row.right_ci
    right = (
        f"{100 * row.right:5.1f}% ({100 * lo:5.1f}-{100 * hi:5.1f}%)"
        if cell.regression
        else f"{'-':>6} {'':15}"
    )
    kind = f"{cell.kind}{' x2' if cell.two else ''}"
    return (f"{kind:<18} {cell.n:>5} {100 * cell.regression:4.0f}% {100 * cell.cv:3.0f}% {cell.threshold:>4g} "
            f"{cell.method:<7} {cell.jobs:>4} {right} {100 * row.wrong:5.1f}% {100 * row.other:5.1f}% "
            f"{row.runs:6.1f} {row.p90:5.0f} {row.rounds:7.1f} {cell.seeds:>5}"
            + (f"  both steps {100 * row.both:.1f}%" if cell.two else ""))  # fmt: skip


def calibration(rs: Iterable[PerfSimResult]) -> list[CalibrationBin]:
    """Answers (found or ambiguous) binned by reported confidence; a hit names a culprit."""
    return bin_confidence((r.confidence, r.hit) for r in rs if r.status in ("found", "ambiguous"))


def print_calibration(title: str, bins: list[CalibrationBin]) -> bool:
    """The table; True when every bin meets the target."""
    print(f"# calibration, {title}")
    print(
        "#   reported confidence   answers   hit rate (95% CI)        mean reported   target hit >= mean - 2"
    )
    for b in bins:
        lo, hi = wilson(b.hits, b.count)
        verdict = "ok" if b.ok else ("MISSED" if hi < b.mean_conf - 0.02 else "missed (within noise)")
        print(f"#   [{b.lo:.2f}, {b.hi:.2f})  {b.count:>10}   {100 * b.hits / b.count:6.1f}% "
              f"({100 * lo:5.1f}-{100 * hi:5.1f}%)   {b.mean_conf:.4f}          {verdict}")  # fmt: skip
    return all(b.ok for b in bins)


def grid(seeds: int, quick: bool) -> list[Cell]:
    """The cells of the full tables (or the quick ones)."""
    if quick:
        cells = [Cell(0.05, 0.03, k, 200, seeds=seeds) for k in KINDS]
        cells += [Cell(0.05, 0.03, "gauss", 200, m, seeds=seeds) for m in ("fixed5", "fixed10")]
        cells += [Cell(0.0, 0.03, "gauss", 200, seeds=seeds), Cell(0.0, 0.03, "outliers", 200, seeds=seeds)]
        cells += [Cell(0.2, 0.01, "gauss", 1000, seeds=seeds), Cell(0.02, 0.05, "gauss", 100, seeds=seeds)]
        cells += [Cell(0.06, 0.03, "lognormal-outliers", 300, jobs=2, seeds=seeds)]  # issue 10's try (b)
        cells += [Cell(0.06, 0.01, "gauss", 200, seeds=seeds, two=True)]
        return cells
    cells = [Cell(0.05, 0.03, "gauss", 200, seeds=5 * seeds)]  # the target, tight
    cells += [Cell(r, cv, k, 200, seeds=seeds) for k in KINDS for r in (0.02, 0.05, 0.1, 0.2)
              for cv in (0.01, 0.03, 0.05) if (r, cv, k) != (0.05, 0.03, "gauss")]  # fmt: skip
    cells += [Cell(0.05, 0.03, "gauss", n, seeds=seeds) for n in (100, 1000)]
    cells += [Cell(0.0, cv, k, 200, seeds=seeds) for k in KINDS for cv in (0.01, 0.03, 0.05)]
    cells += [Cell(r, cv, "gauss", 200, m, seeds=seeds) for m in ("fixed5", "fixed10") for r in (0.02, 0.05, 0.1, 0.2)
              for cv in (0.01, 0.03, 0.05)]  # fmt: skip
    cells += [Cell(0.0, 0.03, "gauss", 200, m, seeds=seeds) for m in ("fixed5", "fixed10")]
    cells += [Cell(0.05, 0.03, "gauss", 200, jobs=j, seeds=seeds) for j in (2, 4)]
    cells += [Cell(0.06, 0.03, "lognormal-outliers", 300, jobs=2, seeds=seeds)]  # issue 10's try (b)
    cells += [
        Cell(r, cv, "gauss", 200, seeds=seeds, two=True)
        for r, cv in ((0.06, 0.01), (0.06, 0.03), (0.1, 0.03))
    ]
    return cells


def _sequence(task: tuple[str, float, float, int]) -> tuple[str, float, float, dict[str, int], float]:
    """One cell of the rank test's error rates: ``reps`` sequences of looks at a true shift."""

    from sleuth.bisect.seqtest import Decision, Sequential

    kind, shift, cv, reps = task
    seq, noise = Sequential(), Noise(kind, cv)
    rng = random.Random(f"{kind}/{shift}/{cv}")
    counts = {d.value: 0 for d in Decision if d is not Decision.MORE}
    runs = 0
    for _ in range(reps):
        a: list[float] = []
        b: list[float] = []
        for look in seq.looks:
            a += [100 * noise.draw(rng) for _ in range(look - len(a))]
            b += [100 * (1 + shift) * noise.draw(rng) for _ in range(look - len(b))]
            c = seq.look(a, b, 3.0)
            if c.decision is not Decision.MORE:
                break
        counts[c.decision.value] += 1
        runs += len(a) + len(b)
    return kind, shift, cv, counts, runs / reps


def rank_test_rates(reps: int, procs: int) -> None:
    """The sequential rank test of two candidates alone: decisions at shifts 0, 1.5% and 3% of a 3%
    threshold (the ends' comparison and every step check use it)."""
    tasks = [(k, sh, cv, reps) for k in KINDS for cv in (0.01, 0.03) for sh in (0.0, 0.015, 0.03)]
    with Pool(procs) as pool:
        rows = pool.map(_sequence, tasks)
    print(f"# the sequential rank test alone (threshold 3%, looks at {', '.join(map(str, LOOKS))} runs a side, "
          f"alpha {ALPHA} a look), {reps} sequences a row")  # fmt: skip
    print(
        f"#   {'noise':<9} {'CV':>3} {'shift':>5}  {'regressed':>9} {'same':>6} {'undecided':>9}  runs of both"
    )
    for kind, sh, cv, counts, runs in rows:
        n = sum(counts.values())
        print(f"#   {kind:<9} {100 * cv:2.0f}% {100 * sh:4.1f}%  {100 * counts['regressed'] / n:8.1f}% "
              f"{100 * counts['same'] / n:5.1f}% {100 * counts['undecided'] / n:8.1f}%  {runs:5.1f}")  # fmt: skip


def tables(seeds: int, quick: bool, procs: int, root: str) -> int:
    """Every table and the targets of issue 10."""
    cells = grid(seeds, quick)
    res = run(cells, procs, root)
    print(HEADER)
    for c in cells:
        print(line(c, summarize(c, res[c])))
    seq = [c for c in cells if c.method == "seq" and c.regression]
    ok = print_calibration(
        "sequential search, every regression row pooled", calibration(r for c in seq for r in res[c])
    )
    for k in KINDS:
        rows = [r for c in seq if c.kind == k for r in res[c]]
        if rows and not quick:
            ok &= print_calibration(f"{k} rows pooled", calibration(rows))
    target = next(c for c in cells if (c.regression, c.cv, c.kind, c.n, c.method, c.jobs) == (0.05, 0.03, "gauss", 200,
                                                                                                "seq", 1))  # fmt: skip
    t = summarize(target, res[target])
    nulls = [c for c in cells if not c.regression and c.method == "seq"]
    worst = max(nulls, key=lambda c: summarize(c, res[c]).wrong)
    w = summarize(worst, res[worst])
    certain = sum(r.confidence >= 1.0 for c in seq for r in res[c])
    checks = [
        ("5% at CV 3%, N = 200: found >= 95% with <= 150 runs", f"{100 * t.right:.1f}% "
         f"({100 * t.right_ci[0]:.1f}-{100 * t.right_ci[1]:.1f}) with {t.runs:.1f} runs",
         t.right >= 0.95 and t.runs <= 150),
        ("null range reported found <= 5% (worst null row)", f"{100 * w.wrong:.1f}% ({worst.kind}, CV {worst.cv:g})",
         w.wrong <= 0.05),
        ("calibration: every bin hit >= mean conf - 2 pt", "see tables", ok),
        ("no confidence 1.0", f"{certain} answers", certain == 0),
    ]  # fmt: skip
    rank_test_rates(500 if quick else 2000, procs)
    print_targets(checks)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print the tables."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick", action="store_true", help="the targets and a few rows, 100 seeds (about a minute)"
    )
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument(
        "--row",
        nargs=4,
        action="append",
        metavar=("REG", "CV", "NOISE", "N"),
        help="one row instead of the tables (repeatable), e.g. 0.05 0.03 gauss 200",
    )
    ap.add_argument("--method", action="append", choices=("seq", "fixed5", "fixed10"))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--culprit", type=int, default=None, help="the first bad (default: uniform per seed)")
    ap.add_argument("--calibration", action="store_true", help="with --row: the confidence bins")
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    default_root = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    ap.add_argument("--root", default=default_root or tempfile.gettempdir(), help="where run dirs go")
    args = ap.parse_args(argv)
    root = tempfile.mkdtemp(prefix="sleuth-perf-sim-", dir=args.root)
    try:
        if not args.row:
            return tables(args.seeds or (100 if args.quick else 200), args.quick, args.procs, root)
        for _, _, kind, _ in args.row:
            if kind not in NOISE_KINDS:
                ap.error(f"noise {kind!r}: one of {', '.join(NOISE_KINDS)}")
        cells = [Cell(float(r), float(cv), kind, int(n), m, args.jobs, args.seeds or 200, args.culprit)
                 for r, cv, kind, n in args.row for m in args.method or ["seq"]]  # fmt: skip
        res = run(cells, args.procs, root)
        print(HEADER)
        for c in cells:
            print(line(c, summarize(c, res[c])))
            if args.calibration:
                print_calibration("this row", calibration(res[c]))
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
