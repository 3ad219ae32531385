"""The secrets of one ``sleuth run``: ``--env`` values and tokens in the command's argv.

The rule of what is secret is :mod:`sleuth.secrets`' (names with TOKEN, KEY, ...; token-shaped
values; URL credentials); this module only says where ``sleuth run`` finds candidates:

* ``--env NAME=VALUE``: the pair;
* the command's argv: :func:`sleuth.secrets.argv_secrets` (``--flag=VALUE`` and ``--flag VALUE``
  pairs whose flag names a secret, and any argument whose value alone looks secret).

The workload still gets the real values.  Everything sleuth writes or prints goes through
:meth:`RunSecrets.scrub`; ``secrets.json`` (0600) keeps the values and the original arguments, so
``--resume`` restores them (``--env`` values may also come from the caller's shell).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.errors import UsageError
from sleuth.secrets import SECRETS_FILE, Secrets

__all__ = ["RunSecrets"]


@dataclass(frozen=True, slots=True)
class RunSecrets:
    """What to hide in everything written, and what ``secrets.json`` keeps to resume."""

    hidden: Secrets = field(default_factory=Secrets)
    env_names: tuple[str, ...] = ()
    restore: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, env: Mapping[str, str], argv: Sequence[str]) -> RunSecrets:
        """The secrets of a run's ``--env`` values and command."""
        env_secrets = Secrets.of(env)
        in_argv = Secrets.of_argv(argv)
        restore = {f"argv[{i}]": a for i, a in enumerate(argv) if in_argv.scrub(a) != a}
        return cls(env_secrets.merged(in_argv), tuple(env_secrets.names), restore)

    def __bool__(self) -> bool:
        return bool(self.hidden) or bool(self.restore)

    def scrub(self, obj: Any) -> Any:
        """A copy of ``obj`` (JSON-like, or a string) with every secret hidden."""
        return self.hidden.scrub(obj)

    def public_config(self, config: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
        """The config as journaled (secrets hidden); saves ``secrets.json`` when there is one."""
        public: dict[str, Any] = self.scrub(dict(config))
        if not self:
            return public
        if self.env_names:
            public["env"] = self.hidden.public_env(config["env"])
            public["redacted_env"] = list(self.env_names)
        if self.restore:
            public["redacted_argv"] = sorted(int(k[5:-1]) for k in self.restore)
        kept = {k: self.hidden.values[k] for k in self.env_names}
        Secrets({**kept, **self.restore}).save(run_dir)
        return public

    @classmethod
    def load(cls, run_dir: Path, public: Mapping[str, Any]) -> RunSecrets:
        """The secrets a journaled config names, from ``secrets.json`` (env values: or the shell)."""
        env_names = public.get("redacted_env") or []
        argv_idx = public.get("redacted_argv") or []
        if not (isinstance(env_names, list) and all(isinstance(n, str) for n in env_names)) or not (
            isinstance(argv_idx, list) and all(isinstance(i, int) for i in argv_idx)
        ):
            raise UsageError(f"{run_dir / 'journal.jsonl'}: the start event's redacted names are malformed")
        env = Secrets.load(run_dir, env_names)
        keys = [f"argv[{i}]" for i in argv_idx]
        try:
            argv = Secrets.load(run_dir, keys, environ={})
        except UsageError:
            raise UsageError(
                f"{run_dir}: the command's redacted argument(s) {', '.join(map(str, argv_idx))} "
                f"are not in {SECRETS_FILE}",
                hint="they cannot come from the shell; start a new run",
            ) from None
        return cls(env, tuple(env_names), dict(argv.values))

    def restore_config(self, public: Mapping[str, Any]) -> dict[str, Any]:
        """The journaled config with the real values back (to run the trials again)."""
        config = dict(public)
        if self.env_names and isinstance(config.get("env"), dict):
            config["env"] = self.hidden.restore_env(config["env"])
        if self.restore and isinstance(config.get("argv"), list):
            argv = list(config["argv"])
            for key, value in self.restore.items():
                i = int(key[5:-1])
                if 0 <= i < len(argv):
                    argv[i] = value
            config["argv"] = argv
        return config

    def for_run(self, config: Mapping[str, Any]) -> RunSecrets:
        """The secrets of a restored config (what a resumed run hides)."""
        return RunSecrets.of(dict(config.get("env") or {}), list(config.get("argv") or []))
