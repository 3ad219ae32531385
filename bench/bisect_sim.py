"""The bisection as users run it, simulated: the real driver, strategies, engine and journal; only the process is fake.

Each search runs :class:`sleuth.bisect.driver.Driver` over N list candidates with
:class:`sleuth.bisect.sim.SimBackend`: every test takes one unit of virtual time, ``--jobs`` of them
at once, and the driver refills slots as results arrive, exactly as with processes (results that
finish together are told together).  The culprit f is uniform in 1..N-1; a run of a bad candidate
(index >= f) fails with probability p, a good one never, so the bad end's first run may pass; p is
known to the search only with ``--flaky P`` (method ``given``).  Trial files and the journal are
written for real under ``--root`` (a tmpfs by default; the per-test cost is printed).

methods
  off     ``--flaky off``: one run per candidate, as ``git bisect run``
  auto    ``--flaky auto`` (the default)
  given   ``--flaky P`` with the true p

Columns: right = found and right (Wilson 95% interval), wrong = found or ambiguous but not the
culprit, other = inconclusive or not_found (the bad end never failed), tests = mean tests per search
(end checks included), p90, rounds = mean virtual time in test durations.

  python bench/bisect_sim.py --targets            # every target of issue 9, side by side (slow: 2000 seeds)
  python bench/bisect_sim.py --targets --quick    # the same with 300 seeds
  python bench/bisect_sim.py --det-floor          # what a deterministic-looking answer must cost
  python bench/bisect_sim.py --n 1000 --p 0.5 --jobs 7 --method auto --seeds 400 [--calibration]
  python bench/bisect_sim.py --p 1 --p 0.5 --p 0.2 --jobs 1 --method auto --seeds 300 --calibration \
      --p-quantile 0.15        # auto's model changed for an experiment (also --prior-b, --determinism)
  python bench/bisect_sim.py --p 0.5 --jobs 1 --method auto --seeds 300 --calibration \
      --search-b 1 --search-p-quantile 0.2   # only the Bayesian stage's model (also --search-a, --end-fails)
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Any

from _report import print_targets  # bench/ is sys.path[0] when a bench runs

from sleuth.bisect.flakyinfo import z_channel_capacity
from sleuth.bisect.policy import FlakyMode
from sleuth.bisect.sim import CalibrationBin, SimResult, simulate
from sleuth.bisect.sim import calibration as bin_confidence
from sleuth.bisect.trials import Options
from sleuth.stats import wilson


@dataclass(frozen=True, slots=True)
class Cell:
    """One row: a method at (N, p, jobs)."""

    n: int
    p: float
    jobs: int
    method: str
    seeds: int
    jitter: float = 0.0

    def mode(self) -> FlakyMode:
        """The --flaky of this method."""
        if self.method == "off":
            return FlakyMode(auto=False, p=1.0)
        if self.method == "given":
            return FlakyMode(auto=False, p=self.p)
        return FlakyMode(auto=True)

    def name(self) -> str:
        """How the row is labelled."""
        return f"p={self.p:g}" if self.method == "given" else self.method


_ROOT: Path | None = None


@dataclass(frozen=True, slots=True)
class Prior:
    """``--flaky auto``'s model, changed for an experiment (None: as shipped; see policy.py)."""

    determinism: float | None = None
    p_quantile: float | None = None
    prior_b: float | None = None
    end_fails: int | None = None
    #: auto's Bayesian stage only (after the hand-over; the deterministic check keeps auto's model):
    #: Beta(a, b) prior on p, and the stop's quantile of p (a negative value: the marginal alone)
    search_a: float | None = None
    search_b: float | None = None
    search_q: float | None = None
    #: the confidence the stop asks for (``--confidence``; None: the CLI's default, 0.95)
    confidence: float | None = None


_CONFIDENCE: float | None = None


