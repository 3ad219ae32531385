"""Mitigations and environments by name: built-ins, entry points and sidecar files, one path for all.

A *mitigation* is a named bundle of environment variables (``env``: set; ``append``: pieces
added to space-separated flag lists such as ``XLA_FLAGS``).  An *environment* is either a named
place (``host``, or an alias such as ``rocm64: {docker: rocm/pytorch:6.4}``) or a kind that takes
a value (``venv`` pins, a ``docker``/``podman``/``pyxis`` image).

Three sources feed one :class:`Registry` through :meth:`Registry.add_mitigation` and
:meth:`Registry.add_environment`: the built-ins (``sleuth/data/mitigations.yaml`` and the kinds
below), the entry-point groups ``sleuth.mitigations`` / ``sleuth.environments`` (each entry
point loads a mapping ``name -> definition``, or a callable returning one), and sidecar files
(``--mitigations-file F.yaml``).  A name defined twice is a :class:`ConfigError` naming both
sources: there is no winner.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from sleuth.datafile import format_validation_error, load_data_file
from sleuth.errors import ConfigError
from sleuth.model import NAME_HINT, NAME_MAX, check_name

__all__ = [
    "ENTRY_POINT_ENVIRONMENTS",
    "ENTRY_POINT_MITIGATIONS",
    "EnvVars",
    "EnvironmentDef",
    "EnvironmentField",
    "InlineEnvironment",
    "Mitigation",
    "MitigationEntry",
    "Registry",
    "SidecarFile",
    "load_registry",
    "sidecar_schema",
]

ENTRY_POINT_MITIGATIONS = "sleuth.mitigations"
ENTRY_POINT_ENVIRONMENTS = "sleuth.environments"
BUILTIN = "built-in"
#: environment kinds that take a value, and what the value is
KINDS: dict[str, str] = {
    "venv": "a list of requirement pins, built with uv and cached by their hash",
    "docker": "an image reference, run with docker run",
    "podman": "an image reference, run with podman run",
    "pyxis": "an image reference, run with srun --container-image (Slurm + pyxis)",
}


# --- file and entry-point formats (pydantic, strict) -----------------------------------------

_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _var_name(name: str) -> str:
    if not _VAR_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid variable name (letters, digits, '_'; not a digit first)")
    return name


def _var_value(value: str) -> str:
    if "\x00" in value:
        raise ValueError("a variable's value cannot contain a NUL byte")
    return value


#: a mapping of environment variables, names and values checked (a bad name would only fail
#: when the first trial starts, with a traceback)
EnvVars = dict[Annotated[str, AfterValidator(_var_name)], Annotated[str, AfterValidator(_var_value)]]


class MitigationEntry(BaseModel):
    """One mitigation as written in a data file, a sidecar file, an entry point or a recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: EnvVars = {}
    append: EnvVars = {}
    description: str = ""
    docs: str = ""


class InlineEnvironment(BaseModel):
    """An environment spelled out: exactly one of ``venv``, ``docker``, ``podman``, ``pyxis``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    venv: list[str] | None = None
    docker: str | None = None
    podman: str | None = None
    pyxis: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> InlineEnvironment:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(KINDS)} (got {', '.join(given) or 'none'})")
        value = getattr(self, given[0])
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"{given[0]}: the image reference is empty")
        if isinstance(value, list) and any(not p.strip() for p in value):
            raise ValueError("venv: an empty requirement pin")
        return self

    @property
    def kind(self) -> str:
        """Which kind this is."""
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def value(self) -> str | list[str]:
        """The image reference or the pins."""
        v: str | list[str] = getattr(self, self.kind)
        return v

    def plain(self) -> dict[str, Any]:
        """The one-key mapping form (``{"docker": "img"}``)."""
        return {self.kind: self.value}


def _env_tag(value: Any) -> str:
    return "registered-name" if isinstance(value, str) else "inline-spec"


#: a recipe's ``environment``: a registered name or an inline spec
EnvironmentField = Annotated[
    Annotated[str, Tag("registered-name")] | Annotated[InlineEnvironment, Tag("inline-spec")],
    Discriminator(_env_tag),
]


class SidecarFile(BaseModel):
    """``--mitigations-file``: ``version: 1`` plus ``mitigations`` and/or ``environments``."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    mitigations: dict[str, MitigationEntry] = {}
    environments: dict[str, InlineEnvironment] = {}

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_an_int(cls, v: Any) -> Any:
        if isinstance(v, bool | float):  # True == 1 == 1.0 in Python; a version is an integer
            raise ValueError(f"unsupported version {v!r}: write version: 1")
        return v


