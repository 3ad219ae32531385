"""Adversarial figures for the closing note: kills survived, resumes, signals, bad inputs, survivors.

Runs the product's own adversarial tests with more seeds than the suite does (``SLEUTH_CHAOS_SEEDS``)
and sums what each reported through ``SLEUTH_CHAOS_LOG`` (see ``tests/chaos.py``):

* kill -9 at random moments and resume up to three times, for ``sleuth run``, ``bisect git``,
  ``bisect list`` and ``matrix``: trials journaled, and every journal checked against the trial
  directories (a test fails on any event lost, invented, duplicated or disagreeing with its files);
* SIGINT/SIGTERM at random moments against ``sleuth run``: the slowest exit against its limit;
* every escape shape of a trial (setsid, double fork, daemons, ...): survivors after the trial;
* the bad-input corpora of every verb: how many malformed inputs were tried (each one: exit 2, one
  line naming the flag/file/key, no traceback, nothing created or changed).

Usage: ``python bench/chaos.py [--seeds N]`` (default 10; the suite runs 1-6 per test).  Prints a
table; exits 1 when a test failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KILL_TESTS = [
    "tests/test_run_resume.py::test_kill_9_at_random_moments_and_resume_up_to_three_times",
    "tests/bisect/test_bisect_resume.py::test_kill_9_at_random_moments_and_resume_up_to_three_times",
    "tests/matrix/test_matrix_resume.py::test_kill_9_and_resume_three_times_journals_each_trial_once",
    "tests/test_survivors.py::test_sleuth_run_leaves_no_survivor_of_any_shape",
]
CORPORA = [
    "tests/corpus",
    "tests/reduce/test_bad_spec.py",
    "tests/attribution/test_badinput.py",
    "tests/gate/test_badinput.py",
]


def _pytest(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def main() -> int:
    """Run the tests, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10, help="seeds per kill/resume test (signals: 5x)")
    ap.add_argument("--jobs", default="2", help="pytest-xdist workers")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "chaos.jsonl"
        env = {**os.environ, "SLEUTH_CHAOS_LOG": str(log), "SLEUTH_CHAOS_SEEDS": str(opts.seeds)}
        t0 = time.monotonic()
        kills = _pytest(["-n", opts.jobs, *KILL_TESTS], env)
        took = time.monotonic() - t0
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        # the signal test draws 50 moments by default: 5x the seeds here
        env_sig = {**env, "SLEUTH_CHAOS_SEEDS": str(5 * opts.seeds)}
        log.unlink(missing_ok=True)
        sig = _pytest(["-n", opts.jobs, "tests/test_signals.py"], env_sig)
        sig_rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        corpus = _pytest(["-n", opts.jobs, *CORPORA], env)
    by: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    keys = ("kills", "resumes", "trials", "journaled", "lost", "invented", "rerun")
    for r in rows:
        if r["test"] in ("signal", "survivors"):
            continue
        for key in keys:
            if key in r:  # a figure only where the test checks it
                by[r["test"]][key] += int(r[key])
        by[r["test"]]["runs"] += 1
    print(f"kill -9 / resume (seeds {opts.seeds}; every journal checked against its trial directories)")
    print(
        f"{'verb':<14}{'runs':>6}{'kills':>7}{'resumes':>9}{'journaled':>11}{'lost':>6}{'invented':>10}{'rerun':>7}"
    )
    widths = dict(zip(keys, (7, 9, 0, 11, 6, 10, 7), strict=True))
    for verb, c in sorted(by.items()):
        cols = "".join(f"{c.get(k, '-'):>{widths[k]}}" for k in keys if widths[k])
        print(f"{verb:<14}{c['runs']:>6}{cols}")
    if sig_rows:
        slowest = max(r["seconds"] for r in sig_rows)
        limit = sig_rows[0]["limit"]
        kinds = sorted({r["signal"] for r in sig_rows})
        print(f"signals: {len(sig_rows)} ({', '.join(kinds)}) at random moments; slowest exit {slowest:.2f}s "
              f"(limit kill_grace + 2 = {limit:.1f}s)")  # fmt: skip
    surv = [r for r in rows if r["test"] == "survivors"]
    if surv:
        print(f"survivors: {sum(r['survivors'] for r in surv)} of {sum(r['escapees'] for r in surv)} escaped "
              f"processes ({surv[0]['shapes']} shapes, normal exit and timeout)")  # fmt: skip
    m = re.search(r"(\d+) passed", corpus.stdout)
    print(f"bad inputs: {m.group(1) if m else '?'} malformed inputs tried across run, bisect, matrix, reduce, "
          f"attribute and gate")  # fmt: skip
    print(f"({took:.0f}s for the kill/resume tests)")
    failed = [
        (name, p) for name, p in (("kills", kills), ("signals", sig), ("corpus", corpus)) if p.returncode
    ]
    for name, p in failed:
        print(f"FAILED: {name}\n{p.stdout[-3000:]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
