"""The evaluation and the load test run in CI (figures printed; only correctness is asserted, never time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"


def test_evaluation_corpus_confusion_matrix() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH / "attribution_eval.py"), "--no-throughput", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)["eval"]
    print(
        json.dumps(
            {
                k: res[k]
                for k in ("cases", "confusion", "action_accuracy", "root_accuracy", "false_stop_rate")
            },
            indent=1,
        )
    )
    assert res["cases"] >= 60
    assert sum(sum(row.values()) for row in res["confusion"].values()) == res["cases"]
    assert res["false_stops"] == 0, res["mismatches"]  # the costly error
    assert res["action_accuracy"] >= 0.9 and res["root_accuracy"] >= 0.9, res["mismatches"]


def test_throughput_bench_runs_and_agrees_with_grep() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH / "attribution_eval.py"), "--size-mb", "8", "--repeats", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    tp = json.loads(out.stdout)["throughput"]
    assert tp["matching_lines"]["grep"] == tp["matching_lines"]["sleuth"] > 0
    assert set(tp["runs"]) == {"grep -E -c", "sleuth scan (in-process)", "sleuth attribute (CLI)"}


@pytest.mark.slow
def test_serve_load_with_kill_9() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH / "serve_load.py"), "--json"], capture_output=True, text=True, timeout=600
    )
    assert out.stdout.strip(), out.stderr[-3000:]  # the bench crashed before its figures
    res = json.loads(out.stdout)
    print(json.dumps({k: res[k] for k in ("wall_s", "accepted", "lost", "five_xx", "latency_ms")}, indent=1))
    assert out.returncode == 0, out.stderr[-2000:]
    assert res["lost"] == 0 and res["five_xx"] == 0 and res["gave_up"] == 0 and not res["unexpected"]
    assert res["killed_after"] and res["accepted"] > 1000
