"""The reduce spec: pydantic models (strict: unknown keys and wrong types rejected) and loading.

Shape checks live in the models; checks that need the files or the command live in
:mod:`sleuth.reduce.resolve`, the registry's in :mod:`sleuth.reduce.loading`.  Every error is one
line naming the file and the key path, e.g.
``spec.yaml: axes[1].floor: Input should be a valid integer``.  ``sleuth schema reduce`` prints
the JSON Schema of :class:`ReduceSpec`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
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
from sleuth.registry import EnvironmentField, EnvVars

__all__ = [
    "DEFAULT_LAUNCHER",
    "Axis",
    "BudgetSpec",
    "OracleSpec",
    "ReduceSpec",
    "WorkloadSpec",
    "load_spec",
    "parse_duration",
    "parse_spec",
    "reduce_schema",
]

#: ``world_size`` axes run the command under this launcher; ``{N}`` is the number of ranks.
#: ``--tee 3`` prefixes every line with its rank, so the oracle can judge each rank; ``--no-python``
#: runs the command as it is (an argv, like every other workload).
DEFAULT_LAUNCHER = ["torchrun", "--standalone", "--nproc-per-node", "{N}", "--tee", "3", "--no-python"]
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"

AxisName = Annotated[str, Field(pattern=_NAME, max_length=64)]
PositiveInt = Annotated[int, Field(gt=0, le=MAX_TRIALS)]
NonNegInt = Annotated[int, Field(ge=0)]
Monotone = Literal[True, False, "unknown"]


def _regex(value: str | None, what: str) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{what} {value!r} is not a valid regular expression: {exc}") from None
    return value


_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$"
)


def parse_duration(value: str | float | int) -> float:
    """``4h``, ``1h30m``, ``90s``, ``2d`` or a number of seconds -> seconds; ValueError otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError("must be a positive number of seconds")
        return float(value)
    text = str(value).strip()
    m = _DURATION.match(text)
    if not text or not m or not any(m.groups()):
        raise ValueError(f"{value!r} is not a duration (e.g. 4h, 30m, 1h30m, 90s, or seconds)")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    total = d * 86400 + h * 3600 + mi * 60 + s
    if total <= 0:
        raise ValueError(f"{value!r}: must be longer than 0 seconds")
    return total


def _no_nul(items: list[str], what: str) -> None:
    """exec cannot pass a NUL byte: refused here rather than as a traceback at the first trial."""
    if any("\x00" in x for x in items):
        raise ValueError(f"{what} cannot contain a NUL byte")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class WorkloadSpec(_Strict):
    """What to run: an argv list (a string only with ``shell: true``), where, with which variables."""

    command: list[str] | str
    shell: bool = False
    #: working directory; default: the spec file's directory
    cwd: str | None = None
    env: EnvVars = {}
    #: seconds per trial, at most :data:`~sleuth.model.MAX_TIMEOUT_S` (30 days, as ``sleuth run``'s
    #: ``--timeout``; a resume takes what the run began with, up to a year); default 10x the slowest
    #: baseline trial (at least 5 s, at most 30 days)
    timeout: Timeout | None = None
    #: seconds a stopped trial (timeout, Ctrl-C) has between SIGTERM and SIGKILL, e.g. to save a
    #: checkpoint; default 5; ``--kill-grace`` overrides it
    kill_grace: Annotated[float, Field(ge=0, le=MAX_KILL_GRACE_S, allow_inf_nan=False)] | None = None

    @property
    def kill_grace_s(self) -> float:
        """The grace the trials get: ``kill_grace``, else :data:`sleuth.model.DEFAULT_KILL_GRACE_S`."""
        return DEFAULT_KILL_GRACE_S if self.kill_grace is None else self.kill_grace

    @model_validator(mode="after")
    def _command(self) -> WorkloadSpec:
        cmd = self.command
        if isinstance(cmd, str):
            if not self.shell:
                raise ValueError("command is a string: give an argv list, or set shell: true")
            if not cmd.strip():
                raise ValueError("command is empty")
        elif not cmd or not cmd[0].strip():
            raise ValueError("command: give a non-empty argv list, e.g. [python, train.py]")
        _no_nul([cmd] if isinstance(cmd, str) else cmd, "command: an argument")
        _no_nul([self.cwd or ""], "cwd: a path")
        return self


