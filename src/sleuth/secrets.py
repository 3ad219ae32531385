"""One redaction rule for every verb: what is secret, where it is kept, how it is hidden.

A value is *secret* when the name of the variable (or key) that carries it says so (``TOKEN``,
``SECRET``, ``KEY``, ``PASSWORD``, ``CREDENTIAL``, ``AUTH`` ...) or when the value looks like a
token (``hf_...``, ``ghp_...``, ``sk-...``, ``AKIA...``, long mixed-case alphanumerics).  Inside any
other value, URL credentials (``scheme://user:pass@host``), HTTP credentials (``Authorization:
Basic ...``, ``Bearer ...``) and token-shaped words are hidden.

Invariant: a secret reaches no file of a run dir except ``secrets.json`` (mode 0600, kept for
resume) and no output except the workload's own.  Everything else a verb writes or prints
(journal events, resolved recipes, ``summary.json``, reports, ``--json`` and ``--dry-run``) goes
through :meth:`Secrets.scrub` first.  A run dir can then be attached to a bug report as it is;
resume takes the values back from ``secrets.json`` or, when that file was not shared, from the
caller's environment.

What is found inside free text (the patterns, :func:`scrub_text`) lives in :mod:`sleuth._scrub`,
re-exported here; what is secret by its name or its shape, in :mod:`sleuth._probe` (stdlib-only).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth._probe import REDACTED, redact_value, secret_name
from sleuth._scrub import scrub_text
from sleuth.errors import UsageError

__all__ = [
    "REDACTED",
    "SECRETS_FILE",
    "Secrets",
    "argv_secrets",
    "assigned_secrets",
    "env_secret_values",
    "is_secret",
    "leaves",
    "put_at",
    "scrub_text",
]

#: the file of a run dir that keeps the secret values (mode 0600)
SECRETS_FILE = "secrets.json"
#: secret values at least this long are also hidden wherever they appear inside another text
MIN_HIDDEN_IN_TEXT = 8
#: a command-line value named by its flag (``--password VALUE``) shorter than this stays visible:
#: it is hidden inside every text written, and hiding "5" of ``--num-keys 5`` would mangle ids and paths
MIN_NAMED_ARG = 6
#: a variable whose name says password or secret (not only key, token or auth) hides its value
#: inside every text from :data:`MIN_NAMED_ARG` characters on, as ``--password VALUE`` does:
#: ``PASSWORD=hunter2`` printed by a failing workload reached its signature in every copy
_STRONG_NAME_RE = re.compile(r"(?i)password|passwd|passphrase|secret|credential")


def is_secret(name: str, value: str) -> bool:
    """True when ``value`` must be kept out of every file but ``secrets.json``."""
    return value != REDACTED and redact_value(name, value) != value


def leaves(obj: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """``(path, string)`` of every string in a JSON-like ``obj``: where a verb finds what it hid."""
    if isinstance(obj, str):
        yield path, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from leaves(v, (*path, str(k)))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from leaves(v, (*path, i))


def put_at(doc: Any, where: str, value: str) -> None:
    """Put ``value`` back at ``where`` (a :func:`leaves` path joined with dots) in ``doc``, in place."""
    *parents, last = where.split(".")
    node: Any = doc
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


#: the answers of :func:`env_secret_values` for the last few environments (this shell's, its
#: secret-named part, the trials' ...), newest first: (the mapping as compared, its values, the values
#: of its secret-named variables).  One entry thrashed: every gate name check alternated this shell's
#: environment with a dict of its secret-named variables, and each call read the whole of it again
_env_cache: list[tuple[dict[Any, Any], tuple[str, ...], tuple[str, ...]]] = []
_ENV_CACHE_SIZE = 8
_env_lock = threading.Lock()  # trials' threads ask too


def env_secret_values(env: Mapping[str, str], *, named: bool = False) -> tuple[str, ...]:
    """The values of ``env`` that :class:`Secrets` hides inside texts (a workload's environment:
    what it may print), longest first; with ``named``, only those of variables whose name says
    secret (``DEPLOY_PASSWORD``; not a value that merely looks like a token).  The answers for the
    last few environments are kept, each checked against the mapping as it is now."""
    # os.environ is compared by its own dict of bytes: its Mapping equality decodes every entry
    raw = getattr(env, "_data", None) if env is os.environ else None
    key: dict[Any, Any] = raw if isinstance(raw, dict) else env if isinstance(env, dict) else dict(env)
    with _env_lock:
        for i, (seen, vals, named_vals) in enumerate(_env_cache):
            if seen == key:
                _env_cache.insert(0, _env_cache.pop(i))
                return named_vals if named else vals
        found = Secrets.of(env)
        named_vals = Secrets({k: v for k, v in found.values.items() if secret_name(k)})._vals()
        vals = found._vals()
        _env_cache.insert(0, (dict(key), vals, named_vals))
        del _env_cache[_ENV_CACHE_SIZE:]
    return named_vals if named else vals


def assigned_secrets(argv: Sequence[str]) -> dict[int, tuple[str, str]]:
    """The secret ``NAME=VALUE`` pairs of sleuth's own command line, by argument index: ``--env
    NAME=VALUE`` (any bare ``NAME=VALUE`` word) and ``--env=NAME=VALUE`` (``--backend-opt`` alike).
    A pair is secret by its name (:func:`sleuth._probe.secret_name`: ``DB_PASSWORD``, ``HF_TOKEN``)
    or by its value (a token, a URL with credentials); ``--env CUDA_VISIBLE_DEVICES=0`` is not."""
    found: dict[int, tuple[str, str]] = {}
    for i, arg in enumerate(argv):
        name, sep, value = (arg.partition("=")[2] if arg.startswith("-") else arg).partition("=")
        if sep and is_secret(name, value):
            found[i] = (name, value)
    return found


def argv_secrets(argv: Sequence[str]) -> dict[int, str]:
    """The secret values of a command line, by argument index: what every verb hides of a command.

    The VALUE of ``--flag=VALUE`` or ``--flag VALUE`` when the flag's name says secret (``--api-key``,
    ``--password``; at least :data:`MIN_NAMED_ARG` characters), and any argument that alone looks
    like a token (``hf_...``, a URL with credentials).
    """
    found: dict[int, str] = {}
    for i, arg in enumerate(argv):
        prev = argv[i - 1] if i else ""
        name, sep, value = arg.partition("=")
        if arg.startswith("-") and sep and len(value) >= MIN_NAMED_ARG and is_secret(name.lstrip("-"), value):
            found[i] = value
        elif (
            prev.startswith("-")
            and "=" not in prev
            and not arg.startswith("-")
            and len(arg) >= MIN_NAMED_ARG
            and is_secret(prev.lstrip("-"), arg)
        ) or is_secret("", arg):
            found[i] = arg
    return found


@dataclass(frozen=True, slots=True)
class Secrets:
    """The secret values of one run, by the name that carried them."""

    values: Mapping[str, str] = field(default_factory=dict)
    #: values a command line named by flag (:func:`argv_secrets`): hidden inside every text from
    #: :data:`MIN_NAMED_ARG` characters on, not only from :data:`MIN_HIDDEN_IN_TEXT`
    words: frozenset[str] = frozenset()

    @classmethod
    def of(cls, *envs: Mapping[str, str]) -> Secrets:
        """The secret entries of one or more name -> value mappings (``--env``, recipe ``extra_env``)."""
        found: dict[str, str] = {}
        for env in envs:
            found.update({k: v for k, v in env.items() if is_secret(k, v)})
        return cls(found)

    @classmethod
    def of_argv(cls, argv: Sequence[str] | str, key: Callable[[int], str] = "argv[{}]".format) -> Secrets:
        """The secrets of a command line (:func:`argv_secrets`), named ``key(index)``; a string is
        split as a shell would (one with an unbalanced quote gives none: tokens and URL credentials
        in it are still hidden by the rule)."""
        if isinstance(argv, str):
            try:
                argv = shlex.split(argv)
            except ValueError:
                return cls()
        found = argv_secrets(argv)
        return cls({key(i): v for i, v in found.items()}, frozenset(found.values()))

    @classmethod
    def of_command_line(cls, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Secrets:
        """What a line sleuth prints about its own command line ``argv`` hides (the error of every
        verb): the secrets :meth:`of_argv` finds (``--password VALUE``, a token), the secret
        ``NAME=VALUE`` pairs (:func:`assigned_secrets`; each one, a name given twice too) and the
        values of the secret variables of ``env`` (default: this shell's, :func:`env_secret_values`)."""
        pairs = {f"argv[{i}].{name}": value for i, (name, value) in assigned_secrets(argv).items()}
        shell = env_secret_values(os.environ if env is None else env)
        return cls(pairs, frozenset(shell)).merged(cls.of_argv(argv))

    def __bool__(self) -> bool:
        return bool(self.values) or bool(self.words)

    @property
    def names(self) -> list[str]:
        """The names whose values are secret, sorted."""
        return sorted(self.values)

    def merged(self, other: Secrets) -> Secrets:
        """Both sets of secrets."""
        return Secrets({**self.values, **other.values}, self.words | other.words)

    def public_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with each secret value replaced by ``<redacted>`` (names kept)."""
        return {k: (REDACTED if k in self.values else scrub_text(v, self._vals())) for k, v in env.items()}

    def _vals(self) -> tuple[str, ...]:
        # longest first: a secret that contains another is hidden whole.  A short value (USE_AUTH=0)
        # is hidden under its name only: replaced inside every text it would eat every "0"
        long = {
            v
            for k, v in self.values.items()
            if len(v) >= MIN_HIDDEN_IN_TEXT
            or (len(v) >= MIN_NAMED_ARG and _STRONG_NAME_RE.search(k.rpartition(".")[2]))
        }
        return tuple(sorted(long | {w for w in self.words if len(w) >= MIN_NAMED_ARG}, key=len, reverse=True))

    def scrub(self, obj: Any) -> Any:
        """A copy of a JSON-like ``obj`` with every secret hidden, in keys' values and in strings, keys
        included (a bisection's evidence is keyed by candidate, and a candidate may be a URL with
        credentials)."""
        vals = self._vals()

        def walk(x: Any, key: str | None) -> Any:
            if isinstance(x, str):
                if key is not None and key in self.values and x == self.values[key]:
                    return REDACTED
                return scrub_text(x, vals)
            if isinstance(x, Mapping):
                return {(scrub_text(k, vals) if isinstance(k, str) else k): walk(v, str(k))
                        for k, v in x.items()}  # fmt: skip
            if isinstance(x, list | tuple):
                return [walk(v, None) for v in x]
            return x

        return walk(obj, None)

    def save(self, run_dir: Path) -> None:
        """Write ``secrets.json`` (0600) into ``run_dir`` when there is anything to keep."""
        if not self.values:
            return
        from sleuth.journal import atomic_write_json

        path = run_dir / SECRETS_FILE
        kept: dict[str, str] = {}
        try:
            kept = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            kept = {}
        atomic_write_json(path, {**kept, **self.values}, mode=0o600)

    @classmethod
    def load(
        cls,
        run_dir: Path,
        names: list[str],
        environ: Mapping[str, str] | None = None,
        *,
        hint: str = "export them in this shell before resuming",
    ) -> Secrets:
        """The values of ``names`` from ``secrets.json``, else from ``environ`` (the caller's shell).

        A name found in neither is a ``UsageError`` that says (``hint``) how to go on anyway.
        """
        if not names:
            return cls({})
        env = os.environ if environ is None else environ
        kept_at = run_dir / SECRETS_FILE
        try:  # a FIFO (or a device) there would block the read for ever: only a regular file
            kept = json.loads(kept_at.read_text(encoding="utf-8")) if kept_at.is_file() else {}
            if not isinstance(kept, dict):
                kept = {}
        except (OSError, ValueError):
            kept = {}
        found: dict[str, str] = {}
        missing = []
        for name in names:
            if isinstance(kept.get(name), str):
                found[name] = kept[name]
            elif name in env:  # a shared run dir has no secrets.json: take the caller's value
                found[name] = env[name]
            else:
                missing.append(name)
        if missing:
            raise UsageError(
                f"{run_dir}: the redacted value(s) of {', '.join(missing)} are not in {SECRETS_FILE}",
                hint=hint,
            )
        return cls(found)

    def restore_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` (as journaled) with ``<redacted>`` values put back."""
        return {k: (self.values[k] if v == REDACTED and k in self.values else v) for k, v in env.items()}
