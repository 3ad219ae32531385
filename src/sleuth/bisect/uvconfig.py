"""The indexes uv's own configuration files add, found as uv finds them (``bisect pypi`` lists them).

uv reads, and merges (project first): the nearest ``uv.toml`` (or ``pyproject.toml`` with a
``[tool.uv]`` table, a ``uv.toml`` beside it winning) in the directory it runs in or a parent, the
user's ``$XDG_CONFIG_HOME/uv/uv.toml`` (``~/.config/uv/uv.toml``) and the system's
``$XDG_CONFIG_DIRS/uv/uv.toml`` (``/etc/xdg``) or ``/etc/uv/uv.toml``; ``$UV_CONFIG_FILE`` replaces
them all and ``$UV_NO_CONFIG`` drops them.  Its extra indexes, in the order uv asks them (after the
ones in ``$UV_INDEX``/``$UV_EXTRA_INDEX_URL``): the ``[[index]]`` tables (not ``explicit`` ones,
which serve only the packages pinned to them), ``[pip] extra-index-url``, ``extra-index-url``.  Its
default index: an ``[[index]]`` with ``default = true``, else ``[pip] index-url``, else
``index-url`` (``$UV_DEFAULT_INDEX``/``$UV_INDEX_URL`` win over it).

Unlike an index given by flag or variable, uv cannot be told to leave one of these out of an install,
so an index from a file that has the package is asked for every release (:func:`read_projects`'s
``fixed``).  ``pip.conf`` is not read: uv does not read it either.  A file uv would refuse, or an
index sleuth cannot list (a path, ``format = "flat"``), is a UsageError naming the file and the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.datafile import read_capped
from sleuth.errors import UsageError
from sleuth.secrets import scrub_text

__all__ = ["ConfigIndexes", "config_files", "config_indexes"]

#: the largest uv configuration file read
MAX_BYTES = 1024 * 1024
_FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class ConfigIndexes:
    """What uv's configuration files say about indexes: ``(URL, the file that says so)`` pairs."""

    default: tuple[str, str] | None = None
    #: in the order uv asks them
    extras: tuple[tuple[str, str], ...] = ()


def config_files(cwd: Path, environ: Mapping[str, str] | None = None) -> list[tuple[Path, bool]]:
    """``[(file, is a pyproject.toml)]`` uv reads when it runs in ``cwd``, the one that wins first."""
    env = os.environ if environ is None else environ
    if env.get("UV_NO_CONFIG", "").strip().lower() not in _FALSE:
        return []
    given = env.get("UV_CONFIG_FILE", "").strip()
    if given:
        path = Path(given)
        if not path.is_file():
            raise UsageError(
                f"$UV_CONFIG_FILE {given}: no such file", hint="uv would refuse it too; fix or unset it"
            )
        return [(path, False)]
    found: list[tuple[Path, bool]] = []
    for folder in (cwd, *cwd.parents):
        if (folder / "uv.toml").is_file():
            found.append((folder / "uv.toml", False))
            break
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "uv" in _scope(_read(pyproject), "tool"):
            found.append((pyproject, True))
            break
    home = env.get("XDG_CONFIG_HOME", "").strip() or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    if Path(home, "uv", "uv.toml").is_file():
        found.append((Path(home, "uv", "uv.toml"), False))
    dirs = [d for d in (env.get("XDG_CONFIG_DIRS", "").strip() or "/etc/xdg").split(":") if d]
    system = [Path(d, "uv", "uv.toml") for d in dirs] + [Path("/etc/uv/uv.toml")]
    found.extend([(p, False) for p in system if p.is_file()][:1])
    return found


def config_indexes(cwd: Path, environ: Mapping[str, str] | None = None) -> ConfigIndexes:
    """The indexes the files of :func:`config_files` add (see the module docstring)."""
    from sleuth.bisect.index import check_url

    tables: list[tuple[Path, dict[str, Any]]] = []
    for path, is_pyproject in config_files(cwd, environ):
        data = _read(path)
        tables.append((path, data.get("tool", {}).get("uv", {}) if is_pyproject else data))
    defaults: list[tuple[str, str]] = []
    extras: list[tuple[str, str]] = []

    def url(path: Path, key: str, value: Any, fmt: Any = None) -> tuple[str, str]:
        if not isinstance(value, str) or fmt not in (None, "simple"):
            shown = scrub_text(str(value))[:120]
            why = f"format {fmt!r}" if fmt not in (None, "simple") else "not a URL"
            raise UsageError(
                f"{path}: {key} {shown!r}: {why}: sleuth bisect pypi cannot list it",
                hint="give the index as the http(s):// or file:// URL of a simple index",
            )
        return check_url(value, f"{path}: {key}"), str(path)

    for path, t in tables:  # uv merges each setting across the files, the project's first
        for i, entry in enumerate(_list(path, t, "index")):
            if not isinstance(entry, dict) or entry.get("explicit") is True:
                continue
            got = url(path, f"[[index]] #{i + 1} url", entry.get("url"), entry.get("format"))
            (defaults if entry.get("default") is True else extras).append(got)
    for where in ("pip", None):
        for path, t in tables:
            key = f"{where}.extra-index-url" if where else "extra-index-url"
            extras.extend(url(path, key, v) for v in _list(path, _scope(t, where), "extra-index-url"))
    for where in ("pip", None):
        for path, t in tables:
            value = _scope(t, where).get("index-url")
            if value is not None:
                defaults.append(url(path, f"{where}.index-url" if where else "index-url", value))
    unique: dict[str, tuple[str, str]] = {}
    for u, w in extras:
        unique.setdefault(u, (u, w))
    return ConfigIndexes(defaults[0] if defaults else None, tuple(unique.values()))


def _scope(table: dict[str, Any], where: str | None) -> dict[str, Any]:
    """``table`` itself, or its ``[where]`` sub-table (``{}`` when it has none)."""
    got = table.get(where, {}) if where else table
    return got if isinstance(got, dict) else {}


def _list(path: Path, table: dict[str, Any], key: str) -> list[Any]:
    value = table.get(key, [])
    if not isinstance(value, list):
        raise UsageError(f"{path}: {key}: not a list", hint="uv would refuse it too")
    return value


def _read(path: Path) -> dict[str, Any]:
    raw = read_capped(
        path, MAX_BYTES, what=str(path), error=UsageError, hint="uv reads it as its configuration"
    )
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})", hint="uv would refuse it too; fix it") from None
