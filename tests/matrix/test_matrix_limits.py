"""Absurd counts: a trial count above ``sleuth.model.MAX_TRIALS`` is refused before any file exists,
and a big plan costs no memory beyond the plan itself (trials are drawn as slots free)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from sleuth.matrix.plan import iter_trial_order
from sleuth.matrix.recipe import parse_recipe
from sleuth.matrix.resolve import resolve
from sleuth.model import MAX_TRIALS
from sleuth.registry import load_registry
from tests.matrix.conftest import default_signals, recipe_data


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_plan_of_millions_of_trials_is_drawn_lazily() -> None:
    data = recipe_data(trials=MAX_TRIALS)
    plan = resolve(
        parse_recipe(data, "r"), load_registry(entry_points=False), "r", base_dir=Path("/"), environ={}
    )
    assert plan.trials_total == 4 * MAX_TRIALS
    tracemalloc.start()
    try:
        order = iter_trial_order(plan.cells, plan.seed)
        first = [next(order) for _ in range(400)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # bytes: a list of four million trials would take hundreds of MB
    assert sorted(first[:4]) == sorted((c.name, 0) for c in plan.cells)


def _rss_after_trials(sleuth_env: dict[str, str], tmp_path: Path, trials: int) -> int:
    argv = [sys.executable, "-m", "sleuth", "matrix", "--mitigation-axis", "nccl_p2p_off,tf32_off",
            "--trials", str(trials), "--seed", "1", "--output", str(tmp_path / f"runs-{trials}"), "--", "true"]  # fmt: skip
    proc = subprocess.Popen(default_signals(argv), env=sleuth_env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            journals = list((tmp_path / f"runs-{trials}").glob("*/*/*/journal.jsonl"))
            if journals and journals[0].read_text().count('"event": "trial"') >= 6:
                break
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.05)
        rss = _rss_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    return rss


def test_memory_does_not_grow_with_planned_trials(sleuth_env: dict[str, str], tmp_path: Path) -> None:
    small = _rss_after_trials(sleuth_env, tmp_path, 10)
    huge = _rss_after_trials(sleuth_env, tmp_path, MAX_TRIALS)
    # three cells of a million trials each: listed, the plan alone would hold ~300 MB
    assert huge - small < 30 * 1024, (small, huge)
