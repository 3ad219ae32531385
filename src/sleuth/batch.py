"""``sleuth run``'s library half: run one workload k times, judge, summarize, resume.

The CLI parses flags into a :class:`RunConfig`; :func:`execute` runs the trials through the
:class:`~sleuth.engine.Engine` and returns a :class:`RunSummary`.  The config is journaled first
(``start`` event, secrets redacted), so :func:`load_resume` can rebuild it.  The journal is the
truth, once: a resume replays its ``trial`` events by trial id (never re-appending them), journals
the results a kill -9 left unjournaled (``result.json`` written, event not), and runs only the rest.

Trials are submitted as slots free (``jobs`` plus a small lookahead), and only compact per-trial
data is kept (:class:`~sleuth.run_tally.Tally`), so memory does not grow with ``--trials``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.backends import Backend
from sleuth.backends.choice import make_backend
from sleuth.engine import Engine
from sleuth.environments import Prepared
from sleuth.errors import UsageError
from sleuth.expect import check_metrics, ran_to_completion, wanted_metrics
from sleuth.journal import RunDir
from sleuth.model import Outcome, Trial
from sleuth.oracle import build_oracle
from sleuth.run_config import DEFAULT_MAX_TRIALS, MAX_JOBS, RunConfig, check_counts
from sleuth.run_secrets import RunSecrets, backend_opts_of, pins_of
from sleuth.run_state import RunState, TrialIndex, read_state
from sleuth.run_tally import Tally, exit_code_of

__all__ = [
    "DEFAULT_MAX_TRIALS",
    "MAX_JOBS",
    "RunConfig",
    "RunSummary",
    "SignalGate",
    "adopt_and_clean",
    "check_counts",
    "default_name",
    "execute",
    "load_resume",
    "new_state",
    "record_start",
]

OUTCOMES = frozenset(o.value for o in Outcome)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The summary data of a run (``summary.json``'s ``summary``) and where its records are."""

    data: dict[str, Any]
    run_dir: Path
    index: TrialIndex

    @property
    def exit_code(self) -> int:
        """0 all passed (skips allowed), 1 any FAIL, 2 stopped by a usage error, 4 only infrastructure
        errors, 130 interrupted."""
        return exit_code_of(self.data)


def record_start(config: RunConfig, run_dir: RunDir) -> tuple[RunSecrets, dict[str, Any]]:
    """Journal the ``start`` event; secrets (``--env`` values, tokens in argv) go to a 0600 ``secrets.json``.

    Returns the run's secrets and its config as journaled (secrets hidden).
    """
    data = config.to_dict()
    secrets = RunSecrets.of(config.env, config.argv, pins_of(data), backend_opts_of(data))
    public = secrets.public_config(data, run_dir.path)
    run_dir.journal.append("start", config=public)
    return secrets, public


def new_state(config: RunConfig, public: dict[str, Any]) -> RunState:
    """The state of a run that has not run a trial yet (``public``: its config as journaled)."""
    return RunState(
        public,
        Tally(config.trials),
        Tally(config.warmup),
        TrialIndex({"trials": config.trials, "warmup": config.warmup}),
    )


def _sizes(d: dict[str, Any]) -> tuple[int, int]:
    config = RunConfig.from_dict(d)
    check_counts(trials=config.trials, warmup=config.warmup, jobs=config.jobs)
    return config.trials, config.warmup


def load_resume(path: Path) -> tuple[RunConfig, RunState, RunSecrets]:
    """Read and check the run dir ``path`` for ``--resume`` without touching it.

    A journal sleuth run did not write (another verb's, an edited one, not UTF-8) and redacted
    values that can be found nowhere are ``UsageError`` s naming the file.
    """

    def sizes(d: dict[str, Any]) -> tuple[int, int]:
        try:
            return _sizes(d)
        except (KeyError, TypeError, ValueError, AttributeError, re.error) as exc:
            what = f"lacks {exc}" if isinstance(exc, KeyError) else f"is malformed ({exc})"
            raise UsageError(
                f"{path / 'journal.jsonl'}: the start event's config {what}",
                hint="this journal was not written by this version of sleuth run",
            ) from None
        except UsageError as exc:
            raise UsageError(f"{path / 'journal.jsonl'}: the start event's config: {exc.message}") from None

    state = read_state(path, sizes)
    secrets = RunSecrets.load(path, state.config)
    restored = secrets.restore_config(state.config)
    return RunConfig.from_dict(restored), state, secrets.for_run(restored)


