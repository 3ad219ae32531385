"""Fail with probability P (argv[1]); seeded by argv[2] plus $SLEUTH_TRIAL_ID, else random.

A failure prints 'loss is nan at step N' and raises FloatingPointError; a pass prints the step time.
"""

import os
import random
import sys

p = float(sys.argv[1])
seed = sys.argv[2] if len(sys.argv) > 2 else None
rng = random.Random(f"{seed}:{os.environ.get('SLEUTH_TRIAL_ID', '')}" if seed is not None else None)
step = rng.randint(100, 5000)
print(f"step_time_ms={rng.uniform(10, 20):.3f}")
if rng.random() < p:
    print(f"loss is nan at step {step}")
    raise FloatingPointError(f"loss is nan at step {step} (0x{id(rng):x})")
print("ok")
