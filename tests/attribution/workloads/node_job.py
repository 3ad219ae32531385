"""One node of a multi-node job: in cycle c, node (c mod nodes) hits a GPU fault and exits 1; the other
nodes train (print progress-free lines) until their supervisor stops them."""

import datetime
import os
import sys
import time

rank, nodes = int(sys.argv[1]), int(sys.argv[2])
cycle = int(os.environ["SLEUTH_CYCLE"])
print(f"node {rank} cycle {cycle} restarts_left {os.environ['SLEUTH_RESTARTS_LEFT']}", flush=True)
if cycle % nodes == rank:
    time.sleep(0.3)
    now = datetime.datetime.now(datetime.UTC).isoformat()
    print(f"{now} NVRM: Xid (PCI:0000:3b:00): 79, pid={os.getpid()}, GPU has fallen off the bus.", flush=True)
    sys.exit(1)
time.sleep(120)
