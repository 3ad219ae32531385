"""The indexes uv's own configuration files add, found as uv finds them (``bisect pypi`` lists them).

uv reads, and merges (project first): the nearest ``uv.toml`` (or ``pyproject.toml`` with a
``[tool.uv]`` table, a ``uv.toml`` beside it winning) in the directory it runs in or a parent, the
user's ``$XDG_CONFIG_HOME/uv/uv.toml`` (``~/.config/uv/uv.toml``) and the system's
``$XDG_CONFIG_DIRS/uv/uv.toml`` (``/etc/xdg``) or ``/etc/uv/uv.toml``; ``$UV_CONFIG_FILE`` replaces
them all and ``$UV_NO_CONFIG`` drops them.  A ``pyproject.toml`` that is not valid (TOML, or the
types of its index keys) is passed over, as uv passes over it with a warning.  The extra indexes,
in the order uv asks them (after the ones in ``$UV_INDEX``/``$UV_EXTRA_INDEX_URL``): the
``[[index]]`` tables (not ``explicit`` ones, which serve only the packages pinned to them),
``[pip] extra-index-url``, ``extra-index-url``.  The default index: an ``[[index]]`` with
``default = true``, else ``[pip] index-url``, else ``index-url`` (``$UV_DEFAULT_INDEX`` and
``$UV_INDEX_URL`` win over it).

uv's index strategy (``$UV_INDEX_STRATEGY``, else the first file's ``[pip] index-strategy`` or
``index-strategy``): by default (``first-index``) uv takes a package from the first index that has
it, so an index of these files that has the package hides the indexes after it; the ``unsafe-*``
strategies look for a release on every index, so every index is listed.  A value uv does not know
is a UsageError naming the variable, or the file and the key.

Unlike an index given by flag or variable, uv cannot be told to leave one of these out of an
install, so an index from a file that has the package is asked for every release (the ``fixed`` of
:func:`sleuth.bisect.index.read_projects`).  ``pip.conf`` is not read: uv does not read it
either.  A file uv would refuse, or an index sleuth cannot list (a path, ``format = "flat"``), is a
UsageError naming the file and the key.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.datafile import read_capped
from sleuth.errors import UsageError
from sleuth.secrets import scrub_text

__all__ = ["STRATEGIES", "ConfigIndexes", "Indexes", "config_indexes", "pypi_indexes"]

log = logging.getLogger(__name__)

#: the largest uv configuration file read
MAX_BYTES = 1024 * 1024
_FALSE = ("", "0", "false", "no", "off")
#: uv's index strategies, its default first
STRATEGIES = ("first-index", "unsafe-first-match", "unsafe-best-match")


@dataclass(frozen=True, slots=True)
class ConfigIndexes:
    """What uv's configuration files say about indexes: ``(URL, the file that says so)`` pairs."""

    default: tuple[str, str] | None = None
    #: in the order uv asks them
    extras: tuple[tuple[str, str], ...] = ()
    #: ``(index strategy, the file and key that set it)``; None: not set
    strategy: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Indexes:
    """The indexes ``bisect pypi`` lists from and gives uv: the flags and variables, then uv's files."""

    index: str
    #: first first: the flags' (or the variables'), then the files'
    extras: tuple[str, ...]
    #: the positions in ``extras`` of the indexes uv's files add (uv asks them whatever it is given)
    fixed: tuple[int, ...]
    #: where each extra came from (a flag, a variable, a file)
    origins: Mapping[str, str]
    #: PyPI was given over a default that a file sets: uv must be told PyPI
    pypi_over_config: bool
    #: what the files added, for the user (credentials hidden)
    notes: tuple[str, ...]
    #: uv's index strategy (one of ``STRATEGIES``)
    strategy: str = STRATEGIES[0]


