"""Leave a process behind that escapes the trial's process group, then exit 0 or hang.

usage: escape.py SHAPE PIDFILE [exit|hang]
       escape.py by-trial-id PIDFILE [exit|hang]   (trial N of ``sleuth run`` takes the N-th shape
       and writes PIDFILE.N)

Every process left behind appends its own pid to PIDFILE (one a line) before this program goes on,
so a test knows exactly what must not survive.  Shapes: see SHAPES.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

SHAPE, PIDFILE = sys.argv[1], sys.argv[2]
if SHAPE == "by-trial-id":
    _n = int(os.environ["SLEUTH_TRIAL_ID"])
    SHAPE, PIDFILE = "", f"{PIDFILE}.{_n}"
THEN = sys.argv[3] if len(sys.argv) > 3 else "exit"
# a shell line that records the pid of the shell, then becomes the sleeper (exec keeps the pid)
RECORD_THEN_SLEEP = f'echo $$ >> "{PIDFILE}"; exec sleep 1000'
PY_RECORD = f"import os; open({PIDFILE!r}, 'a').write(f'{{os.getpid()}}\\n')"


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def bash_setsid_background() -> int:
    """``setsid sleep 1000 &`` from a shell that exits at once."""
    subprocess.run(["bash", "-c", f"setsid sh -c '{RECORD_THEN_SLEEP}' & exit 0"], check=True)
    return 1


def setsid_fork() -> int:
    """``setsid -f``: util-linux forks, the child makes a new session."""
    subprocess.run(["setsid", "-f", "sh", "-c", RECORD_THEN_SLEEP], check=True)
    return 1


def double_fork() -> int:
    """fork, setsid, fork again; the middle process exits at once."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sh", ["sh", "-c", RECORD_THEN_SLEEP])
        os._exit(0)
    os.wait()
    return 1


def daemon() -> int:
    """A classic daemon: double fork, new session, cwd /, stdio on /dev/null."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.chdir("/")
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            with open(PIDFILE, "a") as fh:
                fh.write(f"{os.getpid()}\n")
            time.sleep(1000)
            os._exit(0)
        os._exit(0)
    os.wait()
    return 1


def nohup() -> int:
    """``nohup CMD &``: same group, SIGHUP ignored, the parent exits."""
    subprocess.Popen(
        ["nohup", "sh", "-c", RECORD_THEN_SLEEP], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return 1


def ignores_term() -> int:
    """A new session whose process ignores SIGTERM."""
    code = (
        f"{PY_RECORD}; import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1000)"
    )
    subprocess.Popen(py(code), start_new_session=True)
    return 1


def session_forks_again() -> int:
    """A grandchild in a new session that forks again (both stay)."""
    code = f"import os, time\nos.fork()\n{PY_RECORD}\ntime.sleep(1000)"
    subprocess.Popen(py(code), start_new_session=True)
    return 2


def new_group() -> int:
    """A new process group in the trial's session (job control), left running."""
    subprocess.Popen(py(f"{PY_RECORD}; import time; time.sleep(1000)"), process_group=0)
    return 1


SHAPES = {
    "bash-setsid-bg": bash_setsid_background,
    "setsid-fork": setsid_fork,
    "double-fork": double_fork,
    "daemon": daemon,
    "nohup": nohup,
    "ignores-term": ignores_term,
    "session-forks-again": session_forks_again,
    "new-group": new_group,
}


def main() -> None:
    shape = SHAPE or list(SHAPES)[(int(os.environ["SLEUTH_TRIAL_ID"]) - 1) % len(SHAPES)]
    expected = SHAPES[shape]()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # every escapee has said who it is
        try:
            with open(PIDFILE) as fh:
                if len(fh.read().split()) >= expected:
                    break
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    print(f"left {expected} behind", flush=True)
    if THEN == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        time.sleep(1000)


if __name__ == "__main__":
    main()
