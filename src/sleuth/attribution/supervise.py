"""``sleuth supervise``'s library half: run a workload, and on each failure attribute, restart or stop.

One *cycle* is one run of the workload (``SLEUTH_CYCLE``; ``SLEUTH_RESTARTS_LEFT`` says how many
restarts remain).  Its output goes to ``<log_dir>/cycle-NNN/output.log`` and one line per cycle to
``<log_dir>/cycles.jsonl`` (appended, flushed).  On a failure the attribution is *triggered*
without blocking (a local analysis thread, or a POST to the service), the restart is prepared
(``restart_delay``), then the decision is read with ``decision_timeout``; no decision in time
means RESTART (the safe default).  A decision that arrives later is logged to ``cycles.jsonl``
as ``late_decision`` and dropped, never acted on.

The supervisor stops on a STOP under ``enforce`` (shadow records it and restarts), on an
exhausted restart budget, or after ``max_no_progress_cycles`` failed cycles in a row whose logs
showed no progress (``progress_regex``).  SIGTERM/SIGINT are forwarded to the workload's
process group and end supervision; what is left of the workload ``kill_grace_s`` later (its
leader, or what the leader left running, such as the saver its trap started) is stopped: SIGTERM,
then SIGKILL after another ``kill_grace_s``.  What a cycle's leader leaves running when it exits,
and the whole workload when a multi-node job moves on without this node, are stopped the same way
(SIGTERM, ``kill_grace_s``, SIGKILL), and so is what a killed (kill -9) supervisor left running,
by the rerun on the same log dir before its first cycle (:func:`sleuth.runner.reap_orphans`).
The workload includes the processes that left its group (``setsid``, daemons): they carry the
cycle's ``SLEUTH_TRIAL_DIR`` marker and, on Linux, this process is their subreaper
(:mod:`sleuth.reaper`), so every stop above takes them too, and the next cycle starts only once
what a cycle's stop killed has exited (waited for up to :data:`SETTLE_S`; a process freeing a
GPU's memory takes its time).  The exit status is the workload's last (its leader's; 128+N for
signal N).

Several nodes (``service`` + ``job_id`` + ``nodes``): every node posts its own logs for the cycle
(the service dedupes); only the leader reads the decision and records the cycle's outcome on the
service; the others follow it.  While its workload runs, the leader watches for a failure posted
by any node, and followers watch for the leader's outcome; either ends the local workload, so
the whole job moves to the next cycle together.

This module owns the cycles, the workload's process group and the signals, and the take-up after a
killed supervisor; how a decision is had (triggered, read, a late one dropped; the nodes' watch, the
leader's outcome recorded and followed) is :mod:`._supervise_link`'s, and what it becomes (shadow or
enforce, the restart budget, cycles without progress) :mod:`._supervise_policy`'s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from sleuth import hangup
from sleuth.attribution._cycles import resume_state
from sleuth.attribution._supervise_link import AttributionLink, Pending
from sleuth.attribution._supervise_policy import CycleOutcome, apply_policy
from sleuth.attribution.analyze import Attributor
from sleuth.attribution.decide import CycleRecord
from sleuth.attribution.logs import LogInput
from sleuth.attribution.model import Mode
from sleuth.errors import UsageError
from sleuth.runner import ProcessGroup, reap_orphans, spawn_group
from sleuth.secrets import Secrets

__all__ = ["SETTLE_S", "CycleOutcome", "SuperviseConfig", "Supervisor"]

#: how long the next cycle waits for what the last cycle's stop SIGKILLed to exit
SETTLE_S = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SuperviseConfig:
    """What to run and how to react to its failures."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path | None = None
    log_dir: Path
    max_restarts: int = 3
    decision_timeout: float = 60.0
    restart_delay: float = 0.0
    mode: Mode = Mode.SHADOW
    progress_regex: str | None = None
    max_no_progress_cycles: int = 3
    #: local attribution (None with a service)
    attributor: Attributor | None = None
    service: str | None = None
    job_id: str = "job"
    nodes: int = 1
    node_rank: int = 0
    leader: bool = True
    poll_s: float = 0.5
    kill_grace_s: float = 5.0
    #: how long a follower waits for the leader's outcome beyond the decision timeout
    follow_margin_s: float = 30.0


