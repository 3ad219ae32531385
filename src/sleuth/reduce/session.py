"""The library half of ``sleuth reduce``: run or resume a reduction, then write the bundle.

:func:`load` (from :mod:`sleuth.reduce.loading`) checks everything a run needs and writes nothing
(``--dry-run`` stops there); :func:`start` claims a run dir, records how the run started
(:mod:`sleuth.reduce.rundir`) and runs; :func:`resume` reopens one after a crash, checking that
its spec and inputs are the ones it started on.  Both end in
:func:`~sleuth.reduce.finish.finish`: the bundle (``shrunken/``, ``SHIP.md``,
``reduction_trace.jsonl``, ``summary.json``) is written whatever happened, then every text file of
the run dir is scrubbed.  A run that ended by itself (reduced, not reduced, not reproducible) is not
resumed: :func:`resume` returns its summary as it is and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.backends import Backend, closed_on_error
from sleuth.backends.choice import BackendChoice, from_journal, make_backend
from sleuth.errors import ExitCode, UsageError
from sleuth.journal import RunDir
from sleuth.oracle import Oracle, build_oracle
from sleuth.reduce.driver import Driver, Options
from sleuth.reduce.loading import Loaded, load, plan_doc
from sleuth.reduce.ranks import RankOracle
from sleuth.reduce.rundir import (
    CONFIG_FILE,
    CONFIG_KEY,
    SCRUB_KEY,
    finished,
    input_hashes,
    kept_secrets,
    other_verb,
    read_config,
    record_start,
)
from sleuth.reduce.spec import parse_duration

__all__ = ["Loaded", "Result", "load", "plan_doc", "resume", "start"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """What a reduction ended with; ``doc`` is the ``--json`` document."""

    doc: dict[str, Any]
    exit_code: ExitCode
    run_dir: Path
    #: a resume found the run finished: nothing ran, nothing was written
    already_finished: bool = False


def _oracle(loaded: Loaded) -> Oracle:
    from sleuth.oracle import StandardOracle

    custom = loaded.custom
    inner = StandardOracle(loaded.oracle_config, custom) if custom else build_oracle(loaded.oracle_config)
    ws = loaded.plan.world_size
    if ws is None:
        return inner
    return RankOracle(inner, re.compile(ws.spec.rank_prefix, re.MULTILINE), ws.spec.aggregate)


def start(
    loaded: Loaded,
    *,
    output: Path,
    jobs: int,
    gpus: tuple[str, ...],
    one_minimal: bool,
    backend: BackendChoice | None = None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> Result:
    """Claim a run dir and reduce (``backend``: ``--backend``, default local)."""
    choice = backend if backend is not None else BackendChoice()
    started = make_backend(choice, jobs, gpus)  # a bad --backend-opt leaves no run dir behind
    with closed_on_error(started):
        run_dir = RunDir.create(output, "reduce", loaded.plan.name)
    record_start(run_dir, loaded, output=output, jobs=jobs, gpus=gpus, one_minimal=one_minimal, choice=choice)
    return _run(
        loaded,
        run_dir,
        output=output,
        jobs=jobs,
        gpus=gpus,
        one_minimal=one_minimal,
        replay=None,
        on_event=on_event,
        on_start=on_start,
        choice=choice,
        backend=started,
    )


def resume(
    path: Path,
    *,
    jobs: int | None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> Result:
    """Continue an interrupted reduction from its journal; journaled trials are not run again.

    A run that has finished is reported as it is (``Result.already_finished``): nothing runs.
    """
    from sleuth.model import DEFAULT_KILL_GRACE_S
    from sleuth.runner import reap_orphans

    if not (path / CONFIG_FILE).is_file():
        other_verb(path)
        raise UsageError(
            f"{path}: not a sleuth reduce run dir (no {CONFIG_FILE})",
            hint="pass the run dir printed by the run",
        )
    config = read_config(path)  # a damaged reduce.json is one line, finished or not
    done = finished(path)
    if done is not None:
        from sleuth.reduce.finish import exit_code

        return Result(doc=done, exit_code=exit_code(done["status"]), run_dir=path, already_finished=True)
    run_dir = RunDir.open(path)
    try:
        grace = config.get("kill_grace")  # checked by read_config; absent in a run dir from before
        reap_orphans(path, DEFAULT_KILL_GRACE_S if grace is None else float(grace))
        if config.get("hidden_config"):  # scrubbed in reduce.json (the pass at the end scrubs it too)
            config.update(json.loads(kept_secrets(path, [CONFIG_KEY]).values[CONFIG_KEY]))
        spec_path = Path(config["spec"]) if config.get("spec") else None
        if spec_path is not None and not spec_path.is_file():
            raise UsageError(f"{path}: its spec {spec_path} is gone", hint="put it back to resume")
        patterns: tuple[str, ...] = ()
        if config.get("scrub_patterns"):
            kept = kept_secrets(path, [SCRUB_KEY])
            patterns = tuple(json.loads(kept.values[SCRUB_KEY]))
        output = Path(config["output"])
        loaded = load(spec_path, output=output, name=config["name"], scrub=patterns,
                      workload=config.get("workload"), kill_grace=config.get("kill_grace"),
                      resumed=True)  # fmt: skip
        if hashlib.sha256(loaded.plan.spec_text.encode()).hexdigest() != config["spec_sha256"]:
            what = spec_path or f"workload {config.get('workload')}"
            raise UsageError(f"{path}: its spec {what} changed since the run started",
                             hint="restore it, or start a new reduction")  # fmt: skip
        started = config.get("inputs_sha256")
        started = started if isinstance(started, dict) else {}  # a run dir from before: none kept
        for rel, digest in input_hashes(loaded.plan).items():
            if started.get(rel, digest) != digest:
                raise UsageError(f"{path}: its input {loaded.plan.cwd / rel} changed since the run started",
                                 hint="restore it, or start a new reduction")  # fmt: skip
        choice = from_journal(config.get("backend"), path)  # absent before backends: local
        replay = run_dir.events()
        run_dir.journal.append("resume")
    except BaseException:
        run_dir.close()
        raise
    return _run(
        loaded,
        run_dir,
        output=output,
        jobs=jobs or int(config["jobs"]),
        gpus=tuple(config["gpus"]),
        one_minimal=bool(config["one_minimal"]),
        replay=replay,
        on_event=on_event,
        on_start=on_start,
        choice=choice,
    )


def _run(
    loaded: Loaded,
    run_dir: RunDir,
    *,
    output: Path,
    jobs: int,
    gpus: tuple[str, ...],
    one_minimal: bool,
    replay: list[dict[str, Any]] | None,
    on_event: Callable[[str, dict[str, Any]], None] | None,
    on_start: Callable[[Path], None] | None,
    choice: BackendChoice,
    backend: Backend | None = None,
) -> Result:
    """Reduce in ``run_dir`` through ``backend`` (made by :func:`start`; a resume makes ``choice``'s)."""
    from sleuth.reduce.finish import finish

    # every journal event and trial record is scrubbed as it is written (a signature quoting a
    # --scrub match or a command's secret), not only by the pass at the end that a kill -9 skips
    run_dir.hide(loaded.scrubber.obj)
    if on_start is not None:
        on_start(run_dir.path)
    if on_event is not None:  # a resume's watcher learns the budget here (the spec is read by now)
        on_event("budget", {"max_trials": loaded.plan.spec.budget.max_trials})
        if not choice.is_local:
            on_event("backend", loaded.scrubber.obj({"backend": choice.secrets().scrub(choice.describe())}))
    wall = loaded.plan.spec.budget.max_wall_clock
    opts = Options(
        jobs=jobs,
        gpus=gpus,
        one_minimal=one_minimal,
        max_wall_s=parse_duration(wall) if wall else None,
        backend=choice,
    )
    driver: Driver | None = None
    prepared: Any = None
    status = "interrupted"
    try:
        try:
            prepared = loaded.environment.prepare()
            driver = Driver(
                loaded.plan,
                run_dir,
                _oracle(loaded),
                opts,
                environ=os.environ,
                scrubber=loaded.scrubber,
                prepared=prepared,
                replay=replay,
                on_event=on_event,
                backend=backend,
            )
            _scratch_note(loaded, run_dir, driver, on_event)
            info = driver.baseline()
            if info["reproduced"] == 0:
                status = "not_reproducible"
            else:
                driver.search()
                status = "budget_exhausted" if driver.stopped else "done"
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop the trials, keep the best so far
            if driver is not None:
                driver.engine.cancel_all()
    except BaseException:
        if driver is not None:
            driver.engine.cancel_all()
            driver.close()
        elif backend is not None:  # the environment failed before the driver took it
            backend.close()
        run_dir.close()
        raise
    if driver is not None:
        driver.close()
    return finish(loaded, run_dir, driver, status, output=output, prepared=prepared)


def _scratch_note(
    loaded: Loaded, run_dir: RunDir, driver: Driver, on_event: Callable[[str, dict[str, Any]], None] | None
) -> None:
    """Say once, in the journal and on stderr, which directories of the cwd the scratch copies leave
    a symlink to the original (over the budget: what a workload writes inside reaches the user's),
    from the layout the trials' scratch copies are made from (the cwd is listed once)."""
    note = driver.scratch_layout().note(loaded.plan.cwd)
    if note is not None:
        run_dir.journal.append("note", text=note)  # scrubbed as every event (RunDir.hide)
        if on_event is not None:
            on_event("note", loaded.scrubber.obj({"text": note}))
