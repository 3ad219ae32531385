"""Which backend runs a verb's trials: ``--backend NAME`` and ``--backend-opt KEY=VALUE``, by name.

``local`` is built in (:class:`~sleuth.backends.local.LocalBackend`, ``jobs`` workers, ``--gpus``
device ids).  Every other name comes from the entry-point group ``sleuth.backends`` (``slurm`` and
``ray`` are registered there by sleuth itself, a third party's the same way) and is constructed as
``Cls(jobs, options={key: value})``; the class checks its options and raises ``UsageError`` naming
the flag.  :func:`check_backend` runs every check that needs no service before a run dir exists;
:func:`make_backend` builds the backend.  A backend class's module is imported only when it is
chosen: a local run imports nothing of a cluster's.

Option values may hold secrets (a token in an address): :func:`journal_form` keeps those in the run
dir's ``secrets.json`` (0600) and :func:`from_journal` takes them back for ``--resume``.  A command
printed to run again (:meth:`BackendChoice.flags`) shows them ``<redacted>``; given so
(``--backend-opt 'token=<redacted>'``), :func:`restore_redacted` takes the value from that
``secrets.json``, never the word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.errors import SleuthError, UsageError
from sleuth.secrets import REDACTED, Secrets, is_secret, scrub_text

if TYPE_CHECKING:
    from sleuth.backends import Backend

__all__ = [
    "ENTRY_POINT_BACKENDS",
    "LOCAL",
    "BackendChoice",
    "available",
    "check_backend",
    "from_journal",
    "journal_form",
    "load_class",
    "make_backend",
    "restore_redacted",
]

ENTRY_POINT_BACKENDS = "sleuth.backends"
LOCAL = "local"
#: where a secret option value is kept in ``secrets.json``
_SECRET_KEY = "--backend-opt {}"


@dataclass(frozen=True, slots=True)
class BackendChoice:
    """A backend's name and its ``--backend-opt`` options, in the order given."""

    name: str = LOCAL
    options: tuple[tuple[str, str], ...] = ()

    @property
    def is_local(self) -> bool:
        """The embedded default."""
        return self.name == LOCAL

    def option_dict(self) -> dict[str, str]:
        """The options as the backend class takes them."""
        return dict(self.options)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (real values: scrub it, or use :func:`journal_form`, before writing it)."""
        return {"name": self.name, "options": self.option_dict()}

    @classmethod
    def from_dict(cls, data: Any) -> BackendChoice:
        """Inverse of :meth:`to_dict`; ``None`` (a run dir from before backends) is ``local``."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise ValueError("'backend' is not an object with a name")
        options = data.get("options") or {}
        if not isinstance(options, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in options.items()
        ):
            raise ValueError("'backend.options' is not an object of strings")
        return cls(data["name"], tuple(options.items()))

    def describe(self) -> str:
        """``slurm (partition=debug, gpus=1)`` for people, secret values ``<redacted>``."""
        opts = ", ".join(f"{k}={_shown(k, v)}" for k, v in self.options)
        return f"{self.name} ({opts})" if opts else self.name

    def flags(self) -> list[str]:
        """``--backend NAME --backend-opt KEY=VALUE ...`` (nothing for ``local``), secret values
        ``<redacted>``: the words a printed command repeats."""
        if self.is_local and not self.options:
            return []
        words = ["--backend", self.name]
        for k, v in self.options:
            words += ["--backend-opt", f"{k}={_shown(k, v)}"]
        return words

    def secrets(self) -> Secrets:
        """The option values the rule says are secret, by their ``--backend-opt KEY`` name."""
        return Secrets({_SECRET_KEY.format(k): v for k, v in self.options if _hides(k, v)})


def _hides(key: str, value: str) -> bool:
    return is_secret(key, value) or scrub_text(value) != value


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    found: dict[str, Any] = {}
    for ep in entry_points(group=ENTRY_POINT_BACKENDS):
        old = found.get(ep.name)
        if old is not None and old.value != ep.value:
            raise UsageError(
                f"--backend {ep.name}: registered twice ({old.value} and {ep.value})",
                hint="uninstall one of the two packages",
            )
        found[ep.name] = ep
    return found


def available() -> list[str]:
    """Every backend name: ``local`` and the entry points of ``sleuth.backends``, sorted."""
    return sorted({LOCAL, *_entry_points()})


def load_class(name: str) -> Any:
    """The class registered as ``name``; a UsageError listing the names when there is none, or
    naming the cause when its module cannot be imported."""
    eps = _entry_points()
    ep = eps.get(name)
    if ep is None:
        raise UsageError(
            f"--backend {name}: no such backend", hint=f"choose one of {', '.join(sorted({LOCAL, *eps}))}"
        )
    try:
        return ep.load()
    except Exception as exc:  # a broken plugin is named in one line, not a traceback
        cause = str(exc).splitlines()[0] if str(exc) else ""
        raise UsageError(
            f"--backend {name}: cannot load {ep.value}: {type(exc).__name__}"
            + (f": {cause}" if cause else "")
        ) from None


