"""The signature catalog: versioned YAML data files, validated, with their fixtures checked at load.

Three sources feed one :class:`Catalog`, in this order: the built-in files
(``sleuth/attribution/catalog/*.yaml``), the entry-point group ``sleuth.signatures`` (each entry
point loads a path to a catalog file, a mapping in the file format, or a callable returning one of
those) and user files (``--catalog F.yaml``).  An id defined twice is a ``ConfigError`` naming both
sources: there is no winner.

Invariants checked when a file is loaded (so a bad user catalog fails before anything runs):
every regex compiles, every ``match`` fixture matches and no ``no_match`` fixture does, and every
signature has prefilter keywords (given, or derived from a literal run of 3+ characters that
every match must contain) that each ``match`` fixture contains.  The keywords feed the one-pass
prefilter of :mod:`sleuth.attribution.match`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sleuth.attribution.logs import check_regular
from sleuth.attribution.model import CatalogAction, Role, SignatureClass, Vendor
from sleuth.datafile import format_validation_error, load_data_file
from sleuth.errors import ConfigError

__all__ = [
    "ENTRY_POINT_SIGNATURES",
    "Catalog",
    "CatalogFile",
    "Signature",
    "SignatureEntry",
    "catalog_schema",
    "load_catalog",
]

ENTRY_POINT_SIGNATURES = "sleuth.signatures"
_ID_RE = r"^[a-z0-9_]+(?:\.[a-z0-9_]+)+$"
#: the shortest literal the prefilter accepts (shorter ones match nearly every line)
MIN_KEYWORD = 3


class SignatureEntry(BaseModel):
    """One signature as written in a catalog file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=_ID_RE, description="stable id, dotted lower case (nvidia.xid.79)")
    regex: str = Field(min_length=1, description="Python regex, searched in each line (rank prefix removed)")
    ignore_case: bool = False
    keywords: list[str] = Field(
        default_factory=list,
        description="literals one of which every matching line contains (derived from the regex when empty)",
    )
    class_: SignatureClass = Field(alias="class")
    role: Role
    action: CatalogAction
    vendor: Vendor = Vendor.ANY
    description: str = Field(min_length=1)
    docs: list[str] = Field(min_length=1, description="where the message format and its meaning come from")
    inferred: str | None = Field(default=None, description="what part of the format is inferred, not quoted")
    peer_symptom: bool = Field(
        default=False,
        description="a network error that a peer's death causes (NET/IB completion error 12): without "
        "timestamps, a root in another log that is not one outranks it",
    )
    match: list[str] = Field(min_length=1, description="lines that must match")
    no_match: list[str] = Field(min_length=1, description="lines that must not match")


class CatalogFile(BaseModel):
    """A catalog file: ``version: 1``, a name, a revision and its signatures."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    name: str = Field(min_length=1)
    revision: int = Field(ge=1, description="bump when a signature changes")
    signatures: list[SignatureEntry] = Field(min_length=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Signature:
    """A loaded signature: compiled, with its prefilter keywords and where it came from."""

    id: str
    pattern: re.Pattern[str]
    keywords: tuple[str, ...]
    ignore_case: bool
    cls: SignatureClass
    role: Role
    action: CatalogAction
    vendor: Vendor
    description: str
    docs: tuple[str, ...]
    inferred: str | None
    source: str
    #: a symptom of a peer's death as much as a fault of its own (see :class:`SignatureEntry`)
    peer_symptom: bool
    match: tuple[str, ...]
    no_match: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The listing form (``sleuth attribute --list-signatures --json``)."""
        return {
            "id": self.id,
            "regex": self.pattern.pattern,
            "class": self.cls.value,
            "role": self.role.value,
            "action": self.action.value,
            "vendor": self.vendor.value,
            "description": self.description,
            "docs": list(self.docs),
            "inferred": self.inferred,
            "peer_symptom": self.peer_symptom,
            "source": self.source,
        }


# --- keyword derivation ------------------------------------------------------------------------


def _options(items: Any) -> list[tuple[str, ...]]:
    """Keyword sets a sequence requires: each set holds literals one of which every match contains."""
    from re import _constants as c  # type: ignore[attr-defined]

    found: list[tuple[str, ...]] = []
    run: list[str] = []
    for op, arg in list(items):
        if op is c.LITERAL:
            run.append(chr(arg))
            continue
        if run:
            found.append(("".join(run),))
            run = []
        if op is c.SUBPATTERN and len(arg) == 4:  # a required group: its content is required too
            found.extend(_options(arg[3]))
        elif op is c.BRANCH:
            alternatives = [_best(_options(alt)) for alt in arg[1]]
            if all(alternatives):
                found.append(tuple(k for alt in alternatives for k in alt))
    if run:
        found.append(("".join(run),))
    return [o for o in found if all(len(k.strip()) >= MIN_KEYWORD for k in o)]


def _best(options: list[tuple[str, ...]]) -> tuple[str, ...]:
    """The most selective set: the one whose shortest keyword is longest (then the smallest set)."""
    if not options:
        return ()
    return max(options, key=lambda o: (min(len(k) for k in o), -len(o)))


def derive_keywords(regex: str) -> tuple[str, ...]:
    """Literals one of which every match of ``regex`` contains (3+ characters each); () if none."""
    from re import _parser  # type: ignore[attr-defined]

    return tuple(dict.fromkeys(_best(_options(_parser.parse(regex)))))


