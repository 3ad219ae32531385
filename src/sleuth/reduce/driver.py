"""The reduce driver: baseline, then the fixpoint search, trial by trial, cached, journaled, resumable.

The loop of DESIGN §3: the :class:`~sleuth.reduce.fixpoint.Reduction` proposes points for free
slots; each point becomes a :class:`~sleuth.reduce.plan.Candidate` whose content hash keys the
outcome cache; a candidate runs up to ``per_candidate`` trials (accepted at the first reproducing
one, :mod:`sleuth.reduce.flaky`) and its verdict goes back to the search.  Every trial is journaled
by the engine (with its candidate's hash and number) before the search sees it; resume replays
those trials by hash and number instead of running them, so a deterministic search retraces its
steps without re-running a journaled trial and then carries on.  Each step (the baseline, every
candidate) is journaled too, with the values it tried cut short (:mod:`sleuth.reduce.journaled`), for
the report of a run that has no trace yet; resume reads only the trials, so a journal written before
steps carried their values resumes alike.

``max_wall_clock`` is kept as a deadline, not only checked between trials: no trial of the search
starts when less time is left than a trial takes (the median of the last few trials run), and
trials still running when it passes are stopped (never journaled: a resume runs them); the search
then ends ``budget spent`` with the best point so far.  The baseline always runs whole.
"""

from __future__ import annotations

import logging
import re
import shutil
import statistics
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sleuth.backends import Backend
from sleuth.backends.choice import BackendChoice, make_backend
from sleuth.engine import Engine
from sleuth.errors import InfrastructureError
from sleuth.journal import RunDir
from sleuth.model import Outcome, Trial, TrialSpec
from sleuth.oracle import Oracle, same_failure
from sleuth.reduce.fixpoint import Query, Reduction
from sleuth.reduce.flaky import RateTracker
from sleuth.reduce.journaled import bounded
from sleuth.reduce.plan import Candidate, Plan, materialize
from sleuth.reduce.ranks import WORLD_SIZE_VAR
from sleuth.reduce.scratch import PRIVATE_DIR, PrivateCopies, build_workdir
from sleuth.reduce.scrub import Scrubber
from sleuth.signature import group_signatures, parse_signature

