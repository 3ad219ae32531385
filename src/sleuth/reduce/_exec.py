"""Run the argv held in ``$SLEUTH_EXEC_ARGV`` (JSON) in place of this process.

The reduce driver starts a candidate whose command line holds a secret through this module, so the
argv the engine journals and writes to ``result.json`` is the scrubbed one while the workload gets
the real one.  Stdlib only; the process is replaced (``execvp``), not spawned.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    """Replace this process by the argv of ``$SLEUTH_EXEC_ARGV``."""
    argv = json.loads(os.environ.pop("SLEUTH_EXEC_ARGV"))
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"sleuth: cannot run {argv[0]}: {exc.strerror}\n")
        sys.exit(127)


if __name__ == "__main__":
    main()
