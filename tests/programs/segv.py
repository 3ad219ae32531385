"""Die of SIGSEGV after printing a line."""

import ctypes
import sys

print("about to crash", flush=True)
print("Segmentation fault in kernel at 0xdeadbeef", file=sys.stderr, flush=True)
ctypes.string_at(0)
