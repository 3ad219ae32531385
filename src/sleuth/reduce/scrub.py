"""What must not leave the machine: the run's secrets (:mod:`sleuth.secrets`) plus ``--scrub`` patterns.

One object applies both, to text and to JSON-like data, so every file the reduce room writes and
every line it prints goes through the same rule.  Matches become ``<redacted>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sleuth.errors import UsageError
from sleuth.secrets import REDACTED, Secrets, scrub_text

__all__ = ["MIN_SECRET_LEN", "Scrubber", "compile_patterns"]

#: a secret value shorter than this is hidden where its variable is named, not inside every text
#: (``TOKENIZERS_PARALLELISM=1`` is secret by its name; hiding every "1" would destroy the bundle)
MIN_SECRET_LEN = 6


def compile_patterns(
    patterns: tuple[str, ...] | list[str], flag: str = "--scrub"
) -> tuple[re.Pattern[str], ...]:
    """Compile ``--scrub`` regexes; a UsageError naming the bad one."""
    out = []
    for p in patterns:
        if not p:
            raise UsageError(f"{flag} '': an empty pattern would match everywhere")
        try:
            rx = re.compile(p)
        except re.error as exc:
            raise UsageError(f"{flag} {p!r}: invalid regex: {exc}") from None
        if rx.search(""):
            raise UsageError(
                f"{flag} {p!r}: the pattern matches the empty string", hint="make it match the secret"
            )
        out.append(rx)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Scrubber:
    """Secrets by value and name, and user patterns."""

    secrets: Secrets = field(default_factory=Secrets)
    patterns: tuple[re.Pattern[str], ...] = ()

    def text(self, text: str) -> str:
        """``text`` with every secret and every pattern match hidden."""
        values = sorted(
            {v for v in self.secrets.values.values() if len(v) >= MIN_SECRET_LEN}, key=len, reverse=True
        )
        out = scrub_text(text, tuple(values))
        for rx in self.patterns:
            out = rx.sub(REDACTED, out)
        return out

    def obj(self, obj: Any) -> Any:
        """A copy of JSON-like ``obj`` with every string scrubbed (and secret-named values hidden)."""
        secret = self.secrets.values

        def walk(x: Any, key: str | None) -> Any:
            if isinstance(x, str):
                return REDACTED if key is not None and secret.get(key) == x else self.text(x)
            if isinstance(x, dict):
                return {k: walk(v, str(k)) for k, v in x.items()}
            if isinstance(x, list | tuple):
                return [walk(v, None) for v in x]
            return x

        return walk(obj, None)

    def hides(self, text: str) -> bool:
        """True when ``text`` holds something to hide."""
        return self.text(text) != text
