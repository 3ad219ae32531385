"""The pure strategies, driven in-process by lambda oracles, property tests and seeded simulations."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth.bisect.flaky import FlakyBisection
from sleuth.bisect.flakyinfo import binary_entropy, z_channel_capacity
from sleuth.bisect.policy import FlakyMode, choose_strategy, parse_flaky
from sleuth.bisect.strategies import Bisection, Query, SearchStatus, Strategy, spread
from sleuth.errors import UsageError
from sleuth.model import Outcome


def drive(s: Strategy, test: Callable[[int], Outcome], jobs: int = 1, limit: int = 5000) -> int:
    """Run ``s`` in rounds of ``jobs`` probes; return the number of rounds."""
    rounds = 0
    while not s.done and rounds < limit:
        batch = s.propose(jobs)
        if not batch:
            break
        rounds += 1
        for q in batch:
            s.observe(q, test(q.index))
    return rounds


def det(f: int, skipped: frozenset[int] = frozenset()) -> Callable[[int], Outcome]:
    return lambda i: Outcome.SKIP if i in skipped else (Outcome.FAIL if i >= f else Outcome.PASS)


def test_spread_is_even_from_scratch_and_fills_the_widest_gap() -> None:
    assert spread(0, 8, [], 3) == [2, 4, 6]
    assert spread(0, 100, [50], 1) == [25]
    assert spread(0, 2, [], 5) == [1]


@pytest.mark.parametrize("n", [2, 3, 10, 100, 1000, 1024, 10_000])
def test_deterministic_cost_is_log2(n: int) -> None:
    for f in {1, n // 3 or 1, n - 1}:
        s = Bisection(n)
        drive(s, det(f))
        r = s.result()
        assert (r.status, r.first_bad, r.last_good) == (SearchStatus.FOUND, f, f - 1)
        assert s.tests <= math.ceil(math.log2(n - 1)) if n > 2 else s.tests == 0


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(2, 300),
    data=st.data(),
    jobs=st.integers(1, 8),
)
def test_skips_never_stall_and_the_answer_brackets_the_culprit(
    n: int, data: st.DataObject, jobs: int
) -> None:
    f = data.draw(st.integers(1, n - 1))
    skipped = frozenset(data.draw(st.sets(st.integers(1, max(1, n - 2)), max_size=n))) - {n - 1}
    s = Bisection(n)
    drive(s, det(f, skipped), jobs)
    r = s.result()
    assert s.done
    assert s.tests <= n
    assert f in r.suspects
    assert r.first_bad is not None and r.last_good is not None
    assert r.last_good < f <= r.first_bad
    # everything strictly between the answer's ends was untestable
    assert all(i in skipped for i in range(r.last_good + 1, r.first_bad))
    if r.status is SearchStatus.FOUND:
        assert r.first_bad == f
    else:
        assert r.status is SearchStatus.AMBIGUOUS and len(r.suspects) > 1


def test_a_skipped_cluster_at_the_midpoint_is_probed_around() -> None:
    s = Bisection(101)
    skipped = frozenset(range(30, 71))
    drive(s, det(60, skipped))
    r = s.result()
    assert r.status is SearchStatus.AMBIGUOUS
    assert r.suspects == tuple(range(30, 72))
    assert s.tests <= 41 + 8  # each untestable candidate once, plus the bisection around them
    s = Bisection(101)
    drive(s, det(80, skipped))
    assert s.result().first_bad == 80
    assert s.tests <= 10


def test_parallel_probes_arrive_out_of_order() -> None:
    s = Bisection(1000)
    rng = random.Random(3)
    test = det(617)
    out: list[Query] = []
    while not s.done:
        out += s.propose(4 - len(out))
        rng.shuffle(out)
        q = out.pop()  # one result arrives; the others are still running
        s.observe(q, test(q.index))
    assert s.result().first_bad == 617
    assert s.tests <= 40


def test_contradiction_makes_the_result_inconclusive() -> None:
    s = Bisection(10)
    s.observe(Query(0, 5), Outcome.PASS)
    s.observe(Query(1, 3), Outcome.FAIL)
    assert s.result().status is SearchStatus.INCONCLUSIVE


def test_same_observations_give_same_proposals() -> None:
    a, b = FlakyBisection(500), FlakyBisection(500)
    rng = random.Random(1)
    for _ in range(15):
        qa, qb = a.propose(3), b.propose(3)
        assert qa == qb
        for q in qa:
            o = Outcome.FAIL if q.index >= 123 and rng.random() < 0.6 else Outcome.PASS
            a.observe(q, o)
            b.observe(q, o)


def test_information_helpers() -> None:
    assert binary_entropy(0.5) == pytest.approx(1.0)
    assert z_channel_capacity(0.5) == pytest.approx(0.3219, abs=1e-3)
    assert z_channel_capacity(1.0) == 1.0


def simulate(n: int, p: float, jobs: int, seeds: int, mode: FlakyMode) -> tuple[float, float, float]:
    hits, tests, rounds = 0, 0, 0
    for seed in range(seeds):
        rng = random.Random(seed)
        f = rng.randint(1, n - 1)

        def test(i: int, f: int = f, rng: random.Random = rng) -> Outcome:
            return Outcome.FAIL if i >= f and rng.random() < p else Outcome.PASS

        s = choose_strategy(n, mode, [Outcome.FAIL])
        s.observe(Query(0, n - 1), Outcome.FAIL)
        rounds += drive(s, test, jobs)
        hits += s.result().first_bad == f
        tests += s.tests
    return hits / seeds, tests / seeds, rounds / seeds


def test_flaky_search_beats_its_confidence_with_known_p() -> None:
    acc, tests, _ = simulate(300, 0.5, 1, 60, FlakyMode(False, 0.5))
    assert acc >= 0.9
    assert tests < 45  # information limit log2(299)/0.32 ~ 26


def test_flaky_parallel_search_cuts_rounds() -> None:
    acc, _, rounds = simulate(300, 0.5, 7, 30, FlakyMode(False, 0.5))
    assert acc >= 0.9
    assert rounds <= 10


def test_flaky_search_with_estimated_p_reruns_the_bad_end() -> None:
    s = choose_strategy(200, FlakyMode(True), [Outcome.FAIL, Outcome.PASS])
    assert isinstance(s, FlakyBisection)
    s.observe(Query(0, 199), Outcome.FAIL)
    s.observe(Query(1, 199), Outcome.PASS)
    assert [q.index for q in s.propose(3)] == [199, 199, 199]


def test_flaky_skips_are_pooled_into_an_ambiguous_block() -> None:
    s = FlakyBisection(50, prior=(90.0, 10.0))
    skipped = set(range(20, 26))

    def test(i: int) -> Outcome:
        return Outcome.SKIP if i in skipped else (Outcome.FAIL if i >= 22 else Outcome.PASS)

    drive(s, test)
    r = s.result()
    assert r.status is SearchStatus.AMBIGUOUS
    assert r.suspects == tuple(range(20, 27))
    assert r.last_good == 19


def test_flaky_budget_gives_inconclusive() -> None:
    s = FlakyBisection(1000, max_tests=5)
    drive(s, lambda i: Outcome.PASS)
    assert s.result().status is SearchStatus.INCONCLUSIVE


@pytest.mark.parametrize(("text", "mode"), [("auto", FlakyMode(True)), ("off", FlakyMode(False, 1.0))])
def test_parse_flaky(text: str, mode: FlakyMode) -> None:
    assert parse_flaky(text) == mode
    assert parse_flaky("0.3").p == 0.3
    with pytest.raises(UsageError, match="--flaky"):
        parse_flaky("often")


def test_a_candidate_that_skips_after_it_ran_is_not_proposed_again() -> None:
    # a build that works once per candidate and never again (a kept checkout it cannot rebuild): the
    # search kept proposing the most informative of them, each test a SKIP, until the budget was spent
    s = FlakyBisection(200, prior=(50.0, 50.0), max_tests=150)
    ran: set[int] = set()
    skips: list[int] = []

    def test(i: int) -> Outcome:
        if i in ran and i != 199:
            skips.append(i)
            return Outcome.SKIP
        ran.add(i)
        return Outcome.FAIL if i >= 120 and random.Random(i).random() < 0.5 else Outcome.PASS

    drive(s, test)
    assert len(skips) == len(set(skips)), f"proposed again after a skip: {sorted(skips)}"
    assert s.tests - len(skips) == len(ran)  # every other test ran a candidate for the first time


@settings(max_examples=150, deadline=None)
@given(n=st.integers(3, 2000), budget=st.integers(1, 14), jobs=st.integers(1, 6), data=st.data())
def test_the_deterministic_bisection_keeps_to_its_budget(
    n: int, budget: int, jobs: int, data: st.DataObject
) -> None:
    # --flaky off ignored --max-tests: the budget bounds every test, the two end checks included, and
    # an answer it cut short is inconclusive, its block still holding the culprit
    f = data.draw(st.integers(1, n - 1))
    s = Bisection(n, max_tests=budget)
    for q, o in ((Query(-1, 0), Outcome.PASS), (Query(-2, n - 1), Outcome.FAIL)):
        s.expect(q)
        s.observe(q, o)
    drive(s, det(f), jobs)
    assert s.done and s.tests <= max(budget, 2)
    r = s.result()
    assert r.first_bad is not None and r.last_good is not None and r.last_good < f <= r.first_bad
    if r.status is SearchStatus.FOUND:
        assert r.first_bad == f
    else:
        assert r.status is SearchStatus.INCONCLUSIVE and "--max-tests" in r.note and r.confidence == 0.0
    full = Bisection(n)
    drive(full, det(f), jobs)
    if budget >= full.tests + 2:  # the budget was enough: the answer is found
        assert r.status is SearchStatus.FOUND
