"""Change-point detection side by side: sleuth vs apache-otava vs MongoDB's signal-processing-algorithms.

Seeded synthetic series (base level 100, multiplicative noise with a CV of 0.5-5 %):

* noise families: gauss, t3 (Student-t, 3 d.o.f.), lognormal, ar03 / ar06 (AR(1), rho 0.3 / 0.6),
  spikes (3 % of points +20-60 %), bimodal (20 % of points in a slow mode 4 sigma up);
* null series (no change) of length 30, 100, 300, 1000: false change points per 1000 null points;
* series with steps of 0.5, 1, 2, 4 sigma (1 step at T=30, 2 at T=100, 3 at T>=300; random signs;
  segments >= 10 points): precision, recall, F1 with one-to-one matching within +/-3 points;
* runtime per series at T = 1000 (median of interleaved repeats; the ratio to SPA);
* determinism: each detector run twice on the same series;
* gates: the false-graduation rate of the point-estimate CV rule vs the 95 % upper-bound rule at n=10.

Contenders (not project dependencies; a contender that does not import is skipped with a message):
``apache-otava`` (``otava.analysis.compute_change_points``, its defaults: window 50, p 0.001) and
``signal-processing-algorithms`` (``e_divisive``, its defaults: p 0.05, 100 permutations).
Targets (issue 14): <= 1 false alarm per 1000 null points in every family; recall >= the best
contender at 2 sigma; >= 10x faster than SPA at T = 1000; identical output across runs.

Usage: python bench/changepoint_bench.py [--quick] [--seeds N] [--json FILE]
Figures are indicative on a loaded machine; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from sleuth.gate import changepoint
from sleuth.gate.robust import cv_upper_bound

FAMILIES = ("gauss", "t3", "lognormal", "ar03", "ar06", "spikes", "bimodal")
CVS = (0.005, 0.01, 0.02, 0.05)
STEPS = (0.5, 1.0, 2.0, 4.0)
LENGTHS = (30, 100, 300, 1000)
MARGIN = 3

Detector = Callable[[np.ndarray], list[int]]


def noise(family: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-scale noise of one family (standard deviation 1 for the base process)."""
    from scipy.signal import lfilter

    if family in ("gauss", "spikes", "bimodal", "lognormal"):
        e = rng.standard_normal(n)
    elif family == "t3":
        e = rng.standard_t(3, n) / math.sqrt(3.0)
    elif family.startswith("ar"):
        rho = {"ar03": 0.3, "ar06": 0.6}[family]
        burn = 200
        e = lfilter([1.0], [1.0, -rho], rng.standard_normal(n + burn))[burn:] * math.sqrt(1 - rho * rho)
    else:
        raise ValueError(family)
    if family == "bimodal":
        e = e + 4.0 * (rng.random(n) < 0.2)
    return e


def series(
    family: str, n: int, cv: float, steps: list[tuple[int, float]], rng: np.random.Generator
) -> np.ndarray:
    """One series: level 100, steps ``(index, size in sigma)``, noise of ``family`` at ``cv``."""
    level = np.full(n, 100.0)
    for idx, size in steps:
        level[idx:] *= 1.0 + size * cv
    e = noise(family, n, rng)
    x = level * np.exp(cv * e - cv * cv / 2) if family == "lognormal" else level * (1.0 + cv * e)
    if family == "spikes":
        hit = rng.random(n) < 0.03
        x[hit] *= 1.0 + rng.uniform(0.2, 0.6, hit.sum())
    return x


def place_steps(
    n: int, k: int, size: float, rng: np.random.Generator, gap: int = 10
) -> list[tuple[int, float]]:
    """``k`` step positions with every segment at least ``gap`` long, random signs."""
    while True:
        pos = sorted(rng.choice(np.arange(gap, n - gap + 1), size=k, replace=False).tolist())
        if all(b - a >= gap for a, b in itertools.pairwise(pos)):
            return [(p, size * (1 if rng.random() < 0.5 else -1)) for p in pos]


