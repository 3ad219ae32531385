"""sleuth started by a parent that left its own signal state behind (``sleuth.cli._undo_inherited_signals``).

SIGCHLD ignored (some launchers and daemons run their children so): the kernel reaped each trial at
once, ``waitpid`` read its exit as 0, and every failing trial was judged PASS.  SIGINT and SIGTERM
blocked (a parent that blocks them in its threads and spawns from one): neither Ctrl-C nor SIGTERM
reached sleuth, and each trial inherited the mask, so a timeout always waited the whole grace.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.signals import sleuth_proc

#: a workload that prints the signals blocked in its mask
_MASK = "import signal, sys, time; print(sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])), flush=True)"


def _results(out: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("run/*/*/trials/*/result.json"))]


def test_a_failing_trial_fails_when_sleuth_starts_with_sigchld_ignored(
    tmp_path: Path, sleuth_env: dict[str, str]
) -> None:
    proc = sleuth_proc(["run", "--trials", "2", "--", sys.executable, "-c", f"{_MASK}; sys.exit(3)"], sleuth_env,
                       tmp_path, ignore=["SIGCHLD"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err  # was 0: both trials PASS with rc 0
    assert [r["rc"] for r in _results(Path(sleuth_env["SLEUTH_OUTPUT"]))] == [3, 3]


def test_sleuth_started_with_the_stopping_signals_blocked_still_stops_on_sigterm(
    tmp_path: Path, sleuth_env: dict[str, str]
) -> None:
    stamp = tmp_path / "started"
    workload = f"{_MASK}; open({str(stamp)!r}, 'w').close(); time.sleep(60)"
    proc = sleuth_proc(["run", "--trials", "1", "--kill-grace", "30", "--", sys.executable, "-c", workload],
                       sleuth_env, tmp_path, block=["SIGINT", "SIGTERM", "SIGHUP", "SIGCHLD"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not stamp.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stamp.exists()
        proc.terminate()
        out, err = proc.communicate(timeout=60)  # was: SIGTERM held pending, sleuth ran to the trial's end
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, out + err
    trial_out = next(Path(sleuth_env["SLEUTH_OUTPUT"]).glob("run/*/*/trials/0001/stdout")).read_text()
    assert trial_out == "[]\n"  # the trial's mask is its own, not the parent's
