"""Start a grandchild that ignores SIGTERM, write both pids to argv[1], then hang (ignoring SIGTERM
too when argv[2] == 'stubborn')."""

import os
import signal
import subprocess
import sys
import time

pidfile = sys.argv[1]
stubborn = len(sys.argv) > 2 and sys.argv[2] == "stubborn"
child = subprocess.Popen(
    [
        sys.executable,
        "-c",
        "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
    ]
)
with open(pidfile + ".tmp", "w") as fh:
    fh.write(f"{os.getpid()} {child.pid}\n")
os.replace(pidfile + ".tmp", pidfile)
if stubborn:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("hanging", flush=True)
time.sleep(600)
