"""The training loop of the built-in ``numpy_nan`` workload (stdlib and numpy only: a venv or an
image without sleuth loads this file directly).

A small linear model trained by SGD on synthetic batches.  Now and then a batch carries a stale
buffer's garbage (a value near 7e4): in reduced precision (float16, standing in for TF32
tensor-core math) the product overflows to inf and the loss turns NaN; with
``NVIDIA_TF32_OVERRIDE=0`` the math is float32 and the loss survives.  ``CUDA_LAUNCH_BLOCKING=1``
serialises the steps: the race that produces the garbage becomes rare and every step is slower.
Both variables are read when the module is imported, as a CUDA runtime reads them at start-up:
the launcher runs every trial in a fresh interpreter, so a mitigation applies.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

REDUCED = os.environ.get("NVIDIA_TF32_OVERRIDE") != "0"
BLOCKING = os.environ.get("CUDA_LAUNCH_BLOCKING") == "1"
#: the bad-batch chance per step is divided by this with blocking launches
BLOCKING_CALM = 20.0
GARBAGE = 7.0e4


def train(
    steps: int = 50, seed: int = -1, spike_p: float = 0.008, step_ms: float = 2.0, lr: float = 0.05
) -> dict[str, Any]:
    """Run ``steps`` SGD steps; report the step times and whether the loss went NaN.

    ``seed`` -1 draws from the OS (every trial differs); a seed >= 0 is combined with sleuth's
    ``SLEUTH_CELL`` and ``SLEUTH_TRIAL_ID``, so each trial is reproducible and trials differ.
    """
    key = f"{seed}:{os.environ.get('SLEUTH_CELL', '')}:{os.environ.get('SLEUTH_TRIAL_ID', '')}"
    rng = np.random.default_rng(list(key.encode()) if seed >= 0 else None)
    dtype = np.float16 if REDUCED else np.float32
    p = spike_p / BLOCKING_CALM if BLOCKING else spike_p
    w_true = rng.standard_normal(32).astype(np.float32)
    w = np.zeros(32, dtype=np.float32)
    times: list[float] = []
    for step in range(steps):
        t0 = time.perf_counter()
        x = rng.standard_normal((16, 32)).astype(np.float32)
        if rng.random() < p:
            x[rng.integers(16), :] = GARBAGE
        y = x @ w_true
        with np.errstate(over="ignore", invalid="ignore"):
            pred = (x.astype(dtype) @ w.astype(dtype)).astype(np.float32)
            err = pred - y
            # a per-batch scale in reduced precision: garbage overflows it to inf, inf/inf is nan
            scale = np.abs(x.astype(dtype)).max() * np.abs(x.astype(dtype)).max()
            loss = float(np.mean(err * err) * (scale / scale))
            grad = (x.T @ err) / len(x)
            # a clipped step: a garbage batch moves the weights by at most lr (float32 survives it)
            w -= lr * grad / max(1.0, float(np.linalg.norm(grad)))
        time.sleep(step_ms / 1000 * (4.0 if BLOCKING else 1.0))
        times.append((time.perf_counter() - t0) * 1000)
        if not np.isfinite(loss):
            print(f"step {step} loss is nan", flush=True)
            return {"failed": True, "signature": "FloatingPointError: loss is nan", "step_times": times}
        if step % 10 == 0 or step == steps - 1:
            print(f"step {step} loss={loss:.4f} step_time_ms={times[-1]:.3f}", flush=True)
    print("done", flush=True)
    return {"failed": False, "step_times": times}


if __name__ == "__main__":
    sys.exit(1 if train()["failed"] else 0)
