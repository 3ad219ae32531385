"""Seeded properties of the real bisection loop (driver, strategies, engine, journal) on simulated tests.

Only the process is replaced (:class:`sleuth.bisect.sim.SimBackend`); the large runs (2000 seeds,
N = 1000) are ``bench/bisect_sim.py --targets``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleuth.bisect.policy import FlakyMode
from sleuth.bisect.sim import SimResult, simulate
from sleuth.bisect.trials import Options

OFF, AUTO = FlakyMode(False, 1.0), FlakyMode(True)


@pytest.fixture
def root() -> Iterator[Path]:
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=base) as d:
        yield Path(d)


def runs(root: Path, n: int, p: float, mode: FlakyMode, seeds: range, **kw: object) -> list[SimResult]:
    jobs = int(kw.pop("jobs", 1))  # type: ignore[call-overload]
    opts = Options(jobs=jobs, flaky=mode, **kw)  # type: ignore[arg-type]
    return [simulate(n, p, opts, seed, root) for seed in seeds]


@pytest.mark.parametrize("jobs", [1, 2, 7])
def test_deterministic_tests_are_found_in_log2_tests(root: Path, jobs: int) -> None:
    n = 200
    for r in runs(root, n, 1.0, OFF, range(40), jobs=jobs):
        assert r.right and r.confidence == 1.0
        if jobs == 1:  # the bad end, the bisection, and the good end only when no probe passed
            assert r.tests <= 1 + math.ceil(math.log2(n - 1)) + 1


def test_auto_on_a_deterministic_test_is_right_and_never_certain(root: Path) -> None:
    for r in runs(root, 100, 1.0, AUTO, range(30)):
        assert r.right, r
        assert 0.95 <= r.confidence < 1.0  # the model's confidence: a flaky test can look like this


@pytest.mark.parametrize("p", [0.9, 0.5])
def test_no_flaky_answer_is_reported_certain(root: Path, p: float) -> None:
    for mode in (AUTO, FlakyMode(False, p)):
        for r in runs(root, 32, p, mode, range(15)):
            assert r.confidence < 1.0


@pytest.mark.slow
def test_auto_earns_the_confidence_it_reports_at_p_half(root: Path) -> None:
    # the failure: a flaky bisect trusted a deterministic-looking record ("found, 1.0") and
    # was wrong; now the answer carries the flaky model's confidence and is right that often
    rs = runs(root, 24, 0.5, AUTO, range(100))
    found = [r for r in rs if r.status == "found"]
    hits = sum(r.hit for r in found)
    conf = sum(r.confidence for r in found) / len(found)
    slack = 2 * math.sqrt(conf * (1 - conf) / len(found))  # two binomial standard errors
    assert hits / len(found) >= conf - 0.02 - slack
    assert all(r.confidence < 1.0 for r in rs)


def test_a_freed_slot_waits_for_results_that_finished_with_it(root: Path) -> None:
    # seven tests started together finish together: all seven are told before the next wave, so
    # deterministic multisection needs ceil(log8 N) waves after the first (which carries the ends)
    for r in runs(root, 1000, 1.0, OFF, range(20), jobs=7):
        assert r.right and r.rounds <= 1 + math.ceil(math.log(999, 8))


def test_parallel_flaky_search_cuts_rounds(root: Path) -> None:
    serial = runs(root, 200, 0.5, FlakyMode(False, 0.5), range(12))
    wide = runs(root, 200, 0.5, FlakyMode(False, 0.5), range(12), jobs=7)
    assert sum(r.rounds for r in wide) * 2.5 < sum(r.rounds for r in serial)
    assert sum(r.right for r in wide) >= 10


def test_a_bad_end_whose_first_run_passes_is_retried(root: Path) -> None:
    # p = 0.5: about half the searches see the bad end pass first; none may end not_found for that
    # unless all eight runs passed (0.4%)
    rs = runs(root, 24, 0.5, AUTO, range(30))
    assert sum(r.status == "not_found" for r in rs) <= 1


@pytest.mark.parametrize("mode", [OFF, AUTO, FlakyMode(False, 0.7)])
def test_find_fix_finds_the_first_candidate_where_the_failure_goes_away(root: Path, mode: FlakyMode) -> None:
    p = 1.0 if mode.p == 1.0 else 0.7
    hits = 0
    for seed in range(15):
        r = simulate(120, p, Options(flaky=mode, find_fix=True), seed, root, fix=True)
        assert r.status in ("found", "not_found", "inconclusive")
        hits += r.right
    assert hits >= (15 if p == 1.0 else 12)


def test_skipped_labels_are_never_tested_and_can_make_the_answer_one_of(root: Path) -> None:
    skip = tuple(str(i) for i in range(40, 46))
    r = simulate(100, 1.0, Options(flaky=OFF, skip=skip), 1, root, culprit=43, keep=True)
    assert r.status == "ambiguous" and r.first_bad == 46
    run_dir = next(root.glob("bisect/sim/*"))
    tested = {json.loads(x)["label"] for x in (run_dir / "journal.jsonl").read_text().splitlines()
              if json.loads(x)["event"] == "test"}  # fmt: skip
    assert not tested & set(skip)
    assert not any((run_dir / "candidates").glob("004[0-5]-*"))
    r = simulate(100, 1.0, Options(flaky=OFF, skip=skip), 1, root, culprit=70)
    assert r.right


def test_the_bad_end_is_rerun_only_after_it_passed(root: Path) -> None:
    for seed in range(12):
        simulate(60, 0.5, Options(jobs=3, flaky=AUTO), seed, root, jitter=0.5, keep=True)
    for run_dir in root.glob("bisect/sim/*"):
        events = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
        tests = [e for e in events if e["event"] == "test"]
        retries = [i for i, e in enumerate(tests) if e["phase"] == "bad end retry"]
        passes = [i for i, e in enumerate(tests) if e["index"] == 59 and e["outcome"] == "pass"]
        assert not retries or (passes and passes[0] < retries[0]), tests[:6]