# --- registered things --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Mitigation:
    """A named bundle of environment variables, with where it came from."""

    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    append: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    docs: str = ""
    source: str = BUILTIN

    def to_dict(self) -> dict[str, Any]:
        """JSON form (listing and ``matrix.json``)."""
        return {
            "name": self.name,
            "env": dict(self.env),
            "append": dict(self.append),
            "description": self.description,
            "docs": self.docs,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvironmentDef:
    """A registered environment name: a built-in place or kind, an alias, or a plugin factory."""

    name: str
    #: ``host``, one of :data:`KINDS` (takes a value), ``alias`` (``spec``) or ``plugin`` (``factory``)
    kind: str
    description: str = ""
    source: str = BUILTIN
    spec: InlineEnvironment | None = None
    factory: Callable[[], Any] | None = None

    @property
    def takes_value(self) -> bool:
        """True for kinds such as ``docker`` that need an image or pins."""
        return self.kind in KINDS and self.spec is None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``sleuth environments``."""
        return {
            "name": self.name,
            "kind": self.kind,
            "takes_value": self.takes_value,
            "spec": self.spec.plain() if self.spec else None,
            "description": self.description,
            "source": self.source,
        }


def _bad_name(name: str, kind: str) -> str:
    """Why ``name`` cannot name a ``kind`` (the key path is the name itself: shown, shortened)."""
    shown = repr(name) if len(name) <= 60 else repr(name[:40] + "...")
    if len(name) > NAME_MAX:
        return f"{shown} is not a valid {kind} name: {len(name)} characters long (at most {NAME_MAX})"
    return f"{shown} is not a valid {kind} name"


def _add(table: dict[str, Any], kind: str, item: Mitigation | EnvironmentDef) -> None:
    if not check_name(item.name):
        raise ConfigError(f"{item.source}: {kind}s: {_bad_name(item.name, kind)}", hint=NAME_HINT)
    old = table.get(item.name)
    if old is not None:
        raise ConfigError(
            f"{kind} {item.name!r} is defined twice: by {old.source} and by {item.source}",
            hint="rename one of them",
        )
    table[item.name] = item


class Registry:
    """Every mitigation and environment name known to this run."""

    def __init__(self) -> None:
        self.mitigations: dict[str, Mitigation] = {}
        self.environments: dict[str, EnvironmentDef] = {}

    def add_mitigation(self, m: Mitigation) -> None:
        """Register ``m``; ConfigError naming both sources when the name is taken."""
        _add(self.mitigations, "mitigation", m)

    def add_environment(self, e: EnvironmentDef) -> None:
        """Register ``e``; ConfigError naming both sources when the name is taken."""
        _add(self.environments, "environment", e)

    def pin_mitigation(self, m: Mitigation) -> str | None:
        """Use ``m`` (a definition a resolved recipe pinned) whatever is installed under its name.

        Returns a warning when nothing of that name is installed here, or when the installed
        definition differs (the pinned one is used: a rerun runs the variables it ran with).
        """
        if not check_name(m.name):
            raise ConfigError(f"{m.source}: mitigations: {_bad_name(m.name, 'mitigation')}", hint=NAME_HINT)
        old = self.mitigations.get(m.name)
        if old is not None and (dict(old.env), dict(old.append)) == (dict(m.env), dict(m.append)):
            return None
        self.mitigations[m.name] = m
        if old is None:
            return f"mitigation {m.name!r} is not installed here ({m.source}): the pinned definition is used"
        return (
            f"mitigation {m.name!r}: the installed definition ({old.source}) differs from the pinned one "
            f"({m.source}): the pinned one is used"
        )

    def pin_environment(self, name: str, spec: InlineEnvironment, source: str) -> str | None:
        """Use the alias ``name -> spec`` pinned by a resolved recipe (see :meth:`pin_mitigation`)."""
        if not check_name(name):
            raise ConfigError(f"{source}: environments: {_bad_name(name, 'environment')}", hint=NAME_HINT)
        old = self.environments.get(name)
        plain = InlineEnvironment.model_validate(spec.plain())
        if old is not None and old.spec is not None and old.spec.plain() == plain.plain():
            return None
        self.environments[name] = EnvironmentDef(
            name=name, kind="alias", description=f"{plain.kind}: {plain.value}", source=source, spec=plain
        )
        if old is None:
            return f"environment {name!r} is not installed here ({source}): the pinned definition is used"
        return (
            f"environment {name!r}: the installed definition ({old.source}) differs from the pinned one "
            f"({source}): the pinned one is used"
        )

    def add_mitigations(self, entries: Mapping[str, Any], source: str) -> None:
        """Validate and register ``name -> {env, append, description, docs}`` from ``source``."""
        for name, raw in entries.items():
            try:
                entry = raw if isinstance(raw, MitigationEntry) else MitigationEntry.model_validate(raw)
            except ValidationError as exc:
                raise ConfigError(format_validation_error(exc, f"{source}: mitigations.{name}")) from None
            self.add_mitigation(
                Mitigation(
                    name=str(name),
                    env=dict(entry.env),
                    append=dict(entry.append),
                    description=entry.description,
                    docs=entry.docs,
                    source=source,
                )
            )

    def add_environments(self, entries: Mapping[str, Any], source: str) -> None:
        """Register ``name -> inline spec`` (an alias) or ``name -> callable`` (a plugin factory)."""
        for name, raw in entries.items():
            if callable(raw):
                doc = (getattr(raw, "__doc__", None) or "").strip().splitlines()
                self.add_environment(
                    EnvironmentDef(
                        name=str(name),
                        kind="plugin",
                        description=doc[0] if doc else "",
                        source=source,
                        factory=raw,
                    )
                )
                continue
            try:
                spec = raw if isinstance(raw, InlineEnvironment) else InlineEnvironment.model_validate(raw)
            except ValidationError as exc:
                raise ConfigError(format_validation_error(exc, f"{source}: environments.{name}")) from None
            self.add_environment(
                EnvironmentDef(
                    name=str(name),
                    kind="alias",
                    description=f"{spec.kind}: {spec.value}",
                    source=source,
                    spec=spec,
                )
            )

    def add_sidecar(self, path: Path) -> SidecarFile:
        """Load a ``--mitigations-file`` and register what it defines."""
        data = load_data_file(path)
        try:
            sidecar = SidecarFile.model_validate(data if data is not None else {})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, str(path))) from None
        self.add_mitigations(sidecar.mitigations, f"file {path}")
        self.add_environments(sidecar.environments, f"file {path}")
        return sidecar


def _add_builtins(reg: Registry) -> None:
    import yaml

    text = resources.files("sleuth").joinpath("data/mitigations.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    reg.add_mitigations(data["mitigations"], BUILTIN)
    reg.add_environment(EnvironmentDef(name="host", kind="host", description="this machine, as it is"))
    for kind, what in KINDS.items():
        reg.add_environment(EnvironmentDef(name=kind, kind=kind, description=what))


def _entry_point_objects(group: str) -> Iterable[tuple[str, Any]]:
    from importlib.metadata import entry_points

    for ep in entry_points(group=group):
        dist = getattr(ep.dist, "name", None)
        source = f"entry point {ep.name} = {ep.value}" + (f" ({dist})" if dist else "")
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, Mapping):
                obj = obj()
        except Exception as exc:  # a broken plugin must be named, not crash with a traceback
            raise ConfigError(f"{source}: cannot load: {type(exc).__name__}: {exc}") from exc
        if not isinstance(obj, Mapping):
            raise ConfigError(f"{source}: expected a mapping of name -> definition, got {type(obj).__name__}")
        yield source, obj


def load_registry(mitigation_files: Iterable[Path] = (), *, entry_points: bool = True) -> Registry:
    """Built-ins, then entry points, then sidecar files, all through the same registration path."""
    reg = Registry()
    _add_builtins(reg)
    if entry_points:
        for source, obj in _entry_point_objects(ENTRY_POINT_MITIGATIONS):
            reg.add_mitigations(obj, source)
        for source, obj in _entry_point_objects(ENTRY_POINT_ENVIRONMENTS):
            reg.add_environments(obj, source)
    for path in mitigation_files:
        reg.add_sidecar(path)
    return reg


def sidecar_schema() -> dict[str, Any]:
    """The JSON Schema of a ``--mitigations-file`` (``sleuth schema mitigations``)."""
    schema = SidecarFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "sleuth mitigations file (version 1)"
    return schema