def pypi_indexes(
    index_flag: str | None, extra_flags: tuple[str, ...], cwd: Path, environ: Mapping[str, str] | None = None
) -> Indexes:
    """The indexes of a ``bisect pypi`` started in ``cwd`` (its venvs are built there): the default
    (:func:`~sleuth.bisect.index.index_from_env`, else a file's, else PyPI) and the extras
    (:func:`~sleuth.bisect.index.extra_indexes_from_env`, then the files')."""
    from sleuth.bisect.index import extra_indexes_from_env, index_from_env, is_pypi

    index, whence = index_from_env(index_flag, environ)
    files = config_indexes(cwd, environ)
    notes: list[str] = []
    if whence == "default" and files.default is not None:
        index = files.default[0]
        notes.append(
            f"note: {files.default[1]} sets the default index {scrub_text(index)}: releases listed from it"
        )
    origins = {u: w for u, w in extra_indexes_from_env(extra_flags, environ) if u != index}
    for url, where in files.extras:
        if url != index and url not in origins:
            origins[url] = where
            notes.append(f"note: {where} adds the index {scrub_text(url)}; its releases are listed too")
    extras = tuple(origins)
    strategy, set_by = _strategy(files, os.environ if environ is None else environ)
    # an unsafe strategy looks past an index that has the package: none hides the ones after it
    unsafe = strategy != STRATEGIES[0]
    fixed = () if unsafe else tuple(i for i, u in enumerate(extras) if u in dict(files.extras))
    if unsafe:
        notes.append(f"note: {set_by} {strategy}: uv looks for a release on every index; all are listed")
    over = files.default is not None and is_pypi(index)
    return Indexes(index, extras, fixed, origins, over, tuple(notes), strategy)


def _strategy(files: ConfigIndexes, env: Mapping[str, str]) -> tuple[str, str]:
    """``(uv's index strategy, what set it)``: ``$UV_INDEX_STRATEGY``, else the files', else uv's default."""
    given = env.get("UV_INDEX_STRATEGY", "").strip()
    if given:
        return _checked_strategy(given, "$UV_INDEX_STRATEGY"), "$UV_INDEX_STRATEGY"
    return files.strategy or (STRATEGIES[0], "uv's default")


def _checked_strategy(value: Any, where: str, error: type[UsageError] = UsageError) -> str:
    if value not in STRATEGIES:
        shown = scrub_text(str(value))[:60]
        raise error(
            f"{where} {shown!r}: not an index strategy uv knows", hint=f"use one of {', '.join(STRATEGIES)}"
        )
    return str(value)


def config_indexes(cwd: Path, environ: Mapping[str, str] | None = None) -> ConfigIndexes:
    """The indexes uv's configuration files add when uv runs in ``cwd`` (see the module docstring)."""
    files = _files(cwd, os.environ if environ is None else environ)
    # uv merges each setting across the files (the project's first), then orders them by setting
    index = [i for f in files for i in f.index]
    extras = [(u, w) for u, w, default in index if not default]
    extras += [e for f in files for e in f.pip_extra] + [e for f in files for e in f.extra]
    defaults = [(u, w) for u, w, default in index if default]
    defaults += [f.pip_index for f in files if f.pip_index] + [f.index_url for f in files if f.index_url]
    unique: dict[str, tuple[str, str]] = {}
    for url, where in extras:
        unique.setdefault(url, (url, where))
    strategy = next((f.strategy for f in files if f.strategy), None)  # the nearest file's
    return ConfigIndexes(defaults[0] if defaults else None, tuple(unique.values()), strategy)


@dataclass(frozen=True, slots=True)
class _File:
    """One file's index settings: ``(URL, the file)`` pairs (``[[index]]``: and whether default)."""

    index: list[tuple[str, str, bool]] = field(default_factory=list)
    pip_extra: list[tuple[str, str]] = field(default_factory=list)
    extra: list[tuple[str, str]] = field(default_factory=list)
    pip_index: tuple[str, str] | None = None
    index_url: tuple[str, str] | None = None
    #: ``(index strategy, the file and key)``: ``[pip] index-strategy`` wins for ``uv pip``
    strategy: tuple[str, str] | None = None


def _files(cwd: Path, env: Mapping[str, str]) -> list[_File]:
    """The settings of the files uv reads when it runs in ``cwd``, the one that wins first."""
    if env.get("UV_NO_CONFIG", "").strip().lower() not in _FALSE:
        return []
    given = env.get("UV_CONFIG_FILE", "").strip()
    if given:
        if not Path(given).is_file():
            raise UsageError(
                f"$UV_CONFIG_FILE {given}: no such file", hint="uv would refuse it too; fix or unset it"
            )
        return [_settings(Path(given), _read(Path(given)))]
    found: list[_File] = []
    for folder in (cwd, *cwd.parents):
        if (folder / "uv.toml").is_file():
            found.append(_settings(folder / "uv.toml", _read(folder / "uv.toml")))
            break
        if (folder / "pyproject.toml").is_file():
            got = _pyproject(folder / "pyproject.toml")
            if got is not None:
                found.append(got)
                break
    home = env.get("XDG_CONFIG_HOME", "").strip() or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    dirs = [d for d in (env.get("XDG_CONFIG_DIRS", "").strip() or "/etc/xdg").split(":") if d]
    system = [Path(d, "uv", "uv.toml") for d in dirs] + [Path("/etc/uv/uv.toml")]
    for path in [Path(home, "uv", "uv.toml"), *[p for p in system if p.is_file()][:1]]:
        if path.is_file():
            found.append(_settings(path, _read(path)))
    return found