def check_backend(choice: BackendChoice, jobs: int, gpus: Sequence[str] = ()) -> Any:
    """What can be checked without starting the backend: the name, the flags that go with it,
    the option keys the class declares (``OPTIONS``).  Run it before the run dir exists.

    Returns the backend's class (None for ``local``, which needs no entry point read)."""
    from sleuth.backends.local import check_slots

    if choice.is_local:
        if choice.options:
            key, value = choice.options[0]
            raise UsageError(
                f"--backend-opt {key}={_shown(key, value)}: the local backend takes no options",
                hint="use --jobs and --gpus, or choose another --backend",
            )
        check_slots(jobs, gpus)
        return None
    if gpus:
        raise UsageError(
            f"--gpus does not go with --backend {choice.name}: the cluster picks the devices",
            hint="ask for N GPUs per trial with --backend-opt gpus=N",
        )
    check_slots(jobs)
    cls = load_class(choice.name)
    declared = getattr(cls, "OPTIONS", None)
    if isinstance(declared, Mapping):
        for key, value in choice.options:
            if key not in declared:
                valid = ", ".join(sorted(declared)) or "none"
                raise UsageError(
                    f"--backend-opt {key}={_shown(key, value)}: {choice.name} has no option {key!r}",
                    hint=f"its options: {valid}",
                )
    return cls


def make_backend(choice: BackendChoice, jobs: int, gpus: Sequence[str] = ()) -> Backend:
    """The backend ``choice`` names, ``jobs`` trials in flight (``gpus``: local device ids)."""
    cls = check_backend(choice, jobs, gpus)  # the entry points are read once
    if cls is None:
        from sleuth.backends.local import LocalBackend

        return LocalBackend(jobs, gpus)
    try:
        backend: Backend = cls(jobs, options=choice.option_dict())
    except SleuthError:
        raise
    except Exception as exc:  # a plugin's own bug: named in one line
        raise UsageError(
            f"--backend {choice.name}: cannot start: {type(exc).__name__}: {choice.secrets().scrub(str(exc))}"
        ) from None
    return backend


def _shown(key: str, value: str) -> str:
    return REDACTED if _hides(key, value) else value


def journal_form(choice: BackendChoice, run_dir: Path) -> dict[str, Any]:
    """:meth:`BackendChoice.to_dict` with secret values hidden (and kept in ``secrets.json``)."""
    secrets = choice.secrets()
    secrets.save(run_dir)
    hidden = [k for k, v in choice.options if _SECRET_KEY.format(k) in secrets.values]
    out = {"name": choice.name, "options": {k: REDACTED if k in hidden else v for k, v in choice.options}}
    if hidden:
        out["redacted"] = hidden
    return out


def from_journal(data: Any, run_dir: Path) -> BackendChoice:
    """The choice :func:`journal_form` wrote, its hidden values back; ``None`` is ``local``."""
    if data is None:
        return BackendChoice()
    try:
        choice = BackendChoice.from_dict(data)
    except ValueError as exc:
        raise UsageError(f"{run_dir / 'journal.jsonl'}: the start event's backend: {exc}") from None
    hidden = [k for k in data.get("redacted") or [] if isinstance(k, str)]
    return _restored(choice, hidden, run_dir, "copy the run's secrets.json back into the run dir")


def restore_redacted(choice: BackendChoice, run_dir: Path | None) -> BackendChoice:
    """``choice`` with each ``--backend-opt KEY=<redacted>`` (a printed rerun command, run as it is)
    given its value from ``run_dir``'s ``secrets.json``; a value not kept there is a UsageError."""
    hidden = [k for k, v in choice.options if v == REDACTED]
    if not hidden:
        return choice
    if run_dir is None:
        raise UsageError(
            f"--backend-opt {hidden[0]}={REDACTED}: the value is hidden and no run dir keeps it",
            hint="give the value itself",
        )
    return _restored(choice, hidden, run_dir, f"give the value itself in place of {REDACTED}")


def _restored(choice: BackendChoice, hidden: list[str], run_dir: Path, hint: str) -> BackendChoice:
    """The options ``hidden`` of ``choice`` with their values from ``run_dir``'s ``secrets.json``."""
    if not hidden:
        return choice
    kept = Secrets.load(run_dir, [_SECRET_KEY.format(k) for k in hidden], environ={}, hint=hint)
    return BackendChoice(
        choice.name, tuple((k, kept.values.get(_SECRET_KEY.format(k), v)) for k, v in choice.options)
    )
