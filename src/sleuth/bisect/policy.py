"""Which strategy a bisection uses, decided from the end checks (shared by the driver and the bench).

``--flaky off`` trusts one run per candidate; ``--flaky P`` runs the Bayesian search with the
failure probability pinned near P; ``--flaky auto`` (the default) reruns the known-bad end
:data:`AUTO_RERUNS` more times and runs the Bayesian search, with ``p`` estimated, if one of those
runs passed; otherwise :class:`~sleuth.bisect.auto.AutoBisection`, which bisects, reruns its last
good and turns Bayesian (replaying every outcome) if the test shows itself flaky after all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sleuth.bisect.auto import AutoBisection
from sleuth.bisect.flaky import FlakyBisection
from sleuth.bisect.strategies import Bisection, Strategy
from sleuth.errors import UsageError
from sleuth.model import Outcome

__all__ = [
    "AUTO_RERUNS",
    "BAD_END_RETRIES",
    "P_QUANTILE",
    "FlakyMode",
    "choose_strategy",
    "default_max_tests",
    "parse_flaky",
]

#: extra runs of the known-bad end under ``--flaky auto``
AUTO_RERUNS = 3
#: the Bayesian search reruns the bad end until it failed this often (estimating p)
END_FAILS = 4
#: under ``--flaky auto`` the search stops only when confident with p at this quantile of its posterior
P_QUANTILE = 0.1
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


def choose_strategy(
    n: int,
    mode: FlakyMode,
    end_outcomes: Sequence[Outcome],
    *,
    confidence: float = 0.95,
    max_tests: int | None = None,
) -> Strategy:
    """The strategy for ``n`` candidates given the outcomes seen at the bad end (oldest first)."""
    flaky_seen = Outcome.PASS in end_outcomes
    if mode.p == 1.0:
        return Bisection(n)
    if mode.auto:
        # p is estimated: the stop also asks for the confidence at a low quantile of p's posterior
        # (the marginal posterior alone was over-confident at low p), and the first FAIL of the bad
        # end, the one that made it the bad end, is not evidence about p
        prior, end_fails, given, quantile = (1.0, 2.0), END_FAILS, 1, P_QUANTILE
    else:
        p = mode.p if mode.p is not None else 0.5
        prior, end_fails, given, quantile = (p * _PIN, (1.0 - p) * _PIN), 0, 0, None

    def flaky() -> FlakyBisection:
        budget = max_tests if max_tests is not None else default_max_tests(n)
        return FlakyBisection(
            n,
            prior=prior,
            confidence=confidence,
            max_tests=budget,
            end_fails=end_fails,
            given_fails=given,
            p_quantile=quantile,
        )

    return AutoBisection(n, flaky) if mode.auto and not flaky_seen else flaky()
