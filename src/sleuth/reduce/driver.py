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

The driver's parts, each in its own module and each given the driver:

* :mod:`sleuth.reduce.trials` -- a candidate's trials: the spec a worker runs (each trial's scratch copy, the
  argv trampoline, a container's workdir) and each finished or replayed trial judged;
* :mod:`sleuth.reduce.baseline` -- the original run before the search: the target signature, the
  rate, the timeout;
* :mod:`sleuth.reduce.verdicts` -- a candidate started (or answered from the cache), its trials
  taken, its verdict settled: told to the search, traced, journaled, shown.

They use the driver's helpers (``_submit``, ``_next``, ``_inflight``, ``_render``, ``_best``,
``_journal``, ``_note_step``, ``_drop_work``) as its own methods did; the state stays here, where
:mod:`sleuth.reduce.finish` reads it.
"""

from __future__ import annotations

import logging
import re
import shutil
import statistics
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
from sleuth.journal import RunDir
from sleuth.model import Trial, TrialSpec
from sleuth.oracle import Oracle
from sleuth.reduce.baseline import run_baseline
from sleuth.reduce.fixpoint import Reduction
from sleuth.reduce.flaky import RateTracker
from sleuth.reduce.journaled import bounded
from sleuth.reduce.layout import Layout
from sleuth.reduce.plan import Candidate, Plan, materialize
from sleuth.reduce.scratch import PRIVATE_DIR, PrivateCopies, file_axes
from sleuth.reduce.scrub import Scrubber
from sleuth.reduce.trials import Evaluation, TrialRecord, judge, scratch_dir, trial_spec
from sleuth.reduce.verdicts import settle, start, take

__all__ = ["Driver", "Options"]

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
        self._evals: dict[str, Evaluation] = {}
        self._running: dict[Path, str] = {}
        self._ready: deque[tuple[str, TrialRecord]] = deque()
        #: the one private copy of each large file of the cwd that scratch copies hard-link
        self._copies = PrivateCopies(run_dir.path / PRIVATE_DIR)
        self._t0 = time.monotonic()
        #: the wall times of the last trials run (not replayed): what the next one is expected to take
        self._walls: deque[float] = deque(maxlen=5)
        self._step_rx = {
            a.name: re.compile(a.spec.step_regex) for a in plan.axes if getattr(a.spec, "step_regex", None)
        }

    # --- trials -------------------------------------------------------------------------------

    def _submit(self, key: str) -> None:
        ev = self._evals[key]
        k = len(ev.trials) + ev.running + 1
        ev.running += 1
        self.trials_used += 1
        got = self.replay.get((key, k))
        if got is not None:
            self._ready.append((key, judge(self, ev.cand, got, k, replayed=True)))
            return
        subdir = f"candidates/{ev.cand.short}"
        self._running[self.run_dir.path / subdir / f"t{k}"] = key
        q = ev.queries[0] if ev.queries else None
        self.engine.submit(
            TrialSpec(argv=ev.cand.argv, label=ev.cand.short),
            f"t{k}",
            subdir,
            prepare=partial(trial_spec, self, ev.cand),
            candidate=key,
            k=k,
            axis=q.axis if q else "baseline",
        )

    def _next(self, timeout: float | None = None) -> tuple[str, TrialRecord]:
        """The next judged trial; :class:`TimeoutError` when none finished within ``timeout``."""
        if self._ready:
            return self._ready.popleft()
        trial: Trial = self.engine.next_completed(timeout)
        key = self._running.pop(trial.result.trial_dir)
        ev = self._evals.get(key)
        cand = ev.cand if ev is not None else materialize(self.plan, self.plan.initial_point())
        rec = judge(self, cand, trial.to_dict(), int(trial.result.trial_dir.name[1:]), replayed=False)
        self._copies.discard(scratch_dir(trial.result.trial_dir))  # judged: not needed again
        self._walls.append(rec.wall_s)
        return key, rec

    @property
    def _inflight(self) -> int:
        return self.engine.pending + len(self._ready)

    # --- baseline -----------------------------------------------------------------------------

    def baseline(self) -> dict[str, Any]:
        """Run the original ``baseline_trials`` times (twice that when it is flaky); fix the target
        (:func:`~sleuth.reduce.baseline.run_baseline`)."""
        return run_baseline(self)

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

    def _journal(self, event: str, data: Mapping[str, Any]) -> None:
        """Journal a step scrubbed, then its ``values`` cut short (:mod:`sleuth.reduce.journaled`)."""
        shown = self.scrub.obj(data)
        self.run_dir.journal.append(event, **{**shown, "values": bounded(shown["values"])})

    def _drop_work(self, cand: Candidate) -> None:
        """A settled candidate's folder of scratch copies (each removed as its trial was judged) is
        not needed again (the bundle writes its own)."""
        shutil.rmtree(self.run_dir.path / "candidates" / cand.short / "work", ignore_errors=True)

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
                        settle(self, ev, False)  # the rate rose: fewer trials are enough now
                    elif self._inflight < jobs and ev.running == 0 and no_time is None:
                        self._submit(key)
                while self._inflight < jobs and self._over_budget() is None and no_time is None:
                    qs = self.reduction.propose(1)
                    if not qs:
                        break
                    start(self, qs[0])
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
            take(self, key, rec)
            self.on_event(
                "trial",
                {"phase": "search", "trials_used": self.trials_used, "axis": self.reduction.current_axis},
            )
        if self.stopped is not None:
            self.trials_used -= self.engine.pending  # stopped before they ended: never journaled
            self.engine.cancel_all()

    def scratch_layout(self) -> Layout:
        """What every trial's scratch copy makes of the cwd: the one listing of the reduction, shared
        with :func:`~sleuth.reduce.scratch.build_workdir` (keyed by the file axes, as it asks)."""
        return self._copies.layout(self.plan.cwd, file_axes(self.plan))

    def close(self) -> None:
        """Stop the workers."""
        self.engine.close()
