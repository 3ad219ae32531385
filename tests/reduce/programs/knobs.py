"""A cheap deterministic workload for reduce tests: fails when every condition holds.

argv: --steps N FILE [flags...]; env: SIZE.  Fails (exit 1, "boom at step S") when steps >= 37,
SIZE >= 20, FILE holds the lines "alpha" and "omega", NEED=1 is set.  With ``--echo`` it prints its
argv and the HF_TOKEN variable (the secrets test: a workload that leaks into its own output).
"""

import os
import sys

args = sys.argv[1:]
steps = int(args[args.index("--steps") + 1])
path = args[args.index("--steps") + 2]
if "--echo" in args:
    print("argv:", " ".join(sys.argv), "token:", os.environ.get("HF_TOKEN", ""))
size = int(os.environ.get("SIZE", "0"))
with open(path, encoding="utf-8") as fh:
    lines = {ln.strip() for ln in fh}
for step in range(steps):
    if step >= 36 and size >= 20 and {"alpha", "omega"} <= lines and os.environ.get("NEED") == "1":
        print(f"boom at step {step}")
        raise SystemExit(1)
print("ok")
