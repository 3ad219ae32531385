"""The trial timeout a reduction takes when the spec sets none: ten times the slowest baseline trial,
at least 5 s and at most ``sleuth.model.MAX_TIMEOUT_S`` (30 days)."""

from __future__ import annotations

from sleuth.model import MAX_TIMEOUT_S, timeout_over_max
from sleuth.reduce.baseline import default_timeout


def test_the_default_timeout_is_ten_times_the_slowest_baseline_trial() -> None:
    assert default_timeout([3.0, 60.0, 12.5]) == 600.0
    assert default_timeout([0.1]) == 5.0  # at least 5 s
    assert default_timeout([]) == 5.0


def test_the_default_timeout_is_capped_at_30_days() -> None:
    """A baseline trial of 4 days made a 40-day timeout, over what every verb's --timeout and a
    matrix recipe's ``timeout`` take: the bundle's recipe.yaml was refused by ``sleuth matrix``."""
    four_days = 4 * 86400.0
    assert default_timeout([four_days]) == MAX_TIMEOUT_S
    assert timeout_over_max(default_timeout([four_days, 1.0])) is None
