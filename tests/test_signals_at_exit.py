"""A Ctrl-C or SIGTERM after a verb has returned its exit code, while Python still joins the worker
threads that stop the last trials, ends the process at once with that code: no traceback, not
killed by the signal.  (A reduce interrupted twice, 50 ms apart, used to exit -2: the second
signal landed while Python finalized, after the verb had returned 130.)"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: ``sleuth run`` through ``main()`` as the console script calls it, beside a worker thread that
#: is still busy when the verb returns (as one stopping a trial is); dispositions start at Python's
#: defaults whatever this suite inherited
_LATE = (
    "import signal, sys, threading, time\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
    "from sleuth.cli import main\n"
    "threading.Thread(target=time.sleep, args=(60,)).start()\n"
    "sys.argv = ['sleuth', 'run', '--trials', '1', '--output', sys.argv[1], '--', *sys.argv[2:]]\n"
    "code = main()\n"
    "print('returned', code, flush=True)\n"
    "raise SystemExit(code)\n"
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize(("workload", "code"), [(["true"], 0), (["false"], 1)])
def test_a_signal_after_the_verb_returned_leaves_with_its_code(
    tmp_path: Path, sig: signal.Signals, workload: list[str], code: int
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _LATE, str(tmp_path / "runs"), *workload],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as p:
        assert p.stdout is not None and p.stderr is not None
        try:
            lines = iter(p.stdout.readline, "")
            line = next((x for x in lines if x.startswith("returned")), "")
            assert line.strip() == f"returned {code}", p.stderr.read()
            time.sleep(0.2)  # Python is joining the busy thread now
            p.send_signal(sig)
            rc = p.wait(timeout=30)  # without the fix: the thread's 60 s, or a traceback
        finally:
            p.kill()
            p.wait()
        err = p.stderr.read()
    assert rc == code, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
