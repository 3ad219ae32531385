"""A candidate's verdict: started or answered from the outcome cache, its trials taken, settled.

:func:`start` makes a query's point a candidate: one being tested already answers this query too,
one whose verdict is known (it reproduced, or it was rejected after as many trials as a candidate
gets now) is a cache hit, any other gets its first trial.  :func:`take` gives a judged trial to its
candidate: accepted at its first reproduction, rejected once it has ``per_candidate`` trials and
none running.  :func:`settle` tells the search the verdict (:meth:`Reduction.observe
<sleuth.reduce.fixpoint.Reduction.observe>`), updates the rate, and traces, journals and shows one
step per query; a speculative query the search no longer needs counts its trials as wasted.

A part of :class:`~sleuth.reduce.driver.Driver`, given the driver as its own methods were.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sleuth.reduce.fixpoint import Query
from sleuth.reduce.plan import materialize
from sleuth.reduce.trials import Evaluation, TrialRecord

if TYPE_CHECKING:
    from sleuth.reduce.driver import Driver

__all__ = ["settle", "start", "take"]


def start(d: Driver, q: Query) -> None:
    """Test ``q``'s point: with the candidate under test already, from the cache, or a first trial."""
    cand = materialize(d.plan, q.point)
    if cand.key in d._evals:  # the same candidate is being tested for another query
        d._evals[cand.key].queries.append(q)
        return
    assert d.rate is not None
    verdict = d.verdicts.get(cand.key)
    ev = Evaluation(cand, [q], trials=list(d.records.get(cand.key, [])))
    if verdict is not None and (verdict[0] or verdict[1] >= d.rate.per_candidate):
        ev.cache_hit = True
        settle(d, ev, verdict[0])
        return
    d._evals[cand.key] = ev
    d._submit(cand.key)


def settle(d: Driver, ev: Evaluation, reproduced: bool) -> None:
    """``ev``'s verdict to the search, the rate, the trace, the journal and the progress shown."""
    assert d.rate is not None
    key = ev.cand.key
    d._evals.pop(key, None)
    d.verdicts[key] = (reproduced, len(ev.trials))
    d.records[key] = ev.trials
    secs = [t.wall_s for t in ev.trials if not t.replayed] or [t.wall_s for t in ev.trials]
    if reproduced and not ev.cache_hit:
        d.rate.accepted(len(ev.trials))
    elif not reproduced:
        d.rate.rejected(len(ev.trials))
    for q in ev.queries:
        used = d.reduction.observe(q, reproduced, min(secs) if secs and reproduced else None)
        if not used:
            d.wasted += len(ev.trials) if not ev.cache_hit else 0
        sig = next((t.signature for t in ev.trials if t.reproduced), None)
        sig = sig or next((t.signature for t in ev.trials if t.signature), None)
        rec = {
            "phase": "search",
            "round": q.round,
            "axis": q.axis,
            "hash": key,
            "values": {q.axis: d.plan.axis(q.axis).brief(q.value)},
            "trials": 0 if ev.cache_hit else len(ev.trials),
            "outcomes": [t.label() for t in ev.trials],
            "signature": sig,
            "cache_hit": ev.cache_hit,
            "seconds": round(sum(secs), 3),
            "verdict": "reproduces" if reproduced else "rejected",
            "speculative_wasted": not used,
            "replayed": any(t.replayed for t in ev.trials),
        }
        d.trace.append(rec)
        d._journal("candidate", rec)
        d.on_event(
            "candidate",
            {**rec, "best": d._best(d.reduction.result()), "trials_used": d.trials_used},
        )
    d._drop_work(ev.cand)


def take(d: Driver, key: str, rec: TrialRecord) -> None:
    """A judged trial to its candidate, settled when it reproduced or has all its trials."""
    ev = d._evals.get(key)
    if ev is None:  # its candidate was settled while this trial ran (parallel trials of one candidate)
        d.wasted += 1
        return
    ev.running -= 1
    ev.trials.append(rec)
    assert d.rate is not None
    if rec.reproduced:
        if rec.step is not None:
            d._note_step(rec.step)
        settle(d, ev, True)
    elif len(ev.trials) >= d.rate.per_candidate and ev.running == 0:
        settle(d, ev, False)
