"""``--flaky auto`` earns the confidence it reports; the light check agrees with the Bayesian search."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth.bisect.flaky import FlakyBisection, report_confidence
from sleuth.bisect.policy import FlakyMode, make_strategy
from sleuth.bisect.posterior import Model, block_confidence
from sleuth.bisect.strategies import Query, SearchStatus
from sleuth.model import Outcome


def search(n: int, p: float, seed: int) -> tuple[bool, float]:
    """(right answer, reported confidence) of one auto search; the bad end's first run failed."""
    rng = random.Random(seed)
    f = rng.randint(1, n - 1)

    def test(i: int) -> Outcome:
        return Outcome.FAIL if i >= f and rng.random() < p else Outcome.PASS

    s = make_strategy(n, FlakyMode(True), confidence=0.95)
    s.observe(Query(-1, 0), Outcome.PASS)
    s.observe(Query(-2, n - 1), Outcome.FAIL)
    while not s.done:
        for q in s.propose(1):
            s.observe(q, test(q.index))
    r = s.result()
    return r.first_bad == f and r.status is SearchStatus.FOUND, r.confidence


def test_auto_accuracy_matches_its_confidence_at_low_p() -> None:
    seeds, confidence = 120, 0.95
    runs = [search(300, 0.3, seed) for seed in range(seeds)]
    accuracy = sum(ok for ok, _ in runs) / seeds
    slack = 2 * math.sqrt(confidence * (1 - confidence) / seeds)  # two binomial standard errors
    assert accuracy >= confidence - slack
    reported = sum(c for _, c in runs) / seeds
    assert reported <= accuracy + slack
    assert max(c for _, c in runs) < 1.0


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


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(2, 60),
    seed=st.integers(0, 10**6),
    det=st.sampled_from([0.0, 0.3, 0.7]),
    quantile=st.sampled_from([None, 0.05, 0.3]),
    given_fails=st.integers(0, 1),
)
def test_the_light_check_is_the_bayesian_searchs_confidence(
    n: int, seed: int, det: float, quantile: float | None, given_fails: int
) -> None:
    # AutoBisection trusts an answer with block_confidence (pure Python, no numpy); it must be the
    # confidence FlakyBisection would report on the same outcomes
    rng = random.Random(seed)
    f = rng.randint(1, n - 1)
    s = FlakyBisection(n, determinism=det, p_quantile=quantile, given_fails=given_fails, confidence=0.5)
    counts: dict[int, tuple[int, int]] = {}
    s.observe(Query(-1, n - 1), Outcome.FAIL)
    counts[n - 1] = (1, 0)
    for j in range(rng.randint(0, 20)):
        i = rng.randint(0, n - 1)
        o = Outcome.FAIL if i >= f and rng.random() < 0.7 else Outcome.PASS
        s.observe(Query(j, i), o)
        fails, passes = counts.get(i, (0, 0))
        counts[i] = (fails + (o is Outcome.FAIL), passes + (o is Outcome.PASS))
    lo = rng.randint(0, n - 2)
    hi = rng.randint(lo + 1, n - 1)
    post = s.posterior()[lo + 1 : hi + 1].sum()
    if quantile is not None:
        post = min(post, s.pessimistic_posterior()[lo + 1 : hi + 1].sum())
    model = Model(determinism=det, p_quantile=quantile, given_fails=given_fails)
    assert abs(block_confidence(n, counts, lo, hi, model) - post) < 1e-9


@given(st.floats(0.0, 1.0))
def test_a_reported_confidence_is_floored_and_never_certain(mass: float) -> None:
    got = report_confidence(mass)
    assert got <= mass + 1e-12 and got <= 0.9999 and got >= min(mass, 0.9999) - 1e-4
