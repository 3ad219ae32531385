"""A workload that appends this cycle's failure line, timed, to a log shared across restarts (a
node's kernel log, a job log appended by every run) and prints the whole of it, as a wrapper that
shows ``dmesg -T`` on failure does; then fails.

``shared_log.py SHARED LINE0 LINE1 ...``: cycle N writes LINE<N> (the last one past the end).
"""

import os
import sys
import time
from datetime import UTC, datetime

shared, lines = sys.argv[1], sys.argv[2:]
cycle = int(os.environ["SLEUTH_CYCLE"])
time.sleep(0.05)  # after the cycle's start, as a real failure is
with open(shared, "a", encoding="utf-8") as fh:
    fh.write(f"{datetime.now(UTC).isoformat()} {lines[min(cycle, len(lines) - 1)]}\n")
with open(shared, encoding="utf-8") as fh:
    sys.stdout.write(fh.read())
sys.exit(1)