class Supervisor:
    """Runs cycles until the workload succeeds or a stop condition holds."""

    def __init__(self, config: SuperviseConfig) -> None:
        self.c = config
        self._progress = re.compile(config.progress_regex.encode()) if config.progress_regex else None
        self._group: ProcessGroup | None = None
        #: the last cycle's workload, stopped: the next cycle waits for it to be gone
        self._last: ProcessGroup | None = None
        self._signalled: int | None = None
        #: when the first signal came (``time.monotonic()``): the workload's grace runs from then
        self._signalled_at = 0.0
        self._lock = threading.Lock()
        self.history: list[CycleRecord] = []
        self.cycles_path = config.log_dir / "cycles.jsonl"
        self.notes: list[str] = []
        #: told each note as it is made (the CLI prints it)
        self._on_note: Callable[[str], None] | None = None
        self.restarts_used = 0
        #: the workload's secrets (its environment's and its command line's): kept out of
        #: cycles.jsonl, the attribution and what is posted to the service
        self.secrets = Secrets.of(config.env).merged(Secrets.of_argv(config.argv))
        self.link = AttributionLink(
            config, self.secrets, signalled=self._got_signal, note=self.note, append=self._append
        )

    # --- records ---------------------------------------------------------------------------------

    def _append(self, obj: dict[str, Any]) -> None:
        line = json.dumps(self.secrets.scrub(obj), default=str)
        with self._lock, open(self.cycles_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()

    def note(self, text: str) -> None:
        """Keep a line for the CLI (``on_note``, printed as progress) and the cycles file."""
        text = self.secrets.scrub(text)  # an error's text may carry a URL's credentials
        self.notes.append(text)
        self._append({"event": "note", "t": round(time.time(), 3), "text": text})
        if self._on_note is not None:
            self._on_note(text)

    # --- signals ---------------------------------------------------------------------------------

    def _got_signal(self) -> int | None:
        """The signal the supervisor got (set by the handler at any time), or None."""
        return self._signalled

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:  # the terminal is gone: the lines about the cycle must not fail
            hangup.detach()
        if self._signalled is None:
            self._signalled_at = time.monotonic()
        self._signalled = signum
        group = self._group
        if group is not None:
            group.signal(signum)

    # --- one cycle -------------------------------------------------------------------------------

    def _run_workload(self, cycle: int, log: Path) -> tuple[int | None, int | None, bool]:
        env = {
            **self.c.env,
            "SLEUTH_CYCLE": str(cycle),
            "SLEUTH_RESTARTS_LEFT": str(max(0, self.c.max_restarts - self.restarts_used)),
        }
        # the runner's marker (SLEUTH_TRIAL_DIR): what left the group is stopped with it, and a rerun
        # after a kill -9 of this supervisor finds and stops all of it
        group = spawn_group(self.c.argv, cwd=self.c.cwd, env=env, output=log, grace_s=self.c.kill_grace_s,
                            trial_dir=os.path.abspath(log.parent))  # fmt: skip
        spawned = time.monotonic()
        self._group = group
        got = self._got_signal()
        if got is not None:  # the signal came while it was being started: the handler missed it
            group.signal(got)
        interrupted = False
        try:
            while group.wait(self.c.poll_s) is None and self._signalled is None:
                if self.link.watch(cycle):
                    interrupted = True
                    break
            if self._signalled is not None:
                # forwarded: the whole workload has the grace to end (its leader may exit before the
                # saver its trap started)
                grace_end = max(self._signalled_at, spawned) + self.c.kill_grace_s
                group.wait_all(max(0.0, grace_end - time.monotonic()))
            # what is left is stopped: SIGTERM, the grace, SIGKILL (the whole workload when the job
            # moved on; what a signal's grace left; the helpers a leader that exited left running, in
            # its group or out of it)
            code = group.terminate(self.c.kill_grace_s)
        finally:
            group.kill_group()
            self._group = None
            self._last = group
        if code < 0:
            return None, -code, interrupted
        return code, None, interrupted

    def _settle(self, cycle: int) -> None:
        """Wait for what the last cycle's stop SIGKILLed to exit (up to :data:`SETTLE_S`; a signal
        ends the wait): the next cycle would find its GPU memory or its port still taken."""
        last, self._last = self._last, None
        if last is None:
            return
        until = time.monotonic() + SETTLE_S
        while not last.wait_gone(min(0.25, max(0.0, until - time.monotonic()))):
            if self._signalled is not None:
                return
            if time.monotonic() >= until:
                self.note(f"processes of cycle {cycle - 1} still exiting after SIGKILL (waited "
                          f"{SETTLE_S:g}s); cycle {cycle} starts anyway")  # fmt: skip
                return

    def _saw_progress(self, log: Path) -> bool | None:
        if self._progress is None:
            return None
        return any(self._progress.search(chunk) for chunk in LogInput.file(log, strict=False).chunks())

    def _decide(self, cycle: int, pending: Pending | None, progress: bool | None) -> CycleOutcome:
        report, why = self.link.read_decision(cycle, pending)
        if report is None:
            self.link.watch_late(cycle, pending)
        out, record = apply_policy(
            cycle, report, why, progress=progress, history=self.history, mode=self.c.mode,
            restarts_left=self.c.max_restarts - self.restarts_used, max_restarts=self.c.max_restarts,
            max_no_progress_cycles=self.c.max_no_progress_cycles,
        )  # fmt: skip
        self.history.append(record)
        return out

    # --- the loop --------------------------------------------------------------------------------

    def run(
        self,
        on_cycle: Callable[[CycleOutcome], None] | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> int:
        """Supervise until done; the workload's final exit status.  ``on_cycle`` is told each
        cycle's outcome, ``on_note`` each note (an orphan stopped, the service unreachable)."""
        self._on_note = on_note
        self.link.check_job_id(resume_state(self.cycles_path).next_cycle)
        try:
            self.c.log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # read-only, no permission, a missing mount: bad input, no traceback
            raise UsageError(f"--log-dir {self.c.log_dir}: cannot create it: {exc.strerror or exc}") from None
        lock = self._lock_log_dir()
        # SIGHUP (the terminal closed) as SIGTERM, unless it is ignored (nohup)
        hup = () if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN else (signal.SIGHUP,)
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM, *hup)}
        marker = os.environ.get("SLEUTH_TRIAL_DIR")
        try:
            taken_up = self._take_up()
            # the runner's marker on what the local attribution starts (command and MCP sources):
            # a rerun after a kill -9 of this supervisor stops them like the workload
            os.environ["SLEUTH_TRIAL_DIR"] = os.path.abspath(self.c.log_dir / "sources")
            return self._loop(on_cycle, taken_up)
        finally:
            if marker is None:
                os.environ.pop("SLEUTH_TRIAL_DIR", None)
            else:
                os.environ["SLEUTH_TRIAL_DIR"] = marker
            for s, h in old.items():
                signal.signal(s, h)
            lock.close()

    def _lock_log_dir(self) -> IO[str]:
        """One supervisor per log dir (the lock dies with its process: a kill -9 leaves none)."""
        from sleuth.lockfile import lock_file

        return lock_file(
            self.c.log_dir / ".lock",
            f"--log-dir {self.c.log_dir}",
            "in use by another sleuth supervise",
            "stop it first, or give another --log-dir",
        )

    def _take_up(self) -> int:
        """Stop what a killed supervisor left running (SIGTERM, ``kill_grace_s``, SIGKILL, then waited
        for: a trap's checkpoint save gets its grace; a signal to the supervisor cuts the grace, and
        no cycle starts); the first cycle number of this run."""
        killed = reap_orphans(self.c.log_dir, self.c.kill_grace_s, stop=lambda: self._signalled is not None)
        state = resume_state(self.cycles_path)
        for cycle in state.lost:
            self._append(
                {
                    "event": "cycle",
                    "cycle": cycle,
                    "outcome": "lost",
                    "reason": "the supervisor was killed while this cycle ran",
                    "t": round(time.time(), 3),
                }
            )
        if killed:
            self.note(f"stopped {killed} workload process group(s) left running by a killed supervisor")
        # the cycles cut just now were restarts too: a supervisor killed with its workload every
        # cycle (an OOM that takes both) restarted it for ever, never spending the budget
        self.restarts_used, self.history = state.restarts_used + len(state.lost), state.history
        return state.next_cycle

    def _loop(self, on_cycle: Callable[[CycleOutcome], None] | None, cycle: int) -> int:
        while True:
            self._settle(cycle)
            got = self._got_signal()
            if got is not None:  # Ctrl-C while starting (or taking up a killed run): start nothing
                self.note(f"supervisor got signal {got} before cycle {cycle} started; not started")
                return 128 + got
            cycle_dir = self.c.log_dir / f"cycle-{cycle:03d}"
            cycle_dir.mkdir(parents=True, exist_ok=True)
            log = cycle_dir / "output.log"
            started = time.time()
            self._append({"event": "cycle_start", "cycle": cycle, "t": round(started, 3)})
            rc, sig, interrupted = self._run_workload(cycle, log)
            progress = self._saw_progress(log)
            base: dict[str, Any] = {"rc": rc, "signal": sig, "started": started, "progress": progress}
            if self._signalled is not None:
                out = CycleOutcome(
                    cycle=cycle,
                    rc=rc,
                    signal=sig,
                    failed_here=rc != 0,
                    outcome="signalled",
                    reason=f"supervisor got signal {self._signalled}; forwarded to the workload",
                )
            elif rc == 0 and not interrupted:
                out = CycleOutcome(
                    cycle=cycle,
                    rc=0,
                    signal=None,
                    failed_here=False,
                    outcome="done",
                    reason="the workload succeeded",
                )
            else:
                pending = self.link.trigger(cycle, log, progress, started, self.history)
                # preparing the restart overlaps the analysis (no Event: a signal handler must not lock)
                until = time.monotonic() + self.c.restart_delay
                while self._signalled is None and time.monotonic() < until:
                    time.sleep(min(0.1, until - time.monotonic()))
                if self.link.follower:
                    outcome, reason, decided_by = self.link.follow(cycle)
                    out = CycleOutcome(cycle=cycle, rc=None, signal=None, failed_here=True, outcome=outcome,
                                       reason=reason, decided_by=decided_by)  # fmt: skip
                else:
                    out = self._decide(cycle, pending, progress)
                    if self._signalled is None:
                        self.link.record_outcome(cycle, out.outcome, out.reason, out.decided_by)
                out.rc, out.signal = rc, sig
                out.failed_here = not interrupted
                got = self._got_signal()
                if got is not None:  # Ctrl-C after the workload ended: no new cycle
                    out.outcome = "signalled"
                    out.reason = f"supervisor got signal {got} while deciding; not restarted"
                    out.extra["status"] = 128 + got
            out.progress, out.started, out.ended = progress, started, time.time()
            out.reason = str(self.secrets.scrub(out.reason))
            self._append(
                {
                    **base,
                    "event": "cycle",
                    "cycle": cycle,
                    "log": str(log),
                    "ended": out.ended,
                    "failed_here": out.failed_here,
                    "outcome": out.outcome,
                    "reason": out.reason,
                    "decided_by": out.decided_by,
                    "attribution": _brief(out.attribution),
                }
            )
            if on_cycle is not None:
                on_cycle(out)
            if out.outcome != "restart":
                return int(out.extra.get("status", out.status))
            self.restarts_used += 1
            cycle += 1


def _brief(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The parts of a report worth a cycles.jsonl line."""
    if report is None:
        return None
    return {k: report.get(k) for k in ("decision", "root", "sources")}