def match(found: list[int], truth: list[int], margin: int = MARGIN) -> int:
    """One-to-one matches within ``margin`` (greedy on the nearest pairs)."""
    pairs = sorted(
        (abs(f - t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth) if abs(f - t) <= margin
    )
    used_f: set[int] = set()
    used_t: set[int] = set()
    hits = 0
    for _, i, j in pairs:
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
            hits += 1
    return hits


SETTINGS = changepoint.Settings()


def ours(x: np.ndarray) -> list[int]:
    return [cp.index for cp in changepoint.detect(x.tolist(), SETTINGS)]


def contenders() -> dict[str, Detector]:
    found: dict[str, Detector] = {"sleuth": ours}
    try:
        from otava.analysis import compute_change_points

        def otava(x: np.ndarray) -> list[int]:
            cps, _ = compute_change_points([float(v) for v in x])
            return sorted(int(c.index) for c in cps)

        found["otava"] = otava
    except ImportError as exc:
        print(f"note: apache-otava not importable ({exc}); skipped (pip install --no-deps apache-otava)")
    try:
        from signal_processing_algorithms.energy_statistics.energy_statistics import e_divisive

        def spa(x: np.ndarray) -> list[int]:
            return sorted(int(i) for i in e_divisive(x, pvalue=0.05, permutations=100))

        found["spa"] = spa
    except ImportError as exc:
        print(f"note: signal-processing-algorithms not importable ({exc}); skipped")
    return found


def null_study(
    dets: dict[str, Detector], seeds: int, spa_cap: dict[int, int]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[int, float]]]:
    """False change points per 1000 null points: per detector and family (all lengths pooled by
    points), and per detector and length (all families pooled)."""
    out: dict[str, dict[str, float]] = {d: {} for d in dets}
    by_len = {d: {n: [0, 0] for n in LENGTHS} for d in dets}
    for fam in FAMILIES:
        false = dict.fromkeys(dets, 0)
        points = dict.fromkeys(dets, 0)
        for n in LENGTHS:
            # short series are cheap and noisy: more of them, so every length weighs in
            for s in range(seeds * max(1, 300 // n)):
                rng = np.random.default_rng([1, FAMILIES.index(fam), n, s])
                x = series(fam, n, CVS[s % len(CVS)], [], rng)
                for name, det in dets.items():
                    if name == "spa" and s >= spa_cap.get(n, seeds):
                        continue
                    k = len(det(x))
                    false[name] += k
                    points[name] += n
                    by_len[name][n][0] += k
                    by_len[name][n][1] += n
        for name in dets:
            out[name][fam] = 1000.0 * false[name] / points[name] if points[name] else math.nan
    per_len = {
        d: {n: 1000.0 * f / p if p else math.nan for n, (f, p) in v.items()} for d, v in by_len.items()
    }
    return out, per_len


def change_study(
    dets: dict[str, Detector], seeds: int, spa_cap: dict[int, int]
) -> dict[str, dict[float, dict[str, tuple[int, int, int]]]]:
    """(true positives, found, truth) per detector, step size and family."""
    out: dict[str, dict[float, dict[str, tuple[int, int, int]]]] = {d: {st: {} for st in STEPS} for d in dets}
    for step in STEPS:
        for fam in FAMILIES:
            acc = {d: [0, 0, 0] for d in dets}
            for n in LENGTHS:
                k = 1 if n <= 30 else 2 if n <= 100 else 3
                for s in range(seeds):
                    rng = np.random.default_rng([2, FAMILIES.index(fam), n, s, int(step * 10)])
                    truth = place_steps(n, k, step, rng)
                    x = series(fam, n, CVS[s % len(CVS)], truth, rng)
                    for name, det in dets.items():
                        if name == "spa" and s >= spa_cap.get(n, seeds):
                            continue
                        found = det(x)
                        a = acc[name]
                        a[0] += match(found, [t for t, _ in truth])
                        a[1] += len(found)
                        a[2] += len(truth)
            for name in dets:
                out[name][step][fam] = (acc[name][0], acc[name][1], acc[name][2])
    return out


def prf(tp: int, found: int, truth: int) -> tuple[float, float, float]:
    p = tp / found if found else 1.0
    r = tp / truth if truth else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def runtime(dets: dict[str, Detector], repeats: int) -> dict[str, list[float]]:
    """Seconds per series at T = 1000, interleaved across detectors (warm: one call first)."""
    rng = np.random.default_rng(99)
    xs = [series("gauss", 1000, 0.02, place_steps(1000, 2, 2.0, rng), rng) for _ in range(repeats)]
    times: dict[str, list[float]] = {d: [] for d in dets}
    for det in dets.values():
        det(xs[0])
    for x in xs:
        for name, det in dets.items():
            t0 = time.perf_counter()
            det(x)
            times[name].append(time.perf_counter() - t0)
    return times


def cold_runtime() -> float:
    """sleuth at T = 1000 as a CI job sees it: a fresh process, imports (numpy, scipy) included."""
    import subprocess

    rng = np.random.default_rng(98)
    x = series("gauss", 1000, 0.02, place_steps(1000, 2, 2.0, rng), rng)
    code = (
        "import json, sys, time; t = time.perf_counter(); "
        "from sleuth.gate.changepoint import detect; detect(json.loads(sys.stdin.read())); "
        "print(time.perf_counter() - t)"
    )
    src = str(Path(__file__).resolve().parent.parent / "src")
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(x.tolist()),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": src},
    )
    return float(out.stdout.strip())


def determinism(dets: dict[str, Detector]) -> dict[str, bool]:
    rng = np.random.default_rng(5)
    xs = [series("ar06", 300, 0.02, place_steps(300, 2, 1.0, rng), rng) for _ in range(5)]
    return {name: all(det(x) == det(x) for x in xs) for name, det in dets.items()}


def false_graduation(
    n: int = 10, sims: int = 20000, target: float = 0.01
) -> list[tuple[float, float, float]]:
    """P(graduate) of the point-estimate rule (CV^ < target) and the 95 % upper-bound rule."""
    rng = np.random.default_rng(3)
    rows = []
    for true_cv in (0.006, 0.008, 0.01, 0.012, 0.015, 0.02):
        x = 100.0 * (1.0 + true_cv * rng.standard_normal((sims, n)))
        cv = x.std(axis=1, ddof=1) / x.mean(axis=1)
        point = float((cv < target).mean())
        ucb = float(np.mean([cv_upper_bound(float(c), n) < target for c in cv]))
        rows.append((true_cv, point, ucb))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few seeds (about a minute)")
    ap.add_argument("--seeds", type=int, default=None, help="series per cell (default 4 quick, 20 full)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    ap.add_argument("--alpha", type=float, default=None, help="sleuth's alpha (default: its own default)")
    ap.add_argument("--only-sleuth", action="store_true", help="skip the contenders (tuning runs)")
    args = ap.parse_args()
    global SETTINGS
    if args.alpha is not None:
        SETTINGS = changepoint.Settings(alpha=args.alpha)
    seeds = args.seeds or (4 if args.quick else 20)
    # SPA is quadratic (about 2 s per series at T=1000): cap its series at the long lengths
    spa_cap = {300: max(2, seeds // 2), 1000: 1 if args.quick else max(2, seeds // 5)}
    dets: dict[str, Detector] = {"sleuth": ours} if args.only_sleuth else contenders()
    t0 = time.perf_counter()
    print(f"seeds per cell: {seeds}; SPA capped at {spa_cap} series per cell; matching +/-{MARGIN} points")

    nulls, per_len = null_study(dets, seeds, spa_cap)
    print("\nfalse change points per 1000 null points, by family (target <= 1 in every family)")
    print(f"{'detector':<10}" + "".join(f"{f:>10}" for f in FAMILIES) + f"{'worst':>10}")
    for name, row in nulls.items():
        worst = max(row.values())
        print(f"{name:<10}" + "".join(f"{row[f]:>10.2f}" for f in FAMILIES) + f"{worst:>10.2f}")
    print("false change points per 1000 null points, by series length (families pooled)")
    print(f"{'detector':<10}" + "".join(f"{f'T={n}':>10}" for n in LENGTHS))
    for name, by_len in per_len.items():
        print(f"{name:<10}" + "".join(f"{by_len[n]:>10.2f}" for n in LENGTHS))

    changes = change_study(dets, seeds, spa_cap)
    print("\nprecision / recall / F1 by step size (all families pooled)")
    print(f"{'detector':<10}" + "".join(f"{f'{st:g} sigma':>20}" for st in STEPS))
    for name, by_step in changes.items():
        cells = []
        for st in STEPS:
            tp, fd, tr = (sum(v[i] for v in by_step[st].values()) for i in range(3))
            p, r, f = prf(tp, fd, tr)
            cells.append(f"{p:.2f}/{r:.2f}/{f:.2f}")
        print(f"{name:<10}" + "".join(f"{c:>20}" for c in cells))
    print("\nrecall at 2 sigma per family (target: sleuth >= the best contender)")
    print(f"{'detector':<10}" + "".join(f"{f:>10}" for f in FAMILIES) + f"{'pooled':>10}")
    for name, by_step in changes.items():
        at2 = by_step[2.0]
        pooled = prf(*(sum(v[i] for v in at2.values()) for i in range(3)))[1]
        print(f"{name:<10}" + "".join(f"{prf(*at2[f])[1]:>10.2f}" for f in FAMILIES) + f"{pooled:>10.2f}")

    cold = cold_runtime()
    times = runtime(dets, 3 if args.quick else 7)
    print("\nruntime per series at T = 1000 (median of interleaved repeats, warm)")
    anchor = statistics.median(times["spa"]) if "spa" in times else None
    for name, ts in times.items():
        med = statistics.median(ts)
        spread = f"{min(ts) * 1e3:.1f}-{max(ts) * 1e3:.1f}"
        ratio = f"  SPA/this = {anchor / med:.0f}x" if anchor else ""
        print(f"  {name:<10}{med * 1e3:>10.1f} ms  (range {spread} ms){ratio}")
    print(f"  sleuth cold (a fresh process: imports of numpy/scipy included): {cold * 1e3:.1f} ms")

    det = determinism(dets)
    print(
        "\nidentical output when run twice on the same 5 series: "
        + ", ".join(f"{k} {v}" for k, v in det.items())
    )

    print("\nCV graduation at n = 10, target 1 %: P(graduate) by true CV (false when true CV >= 1 %)")
    print(f"{'true CV':>8}{'point rule':>12}{'95% UCB rule':>14}")
    grad = false_graduation()
    for cv, point, ucb in grad:
        print(f"{cv * 100:>7.1f}%{point:>12.3f}{ucb:>14.3f}")
    print(f"\ntook {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "seeds": seeds,
                    "null_per_1000": nulls,
                    "null_per_1000_by_length": per_len,
                    "changes": {d: {str(s): v for s, v in by.items()} for d, by in changes.items()},
                    "runtime_ms": {k: [t * 1e3 for t in v] for k, v in times.items()},
                    "cold_ms": cold * 1e3,
                    "deterministic": det,
                    "false_graduation": grad,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
