"""A trial that saves a checkpoint on SIGTERM (the ``--kill-grace`` tests of matrix and reduce).

``saves_on_term.py DIR SAVE_S``: once its SIGTERM handler is set it writes ``DIR/ready``, then runs
until stopped.  On SIGTERM it writes ``DIR/term``, "saves" for SAVE_S seconds, then writes
``DIR/saved`` and exits 0: a SIGKILL during the save leaves no ``saved``.
"""

import signal
import sys
import time
from pathlib import Path

out, save_s = Path(sys.argv[1]), float(sys.argv[2])


def _on_term(_sig: int, _frame: object) -> None:
    (out / "term").write_text("SIGTERM\n")
    time.sleep(save_s)
    (out / "saved").write_text("saved\n")
    sys.exit(0)


signal.signal(signal.SIGTERM, _on_term)
(out / "ready").write_text("ready\n")
while True:
    time.sleep(0.1)