def _init(root: str, prior: Prior) -> None:
    global _ROOT, _CONFIDENCE
    _ROOT = Path(tempfile.mkdtemp(prefix="sim-", dir=root))
    _CONFIDENCE = prior.confidence
    from sleuth.bisect import policy

    if prior.determinism is not None:  # the prior mass at p = 1 that auto does not use (see flaky.py)
        policy.DETERMINISM = prior.determinism
    if prior.p_quantile is not None:  # the quantile of p's posterior the stop takes p at
        policy.P_QUANTILE = prior.p_quantile
    if prior.prior_b is not None:  # Beta(1, b): the prior on p
        policy.PRIOR_B = prior.prior_b
    if prior.end_fails is not None:  # the Bayesian search reruns the bad end until it failed this often
        policy.END_FAILS = prior.end_fails
    if (prior.search_a, prior.search_b, prior.search_q) != (None, None, None):
        _search_model(prior)


def _search_model(prior: Prior) -> None:
    """Change the model of auto's Bayesian stage only (the searches made with ``given_fails``)."""
    from sleuth.bisect import flaky

    made = flaky.FlakyBisection.__init__

    def init(self: flaky.FlakyBisection, n: int, **kw: Any) -> None:
        if kw.get("given_fails"):  # auto's hand-over; ``--flaky P`` pins p and is left alone
            a, b = kw.get("prior", (1.0, 2.0))
            kw["prior"] = (prior.search_a or a, prior.search_b or b)
            if prior.search_q is not None:
                kw["p_quantile"] = None if prior.search_q < 0 else prior.search_q
        made(self, n, **kw)

    flaky.FlakyBisection.__init__ = init  # type: ignore[method-assign]


def _options(cell: Cell) -> Options:
    """The bisection's options for a cell, with the experiment's ``--confidence`` if given."""
    if _CONFIDENCE is None:
        return Options(jobs=cell.jobs, flaky=cell.mode())
    return Options(jobs=cell.jobs, flaky=cell.mode(), confidence=_CONFIDENCE)


def _one(task: tuple[Cell, int]) -> tuple[Cell, SimResult, float]:
    cell, seed = task
    assert _ROOT is not None
    t0 = time.perf_counter()
    res = simulate(cell.n, cell.p, _options(cell), seed * 7919 + cell.n, _ROOT,
                   jitter=cell.jitter)  # fmt: skip
    return cell, res, time.perf_counter() - t0


def run(
    cells: Sequence[Cell], procs: int, root: str, prior: Prior | None = None
) -> dict[Cell, list[SimResult]]:
    """Every seed of every cell, spread over ``procs`` processes; prints the cost per test."""
    tasks = [(c, s) for c in cells for s in range(c.seeds)]
    out: dict[Cell, list[SimResult]] = {c: [] for c in cells}
    spent, tests = 0.0, 0
    t0 = time.perf_counter()
    with Pool(procs, initializer=_init, initargs=(root, prior or Prior())) as pool:
        for cell, res, dt in pool.imap_unordered(_one, tasks, chunksize=4):
            out[cell].append(res)
            spent += dt
            tests += res.tests
    wall = time.perf_counter() - t0
    print(f"# {len(tasks)} searches, {tests} tests in {wall:.0f}s on {procs} processes: "
          f"{1000 * spent / max(tests, 1):.2f} ms per test (driver, strategy, engine, journal and "
          f"result files on {root})", flush=True)  # fmt: skip
    return out


@dataclass(frozen=True, slots=True)
class Row:
    """The summary of one cell."""

    right: float
    right_ci: tuple[float, float]
    wrong: float
    other: float
    tests: float
    p90: float
    rounds: float
    max_conf: float


