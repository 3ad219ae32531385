"""A numpy "training" loop that hits NaN, for sleuth reduce's example (examples/reduce-nan).

The loss goes NaN only when every one of these holds (what sleuth reduce should find):
* step >= 137 (the learning-rate warmup ends there, so at least 138 steps are needed);
* the batch (BATCH_SIZE) is large enough for float16 to overflow (about 435 and up);
* the shapes file has both tied layers, ``embed`` and ``lm_head`` (two of its 500 lines);
* TRAIN_FAST_MATH=1 (one of forty variables): activations are kept in float16.
Each step costs time in proportion to the batch, so fewer steps and a smaller batch are cheaper.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

WARMUP_END = 137


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--shapes", required=True)
    ap.add_argument("--fused-adam", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--amp", action="store_true")
    args = ap.parse_args()
    batch = int(os.environ.get("BATCH_SIZE", "32"))
    dtype = np.float16 if os.environ.get("TRAIN_FAST_MATH") == "1" else np.float32
    layers = {}
    with open(args.shapes, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                name, dims = line.split()
                a, b = (int(x) for x in dims.split("x"))
                layers[name] = (a, b)
    # tied embedding and output head: their scales multiply
    tied = dtype(1.0)
    if "embed" in layers and "lm_head" in layers:
        tied = dtype(layers["embed"][0] / 4096) * dtype(layers["lm_head"][1] / 4096)
    rng = np.random.default_rng(0)
    for step in range(args.steps):
        lr = 1.0 if step >= WARMUP_END else 0.1
        x = rng.standard_normal((batch, 8)).astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            act = (np.ones(4, dtype=dtype) * (tied * dtype(lr)) * dtype(batch)).astype(dtype)
            loss = float((act - act).sum()) + float((x * x).mean()) * 1e-3
        if step % 50 == 0:
            print(f"step {step} loss {loss:.4f}", flush=True)
        if np.isnan(loss):
            print(f"NaN detected at step {step}", flush=True)
            return 1
    print(f"done: {args.steps} steps, final loss {loss:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
