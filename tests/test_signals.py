"""SIGINT/SIGTERM at random moments against a real ``python -m sleuth run``: it ends within
``kill_grace + 2 s`` with the partial summary written and nothing left running (issue 8 row 2:
it used to hang at exit, a worker blocked on a future's lock that the interrupted main thread
held).  50 seeded repetitions over three shapes of run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests import chaos

GRACE = 1.0
REPEATS = len(chaos.seeds(50))
SEED = 20240608
#: (extra args, workload): many instant trials one at a time, four at a time, long trials to kill
SHAPES = [
    (["--trials", "100000"], ["sleep", "0"]),
    (["--trials", "5000", "--jobs", "4"], ["sleep", "0"]),
    (["--trials", "40", "--jobs", "3"], ["sleep", "30"]),
]
# the child starts with default dispositions whatever this suite inherited (SIGINT may be ignored):
# exec keeps SIG_DFL, and Python then installs its own SIGINT handler
_DEFAULTS = (
    "import os, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'sleuth', *sys.argv[1:]])\n"
)


def _one(i: int, rng: random.Random, root: Path) -> str | None:
    """Run, signal, check; returns what went wrong (None when all is well)."""
    args, workload = SHAPES[i % len(SHAPES)]
    sig = rng.choice([signal.SIGINT, signal.SIGTERM])
    delay = rng.uniform(0.0, 1.5)
    out = root / f"r{i}"
    env = {**os.environ, "SLEUTH_OUTPUT": str(out), "COLUMNS": "120"}
    argv = [
        sys.executable,
        "-c",
        _DEFAULTS,
        "run",
        "--json",
        "--kill-grace",
        str(GRACE),
        *args,
        "--",
        *workload,
    ]
    with subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    ) as proc:
        try:
            # "any moment" once the run runs: its first trial directory exists (before that, a
            # signal finds the CLI still starting; the run dir is not there yet)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(out.glob("run/*/*/trials/*")):
                if proc.poll() is not None:
                    return (
                        f"#{i}: ended before the signal (rc {proc.returncode}): {proc.stderr.read()[-300:]!r}"
                    )
                time.sleep(0.01)
            time.sleep(delay)
            t0 = time.monotonic()
            proc.send_signal(sig)
            try:
                _stdout, stderr = proc.communicate(timeout=GRACE + 2.0)
            except subprocess.TimeoutExpired:
                return f"#{i}: {sig.name} after {delay:.2f}s: still running {GRACE + 2.0}s later"
            took = time.monotonic() - t0
            chaos.record("signal", seed=i, signal=sig.name, seconds=round(took, 3), limit=GRACE + 2.0)
            (run_dir,) = out.glob("run/*/*")
            summary_path = run_dir / "summary.json"
            if not summary_path.is_file():
                return f"#{i}: {sig.name} after {delay:.2f}s: exit {proc.returncode} in {took:.2f}s, no summary.json"
            summary = json.loads(summary_path.read_text())["summary"]
            if proc.returncode != 130 or not summary.get("interrupted"):
                return f"#{i}: exit {proc.returncode}, summary interrupted={summary.get('interrupted')}: {stderr[-300:]!r}"
            left = chaos.marked(run_dir, under=True)
            if left:
                return f"#{i}: {len(left)} process(es) of its trials still running: {left}"
            return None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_a_signal_at_a_random_moment_ends_sleuth_in_time_with_the_partial_summary(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    seeds = [rng.random() for _ in range(REPEATS)]
    # three at a time: the suite's time stays reasonable; each check is on its own process
    with ThreadPoolExecutor(3) as pool:
        problems = list(pool.map(lambda i: _one(i, random.Random(seeds[i]), tmp_path), range(REPEATS)))
    bad = [p for p in problems if p is not None]
    assert not bad, f"{len(bad)} of {REPEATS} runs went wrong:\n" + "\n".join(bad)
