"""A bisection's run dir before the driver: candidates resolved when it starts, state read back on resume.

Started: :func:`resolve_candidates` turns the source into its labels before a run dir exists, so a bad
ref, file or range is a usage error that leaves nothing behind; :func:`place_tests` settles where the
tests run, and :func:`create_run` makes the run dir and journals the start (a Ctrl-C before that is
journaled leaves nothing: :func:`discard`).  Resumed: :func:`journal_of` and :func:`bisect_start` read
the journal without writing (a wrong dir stays as it was; another verb's run dir is named with the
command that resumes it), :func:`reopen` puts the run back together, and :func:`restore_env` /
:func:`resumed_secrets` put the values that were journaled redacted back from ``secrets.json``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.errors import UsageError

if TYPE_CHECKING:
    from sleuth.journal import RunDir

__all__ = [
    "Reopened",
    "bisect_start",
    "create_run",
    "describe_command",
    "discard",
    "journal_flags",
    "journal_of",
    "place_tests",
    "reopen",
    "resolve_candidates",
    "restore_env",
    "resumed",
    "resumed_secrets",
]


def journal_of(path: Path) -> list[dict[str, Any]]:
    """The events of ``path/journal.jsonl``, read without creating anything."""
    from sleuth.journal import read_journal

    journal = path / "journal.jsonl"
    if not journal.is_file():
        raise UsageError(
            f"{path}: not a sleuth run dir (no journal.jsonl)", hint="pass the run dir printed by the run"
        )
    try:
        return read_journal(journal)
    except UnicodeDecodeError:
        raise UsageError(f"{journal}: not UTF-8 text, so not a sleuth journal") from None


def bisect_start(path: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``start`` event of a bisection, or a usage error naming the verb that resumes this dir."""
    start = next((e for e in events if e["event"] == "start"), None)
    if start is None:
        raise UsageError(f"{path}: no start event in the journal", hint="is this a sleuth bisect run dir?")
    if "flags" in start and "source" in start:
        return start
    from sleuth.resuming import made_by, other_verbs_run_dir

    verb = made_by(path, start)
    if verb not in (None, "bisect"):
        raise other_verbs_run_dir(path, verb, "bisect")
    raise UsageError(f"{path}: not a sleuth bisect run dir (its start event has no flags)")


def restore_env(path: Path, start: dict[str, Any], kw: dict[str, Any]) -> dict[str, Any]:
    """``--env`` values journaled as redacted, put back from ``secrets.json`` (or the caller's shell)."""
    names = start.get("redacted_env") or kw.pop("redacted_env", None)
    if not names:
        return kw
    from sleuth.secrets import Secrets

    secret = Secrets.load(path, list(names))
    pairs = [str(x).partition("=") for x in kw.get("env") or ()]
    restored = secret.restore_env({k: v for k, _, v in pairs})
    kw["env"] = [f"{k}={v}" for k, v in restored.items()]
    return kw


def resolve_candidates(source: Any) -> list[str] | None:
    """The candidates, resolved before the run dir exists: a bad ref or file is a usage error.

    None for images without ``--start-date`` (the range is only known after the gallop).
    """
    if source.kind == "images" and not source.start:
        return None
    labels: list[str] = source.resolve()
    if len(labels) < 2:
        cfg = source.config()
        if cfg["kind"] == "list":
            why, hint = (
                f"sleuth bisect list {cfg['path']}: {len(labels)} line(s)",
                "list one candidate per line, oldest first",
            )
        elif cfg["kind"] == "git":
            why, hint = (
                f"--good {cfg['good']} and --bad {cfg['bad']} are the same commit",
                "give two different commits",
            )
        elif cfg["kind"] == "multigit":  # a repository that did not change is held; here none did
            why = "every --repo's --good and --bad are the same commit"
            hint = "give a range in which one of them changed"
        else:
            why, hint = f"{len(labels)} candidate(s)", "widen the range"
        raise UsageError(f"{why}: a bisection needs at least two candidates", hint=hint)
    return labels


