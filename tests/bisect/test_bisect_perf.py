"""Performance mode: the sequential rank test, the step posterior, its search, and the CLI end to end.

The pure parts are checked with seeded simulations and property tests; the driver with the simulated
backend (``sleuth.bisect.sim.simulate_perf``: the real loop, engine and journal, only the process is
fake); the CLI with real processes whose metric steps by 5% under seeded noise.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth.bisect.candidates import ListSource
from sleuth.bisect.driver import Driver
from sleuth.bisect.perf import Direction, PerfSpec, Verdict, classify
from sleuth.bisect.perfsearch import CONF_CAP, StepSearch, posterior, side_probability
from sleuth.bisect.report import summarize
from sleuth.bisect.report_md import render_markdown
from sleuth.bisect.seqtest import Decision, Sequential, compare, median_ci, shift_ci
from sleuth.bisect.sim import Noise, SimBackend, simulate_perf
from sleuth.bisect.trials import Options
from sleuth.journal import RunDir
from sleuth.model import TrialSpec
from sleuth.oracle import OracleConfig, StandardOracle


@pytest.fixture
def root() -> Iterator[Path]:
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=base) as d:
        yield Path(d)


# --- the sequential rank test --------------------------------------------------------------------


def sequential(rng: np.random.Generator, shift: float, cv: float, threshold: float) -> Decision:
    """Run the looks of :class:`Sequential` on two Gaussian samples whose means differ by ``shift``."""
    seq = Sequential()
    a: list[float] = []
    b: list[float] = []
    for look in seq.looks:
        a += list(100 * (1 + cv * rng.standard_normal(look - len(a))))
        b += list(100 * (1 + shift) * (1 + cv * rng.standard_normal(look - len(b))))
        c = seq.look(a, b, threshold)
        if c.decision is not Decision.MORE:
            return c.decision
    raise AssertionError("the last look always decides")


@pytest.mark.parametrize(("shift", "cv", "want"), [(0.0, 0.03, Decision.SAME), (0.03, 0.03, Decision.REGRESSED),
                                                    (0.03, 0.01, Decision.REGRESSED)])  # fmt: skip
def test_the_sequential_test_keeps_its_error_rates(shift: float, cv: float, want: Decision) -> None:
    # no change called REGRESSED, a change of the threshold called SAME: about 2% each (docs/bisect.md
    # has the rates on 2000 seeds); 3% of 300 leaves room for the binomial spread
    rng = np.random.default_rng(11)
    got = [sequential(rng, shift, cv, 3.0) for _ in range(300)]
    wrong = sum(d not in (want, Decision.UNDECIDED) for d in got)
    assert wrong <= 0.03 * len(got)
    assert got.count(want) >= 0.9 * len(got)


def test_a_look_reports_the_shift_with_its_interval_and_both_p_values() -> None:
    good = [100.0, 101, 99, 100.5, 99.5, 100.2]
    bad = [x * 1.1 for x in good]
    c = compare(good, bad, 3.0)
    assert c.decision is Decision.REGRESSED and 8 < c.shift_pct < 12
    assert c.ci_pct[0] <= c.shift_pct <= c.ci_pct[1]
    assert c.p_worse < 0.005 < c.p_within
    same = compare(good, [x + 0.01 for x in good], 3.0)
    assert same.decision is Decision.SAME and same.p_within < 0.005
    assert compare(good[:3], bad[:3], 3.0).decision is Decision.MORE  # 3 against 3 cannot reach 0.005
    assert "+10" in c.describe() and "6 and 6 runs" in c.describe()


def test_a_significant_but_negligible_change_is_not_a_regression() -> None:
    rng = np.random.default_rng(5)
    good = list(100 + 0.1 * rng.standard_normal(40))
    bad = list(100.5 + 0.1 * rng.standard_normal(40))  # +0.5%, certain, far below half of 5%
    c = compare(good, bad, 5.0)
    assert c.p_worse < 1e-6 and c.decision is Decision.SAME


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1, 1e6), min_size=1, max_size=40))
def test_the_median_interval_holds_the_median(xs: list[float]) -> None:
    med, lo, hi = median_ci(xs)
    assert lo <= med <= hi and min(xs) <= lo and hi <= max(xs)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1, 1e3), min_size=2, max_size=12), st.floats(0.1, 50))
def test_the_shift_estimate_of_a_shifted_copy_is_the_shift(xs: list[float], d: float) -> None:
    hl, lo, hi = shift_ci(xs, [x + d for x in xs])
    assert math.isclose(hl, d, rel_tol=1e-6, abs_tol=1e-6) and lo <= hl <= hi


# --- the posterior over the step -----------------------------------------------------------------


def step_samples(rng: np.random.Generator, tested: dict[int, int], f: int, shift: float, cv: float
                 ) -> dict[int, list[float]]:  # fmt: skip
    return {i: list(100 * (1 + (shift if i >= f else 0)) * (1 + cv * rng.standard_normal(k)))
            for i, k in tested.items()}  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["exp", "affine", "cube"]))
def test_the_posterior_depends_on_ranks_only(seed: int, how: str) -> None:
    rng = np.random.default_rng(seed)
    samples = step_samples(rng, {0: 6, 40: 4, 55: 5, 70: 3, 99: 6}, 50, 0.05, 0.03)
    moves: dict[str, Callable[[float], float]] = {
        "exp": lambda x: math.exp(x / 10),
        "affine": lambda x: 3 * x - 7,
        "cube": lambda x: (x - 100) ** 3,
    }
    f = moves[how]
    moved = {i: [f(x) for x in xs] for i, xs in samples.items()}
    a, b = posterior(samples), posterior(moved)
    assert a.tested == b.tested
    assert np.allclose(a.mass, b.mass)
    assert math.isclose(sum(a.mass), 1.0)


def test_an_outlier_weighs_no_more_than_the_largest_value() -> None:
    rng = np.random.default_rng(3)
    samples = step_samples(rng, {0: 8, 30: 5, 60: 5, 99: 8}, 45, 0.05, 0.02)
    top = max((x, i) for i, xs in samples.items() for x in xs)[1]
    wild = {i: list(xs) for i, xs in samples.items()}
    wild[top][wild[top].index(max(wild[top]))] = 1e12
    assert np.allclose(posterior(samples).mass, posterior(wild).mass)


def test_the_posterior_finds_the_side_of_each_candidate() -> None:
    rng = np.random.default_rng(8)
    post = posterior(step_samples(rng, {0: 10, 20: 8, 21: 8, 99: 10}, 21, 0.1, 0.02))
    assert post.cdf(20) < 0.05 and post.cdf(21) > 0.95  # 20 good, 21 bad
    assert post.tested[post.best() + 1] == 21
    assert 0 < side_probability([100.0, 101, 99], [110.0, 111, 109], [110.0, 109, 111]) < 1
    assert side_probability([100.0, 101, 99, 100], [110.0, 111, 109], [110.0, 109, 111, 110]) > 0.9


def search_once(rng: np.random.Generator, n: int, f: int, shift: float, noise: str, *, k: int = 1,
                skip: tuple[int, ...] = ()) -> tuple[StepSearch, int]:  # fmt: skip
    """A :class:`StepSearch` on seeded values, the ends given 8 runs each; the search and its runs."""

    def draw(i: int) -> float:
        x = rng.lognormal(0, 0.03) if noise == "lognormal" else 1 + 0.03 * rng.standard_normal()
        return 100 * (1 + (shift if i >= f else 0)) * x

    s = StepSearch(n, confidence=0.95)
    s.exclude(skip)
    for i in (0, n - 1):
        for _ in range(8):
            s.observe(i, draw(i))
    runs = 0
    while not s.done and runs < 2000:
        batch = s.propose(k)
        assert 0 < len(batch) <= k
        assert not set(batch) & set(skip)
        for i in batch:
            s.observe(i, draw(i))
            runs += 1
    return s, runs


@pytest.mark.parametrize("noise", ["gauss", "lognormal"])
def test_the_step_search_finds_a_5_percent_step_under_3_percent_noise(noise: str) -> None:
    rng = np.random.default_rng(21)
    hits, runs = 0, []
    for _ in range(60):
        f = int(rng.integers(1, 200))
        s, used = search_once(rng, 200, f, 0.05, noise)
        r = s.result()
        assert r.status == "found" and 0.95 <= r.confidence <= CONF_CAP
        hits += r.first_bad == f
        runs.append(used)
    assert hits >= 56  # 95% (the bench measures it on thousands of seeds)
    assert np.mean(runs) < 100


def test_free_slots_get_useful_runs_and_skipped_candidates_none() -> None:
    rng = np.random.default_rng(4)
    s, _ = search_once(rng, 120, 61, 0.08, "gauss", k=4, skip=tuple(range(55, 61)))
    r = s.result()
    # only skipped candidates separate the last good (54) from the first bad: "one of 55..61"
    assert (
        r.status == "ambiguous"
        and r.last_good == 54
        and r.first_bad == 61
        and r.suspects == tuple(range(55, 62))
    )


def test_a_good_build_with_one_outlier_run_is_not_the_first_bad() -> None:
    # a clean 20% step at 16; build 15 (good) ran once slower than every bad run and once at its level:
    # the Gaussian model of the scores calls it the first bad, the answer's checks ask for more runs
    rng = np.random.default_rng(3)

    def draw(i: int) -> float:
        return 100 * (1.2 if i >= 16 else 1) * (1 + 0.01 * rng.standard_normal())

    s = StepSearch(200)
    for i in (0, 199):
        for _ in range(6):
            s.observe(i, draw(i))
    seen = {12: [101.7, 101.0, 100.2, 99.8], 14: [96.9, 99.3, 99.5], 15: [188.6, 100.0], 16: [118.0, 119.0, 122.1],
            19: [121.1, 119.5], 25: [120.4, 120.8], 50: [119.8, 120.9], 100: [120.2, 119.7]}  # fmt: skip
    for i, xs in seen.items():
        for x in xs:
            s.observe(i, x)
    post = s.post()
    assert post.cdf(15) - post.cdf(14) > 0.95  # the model alone: first bad 15
    assert not s.done and s.propose(1) == [15]
    s.observe(15, draw(15))
    while not s.done:
        for i in s.propose(1):
            s.observe(i, draw(i))
    r = s.result()
    assert (r.status, r.first_bad) == ("found", 16)
    assert len(s.samples[15]) >= 4 and len(s.samples[16]) >= 4


def test_proposals_are_a_function_of_the_observations() -> None:
    def trace(seed: int) -> list[list[int]]:
        rng = np.random.default_rng(seed)
        s = StepSearch(80)
        for i in (0, 79):
            for _ in range(6):
                s.observe(i, 100 * (1.1 if i else 1) + rng.standard_normal())
        out: list[list[int]] = []
        while not s.done and len(out) < 60:
            out.append(s.propose(3))
            for i in out[-1]:
                s.observe(i, 100 * (1.1 if i >= 33 else 1) + rng.standard_normal())
        return out

    assert trace(2) == trace(2)


def test_classify_decides_a_candidate_against_the_ends() -> None:
    spec = PerfSpec("t", threshold=3.0)
    good, bad = [100.0, 101, 99, 100, 100.5, 99.5], [110.0, 111, 109, 110, 110.5, 109.5]
    near_good, near_bad = [100.2, 99.8, 100.1, 100.3, 99.9], [110.2, 109.8, 110.1, 110.3, 109.9]
    assert classify(spec, good, bad, near_good) is Verdict.GOOD
    assert classify(spec, good, bad, near_bad) is Verdict.BAD
    assert classify(spec, good, bad, near_good[:3]) is Verdict.AMBIGUOUS  # three runs do not reach 1 - eps
    assert classify(spec, good, bad, [105.0]) is Verdict.AMBIGUOUS
    assert classify(spec, good, bad, [104.0, 106.0] * 15) in (Verdict.FORCED_GOOD, Verdict.FORCED_BAD)
    higher = PerfSpec("throughput", Direction.HIGHER, threshold=3.0)  # the sides do not depend on the sign
    assert classify(higher, bad, good, near_good) is Verdict.BAD
    fixed = PerfSpec("t", threshold=3.0, fixed=3)
    assert classify(fixed, good, bad, [108.0, 108]) is Verdict.AMBIGUOUS
    assert classify(fixed, good, bad, [108.0, 108, 108]) is Verdict.BAD


# --- the driver on simulated runs ----------------------------------------------------------------


def perf(threshold: float = 3.0, **kw: object) -> Options:
    return Options(perf=PerfSpec("t", threshold=threshold), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("noise", ["gauss", "bimodal", "outliers"])
def test_the_driver_finds_a_5_percent_step_with_few_runs(root: Path, noise: str) -> None:
    rs = [
        simulate_perf(200, perf(), seed, root, regression=0.05, noise=Noise(noise, 0.03))
        for seed in range(24)
    ]
    assert sum(r.right for r in rs) >= 22
    assert sum(r.tests for r in rs) / len(rs) <= 150
    assert all(r.confidence < 1.0 for r in rs)


def test_a_null_range_is_not_found(root: Path) -> None:
    rs = [
        simulate_perf(200, perf(), seed, root, regression=0.0, noise=Noise("gauss", 0.03))
        for seed in range(30)
    ]
    assert not [r for r in rs if r.status == "found"]
    assert sum(r.status == "not_found" for r in rs) >= 25


def test_both_steps_of_a_range_are_reported(root: Path) -> None:
    hits = 0
    for seed in range(6):
        r = simulate_perf(150, perf(), seed, root, regression=0.0, noise=Noise("gauss", 0.01),
                          steps=((40, 0.06), (110, 0.06)))  # fmt: skip
        hits += set(r.found) == {40, 110}
        if r.status == "found":
            assert r.first_bad == 40  # the first beyond the threshold from the good end
    assert hits >= 5


def test_parallel_runs_keep_the_slots_busy(root: Path) -> None:
    one = [simulate_perf(150, perf(), s, root, regression=0.05, noise=Noise("gauss", 0.03)) for s in range(8)]
    four = [
        simulate_perf(150, perf(jobs=4), s, root, regression=0.05, noise=Noise("gauss", 0.03))
        for s in range(8)
    ]
    assert sum(r.right for r in four) >= 7
    assert sum(r.rounds for r in four) * 2.5 < sum(r.rounds for r in one)
    assert sum(r.tests for r in four) < 1.4 * sum(r.tests for r in one)


def drive(
    root: Path, metric: Callable[[int], float], n: int, options: Options
) -> tuple[Driver, dict[str, Any]]:
    """The real driver over ``n`` list candidates whose runs report ``metric(index)``; the summary."""
    backend = SimBackend(options.jobs, lambda _i: False, None, metric)
    rd = RunDir.create(root, "bisect", "sim")
    d = Driver(ListSource("x"), TrialSpec(argv=("x",)), StandardOracle(OracleConfig()), rd, options,
               labels=[f"v{i}" for i in range(n)], backend=backend)  # fmt: skip
    try:
        res, _ = d.run()
        return d, summarize(d, res)
    finally:
        rd.close()  # its lock and journal: the test reads the files only


def test_the_journal_and_summary_carry_the_metric_per_candidate(root: Path) -> None:
    rng = random.Random(2)
    d, s = drive(root, lambda i: (105.0 if i >= 23 else 100.0) * (1 + 0.01 * rng.gauss(0, 1)), 40, perf())
    assert s["status"] == "found" and s["first_bad"]["label"] == "v23" and s["strategy"] == "StepSearch"
    rows = {r["label"]: r for r in s["perf"]["candidates"]}
    assert rows["v23"]["decision"] == "bad" and rows["v22"]["decision"] == "good"
    assert rows["v23"]["ci"][0] <= rows["v23"]["median"] <= rows["v23"]["ci"][1]
    assert 103 < rows["v23"]["median"] < 107 and 98 < rows["v22"]["median"] < 102
    assert s["perf"]["comparisons"][0]["decision"] == "regressed"
    md = render_markdown(d, s)
    assert "| **`v23`** |" in md and "| **`v22`** |" in md and "95% interval" in md
    events = [json.loads(x) for x in (d.run_dir.path / "journal.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events if e["event"].startswith("perf")][:2] == ["perf compare", "perf step"]


def test_a_drift_far_below_the_threshold_is_no_step(root: Path) -> None:
    # a nearly constant metric whose last digits grow run after run: by ranks alone every candidate
    # measured later looks "worse"; at a quarter of the threshold the digits are ties
    count = itertools.count()
    _, s = drive(root, lambda i: (150.0 if i >= 13 else 100.0) + 1e-4 * next(count), 20, perf(5.0))
    assert s["first_bad"]["label"] == "v13" and s["last_good"]["label"] == "v12"
    assert len(s["perf"]["steps"]) == 1 and s["confidence"] >= 0.95
    assert s["perf"]["verdicts"]["v12"] == "good"


def test_candidates_without_the_metric_are_untestable_and_can_make_the_answer_one_of(root: Path) -> None:
    rng = random.Random(9)

    def metric(i: int) -> float | None:
        if 20 <= i < 26:  # these builds crash before printing the metric
            return None
        return (106.0 if i >= 23 else 100.0) * (1 + 0.01 * rng.gauss(0, 1))

    d, s = drive(root, metric, 50, perf())
    assert s["status"] == "ambiguous" and s["suspects"] == [f"v{i}" for i in range(20, 27)]
    assert s["last_good"]["label"] == "v19" and s["first_bad"]["label"] == "v26"
    crashed = {f"v{i}" for i in range(20, 26)}
    runs = Counter(e.label for e in d.events)
    assert all(runs[label] == 1 for label in crashed)  # tried once each, then untestable


def test_higher_is_better_and_the_budget_holds(root: Path) -> None:
    rng = random.Random(4)
    _, s = drive(root, lambda i: (95.0 if i >= 31 else 100.0) * (1 + 0.02 * rng.gauss(0, 1)), 64,
                 Options(perf=PerfSpec("t", Direction.HIGHER, threshold=3.0)))  # fmt: skip
    assert s["first_bad"]["label"] == "v31" and s["perf"]["comparisons"][0]["shift_pct"] > 2
    _, s = drive(root, lambda i: (101.0 if i >= 31 else 100.0) * (1 + 0.05 * rng.gauss(0, 1)), 64,
                 Options(perf=PerfSpec("t", threshold=0.5), max_tests=40))  # fmt: skip
    assert s["tests"] <= 40 and s["status"] != "found"


# --- the CLI, real processes -------------------------------------------------------------------------

#: a build's step time: 100 before STEP, 100 (1 + RISE) from it on (default 105), 3% noise seeded per
#: trial: Gaussian, or with NOISE=lognormal-outliers log-normal and 1% of runs 20-100% slower
WORKLOAD = """import hashlib, math, os, random
label = os.environ["SLEUTH_CANDIDATE"]
key = f"{os.environ['SEED']}/{label}/{os.environ['SLEUTH_TRIAL_ID']}"
rng = random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:12], 16))
level = 100.0 * (1 + float(os.environ.get("RISE", "0.05"))) if int(label[1:]) >= int(os.environ["STEP"]) else 100.0
if os.environ.get("NOISE") == "lognormal-outliers":
    s = math.sqrt(math.log1p(0.03 ** 2))
    x = math.exp(rng.gauss(-s * s / 2, s)) * (1 + rng.uniform(0.2, 1.0) if rng.random() < 0.01 else 1)
