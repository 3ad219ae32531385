"""The baseline of a reduction: the original run before the search, which fixes what it looks for.

:func:`run_baseline` runs the original ``baseline_trials`` times (twice that when it is flaky, to
measure the rate on more runs), fixes the target signature (the most common failure; a regex
oracle has none), judges every trial again against it, and starts the search's bookkeeping: the
:class:`~sleuth.reduce.flaky.RateTracker`, the trial timeout when the spec sets none (ten times the
slowest baseline trial, at least 5 s, at most 30 days), the baseline's verdict and trace record,
and the step hint of a ``step_regex`` axis.  A baseline of which no trial could be judged stops the run
(:class:`~sleuth.errors.InfrastructureError`).  The baseline always runs whole: ``max_wall_clock``
stops only the search.

A part of :class:`~sleuth.reduce.driver.Driver`, given the driver as its own methods were.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sleuth.errors import InfrastructureError
from sleuth.model import MAX_TIMEOUT_S, Outcome
from sleuth.reduce.flaky import RateTracker
from sleuth.reduce.plan import materialize
from sleuth.reduce.trials import Evaluation, TrialRecord, reproduces
from sleuth.signature import group_signatures

if TYPE_CHECKING:
    from sleuth.reduce.driver import Driver

__all__ = ["default_timeout", "run_baseline"]


def default_timeout(walls: Iterable[float]) -> float:
    """The trial timeout when the spec sets none: ten times the slowest baseline trial (``walls``, in
    seconds), at least 5 s and at most :data:`~sleuth.model.MAX_TIMEOUT_S` (the most ``recipe.yaml``'s
    ``timeout`` and ``--timeout`` take)."""
    return min(MAX_TIMEOUT_S, max(5.0, 10.0 * max(walls, default=0.5)))


def run_baseline(d: Driver) -> dict[str, Any]:
    """Run the original ``baseline_trials`` times (twice that when it is flaky); fix the target."""
    point = d.plan.initial_point()
    cand = materialize(d.plan, point)
    d._evals[cand.key] = Evaluation(cand, [])
    n = d.budget.baseline_trials
    records = _batch(d, cand.key, n)
    if d.plan.spec.oracle.kind != "regex":
        fails = [r.signature for r in records if r.outcome is Outcome.FAIL and r.signature]
        if fails:
            groups = group_signatures(fails)
            d.target = max(groups.items(), key=lambda kv: len(kv[1]))[0]
    records = [_rejudge(d, r) for r in records]
    hits = sum(r.reproduced for r in records)
    if 0 < hits < len(records):  # flaky: measure the rate on twice as many runs
        records += [_rejudge(d, r) for r in _batch(d, cand.key, n)]
    d._evals.pop(cand.key)
    d._drop_work(cand)
    judged = [r for r in records if r.outcome in (Outcome.PASS, Outcome.FAIL)]
    hits = sum(r.reproduced for r in judged)
    if not judged and records:
        why = records[0].reason
        raise InfrastructureError(
            f"the original workload could not be run: {records[0].outcome.value}"
            + (f" ({d.scrub.text(why)})" if why else ""),
            hint="see the baseline trials under candidates/ in the run dir",
        )
    d.records[cand.key] = records
    fixed = None if d.budget.trials_per_candidate == "auto" else int(d.budget.trials_per_candidate)
    d.rate = RateTracker(hits, len(judged), d.budget.confidence, fixed=fixed)
    if d.timeout is None:
        d.timeout = default_timeout(r.wall_s for r in records)
    d.verdicts[cand.key] = (hits > 0, len(records))
    for r in records:
        d.reduction.note_seconds(point, r.wall_s)
        if r.reproduced and r.step is not None:
            d._note_step(r.step)
    info = {
        "candidate": cand.key,
        "trials": len(records),
        "reproduced": hits,
        "judged": len(judged),
        "signature": d.target,
        "timeout_s": d.timeout,
        "outcomes": [r.label() for r in records],
        **d.rate.describe(),
    }
    d.trace.append(
        {
            "phase": "baseline",
            "axis": None,
            "hash": cand.key,
            "values": d._render(point, brief=True),
            "trials": len(records),
            "outcomes": [r.label() for r in records],
            "signature": d.target,
            "cache_hit": False,
            "seconds": round(sum(r.wall_s for r in records), 3),
            "verdict": "reproduces" if hits else "does_not_reproduce",
        }
    )
    d._journal("baseline", {**info, "values": d._render(point, brief=True)})
    d.on_event("baseline", {"best": d._best(point), "trials_used": d.trials_used})
    return info


def _batch(d: Driver, key: str, count: int) -> list[TrialRecord]:
    """Run ``count`` more trials of one candidate, ``jobs`` at a time."""
    ev, out = d._evals[key], []
    while count or ev.running:
        while count and d._inflight < max(1, d.opt.jobs):
            d._submit(key)
            count -= 1
        _, rec = d._next()
        ev.running -= 1
        ev.trials.append(rec)
        out.append(rec)
        d.on_event("trial", {"phase": "baseline", "trials_used": d.trials_used})
    return out


def _rejudge(d: Driver, r: TrialRecord) -> TrialRecord:
    """``r`` judged again now that the target signature is known."""
    from dataclasses import replace

    return replace(r, reproduced=reproduces(d, r.outcome, r.signature))
