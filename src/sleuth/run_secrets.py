"""The secrets of one ``sleuth run``: ``--env`` values and tokens in the command's argv.

The rule of what is secret is :mod:`sleuth.secrets`' (names with TOKEN, KEY, ...; token-shaped
values; URL credentials); this module only says where ``sleuth run`` finds candidates:

* ``--env NAME=VALUE``: the pair;
* the command's argv: :func:`sleuth.secrets.argv_secrets` (``--flag=VALUE`` and ``--flag VALUE``
  pairs whose flag names a secret, and any argument whose value alone looks secret);
* ``--backend-opt KEY=VALUE``: the pair, as for ``--env`` (kept under its path, below);
* the venv's requirements (``--with``): URL credentials and tokens in them (a private index's
  wheel URL) are hidden by the rule, and kept so that a resumed run installs the same thing;
* any other string of the config that the rule changes (a ``--fail-regex 'password=\\S+'``, a
  ``--cwd`` with a token in it): kept under its path (``config.oracle.fail_regex``) and journaled in
  ``redacted_paths``, so that a resumed run judges and runs exactly as the first did.

The workload still gets the real values.  Everything sleuth writes or prints goes through
:meth:`RunSecrets.scrub`; ``secrets.json`` (0600) keeps the values and the original arguments, so
``--resume`` restores them (``--env`` values may also come from the caller's shell).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.errors import UsageError
from sleuth.secrets import SECRETS_FILE, Secrets, leaves, put_at

__all__ = ["RunSecrets", "backend_opts_of", "pins_of"]


@dataclass(frozen=True, slots=True)
class RunSecrets:
    """What to hide in everything written, and what ``secrets.json`` keeps to resume."""

    hidden: Secrets = field(default_factory=Secrets)
    env_names: tuple[str, ...] = ()
    restore: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        env: Mapping[str, str],
        argv: Sequence[str],
        pins: Sequence[str] = (),
        backend_opts: Mapping[str, str] | None = None,
    ) -> RunSecrets:
        """The secrets of a run's ``--env`` values, command, venv requirements and backend options."""
        env_secrets = Secrets.of(env)
        in_argv = Secrets.of_argv(argv)
        restore = {f"argv[{i}]": a for i, a in enumerate(argv) if in_argv.scrub(a) != a}
        hidden = env_secrets.merged(in_argv).merged(Secrets.of(backend_opts or {}))
        restore.update({f"pins[{i}]": p for i, p in enumerate(pins) if hidden.scrub(p) != p})
        return cls(hidden, tuple(env_secrets.names), restore)

    def __bool__(self) -> bool:
        return bool(self.hidden) or bool(self.restore)

    def scrub(self, obj: Any) -> Any:
        """A copy of ``obj`` (JSON-like, or a string) with every secret hidden."""
        return self.hidden.scrub(obj)

    def _changed_paths(self, config: Mapping[str, Any]) -> dict[str, str]:
        """``{"config.<path>": original}`` of the config's other strings that the scrub changes."""
        out: dict[str, str] = {}
        for path, s in leaves(dict(config)):
            if path[0] in ("env", "argv") or path[:2] == ("environment", "pins"):
                continue  # kept by name or by index
            if self.scrub(s) != s:
                out["config." + ".".join(map(str, path))] = s
        return out

    def public_config(self, config: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
        """The config as journaled (secrets hidden); saves ``secrets.json`` when there is one."""
        public: dict[str, Any] = self.scrub(dict(config))
        paths = self._changed_paths(config)
        if not self and not paths:
            return public
        if self.env_names:
            public["env"] = self.hidden.public_env(config["env"])
            public["redacted_env"] = list(self.env_names)
        argv_idx = [int(k[5:-1]) for k in self.restore if k.startswith("argv[")]
        pin_idx = [int(k[5:-1]) for k in self.restore if k.startswith("pins[")]
        if argv_idx:
            public["redacted_argv"] = sorted(argv_idx)
        if pin_idx:
            public["redacted_pins"] = sorted(pin_idx)
        if paths:
            public["redacted_paths"] = sorted(k.removeprefix("config.") for k in paths)
        kept = {k: self.hidden.values[k] for k in self.env_names}
        Secrets({**kept, **self.restore, **paths}).save(run_dir)
        return public

    @classmethod
    def load(cls, run_dir: Path, public: Mapping[str, Any]) -> RunSecrets:
        """The secrets a journaled config names, from ``secrets.json`` (env values: or the shell)."""
        env_names = public.get("redacted_env") or []
        argv_idx = public.get("redacted_argv") or []
        pin_idx = public.get("redacted_pins") or []
        paths = public.get("redacted_paths") or []
        if not all(
            isinstance(names, list) and all(isinstance(n, str) for n in names) for names in (env_names, paths)
        ) or not all(
            isinstance(idx, list) and all(isinstance(i, int) for i in idx) for idx in (argv_idx, pin_idx)
        ):
            raise UsageError(f"{run_dir / 'journal.jsonl'}: the start event's redacted names are malformed")
        env = Secrets.load(run_dir, env_names)
        restore: dict[str, str] = {}
        for what, keys in (
            ("command's argument", [f"argv[{i}]" for i in argv_idx]),
            ("--with requirement", [f"pins[{i}]" for i in pin_idx]),
            ("setting", [f"config.{p}" for p in paths]),
        ):
            try:
                restore.update(Secrets.load(run_dir, keys, environ={}).values)
            except UsageError:
                names = ", ".join(k.removeprefix("config.") for k in keys)
                raise UsageError(
                    f"{run_dir}: the redacted {what}(s) {names} are not in {SECRETS_FILE}",
                    hint="they cannot come from the shell; start a new run",
                ) from None
        return cls(env, tuple(env_names), restore)

    def restore_config(self, public: Mapping[str, Any]) -> dict[str, Any]:
        """The journaled config with the real values back (to run the trials again)."""
        config = copy.deepcopy(dict(public))
        if self.env_names and isinstance(config.get("env"), dict):
            config["env"] = self.hidden.restore_env(config["env"])
        config["argv"] = _put_back(config.get("argv"), "argv", self.restore)
        environment = config.get("environment")
        if isinstance(environment, dict) and "pins" in environment:
            config["environment"] = {
                **environment,
                "pins": _put_back(environment["pins"], "pins", self.restore),
            }
        for key, value in self.restore.items():
            if key.startswith("config."):
                try:
                    put_at(config, key.removeprefix("config."), value)
                except (KeyError, IndexError, TypeError, ValueError):
                    where = key.removeprefix("config.")
                    raise UsageError(
                        f"journal.jsonl: the start event has no setting {where} to restore",
                        hint="the run dir was edited; start a new run",
                    ) from None
        return config

    def for_run(self, config: Mapping[str, Any]) -> RunSecrets:
        """The secrets of a restored config (what a resumed run hides)."""
        return RunSecrets.of(
            dict(config.get("env") or {}),
            list(config.get("argv") or []),
            pins_of(config),
            backend_opts_of(config),
        )


def pins_of(config: Mapping[str, Any]) -> list[str]:
    """The venv requirements (``--with``) of a run's config dict; none for another environment."""
    environment = config.get("environment")
    pins = environment.get("pins") if isinstance(environment, Mapping) else None
    return [p for p in pins if isinstance(p, str)] if isinstance(pins, list) else []


def backend_opts_of(config: Mapping[str, Any]) -> dict[str, str]:
    """The ``--backend-opt`` options of a run's config dict (none before backends)."""
    backend = config.get("backend")
    opts = backend.get("options") if isinstance(backend, Mapping) else None
    return {str(k): str(v) for k, v in opts.items()} if isinstance(opts, Mapping) else {}


def _put_back(values: Any, prefix: str, restore: Mapping[str, str]) -> Any:
    """``values`` (a journaled list) with the kept originals ``prefix[i]`` put back."""
    if not isinstance(values, list):
        return values
    out = list(values)
    for key, value in restore.items():
        if key.startswith(f"{prefix}["):
            i = int(key[len(prefix) + 1 : -1])
            if 0 <= i < len(out):
                out[i] = value
    return out
