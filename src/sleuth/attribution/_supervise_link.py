"""How ``sleuth supervise`` gets its decisions: the local attribution or the attribution service.

:class:`AttributionLink` owns the supervisor's side of the attribution.  On a failure it *triggers*
the analysis without blocking (:class:`Pending`, a local analysis thread, or a POST of the cycle's
log tail to the service: a shorter tail when the service answers 413), then *reads* the decision
within the decision timeout (in slices: a signal to the supervisor ends the wait); a decision that
comes later is logged as ``late_decision`` and dropped.  With several nodes it also watches, while
the workload runs, whether the job moved on without this node; a follower reads the leader's
outcome, and the leader records it.  What to do with a decision (the policy: shadow or enforce, the
restart budget, cycles without progress) is :mod:`._supervise_policy`'s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.attribution.analyze import Report
from sleuth.attribution.client import ServiceClient, ServiceUnavailable
from sleuth.attribution.decide import CycleRecord
from sleuth.attribution.logs import LogInput
from sleuth.errors import UsageError
from sleuth.secrets import Secrets

if TYPE_CHECKING:  # supervise imports this module
    from sleuth.attribution.supervise import SuperviseConfig

__all__ = ["MIN_SERVICE_LOG_BYTES", "SERVICE_LOG_BYTES", "AttributionLink", "Pending"]

#: the most of a cycle's log (its tail) sent to the service
SERVICE_LOG_BYTES = 8 * 1024 * 1024
#: the shortest tail tried when the service answers 413 (its limits are lower)
MIN_SERVICE_LOG_BYTES = 32 * 1024


class Pending:
    """A decision being computed in the background (local attribution)."""

    def __init__(self, fn: Callable[[], Report]) -> None:
        self.report: Report | None = None
        self.error: str | None = None
        self._done = threading.Event()

        def run() -> None:
            try:
                self.report = fn()
            except Exception as exc:  # the safe default applies; the error is recorded
                self.error = f"{type(exc).__name__}: {exc}"
            finally:
                self._done.set()

        threading.Thread(target=run, name="sleuth-attribute", daemon=True).start()

    def wait(self, timeout: float | None) -> bool:
        return self._done.wait(timeout)


class AttributionLink:
    """One supervisor's link to its attribution: ``config.attributor`` (local) or ``config.service``.

    ``signalled()`` is the signal the supervisor got (None before one): waits end on it.  ``note``
    keeps a line for the user and the cycles file; ``append`` writes an event to the cycles file.
    """

    def __init__(
        self,
        config: SuperviseConfig,
        secrets: Secrets,
        *,
        signalled: Callable[[], int | None],
        note: Callable[[str], None],
        append: Callable[[dict[str, Any]], None],
    ) -> None:
        self.c = config
        self.client = ServiceClient(config.service) if config.service else None
        #: the workload's secrets: kept out of what is posted to the service
        self.secrets = secrets
        self.signalled, self.note, self.append = signalled, note, append

    @property
    def follower(self) -> bool:
        """True on a node that follows the leader's outcome (several nodes, not the leader)."""
        return self.client is not None and self.c.nodes > 1 and not self.c.leader

    def check_job_id(self, cycle: int) -> None:
        """Refuse a ``--job-id`` whose next cycle this node already posted: an earlier supervision's.

        Within one supervision a node posts a cycle once, and never the one it is about to start;
        such a record (a fresh --log-dir, the job id reused) was once read as this failure's
        decision (the old run's root), and the leader's watch took it for a failure elsewhere.
        """
        if self.client is None:
            return
        try:
            rec = self.client.get(self.c.job_id, str(cycle))
        except ServiceUnavailable:  # the cycle goes on; the post says so if it is still down
            return
        node = str(self.c.node_rank)
        if rec is not None and node in (*rec.get("posted_nodes", ()), *rec.get("late_nodes", ())):
            raise UsageError(
                f"--job-id {self.c.job_id}: the service already holds cycle {cycle} of this job, posted"
                f" by node {node} in an earlier supervision",
                hint=f"give a new --job-id, or the --log-dir of that supervision ({self.c.log_dir} has"
                f" {'no' if cycle == 0 else 'other'} cycles) to continue it",
            )

    def watch(self, cycle: int) -> bool:
        """True when the job moved on without this node (a failure elsewhere, or the leader's outcome)."""
        if self.client is None or self.c.nodes <= 1:
            return False
        try:
            if self.c.leader:
                return self.client.get(self.c.job_id, str(cycle)) is not None
            return self.client.get_outcome(self.c.job_id, str(cycle)) is not None
        except ServiceUnavailable:
            return False

    def trigger(
        self, cycle: int, log: Path, progress: bool | None, started: float, history: Sequence[CycleRecord]
    ) -> Pending | None:
        """Start the attribution without waiting for it; lines timed before ``started`` (an earlier
        cycle's, in a kernel log or a log appended across restarts that the workload shows) are
        not this cycle's; ``history`` is the supervision's cycles before this one."""
        if self.c.attributor is not None:
            attributor, history = self.c.attributor, list(history)
            return Pending(
                lambda: attributor.attribute(
                    [LogInput.file(log, strict=False)],
                    history=history,
                    progress=progress,
                    secrets=self.secrets,
                    job_start=started,
                )
            )
        if self.client is not None:
            name = f"node{self.c.node_rank}/cycle-{cycle:03d}.log"
            size = SERVICE_LOG_BYTES
            while True:
                # the workload's own bytes: a NUL would make the service refuse the whole log
                text = str(self.secrets.scrub(LogInput.file(log, strict=False).tail(size))).replace(
                    "\x00", "\ufffd"
                )
                try:
                    self.client.submit(
                        self.c.job_id,
                        str(cycle),
                        [(name, text)],
                        progress=progress,
                        node=str(self.c.node_rank),
                        nodes=self.c.nodes,
                        job_start=started,
                    )
                except ServiceUnavailable as exc:
                    if exc.http_status == 413 and size > MIN_SERVICE_LOG_BYTES:
                        size //= 4  # over the service's --max-log-mb: the failure is at the end
                        continue
                    self.note(f"cycle {cycle}: service unreachable at trigger time ({exc}); going on")
                break
        return None

    def read_decision(self, cycle: int, pending: Pending | None) -> tuple[dict[str, Any] | None, str]:
        """The attribution's report (as JSON) within the decision timeout, or (None, why not)."""
        timeout = self.c.decision_timeout
        if pending is not None:
            deadline = time.monotonic() + timeout
            # in slices: a Ctrl-C while the decision is awaited must end supervision now
            while not pending.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
                if (got := self.signalled()) is not None:
                    return None, f"interrupted by signal {got}"
                if time.monotonic() >= deadline:
                    return None, f"no decision within {timeout:g}s"
            if pending.report is None:
                return None, f"attribution failed: {pending.error}"
            return pending.report.to_json(), ""
        if self.client is None:
            return None, "no attribution configured"
        try:
            deadline = time.monotonic() + timeout
            while True:  # short polls: a Ctrl-C while the decision is awaited must end supervision now
                rec = self.client.get(
                    self.c.job_id, str(cycle), wait_s=min(2.0, max(0.0, deadline - time.monotonic()))
                )
                if rec is None or rec.get("status") in ("done", "error"):
                    break
                if self.signalled() is not None or time.monotonic() >= deadline:
                    break
        except ServiceUnavailable as exc:
            return None, f"service unreachable at read time ({exc})"
        if rec is None:
            return None, "the service has no record of this cycle"
        if rec.get("status") == "error":
            return None, f"attribution failed on the service: {rec.get('error')}"
        if rec.get("status") != "done":
            return None, f"no decision within {timeout:g}s"
        return rec, ""

    def watch_late(self, cycle: int, pending: Pending | None) -> None:
        """Log (and drop) a decision that arrives after the cycle was already restarted."""

        def wait_late() -> None:
            deadline = time.monotonic() + max(300.0, 10 * self.c.decision_timeout)
            action = None
            if pending is not None:
                if pending.wait(max(0.0, deadline - time.monotonic())) and pending.report is not None:
                    action = pending.report.decision.action.value
            elif self.client is not None:
                while time.monotonic() < deadline and action is None:
                    try:
                        rec = self.client.get(self.c.job_id, str(cycle), wait_s=5.0)
                    except ServiceUnavailable:
                        time.sleep(1.0)
                        continue
                    if rec and rec.get("status") == "done":
                        action = (rec.get("decision") or {}).get("action")
            if action is not None:
                self.append(
                    {
                        "event": "late_decision",
                        "cycle": cycle,
                        "action": action,
                        "dropped": True,
                        "t": round(time.time(), 3),
                        "why": "the cycle had already been restarted",
                    }
                )

        threading.Thread(target=wait_late, name=f"sleuth-late-{cycle}", daemon=True).start()

    def follow(self, cycle: int) -> tuple[str, str, str]:
        """A follower's ``(outcome, reason, decided_by)``: the leader's, or RESTART when it cannot be
        had in time."""
        assert self.client is not None
        deadline = time.monotonic() + self.c.decision_timeout + self.c.follow_margin_s
        while time.monotonic() < deadline and self.signalled() is None:
            try:
                got = self.client.get_outcome(
                    self.c.job_id, str(cycle), wait_s=min(5.0, self.c.decision_timeout)
                )
            except ServiceUnavailable as exc:
                return (
                    "restart",
                    f"service unreachable at read time ({exc}): RESTART (safe default)",
                    "default",
                )
            if got is not None:
                outcome = "stop" if got.get("action") == "STOP" else "restart"
                return outcome, f"leader: {got.get('reason', '')}", f"leader ({got.get('decided_by', '')})"
        return "restart", "no outcome from the leader in time: RESTART (safe default)", "default"

    def record_outcome(self, cycle: int, outcome: str, reason: str, decided_by: str) -> None:
        """The leader writes the cycle's outcome on the service (first write wins)."""
        if self.client is None or self.c.nodes <= 1:
            return
        client = self.client
        action = "STOP" if outcome == "stop" else "RESTART"
        reason = str(self.secrets.scrub(reason))

        def put() -> Any:
            return client.put_outcome(self.c.job_id, str(cycle), action=action, decided_by=decided_by,
                                      reason=reason, node=str(self.c.node_rank))  # fmt: skip

        try:
            if put() is None:
                # no node's logs reached the service: create the record so followers can read the outcome
                client.submit(
                    self.c.job_id, str(cycle), [("none", "")], node=str(self.c.node_rank), nodes=self.c.nodes
                )
                put()
        except ServiceUnavailable as exc:
            self.note(f"cycle {cycle}: could not record the outcome on the service ({exc})")