__all__ = ["Driver", "Options", "TrialRecord"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """How to run the search (flags and the spec's budget, validated)."""

    jobs: int = 1
    gpus: tuple[str, ...] = ()
    one_minimal: bool = False
    max_wall_s: float | None = None
    #: what dispatches the trials (``--backend``, ``--backend-opt``)
    backend: BackendChoice = field(default_factory=BackendChoice)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialRecord:
    """One judged trial of one candidate."""

    id: str
    k: int
    outcome: Outcome
    reproduced: bool
    signature: str | None
    wall_s: float
    step: int | None
    replayed: bool
    #: why the trial could not be judged (``oracle raised ValueError: ...``), as the engine recorded it
    reason: str | None = None

    def label(self) -> str:
        """``reproduced`` / ``other_failure`` / ``pass`` / ``skip`` / ``error``."""
        if self.reproduced:
            return "reproduced"
        return "other_failure" if self.outcome is Outcome.FAIL else self.outcome.value


@dataclass(slots=True)
class _Eval:
    cand: Candidate
    queries: list[Query]
    trials: list[TrialRecord] = field(default_factory=list)
    running: int = 0
    cache_hit: bool = False
    started: float = field(default_factory=time.monotonic)


class Driver:
    """One reduction over ``plan`` in ``run_dir`` (see the module docstring)."""

    def __init__(
        self,
        plan: Plan,
        run_dir: RunDir,
        oracle: Oracle,
        options: Options,
        *,
        environ: Mapping[str, str],
        scrubber: Scrubber,
        prepared: Any,
        replay: list[dict[str, Any]] | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.plan = plan
        self.run_dir = run_dir
        self.opt = options
        self.environ = dict(environ)
        self.scrub = scrubber
        self.prepared = prepared
        shown = on_event or (lambda _kind, _data: None)
        #: each list axis's items scrubbed once: the ``best`` of every progress event is made of them
        #: (scrubbing 50,000 rendered file names again for each candidate took longer than the rest
        #: of sleuth's own work on it)
        self._shown_items = {
            a.name: tuple(scrubber.obj(list(a.items))) for a in plan.axes if a.search().is_list
        }

        def on_event_scrubbed(kind: str, data: dict[str, Any]) -> None:
            rest = scrubber.obj({k: v for k, v in data.items() if k != "best"})
            shown(kind, {k: data[k] if k == "best" else rest[k] for k in data})

        #: what the caller shows (the progress lines on stderr): scrubbed as every file is (an axis's
        #: values can hold a secret or a --scrub match, "LINES -> ['needle sekrit-...']"); ``best``
        #: comes scrubbed (:meth:`_best`)
        self.on_event: Callable[[str, dict[str, Any]], None] = on_event_scrubbed
        if backend is None:
            backend = make_backend(options.backend, max(1, options.jobs), options.gpus)
        self.engine = Engine(backend, oracle, run_dir)
        self.replay: dict[tuple[str, int], dict[str, Any]] = {}
        for ev in replay or []:
            if ev.get("event") == "trial" and "candidate" in ev:
                self.replay[(ev["candidate"], int(ev["k"]))] = ev["trial"]
        self.budget = plan.spec.budget
        self.timeout: float | None = plan.spec.workload.timeout
        self.target: str | None = None
        self.rate: RateTracker | None = None
        self.reduction = Reduction([a.search() for a in plan.axes], one_minimal=options.one_minimal)
        self.verdicts: dict[str, tuple[bool, int]] = {}
        self.records: dict[str, list[TrialRecord]] = {}
        self.trace: list[dict[str, Any]] = []
        self.trials_used = 0
        self.wasted = 0
        self.stopped: str | None = None
        self._evals: dict[str, _Eval] = {}
        self._running: dict[Path, str] = {}
        self._ready: deque[tuple[str, TrialRecord]] = deque()
        self._locks: dict[str, threading.Lock] = {}
        #: the one private copy of each large file of the cwd that scratch copies hard-link
        self._copies = PrivateCopies(run_dir.path / PRIVATE_DIR)
        self._t0 = time.monotonic()
        #: the wall times of the last trials run (not replayed): what the next one is expected to take
        self._walls: deque[float] = deque(maxlen=5)
        self._step_rx = {
            a.name: re.compile(a.spec.step_regex) for a in plan.axes if getattr(a.spec, "step_regex", None)
        }

    # --- trials -------------------------------------------------------------------------------

    def _prepare(self, cand: Candidate, trial_dir: Path) -> TrialSpec:
        """In the worker: lay out the candidate's files once, then the spec to run."""
        cwd = self.plan.cwd
        if cand.files:
            work = trial_dir.parent / "work"
            with self._locks.setdefault(cand.key, threading.Lock()):
                if not (work / ".sleuth-ready").exists():
                    shutil.rmtree(work, ignore_errors=True)
                    build_workdir(self.plan, cand, work, self._copies)
                    (work / ".sleuth-ready").touch()
            cwd = work
        env = {**self.environ, **cand.env}
        if cand.world_size is not None:
            env[WORLD_SIZE_VAR] = str(cand.world_size)
        argv = cand.argv
        shown = tuple(self.scrub.text(a) for a in argv)
        if shown != argv:  # the engine journals argv: start through a trampoline that hides it
            import json

            env["SLEUTH_EXEC_ARGV"] = json.dumps(list(argv))
            argv = (sys.executable, "-m", "sleuth.reduce._exec", *shown)
        spec = TrialSpec(argv=argv, env=env, cwd=str(cwd), timeout_s=self.timeout, label=cand.short)
        from dataclasses import replace

        from sleuth.environments.container import PreparedContainer
        from sleuth.environments.pyxis import PreparedPyxis

        p = self.prepared
        extra = {k: env[k] for k in (*cand.env, *(k for k in env if k.startswith("SLEUTH_")))}
        # a container sees only the variables named, and starts in the candidate's scratch copy
        if isinstance(p, PreparedContainer):
            inside = replace(p, env=replace(p.env, workdir=str(cwd)))
            return inside.wrap(spec, output_dir=trial_dir, extra_env=extra)
        if isinstance(p, PreparedPyxis):
            on_node = replace(p, env=replace(p.env, workdir=str(cwd)))
            return on_node.wrap(spec, output_dir=trial_dir, extra_env=extra)
        wrapped: TrialSpec = self.prepared.wrap(spec)
        return wrapped

    def _submit(self, key: str) -> None:
        ev = self._evals[key]
        k = len(ev.trials) + ev.running + 1
        ev.running += 1
        self.trials_used += 1
        got = self.replay.get((key, k))
        if got is not None:
            self._ready.append((key, self._record(ev.cand, got, k, replayed=True)))
            return
        subdir = f"candidates/{ev.cand.short}"
        self._running[self.run_dir.path / subdir / f"t{k}"] = key
        q = ev.queries[0] if ev.queries else None
        self.engine.submit(
            TrialSpec(argv=ev.cand.argv, label=ev.cand.short),
            f"t{k}",
            subdir,
            prepare=partial(self._prepare, ev.cand),
            candidate=key,
            k=k,
            axis=q.axis if q else "baseline",
        )

    def _record(self, cand: Candidate, rec: Mapping[str, Any], k: int, *, replayed: bool) -> TrialRecord:
        outcome = Outcome(rec["outcome"])
        # scrubbed as the journal is at the end of a run (Ctrl-C too): a trial replayed from it and
        # one run now compare alike ("project <redacted>" never matched "project zebrafishy")
        sig = self.scrub.text(rec["signature"]) if rec.get("signature") else None
        step = None
        if outcome is Outcome.FAIL and self._step_rx:
            step = self._scan_step(self.run_dir.path / "candidates" / cand.short / f"t{k}")
        return TrialRecord(
            id=f"{cand.short}/t{k}",
            k=k,
            outcome=outcome,
            reproduced=self._reproduces(outcome, sig),
            signature=sig,
            wall_s=float(rec.get("wall_s") or 0.0),
            step=step,
            replayed=replayed,
            reason=rec.get("error") or rec.get("reason"),
        )

    def _scan_step(self, trial_dir: Path) -> int | None:
        best: int | None = None
        for rx in self._step_rx.values():
            for name in ("stdout", "stderr"):
                try:
                    text = (trial_dir / name).read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                found = [m.group(1) if rx.groups else m.group(0) for m in rx.finditer(text)]
                nums = [int(x) for x in found if x.isdigit()]
                if nums:
                    best = nums[-1] if best is None else max(best, nums[-1])
        return best

    def _reproduces(self, outcome: Outcome, sig: str | None) -> bool:
        if outcome is not Outcome.FAIL or sig is None:
            return False
        if self.plan.spec.oracle.kind == "regex":
            return parse_signature(sig).head == "output"
        return self.target is not None and same_failure(sig, self.target)

    def _next(self, timeout: float | None = None) -> tuple[str, TrialRecord]:
        """The next judged trial; :class:`TimeoutError` when none finished within ``timeout``."""
        if self._ready:
            return self._ready.popleft()
        trial: Trial = self.engine.next_completed(timeout)
        key = self._running.pop(trial.result.trial_dir)
        ev = self._evals.get(key)
        cand = ev.cand if ev is not None else materialize(self.plan, self.plan.initial_point())
        rec = self._record(cand, trial.to_dict(), int(trial.result.trial_dir.name[1:]), replayed=False)
        self._walls.append(rec.wall_s)
        return key, rec

    @property
    def _inflight(self) -> int:
        return self.engine.pending + len(self._ready)

    # --- baseline -----------------------------------------------------------------------------

    def baseline(self) -> dict[str, Any]:
        """Run the original ``baseline_trials`` times (twice that when it is flaky); fix the target."""
        point = self.plan.initial_point()
        cand = materialize(self.plan, point)
        self._evals[cand.key] = _Eval(cand, [])
        n = self.budget.baseline_trials
        records = self._batch(cand.key, n)
        if self.plan.spec.oracle.kind != "regex":
            fails = [r.signature for r in records if r.outcome is Outcome.FAIL and r.signature]
            if fails:
                groups = group_signatures(fails)
                self.target = max(groups.items(), key=lambda kv: len(kv[1]))[0]
        records = [self._rejudge(r) for r in records]
        hits = sum(r.reproduced for r in records)
        if 0 < hits < len(records):  # flaky: measure the rate on twice as many runs
            records += [self._rejudge(r) for r in self._batch(cand.key, n)]
        self._evals.pop(cand.key)
        self._drop_work(cand)
        judged = [r for r in records if r.outcome in (Outcome.PASS, Outcome.FAIL)]
        hits = sum(r.reproduced for r in judged)
        if not judged and records:
            why = records[0].reason
            raise InfrastructureError(
                f"the original workload could not be run: {records[0].outcome.value}"
                + (f" ({self.scrub.text(why)})" if why else ""),
                hint="see the baseline trials under candidates/ in the run dir",
            )
        self.records[cand.key] = records
        fixed = None if self.budget.trials_per_candidate == "auto" else int(self.budget.trials_per_candidate)
        self.rate = RateTracker(hits, len(judged), self.budget.confidence, fixed=fixed)
        if self.timeout is None:
            self.timeout = max(5.0, 10.0 * max((r.wall_s for r in records), default=0.5))
        self.verdicts[cand.key] = (hits > 0, len(records))
        for r in records:
            self.reduction.note_seconds(point, r.wall_s)
            if r.reproduced and r.step is not None:
                self._note_step(r.step)
        info = {
            "candidate": cand.key,
            "trials": len(records),
            "reproduced": hits,
            "judged": len(judged),
            "signature": self.target,
            "timeout_s": self.timeout,
            "outcomes": [r.label() for r in records],
            **self.rate.describe(),
        }
        self.trace.append(
            {
                "phase": "baseline",
                "axis": None,
                "hash": cand.key,
                "values": self._render(point, brief=True),
                "trials": len(records),
                "outcomes": [r.label() for r in records],
                "signature": self.target,
                "cache_hit": False,
                "seconds": round(sum(r.wall_s for r in records), 3),
                "verdict": "reproduces" if hits else "does_not_reproduce",
            }
        )
        self._journal("baseline", {**info, "values": self._render(point, brief=True)})
        self.on_event("baseline", {"best": self._best(point), "trials_used": self.trials_used})
        return info

    def _batch(self, key: str, count: int) -> list[TrialRecord]:
        """Run ``count`` more trials of one candidate, ``jobs`` at a time."""
        ev, out = self._evals[key], []
        while count or ev.running:
            while count and self._inflight < max(1, self.opt.jobs):
                self._submit(key)
                count -= 1
            _, rec = self._next()
            ev.running -= 1
            ev.trials.append(rec)
            out.append(rec)
            self.on_event("trial", {"phase": "baseline", "trials_used": self.trials_used})
        return out

    def _rejudge(self, r: TrialRecord) -> TrialRecord:
        """``r`` judged again now that the target signature is known."""
        from dataclasses import replace

        return replace(r, reproduced=self._reproduces(r.outcome, r.signature))

    def _note_step(self, step: int) -> None:
        for name in self._step_rx:
            self.reduction.hint_axis(name, step)

    # --- the search ---------------------------------------------------------------------------

    def _render(self, point: Mapping[str, Any], *, brief: bool = False) -> dict[str, Any]:
        return {a.name: a.brief(point[a.name]) if brief else a.render(point[a.name]) for a in self.plan.axes}

    def _best(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """``point`` rendered and scrubbed, as :meth:`Scrubber.obj` would of :meth:`_render`'s (a list
        axis's items from those scrubbed once)."""
        out: dict[str, Any] = {}
        for a in self.plan.axes:
            items = self._shown_items.get(a.name)
            v = point[a.name]
            out[a.name] = (
                [items[i] for i in v] if items is not None else self.scrub.obj({a.name: a.render(v)})[a.name]
            )
        return out

    def _over_budget(self) -> str | None:
        if self.trials_used >= self.budget.max_trials:
            return f"budget spent: max_trials ({self.budget.max_trials}) reached"
        left = self._time_left()
        if left is not None and left <= 0:
            return f"budget spent: max_wall_clock ({self.opt.max_wall_s:g}s) reached"
        return None

    def _time_left(self) -> float | None:
        """Seconds left of ``max_wall_clock`` (None without one)."""
        if self.opt.max_wall_s is None:
            return None
        return self._t0 + self.opt.max_wall_s - time.monotonic()

    def _no_time_for_a_trial(self) -> str | None:
        """Why no trial may start now: less of ``max_wall_clock`` is left than a trial takes."""
        left = self._time_left()
        expected = statistics.median(self._walls) if self._walls else 0.0
        if left is None or left >= expected:
            return None
        return (
            f"budget spent: max_wall_clock ({self.opt.max_wall_s:g}s): {max(0.0, left):.1f}s left, "
            f"less than a trial takes (about {expected:.1f}s)"
        )

    def _start(self, q: Query) -> None:
        cand = materialize(self.plan, q.point)
        if cand.key in self._evals:  # the same candidate is being tested for another query
            self._evals[cand.key].queries.append(q)
            return
        assert self.rate is not None
        verdict = self.verdicts.get(cand.key)
        ev = _Eval(cand, [q], trials=list(self.records.get(cand.key, [])))
        if verdict is not None and (verdict[0] or verdict[1] >= self.rate.per_candidate):
            ev.cache_hit = True
            self._settle(ev, verdict[0])
            return
        self._evals[cand.key] = ev
        self._submit(cand.key)

    def _settle(self, ev: _Eval, reproduced: bool) -> None:
        assert self.rate is not None
        key = ev.cand.key
        self._evals.pop(key, None)
        self.verdicts[key] = (reproduced, len(ev.trials))
        self.records[key] = ev.trials
        secs = [t.wall_s for t in ev.trials if not t.replayed] or [t.wall_s for t in ev.trials]
        if reproduced and not ev.cache_hit:
            self.rate.accepted(len(ev.trials))
        elif not reproduced:
            self.rate.rejected(len(ev.trials))
        for q in ev.queries:
            used = self.reduction.observe(q, reproduced, min(secs) if secs and reproduced else None)
            if not used:
                self.wasted += len(ev.trials) if not ev.cache_hit else 0
            sig = next((t.signature for t in ev.trials if t.reproduced), None)
            sig = sig or next((t.signature for t in ev.trials if t.signature), None)
            rec = {
                "phase": "search",
                "round": q.round,
                "axis": q.axis,
                "hash": key,
                "values": {q.axis: self.plan.axis(q.axis).brief(q.value)},
                "trials": 0 if ev.cache_hit else len(ev.trials),
                "outcomes": [t.label() for t in ev.trials],
                "signature": sig,
                "cache_hit": ev.cache_hit,
                "seconds": round(sum(secs), 3),
                "verdict": "reproduces" if reproduced else "rejected",
                "speculative_wasted": not used,
                "replayed": any(t.replayed for t in ev.trials),
            }
            self.trace.append(rec)
            self._journal("candidate", rec)
            self.on_event(
                "candidate",
                {**rec, "best": self._best(self.reduction.result()), "trials_used": self.trials_used},
            )
        self._drop_work(ev.cand)

    def _journal(self, event: str, data: Mapping[str, Any]) -> None:
        """Journal a step scrubbed, then its ``values`` cut short (:mod:`sleuth.reduce.journaled`)."""
        shown = self.scrub.obj(data)
        self.run_dir.journal.append(event, **{**shown, "values": bounded(shown["values"])})

    def _drop_work(self, cand: Candidate) -> None:
        """A judged candidate's scratch copy is not needed again (the bundle writes its own)."""
        if cand.files:
            shutil.rmtree(self.run_dir.path / "candidates" / cand.short / "work", ignore_errors=True)

    def _take(self, key: str, rec: TrialRecord) -> None:
        ev = self._evals.get(key)
        if ev is None:  # its candidate was settled while this trial ran (parallel trials of one candidate)
            self.wasted += 1
            return
        ev.running -= 1
        ev.trials.append(rec)
        assert self.rate is not None
        if rec.reproduced:
            if rec.step is not None:
                self._note_step(rec.step)
            self._settle(ev, True)
        elif len(ev.trials) >= self.rate.per_candidate and ev.running == 0:
            self._settle(ev, False)

    def search(self) -> None:
        """Run the fixpoint search until it is done or a budget stops it."""
        assert self.rate is not None
        jobs = max(1, self.opt.jobs)
        while True:
            self.stopped = self.stopped or self._over_budget()
            if self.stopped is None:
                # more trials for candidates under test first, then new candidates
                no_time = self._no_time_for_a_trial()
                for key, ev in list(self._evals.items()):
                    if ev.running == 0 and len(ev.trials) >= self.rate.per_candidate:
                        self._settle(ev, False)  # the rate rose: fewer trials are enough now
                    elif self._inflight < jobs and ev.running == 0 and no_time is None:
                        self._submit(key)
                while self._inflight < jobs and self._over_budget() is None and no_time is None:
                    qs = self.reduction.propose(1)
                    if not qs:
                        break
                    self._start(qs[0])
                if not self._inflight and no_time is not None and not self.reduction.done:
                    self.stopped = no_time
            if not self._inflight:
                if self.stopped is not None or self.reduction.done or not self._evals:
                    break
                continue
            left = self._time_left()
            try:
                key, rec = self._next(None if left is None else max(0.0, left))
            except TimeoutError:  # the deadline passed with trials running: they are stopped below
                running = self.engine.pending
                self.stopped = (
                    f"budget spent: max_wall_clock ({self.opt.max_wall_s:g}s) reached; "
                    f"{running} running trial(s) stopped"
                )
                break
            self._take(key, rec)
            self.on_event(
                "trial",
                {"phase": "search", "trials_used": self.trials_used, "axis": self.reduction.current_axis},
            )
        if self.stopped is not None:
            self.trials_used -= self.engine.pending  # stopped before they ended: never journaled
            self.engine.cancel_all()

    def close(self) -> None:
        """Stop the workers."""
        self.engine.close()
