"""Each pure reduce strategy alone, with tiny predicates, property tests and parallel proposals."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth.reduce.listmin import BlockDeletion, ListShrink, OneMinimal, minimize
from sleuth.reduce.numeric import ChoiceShrink, NumericShrink, WindowShrink, shrink
from sleuth.reduce.search import Gallop


def drive(strategy, predicate, *, slots: int = 1, seed: int = 0) -> tuple[object, list[object]]:
    """Run ``strategy`` to the end; observations come back in a seeded random order (parallel)."""
    rng = random.Random(seed)
    asked: list[object] = []
    out: list[object] = []
    while not strategy.done:
        out += strategy.propose(slots - len(out))
        assert out, "not done, nothing proposed and nothing pending"
        v = out.pop(rng.randrange(len(out)))
        asked.append(v)
        strategy.observe(v, bool(predicate(v)))
    return strategy.result(), asked


# --- Gallop -------------------------------------------------------------------------------------


def test_gallop_finds_the_boundary_and_counts_probes() -> None:
    g = Gallop(1000, guess=1)
    result, asked = drive(g, lambda k: k <= 37)
    assert result == 37
    assert g.probes == len(asked) <= 2 * 6 + 2  # 2 log2(37) + a few


@given(limit=st.integers(0, 5000), t=st.integers(0, 5000), guess=st.integers(1, 6000), slots=st.integers(1, 5),
       seed=st.integers(0, 10))  # fmt: skip
def test_gallop_monotone_exact_any_order(limit: int, t: int, guess: int, slots: int, seed: int) -> None:
    t = min(t, limit)
    g = Gallop(limit, guess)
    result, asked = drive(g, lambda k: k <= t, slots=slots, seed=seed)
    assert result == t
    assert len(asked) == len(set(asked)), "a probe was handed out twice"
    assert all(0 < k <= limit for k in asked)


# --- numeric ------------------------------------------------------------------------------------


def test_shrink_tiny_predicates() -> None:
    assert shrink(2**16, lambda n: n > 10) == 11
    assert shrink(5000, lambda n: n >= 137, floor=1, monotone="true") == 137
    assert shrink(100, lambda n: True, floor=3) == 3
    assert shrink(7, lambda n: n == 7) == 7


def test_step_hint_costs_two_probes_plus_the_floor() -> None:
    s = NumericShrink(5000, 1, "true")
    s.hint(137)
    result, asked = drive(s, lambda n: n >= 138)
    assert result == 138
    assert asked[:2] == [138, 137]
    assert len(asked) <= 3, asked


def test_monotone_unknown_checks_below_the_boundary() -> None:
    # SEQ_LEN % 64 != 0 and B*L >= 65536 with B = 256: powers of two never reproduce
    pred = lambda n: n >= 256 and n % 64 != 0  # noqa: E731
    assert shrink(2049, pred, floor=1, monotone="true") == 2049  # trusts monotonicity: stuck
    assert shrink(2049, pred, floor=1, monotone="unknown") == 257
    assert shrink(2049, pred, floor=1, monotone="false") == 257


@settings(max_examples=200)
@given(initial=st.integers(1, 3000), floor=st.integers(0, 3000), t=st.integers(0, 3000), slots=st.integers(1, 4),
       seed=st.integers(0, 5), mono=st.sampled_from(["true", "unknown", "false"]))  # fmt: skip
def test_numeric_monotone_finds_the_exact_boundary(
    *, initial: int, floor: int, t: int, slots: int, seed: int, mono: str
) -> None:
    floor = min(floor, initial)
    t = min(max(t, floor), initial)
    s = NumericShrink(initial, floor, mono)  # type: ignore[arg-type]
    result, asked = drive(s, lambda n: n >= t, slots=slots, seed=seed)
    assert result == t
    assert len(asked) == len(set(asked))
    assert all(floor <= v < initial for v in asked)


@settings(max_examples=200)
@given(
    initial=st.integers(1, 400),
    bits=st.integers(0, 2**400 - 1),
    slots=st.integers(1, 3),
    seed=st.integers(0, 5),
)
def test_numeric_any_predicate_result_reproduces(initial: int, bits: int, slots: int, seed: int) -> None:
    pred = lambda n: n == initial or bool(bits >> n & 1)  # noqa: E731
    s = NumericShrink(initial, 0, "unknown")
    result, _ = drive(s, pred, slots=slots, seed=seed)
    assert pred(result), "accepted a value that never reproduced"
    assert result == 0 or not pred(result - 1), "done although the value just below reproduces"


def test_choice_takes_the_earliest_value_that_reproduces() -> None:
    result, asked = drive(ChoiceShrink(4), lambda i: i in (2, 4))
    assert result == 2
    assert asked == [0, 1, 2]


def test_window_smallest_end_then_largest_start() -> None:
    # the failure needs steps 120..137 inside the window [start, end)
    w = WindowShrink(0, 1000, "true")
    w.hint(137)
    result, _ = drive(w, lambda se: se[0] <= 120 and se[1] >= 138)
    assert result == (120, 138)


# --- lists --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "k"), [(256, 4), (1024, 1), (1024, 8), (4096, 8)])
def test_block_deletion_finds_needles_cheaply(n: int, k: int) -> None:
    rng = random.Random(n * 31 + k)
    needles = set(rng.sample(range(n), k))
    calls = [0]

    def pred(kept: list[int]) -> bool:
        calls[0] += 1
        return needles <= set(kept)

    assert set(minimize(list(range(n)), pred)) == needles
    # about k log2(n/k) + 2k, plus k for the confirming second pass: far below ddmin's O(k^2 log n)
    import math

    assert calls[0] <= k * (math.log2(n / k) + 4) + 2, calls[0]


def test_def_use_chain_keeps_definitions_in_order() -> None:
    lines = [f"v{i} = {i}" for i in range(40)] + ["a = v3", "b = a + v17", "c = b * 0", "x = v30 / c"]

    def zero_division(kept: list[str]) -> bool:
        scope: dict[str, object] = {}
        try:
            exec("\n".join(kept), scope)
        except ZeroDivisionError:
            return True
        except Exception:  # NameError: another failure, not ours
            return False
        return False

    got = minimize(lines, zero_division)
    assert got == ["v3 = 3", "v17 = 17", "v30 = 30", "a = v3", "b = a + v17", "c = b * 0", "x = v30 / c"]


@settings(max_examples=150)
@given(n=st.integers(0, 60), needles=st.sets(st.integers(0, 59), max_size=6), slots=st.integers(1, 4),
       seed=st.integers(0, 9))  # fmt: skip
def test_list_monotone_result_is_exactly_the_needles(
    n: int, needles: set[int], slots: int, seed: int
) -> None:
    needles = {x for x in needles if x < n}
    calls: list[tuple[int, ...]] = []

    def pred(kept: tuple[int, ...]) -> bool:
        calls.append(kept)
        return needles <= set(kept)

    result, _ = drive(ListShrink(tuple(range(n))), pred, slots=slots, seed=seed)
    assert set(result) == needles
    assert all(list(c) == sorted(c) for c in calls), "candidates keep the original order"


@settings(max_examples=150)
@given(n=st.integers(1, 30), table=st.integers(0, 2**64), slots=st.integers(1, 3), seed=st.integers(0, 9))
def test_list_any_predicate_one_minimal(n: int, table: int, slots: int, seed: int) -> None:
    """Non-monotone predicates: the result reproduces; with the sweep it is 1-minimal."""
    full = tuple(range(n))

    def pred(kept: tuple[int, ...]) -> bool:
        if kept == full:
            return True
        return bool(hash((kept, table)) % 3 == 0)

    result, _ = drive(ListShrink(full, one_minimal=True), pred, slots=slots, seed=seed)
    assert pred(tuple(result))
    for i in range(len(result)):
        assert not pred(tuple(result[:i]) + tuple(result[i + 1 :])), "not 1-minimal"


def test_passes_count_their_work() -> None:
    b = BlockDeletion(tuple(range(100)))
    drive(b, lambda kept: {10, 90} <= set(kept))
    assert b.needed == 2 and b.searches >= 2
    o = OneMinimal((1, 2, 3))
    result, _ = drive(o, lambda kept: 2 in kept)
    assert result == (2,) and o.sweeps >= 1


def test_confirm_mode_checks_just_below_first() -> None:
    """A later fixpoint round: one probe when the boundary still holds, a full search when not."""
    s = NumericShrink(37, 1, "unknown", confirm=True)
    result, asked = drive(s, lambda n: n >= 37)
    assert (result, asked) == (37, [36])
    s = NumericShrink(37, 1, "unknown", confirm=True)
    result, asked = drive(s, lambda n: n >= 20)
    assert result == 20 and asked[0] == 36
