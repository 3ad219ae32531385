"""Exit with the code given as argv[1]; print argv[2:] to stdout and 'stderr line' to stderr."""

import sys

print(" ".join(sys.argv[2:]))
print("stderr line", file=sys.stderr)
sys.exit(int(sys.argv[1]))