def _pyproject(path: Path) -> _File | None:
    """A ``pyproject.toml``'s ``[tool.uv]`` settings; None without one, or when uv would pass the file
    over (not TOML, index keys of the wrong type)."""
    try:
        data = _read(path)
        tool = _scope(data, "tool")
        return _settings(path, tool["uv"]) if isinstance(tool.get("uv"), dict) else None
    except _Malformed as exc:
        log.warning("%s: passed over, as uv passes over it: %s", path, exc)
        return None


def _settings(path: Path, table: dict[str, Any]) -> _File:
    """The index settings of one file's table (``[tool.uv]`` of a pyproject.toml)."""
    out = _File()
    for i, entry in enumerate(_list(path, table, "index")):
        if not isinstance(entry, dict):
            raise _Malformed(f"{path}: [[index]] #{i + 1}: not a table", hint="uv would refuse it too")
        if entry.get("explicit") is not True:
            url = _url(path, f"[[index]] #{i + 1} url", entry.get("url"), entry.get("format"))
            out.index.append((*url, entry.get("default") is True))
    for where, into in (("pip", out.pip_extra), (None, out.extra)):
        key = f"{where}.extra-index-url" if where else "extra-index-url"
        into.extend(_url(path, key, v) for v in _list(path, _scope(table, where), "extra-index-url"))
    pip_index, index_url = _scope(table, "pip").get("index-url"), table.get("index-url")
    strategy = None
    for key, value in (("pip.index-strategy", _scope(table, "pip").get("index-strategy")),
                       ("index-strategy", table.get("index-strategy"))):  # fmt: skip
        if value is not None and strategy is None:
            strategy = (_checked_strategy(value, f"{path}: {key}", _Malformed), f"{path}: {key}")
    return _File(out.index, out.pip_extra, out.extra,
                 None if pip_index is None else _url(path, "pip.index-url", pip_index),
                 None if index_url is None else _url(path, "index-url", index_url), strategy)  # fmt: skip


def _url(path: Path, key: str, value: Any, fmt: Any = None) -> tuple[str, str]:
    """``(URL, the file)``, or a UsageError naming the file and the key: sleuth lists simple indexes."""
    from sleuth.bisect.index import check_url

    if not isinstance(value, str) or fmt not in (None, "simple"):
        shown = scrub_text(str(value))[:120]
        why = f"format {fmt!r}" if fmt not in (None, "simple") else "not a URL"
        raise UsageError(
            f"{path}: {key} {shown!r}: {why}: sleuth bisect pypi cannot list it",
            hint="give the index as the http(s):// or file:// URL of a simple index",
        )
    return check_url(value, f"{path}: {key}"), str(path)


class _Malformed(UsageError):
    """A configuration file uv would not read: uv refuses a uv.toml, passes over a pyproject.toml."""


def _scope(table: dict[str, Any], where: str | None) -> dict[str, Any]:
    """``table`` itself, or its ``[where]`` sub-table (``{}`` when it has none)."""
    got = table.get(where, {}) if where else table
    return got if isinstance(got, dict) else {}


def _list(path: Path, table: dict[str, Any], key: str) -> list[Any]:
    value = table.get(key, [])
    if not isinstance(value, list):
        raise _Malformed(f"{path}: {key}: not a list", hint="uv would refuse it too")
    return value


def _read(path: Path) -> dict[str, Any]:
    raw = read_capped(
        path, MAX_BYTES, what=str(path), error=UsageError, hint="uv reads it as its configuration"
    )
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _Malformed(f"{path}: not valid TOML ({exc})", hint="uv would refuse it too; fix it") from None
