"""A workload that records the signal it gets: default SIGINT/SIGTERM/SIGHUP dispositions first, then a
handler that writes the signal's name to argv[2] and dies of that signal (as an untouched process would)."""

import os
import signal
import sys
import time

for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_DFL)


def record(signum, _frame):
    with open(sys.argv[2], "w") as fh:
        fh.write(signal.Signals(signum).name)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, record)
with open(sys.argv[1] + ".tmp", "w") as fh:
    fh.write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
print("running", flush=True)
time.sleep(120)
