"""Performance mode: the pure two-sample classifier (seeded Gaussians) and the CLI end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth.bisect.perf import Direction, PerfSpec, Verdict, check_ends, classify, welch_p

SPEC = PerfSpec("step", Direction.LOWER, threshold=5.0)


def sequential(
    spec: PerfSpec, rng: np.random.Generator, ends: tuple[list[float], list[float]], mu: float, sd: float
) -> tuple[Verdict, int]:
    """Sample a candidate until the classifier decides; the verdict and the samples used."""
    xs: list[float] = []
    while True:
        xs.append(float(rng.normal(mu, sd)))
        v = classify(spec, *ends, xs)
        if v is not Verdict.AMBIGUOUS:
            return v, len(xs)


@pytest.mark.parametrize(("mu", "want_bad"), [(100.0, False), (120.0, True)])
def test_sequential_classifier_is_accurate_and_stops_early(mu: float, want_bad: bool) -> None:
    rng = np.random.default_rng(7)
    right, used = 0, []
    for _ in range(300):
        good = list(rng.normal(100, 4, SPEC.end_samples))
        bad = list(rng.normal(120, 4, SPEC.end_samples))
        v, n = sequential(SPEC, rng, (good, bad), mu, 4)
        right += v.is_bad == want_bad
        used.append(n)
    assert right >= 0.97 * 300
    assert SPEC.min_samples <= np.mean(used) < 5  # far fewer runs than the cap of 10


def test_ambiguous_below_min_samples_and_forced_at_the_cap() -> None:
    good, bad = [100.0, 101, 99, 100, 100], [120.0, 119, 121, 120, 120]
    assert classify(SPEC, good, bad, [120.0]) is Verdict.AMBIGUOUS
    assert classify(SPEC, good, bad, [120.0, 120.5, 119.5]) is Verdict.BAD
    assert classify(SPEC, good, bad, [100.0, 100.5, 99.5]) is Verdict.GOOD
    wild = [80.0, 150.0] * 5  # a bimodal mess centred nearer the bad end: forced at max_samples
    assert classify(SPEC, good, bad, wild) is Verdict.FORCED_BAD


def test_higher_is_better_flips_the_sides() -> None:
    spec = PerfSpec("throughput", Direction.HIGHER, threshold=5.0)
    good, bad = [200.0, 201, 199, 200, 202], [150.0, 151, 149, 150, 152]
    assert check_ends(spec, good, bad) is None
    assert classify(spec, good, bad, [151.0, 150.0, 149.0]) is Verdict.BAD
    assert classify(spec, good, bad, [200.0, 199.0, 201.0]) is Verdict.GOOD
    assert check_ends(SPEC, good, bad) is not None  # as "lower is better" it got faster


def test_check_ends_needs_a_regression_beyond_the_threshold() -> None:
    good, bad = [100.0, 101, 99, 100, 100], [103.0, 104, 102, 103, 103]
    assert "threshold" in (check_ends(SPEC, good, bad) or "")
    assert check_ends(PerfSpec("step", threshold=1.0), good, bad) is None
    noisy = [60.0, 160.0, 90.0, 150.0, 120.0]
    assert "noisy" in (check_ends(SPEC, good, noisy) or "")


def test_a_small_change_within_the_threshold_is_good() -> None:
    rng = np.random.default_rng(3)
    good, bad = list(rng.normal(100, 1, 5)), list(rng.normal(130, 1, 5))
    assert not classify(SPEC, good, bad, list(rng.normal(103, 1, 5))).is_bad


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(50, 150), min_size=5, max_size=5), st.floats(1.1, 2.0))
def test_the_good_ends_own_samples_are_never_bad(good: list[float], factor: float) -> None:
    bad = [x * factor + 50 for x in good]
    assert not classify(SPEC, good, bad, good).is_bad
    assert 0.0 <= welch_p(good, bad) <= 1.0


WORKLOAD = """import os, random, sys
n = int(os.environ["SLEUTH_CANDIDATE"][1:])
rng = random.Random(hash((n, os.environ["SLEUTH_TRIAL_ID"], open(sys.argv[1]).read())))
with open(sys.argv[1], "a") as f:
    f.write("x")
base = 130.0 if n >= 17 else 100.0
print(f"step_time={rng.gauss(base, 3.0):.3f} ms")
"""


def test_cli_finds_the_step_time_jump(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("\n".join(f"v{i}" for i in range(1, 31)) + "\n")
    (tmp_path / "w.py").write_text(WORKLOAD)
    (tmp_path / "count").write_text("")
    args = ["bisect", "list", "list.txt", "--metric", r"step=step_time=([0-9.]+)", "--metric", "step",
            "--direction", "lower", "--threshold", "10", "--json", "--output", "o", "--",
            sys.executable, "w.py", str(tmp_path / "count")]  # fmt: skip
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache"), "PYTHONHASHSEED": "0"}
    res = subprocess.run([sys.executable, "-m", "sleuth", *args], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert (d["first_bad"]["label"], d["last_good"]["label"]) == ("v17", "v16")
    perf = d["perf"]
    assert perf["metric"] == "step" and perf["good_mean"] < 110 and perf["bad_mean"] > 120
    assert perf["verdicts"]["v17"] in ("bad", "forced_bad")
    assert all(n >= 3 for n in perf["samples"].values())
    runs = len((tmp_path / "count").read_text())
    again = subprocess.run([sys.executable, "-m", "sleuth", "bisect", "resume", str(tmp_path / d["run_dir"]),
                            "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    r = json.loads(again.stdout)
    assert r["first_bad"]["label"] == "v17" and r["tests"] == d["tests"]  # replayed, none re-run
    assert r["perf"]["samples"] == perf["samples"]
    assert len((tmp_path / "count").read_text()) == runs


def test_cli_perf_ends_without_a_regression_are_not_found(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("a\nb\nc\n")
    args = ["bisect", "list", "list.txt", "--metric", "t=t=([0-9]+)", "--metric", "t", "--json", "--output", "o",
            "--", "echo", "t=5"]  # fmt: skip
    res = subprocess.run([sys.executable, "-m", "sleuth", *args], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "SLEUTH_CACHE": str(tmp_path / "c")})  # fmt: skip
    assert res.returncode == 3
    d = json.loads(res.stdout)
    assert d["status"] == "not_found" and "threshold" in d["note"]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--direction", "lower"], "--direction"),
        (["--metric", "a", "--metric", "b"], "--metric"),
        (["--metric", "t", "--threshold", "-3"], "--threshold"),
    ],
)
def test_perf_flag_errors(tmp_path: Path, args: list[str], flag: str) -> None:
    (tmp_path / "l").write_text("a\nb\n")
    res = subprocess.run([sys.executable, "-m", "sleuth", "bisect", "list", "l", *args, "--", "true"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 2 and flag in res.stderr and "Traceback" not in res.stderr
