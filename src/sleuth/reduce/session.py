"""The library half of ``sleuth reduce``: load a spec, run or resume a reduction, write the bundle.

:func:`load` checks everything a run needs and writes nothing (``--dry-run`` stops there);
:func:`start` claims a run dir and runs; :func:`resume` reopens one after a crash.  Both end in
:func:`_finish`: the bundle (``shrunken/``, ``SHIP.md``, ``reduction_trace.jsonl``,
``summary.json``) is written whatever happened, then every text file of the run dir is scrubbed.
A run that ended by itself (reduced, not reduced, not reproducible) is not resumed: :func:`resume`
returns its summary as it is and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sleuth.backends import Backend, closed_on_error
from sleuth.backends.choice import BackendChoice, from_journal, journal_form, make_backend
from sleuth.errors import ConfigError, ExitCode, UsageError
from sleuth.journal import RunDir, atomic_write_json, atomic_write_text
from sleuth.model import MAX_KILL_GRACE_S, Stream
from sleuth.oracle import Oracle, OracleConfig, build_oracle
from sleuth.reduce.driver import Driver, Options
from sleuth.reduce.plan import Plan, materialize
from sleuth.reduce.ranks import RankOracle
from sleuth.reduce.resolve import resolve
from sleuth.reduce.scrub import Scrubber, compile_patterns
from sleuth.reduce.spec import ReduceSpec, load_spec, parse_duration
from sleuth.secrets import Secrets

__all__ = ["Loaded", "Result", "kept_secrets", "load", "resume", "start"]

SCRUB_KEY = "SLEUTH_REDUCE_SCRUB"
#: the values of reduce.json that the scrub rule hides (a --scrub pattern matching a directory of the
#: spec's path), kept whole in secrets.json: resume needs them as they are
CONFIG_KEY = "SLEUTH_REDUCE_CONFIG"
_CONFIG = "reduce.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """A spec checked and resolved, ready to run."""

    plan: Plan
    #: the spec file, or None for a wrapped workload (``--workload``)
    spec_path: Path | None
    scrubber: Scrubber
    environment: Any
    oracle_config: OracleConfig
    #: a wrapped workload's reference and predicate
    workload: str | None = None
    custom: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """What a reduction ended with; ``doc`` is the ``--json`` document."""

    doc: dict[str, Any]
    exit_code: ExitCode
    run_dir: Path
    #: a resume found the run finished: nothing ran, nothing was written
    already_finished: bool = False


def _mitigation_env(spec: ReduceSpec, source: str) -> dict[str, str]:
    from sleuth.registry import load_registry

    reg = load_registry()
    env: dict[str, str] = {}
    pieces: dict[str, list[str]] = {}
    for i, name in enumerate(spec.mitigations):
        m = reg.mitigations.get(name)
        if m is None:
            raise ConfigError(
                f"{source}: mitigations[{i}]: unknown mitigation {name!r} (see sleuth mitigations)"
            )
        env.update(m.env)
        for var, piece in m.append.items():
            pieces.setdefault(var, []).append(piece)
    for var, extra in pieces.items():
        below = spec.workload.env.get(var, os.environ.get(var, ""))
        env[var] = " ".join([below, *extra]) if below else " ".join(extra)
    return env


def _environment(spec: ReduceSpec, source: str, cwd: Path, output: Path) -> Any:
    """The core environment object for ``spec.environment`` (nothing built yet)."""
    from sleuth.registry import InlineEnvironment, load_registry

    value = spec.environment
    if isinstance(value, str):
        reg = load_registry()
        d = reg.environments.get(value)
        if d is None:
            raise ConfigError(
                f"{source}: environment: unknown environment {value!r} (see sleuth environments)"
            )
        if d.kind == "host":
            from sleuth.environments.host import HostEnvironment

            return HostEnvironment()
        if d.kind == "plugin" and d.factory is not None:
            return d.factory()
        if d.spec is None:
            raise ConfigError(f"{source}: environment: {value!r} needs a value, e.g. {{{value}: ...}}")
        value = d.spec
    assert isinstance(value, InlineEnvironment)
    if value.kind == "venv":
        from sleuth.environments.venv import VenvEnvironment

        return VenvEnvironment(pins=tuple(value.value))
    from sleuth.environments.container import Mount, container_environment

    out = str(output.resolve())
    mounts = (Mount(str(cwd), str(cwd)), Mount(out, out))
    return container_environment(
        value.kind, str(value.value), mounts=mounts, workdir=str(cwd), check_image=True
    )


def _oracle_config(spec: ReduceSpec, base_dir: Path) -> OracleConfig:
    o = spec.oracle
    ref = o.callable
    if ref is not None:
        mod, _, func = ref.rpartition(":")
        if mod.endswith(".py") and not Path(mod).is_absolute():
            ref = f"{(base_dir / mod).resolve()}:{func}"
    return OracleConfig(
        skip_exit=tuple(o.skip_exit),
        fail_regex=re.compile(o.pattern, re.MULTILINE) if o.pattern else None,
        stream=Stream(o.stream),
        callable_ref=ref,
    )


def load(spec_path: Path | None, *, output: Path, name: str | None = None, scrub: tuple[str, ...] = (),
         workload: str | None = None, kill_grace: float | None = None) -> Loaded:  # fmt: skip
    """Check the spec (or the wrapped workload), its files, names and patterns; nothing is written.

    ``kill_grace`` (``--kill-grace``, checked) overrides the spec's ``workload.kill_grace``."""
    patterns = compile_patterns(scrub)
    custom = None
    if workload is not None:
        from sleuth.reduce.spec import parse_spec
        from sleuth.reduce.workloads import load_workload

        wrapped = load_workload(workload)
        source, text, base_dir = f"workload {workload}", wrapped.text, Path.cwd()
        spec, custom = parse_spec(wrapped.data, source), wrapped.predicate
    elif spec_path is not None:
        spec, text = load_spec(spec_path)
        source = str(spec_path)
        base_dir = spec_path.resolve().parent
    else:
        raise UsageError(
            "give --spec FILE or --workload NAME", hint="see `sleuth schema reduce` for the spec"
        )
    if name is not None and not name.strip():
        raise UsageError("--name '': give a run name")
    plan = resolve(
        spec, source, text, base_dir=base_dir, mitigation_env=_mitigation_env(spec, source), name=name
    )
    if kill_grace is not None:
        over = spec.workload.model_copy(update={"kill_grace": kill_grace})
        plan = replace(plan, spec=spec.model_copy(update={"workload": over}))
    env = _environment(spec, source, plan.cwd, output)
    oc = _oracle_config(spec, base_dir)
    if custom is not None:
        oc = OracleConfig(skip_exit=oc.skip_exit, fail_regex=oc.fail_regex, stream=oc.stream)
    elif oc.callable_ref:
        from sleuth.oracle import load_callable

        try:  # named by its key path: the message named --oracle, a flag reduce does not have
            load_callable(oc.callable_ref, source=f"{source}: oracle.callable")
        except UsageError as exc:
            raise ConfigError(exc.message, hint=exc.hint) from None
    secrets = Secrets.of(spec.workload.env).merged(
        Secrets.of_argv(spec.workload.command, "workload.command[{}]".format)
    )
    for i, axis in enumerate(spec.axes):  # an arg_set's values join the command line
        if axis.kind == "arg_set":
            secrets = secrets.merged(Secrets.of_argv(axis.values, f"axes[{i}].values[{{}}]".format))
    return Loaded(
        plan=plan,
        spec_path=spec_path.resolve() if spec_path else None,
        scrubber=Scrubber(secrets, patterns),
        environment=env,
        oracle_config=oc,
        workload=workload,
        custom=custom,
    )


