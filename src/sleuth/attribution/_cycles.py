"""Where a rerun of ``sleuth supervise`` on the same log dir takes up: its ``cycles.jsonl``.

A rerun continues the cycle numbers (an earlier cycle's ``output.log`` is never written to
again) and, unless the last supervision ended (the workload succeeded, or a STOP), the restart
budget and the history of the cycles since then: a supervisor killed with ``kill -9`` and started
again goes on as if it had not been.  A cycle that was started but has no ``cycle`` line was cut
by that kill: the rerun records it as ``lost``.  A torn last line (a write cut by the kill) is
dropped before anything is appended.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.attribution.decide import CycleRecord
from sleuth.attribution.model import Action

__all__ = ["Resume", "resume_state"]

#: outcomes after which a rerun is a new supervision (fresh budget and history)
_ENDED = ("done", "stop")


@dataclass(slots=True)
class Resume:
    """What the cycles file says about earlier runs on this log dir."""

    next_cycle: int = 0
    #: cycles started but never recorded (the supervisor was killed while they ran)
    lost: list[int] = field(default_factory=list)
    #: restarts spent since the last supervision ended (a cycle lost to a killed supervisor is one)
    restarts_used: int = 0
    history: list[CycleRecord] = field(default_factory=list)


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    if raw and not raw.endswith(b"\n"):  # the last write was cut: drop it so appends stay lines
        keep = raw.rfind(b"\n") + 1
        with open(path, "r+b") as fh:
            fh.truncate(keep)
            os.fsync(fh.fileno())
        raw = raw[:keep]
    events = []
    for line in raw.decode("utf-8", "replace").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict) and isinstance(ev.get("cycle"), int):
            events.append(ev)
    return events


def resume_state(path: Path) -> Resume:
    """The state a supervisor starting on ``path`` (a ``cycles.jsonl``) continues from."""
    events = _read(path)
    state = Resume()
    if not events:
        return state
    recorded = {e["cycle"]: e for e in events if e.get("event") == "cycle"}
    started = {e["cycle"] for e in events if e.get("event") == "cycle_start"}
    state.lost = sorted(started - set(recorded))
    state.next_cycle = max(set(recorded) | started) + 1
    for cycle in sorted(recorded):
        e = recorded[cycle]
        if e.get("outcome") in _ENDED:
            state.restarts_used, state.history = 0, []
        elif e.get("outcome") == "lost":  # the workload was started again: a restart all the same
            state.restarts_used += 1
        elif e.get("outcome") == "restart":
            state.restarts_used += 1
            att = e.get("attribution") or {}
            action = (att.get("decision") or {}).get("action", "UNKNOWN")
            progress = e.get("progress")
            state.history.append(
                CycleRecord(
                    cycle=cycle,
                    root=(att.get("root") or {}).get("signature"),
                    progress=progress if isinstance(progress, bool) else None,
                    action=Action(action) if action in Action.__members__ else Action.UNKNOWN,
                )
            )
    return state