def adopt_and_clean(run_dir: RunDir, config: RunConfig, state: RunState) -> tuple[int, int]:
    """After a kill -9: journal results whose event was lost, and clear trial dirs that have none.

    A trial that finished (``result.json`` written) before its event was appended is not run again;
    a trial that was running has no ``result.json``: its directory is removed so its rerun starts
    with fresh ``stdout``/``stderr`` (a stray process of the killed run cannot write into them).
    Returns (adopted, cleared).
    """
    adopted = cleared = 0
    for subdir, tally in (("trials", state.tally), ("warmup", state.warmup)):
        base = run_dir.path / subdir
        if not base.is_dir():
            continue
        for entry in os.scandir(base):
            digits = entry.name[1:] if subdir == "warmup" and entry.name.startswith("w") else entry.name
            n = int(digits) if digits.isdigit() and config.trial_id(int(digits), subdir) == entry.name else 0
            if not entry.is_dir() or not 0 < n <= tally.planned or tally.done(n):
                continue
            try:
                record = json.loads((Path(entry.path) / "result.json").read_text(encoding="utf-8"))
                ok = (
                    isinstance(record, dict)
                    and record.get("id") == entry.name
                    and record.get("outcome") in OUTCOMES
                )
            except (OSError, ValueError):
                ok = False
            if ok:
                extra = {"warmup": True} if subdir == "warmup" else {}
                run_dir.journal.append("trial", subdir=subdir, adopted=True, **extra, trial=record)
                tally.add(n, record)
                adopted += 1
            else:
                shutil.rmtree(entry.path, ignore_errors=True)
                cleared += 1
    return adopted, cleared


@dataclass(slots=True)
class _Loop:
    """The submission loop of one :func:`execute` call.

    It runs with the signal gate held: the engine releases it only while it waits for a trial (and
    judges it), and the loop while it shows one (``on_trial``), so a trial's journal line and its
    count in the tally are one step that a signal cannot split (the summary counts exactly the
    trials the journal holds, and a resume goes on from there).
    """

    config: RunConfig
    state: RunState
    engine: Engine
    prepared: Prepared
    on_trial: Callable[[Trial, bool], None] | None
    gate: SignalGate
    in_flight: set[tuple[str, int]] = field(default_factory=set)
    #: warm-up trials among ``in_flight`` (a count: looking through the set cost each submission)
    warming: int = 0
    stopped: str | None = None

    def todo(self) -> Iterator[tuple[str, int]]:
        """Trials not yet done, warm-ups first."""
        for subdir, tally in (("warmup", self.state.warmup), ("trials", self.state.tally)):
            for n in range(1, tally.planned + 1):
                if not tally.done(n):
                    yield subdir, n

    def run(self) -> None:
        """Submit as slots free until every trial is done or a stop condition holds."""
        wanted = wanted_metrics(self.config.metrics, self.config.oracle)
        todo = self.todo()
        nxt = next(todo, None)
        env = self.config.trial_env()  # once: copying os.environ per trial showed in the profile
        while True:
            # a few queued beyond the slots keep them busy; not while the next result may stop the
            # run (--until-fail, the metric check): a queued trial would start, only to be killed
            careful = self.config.until_fail or (wanted and not self.state.completed_ok)
            window = self.config.jobs + (0 if careful else min(self.config.jobs, 8))
            while nxt is not None and self.stopped is None and len(self.in_flight) < window:
                subdir, n = nxt
                if self._until_fail_done() or (subdir == "trials" and self.warming):
                    break  # warm-ups finish before the first counted trial starts
                tid = self.config.trial_id(n, subdir)
                spec = self.prepared.wrap(self.config.spec(tid, env=env))
                if subdir == "warmup":
                    self.engine.submit(spec, tid, subdir, warmup=True)
                    self.warming += 1
                else:
                    self.engine.submit(spec, tid, subdir)
                self.in_flight.add(nxt)
                nxt = next(todo, None)
            if not self.in_flight or self.stopped is not None or self._until_fail_done():
                return
            trial, record = self.engine.next_record()
            self._count(trial, record)

    def _until_fail_done(self) -> bool:
        return self.config.until_fail and self.state.tally.first_fail is not None

    def _count(self, trial: Trial, record: dict[str, Any]) -> None:
        """Count a trial the engine just journaled (``record``: as journaled, so the tally of a
        resumed run, read back from the journal, is the same), then show it."""
        tid = trial.id
        warmup = tid.startswith("w")  # a warm-up trial's id (RunConfig.trial_id)
        n = int(tid.lstrip("w"))
        self.in_flight.discard(("warmup" if warmup else "trials", n))
        if warmup:
            self.warming -= 1
        tally = self.state.warmup if warmup else self.state.tally
        tally.add(n, record)
        if not self.state.completed_ok and ran_to_completion(trial.result):
            self.state.completed_ok = True
            seen = self.state.tally.metric_names | self.state.warmup.metric_names
            self.stopped = check_metrics(seen, wanted_metrics(self.config.metrics, self.config.oracle))
        if self.on_trial is not None:
            self.gate.release()  # a blocked write to the terminal is cut by a Ctrl-C, as before
            try:
                self.on_trial(trial, warmup)
            finally:
                self.gate.hold()

    def drop_unfinished(self, run_dir: Path) -> None:
        """Remove the directories of trials stopped before they finished (no result, no event)."""
        for subdir, n in self.in_flight:
            shutil.rmtree(run_dir / subdir / self.config.trial_id(n, subdir), ignore_errors=True)


