"""``gate check``'s regression test on simulated CI histories: false FAILs and power, with run-to-run noise.

The product's own :func:`sleuth.gate.checks.check` judges each history (only the CI runner is
simulated).  A history is 10 baseline runs and 1 recent run of 20 metrics, each run 10 samples;
a run's level moves from run to run by a normal factor with CV ``run_cv`` (a shared CI runner, a
noisy neighbour, a rebuilt image), and each sample within the run by 1%.  The policy is the
default (``regression: {baseline_runs: 10, recent_runs: 1, min_effect: 2%}``, ``fdr: 0.05``).

Printed per run-to-run CV:

* **false FAIL / metric**: the share of null metrics (no change) judged FAIL;
* **checks with a false FAIL**: the share of 20-metric checks in which any null metric FAILs (what
  makes a blocking gate unbearable);
* **power at +5% / +10%**: the share of checks in which one metric that really got 5% (10%) slower,
  among 19 null ones, FAILs.

    python bench/gate_sim.py [--reps 400] [--seed 1]

A test that pooled every run's samples as independent (the gate's regression test before this
bench) failed 17% of null metrics and 98% of checks at 2% run-to-run noise
(``tests/gate/test_checks.py::test_bh_across_metrics_holds_under_run_to_run_noise_seeded``).
Nothing here asserts; the figures are the answer.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from sleuth.gate.checks import check
from sleuth.gate.model import Run, RunStatus, Sample, Verdict
from sleuth.gate.policy import Policy

METRICS, BASE_RUNS, SAMPLES = 20, 10, 10


def history(rng: np.random.Generator, run_cv: float, slow: float) -> list[Run]:
    """11 runs of 20 metrics; metric m0 of the last run is ``slow`` times slower (1.0: no change)."""
    runs = []
    for i in range(BASE_RUNS + 1):
        samples = []
        for j in range(METRICS):
            level = 100.0 * (1 + run_cv * rng.standard_normal())
            if i == BASE_RUNS and j == 0:
                level *= slow
            values = level * (1 + 0.01 * rng.standard_normal(SAMPLES))
            samples.append(Sample(f"m{j}", tuple(float(x) for x in values), "ms"))
        runs.append(Run(suite="s", run_id=f"r{i:03d}", created_at=f"2026-01-01T00:00:{i:02d}.000000Z",
                        status=RunStatus.SUCCESS, branch="main", samples=tuple(samples)))  # fmt: skip
    return runs


def wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.96
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=400, help="simulated checks per row and column")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    pol = Policy.model_validate({"metrics": {"*": {}}})
    print(
        f"# {args.reps} checks a cell, {METRICS} metrics, {BASE_RUNS}+1 runs of {SAMPLES} samples (1% within a run)"
    )
    print(
        "# run-to-run CV   false FAIL / metric (95% CI)   checks with a false FAIL   power +5%   power +10%"
    )
    t0 = time.monotonic()
    for run_cv in (0.0, 0.01, 0.02, 0.05):
        rng = np.random.default_rng(args.seed)
        false_metrics = false_checks = 0
        found = {1.05: 0, 1.10: 0}
        for _ in range(args.reps):
            rep = check(history(rng, run_cv, 1.0), pol, suite="s")
            bad = sum(r.verdict is Verdict.FAIL for r in rep.results)
            false_metrics += bad
            false_checks += bad > 0
            for slow in found:
                rep = check(history(rng, run_cv, slow), pol, suite="s")
                found[slow] += any(r.metric == "m0" and r.verdict is Verdict.FAIL for r in rep.results)
        n = args.reps * METRICS
        lo, hi = wilson(false_metrics, n)
        print(f"  {100 * run_cv:>5.0f}%          {100 * false_metrics / n:6.2f}% ({100 * lo:.2f}-{100 * hi:.2f}%)"
              f"          {100 * false_checks / args.reps:6.1f}%              "
              f"{100 * found[1.05] / args.reps:5.1f}%     {100 * found[1.10] / args.reps:5.1f}%")  # fmt: skip
    print(f"# {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
