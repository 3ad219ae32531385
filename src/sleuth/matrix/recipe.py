"""The matrix recipe, schema v1: pydantic models (strict, unknown keys rejected) and loading.

Shape checks (types, unknown keys, positive numbers, one environment kind) live in the models;
checks that need the registry or the whole recipe (unknown or conflicting mitigations, duplicate
cell names, the baseline) live in :mod:`sleuth.matrix.resolve`.  Every error is one line naming the
file and the key path, e.g. ``recipe.yaml: cells[2].trials: Input should be greater than 0``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from sleuth._fields import Timeout
from sleuth.datafile import format_validation_error, load_data_file
from sleuth.errors import ConfigError
from sleuth.model import (
    DEFAULT_KILL_GRACE_S,
    MAX_KILL_GRACE_S,
    MAX_TRIALS,
    RECORDED,
)
from sleuth.registry import EnvironmentField, EnvVars, InlineEnvironment, MitigationEntry

__all__ = [
    "SCHEMA_VERSION",
    "CellSpec",
    "ConfoundSpec",
    "LockedEnvironment",
    "LockedMitigation",
    "OracleSpec",
    "Recipe",
    "ResolvedSection",
    "StatisticsSpec",
    "StepTimeSpec",
    "WorkloadSpec",
    "load_recipe",
    "parse_recipe",
    "recipe_schema",
]

SCHEMA_VERSION = 1

#: a trial count: at least 1, at most ``sleuth.model.MAX_TRIALS`` (an absurd count is an error, not a plan)
TrialCount = Annotated[int, Field(gt=0, le=MAX_TRIALS, strict=True)]
#: the most steps a workload may be asked for (``{STEPS}`` / ``SLEUTH_STEPS``)
MAX_STEPS = 10**12
StepCount = Annotated[int, Field(gt=0, le=MAX_STEPS, strict=True)]
#: numbers are strict everywhere: ``threshold: true`` is no 1.0 and ``'1.2'`` no 1.2
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
Env = EnvVars
ExitCode = Annotated[int, Field(ge=1, le=255, strict=True)]
#: the largest seed (numpy's generators take non-negative seeds; 63 bits is plenty)
MAX_SEED = 2**63 - 1
Seed = Annotated[int, Field(ge=0, le=MAX_SEED, strict=True)]


#: seconds between SIGTERM and SIGKILL when a trial is stopped: zero or more, at most an hour
KillGrace = Annotated[float, Field(ge=0, le=MAX_KILL_GRACE_S, allow_inf_nan=False, strict=True)]
Fraction = Annotated[float, Field(gt=0, lt=1, strict=True)]
UpToOne = Annotated[float, Field(gt=0, le=1, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def regex_problem(pattern: str, *, one_group: bool = False) -> tuple[bool, str] | None:
    """What is wrong with ``pattern``, as ``(is_syntax_error, detail)``; None when fine.

    ``one_group``: a regex that extracts one number may have at most one capturing group.
    """
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return (True, str(exc))
    if one_group and compiled.groups > 1:
        return (False, "use at most one capturing group (the number)")
    return None


def _check_regex(pattern: str | None, what: str) -> None:
    if pattern is None:
        return
    problem = regex_problem(pattern, one_group=what == "step_time.regex")
    if problem is not None:
        syntax, detail = problem
        sep = " is not a valid regular expression: " if syntax else ": "
        raise ValueError(f"{what} {pattern!r}{sep}{detail}")


class OracleSpec(_Strict):
    """How a trial is judged: ``exit_code`` (non-zero fails) or ``regex`` (a pattern in the output)."""

    kind: Literal["exit_code", "regex"] = "exit_code"
    pattern: str | None = None
    stream: Literal["stdout", "stderr", "both"] = "both"
    #: exit codes meaning "could not test" (SKIP)
    skip_exit: list[ExitCode] = []
    #: with ``kind: regex``: whether a non-zero exit also fails (as another failure signature)
    nonzero_fails: StrictBool = True
    #: ``module:function`` or ``file.py:function`` that may override the verdict
    callable: str | None = None

    @model_validator(mode="after")
    def _pattern(self) -> OracleSpec:
        if self.kind == "regex" and not self.pattern:
            raise ValueError("kind regex needs a pattern")
        if self.kind == "exit_code" and self.pattern is not None:
            raise ValueError("pattern is only used with kind: regex")
        _check_regex(self.pattern, "pattern")
        return self


class StepTimeSpec(_Strict):
    """Where a trial's step time comes from: a regex over the output, or a metric of metrics.json."""

    regex: str | None = None
    metric: str | None = None
    stream: Literal["stdout", "stderr", "both"] = "both"

    @model_validator(mode="after")
    def _one(self) -> StepTimeSpec:
        if (self.regex is None) == (self.metric is None):
            raise ValueError("give exactly one of regex, metric")
        _check_regex(self.regex, "step_time.regex")
        return self


