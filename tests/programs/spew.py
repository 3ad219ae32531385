"""Print argv[1] megabytes of numbered lines to stdout, then 'metric=42.5' and 'FATAL: done spewing'."""

import sys

mb = int(sys.argv[1])
line = ("x" * 99) + "\n"
block = line * 10_486  # ~1 MiB
out = sys.stdout
for i in range(mb):
    out.write(block)
out.write("metric=42.5\n")
out.write("FATAL: done spewing\n")
out.flush()
