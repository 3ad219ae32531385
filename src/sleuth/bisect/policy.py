"""Which strategy a bisection uses, and the model behind ``--flaky auto`` (for the driver and the bench).

``--flaky off`` trusts one run per candidate; ``--flaky P`` runs the Bayesian search with the
failure probability pinned near P; ``--flaky auto`` (the default) bisects while the test looks
deterministic (:class:`~sleuth.bisect.auto.AutoBisection`) and turns Bayesian, replaying every
outcome, when a bad end passes, an outcome contradicts the bisection, or the flaky model is not
confident in the bisection's answer.  Under ``auto`` p has the prior :func:`auto_model`: a point
mass :data:`DETERMINISM` at p = 1 beside Beta(1, 2).

The strategy modules are imported here only when a strategy is made: ``--flaky off`` never loads
the Bayesian search (nor numpy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sleuth.errors import UsageError
from sleuth.model import Outcome

if TYPE_CHECKING:
    from sleuth.bisect.flaky import FlakyBisection
    from sleuth.bisect.posterior import Model
    from sleuth.bisect.strategies import Strategy

__all__ = [
    "BAD_END_RETRIES",
    "DETERMINISM",
    "LAZY_END_CHECKS",
    "P_QUANTILE",
    "FlakyMode",
    "auto_model",
    "choose_strategy",
    "default_max_tests",
    "lazy_budget",
    "make_strategy",
    "parse_flaky",
]

#: the Bayesian search reruns the bad end until it failed this often (estimating p)
END_FAILS = 4
#: under ``--flaky auto`` the search stops only when confident with p at this quantile of its posterior
P_QUANTILE = 0.05
#: under ``--flaky auto``, the prior probability that the test is deterministic (p = 1)
DETERMINISM = 0.0
#: the Beta(1, b) prior on p under auto
PRIOR_B = 2.0
#: pseudo-counts that pin p near a value given with ``--flaky P``
_PIN = 200.0
#: under ``--flaky auto``, reruns of a bad end whose first run passed before giving up (0.5^8 < 0.4%)
BAD_END_RETRIES = 7


@dataclass(frozen=True, slots=True)
class FlakyMode:
    """``auto`` (p is None and auto), ``off`` (p == 1), or a given failure probability."""

    auto: bool
    p: float | None = None

    def describe(self) -> str:
        """The flag value that gives this mode."""
        return "auto" if self.auto else ("off" if self.p == 1.0 else f"{self.p:g}")


def parse_flaky(value: str) -> FlakyMode:
    """Parse ``--flaky auto|off|P`` (0 < P <= 1)."""
    v = value.strip().lower()
    if v == "auto":
        return FlakyMode(auto=True)
    if v in {"off", "1", "1.0"}:
        return FlakyMode(auto=False, p=1.0)
    try:
        p = float(v)
    except ValueError:
        p = math.nan
    if not 0.0 < p <= 1.0:
        raise UsageError(
            f"--flaky {value!r} is not understood",
            hint="use auto, off, or the probability a bad candidate fails (0 < P <= 1)",
        )
    return FlakyMode(auto=False, p=p)


def default_max_tests(n: int) -> int:
    """A generous test budget for ``n`` candidates (enough for p = 0.1 at 95%)."""
    return 40 * max(1, math.ceil(math.log2(max(n, 2)))) + 60


def auto_model() -> Model:
    """The flaky model of ``--flaky auto``: p ~ DETERMINISM at 1 + Beta(1, 2), pessimistic stop.

    The first FAIL of the bad end, the one that made it the bad end, is not evidence about p; the
    stop also asks for the confidence at a low quantile of p's posterior (the posterior alone is
    calibrated only on average over the prior, and was over-confident at low p).
    """
    from sleuth.bisect.posterior import Model

    return Model(a=1.0, b=PRIOR_B, determinism=DETERMINISM, given_fails=1, p_quantile=P_QUANTILE)


#: tests ``--flaky off`` keeps from its budget for the end checks an answer may rest on (lazy ends)
LAZY_END_CHECKS = 2


def lazy_budget(max_tests: int | None) -> int | None:
    """The deterministic bisection's share of ``--max-tests``: the rest is for its lazy end checks."""
    return None if max_tests is None else max(0, max_tests - LAZY_END_CHECKS)


def make_strategy(
    n: int, mode: FlakyMode, *, confidence: float = 0.95, max_tests: int | None = None
) -> Strategy:
    """The strategy for ``n`` candidates before anything was run (the end checks are observations)."""
    if mode.p == 1.0:
        from sleuth.bisect.strategies import Bisection

        return Bisection(n, max_tests=lazy_budget(max_tests))
    budget = max_tests if max_tests is not None else default_max_tests(n)
    if not mode.auto:
        from sleuth.bisect.flaky import FlakyBisection

        p = mode.p if mode.p is not None else 0.5
        return FlakyBisection(n, prior=(p * _PIN, (1.0 - p) * _PIN), confidence=confidence, max_tests=budget)
    from sleuth.bisect.auto import AutoBisection

    model = auto_model()

    def flaky() -> FlakyBisection:
        from sleuth.bisect.flaky import FlakyBisection

        return FlakyBisection(
            n,
            prior=(model.a, model.b),
            confidence=confidence,
            max_tests=budget,
            end_fails=END_FAILS,
            given_fails=model.given_fails,
            p_quantile=model.p_quantile,
        )

    return AutoBisection(n, flaky, model=model, confidence=confidence, max_tests=budget)


def choose_strategy(
    n: int,
    mode: FlakyMode,
    end_outcomes: Sequence[Outcome],
    *,
    confidence: float = 0.95,
    max_tests: int | None = None,
) -> Strategy:
    """:func:`make_strategy`, already Bayesian under ``auto`` when the bad end passed in ``end_outcomes``.

    The outcomes are not observed here (the caller tells them to the strategy).
    """
    strat = make_strategy(n, mode, confidence=confidence, max_tests=max_tests)
    if mode.auto and Outcome.PASS in end_outcomes:
        from sleuth.bisect.auto import AutoBisection

        assert isinstance(strat, AutoBisection)
        strat._switch()
        return strat.inner
    return strat
