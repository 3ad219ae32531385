"""Seeded simulations of ``sleuth matrix``'s statistics, through the product's own code.

Each simulated matrix is a real plan (``sleuth.matrix.resolve.resolve`` of a recipe with a baseline
and K cells), fed simulated trial records and judged by ``sleuth.matrix.result.analyze`` (the
aggregation, Holm across the matrix, the classification); ``--until-decided`` runs the matrix
loop's own stopping rule (``sleuth.matrix.loop._Loop.check_stop``) trial by trial in the
interleaved order; the speed rows call ``aggregate`` and ``speed_confound``.

sections
  null     every cell a no-op: K in 4..12 cells, n in 20..200 trials per cell, a baseline failure
           rate in 0.05..0.6, all drawn per matrix.  The rate of matrices with ANY false ``fixed``
           (and any false ``fixed``/``worse``), with a Wilson 95% interval; beside it the same
           matrices judged one cell at a time at alpha (raw Fisher p < 0.05: what sleuth did before
           Holm), measured in the same run.  Target: <= 5%.
  power    one cell halves the failure rate (0.3 -> 0.15) among K-1 no-op cells: the chance that
           it comes out ``fixed``, by trials per cell and K (Holm and per-cell alpha).
  speed    per-trial step times lognormal (median 100 ms, sigma 0.1): no slowdown, a uniform 1.3x
           slowdown, and a tail slowdown (a quarter of the trials 3x): the rate of ``speed`` flags
           (threshold 1.15), by trials per cell; beside it the old rule (median ratio only).

Run: ``python bench/matrix_sim.py`` (a few minutes), ``--quick`` for CI (under a minute).  Figures are
printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

from sleuth import stats
from sleuth.matrix.aggregate import TrialRecord, aggregate
from sleuth.matrix.classify import Classification
from sleuth.matrix.loop import _Loop
from sleuth.matrix.plan import MatrixPlan, iter_trial_order
from sleuth.matrix.recipe import parse_recipe
from sleuth.matrix.resolve import resolve
from sleuth.matrix.result import MatrixResult, analyze
from sleuth.matrix.speed import speed_confound
from sleuth.model import Outcome
from sleuth.registry import load_registry

ALPHA = 0.05
SIG = "output: loss is nan"


def make_plan(k: int, n: int, *, until_decided: bool = False, seed: int = 0) -> MatrixPlan:
    """A real plan: a baseline and ``k`` no-op cells of ``n`` trials each."""
    cells: list[dict[str, object]] = [{"name": "baseline", "mitigations": ["none"]}]
    cells += [{"name": f"c{i}", "mitigations": ["none"], "extra_env": {"SIM_CELL": str(i)}} for i in range(k)]
    data = {
        "schema_version": 1,
        "seed": seed,
        "workload": {"command": ["true"], "oracle": {"kind": "regex", "pattern": "loss is nan"}},
        "trials": n,
        "until_decided": until_decided,
        "cells": cells,
    }
    recipe = parse_recipe(data, "sim")
    return resolve(recipe, load_registry(entry_points=False), "sim", base_dir=Path.cwd(), environ={})


def record(cell: str, index: int, fail: bool, step: float | None = None) -> TrialRecord:
    return TrialRecord(
        cell=cell,
        index=index,
        outcome=Outcome.FAIL if fail else Outcome.PASS,
        signature=SIG if fail else None,
        status="exit 1" if fail else "exit 0",
        wall_s=0.1,
        step_time=step,
    )


def simulate(plan: MatrixPlan, rates: dict[str, float], rng: random.Random) -> MatrixResult:
    """Every trial of ``plan`` (fixed horizon, or the sequential loop when it asks for it)."""
    if not plan.recipe.until_decided:
        recs = [
            record(c.name, i, rng.random() < rates[c.name])
            for c in plan.cells
            for i in range(1, c.trials + 1)
        ]
        return analyze(plan, recs)
    loop = _Loop(plan, {}, {})
    for name, r in iter_trial_order(plan.cells, plan.seed):
        if name in loop.stops:
            continue
        loop.by_cell[name].append(record(name, r + 1, rng.random() < rates[name]))
        stop = loop.check_stop(plan.cell(name))
        if stop is not None:
            loop.stops[name] = stop
    return analyze(plan, [r for rs in loop.by_cell.values() for r in rs], stops=loop.stops)


def wilson(k: int, n: int) -> str:
    lo, hi = stats.wilson(k, n)
    return f"{100 * k / n:5.1f}% [{100 * lo:4.1f}-{100 * hi:4.1f}]"


def raw_calls(res: MatrixResult, cell: str) -> tuple[bool, bool]:
    """(fixed, worse) for ``cell`` judged alone at alpha: the raw Fisher p (the rule before Holm)."""
    c = res.cell(cell)
    p = c.decision.p_value
    if p is None or p >= ALPHA or c.decision.classification is Classification.ERROR:
        return False, False
    base = res.cell(c.baseline).stats
    lower = c.stats.n_target * base.n_judged < base.n_target * c.stats.n_judged
    return lower, not lower


def null_section(reps: int, seed: int, *, until_decided: bool) -> None:
    rng = random.Random(seed)
    any_fixed = any_call = raw_fixed = raw_call = 0
    t0 = time.perf_counter()
    for rep in range(reps):
        k, n, p = rng.randint(4, 12), rng.randint(20, 200), rng.uniform(0.05, 0.6)
        plan = make_plan(k, n, until_decided=until_decided, seed=rep)
        res = simulate(plan, {c.name: p for c in plan.cells}, rng)
        calls = [res.cell(c.name).decision.classification for c in plan.cells if c.name != "baseline"]
        any_fixed += Classification.FIXED in calls
        any_call += Classification.FIXED in calls or Classification.WORSE in calls
        raws = [raw_calls(res, c.name) for c in plan.cells if c.name != "baseline"]
        raw_fixed += any(f for f, _ in raws)
        raw_call += any(f or w for f, w in raws)
    label = "--until-decided" if until_decided else "fixed horizon "
    print(
        f"  {label}  {reps:5d} null matrices   any false fixed: {wilson(any_fixed, reps)}"
        f"   any false fixed/worse: {wilson(any_call, reps)}"
    )
    print(
        f"  {'(per-cell alpha)':15s}  {'same matrices':>19s}   any false fixed: {wilson(raw_fixed, reps)}"
        f"   any false fixed/worse: {wilson(raw_call, reps)}   [{time.perf_counter() - t0:.0f}s]"
    )


def power_section(reps: int, seed: int, ns: list[int], ks: list[int]) -> None:
    rng = random.Random(seed)
    print(f"  {'K cells':>7s} {'trials':>6s}   fixed (Holm)          fixed (per-cell alpha)")
    for k in ks:
        for n in ns:
            plan = make_plan(k, n)
            rates = {c.name: 0.3 for c in plan.cells} | {"c0": 0.15}
            holm = raw = 0
            for _ in range(reps):
                res = simulate(plan, rates, rng)
                holm += res.cell("c0").decision.classification is Classification.FIXED
                raw += raw_calls(res, "c0")[0]
            print(f"  {k:7d} {n:6d}   {wilson(holm, reps)}   {wilson(raw, reps)}")


def _steps(rng: random.Random, n: int, slow: float, share: float) -> list[float]:
    out = []
    for _ in range(n):
        t = 100.0 * math.exp(rng.gauss(0, 0.1))
        out.append(t * slow if rng.random() < share else t)
    return out


def speed_section(reps: int, seed: int, ns: list[int]) -> None:
    rng = random.Random(seed)
    scenarios: list[tuple[str, float, float]] = [
        ("no slowdown", 1.0, 0.0),
        ("uniform 1.1x", 1.1, 1.0),
        ("uniform 1.3x", 1.3, 1.0),
        ("tail: 1/4 at 3x", 3.0, 0.25),
    ]
    print(
        f"  {'scenario':16s} {'trials':>6s}   flagged (median or p90)   flagged by the median alone (old rule)"
    )
    for label, slow, share in scenarios:
        for n in ns:
            flagged = by_median = 0
            for rep in range(reps):
                base = aggregate(
                    "baseline",
                    [record("baseline", i, False, t) for i, t in enumerate(_steps(rng, n, 1.0, 0.0))],
                    None,
                    True,
                )
                cell = aggregate(
                    "c",
                    [record("c", i, False, t) for i, t in enumerate(_steps(rng, n, slow, share))],
                    None,
                    True,
                )
                cf = speed_confound(cell, base, threshold=1.15, seed=rep)
                flagged += cf.flagged
                by_median += cf.ci is not None and cf.ci[0] > 1.15
            print(f"  {label:16s} {n:6d}   {wilson(flagged, reps)}     {wilson(by_median, reps)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small counts, for CI")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--null", type=int, default=None, help="null matrices (default 2000, quick 200)")
    ap.add_argument("--sections", default="null,power,speed", help="which sections (comma-separated)")
    args = ap.parse_args(argv)
    sections = set(args.sections.split(","))
    q = args.quick
    null = args.null or (200 if q else 2000)
    print(
        f"sleuth matrix statistics, seeded simulation (seed {args.seed}{', quick' if q else ''}); alpha {ALPHA}"
    )
    if "null" in sections:
        print("\nnull matrices (every cell a no-op; K 4..12, n 20..200, rate 0.05..0.6): target <= 5%")
        null_section(null, args.seed, until_decided=False)
        null_section(null // 2, args.seed + 1, until_decided=True)
    if "power" in sections:
        print("\npower: one cell halves the rate 0.30 -> 0.15 among K-1 no-op cells")
        power_section(
            60 if q else 400, args.seed + 2, [50, 200] if q else [20, 50, 100, 200], [4] if q else [4, 12]
        )
    if "speed" in sections:
        print("\nspeed confound (threshold 1.15): flag rate")
        speed_section(40 if q else 300, args.seed + 3, [20, 100] if q else [10, 20, 50, 100, 200])
    return 0


if __name__ == "__main__":
    sys.exit(main())
