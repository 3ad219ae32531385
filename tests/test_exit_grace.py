"""sleuth ending while a child runs (an exception, an error exit of a verb) stops it with the verb's kill
grace, as a Ctrl-C does: SIGTERM, the grace, SIGKILL.  The exit hook gave every child a fixed second,
so a trap that saves a checkpoint for longer was cut short.

The child (``tests/programs/saves_on_term.py``) writes ``ready`` once its SIGTERM handler is set,
``term`` on SIGTERM and ``saved`` after a save of 2 s; every assertion is on those files.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import pid_alive

SAVES = Path(__file__).parent / "programs" / "saves_on_term.py"

#: a verb's library half that starts a trial with a grace of 60 s, then ends on an error while it runs
_EXIT_WHILE_IT_RUNS = (
    "import os, sys, time\n"
    "from pathlib import Path\n"
    "from sleuth.model import TrialSpec\n"
    "from sleuth.runner import start_trial\n"
    "d = Path(sys.argv[1])\n"
    "spec = TrialSpec(argv=(sys.executable, sys.argv[2], str(d), '2'), env=dict(os.environ), kill_grace_s=60)\n"
    "print(start_trial(spec, d / 'trial').pid, flush=True)\n"
    "deadline = time.monotonic() + 60\n"  # a hang guard, not a timing claim
    "while not (d / 'ready').exists() and time.monotonic() < deadline:\n"
    "    time.sleep(0.02)\n"
    "raise SystemExit(3)\n"
)


def test_the_exit_hook_gives_a_running_trial_its_kill_grace(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-c", _EXIT_WHILE_IT_RUNS, str(tmp_path), str(SAVES)],
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    pid = int(res.stdout.split()[0])
    try:
        assert res.returncode == 3, res.stderr
        assert (tmp_path / "ready").exists() and (tmp_path / "term").exists(), res.stderr
        assert (tmp_path / "saved").exists(), "the exit hook killed the trial before its save ended"
        assert not pid_alive(pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