def summarize(rs: list[SimResult]) -> Row:
    """Accuracy, cost and the highest confidence reported."""
    m = len(rs)
    right = sum(r.right for r in rs)
    wrong = sum(r.status in ("found", "ambiguous") and not r.hit for r in rs)
    tests = sorted(r.tests for r in rs)
    return Row(right=right / m, right_ci=wilson(right, m), wrong=wrong / m, other=(m - right - wrong) / m,
               tests=sum(tests) / m, p90=tests[min(m - 1, int(0.9 * m))], rounds=sum(r.rounds for r in rs) / m,
               max_conf=max(r.confidence for r in rs))  # fmt: skip


HEADER = (f"{'N':>6} {'p':>4} {'jobs':>4}  {'method':<7} {'right':>6} {'(95% CI)':>15} {'wrong':>6} "
          f"{'other':>6} {'tests':>7} {'p90':>5} {'rounds':>7} {'seeds':>6}")  # fmt: skip


def line(cell: Cell, row: Row) -> str:
    """One table line."""
    lo, hi = row.right_ci
    return (f"{cell.n:>6} {cell.p:>4g} {cell.jobs:>4}  {cell.name():<7} {100 * row.right:5.1f}% "
            f"({100 * lo:5.1f}-{100 * hi:5.1f}%) {100 * row.wrong:5.1f}% {100 * row.other:5.1f}% "
            f"{row.tests:7.1f} {row.p90:5.0f} {row.rounds:7.2f} {cell.seeds:>6}")  # fmt: skip


def calibration(rs: Iterable[SimResult]) -> list[CalibrationBin]:
    """Searches binned by reported confidence; a hit is an answer naming the culprit."""
    return bin_confidence((r.confidence, r.hit) for r in rs)


def print_calibration(bins: list[CalibrationBin]) -> bool:
    """The table; True when every bin meets the target."""
    print(
        "#   reported confidence   searches   hit rate (95% CI)        mean reported   target hit >= mean - 2"
    )
    for b in bins:
        lo, hi = wilson(b.hits, b.count)
        verdict = "ok" if b.ok else ("MISSED" if hi < b.mean_conf - 0.02 else "missed (within noise)")
        print(f"#   [{b.lo:.2f}, {b.hi:.2f})  {b.count:>11}   {100 * b.hits / b.count:6.1f}% "
              f"({100 * lo:5.1f}-{100 * hi:5.1f}%)   {b.mean_conf:.4f}          {verdict}")  # fmt: skip
    return all(b.ok for b in bins)


def bound(n: int, p: float) -> float:
    """Tests the information limit needs: log2(N-1) / capacity(p), before any confidence margin."""
    return math.log2(n - 1) / z_channel_capacity(p)


def det_floor(n: int, seeds: int) -> int:
    """How many reruns of the last good a deterministic-looking answer needs before it can be trusted.

    A flaky test shows a deterministic-looking record now and then: every bisection step consistent,
    the bad end failing, the last good passing.  For such a record, with p known, the share of
    searches in which it names the culprit is exactly the posterior of its answer (the culprit is
    uniform; the search's adaptivity does not change the likelihood).  The real :class:`Bisection`
    makes the record (one per seed, deterministic outcomes) and the product's
    :func:`~sleuth.bisect.posterior.block_confidence` scores it with p pinned.  Reruns of the bad end
    do not enter: with p known they weigh every hypothesis alike.  A check that calibrates per p
    cannot trust the record before its hit rate at that p reaches the confidence it reports (less
    2 points); the rows say how many reruns that takes, which is what ``auto`` pays on a
    deterministic test.
    """
    import random

    from sleuth.bisect.posterior import Model, block_confidence
    from sleuth.bisect.strategies import Bisection
    from sleuth.model import Outcome

    ps = (0.9, 0.5, 0.2)
    reruns = range(13)
    hits = {(b, p): 0.0 for b in reruns for p in ps}
    steps = 0
    for seed in range(seeds):
        culprit = random.Random(seed * 7919 + n).randint(1, n - 1)
        search = Bisection(n)
        counts: dict[int, tuple[int, int]] = {0: (0, 1), n - 1: (1, 0)}
        while not search.done:
            for q in search.propose(1):
                bad = q.index >= culprit
                search.observe(q, Outcome.FAIL if bad else Outcome.PASS)
                counts[q.index] = (int(bad), int(not bad))
                steps += 1
        lo, hi = search.lo, search.hi
        for b in reruns:
            rec = {**counts, lo: (0, counts.get(lo, (0, 1))[1] + b)}
            for p in ps:
                hits[b, p] += block_confidence(n, rec, lo, hi, Model(a=p * 200, b=(1 - p) * 200)) / seeds
    print(f"# a deterministic-looking record at N = {n} ({steps / seeds:.1f} bisection steps + 2 end checks, "
          f"{seeds} seeds): hit rate if the test were flaky with p known")  # fmt: skip
    print("#   reruns of the last good   tests   " + "   ".join(f"hit at p={p:g}" for p in ps))
    for b in reruns:
        row = "   ".join(f"{100 * hits[b, p]:10.1f}%" for p in ps)
        print(f"#   {b:>21}   {steps / seeds + 2 + b:5.1f}   {row}")
    return 0


