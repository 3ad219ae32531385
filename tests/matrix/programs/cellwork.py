"""A matrix test workload driven by environment variables, deterministic given WORK_SEED.

WORK_FAIL_P: chance of 'loss is nan' (exit 1); WORK_OOM=1: always die with MemoryError instead;
WORK_SLEEP: seconds to sleep first;
WORK_STEP: step time printed (step_time_ms=...), multiplied by WORK_SLOW; WORK_SEED plus
SLEUTH_CELL and SLEUTH_TRIAL_ID seed the draw (random when WORK_SEED is unset).
WORK_FIX=1: never fails (a mitigation that works); WORK_FIXED_BY=DIST==VERSION: never fails when
that distribution is installed at that version (an environment that works).
WORK_SHOW_SHA=A,B: print a digest of each of those variables and of the arguments (never the
values: a secret must reach the workload whole, and no file but its own).
"""

import os
import random
import sys
import time

seed = os.environ.get("WORK_SEED")
key = f"{seed}:{os.environ.get('SLEUTH_CELL')}:{os.environ.get('SLEUTH_TRIAL_ID')}"
rng = random.Random(key if seed is not None else None)
slow = float(os.environ.get("WORK_SLOW", "1"))
base = float(os.environ.get("WORK_STEP", "10"))
time.sleep(float(os.environ.get("WORK_SLEEP", "0")))
if os.environ.get("WORK_SHOW_SHA"):
    import hashlib

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    for name in os.environ["WORK_SHOW_SHA"].split(","):
        print(f"sha {name}={sha(os.environ.get(name, '(unset)'))}")
    print(f"sha argv={sha(' '.join(sys.argv[1:]))}")
for step in range(3):
    print(f"step {step} step_time_ms={base * slow * rng.uniform(0.95, 1.05):.3f}")
if os.environ.get("WORK_OOM") == "1":
    raise MemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
fixed = os.environ.get("WORK_FIX") == "1"
if os.environ.get("WORK_FIXED_BY"):
    from contextlib import suppress
    from importlib import metadata

    dist, _, version = os.environ["WORK_FIXED_BY"].partition("==")
    with suppress(metadata.PackageNotFoundError):  # not installed: not fixed
        fixed = fixed or metadata.version(dist) == version
if not fixed and rng.random() < float(os.environ.get("WORK_FAIL_P", "0")):
    print("loss is nan at step 3")
    sys.exit(1)
print("ok")