def plan_doc(loaded: Loaded, output: Path) -> dict[str, Any]:
    """What a run would do (``--dry-run``), scrubbed."""
    plan = loaded.plan
    cand = materialize(plan, plan.initial_point())
    doc: dict[str, Any] = loaded.scrubber.obj(
        {
            "spec": str(loaded.spec_path) if loaded.spec_path else f"workload {loaded.workload}",
            "name": plan.name,
            "cwd": str(plan.cwd),
            "argv": list(cand.argv),
            "env": dict(cand.env),
            "oracle": plan.spec.oracle.model_dump(mode="json"),
            "budget": plan.spec.budget.model_dump(mode="json"),
            "axes": [
                {
                    "name": a.name,
                    "kind": a.kind,
                    "initial": a.render(a.search().initial),
                    "items": len(a.items) if a.items else None,
                    "pinned": a.search().pinned,
                }
                for a in plan.axes
            ],
            "environment": loaded.environment.describe(),
            "run_dir_parent": str(output / "reduce" / plan.name),
        }
    )
    return doc


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
    sc = loaded.scrubber
    sc.secrets.save(run_dir.path)
    if sc.patterns:
        Secrets({SCRUB_KEY: json.dumps([p.pattern for p in sc.patterns])}).save(run_dir.path)
    config = {
        "spec": str(loaded.spec_path) if loaded.spec_path else None,
        "workload": loaded.workload,
        "spec_sha256": hashlib.sha256(loaded.plan.spec_text.encode()).hexdigest(),
        "inputs_sha256": _input_hashes(loaded.plan),
        "name": loaded.plan.name,
        "output": str(output.resolve()),
        "jobs": jobs,
        "gpus": list(gpus),
        "backend": journal_form(choice, run_dir.path),
        "one_minimal": one_minimal,
        # the grace the trials get (--kill-grace, else the spec's): a resume gives the same
        "kill_grace": loaded.plan.spec.workload.kill_grace_s,
        "redacted_env": sc.secrets.names,
        "scrub_patterns": len(sc.patterns),
    }
    hidden = {k: v for k, v in config.items() if isinstance(v, str) and sc.hides(v)}
    if hidden:
        Secrets({CONFIG_KEY: json.dumps(hidden)}).save(run_dir.path)
        config["hidden_config"] = sorted(hidden)
    run_dir.write_json(_CONFIG, sc.obj(config))
    atomic_write_text(run_dir.path / "spec.yaml", sc.text(loaded.plan.spec_text))
    run_dir.journal.append("start", **sc.obj(config))
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


