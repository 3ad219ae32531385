"""A toy training loop that dies with a NaN loss in about one run out of three.

Prints ``step_time_ms=...`` each step and ``loss=...``; a failing run prints ``loss is nan at step N``
and raises.  Set ``TOY_SEED`` to make a run reproducible; otherwise each run draws its own luck.
Used by ``make demo-run`` through ``sleuth run``.
"""

from __future__ import annotations

import math
import os
import random
import time

seed = os.environ.get("TOY_SEED")
rng = random.Random(seed if seed is not None else os.urandom(8))
steps = int(os.environ.get("TOY_STEPS", "20"))
nan_at = rng.randint(1, steps) if rng.random() < 1 / 3 else None
loss = 2.5
for step in range(1, steps + 1):
    t0 = time.perf_counter()
    time.sleep(0.002)
    loss = loss * 0.95 + rng.uniform(-0.01, 0.01)
    if step == nan_at:
        loss = math.nan
    print(f"step={step} loss={loss:.4f} step_time_ms={(time.perf_counter() - t0) * 1e3:.3f}", flush=True)
    if math.isnan(loss):
        print(f"loss is nan at step {step}", flush=True)
        raise FloatingPointError(f"loss is nan at step {step}")
print(f"final_loss={loss:.4f}")
