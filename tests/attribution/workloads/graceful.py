"""A workload that leaves evidence of how it was stopped (``sleuth supervise --kill-grace``).

``graceful.py DIR ON_INT ON_TERM [--helper ON_INT ON_TERM] [--exit N]``

Each process (``leader``, and with ``--helper`` a ``helper`` child in the leader's process group)
writes its pid to ``DIR/NAME.pid`` once its handlers are set (the leader after its helper's), and
reacts to SIGINT and SIGTERM as told:

* ``die``: the default action (it dies of the signal);
* ``ignore``: ignored, no evidence;
* ``record``: the signal's name appended to ``DIR/NAME.signals``, then it runs on;
* ``save:S``: recorded, then S seconds of "saving", then ``DIR/NAME.saved`` and exit 7.

With ``--exit N`` the leader exits with N once its helper runs (the helper stays in the group);
otherwise it runs until stopped.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _react(d: Path, name: str, how: str, signum: int) -> None:
    if how == "die":
        signal.signal(signum, signal.SIG_DFL)
    elif how == "ignore":
        signal.signal(signum, signal.SIG_IGN)
    else:

        def handler(got: int, _frame: object) -> None:
            with open(d / f"{name}.signals", "a") as fh:
                fh.write(signal.Signals(got).name + "\n")
            if how.startswith("save:"):
                time.sleep(float(how.split(":", 1)[1]))
                (d / f"{name}.saved").write_text("saved\n")
                os._exit(7)

        signal.signal(signum, handler)


def _ready(d: Path, name: str) -> None:
    tmp = d / f"{name}.pid.tmp"
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, d / f"{name}.pid")


def main(argv: list[str]) -> int:
    d, on_int, on_term, rest = Path(argv[0]), argv[1], argv[2], argv[3:]
    name = "leader"
    if rest[:1] == ["--as-helper"]:
        name, rest = "helper", rest[1:]
    _react(d, name, on_int, signal.SIGINT)
    _react(d, name, on_term, signal.SIGTERM)
    exit_code = None
    if rest[:1] == ["--helper"]:
        subprocess.Popen([sys.executable, __file__, str(d), rest[1], rest[2], "--as-helper"])
        deadline = time.monotonic() + 60  # a hang guard, not a timing claim
        while not (d / "helper.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        rest = rest[3:]
    if rest[:1] == ["--exit"]:
        exit_code = int(rest[1])
    _ready(d, name)
    if exit_code is not None:
        return exit_code
    while True:
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
