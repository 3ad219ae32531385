"""Attribution settings: the ``attribution:`` block of a YAML/JSON file, merged with command-line flags.

The same block configures ``sleuth attribute --config``, ``sleuth serve --config`` and
``sleuth supervise --attribution FILE``.  It is validated strictly (unknown keys rejected, errors
name the file and key path such as ``attribution.sources[1].timeout``); other top-level blocks of
the file belong to other verbs and are left alone.  Flags given on the command line win over the
file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sleuth.attribution.decide import Policy
from sleuth.attribution.logs import check_regular
from sleuth.attribution.model import Aggregation, CatalogAction, Mode, SignatureClass
from sleuth.datafile import format_validation_error, load_data_file
from sleuth.errors import ConfigError, UsageError
from sleuth.secrets import Secrets

__all__ = [
    "AttributionBlock",
    "PolicyBlock",
    "Settings",
    "SourceSpec",
    "compile_progress",
    "config_schema",
    "load_settings",
]

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_EXCERPT_BYTES = 64 * 1024


class SourceSpec(BaseModel):
    """One source beside the catalog: exactly one of ``http``, ``command``, ``mcp``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    http: str | None = Field(default=None, description="URL that receives the excerpt (POST JSON)")
    command: str | list[str] | None = Field(
        default=None, description="argv (or a shell-like string) fed the excerpt"
    )
    mcp: str | None = Field(default=None, description="MCP server: a command (stdio) or an http(s) URL")
    tool: str = Field(default="attribute", description="the MCP tool to call")
    name: str | None = Field(default=None, description="name shown in the output (default: kind and target)")
    timeout: float | None = Field(default=None, gt=0, le=3600, description="seconds; default source_timeout")

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        given = [k for k in ("http", "command", "mcp") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of http, command, mcp (got {', '.join(given) or 'none'})")
        if self.http is not None and not re.match(r"^https?://", self.http):
            raise ValueError(f"http: {self.http!r} is not an http(s) URL")
        if isinstance(self.command, list) and not self.command:
            raise ValueError("command: empty argv")
        if isinstance(self.command, str) and not self.command.strip():
            raise ValueError("command: empty command")
        if self.mcp is not None and not self.mcp.strip():
            raise ValueError("mcp: empty target")
        return self

    @property
    def kind(self) -> str:
        """``http``, ``command`` or ``mcp``."""
        return next(k for k in ("http", "command", "mcp") if getattr(self, k) is not None)

    @property
    def target(self) -> str:
        """The URL or command, as one string."""
        v = getattr(self, self.kind)
        return " ".join(v) if isinstance(v, list) else str(v)

    @property
    def label(self) -> str:
        """The name shown in the output (the command's secret arguments and URL credentials hidden)."""
        return str(self.secrets.scrub(self.name or f"{self.kind}:{self.target}"))

    @property
    def secrets(self) -> Secrets:
        """The secrets of the source's command line (``--api-key X``, tokens, URL credentials)."""
        v = getattr(self, self.kind)
        return Secrets.of_argv(v if isinstance(v, list) else str(v))


class PolicyBlock(BaseModel):
    """``attribution.policy``: when the catalog recommends STOP."""

    model_config = ConfigDict(extra="forbid")

    deterministic_classes: list[SignatureClass] = Field(
        default_factory=lambda: [SignatureClass.SOFTWARE, SignatureClass.USER]
    )
    budgets: dict[CatalogAction, int] = Field(
        default_factory=dict, description="same-root retries per action"
    )
    max_no_progress_cycles: int = Field(default=3, ge=0, le=1000)

    @field_validator("budgets")
    @classmethod
    def _positive(cls, v: dict[CatalogAction, int]) -> dict[CatalogAction, int]:
        bad = [a.value for a, n in v.items() if not 0 <= n <= 1000]
        if bad:
            raise ValueError(f"budget of {bad[0]} must be between 0 and 1000")
        return v

    def policy(self) -> Policy:
        """The decision policy."""
        base = Policy()
        return Policy(
            deterministic_classes=frozenset(self.deterministic_classes),
            budgets={**base.budgets, **self.budgets},
            max_no_progress_cycles=self.max_no_progress_cycles,
        )


class AttributionBlock(BaseModel):
    """The ``attribution:`` block."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode = Mode.SHADOW
    aggregation: str = "any"
    source_timeout: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=3600)
    catalogs: list[str] = Field(
        default_factory=list, description="extra catalog files (relative to this file)"
    )
    progress_regex: str | None = None
    history: str | None = Field(default=None, description="history file (relative to this file)")
    policy: PolicyBlock = Field(default_factory=PolicyBlock)
    sources: list[SourceSpec] = Field(default_factory=list)
    excerpt_bytes: int = Field(default=DEFAULT_EXCERPT_BYTES, ge=1024, le=16 * 1024 * 1024)

    @field_validator("aggregation")
    @classmethod
    def _aggregation(cls, v: str) -> str:
        Aggregation.parse(v)
        return v

    @field_validator("progress_regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        why = _progress_error(v) if v is not None else None
        if why:
            raise ValueError(why)
        return v


class _File(BaseModel):
    model_config = ConfigDict(extra="allow")

    attribution: AttributionBlock


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything one attribution needs besides the logs."""

    mode: Mode = Mode.SHADOW
    aggregation: Aggregation = field(default_factory=lambda: Aggregation("any"))
    source_timeout: float = DEFAULT_TIMEOUT_S
    catalogs: tuple[Path, ...] = ()
    progress_regex: str | None = None
    history: Path | None = None
    policy: Policy = field(default_factory=Policy)
    sources: tuple[SourceSpec, ...] = ()
    excerpt_bytes: int = DEFAULT_EXCERPT_BYTES

    def with_flags(self, **flags: Any) -> Settings:
        """A copy with every flag that was given (not None, not empty) put over the file's value."""
        given = {k: v for k, v in flags.items() if v is not None and v != ()}
        return replace(self, **given)

    def to_json(self) -> dict[str, Any]:
        """The resolved settings (sources by label; no secrets are part of them)."""
        return {
            "mode": self.mode.value,
            "aggregation": str(self.aggregation),
            "source_timeout": self.source_timeout,
            "catalogs": [str(p) for p in self.catalogs],
            "progress_regex": self.progress_regex,
            "history": str(self.history) if self.history else None,
            "policy": self.policy.to_json(),
            "sources": [s.label for s in self.sources],
        }


def load_settings(path: Path | None) -> Settings:
    """Settings from a file's ``attribution:`` block (defaults without a file); ConfigError naming the key."""
    if path is None:
        return Settings()
    if not path.exists():
        raise ConfigError(f"{path}: not found", hint="check the --config / --attribution path")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file")
    check_regular(path, str(path))
    data = load_data_file(path)
    if not isinstance(data, dict) or "attribution" not in data:
        raise ConfigError(
            f"{path}: no `attribution:` block", hint="put the settings under a top-level attribution: key"
        )
    try:
        block = _File.model_validate(data).attribution
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None
    base = path.parent

    def rel(p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else base / q

    return Settings(
        mode=block.mode,
        aggregation=Aggregation.parse(block.aggregation),
        source_timeout=block.source_timeout,
        catalogs=tuple(rel(p) for p in block.catalogs),
        progress_regex=block.progress_regex,
        history=rel(block.history) if block.history else None,
        policy=block.policy.policy(),
        sources=tuple(block.sources),
        excerpt_bytes=block.excerpt_bytes,
    )


def _progress_error(regex: str) -> str | None:
    """Why ``regex`` cannot be a progress regex, or None.  It runs on the log's bytes, where
    ``re`` knows no ``\\u``/``\\U``/``\\N`` escapes (they once passed here and crashed the scan)."""
    try:
        re.compile(regex)
    except re.error as exc:
        return f"does not compile: {exc}"
    try:
        re.compile(regex.encode())
    except re.error as exc:
        return f"does not compile on the log's bytes: {exc} (write the character itself)"
    return None


def compile_progress(regex: str | None, flag: str = "--progress-regex") -> re.Pattern[str] | None:
    """The progress regex compiled; UsageError naming the flag when it does not compile."""
    if regex is None:
        return None
    why = _progress_error(regex)
    if why:
        raise UsageError(f"{flag} {regex!r}: {why}")
    return re.compile(regex)


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a file holding an ``attribution:`` block (``sleuth schema attribution``)."""
    schema = _File.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "sleuth attribution settings (the attribution: block)"
    return schema
