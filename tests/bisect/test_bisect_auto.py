"""``--flaky auto``: bisection while the test looks deterministic, trusted only on the flaky model's word."""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth.bisect.auto import RERUNS, AutoBisection
from sleuth.bisect.flaky import FlakyBisection
from sleuth.bisect.policy import FlakyMode, make_strategy
from sleuth.bisect.strategies import Query, SearchStatus
from sleuth.model import Outcome


def start(n: int) -> AutoBisection:
    s = make_strategy(n, FlakyMode(True))
    assert isinstance(s, AutoBisection)
    s.observe(Query(-1, 0), Outcome.PASS)
    s.observe(Query(-2, n - 1), Outcome.FAIL)
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


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 400), st.data(), st.integers(1, 4))
def test_a_deterministic_test_is_found_and_never_certain(n: int, data: st.DataObject, jobs: int) -> None:
    f = data.draw(st.integers(1, n - 1))
    s = start(n)
    probes = drive(s, lambda i: Outcome.FAIL if i >= f else Outcome.PASS, jobs)
    r = s.result()
    assert (r.status, r.first_bad, r.last_good) == (SearchStatus.FOUND, f, f - 1)
    assert 0.95 <= r.confidence < 1.0
    assert probes.count(n - 1) >= RERUNS  # the bad end was rerun before anything was trusted
    # checked without the Bayesian search (no numpy), unless the answer rests on the good end
    assert f == 1 or not s.flaky


def test_a_failing_check_hands_over_to_the_bayesian_search() -> None:
    # a deterministic-looking bisection, then the checks: the last good's third run fails
    n, f = 1000, 700
    runs: dict[int, int] = {}

    def test(i: int) -> Outcome:
        runs[i] = runs.get(i, 0) + 1
        if i == f - 1 and runs[i] == 3:
            return Outcome.FAIL  # the culprit is really f - 1, which passed twice by luck
        return Outcome.FAIL if i >= f else Outcome.PASS

    s = start(n)
    while not s.flaky and not s.done:
        for q in s.propose(1):
            s.observe(q, test(q.index))
    assert s.flaky and runs[f - 1] == 3
    assert s.trusted is None


def test_the_checks_are_the_ones_that_raise_the_confidence_most() -> None:
    # after the bisection, every check is a rerun of the last good or of the bad end, and the
    # confidence never falls while the outcomes stay deterministic
    n, f = 1000, 990  # few failing probes: evidence about p must come from the bad end too
    s = start(n)
    confs = []
    while not s.done:
        for q in s.propose(1):
            s.observe(q, Outcome.FAIL if q.index >= f else Outcome.PASS)
            if s.inner.done and not s.flaky:
                assert q.index in (f - 1, n - 1) or len(confs) == 0
                confs.append(s._confidence())
    assert not s.flaky and s.result().first_bad == f
    assert confs == sorted(confs)
    assert {i for i, _ in s.log[-len(confs) :]} == {f - 1, n - 1}  # both kinds of check were used


def test_the_issues_lucky_run_is_not_trusted() -> None:
    # 300 candidates, the culprit at 100; bad candidates below 150 pass their first three runs (a
    # flaky test that looks deterministic for a while): bisection lands on 150, its last good passes
    # the probe and every rerun of the old rule (two).  Before: "found 150, confidence 1.0".
    n, f = 300, 100
    runs: dict[int, int] = {}

    def test(i: int) -> Outcome:
        runs[i] = runs.get(i, 0) + 1
        if i < f or (i < 150 and runs[i] <= 3):
            return Outcome.PASS
        return Outcome.FAIL

    s = start(n)
    while not s.done and not s.flaky:
        for q in s.propose(1):
            s.observe(q, test(q.index))
    assert s.flaky, "the bisection's answer (150) was trusted"
    drive(s, test)
    r = s.result()
    assert r.first_bad == f and r.confidence < 1.0


def test_a_lucky_pass_is_caught_by_the_rerun_of_the_last_good() -> None:
    n, f = 100, 30
    s = start(n)
    probes = [q.index for q in s.propose(RERUNS + 1)]
    lucky = probes[-1]  # the first bisection probe: bad, but it passes its first run
    runs: dict[int, int] = {}

    def test(i: int) -> Outcome:
        runs[i] = runs.get(i, 0) + 1
        return Outcome.PASS if i < f or (i == lucky and runs[i] == 1) else Outcome.FAIL

    s = start(n)
    drive(s, test)
    assert s.flaky and isinstance(s.inner, FlakyBisection)
    assert s.result().first_bad == f


def test_a_pass_of_the_bad_end_turns_the_search_bayesian_at_once() -> None:
    s = start(50)
    s.observe(Query(-3, 49), Outcome.PASS)
    assert s.flaky


def test_auto_is_accurate_on_a_flaky_test_that_looked_deterministic() -> None:
    hits = 0
    for seed in range(30):
        rng = random.Random(seed)
        f = rng.randint(1, 199)
        s = start(200)

        def test(i: int, f: int = f, rng: random.Random = rng) -> Outcome:
            return Outcome.FAIL if i >= f and rng.random() < 0.9 else Outcome.PASS

        drive(s, test)
        hits += s.result().first_bad == f
    assert hits >= 28


def test_the_budget_holds_while_the_test_looks_deterministic() -> None:
    # --max-tests 8 over 50 candidates: the bisection alone needs 1 + 3 + 6 tests; it ran 9, and the
    # answer it had not checked was handed to the Bayesian search to say what it is worth
    for jobs in (1, 3):
        t = make_strategy(50, FlakyMode(True), max_tests=8)
        assert isinstance(t, AutoBisection)
        t.observe(Query(-1, 0), Outcome.PASS)
        t.observe(Query(-2, 49), Outcome.FAIL)
        drive(t, lambda i: Outcome.FAIL if i >= 30 else Outcome.PASS, jobs)
        assert t.tests == 8
        assert t.result().status is SearchStatus.INCONCLUSIVE