def _other_verb(path: Path) -> None:
    """Another verb's run dir given to ``reduce resume``: the error names the command that resumes it."""
    import contextlib

    from sleuth.journal import made_by, other_verbs_run_dir, read_journal

    with contextlib.suppress(OSError, ValueError):  # no journal, or not one: the plain error
        start = next((e for e in read_journal(path / "journal.jsonl") if e.get("event") == "start"), None)
        verb = made_by(path, start)
        if verb not in (None, "reduce"):
            raise other_verbs_run_dir(path, verb, "reduce")


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
    from sleuth.runner import reap_orphans

    if not (path / _CONFIG).is_file():
        _other_verb(path)
        raise UsageError(
            f"{path}: not a sleuth reduce run dir (no {_CONFIG})", hint="pass the run dir printed by the run"
        )
    config = _read_config(path)  # a damaged reduce.json is one line, finished or not
    done = _finished(path)
    if done is not None:
        from sleuth.reduce.finish import exit_code

        return Result(doc=done, exit_code=exit_code(done["status"]), run_dir=path, already_finished=True)
    run_dir = RunDir.open(path)
    try:
        reap_orphans(path)
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
                      workload=config.get("workload"), kill_grace=config.get("kill_grace"))  # fmt: skip
        if hashlib.sha256(loaded.plan.spec_text.encode()).hexdigest() != config["spec_sha256"]:
            what = spec_path or f"workload {config.get('workload')}"
            raise UsageError(f"{path}: its spec {what} changed since the run started",
                             hint="restore it, or start a new reduction")  # fmt: skip
        started = config.get("inputs_sha256")
        started = started if isinstance(started, dict) else {}  # a run dir from before: none kept
        for rel, digest in _input_hashes(loaded.plan).items():
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


