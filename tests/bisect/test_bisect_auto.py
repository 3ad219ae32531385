"""``--flaky auto`` when the bad end never passed: bisection that verifies its last good."""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth.bisect.auto import VERIFY_RUNS, AutoBisection
from sleuth.bisect.flaky import FlakyBisection
from sleuth.bisect.policy import FlakyMode, choose_strategy
from sleuth.bisect.strategies import Query
from sleuth.model import Outcome


def start(n: int) -> AutoBisection:
    s = choose_strategy(n, FlakyMode(True), [Outcome.FAIL] * 4)
    assert isinstance(s, AutoBisection)
    s.observe(Query(0, 0), Outcome.PASS)
    s.observe(Query(1, n - 1), Outcome.FAIL)
    return s


def drive(s: AutoBisection, test: Callable[[int], Outcome], jobs: int = 1) -> list[int]:
    probes: list[int] = []
    while not s.done:
        batch = s.propose(jobs)
        assert batch, "a strategy that is not done must propose"
        for q in batch:
            probes.append(q.index)
            s.observe(q, test(q.index))
    return probes


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 400), st.data(), st.integers(1, 4))
def test_deterministic_tests_pay_only_the_verify_runs(n: int, data: st.DataObject, jobs: int) -> None:
    f = data.draw(st.integers(1, n - 1))
    s = start(n)
    probes = drive(s, lambda i: Outcome.FAIL if i >= f else Outcome.PASS, jobs)
    r = s.result()
    assert not s.flaky and r.first_bad == f and r.last_good == f - 1
    assert probes.count(f - 1) == (1 + VERIFY_RUNS if f > 1 else probes.count(f - 1))


def test_a_lucky_pass_is_caught_by_the_verify_runs() -> None:
    # the first probe (the middle) is bad but passes its first run: bisection alone answers above it
    n, f = 100, 30
    lucky = start(n).propose(1)[0].index
    runs: dict[int, int] = {}

    def test(i: int) -> Outcome:
        runs[i] = runs.get(i, 0) + 1
        return Outcome.PASS if i < f or (i == lucky and runs[i] == 1) else Outcome.FAIL

    s = start(n)
    drive(s, test)
    assert s.flaky and isinstance(s.inner, FlakyBisection)
    assert s.result().first_bad == f


def test_auto_is_accurate_on_a_flaky_test_that_looked_deterministic() -> None:
    hits = 0
    for seed in range(40):
        rng = random.Random(seed)
        f = rng.randint(1, 199)
        s = start(200)

        def test(i: int, f: int = f, rng: random.Random = rng) -> Outcome:
            return Outcome.FAIL if i >= f and rng.random() < 0.9 else Outcome.PASS

        drive(s, test)
        hits += s.result().first_bad == f
    assert hits >= 36
