"""Which rows a gate table shows when it has more than it can usefully show."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sleuth.gate.render import shown_rows

LABELS = ["PASS", "FAIL", "INCONCLUSIVE", "INSUFFICIENT"]


def test_a_table_that_fits_is_whole_and_in_order() -> None:
    rows = [("a", "PASS"), ("b", "FAIL")]
    shown = shown_rows(rows, lambda r: r[1], limit=2)
    assert shown.rows == tuple(rows) and shown.hidden == () and shown.note() == ""


def test_a_cut_table_keeps_the_worst_rows_in_their_order() -> None:
    rows = [
        (i, lab) for i, lab in enumerate(["PASS", "INSUFFICIENT", "FAIL", "INCONCLUSIVE", "FAIL", "PASS"])
    ]
    shown = shown_rows(rows, lambda r: r[1], limit=3)
    assert shown.rows == ((2, "FAIL"), (3, "INCONCLUSIVE"), (4, "FAIL"))
    assert shown.hidden == (("INSUFFICIENT", 1), ("PASS", 2))
    assert shown.note() == "3 metric(s) not shown (1 INSUFFICIENT, 2 PASS); --json lists every one"


@given(st.lists(st.sampled_from(LABELS), max_size=60), st.integers(min_value=1, max_value=20))
def test_every_row_is_shown_or_counted_and_no_pass_row_outranks_a_failure(
    labels: list[str], limit: int
) -> None:
    rows = list(enumerate(labels))
    shown = shown_rows(rows, lambda r: r[1], limit=limit)
    assert len(shown.rows) <= max(limit, 0) or len(rows) <= limit
    assert len(shown.rows) + sum(n for _, n in shown.hidden) == len(rows)
    assert [i for i, _ in shown.rows] == sorted(i for i, _ in shown.rows)  # the table's own order
    if len(rows) > limit:
        assert all(lab != "PASS" for _, lab in shown.rows)
        kept = {lab for _, lab in shown.rows}
        if "INCONCLUSIVE" in kept or "INSUFFICIENT" in kept:  # a hidden FAIL would outrank them
            assert dict(shown.hidden).get("FAIL", 0) == 0
