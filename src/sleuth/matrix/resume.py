"""``sleuth matrix resume RUN_DIR``: check the run dir before touching it, then finish the matrix.

Every check (a directory, a journal that is UTF-8 and starts a *matrix*, a resolved recipe that
loads, the secrets it needs) runs before the run dir is opened, so a wrong directory is left as it
was (no ``.lock``).  A matrix that has ended is reported from its journal: nothing runs and
nothing is written (no second ``end`` event).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sleuth.datafile import load_data_file
from sleuth.errors import UsageError
from sleuth.journal import RunDir, read_journal
from sleuth.matrix.driver import RESOLVED, Loaded, load
from sleuth.matrix.loop import OnStart, OnTrial, env_errors, envs_json, execute, replay
from sleuth.matrix.plan import MatrixPlan
from sleuth.matrix.recipe import parse_recipe
from sleuth.matrix.redact import restore, secrets_for_resume
from sleuth.matrix.result import MatrixResult, analyze
from sleuth.resuming import made_by, other_verbs_run_dir
from sleuth.runner import reap_orphans

__all__ = ["Resumable", "open_resume", "resume"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumable:
    """A matrix run dir checked and loaded for resume, nothing opened or written yet."""

    path: Path
    loaded: Loaded
    start: Mapping[str, Any]
    #: the matrix ended (not interrupted): resuming it runs nothing
    finished: bool


def _events(path: Path) -> list[dict[str, Any]]:
    try:
        return read_journal(path / "journal.jsonl")
    except UnicodeDecodeError:
        raise UsageError(f"{path / 'journal.jsonl'}: not UTF-8 text; this is not a sleuth journal") from None
    except OSError as exc:
        raise UsageError(f"{path / 'journal.jsonl'}: cannot read: {exc.strerror}") from exc


def open_resume(path: Path) -> Resumable:
    """Check that ``path`` is a matrix run dir and load its recipe; writes nothing (no ``.lock``)."""
    if not path.is_dir():
        raise UsageError(f"{path}: no such run dir")
    if not (path / "journal.jsonl").is_file():
        raise UsageError(
            f"{path}: not a sleuth run dir (no journal.jsonl)", hint="pass the run dir printed by the run"
        )
    events = _events(path)
    start = next((e for e in events if isinstance(e, dict) and e.get("event") == "start"), None)
    if start is None or start.get("verb") != "matrix" or not (path / RESOLVED).is_file():
        other = made_by(path, start)
        if other not in (None, "matrix"):
            raise other_verbs_run_dir(path, other, "matrix")
        why = f" (no {RESOLVED})" if start is not None and start.get("verb") == "matrix" else ""
        raise UsageError(
            f"{path}: not a sleuth matrix run dir{why}", hint="pass the run dir printed by sleuth matrix"
        )
    names = [str(n) for n in start.get("redacted") or []]
    data = load_data_file(path / RESOLVED)
    if names and isinstance(data, dict):
        data = restore(data, secrets_for_resume(path, names))
    # the run's own record: a timeout an older sleuth allowed (up to a year) is kept as the run began
    recipe = parse_recipe(data, str(path / RESOLVED), recorded=True)
    loaded = load(recipe, str(path / RESOLVED), base_dir=path)
    loaded = replace(loaded, plan=replace(loaded.plan, added=tuple(start.get("added") or ())))
    ends = [e for e in events if e.get("event") == "end"]
    finished = bool(ends) and not ends[-1].get("interrupted")
    return Resumable(path=path, loaded=loaded, start=start, finished=finished)


def resume(
    target: Path | Resumable,
    *,
    jobs: int | None = None,
    gpus: Sequence[str] | None = None,
    on_trial: OnTrial | None = None,
    on_start: OnStart | None = None,
) -> MatrixResult:
    """Finish the matrix in a run dir: replay its journal, run the trials it lacks.

    ``jobs``/``gpus`` default to what the run started with; the backend is the one it started with
    (``--backend``, its options' secret values back from ``secrets.json``).  A matrix that ended is
    reported as it is: nothing runs and nothing is written (see :func:`open_resume`,
    ``Resumable.finished``).
    """
    r = target if isinstance(target, Resumable) else open_resume(target)
    plan = r.loaded.plan
    if r.finished:
        return _report(plan, r.path, read_journal(r.path / "journal.jsonl"), r.start.get("backend"))
    if gpus is None:
        gpus = tuple(r.start.get("gpus", ()))
    if jobs is None:
        jobs = int(r.start.get("jobs", 1))
        jobs = min(jobs, len(gpus)) if gpus else jobs
    from sleuth.backends import closed_on_error
    from sleuth.backends.choice import from_journal, make_backend

    choice = from_journal(r.start.get("backend"), r.path)
    backend = make_backend(choice, jobs, gpus)
    with closed_on_error(backend):
        run_dir = RunDir.open(r.path)
    # trials a killed sleuth left running would run twice; they get the grace the recipe kept
    reaped = reap_orphans(run_dir.path, plan.recipe.workload.kill_grace_s)
    if reaped:
        run_dir.journal.append("reaped", process_groups=reaped)
    run_dir.journal.append("resume", jobs=jobs, gpus=list(gpus))
    return execute(
        plan, r.loaded.registry, run_dir, jobs=jobs, gpus=gpus, backend=backend, choice=choice,
        on_trial=on_trial, on_start=on_start,
    )  # fmt: skip


def _report(plan: MatrixPlan, path: Path, events: Sequence[Mapping[str, Any]], backend: Any) -> MatrixResult:
    """The result of a matrix that ended, from its journal alone (``backend``: as journaled, its
    secret values ``<redacted>``)."""
    from sleuth.backends.choice import BackendChoice

    try:
        choice = BackendChoice.from_dict(backend)
    except ValueError as exc:
        raise UsageError(f"{path / 'journal.jsonl'}: the start event's backend: {exc}") from None
    records, stops = replay(plan, events)
    errors = env_errors(events)
    # how it ran last: the start's --jobs/--gpus, or the last resume's (older resumes journal no gpus)
    last = [e for e in events if e.get("event") in ("start", "resume") and isinstance(e.get("jobs"), int)]
    jobs = int(last[-1]["jobs"]) if last else 1
    gpus: list[Any] = next((e["gpus"] for e in reversed(last) if isinstance(e.get("gpus"), list)), [])
    return analyze(
        plan,
        list(records.values()),
        env_errors=errors,
        stops=stops,
        run_dir=str(path),
        environments=envs_json(plan, errors),
        already_finished=True,
        backend=choice,
        jobs=jobs,
        gpus=[str(g) for g in gpus],
    )