# --- loading -----------------------------------------------------------------------------------


#: an inline flag group that turns case-insensitivity on: ``(?i)``, ``(?i:...)``, ``(?mi)``
_INLINE_IGNORECASE = re.compile(r"\(\?[aLmsux]*i")


def _compile(entry: SignatureEntry, where: str) -> Signature:
    # a regex that says (?i) itself is matched case-insensitively: its keywords must be too (the
    # prefilter once looked for "fatal" only, and the full regex never saw a "FATAL" line)
    ignore_case = entry.ignore_case or _INLINE_IGNORECASE.search(entry.regex) is not None
    try:
        pattern = re.compile(entry.regex, re.IGNORECASE if entry.ignore_case else 0)
    except re.error as exc:
        raise ConfigError(f"{where}.regex: does not compile: {exc}") from None
    keywords = tuple(entry.keywords) or derive_keywords(entry.regex)
    if not keywords:
        raise ConfigError(
            f"{where}.regex: no literal of {MIN_KEYWORD}+ characters that every match must contain",
            hint="add `keywords:` (literals one of which each matching line contains)",
        )
    short = [k for k in keywords if len(k.strip()) < MIN_KEYWORD]
    if short:
        raise ConfigError(f"{where}.keywords: {short[0]!r} is shorter than {MIN_KEYWORD} characters")
    fold = str.lower if ignore_case else (lambda s: s)
    for i, line in enumerate(entry.match):
        if not pattern.search(line):
            raise ConfigError(f"{where}.match[{i}]: the regex does not match {line!r}")
        if not any(fold(k) in fold(line) for k in keywords):
            raise ConfigError(f"{where}.match[{i}]: contains none of the keywords {list(keywords)}")
    for i, line in enumerate(entry.no_match):
        if pattern.search(line):
            raise ConfigError(f"{where}.no_match[{i}]: the regex matches {line!r}")
    return Signature(
        id=entry.id,
        pattern=pattern,
        keywords=keywords,
        ignore_case=ignore_case,
        cls=entry.class_,
        role=entry.role,
        action=entry.action,
        vendor=entry.vendor,
        description=" ".join(entry.description.split()),
        docs=tuple(entry.docs),
        inferred=entry.inferred,
        source=where.split(": signatures[", maxsplit=1)[0],
        peer_symptom=entry.peer_symptom,
        match=tuple(entry.match),
        no_match=tuple(entry.no_match),
    )


def parse_catalog(data: Any, source: str) -> list[Signature]:
    """Validate one catalog document (already parsed) and compile its signatures."""
    try:
        doc = CatalogFile.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    return [_compile(e, f"{source}: signatures[{i}] ({e.id})") for i, e in enumerate(doc.signatures)]


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every signature of this run, in load order (built-ins first); ids are unique."""

    signatures: tuple[Signature, ...]

    def __len__(self) -> int:
        return len(self.signatures)

    def get(self, sig_id: str) -> Signature | None:
        """The signature with this id, or None."""
        return next((s for s in self.signatures if s.id == sig_id), None)


def _builtin_files() -> list[tuple[str, str]]:
    root = resources.files("sleuth.attribution").joinpath("catalog")
    return sorted(
        (f"built-in {p.name}", p.read_text(encoding="utf-8"))
        for p in root.iterdir()
        if p.name.endswith(".yaml")
    )


def _entry_point_docs() -> Iterable[tuple[str, Any]]:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_SIGNATURES):
        source = f"entry point {ep.name} = {ep.value}"
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, Mapping):
                obj = obj()
        except Exception as exc:  # a broken plugin must be named, not crash with a traceback
            raise ConfigError(f"{source}: cannot load: {type(exc).__name__}: {exc}") from exc
        if isinstance(obj, str | Path):
            yield f"{source} ({obj})", load_data_file(Path(obj))
        elif isinstance(obj, Mapping):
            yield source, obj
        else:
            raise ConfigError(f"{source}: expected a catalog mapping or a path, got {type(obj).__name__}")


def load_catalog(files: Iterable[Path] = (), *, builtins: bool = True, entry_points: bool = True) -> Catalog:
    """Built-ins, then entry points, then ``files``; ConfigError on any bad file or duplicate id."""
    import yaml

    sigs: dict[str, Signature] = {}

    def add(batch: list[Signature]) -> None:
        for s in batch:
            old = sigs.get(s.id)
            if old is not None:
                raise ConfigError(
                    f"signature {s.id!r} is defined twice: by {old.source} and by {s.source}",
                    hint="rename one of them",
                )
            sigs[s.id] = s

    if builtins:
        for name, text in _builtin_files():
            add(parse_catalog(yaml.safe_load(text), name))
    if entry_points:
        for source, data in _entry_point_docs():
            add(parse_catalog(data, source))
    for path in files:
        if path.is_dir():
            raise ConfigError(f"{path}: is a directory, not a catalog file")
        check_regular(path, str(path))
        add(parse_catalog(load_data_file(path), str(path)))
    return Catalog(tuple(sigs.values()))


def catalog_schema() -> dict[str, Any]:
    """The JSON Schema of a catalog file (``sleuth schema catalog``)."""
    schema = CatalogFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "sleuth signature catalog (version 1)"
    return schema
