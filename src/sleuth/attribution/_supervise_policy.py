"""``sleuth supervise``'s policy: what a failed cycle's decision becomes (:func:`apply_policy`).

Pure: the attribution's report (or why there is none), the mode, the restart budget and the cycles
before this one go in; the cycle's :class:`CycleOutcome` and the :class:`CycleRecord` the next
decisions see come out.  No report in time means RESTART (the safe default); a STOP stops only
under ``enforce`` (``shadow`` records it and restarts); an exhausted restart budget, or
``max_no_progress_cycles`` failed cycles in a row whose logs showed no progress, stop whatever was
decided.  How the decision is had is :mod:`._supervise_link`'s; the cycles are :mod:`.supervise`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sleuth.attribution.decide import CycleRecord, effective_action
from sleuth.attribution.model import Action, Mode

__all__ = ["CycleOutcome", "apply_policy"]


@dataclass(slots=True)
class CycleOutcome:
    """How one cycle ended and what was decided."""

    cycle: int
    rc: int | None
    signal: int | None
    failed_here: bool
    outcome: str  # done | restart | stop | signalled
    reason: str
    decided_by: str = ""
    attribution: dict[str, Any] | None = None
    progress: bool | None = None
    started: float = 0.0
    ended: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> int:
        """The workload's exit status as a shell reports it."""
        if self.rc is not None:
            return self.rc
        return 128 + (self.signal or 0)


def apply_policy(
    cycle: int,
    report: dict[str, Any] | None,
    why: str,
    *,
    progress: bool | None,
    history: Sequence[CycleRecord],
    mode: Mode,
    restarts_left: int,
    max_restarts: int,
    max_no_progress_cycles: int,
) -> tuple[CycleOutcome, CycleRecord]:
    """The failed ``cycle``'s outcome from the attribution's ``report`` (None: ``why`` there is none),
    and its record for the decisions that follow (``history``: the cycles before it)."""
    out = CycleOutcome(cycle=cycle, rc=None, signal=None, failed_here=True, outcome="restart", reason="")
    out.attribution = report
    stalled = 0
    if progress is False:
        stalled = 1
        for rec in reversed(history):
            if rec.progress is not False:
                break
            stalled += 1
    if report is None:
        out.reason, out.decided_by = f"{why}: RESTART (safe default)", "default"
        action = Action.RESTART
    else:
        d = report.get("decision") or {}
        action = Action(d.get("action", "UNKNOWN"))
        out.decided_by = str(d.get("decided_by", ""))
        out.reason = str(d.get("reason", ""))
    if effective_action(action, mode) is Action.STOP:
        out.outcome = "stop"
    elif action is Action.STOP and "shadow mode" not in out.reason:
        out.reason += " [shadow mode: STOP recorded, restarting anyway]"
    if out.outcome != "stop" and restarts_left <= 0:
        out.outcome, out.reason = "stop", f"restart budget exhausted ({max_restarts} restarts)"
        out.decided_by = "budget"
    limit = max_no_progress_cycles
    if out.outcome != "stop" and limit and stalled >= limit:
        out.outcome, out.reason = "stop", f"{stalled} cycles in a row without progress (limit {limit})"
        out.decided_by = "no-progress"
    root = ((report or {}).get("root") or {}).get("signature")
    return out, CycleRecord(cycle=cycle, root=root, progress=progress, action=action)
