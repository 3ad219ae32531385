"""A trial that shrugs SIGTERM off (the take-up interrupt tests): a resume's SIGTERM never ends it.

``shrugs_term.py DIR``: once its SIGTERM handler is set it writes ``DIR/pid`` and ``DIR/ready``,
then runs until SIGKILLed; each SIGTERM writes ``DIR/term`` and is otherwise ignored.  Started when
``DIR/ready`` exists already (the run is resumed once more, after the take-up), it passes at once.
"""

import os
import signal
import sys
import time
from pathlib import Path

out = Path(sys.argv[1])
if (out / "ready").exists():
    sys.exit(0)
signal.signal(signal.SIGTERM, lambda _sig, _frame: (out / "term").write_text("SIGTERM\n"))
(out / "pid").write_text(f"{os.getpid()}\n")
(out / "ready").write_text("ready\n")
while True:
    time.sleep(0.1)
