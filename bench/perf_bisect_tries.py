"""Issue 10's two tries, from the CLI with real processes: ``sleuth bisect list`` on a list of builds
whose step time rises at one build, each run a Python process that reads its build number and draws
the metric (seeded per build, run and seed, so every try is reproducible).

  a   +5% at 3% Gaussian noise, 200 builds, step at build 123, --threshold 3
  b   +6% at 3% log-normal noise with rare outliers (1% of runs 20-100% slower), 300 builds,
      step at build 123, --threshold 3, --jobs 2

Each try runs with ``--seeds`` seeds (default 3, as in the issue) and prints, per seed, the status,
the build named, whether it is right, the tests (runs) the search reported and the processes that
actually ran, the confidence and the wall time.  Exit 1 when any try names a wrong build or none.

  python bench/perf_bisect_tries.py               # both tries, 3 seeds each
  python bench/perf_bisect_tries.py --try a --seeds 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: the workload: build N's step time, 100 ms before STEP and 100 (1 + RISE) from it on, times noise
WORKLOAD = """import hashlib, math, os, random
label = os.environ["SLEUTH_CANDIDATE"]
key = f"{os.environ['SEED']}/{label}/{os.environ['SLEUTH_TRIAL_ID']}"
rng = random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))
build = int(label.removeprefix("build-"))
level = 100.0 * (1 + float(os.environ["RISE"])) if build >= int(os.environ["STEP"]) else 100.0
cv = float(os.environ["CV"])
if os.environ["NOISE"] == "lognormal-outliers":
    s = math.sqrt(math.log1p(cv * cv))
    x = math.exp(rng.gauss(-s * s / 2, s))
    if rng.random() < 0.01:
        x *= 1 + rng.uniform(0.2, 1.0)
else:
    x = 1 + cv * rng.gauss(0, 1)
with open(os.environ["COUNT"], "a") as f:
    f.write("x")
print(f"step {build}: step_time={level * x:.4f} ms")
"""

TRIES = {
    "a": {"builds": 200, "step": 123, "rise": 0.05, "cv": 0.03, "noise": "gauss", "jobs": 1, "threshold": 3},
    "b": {"builds": 300, "step": 123, "rise": 0.06, "cv": 0.03, "noise": "lognormal-outliers", "jobs": 2,
          "threshold": 3},
}  # fmt: skip


def command(t: dict[str, object]) -> list[str]:
    """The ``sleuth bisect`` arguments of a try (run in its directory)."""
    jobs = ["--jobs", str(t["jobs"])] if t["jobs"] != 1 else []
    return ["bisect", "list", "builds.txt", "--metric", "t=step_time=([0-9.]+)", "--metric", "t",
            "--threshold", str(t["threshold"]), *jobs, "--json", "--output", "runs", "--",
            "python", "workload.py"]  # fmt: skip


def one(name: str, seed: int, root: Path) -> bool:
    """Run one try with one seed; print its line; True when it names the right build."""
    t = TRIES[name]
    d = root / f"{name}-{seed}"
    d.mkdir()
    (d / "builds.txt").write_text("".join(f"build-{i}\n" for i in range(int(t["builds"]))))  # type: ignore[call-overload]
    (d / "workload.py").write_text(WORKLOAD)
    env = {**os.environ, "SEED": str(seed), "STEP": str(t["step"]), "RISE": str(t["rise"]), "CV": str(t["cv"]),
           "NOISE": str(t["noise"]), "COUNT": str(d / "count"), "SLEUTH_CACHE": str(d / "cache")}  # fmt: skip
    # `python` in the test command is this interpreter
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "sleuth", *command(t)], cwd=d, env=env, capture_output=True,
                         text=True, timeout=1800)  # fmt: skip
    wall = time.perf_counter() - t0
    try:
        out = json.loads(res.stdout)
    except ValueError:
        print(f"{name}  seed {seed}: exit {res.returncode}, no JSON: {res.stderr.strip()[-300:]}")
        return False
    fb = (out.get("first_bad") or {}).get("label")
    right = out["status"] == "found" and fb == f"build-{t['step']}"
    ran = len((d / "count").read_text()) if (d / "count").exists() else 0
    print(f"{name}  seed {seed}: {out['status']:<9} first bad {fb or '-':<10} {'right' if right else 'WRONG':<5} "
          f"tests {out['tests']:>4} (processes {ran:>4})  confidence {out['confidence']:.4f}  "
          f"wall {wall:6.1f}s  exit {res.returncode}", flush=True)  # fmt: skip
    if out.get("note"):
        print(f"      note: {out['note']}")
    return right


def main(argv: list[str] | None = None) -> int:
    """Run the tries; exit 1 when one is not right."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--try", dest="tries", action="append", choices=sorted(TRIES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the run directories (printed)")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="sleuth-perf-tries-"))
    ok = True
    try:
        for name in args.tries or sorted(TRIES):
            t = TRIES[name]
            print(f"# try {name}: {t}\n#   sleuth {' '.join(command(t))}", flush=True)
            for seed in range(1, args.seeds + 1):
                ok &= one(name, seed, root)
    finally:
        if args.keep:
            print(f"# kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
