"""A workload that leaves a helper out of its process group (a data server, ``setsid cmd &``), then
fails; from cycle ``--until`` on it succeeds (still leaving one).

``escaper.py DIR [--shape setsid|daemon] [--until N] [--helper-term record|die] [--unmarked]
[--hang]``

At its start, cycle C (``SLEUTH_CYCLE``) writes ``DIR/seen-C``: one line ``K alive|zombie|gone`` for
each helper an earlier cycle K left (``DIR/helper-K.pid``), as /proc says then.  Then it starts its
helper: ``setsid``, a child that calls ``os.setsid()`` (new session, new group); ``daemon``, a
double fork (the middle process exits, the helper is an orphan at once).  The helper records each
SIGTERM it gets in ``DIR/helper-C.signals`` and runs on (``--helper-term record``), or dies of
it (``die``, the default), writes ``DIR/helper-C.pid`` and sleeps.  With
``--unmarked`` the helper runs without ``SLEUTH_TRIAL_DIR`` in its environment.  The leader then
writes ``DIR/leader-C.pid`` and exits 1 (0 from ``--until`` on), or with ``--hang`` runs until
stopped.
"""

import argparse
import os
import signal
import sys
import time
from pathlib import Path


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return "zombie" if fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X") else "alive"
    except (OSError, IndexError):
        return "gone"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def helper(d: Path, cycle: int, term: str) -> None:
    if term == "record":

        def record(signum: int, _frame: object) -> None:
            with open(d / f"helper-{cycle}.signals", "a") as fh:
                fh.write(signal.Signals(signum).name + "\n")

        signal.signal(signal.SIGTERM, record)
    else:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _write(d / f"helper-{cycle}.pid", str(os.getpid()))
    while True:
        time.sleep(1)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("dir", type=Path)
    p.add_argument("--shape", choices=("setsid", "daemon"), default="setsid")
    p.add_argument("--until", type=int, default=10**9)
    p.add_argument("--helper-term", choices=("record", "die"), default="die")
    p.add_argument("--unmarked", action="store_true")
    p.add_argument("--hang", action="store_true")
    p.add_argument("--as-helper", type=int)
    a = p.parse_args()
    d = a.dir
    if a.as_helper is not None:
        helper(d, a.as_helper, a.helper_term)
        return 0
    cycle = int(os.environ["SLEUTH_CYCLE"])
    seen = [f"{k} {_state(int((d / f'helper-{k}.pid').read_text()))}\n" for k in range(cycle)]
    _write(d / f"seen-{cycle}", "".join(seen))
    env = dict(os.environ)
    if a.unmarked:
        del env["SLEUTH_TRIAL_DIR"]
    argv = [sys.executable, __file__, str(d), "--helper-term", a.helper_term, "--as-helper", str(cycle)]
    if os.fork() == 0:
        try:
            os.setsid()
            if a.shape == "daemon" and os.fork() != 0:
                os._exit(0)
            os.execve(sys.executable, argv, env)
        finally:
            os._exit(1)
    if a.shape == "daemon":
        os.wait()  # the middle process: the helper is re-parented at once
    deadline = time.monotonic() + 60  # a hang guard, not a timing claim
    while not (d / f"helper-{cycle}.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    _write(d / f"leader-{cycle}.pid", str(os.getpid()))
    print(f"cycle {cycle} left its helper", flush=True)
    if a.hang:
        while True:
            time.sleep(1)
    return 0 if cycle >= a.until else 1


if __name__ == "__main__":
    sys.exit(main())
