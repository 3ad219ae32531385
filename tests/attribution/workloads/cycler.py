"""A workload for sleuth supervise: fails with the given lines while SLEUTH_CYCLE < --until, then succeeds.

Appends {"cycle", "restarts_left"} to --env-log; prints --progress lines first when asked; sleeps
--sleep seconds before exiting (so a late decision can arrive while it runs).
"""

import argparse
import json
import os
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--until", type=int, default=10**9)
p.add_argument("--line", action="append", default=[])
p.add_argument("--env-log")
p.add_argument("--progress", action="store_true")
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--rc", type=int, default=1)
a = p.parse_args()
cycle = int(os.environ["SLEUTH_CYCLE"])
if a.env_log:
    with open(a.env_log, "a") as fh:
        fh.write(
            json.dumps({"cycle": cycle, "restarts_left": int(os.environ["SLEUTH_RESTARTS_LEFT"])}) + "\n"
        )
print(f"cycle {cycle} starting", flush=True)
if a.progress:
    print(f"iteration {cycle * 10} | lm loss 2.0", flush=True)
if cycle < a.until:
    for line in a.line:
        print(line, file=sys.stderr, flush=True)
    time.sleep(a.sleep)
    sys.exit(a.rc)
time.sleep(a.sleep)
print("training finished", flush=True)
