"""``--flaky auto`` earns the confidence it reports: a seeded simulation at a low failure rate."""

from __future__ import annotations

import math
import random

from sleuth.bisect.flaky import FlakyBisection
from sleuth.bisect.policy import AUTO_RERUNS, FlakyMode, choose_strategy
from sleuth.bisect.strategies import Query, SearchStatus
from sleuth.model import Outcome


def search(n: int, p: float, seed: int) -> tuple[bool, float]:
    """(right answer, reported confidence) of one auto search, end checks as the driver runs them."""
    rng = random.Random(seed)
    f = rng.randint(1, n - 1)

    def test(i: int) -> Outcome:
        return Outcome.FAIL if i >= f and rng.random() < p else Outcome.PASS

    ends = [Outcome.FAIL] + [test(n - 1) for _ in range(AUTO_RERUNS)]
    s = choose_strategy(n, FlakyMode(True), ends, confidence=0.95)
    s.observe(Query(0, 0), Outcome.PASS)
    for j, o in enumerate(ends):
        s.observe(Query(1 + j, n - 1), o)
    while not s.done:
        for q in s.propose(1):
            s.observe(q, test(q.index))
    r = s.result()
    return r.first_bad == f and r.status is SearchStatus.FOUND, r.confidence


def test_auto_accuracy_matches_its_confidence_at_low_p() -> None:
    seeds, confidence = 200, 0.95
    runs = [search(1000, 0.3, seed) for seed in range(seeds)]
    accuracy = sum(ok for ok, _ in runs) / seeds
    slack = 2 * math.sqrt(confidence * (1 - confidence) / seeds)  # two binomial standard errors
    assert accuracy >= confidence - slack
    # and the confidence it reports is not above what it achieves
    reported = sum(c for _, c in runs) / seeds
    assert reported <= accuracy + slack


def test_the_bad_ends_first_fail_is_not_evidence_about_p() -> None:
    s = FlakyBisection(100, prior=(1.0, 2.0), given_fails=1)
    s.observe(Query(0, 99), Outcome.FAIL)
    assert abs(s.p_estimate() - 1 / 3) < 1e-9  # still the prior mean
    s.observe(Query(1, 99), Outcome.FAIL)
    assert s.p_estimate() > 1 / 3


def test_the_stop_asks_for_confidence_at_a_low_p_too() -> None:
    def run(quantile: float | None) -> FlakyBisection:
        s = FlakyBisection(64, prior=(1.0, 2.0), p_quantile=quantile)
        for j, (i, o) in enumerate([(63, Outcome.FAIL)] * 3 + [(31, Outcome.FAIL), (30, Outcome.PASS)] * 2):
            s.observe(Query(j, i), o)
        return s

    plain, careful = run(None), run(0.1)
    top = int(plain.posterior().argmax())
    assert careful.pessimistic_posterior()[top] < plain.posterior()[top]
    assert careful.result().confidence <= plain.result().confidence
