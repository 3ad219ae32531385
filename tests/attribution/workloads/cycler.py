"""A workload for sleuth supervise: fails with the given lines while SLEUTH_CYCLE < --until, then succeeds.

Appends {"cycle", "restarts_left"} to --env-log; prints --progress lines first when asked.  With
--wait-event NAME and --events FILE, the cycle that succeeds first waits (at most a minute) until
FILE (the supervisor's cycles.jsonl) has an event NAME, so a late decision arrives while it runs.
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
p.add_argument("--wait-event")
p.add_argument("--events")
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
    sys.exit(a.rc)


def _logged(name: str, path: str) -> bool:
    with open(path) as fh:
        return any(json.loads(line).get("event") == name for line in fh if line.endswith("\n"))


deadline = time.monotonic() + 60  # a hang detector, not a timing claim: the test then fails
while a.wait_event and not _logged(a.wait_event, a.events) and time.monotonic() < deadline:
    time.sleep(0.05)
print("training finished", flush=True)