class WorkloadSpec(_Strict):
    """What every cell runs: a ``command``, or a named workload (``plugin``) and its parameters."""

    #: names the run directory; default: the plugin's name, the script's or the program's name
    name: str | None = None
    #: an argv list, or one string run by ``/bin/sh -c``; ``{STEPS}`` becomes the cell's steps
    command: list[str] | str | None = None
    #: a named workload (entry point ``sleuth.workloads``, ``module:Class`` or ``file.py:Class``)
    #: that builds the command; its parameters go next to it (or under ``params``)
    plugin: str | None = None
    params: dict[str, Any] = {}
    #: working directory; default: the recipe file's directory
    cwd: str | None = None
    env: Env = {}
    timeout: Timeout | None = None
    #: seconds a stopped trial (``timeout``, Ctrl-C) has between SIGTERM and SIGKILL, e.g. to save
    #: a checkpoint; default ``sleuth.model.DEFAULT_KILL_GRACE_S`` (5); ``--kill-grace`` overrides it
    kill_grace: KillGrace | None = None
    oracle: OracleSpec = OracleSpec()
    step_time: StepTimeSpec | None = None

    @property
    def kill_grace_s(self) -> float:
        """The grace the trials get: ``kill_grace``, else :data:`sleuth.model.DEFAULT_KILL_GRACE_S`."""
        return DEFAULT_KILL_GRACE_S if self.kill_grace is None else self.kill_grace

    @model_validator(mode="before")
    @classmethod
    def _params_inline(cls, data: Any) -> Any:
        """``{plugin: NAME, lr: 0.1}``: keys that are not fields are the plugin's parameters."""
        if not isinstance(data, dict) or data.get("plugin") is None:
            return data
        own = {k: v for k, v in data.items() if k in cls.model_fields}
        inline = {k: v for k, v in data.items() if k not in cls.model_fields}
        given = own.get("params", {})
        if isinstance(given, dict):
            both = sorted(set(given) & set(inline))
            if both:
                raise ValueError(f"parameter {both[0]!r} is given twice (inline and under params)")
            own["params"] = {**given, **inline}
        return own

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, v: str | None) -> str | None:
        if v is not None and "\x00" in v:  # os.stat would raise ValueError
            raise ValueError("a path cannot contain a NUL byte")
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str] | str | None) -> list[str] | str | None:
        if v is None:
            return v
        if (isinstance(v, str) and not v.strip()) or (isinstance(v, list) and (not v or not v[0].strip())):
            raise ValueError("give a non-empty argv list, e.g. [python, train.py], or a command string")
        if any(
            "\x00" in a for a in ([v] if isinstance(v, str) else v)
        ):  # exec would raise at the first trial
            raise ValueError("an argument cannot contain a NUL byte")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> WorkloadSpec:
        if (self.command is None) == (self.plugin is None):
            raise ValueError(
                "give exactly one of command (an argv or a string) and plugin (a named workload)"
            )
        if self.plugin is not None and not self.plugin.strip():
            raise ValueError("plugin: give a workload's name (see the sleuth.workloads entry points)")
        if self.params and self.plugin is None:
            raise ValueError("params need a plugin (a command takes no parameters)")
        return self


class ConfoundSpec(_Strict):
    """Speed-confound check: flag a cell whose median step-time ratio's CI lies above ``threshold``."""

    threshold: PositiveFloat = 1.15
    baseline_cell: str | None = None