class SignalGate:
    """Turns SIGINT/SIGTERM into KeyboardInterrupt only while released (the CLI installs :meth:`handle`).

    Held (the default), a signal is only noted: creating the run dir, journaling and counting a
    trial, and writing the summary are short and must not be cut; :meth:`release` raises the noted
    one, so it still stops the run.  While trials run it is released only while sleuth waits for one
    (or shows one): see :class:`_Loop`.
    """

    def __init__(self) -> None:
        self._held = True
        self.caught = False

    def handle(self, _signum: int, _frame: object) -> None:
        """The signal handler."""
        self.caught = True
        if not self._held:
            raise KeyboardInterrupt

    def hold(self) -> None:
        """Note signals from now on."""
        self._held = True

    def release(self) -> None:
        """Let signals interrupt again; raise KeyboardInterrupt for one noted meanwhile."""
        self._held = False
        if self.caught:
            raise KeyboardInterrupt


def execute(
    config: RunConfig,
    run_dir: RunDir,
    prepared: Prepared,
    *,
    state: RunState,
    secrets: RunSecrets,
    on_trial: Callable[[Trial, bool], None] | None = None,
    gate: SignalGate | None = None,
    backend: Backend | None = None,
) -> RunSummary:
    """Run the trials ``state`` lacks; KeyboardInterrupt stops the children and keeps the partial summary.

    ``backend``: made by the caller before the run dir existed (so a bad ``--backend-opt`` left no
    files); by default the one ``config.backend`` names.  It is closed here.

    With a ``gate``, signals interrupt only the loop's waits: a trial is journaled and counted whole,
    and once the loop ends (normally or not) they are held, so the summary (short, bounded work) is
    always written and counts exactly the trials the journal holds.
    """
    gate = gate if gate is not None else SignalGate()
    from sleuth.run_report import finish

    snaps: dict[str, dict[str, Any]] = {}
    if not (run_dir.path / "host_env.json").exists():  # a resume keeps the first run's snapshot
        snaps["host_env.json"] = {}
        if config.environment.get("kind", "host") != "host":
            snaps["environment_env.json"] = {}
    snap_thread = threading.Thread(target=_snapshots_into, args=(prepared, snaps), daemon=True)
    snap_thread.start()
    oracle = build_oracle(config.oracle)
    scrub = secrets.scrub if secrets else None
    if backend is None:
        backend = make_backend(config.backend, config.jobs, config.gpus)
    engine = Engine(backend, oracle, run_dir, scrub=scrub, interrupts=gate)
    loop = _Loop(config, state, engine, prepared, on_trial, gate)
    interrupted = False
    try:
        try:
            gate.release()  # a signal noted while the run dir was made stops the run now
            gate.hold()  # from here the engine lets one through only while it waits (see _Loop)
            loop.run()
        except KeyboardInterrupt:
            gate.hold()
            interrupted = True
        gate.hold()
        if interrupted or loop.stopped is not None or loop.in_flight:
            engine.cancel_all()
        if loop.stopped is not None or (loop.in_flight and not interrupted):
            loop.drop_unfinished(run_dir.path)
    finally:
        engine.close()
    if interrupted:
        run_dir.journal.append("interrupted", completed=sum(state.tally.counts.values()))
    if loop.stopped is not None:
        run_dir.journal.append("stopped", reason=loop.stopped)
    # the snapshot may still run (nvidia-smi can be slow): wait for it, but never past a signal
    deadline = time.monotonic() + (0.5 if interrupted else 30.0)
    while snap_thread.is_alive() and time.monotonic() < deadline and not gate.caught:
        snap_thread.join(timeout=0.1)
    for filename, snap in snaps.items():
        if snap:
            run_dir.write_json(filename, secrets.scrub(dict(snap)) if secrets else dict(snap))
    data = finish(config, run_dir, state, secrets, interrupted=interrupted, stopped=loop.stopped)
    return RunSummary(data, run_dir.path, state.index)


def _snapshots_into(prepared: Prepared, out: dict[str, dict[str, Any]]) -> None:
    """Fill ``host_env.json`` and ``environment_env.json`` (venv etc.) when asked; never raises."""
    from sleuth import snapshot

    for filename, take in (("host_env.json", snapshot.collect), ("environment_env.json", prepared.snapshot)):
        if filename not in out:
            continue
        try:
            out[filename].update(take())
        except Exception as exc:  # a snapshot must never cost the run
            out[filename]["error"] = f"{type(exc).__name__}: {exc}"


def default_name(argv: tuple[str, ...]) -> str:
    """A run name from the command: ``train`` for ``python train.py``, else the program's name."""
    words = [Path(a).name for a in argv[:3]]
    pick = next((w for w in words[1:] if w.endswith((".py", ".sh"))), words[0] if words else "run")
    stem = pick.rsplit(".", 1)[0] if pick.endswith((".py", ".sh")) else pick
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip(".-") or "run"
    return name[:64]