def targets(seeds: int, procs: int, root: str) -> int:
    """Every target of issue 9 that the simulation measures, with the measured figure beside it."""
    cal_ps = (1.0, 0.9, 0.5, 0.2, 0.1)
    cells = [Cell(1000, p, 1, "auto", seeds) for p in cal_ps]
    cells += [Cell(1000, 0.5, 1, "given", seeds), Cell(1000, 1.0, 1, "off", seeds)]
    cells += [Cell(1000, 0.5, 7, m, max(100, seeds // 4)) for m in ("given", "auto")]
    cells += [Cell(1000, 0.5, 7, m, max(100, seeds // 4), jitter=0.2) for m in ("given", "auto")]
    res = run(cells, procs, root)
    print(HEADER)
    for c in cells:
        jit = f"   (durations 1 +- {c.jitter:g})" if c.jitter else ""
        print(line(c, summarize(res[c])) + jit)
    print(f"# information bound at N=1000: p=0.5 {bound(1000, 0.5):.1f} tests, p=0.2 {bound(1000, 0.2):.1f}, "
          f"p=0.1 {bound(1000, 0.1):.1f} (+ confidence margin; end checks not counted)")  # fmt: skip
    checks: list[tuple[str, str, bool]] = []
    calibrated = True
    for p in cal_ps:
        c = Cell(1000, p, 1, "auto", seeds)
        print(f"# calibration, auto, p = {p:g}, N = 1000, jobs 1, {seeds} seeds:")
        calibrated &= print_calibration(calibration(res[c]))
    checks.append(("calibration: every bin, every p in {1, .9, .5, .2, .1}: hit >= mean conf - 2 pt", "see tables",
                   calibrated))  # fmt: skip
    certain = [(c, r.confidence) for c in cells if c.method != "off" for r in res[c] if r.confidence >= 1.0]
    checks.append(("no confidence 1.0 while flakiness is possible (auto, given)", f"{len(certain)} answers",
                   not certain))  # fmt: skip
    a5 = summarize(res[Cell(1000, 0.5, 1, "auto", seeds)])
    checks.append(("p = 0.5, auto: right >= 96% with <= 48 tests", f"{100 * a5.right:.1f}% with {a5.tests:.1f}",
                   a5.right >= 0.96 and a5.tests <= 48))  # fmt: skip
    a1 = summarize(res[Cell(1000, 0.1, 1, "auto", seeds)])
    checks.append(("p = 0.1, auto: right >= 95% or says inconclusive (wrong <= 5%)",
                   f"right {100 * a1.right:.1f}%, wrong {100 * a1.wrong:.1f}%, other {100 * a1.other:.1f}%",
                   a1.wrong <= 0.05))  # fmt: skip
    g7 = summarize(res[Cell(1000, 0.5, 7, "given", max(100, seeds // 4))])
    u7 = summarize(res[Cell(1000, 0.5, 7, "auto", max(100, seeds // 4))])
    checks.append(("jobs 7, p = 0.5: <= 9 rounds with p given", f"{g7.rounds:.2f}", g7.rounds <= 9))
    checks.append(("jobs 7, p = 0.5: <= 11 rounds with auto", f"{u7.rounds:.2f}", u7.rounds <= 11))
    d1 = summarize(res[Cell(1000, 1.0, 1, "auto", seeds)])
    off = summarize(res[Cell(1000, 1.0, 1, "off", seeds)])
    checks.append(("(cost) deterministic test, auto vs off vs git's ceil(log2 999) = 10",
                   f"auto {d1.tests:.1f}, off {off.tests:.1f}", True))  # fmt: skip
    print_targets(checks)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print the tables."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", action="store_true", help="every issue-9 target, side by side")
    ap.add_argument("--quick", action="store_true", help="with --targets: 300 seeds instead of 2000")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--n", type=int, action="append", help="candidates (repeatable; default 1000)")
    ap.add_argument("--p", type=float, action="append", help="failure probability (repeatable)")
    ap.add_argument("--jobs", type=int, action="append", help="parallel tests (repeatable)")
    ap.add_argument("--method", action="append", choices=("off", "auto", "given"), help="(repeatable)")
    ap.add_argument("--jitter", type=float, default=0.0, help="test durations uniform in 1 +- JITTER")
    ap.add_argument("--calibration", action="store_true", help="reported confidence vs hit rate, per row")
    ap.add_argument("--determinism", type=float, help="auto's prior mass at p = 1 (default 0; see flaky.py)")
    ap.add_argument("--p-quantile", type=float, help="the quantile of p's posterior auto's stop uses (0.05)")
    ap.add_argument("--prior-b", type=float, help="auto's Beta(1, B) prior on p (default 2)")
    ap.add_argument("--end-fails", type=int, help="the Bayesian search's fails of the bad end (default 4)")
    ap.add_argument("--search-a", type=float, help="auto's Bayesian stage only: Beta(A, .) prior on p")
    ap.add_argument("--search-b", type=float, help="auto's Bayesian stage only: Beta(., B) prior on p")
    ap.add_argument(
        "--search-p-quantile",
        type=float,
        help="auto's Bayesian stage only: the stop's quantile of p (negative: the marginal alone)",
    )
    ap.add_argument(
        "--det-floor", action="store_true", help="reruns a deterministic-looking answer needs (no sim)"
    )
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    default_root = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    ap.add_argument("--confidence", type=float, help="the confidence the stop asks for (the CLI's 0.95)")
    ap.add_argument("--root", default=default_root or tempfile.gettempdir(), help="where run dirs go")
    args = ap.parse_args(argv)
    if args.det_floor:
        return det_floor((args.n or [1000])[0], args.seeds or 2000)
    root = tempfile.mkdtemp(prefix="sleuth-bisect-sim-", dir=args.root)
    try:
        if args.targets:
            return targets(args.seeds or (300 if args.quick else 2000), args.procs, root)
        seeds = args.seeds or 200
        cells = [Cell(n, p, j, m, seeds, args.jitter) for n in args.n or [1000] for p in args.p or [1.0, 0.9, 0.5, 0.2]
                 for j in args.jobs or [1, 7] for m in args.method or ["auto", "given"]
                 if not (m == "given" and p == 1.0)]  # fmt: skip
        prior = Prior(args.determinism, args.p_quantile, args.prior_b, args.end_fails, args.search_a, args.search_b,
                      args.search_p_quantile, args.confidence)  # fmt: skip
        res = run(cells, args.procs, root, prior)
        print(HEADER)
        for c in cells:
            print(line(c, summarize(res[c])))
            if args.calibration:
                print_calibration(calibration(res[c]))
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