class StatisticsSpec(_Strict):
    """Decision parameters."""

    #: the family-wise error rate of the matrix (Holm over every comparison; Fisher two-sided)
    alpha: Fraction = 0.05
    #: the smallest relative change in failure rate worth detecting (0.5: halving), for
    #: ``no_effect`` and the trials-needed estimate
    min_effect: UpToOne = 0.5
    #: a cell with at least this error rate is marked unreliable
    unreliable_error_rate: UpToOne = 0.10


class CellSpec(_Strict):
    """One row of the matrix: stacked mitigations in one environment."""

    name: str
    mitigations: list[str] = ["none"]
    environment: EnvironmentField = "host"
    extra_env: Env = {}
    trials: TrialCount | None = None
    #: this cell's steps (``{STEPS}``, ``SLEUTH_STEPS``); default: the recipe's
    steps: StepCount | None = None


class LockedMitigation(MitigationEntry):
    """A mitigation as ``recipe.resolved.yaml`` pins it: its definition and where it came from."""

    source: str = ""


class LockedEnvironment(InlineEnvironment):
    """An environment alias as ``recipe.resolved.yaml`` pins it."""

    source: str = ""


class ResolvedSection(_Strict):
    """Written by sleuth into ``recipe.resolved.yaml``: every definition the matrix used, so a
    rerun runs the same variables where a plugin or sidecar is missing or has changed."""

    sleuth_version: str
    mitigations: dict[str, LockedMitigation] = {}
    environments: dict[str, LockedEnvironment] = {}


class Recipe(_Strict):
    """A matrix recipe, schema version 1."""

    schema_version: Literal[1]
    ticket: str | None = None
    #: seeds the interleaved trial order (and the bootstrap); drawn and recorded when absent
    seed: Seed | None = None
    workload: WorkloadSpec
    trials: TrialCount = 10
    #: the workload's steps, for every cell that gives none (``{STEPS}`` in the command and
    #: ``SLEUTH_STEPS`` in its environment; a plugin with a ``steps`` parameter gets it too)
    steps: StepCount | None = None
    #: stop a cell early only at a group-sequential look where the result is already significant
    until_decided: StrictBool = False
    confound: ConfoundSpec = ConfoundSpec()
    statistics: StatisticsSpec = StatisticsSpec()
    #: laid over every cell (under each cell's ``extra_env``)
    extra_env: Env = {}
    #: mitigations defined by this recipe (``recipe.resolved.yaml`` inlines those from sidecar files)
    mitigations: dict[str, MitigationEntry] = {}
    #: environment aliases defined by this recipe: ``name: {docker: IMAGE}``
    environments: dict[str, InlineEnvironment] = {}
    cells: Annotated[list[CellSpec], Field(min_length=1)]
    #: written by sleuth (``recipe.resolved.yaml``): the definitions this matrix used
    resolved: ResolvedSection | None = None

    @field_validator("schema_version", mode="before")
    @classmethod
    def _version_is_an_int(cls, v: Any) -> Any:
        if isinstance(v, bool | float):  # True == 1 == 1.0 in Python; a version is an integer
            raise ValueError(f"unsupported version {v!r}: write schema_version: 1")
        return v


def parse_recipe(data: Any, source: str, *, recorded: bool = False) -> Recipe:
    """Validate already-parsed data; ConfigError ``SOURCE: key.path: message`` on the first problem.

    ``recorded``: the data is the run's own ``recipe.resolved.yaml`` (a resume): its timeout may be
    what an older sleuth allowed (:data:`sleuth.model.RECORDED_MAX_TIMEOUT_S`)."""
    if data is None:
        raise ConfigError(f"{source}: the file is empty", hint="see sleuth schema matrix")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Recipe.model_validate(data, context=RECORDED if recorded else None)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_recipe(path: Path) -> Recipe:
    """Read and validate a YAML or JSON recipe file."""
    from sleuth.matrix.redact import restore_hidden

    if not path.exists():
        raise ConfigError(f"{path}: recipe file not found")
    return parse_recipe(restore_hidden(load_data_file(path), path), str(path))


def recipe_schema() -> dict[str, Any]:
    """The JSON Schema of the recipe (``sleuth schema matrix``)."""
    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "sleuth matrix recipe (schema_version 1)"
    return schema
