"""A toy training loop that hits ``loss is nan`` in roughly one run in three.

What goes wrong, on purpose: now and then an activation spikes above 65504.  The matmul runs in
reduced precision (float16 here stands in for TF32 tensor-core math) unless
``NVIDIA_TF32_OVERRIDE=0``, and in reduced precision the spike overflows to inf, and inf - inf
in the normalisation is NaN.  The spike itself comes from an unsynchronised read of a buffer
that is still being written; with ``CUDA_LAUNCH_BLOCKING=1`` every step waits for the previous
one, which makes the race rare and every step several times slower.  Nothing here talks to NCCL,
so NCCL knobs change nothing.

So, in a matrix: ``tf32_off`` really fixes it, ``cuda_launch_blocking`` "fixes" it only by
running much slower (sleuth flags the speed confound), ``nccl_p2p_off`` does nothing.

Randomness comes from the OS, so every run differs; set ``MATRIX_NAN_SEED`` to make each trial
reproducible (the seed is combined with sleuth's ``SLEUTH_CELL`` and ``SLEUTH_TRIAL_ID``).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

STEPS = 20
#: chance per step that the racy read sees a spike: about 1 run in 3 fails without blocking
SPIKE_P = 0.021
#: with blocking launches the race almost never happens
SPIKE_P_BLOCKING = 0.001
STEP_S = 0.003
BLOCKING_EXTRA_S = 0.012


def main() -> int:
    seed = os.environ.get("MATRIX_NAN_SEED")
    key = f"{seed}:{os.environ.get('SLEUTH_CELL', '')}:{os.environ.get('SLEUTH_TRIAL_ID', '')}"
    rng = np.random.default_rng(list(key.encode()) if seed is not None else None)
    reduced = os.environ.get("NVIDIA_TF32_OVERRIDE") != "0"
    blocking = os.environ.get("CUDA_LAUNCH_BLOCKING") == "1"
    dtype = np.float16 if reduced else np.float32
    w = (rng.standard_normal((64, 64)) * 0.05).astype(np.float32)
    for step in range(STEPS):
        t0 = time.perf_counter()
        x = rng.standard_normal((64, 64)).astype(np.float32)
        if rng.random() < (SPIKE_P_BLOCKING if blocking else SPIKE_P):
            x[rng.integers(64), :] = 7.0e4  # the stale buffer's garbage
        with np.errstate(over="ignore", invalid="ignore"):
            h = (x.astype(dtype) @ w.astype(dtype)).astype(np.float32)
            h = h - h.max(axis=1, keepdims=True)  # inf - inf = nan once h overflowed
            loss = float(np.mean(np.exp(h)))
        time.sleep(STEP_S + (BLOCKING_EXTRA_S if blocking else 0.0))
        ms = (time.perf_counter() - t0) * 1000
        if not np.isfinite(loss):
            print(f"step {step} loss is nan", flush=True)
            print(f"FloatingPointError: loss is nan at step {step}", file=sys.stderr)
            return 1
        print(f"step {step} loss={loss:.4f} step_time_ms={ms:.3f}", flush=True)
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
