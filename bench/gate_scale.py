"""``sleuth gate`` on a large history: wall time and peak memory of each verb a CI gate runs.

A history of ``--runs`` runs x ``--metrics`` metrics (``--samples`` samples each; one step of +5% in
metric 0 at 80% of the history) is written once through the product's own store
(``SqlStore.add_run``, what ``record`` calls) into ``--cache`` (kept between invocations: building
1,000 x 10,000 takes minutes).  Then, for ``--rounds`` rounds, each verb runs as a real ``sleuth``
process under ``/usr/bin/time -v``:

* ``record`` of one more run of every metric (a CSV file) into a fresh SQLite history;
* ``check`` with a policy that judges every metric (``"*": regression + budget``), and with a
  policy of one exact key per metric (as a generated policy is);
* ``graduate --last 10``, ``baseline capture --last 10``;
* ``changepoints --metric`` offline, and ``--incremental`` (the second call of a pair, its state built).

Printed per verb: the median wall time and peak RSS over the rounds, and their spread (min-max).

    python bench/gate_scale.py [--runs 1000] [--metrics 10000] [--samples 1] [--rounds 3] [--quick]
    python bench/gate_scale.py --db postgresql://USER@HOST/DB   # a PostgreSQL history instead
    python bench/gate_scale.py --src /tmp/old/src               # an older sleuth on the same history

Nothing here asserts; the figures are the answer (a gate in CI must answer in seconds).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sleuth.gate.model import Run, RunStatus, Sample
from sleuth.gate.store import open_store

SUITE = "scale"


def build(url: str, runs: int, metrics: int, samples: int) -> float:
    """Write the history through the product's store; seconds taken."""
    rng = np.random.default_rng(1)
    store = open_store(url, create=True)
    t0 = time.perf_counter()
    names = [f"BenchmarkM{j}:ns/op" for j in range(metrics)]
    try:
        for i in range(runs):
            level = 100.0 * (1 + 0.01 * rng.standard_normal(metrics))
            if i >= int(0.8 * runs):
                level[0] *= 1.05
            vals = level[:, None] * (1 + 0.005 * rng.standard_normal((metrics, samples)))
            run = Run(
                suite=SUITE,
                run_id=f"r{i:05d}",
                created_at=f"2026-01-{1 + i // 86400:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000000Z",
                status=RunStatus.SUCCESS,
                branch="main",
                samples=tuple(
                    Sample(n, tuple(map(float, v)), "ns/op") for n, v in zip(names, vals, strict=True)
                ),
            )
            store.add_run(run)
            if i % 100 == 99:
                print(f"  built {i + 1}/{runs} runs ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    finally:
        store.close()
    return time.perf_counter() - t0


def timed(argv: list[str], cwd: Path, src: Path | None = None) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of one ``sleuth`` process (``src``: another
    checkout's ``src/`` folder, to time an older sleuth on the same history)."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "sleuth", *argv]
    env = {**os.environ, "PYTHONPATH": str(src)} if src is not None else None
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr)
    if res.returncode not in (0, 1, 3):
        tail = res.stderr.strip().splitlines()[-3:]
        raise SystemExit(f"sleuth {' '.join(argv)}: exit {res.returncode}: {' | '.join(tail)}")
    return wall, (int(m.group(1)) / 1024 if m else float("nan")), res.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--metrics", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="200 runs x 2,000 metrics, 2 rounds")
    ap.add_argument("--db", help="a PostgreSQL URL (an empty database) instead of the cached SQLite file")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "sleuth-gate-scale")
    ap.add_argument("--only", action="append", default=[], help="time only these verbs (repeatable)")
    ap.add_argument("--src", type=Path, help="time the sleuth of this src/ folder (e.g. an older checkout's)")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.metrics, a.rounds = 200, 2000, 2
    a.cache.mkdir(parents=True, exist_ok=True)
    if a.db:
        url = a.db
        fresh = not open_store(url, create=False).suites()
    else:
        path = a.cache / f"h-{a.runs}x{a.metrics}x{a.samples}.db"
        url = f"sqlite:///{path}"
        fresh = not path.exists()
    if fresh:
        print(
            f"building {a.runs} runs x {a.metrics} metrics x {a.samples} samples in {url} ...",
            file=sys.stderr,
        )
        tmp = url if a.db else f"sqlite:///{path}.part"
        secs = build(tmp, a.runs, a.metrics, a.samples)
        if not a.db:
            os.replace(f"{path}.part", path)
        print(f"built in {secs:.0f} s ({a.runs / secs:.1f} runs/s through SqlStore.add_run)")
    work = Path(tempfile.mkdtemp(prefix="gate-scale-"))
    try:
        policy = work / "policy.yaml"
        policy.write_text(
            'metrics:\n  "*":\n    kind: time\n    budget: {max: 1000000, runs: 10}\n'
            "    regression: {baseline_runs: 10, recent_runs: 1}\n"
        )
        exact = work / "exact.yaml"  # a generated policy: one key per metric
        exact.write_text(
            "metrics:\n"
            + "".join(
                f'  "BenchmarkM{j}:ns/op": {{kind: time, regression: {{baseline_runs: 10, recent_runs: 1}}}}\n'
                for j in range(a.metrics)
            )
        )
        one = work / "one.csv"
        one.write_text("".join(f"BenchmarkM{j}:ns/op,100.5,ns/op\n" for j in range(a.metrics)))
        m0 = "BenchmarkM0:ns/op"
        verbs: dict[str, list[str]] = {
            "record (a new SQLite file)": ["gate", "record", "--suite", SUITE, "--no-provenance", str(one)],
            "check": ["gate", "check", "--suite", SUITE, "--policy", str(policy), "--json", "--db", url],
            "check, a key per metric": ["gate", "check", "--suite", SUITE, "--policy", str(exact), "--json", "--db", url],
            "graduate": ["gate", "graduate", "--suite", SUITE, "--last", "10", "--json", "--db", url],
            "baseline capture": ["gate", "baseline", "capture", "--suite", SUITE, "-o", str(work / "b.json"), "--db", url],
            "changepoints": ["gate", "changepoints", "--suite", SUITE, "--metric", m0, "--json", "--db", url],
            "changepoints --incremental": [
                "gate", "changepoints", "--suite", SUITE, "--metric", m0, "--incremental", "--json", "--db", url
            ],
        }  # fmt: skip
        figures: dict[str, list[tuple[float, float]]] = {v: [] for v in verbs if not a.only or v in a.only}
        for r in range(a.rounds):
            for verb, fig in figures.items():
                argv = list(verbs[verb])
                if verb.startswith("record"):
                    db = work / f"rec-{r}.db"
                    argv += ["--run-id", f"x{r}", "--db", f"sqlite:///{db}"]
                if verb == "changepoints --incremental":
                    timed(argv, work, a.src)  # the state is built by a first call; the second is what CI pays
                wall, rss, _ = timed(argv, work, a.src)
                fig.append((wall, rss))
                print(f"  round {r + 1}: {verb}: {wall:.2f} s, {rss:.0f} MiB", file=sys.stderr)
        print(
            f"\n# {a.runs} runs x {a.metrics} metrics x {a.samples} sample(s), {a.rounds} rounds, {url.split(':')[0]}"
        )
        print(f"{'verb':<28} {'wall s (median, min-max)':<28} {'peak RSS MiB (median, min-max)'}")
        for verb, fig in figures.items():
            ws, ms = [w for w, _ in fig], [m for _, m in fig]
            print(
                f"{verb:<28} {statistics.median(ws):>7.2f} ({min(ws):.2f}-{max(ws):.2f})"
                f"{'':<8} {statistics.median(ms):>7.0f} ({min(ms):.0f}-{max(ms):.0f})"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