def resumed_secrets(source: Any, kw: dict[str, Any], rd: Any) -> Any:
    """A resumed run: its hidden flag values back in ``kw`` (in place); the source rebuilt with its own.

    Whatever ``resume`` passed (the journaled, scrubbed flags, or flags it already restored with
    :func:`sleuth.bisect.secrecy.restore_start`), the run continues with the real values.
    """
    from sleuth.bisect.candidates import source_from_config
    from sleuth.bisect.secrecy import restore_start

    start = next((e for e in rd.events() if e["event"] == "start"), None)
    if start is None or not start.get("redacted"):
        return source
    full = restore_start(rd.path, start)
    for key, value in full["flags"].items():
        if key in kw and kw[key] == start["flags"].get(key):  # not overridden by resume's own flags
            kw[key] = value
    if any(p.startswith("source.") for p in start["redacted"].values()):
        source = source_from_config(full["source"])
    return source


def place_tests(source: Any, kw: dict[str, Any]) -> bool:
    """Where the tests run, in ``kw`` (in place); True when the working directory was not given.

    A list or PyPI search without ``--cwd`` runs its tests where it was started, and says so: a
    resume may start in another directory and must still find ``./t.sh`` or ``data/``.  Git runs
    them in checkouts (a ``./test.sh`` is then the caller's file), images in containers.
    """
    implicit = kw.get("cwd") is None and source.kind in ("list", "pypi")
    cwd = kw.get("cwd")
    kw["cwd"] = os.getcwd() if implicit else (None if cwd is None else os.path.abspath(cwd))
    if source.kind == "git":
        from sleuth.bisect.git import program_path

        first = source.repos[0].path if hasattr(source, "repos") else source.repo
        kw["cmd"] = (program_path(first, kw["cmd"][0], kw["cwd"]), *kw["cmd"][1:])
    return implicit


