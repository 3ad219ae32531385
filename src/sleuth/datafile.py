"""Config data files, read strictly: YAML or JSON, bounded, and their schema errors in one line.

Every file sleuth reads as configuration (recipes, mitigations sidecars, reduce specs, attribution
settings and catalogs, gate policies, matrix locks) goes through :func:`load_data_file`: at most
:data:`MAX_FILE_BYTES`, UTF-8, a key given twice is an error (YAML and JSON would keep the last),
at most :data:`MAX_NODES` values once YAML aliases are expanded (a "billion laughs" file is refused)
and :data:`MAX_DEPTH` levels.  Each problem is a :class:`~sleuth.errors.ConfigError` naming the file.
:func:`format_validation_error` turns pydantic's error into ``FILE: key.path: message``.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.errors import ConfigError, SleuthError

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "file_kind",
    "format_validation_error",
    "load_data_file",
]


# --- schema errors ---------------------------------------------------------------------------

_TAGS = {"registered-name", "inline-spec", "function-after[_one_kind(), InlineEnvironment]"}


#: what pydantic puts in an error's location for a union member or a dict key: not a key path
_TAG_RE = re.compile(r"(?:list|dict|set|tuple)\[.*\]|constrained-\w+|function-\w+\[.*\]|\[key\]")


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in _TAGS and not _TAG_RE.fullmatch(part):
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line: ``SOURCE: key.path: message`` for the first error (and how many more)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required key is missing"
    elif first["type"] == "literal_error" and first["loc"][-1:] in (("version",), ("schema_version",)):
        msg = f"unsupported version {first['input']!r} ({msg.lower()})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: {_path(first['loc'])}: {msg}{more}"


class _DuplicateKey(ValueError):
    """A mapping names one key twice (YAML and JSON would silently keep the last)."""


def _no_duplicate_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"duplicate key {key!r}")
        out[key] = value
    return out


def _strict_yaml_loader() -> Any:
    """A ``yaml.SafeLoader`` that refuses a key given twice in one mapping (a key that overrides one
    merged in with ``<<: *anchor`` is no duplicate)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    # ``<<: *defaults``: the keys given here override the merged ones (YAML's merge
                    # key, flattened by SafeLoader below); constructing it as a key failed outright
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    dup = key in seen
                except TypeError:  # an unhashable key: let PyYAML report it
                    continue
                if dup:
                    line = key_node.start_mark.line + 1
                    raise _DuplicateKey(f"duplicate key {key!r} (line {line})")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


#: a recipe or mitigations file larger than this is refused (a real one is a few KiB)
MAX_FILE_BYTES = 4 * 1024 * 1024
#: values a file may hold once YAML aliases are expanded (a "billion laughs" file holds 10**9)
MAX_NODES = 200_000
#: how deeply mappings and lists may nest
MAX_DEPTH = 64


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, from its ``st_mode``: ``"a directory"``, ``"a FIFO"``..."""
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def read_capped(path: Path, limit: int, *, what: str, error: type[SleuthError], hint: str) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them: a FIFO (read for ever), a
    device, a directory, an unreadable or a larger file is ``error`` naming ``what`` (the file, or
    the flag and the file) with one line."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = stat.S_IFREG  # open() below says what is wrong
    if not stat.S_ISREG(mode):
        raise error(f"{what}: not a regular file ({file_kind(mode)})", hint=hint)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise error(f"{what}: cannot read: {exc.strerror}") from None
    if len(raw) > limit:
        raise error(f"{what}: larger than {limit // (1024 * 1024)} MiB", hint=hint)
    return raw


def _syntax_detail(exc: BaseException) -> str:
    """What is wrong with a file that does not parse, and where, in one line, quoting none of it.

    PyYAML's message quotes the offending line, cut to its own width: a token on that line would
    reach the error with its start kept (``ghp_A1b2C3d4E5 ...``) where no rule can recognise it.  So
    a YAML error is told by its problem, context and positions alone."""
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        parts = []
        if exc.problem_mark is not None:
            parts.append(f"line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}:")
        parts.append(exc.problem or "syntax error")
        if exc.context:
            at = exc.context_mark
            started = f" at line {at.line + 1}, column {at.column + 1}" if at is not None else ""
            parts.append(f"({exc.context}{started})")
        return " ".join(parts)
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _hidden(text: str) -> str:
    """``text`` with every secret hidden (the one rule, and this shell's secret values): before it is
    cut, so that no secret keeps its start."""
    from sleuth.secrets import Secrets, env_secret_values

    return str(Secrets({}, frozenset(env_secret_values(os.environ))).scrub(text))


def _read_text(path: Path) -> str:
    raw = read_capped(
        path, MAX_FILE_BYTES, what=str(path), error=ConfigError,
        hint="give a YAML or JSON file",
    )  # fmt: skip
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1].hex()
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{bad} at offset {exc.start})",
            hint="save the file as UTF-8",
        ) from None


def _check_size(data: Any, path: Path) -> None:
    """Refuse data that nests too deeply or expands (through YAML aliases) to too many values."""
    budget = MAX_NODES
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        obj, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError(f"{path}: holds more than {MAX_NODES} values (YAML aliases included)")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{path}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(obj, dict):
            stack.extend((v, depth + 1) for v in obj.values())
            stack.extend((k, depth + 1) for k in obj if not isinstance(k, str))
        elif isinstance(obj, list | tuple):
            stack.extend((v, depth + 1) for v in obj)


def load_data_file(path: Path) -> Any:
    """Parse a YAML or JSON file; ConfigError naming the file on any read, encoding or syntax problem.

    The file is bounded: at most :data:`MAX_FILE_BYTES`, UTF-8, at most :data:`MAX_NODES` values
    once aliases are expanded, at most :data:`MAX_DEPTH` levels deep.
    """
    import yaml

    text = _read_text(path)
    is_json = path.suffix.lower() == ".json"
    try:
        if is_json:
            data = json.loads(text, object_pairs_hook=_no_duplicate_pairs)
        else:
            data = yaml.load(text, Loader=_strict_yaml_loader())
    except _DuplicateKey as exc:
        raise ConfigError(f"{path}: {exc}", hint="each key may appear once; merge the two") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested more than {MAX_DEPTH} levels deep") from None
    except (ValueError, OverflowError, TypeError, yaml.YAMLError) as exc:
        # ValueError: JSON syntax, an impossible YAML date (2024-13-45), an integer of 5000 digits
        detail = _hidden(_syntax_detail(exc))[:200]
        raise ConfigError(f"{path}: not valid {'JSON' if is_json else 'YAML'}: {detail}") from None
    _check_size(data, path)
    return data
