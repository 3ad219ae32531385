"""Many cells, one alpha: Holm across the comparisons of a matrix (raw and adjusted p-values)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth.matrix.aggregate import TrialRecord
from sleuth.matrix.classify import Classification
from sleuth.matrix.multiple import Stop, holm
from sleuth.matrix.plan import MatrixPlan
from sleuth.matrix.recipe import parse_recipe
from sleuth.matrix.resolve import resolve
from sleuth.matrix.result import MatrixResult, analyze
from sleuth.model import Outcome
from sleuth.registry import load_registry
from sleuth.stats import fisher_exact

SIG = "output: loss is nan"


def plan_of(cells: list[dict[str, Any]], **top: Any) -> MatrixPlan:
    data = {
        "schema_version": 1,
        "seed": 1,
        "workload": {"command": ["true"], "oracle": {"kind": "regex", "pattern": "loss is nan"}},
        "trials": 20,
        "cells": cells,
        **top,
    }
    return resolve(
        parse_recipe(data, "r"), load_registry(entry_points=False), "r", base_dir=Path("/"), environ={}
    )


def noop_cells(k: int) -> list[dict[str, Any]]:
    return [{"name": "baseline"}] + [{"name": f"c{i}", "extra_env": {"I": str(i)}} for i in range(k)]


def records(cell: str, fails: int, n: int, *, other: int = 0) -> list[TrialRecord]:
    out = []
    for i in range(1, n + 1):
        fail = i <= fails + other
        sig = None if not fail else (SIG if i <= fails else "exit 1: MemoryError: CUDA out of memory")
        out.append(TrialRecord(cell=cell, index=i, outcome=Outcome.FAIL if fail else Outcome.PASS, signature=sig,
                               status="exit 1" if fail else "exit 0", wall_s=0.1, step_time=None))  # fmt: skip
    return out


def test_holm_by_hand() -> None:
    # sorted: .01 x 4 = .04; .03 x 3 = .09; .04 x 2 = .08 -> .09 (monotone); .2 x 1 = .2
    assert holm([0.01, 0.04, 0.03, 0.2]) == [
        pytest.approx(0.04),
        pytest.approx(0.09),
        pytest.approx(0.09),
        0.2,
    ]
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    assert holm([]) == []


@settings(max_examples=200, deadline=None)
@given(ps=st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=15),
       alpha=st.sampled_from([0.01, 0.05, 0.1]))  # fmt: skip
def test_holm_rejects_exactly_what_the_step_down_procedure_rejects(ps: list[float], alpha: float) -> None:
    adjusted = holm(ps)
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    rejected: set[int] = set()
    for rank, i in enumerate(order):  # Holm 1979: reject while p_(k) <= alpha / (m - k + 1)
        if ps[i] * (m - rank) >= alpha:
            break
        rejected.add(i)
    assert {i for i in range(m) if adjusted[i] < alpha} == rejected
    assert all(a >= p and a <= 1 for a, p in zip(adjusted, ps, strict=True))


def test_a_no_op_at_p_0047_among_four_cells_is_not_fixed() -> None:
    """The bug: with several cells against one baseline, a no-op came out `fixed` at p = 0.047."""
    plan = plan_of(noop_cells(4))
    recs = records("baseline", 5, 20) + records("c0", 0, 20) + records("c1", 5, 20)
    recs += records("c2", 4, 20) + records("c3", 6, 20)
    res = analyze(plan, recs)
    c0 = res.cell("c0").decision
    assert c0.p_value == pytest.approx(fisher_exact(0, 20, 5, 20)) == pytest.approx(0.0471, abs=1e-4)
    assert c0.p_adjusted == pytest.approx(4 * c0.p_value)  # the smallest of four
    assert c0.classification is Classification.INCONCLUSIVE
    assert res.family == 4
    # a real, strong fix still is one
    big = analyze(plan, records("baseline", 12, 20) + records("c0", 0, 20) + recs[40:])
    d = big.cell("c0").decision
    assert d.classification is Classification.FIXED and d.p_adjusted < 0.05
    # one cell alone: its own alpha (a family of one)
    alone = analyze(plan_of(noop_cells(1)), records("baseline", 5, 20) + records("c0", 0, 20))
    assert alone.cell("c0").decision.classification is Classification.FIXED
    assert alone.cell("c0").decision.p_adjusted == pytest.approx(alone.cell("c0").decision.p_value)


def test_the_family_holds_every_cell_and_every_environment_effect() -> None:
    plan = plan_of([
        {"name": "baseline"},
        {"name": "fix", "mitigations": ["tf32_off"]},
        {"name": "fix-v", "mitigations": ["tf32_off"], "environment": {"venv": ["six==1.16.0"]}},
    ])  # fmt: skip
    (added,) = plan.added
    recs = (
        records("baseline", 10, 20) + records("fix", 2, 20) + records(added, 9, 20) + records("fix-v", 1, 20)
    )
    res = analyze(plan, recs)
    assert res.family == 3  # fix vs baseline, fix-v vs its venv's baseline, the venv's own effect
    raw = {
        "fix": fisher_exact(2, 20, 10, 20),
        "fix-v": fisher_exact(1, 20, 9, 20),
        "env": fisher_exact(9, 20, 10, 20),
    }
    order = sorted(raw, key=raw.__getitem__)
    expected, running = {}, 0.0
    for rank, key in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * raw[key]))
        expected[key] = running
    assert res.cell("fix").decision.p_adjusted == pytest.approx(expected["fix"])
    assert res.cell("fix-v").decision.p_adjusted == pytest.approx(expected["fix-v"])
    (effect,) = res.effects
    assert effect.decision.p_adjusted == pytest.approx(expected["env"])


def test_a_test_that_cannot_reject_does_not_count() -> None:
    """Cells that never fail another way pay nothing for the other-failure test (Tarone)."""
    plan = plan_of(noop_cells(2))
    base = records("baseline", 8, 20)
    clean = analyze(plan, base + records("c0", 1, 20) + records("c1", 7, 20))
    assert clean.family == 2
    assert clean.cell("c0").decision.p_adjusted == pytest.approx(2 * fisher_exact(1, 20, 8, 20))
    assert clean.cell("c0").decision.p_other is None
    oom = analyze(plan, base + records("c0", 1, 20) + records("c1", 1, 20, other=12))
    d = oom.cell("c1").decision
    assert d.classification is Classification.WORSE and "MemoryError" in d.note
    # three hypotheses now: two target tests and c1's other-failure test
    assert d.p_other == pytest.approx(fisher_exact(12, 20, 0, 20))
    assert d.p_value == d.p_other and d.p_adjusted == pytest.approx(3 * d.p_other)
    assert oom.cell("c0").decision.p_adjusted == pytest.approx(2 * fisher_exact(1, 20, 8, 20))


def test_until_decided_spends_the_interim_shares_then_holm_the_rest() -> None:
    plan = plan_of(noop_cells(2), until_decided=True, trials=20)
    base = records("baseline", 12, 20)
    # c0 stopped at the 25% look (5 trials, 0 failures): its level is alpha x 0.1 / 2 cells
    stop = Stop(level=0.05 * 0.1 / 2, indices=frozenset(range(1, 6)), p=0.0004, lower=True)
    res = analyze(plan, base + records("c0", 0, 5) + records("c1", 11, 20), stops={"c0": stop})
    d0 = res.cell("c0").decision
    assert d0.classification is Classification.FIXED
    assert (d0.p_value, d0.p_adjusted) == (0.0004, pytest.approx(0.0004 * 0.05 / stop.level))
    assert res.final_share == pytest.approx(0.5)
    d1 = res.cell("c1").decision  # at the end, alone in Holm's family, at alpha x 0.5
    assert d1.p_adjusted == pytest.approx(min(1.0, fisher_exact(11, 20, 12, 20) / 0.5))
    assert "Holm" in (res.rule or "") and "/ 2 cell(s)" in (res.rule or "")


def _null_matrix(rng: random.Random, rep: int) -> MatrixResult:
    k, n, p = rng.randint(4, 12), rng.randint(20, 60), rng.uniform(0.05, 0.6)
    plan = plan_of(noop_cells(k), trials=n, seed=rep)
    recs = []
    for c in plan.cells:
        fails = sum(rng.random() < p for _ in range(n))
        recs += records(c.name, fails, n)
    return analyze(plan, recs)


def test_null_matrices_rarely_show_any_false_fix() -> None:
    """Seeded: 200 matrices of 4-12 no-op cells.  Judged one cell at a time at alpha, a false
    `fixed`/`worse` turns up in about one matrix in five; with Holm in at most 5%."""
    rng = random.Random(11)
    holm_any = raw_any = 0
    for rep in range(200):
        res = _null_matrix(rng, rep)
        others = [c for c in res.cells if c.name != "baseline"]
        holm_any += any(
            c.decision.classification in (Classification.FIXED, Classification.WORSE) for c in others
        )
        raw_any += any((c.decision.p_value or 1) < 0.05 for c in others)
    assert holm_any <= 10  # <= 5%
    assert raw_any >= 20  # the same matrices without the correction: the problem is real