def journal_flags(kw: dict[str, Any]) -> dict[str, Any]:
    """The flags as the start event keeps them (lists, not tuples; ``--json`` is not the run's)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items() if k != "as_json"}


def create_run(
    source: Any,
    kw: dict[str, Any],
    labels: list[str] | None,
    default_skip: tuple[int, ...],
    *,
    implicit_cwd: bool,
) -> RunDir:
    """The run dir of a new bisection, its start journaled (secrets in ``secrets.json`` only)."""
    from sleuth.bisect.secrecy import hidden, hidden_labels, scrubbed
    from sleuth.journal import RunDir

    name = kw["name"] or source.kind
    flags = journal_flags(kw)
    flags["output"] = str(kw["output"])
    secrets, originals, where = hidden(flags, source.config())
    secret_labels = hidden_labels(labels)
    # summary.json holds an absolute run_dir; every write through it is scrubbed
    rd = RunDir.create(Path(kw["output"]).resolve(), "bisect", name)
    try:
        scrubbed(rd, secrets, bool(originals or secret_labels))
        if originals or secret_labels:
            from sleuth.secrets import Secrets

            Secrets({**originals, **secret_labels}).save(rd.path)
        extra: dict[str, Any] = {"redacted": where} if where else {}
        if secret_labels:  # the candidates event holds them scrubbed; resume takes them back
            extra["redacted_labels"] = list(secret_labels)
        if implicit_cwd:  # not given: a resume on a machine without this directory runs where it is
            extra["implicit_cwd"] = True
        rd.journal.append("start", source=source.config(), flags=flags, default_skip=list(default_skip),
                          **extra)  # fmt: skip
        if labels is not None:
            rd.journal.append("candidates", labels=labels, source=source.config())
        if getattr(source, "stepped", None):
            rd.journal.append("default end", stepped=source.stepped, used=labels[0] if labels else None)
    except BaseException:  # a Ctrl-C (or a full disk) before the run is journaled: nothing to resume
        discard(rd)
        raise
    return rd


def discard(rd: RunDir) -> None:
    """Remove a run dir that holds no run yet, and the ``bisect/<name>`` folders it leaves empty."""
    import contextlib
    import shutil

    rd.close()
    shutil.rmtree(rd.path, ignore_errors=True)
    for parent in (rd.path.parent, rd.path.parent.parent):
        with contextlib.suppress(OSError):
            parent.rmdir()


@dataclass(frozen=True, slots=True)
class Reopened:
    """An interrupted bisection put back together: what :func:`reopen` hands the driver."""

    source: Any
    #: the start's flags, with the redacted values back and resume's own ``--jobs``/``--gpus``
    kw: dict[str, Any]
    rd: RunDir
    #: the journaled ``test`` events: served when asked, never re-run; an ERROR is passed over (its
    #: candidate is tested again)
    tests: list[dict[str, Any]]
    labels: list[str] | None
    default_skip: tuple[int, ...]


def reopen(
    path: Path, events: list[dict[str, Any]], start: dict[str, Any], *, jobs: int | None, gpus: str | None
) -> Reopened:
    """Reopen the unfinished run at ``path``; tests a killed sleuth left running are stopped first."""
    from sleuth.bisect.candidates import source_from_config
    from sleuth.bisect.secrecy import restore_labels
    from sleuth.journal import RunDir
    from sleuth.model import DEFAULT_KILL_GRACE_S
    from sleuth.runner import reap_orphans

    journaled = next((e["labels"] for e in events if e["event"] == "candidates"), None)
    labels = restore_labels(path, start, journaled)  # before the run dir is touched
    rd = RunDir.open(path)
    # tests a killed sleuth left running would run twice; they get the grace the run was given
    grace = start["flags"].get("kill_grace")
    reaped = reap_orphans(rd.path, float(grace) if isinstance(grace, int | float) else DEFAULT_KILL_GRACE_S)
    if reaped:
        rd.journal.append("reaped", process_groups=reaped)
    tests = [e for e in events if e["event"] == "test"]
    kw = restore_env(path, start, dict(start["flags"]))
    if start.get("implicit_cwd") and not Path(str(kw.get("cwd"))).is_dir():
        kw["cwd"] = None  # resumed on another machine: the directory it started in is not here
    if gpus is not None:
        kw["gpus"] = gpus
        kw["jobs"] = None  # one per device unless --jobs says otherwise
    if jobs is not None:
        kw["jobs"] = jobs
    errors = sum(e.get("outcome") == "error" for e in tests)  # never served: tested again when asked
    rd.journal.append("resume", journaled=len(tests) - errors, errors=errors)
    return Reopened(source_from_config(start["source"]), kw, rd, tests, labels,
                    tuple(start.get("default_skip", ())))  # fmt: skip


def resumed(tests: list[dict[str, Any]], events: list[Any]) -> dict[str, int]:
    """What a resume did (``summary.json``'s ``resumed``): ``replayed``, the tests it served from the
    journal (those the search asked for again: not every journaled one when a retried ERROR took it
    elsewhere), and ``retried``, the tests it ran in place of a journaled ERROR (a candidate's run
    ``N`` whose run ``N-1`` is one)."""
    errors = {str(e.get("trial_dir")) for e in tests if e.get("outcome") == "error"}
    retried = 0
    for ev in events:
        where, _, _ = str(ev.trial_dir).rpartition("/run-")
        retried += not ev.replayed and f"{where}/run-{ev.run - 1}" in errors
    return {"replayed": sum(bool(ev.replayed) for ev in events), "retried": retried}


def describe_command(kw: dict[str, Any], source: Any) -> dict[str, Any]:
    """What was tested: argv, working directory, the variables set on top of the caller's."""
    cwd = kw.get("cwd")
    if source.kind == "git":  # the test runs in a checkout (git.checkout_cwd)
        from sleuth.bisect.git import checkout_cwd

        top = Path(source.repos[0].path if hasattr(source, "repos") else source.repo)
        where = Path(checkout_cwd(cwd, str(top), Path("<checkout>")))
        if where.is_relative_to("<checkout>"):
            rel = where.relative_to("<checkout>").as_posix()
            cwd = "the checkout of each commit" + (f", folder {rel}" if rel != "." else "")
    pairs = (str(x).partition("=") for x in kw.get("env") or ())  # checked when the run started
    return {"argv": list(kw["cmd"]), "cwd": cwd, "env": {k: v for k, _, v in pairs}}