def _finished(path: Path) -> dict[str, Any] | None:
    """The summary of a run that ended by itself, else None.

    Ended: the journal's last event is the ``done`` of a finished status, ``summary.json`` says the
    same, and ``SHIP.md`` (written last) is there when the bundle is (a kill -9 after ``done`` leaves
    the scrub pass and ``SHIP.md`` to a resume).
    """
    from sleuth.journal import read_journal
    from sleuth.reduce.finish import FINISHED

    events = read_journal(path / "journal.jsonl")
    last = events[-1] if events else {}
    if last.get("event") != "done" or last.get("status") not in FINISHED:
        return None
    try:
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("status") != last["status"]:
        return None
    if (path / "shrunken").is_dir() and not (path / "SHIP.md").is_file():
        return None
    return summary


def _input_hashes(plan: Plan) -> dict[str, str]:
    """The sha256 of each file axis's input (a file_lines file, a file_set directory's files), by its
    path: a resume over an edited input would reduce something else than the run started on."""
    out: dict[str, str] = {}
    for a in plan.axes:
        if a.kind == "file_lines":
            out[a.path] = hashlib.sha256((plan.cwd / a.path).read_bytes()).hexdigest()
        elif a.kind == "file_set":
            rows = sorted((k, v) for k, v in plan.file_hashes.items() if k.startswith(f"{a.path}/"))
            out[a.path] = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
    return out


def kept_secrets(path: Path, names: list[str]) -> Secrets:
    """``names`` from the run dir's ``secrets.json`` (never from the shell: the ``--scrub`` patterns
    and the values the bundle is scrubbed of must be the run's own); a UsageError when it lacks them."""
    from sleuth.secrets import SECRETS_FILE

    try:
        return Secrets.load(path, names, environ={})
    except UsageError:
        what = {SCRUB_KEY: "the --scrub patterns", CONFIG_KEY: "the run's paths"}
        shown = ", ".join(what.get(n, n) for n in names)
        raise UsageError(
            f"{path}: {SECRETS_FILE} is gone or lacks {shown} (kept to scrub everything the run writes)",
            hint=f"copy {SECRETS_FILE} back from where the reduction ran, or start a new reduction",
        ) from None


#: the keys of reduce.json that resume reads, with their types
_CONFIG_KEYS: dict[str, type | tuple[type, ...]] = {
    "spec": (str, type(None)), "workload": (str, type(None)), "name": str, "output": str,
    "spec_sha256": str, "jobs": int, "gpus": list, "one_minimal": bool,
}  # fmt: skip


def _read_config(path: Path) -> dict[str, Any]:
    """``reduce.json`` as the run wrote it; a UsageError naming the file when it is not."""
    f = path / _CONFIG
    hint = "resume a run dir as sleuth wrote it, or start a new reduction"
    try:
        config = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{f}: unreadable: {exc}", hint=hint) from None
    if not isinstance(config, dict):
        raise UsageError(f"{f}: expected a JSON object, got {type(config).__name__}", hint=hint)
    for key, kind in _CONFIG_KEYS.items():
        if not isinstance(config.get(key), kind):
            raise UsageError(f"{f}: {key}: missing or of the wrong type", hint=hint)
    grace = config.get("kill_grace")  # absent in a run dir from before: the spec's
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int | float)
                              or not 0 <= grace <= MAX_KILL_GRACE_S):  # fmt: skip
        raise UsageError(f"{f}: kill_grace: {grace!r} is not a number of seconds in 0..{MAX_KILL_GRACE_S:g}",
                         hint=hint)  # fmt: skip
    return config


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


def summary_of(path: Path) -> Mapping[str, Any]:
    """The ``summary.json`` of a finished run dir (an object whose name can name a file)."""
    try:
        data: Any = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(
            f"{path}: no summary.json: not a finished sleuth reduce run dir",
            hint="resume it first: sleuth reduce resume RUN_DIR",
        ) from None
    from sleuth.model import check_name

    if not isinstance(data, dict):
        raise UsageError(f"{path}/summary.json: expected a JSON object, got {type(data).__name__}")
    name = data.get("name", "reproducer")
    if not isinstance(name, str) or not check_name(name):  # it names the archive and its top folder
        raise UsageError(f"{path}/summary.json: name: {name!r} cannot name a file")
    return data


def save_summary(path: Path, doc: dict[str, Any]) -> None:
    """Write ``summary.json``."""
    atomic_write_json(path / "summary.json", doc)
