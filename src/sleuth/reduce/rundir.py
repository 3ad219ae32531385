"""What a reduce run dir keeps beside its journal, and reading it back for a resume or a bundle.

:func:`record_start` writes how a run started: ``reduce.json`` (the spec's path and hash, the
inputs' hashes, the run's flags and kill grace), ``spec.yaml``, the ``start`` event, and in
``secrets.json`` (never in the shell) the ``--scrub`` patterns and any path the scrub rule hides.
:func:`read_config`, :func:`kept_secrets`, :func:`finished` and :func:`summary_of` read them back,
each a one-line UsageError naming the file when it is not as the run wrote it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sleuth.backends.choice import BackendChoice, journal_form
from sleuth.errors import UsageError
from sleuth.journal import RunDir, atomic_write_json, atomic_write_text
from sleuth.model import MAX_KILL_GRACE_S
from sleuth.reduce.loading import Loaded
from sleuth.reduce.plan import Plan
from sleuth.secrets import Secrets

__all__ = [
    "CONFIG_FILE",
    "CONFIG_KEY",
    "SCRUB_KEY",
    "finished",
    "input_hashes",
    "kept_secrets",
    "other_verb",
    "read_config",
    "record_start",
    "save_summary",
    "summary_of",
]

SCRUB_KEY = "SLEUTH_REDUCE_SCRUB"
#: the values of reduce.json that the scrub rule hides (a --scrub pattern matching a directory of the
#: spec's path), kept whole in secrets.json: resume needs them as they are
CONFIG_KEY = "SLEUTH_REDUCE_CONFIG"
CONFIG_FILE = "reduce.json"


def record_start(
    run_dir: RunDir,
    loaded: Loaded,
    *,
    output: Path,
    jobs: int,
    gpus: tuple[str, ...],
    one_minimal: bool,
    choice: BackendChoice,
) -> None:
    """Write how the run started (``reduce.json``, ``spec.yaml``, the ``start`` event), scrubbed;
    what resume needs whole goes to ``secrets.json``."""
    sc = loaded.scrubber
    sc.secrets.save(run_dir.path)
    if sc.patterns:
        Secrets({SCRUB_KEY: json.dumps([p.pattern for p in sc.patterns])}).save(run_dir.path)
    config = {
        "spec": str(loaded.spec_path) if loaded.spec_path else None,
        "workload": loaded.workload,
        "spec_sha256": hashlib.sha256(loaded.plan.spec_text.encode()).hexdigest(),
        "inputs_sha256": input_hashes(loaded.plan),
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
    run_dir.write_json(CONFIG_FILE, sc.obj(config))
    atomic_write_text(run_dir.path / "spec.yaml", sc.text(loaded.plan.spec_text))
    run_dir.journal.append("start", **sc.obj(config))


def other_verb(path: Path) -> None:
    """Another verb's run dir given to ``reduce resume``: the error names the command that resumes it."""
    import contextlib

    from sleuth.journal import read_journal
    from sleuth.resuming import made_by, other_verbs_run_dir

    with contextlib.suppress(OSError, ValueError):  # no journal, or not one: the plain error
        start = next((e for e in read_journal(path / "journal.jsonl") if e.get("event") == "start"), None)
        verb = made_by(path, start)
        if verb not in (None, "reduce"):
            raise other_verbs_run_dir(path, verb, "reduce")


def finished(path: Path) -> dict[str, Any] | None:
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


def input_hashes(plan: Plan) -> dict[str, str]:
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


def read_config(path: Path) -> dict[str, Any]:
    """``reduce.json`` as the run wrote it; a UsageError naming the file when it is not."""
    f = path / CONFIG_FILE
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