class OracleSpec(_Strict):
    """How a trial is judged; a candidate reproduces only with the baseline's failure (no slippage)."""

    #: signature/exit_code: a failure with the baseline's signature; regex: ``pattern`` in the
    #: output; python: ``callable`` judges the trial, the signature must match the baseline's
    kind: Literal["exit_code", "regex", "signature", "python"] = "signature"
    pattern: str | None = None
    stream: Literal["stdout", "stderr", "both"] = "both"
    #: ``module:function`` or ``file.py:function`` (kind: python)
    callable: str | None = None
    #: exit codes meaning "could not test" (never counted either way)
    skip_exit: list[Annotated[int, Field(ge=1, le=255)]] = []

    @model_validator(mode="after")
    def _fields(self) -> OracleSpec:
        if self.kind == "regex" and not self.pattern:
            raise ValueError("kind regex needs a pattern")
        if self.kind != "regex" and self.pattern is not None:
            raise ValueError("pattern is only used with kind: regex")
        if self.kind == "python" and not self.callable:
            raise ValueError("kind python needs a callable (module:function or file.py:function)")
        if self.kind != "python" and self.callable is not None:
            raise ValueError("callable is only used with kind: python")
        _regex(self.pattern, "pattern")
        return self


class BudgetSpec(_Strict):
    """How hard to try: trials per candidate, confidence, limits."""

    trials_per_candidate: Literal["auto"] | Annotated[int, Field(gt=0, le=1000)] = "auto"
    confidence: Annotated[float, Field(ge=0.5, lt=1.0)] = 0.95
    max_trials: PositiveInt = 2000
    max_wall_clock: str | Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    #: runs of the original before reducing (rate and signature)
    baseline_trials: Annotated[int, Field(gt=0, le=1000)] = 5

    @field_validator("max_wall_clock")
    @classmethod
    def _wall(cls, v: str | float | None) -> str | float | None:
        if v is not None:
            parse_duration(v)
        return v

    @model_validator(mode="after")
    def _room(self) -> BudgetSpec:
        if self.max_trials <= self.baseline_trials:  # the original alone would spend it
            raise ValueError(
                f"max_trials {self.max_trials} leaves no trial after the {self.baseline_trials} "
                "baseline_trials: raise max_trials or lower baseline_trials"
            )
        return self


class _AxisBase(_Strict):
    name: AxisName
    pinned: bool = False


class NumericAxis(_AxisBase):
    """``param`` (a ``{NAME}`` placeholder of the command) or ``env`` (a variable): int or choice."""

    kind: Literal["param", "env"]
    type: Literal["int", "choice"] = "int"
    initial: int | str
    #: choice: the values, simplest first
    values: list[int | str] | None = None
    floor: int = 0
    #: checked against ``initial`` only: the search stays in ``[floor, initial]``
    ceiling: int | None = None
    monotone: Monotone = "unknown"
    #: the step a failure is logged at (first group): a failure at step 137 makes 138 the next try
    step_regex: str | None = None

    @model_validator(mode="after")
    def _values(self) -> NumericAxis:
        if self.type == "choice":
            if not self.values:
                raise ValueError("type choice needs values (simplest first)")
            if len({str(v) for v in self.values}) != len(self.values):
                raise ValueError("values: a value is listed twice")
            if str(self.initial) not in {str(v) for v in self.values}:
                raise ValueError(f"initial {self.initial!r} is not one of values")
            if self.step_regex is not None:
                raise ValueError("step_regex needs type int")
            unused = [k for k in ("floor", "ceiling", "monotone") if k in self.model_fields_set]
            if unused:  # a choice moves to the simplest value first: these would be ignored
                raise ValueError(f"{unused[0]} is only used with type: int (order values simplest first)")
        else:
            if self.values is not None:
                raise ValueError("values is only used with type: choice")
            if not isinstance(self.initial, int):
                raise ValueError("initial: give an integer (or type: choice with values)")
            if self.initial < self.floor:
                raise ValueError(f"initial {self.initial} is below floor {self.floor}")
            if self.ceiling is not None and self.initial > self.ceiling:
                raise ValueError(f"initial {self.initial} is above ceiling {self.ceiling}")
        _regex(self.step_regex, "step_regex")
        return self


class FileLinesAxis(_AxisBase):
    """The lines of a file (relative to the workload's cwd); ``{NAME}`` expands to its path."""

    kind: Literal["file_lines"]
    path: str


class FileSetAxis(_AxisBase):
    """The files of a directory (dataset shards); ``{NAME}`` expands to its path."""

    kind: Literal["file_set"]
    path: str


class EnvSetAxis(_AxisBase):
    """The workload's ``env`` entries: drop those the failure does not need."""

    kind: Literal["env_set"]
    #: variables never dropped
    keep: list[str] = []


class ArgSetAxis(_AxisBase):
    """A set of arguments: a ``{NAME}`` element of the command expands to the kept ones (else appended)."""

    kind: Literal["arg_set"]
    values: Annotated[list[str], Field(min_length=1)]

    @field_validator("values")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("an argument is listed twice")
        _no_nul(v, "an argument")
        return v