else:
    x = 1 + 0.03 * rng.gauss(0, 1)
with open(os.environ["COUNT"], "a") as f:
    f.write("x")
print(f"step_time={level * x:.4f} ms")
"""


def bisect(
    tmp: Path, *args: str, seed: int = 1, step: int = 27, **env_: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLEUTH_CACHE": str(tmp / "cache"), "SEED": str(seed), "STEP": str(step),
           "COUNT": str(tmp / "count"), **env_}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "sleuth", "bisect", *args], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_cli_finds_a_5_percent_step_under_3_percent_noise_and_resumes_it(tmp_path: Path) -> None:
    (tmp_path / "builds.txt").write_text("\n".join(f"b{i}" for i in range(1, 41)) + "\n")
    (tmp_path / "w.py").write_text(WORKLOAD)
    res = bisect(tmp_path, "list", "builds.txt", "--metric", r"t=step_time=([0-9.]+)", "--metric", "t",
                 "--threshold", "3", "--json", "--output", "o", "--", sys.executable, "w.py")  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert (d["first_bad"]["label"], d["last_good"]["label"]) == ("b27", "b26")
    assert 0.95 <= d["confidence"] < 1.0
    runs = len((tmp_path / "count").read_text())
    assert runs == d["tests"] <= 150
    perf = d["perf"]
    rows = {r["label"]: r for r in perf["candidates"]}
    assert rows["b27"]["median"] > 102 > rows["b26"]["median"]
    assert perf["comparisons"][0]["decision"] == "regressed" and 1 < perf["comparisons"][0]["shift_pct"] < 12
    report = (tmp_path / d["run_dir"] / "report.md").read_text()
    assert "## Metric `t` per candidate" in report and "| **`b27`** |" in report
    again = bisect(tmp_path, "resume", d["run_dir"], "--json")
    r = json.loads(again.stdout)
    assert r["first_bad"]["label"] == "b27" and r["tests"] == d["tests"]
    assert len((tmp_path / "count").read_text()) == runs  # replayed, none re-run


def test_cli_finds_a_6_percent_step_under_log_normal_noise_with_outliers_in_parallel(tmp_path: Path) -> None:
    (tmp_path / "builds.txt").write_text("\n".join(f"b{i}" for i in range(120)) + "\n")
    (tmp_path / "w.py").write_text(WORKLOAD)
    res = bisect(tmp_path, "list", "builds.txt", "--metric", r"t=step_time=([0-9.]+)", "--metric", "t",
                 "--threshold", "3", "--jobs", "2", "--json", "--output", "o", "--", sys.executable, "w.py",
                 seed=3, step=77, RISE="0.06", NOISE="lognormal-outliers")  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert (d["status"], d["first_bad"]["label"]) == ("found", "b77")
    assert 0.95 <= d["confidence"] < 1.0 and d["tests"] <= 200
    # a run in flight when the search ends is stopped, so a process may have started without a result
    assert d["tests"] <= len((tmp_path / "count").read_text()) <= d["tests"] + 1
    rows = {r["label"]: r for r in d["perf"]["candidates"]}
    assert rows["b77"]["decision"] == "bad" and rows["b76"]["decision"] == "good"


def test_cli_a_metric_no_run_produces_stops_after_the_first_run(tmp_path: Path) -> None:
    (tmp_path / "builds.txt").write_text("b1\nb2\nb3\n")
    (tmp_path / "w.py").write_text(WORKLOAD)
    res = bisect(tmp_path, "list", "builds.txt", "--metric", r"t=step_time=([0-9.]+)", "--metric", "step",
                 "--output", "o", "--", sys.executable, "w.py")  # fmt: skip
    assert res.returncode == 2, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --metric step: no trial produced a metric 'step'; metrics seen: t;")
    assert "Traceback" not in res.stderr
    assert len((tmp_path / "count").read_text()) == 1


def test_cli_perf_ends_without_a_regression_are_not_found(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("a\nb\nc\n")
    args = ["list", "list.txt", "--metric", "t=t=([0-9]+)", "--metric", "t", "--json", "--output", "o",
            "--", "echo", "t=5"]  # fmt: skip
    res = bisect(tmp_path, *args)
    assert res.returncode == 3
    d = json.loads(res.stdout)
    assert d["status"] == "not_found" and "threshold" in d["note"] and "+0.0%" in d["note"]
    assert d["perf"]["comparisons"][0]["decision"] == "same"


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


# --- resume: the journal is the truth ------------------------------------------------------------


class Keyed(SimBackend):
    """Each run's value is a function of its trial (candidate and run number), not of when it ran;
    a trial in ``forbidden`` (journaled already) must not run again."""

    def __init__(self, jobs: int, forbidden: set[str]) -> None:
        super().__init__(jobs, lambda _i: False, None, self._value)
        self.forbidden = forbidden
        self.ran: list[str] = []
        self._trial = ""

    def _value(self, index: int) -> float:
        noise = random.Random(self._trial).gauss(0, 1)
        return (105.0 if index >= 37 else 100.0) * (1 + 0.03 * noise)

    def submit(self, spec: TrialSpec, trial_dir: Path, **kw: Any) -> Any:
        rel = "/".join(trial_dir.parts[-3:])
        assert rel not in self.forbidden, f"{rel} ran again"
        self.ran.append(rel)
        self._trial = rel
        return super().submit(spec, trial_dir, **kw)


def keyed_search(rd: RunDir, replay: list[dict[str, Any]] | None, forbidden: set[str], jobs: int) -> Driver:
    opts = Options(jobs=jobs, perf=PerfSpec("t", threshold=3.0))
    d = Driver(ListSource("x"), TrialSpec(argv=("x",)), StandardOracle(OracleConfig()), rd, opts, replay=replay,
               labels=[f"v{i}" for i in range(60)], backend=Keyed(jobs, forbidden))  # fmt: skip
    d.run()
    return d


@pytest.mark.parametrize("jobs", [1, 3])
def test_a_resumed_perf_search_retraces_the_interrupted_one(root: Path, jobs: int) -> None:
    rd = RunDir.create(root, "bisect", "t")
    whole = keyed_search(rd, None, set(), jobs)
    assert whole.labels[whole.perf_state.steps[0]["first_bad"]] == "v37"  # type: ignore[union-attr]
    tests = [json.loads(x) for x in (rd.path / "journal.jsonl").read_text().splitlines()]
    tests = [e for e in tests if e["event"] == "test"]
    rd.close()
    # killed halfway: the journal keeps the first half, the trials after it left no result
    cut = tests[: len(tests) // 2]
    other = RunDir.create(root, "bisect", "u")
    for e in cut:
        (other.path / e["trial_dir"]).mkdir(parents=True)
    lines = [
        json.dumps({"event": "test", **{k: v for k, v in e.items() if k not in ("event", "t")}}) for e in cut
    ]
    (other.path / "journal.jsonl").write_text("\n".join(lines) + "\n")
    resumed = keyed_search(other, cut, {e["trial_dir"] for e in cut}, jobs)
    assert [e.trial_dir for e in resumed.events] == [e["trial_dir"] for e in tests]
    assert [e.value for e in resumed.events] == [e["value"] for e in tests]
    assert resumed.perf_state is not None and resumed.perf_state.steps == whole.perf_state.steps  # type: ignore[union-attr]
    other.close()
