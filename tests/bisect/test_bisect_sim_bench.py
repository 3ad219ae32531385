"""``bench/bisect_sim.py``'s experiment hooks change the model they name and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from sleuth.bisect import flaky, policy
from sleuth.bisect.auto import AutoBisection
from sleuth.bisect.flaky import FlakyBisection
from sleuth.bisect.policy import FlakyMode, make_strategy
from sleuth.model import Outcome

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_search_only_hook_changes_autos_bayesian_stage_and_not_a_given_p(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import bisect_sim

    monkeypatch.setattr(flaky.FlakyBisection, "__init__", FlakyBisection.__init__)
    bisect_sim._search_model(bisect_sim.Prior(search_b=1.0, search_q=-1.0))
    auto = make_strategy(100, FlakyMode(auto=True))
    assert isinstance(auto, AutoBisection)
    auto._switch()
    inner = auto.inner
    assert isinstance(inner, FlakyBisection)
    assert (inner.a, inner.b, inner.p_quantile) == (1.0, 1.0, None)
    # the deterministic stage's check keeps auto's model
    assert auto.model.b == policy.PRIOR_B and auto.model.p_quantile == policy.P_QUANTILE
    given = make_strategy(100, FlakyMode(auto=False, p=0.5))
    assert isinstance(given, FlakyBisection)
    assert given.a == pytest.approx(100.0) and given.b == pytest.approx(100.0)
    # and the changed search still answers
    for i, o in [(99, Outcome.FAIL), (0, Outcome.PASS)]:
        inner.observe(inner._hand_out(i), o)
    assert inner.propose(1)
