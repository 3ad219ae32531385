"""A workload that ignores SIGINT, SIGTERM and SIGHUP (a hung rank stuck in a collective, a handler
that swallows them): writes its pid to argv[1], then runs until killed."""

import os
import signal
import sys
import time

for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)

with open(sys.argv[1] + ".tmp", "w") as fh:
    fh.write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
print("running", flush=True)
while True:
    time.sleep(1)