class WindowAxis(_AxisBase):
    """A step range ``[start, end)``: placeholders ``{NAME_START}`` and ``{NAME_END}``."""

    kind: Literal["window"]
    start: NonNegInt = 0
    end: Annotated[int, Field(gt=0)]
    monotone: Monotone = "unknown"
    step_regex: str | None = None

    @model_validator(mode="after")
    def _range(self) -> WindowAxis:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be greater than start {self.start}")
        _regex(self.step_regex, "step_regex")
        return self


class WorldSizeAxis(_AxisBase):
    """The number of ranks; the command runs under ``launcher`` (``{N}`` = ranks)."""

    kind: Literal["world_size"]
    initial: Annotated[int, Field(gt=0, le=4096)]
    floor: Annotated[int, Field(gt=0)] = 1
    monotone: Monotone = "unknown"
    launcher: Annotated[list[str], Field(min_length=1)] = DEFAULT_LAUNCHER
    #: which ranks must reproduce: any rank, all ranks, or rank 0
    aggregate: Literal["any", "all", "rank0"] = "any"
    #: how a line names its rank (first group), e.g. torchrun --tee's ``[default0]:``
    rank_prefix: str = r"^\[default(\d+)\]:"

    @model_validator(mode="after")
    def _check(self) -> WorldSizeAxis:
        if self.initial < self.floor:
            raise ValueError(f"initial {self.initial} is below floor {self.floor}")
        if not any("{N}" in a for a in self.launcher):
            raise ValueError("launcher: no {N} placeholder for the number of ranks")
        _regex(self.rank_prefix, "rank_prefix")
        if re.compile(self.rank_prefix).groups != 1:
            raise ValueError("rank_prefix: use exactly one capturing group (the rank)")
        return self


Axis = Annotated[
    NumericAxis | FileLinesAxis | FileSetAxis | EnvSetAxis | ArgSetAxis | WindowAxis | WorldSizeAxis,
    Discriminator("kind"),
]


class ReduceSpec(_Strict):
    """A reduce spec: the workload, its oracle, the budget and the axes to shrink along."""

    #: names the run directory; default: the script's or the program's name
    name: str | None = None
    workload: WorkloadSpec
    oracle: OracleSpec = OracleSpec()
    budget: BudgetSpec = BudgetSpec()
    axes: Annotated[list[Axis], Field(min_length=1)]
    #: mitigations (from the registry, as in sleuth matrix) applied to every trial
    mitigations: list[str] = []
    #: where trials run: host, a registered name, or {venv: [...]} / {docker: IMAGE} ...
    environment: EnvironmentField = "host"


def parse_spec(data: Any, source: str, *, recorded: bool = False) -> ReduceSpec:
    """Validate parsed data; ConfigError ``SOURCE: key.path: message`` on the first problem.

    ``recorded``: the spec of a run being resumed, unchanged since it started: its timeout may be
    what an older sleuth took (:data:`sleuth.model.RECORDED_MAX_TIMEOUT_S`)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    if "axes" in data and isinstance(data["axes"], list):
        for i, axis in enumerate(data["axes"]):
            if isinstance(axis, dict) and "kind" not in axis:
                raise ConfigError(f"{source}: axes[{i}].kind: required key is missing")
    try:
        return ReduceSpec.model_validate(data, context=RECORDED if recorded else None)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source)) from None


_KINDS = frozenset({"param", "env", "file_lines", "file_set", "env_set", "arg_set", "window", "world_size"})


def _one_line(exc: ValidationError, source: str) -> str:
    """The registry's one-line form, without the axis kind pydantic puts in a union's key path."""
    errors = exc.errors(include_url=False)
    cleaned: list[Any] = []
    for e in errors:
        loc = list(e["loc"])
        if len(loc) >= 3 and loc[0] == "axes" and isinstance(loc[1], int) and loc[2] in _KINDS:
            loc.pop(2)
        cleaned.append({**e, "loc": tuple(loc)})
    return format_validation_error(ValidationError.from_exception_data(exc.title, cleaned), source)


def load_spec(path: Path, *, recorded: bool = False) -> tuple[ReduceSpec, str]:
    """Read and validate a YAML or JSON spec (``recorded``: :func:`parse_spec`'s); returns the model
    and the file's text."""
    if not path.exists():
        raise ConfigError(f"{path}: spec file not found")
    data = load_data_file(path)
    return parse_spec(data, str(path), recorded=recorded), path.read_text(encoding="utf-8")


def reduce_schema() -> dict[str, Any]:
    """The JSON Schema of the spec (``sleuth schema reduce``)."""
    schema = ReduceSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "sleuth reduce spec"
    return schema
