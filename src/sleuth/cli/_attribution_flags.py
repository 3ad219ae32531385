"""Flags shared by ``sleuth attribute``, ``serve`` and ``supervise``: settings, sources, policy.

``settings_from_flags`` loads the ``attribution:`` block of ``--config`` (when given) and puts
every flag that was given over it; each bad value is a ``UsageError`` naming the flag.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sleuth.attribution.model import Aggregation, Mode
from sleuth.errors import UsageError

if TYPE_CHECKING:  # pydantic (the config schema) is imported when flags are read, not for --help
    from sleuth.attribution.config import Settings, SourceSpec

__all__ = ["attribution_options", "settings_from_flags"]

F = TypeVar("F", bound=Callable[..., Any])


def attribution_options(*, mode_default_help: str = "shadow") -> Callable[[F], F]:
    """The settings flags; ``--mode``'s help names the verb's default."""

    def apply(func: F) -> F:
        options = [
            click.option(
                "--config",
                "config",
                type=click.Path(path_type=Path),
                metavar="FILE",
                help="YAML/JSON file with an attribution: block (flags win over it).",
            ),
            click.option(
                "--catalog",
                "catalogs",
                multiple=True,
                type=click.Path(path_type=Path),
                metavar="FILE",
                help="An extra signature catalog file. Repeatable.",
            ),
            click.option(
                "--mode",
                type=click.Choice([m.value for m in Mode]),
                default=None,
                help="shadow: record a STOP, restart anyway; enforce: act on it"
                f" (default {mode_default_help}).",
            ),
            click.option(
                "--progress-regex", metavar="RE", help="A line that shows progress (iteration, checkpoint)."
            ),
            click.option(
                "--max-no-progress-cycles",
                type=int,
                default=None,
                metavar="N",
                help="STOP after N cycles in a row without progress (0: never; default 3).",
            ),
            click.option(
                "--http-source", multiple=True, metavar="URL", help="POST the excerpt here. Repeatable."
            ),
            click.option(
                "--command-source",
                multiple=True,
                metavar="CMD",
                help="Run CMD with the excerpt on stdin, JSON verdict on stdout. Repeatable.",
            ),
            click.option(
                "--mcp-source",
                multiple=True,
                metavar="CMD|URL",
                help="An MCP server (stdio command or http URL) whose tool gives a verdict. Repeatable.",
            ),
            click.option(
                "--mcp-tool", default=None, metavar="NAME", help="The MCP tool to call (default attribute)."
            ),
            click.option(
                "--source-timeout",
                type=float,
                default=None,
                metavar="S",
                help="Seconds each source may take; a late source abstains (default 30).",
            ),
            click.option(
                "--aggregation",
                default=None,
                metavar="any|all|quorum:K|priority",
                help="How source verdicts combine (default any: STOP if any source says STOP).",
            ),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return apply


def _sources(kw: dict[str, Any]) -> tuple[SourceSpec, ...]:
    from sleuth.attribution.config import SourceSpec

    specs: list[SourceSpec] = []
    tool = kw.get("mcp_tool") or "attribute"
    for url in kw.get("http_source") or ():
        if not re.match(r"^https?://[^\s/]+", url):
            raise UsageError(
                f"--http-source {url!r}: not an http(s) URL", hint="e.g. http://127.0.0.1:9000/verdict"
            )
        specs.append(SourceSpec(http=url))
    for cmd in kw.get("command_source") or ():
        if not cmd.strip():
            raise UsageError("--command-source: empty command")
        specs.append(SourceSpec(command=cmd))
    for target in kw.get("mcp_source") or ():
        if not target.strip():
            raise UsageError("--mcp-source: empty command or URL")
        specs.append(SourceSpec(mcp=target, tool=tool))
    if kw.get("mcp_tool") and not kw.get("mcp_source"):
        raise UsageError("--mcp-tool needs --mcp-source")
    return tuple(specs)


def settings_from_flags(kw: dict[str, Any], *, default_mode: Mode = Mode.SHADOW) -> Settings:
    """The file's settings (if ``--config``) with the given flags over them."""
    from sleuth.attribution.config import compile_progress, load_settings
    from sleuth.attribution.logs import check_regular

    config = kw.get("config")
    settings = load_settings(config)
    if config is None:
        settings = settings.with_flags(mode=default_mode)
    timeout = kw.get("source_timeout")
    if timeout is not None and not 0 < timeout <= 3600:
        raise UsageError(f"--source-timeout {timeout:g}: must be > 0 and <= 3600 seconds")
    n = kw.get("max_no_progress_cycles")
    if n is not None and not 0 <= n <= 1000:
        raise UsageError(f"--max-no-progress-cycles {n}: must be between 0 and 1000")
    aggregation = None
    if kw.get("aggregation"):
        try:
            aggregation = Aggregation.parse(kw["aggregation"])
        except ValueError as exc:
            raise UsageError(f"--aggregation {exc}") from None
    regex = kw.get("progress_regex")
    compile_progress(regex)
    for path in kw.get("catalogs") or ():
        if not path.exists():
            what = "a broken symlink or a symlink loop" if path.is_symlink() else "not found"
            raise UsageError(f"--catalog {path}: {what}")
        check_regular(path, f"--catalog {path}")
    policy = settings.policy
    if n is not None:
        from dataclasses import replace

        policy = replace(policy, max_no_progress_cycles=n)
    extra = _sources(kw)
    return settings.with_flags(
        mode=Mode(kw["mode"]) if kw.get("mode") else None,
        aggregation=aggregation,
        source_timeout=timeout,
        catalogs=(*settings.catalogs, *(kw.get("catalogs") or ())) or None,
        progress_regex=regex,
        policy=policy,
        sources=(*settings.sources, *extra) if extra else None,
    )
