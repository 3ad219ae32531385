"""The matrix's workload: a command, or a named workload (plugin) that builds it; steps per cell.

``workload: {plugin: NAME, ...params}`` loads the named workload through the core protocol
(:mod:`sleuth.workloads`, the one ``sleuth reduce --workload`` uses), checks the parameters
(strictly typed, by the plugin's defaults) and fills what the recipe leaves open from the plugin:
name, oracle (default: the exit code and the workload's own verdict), step-time source, timeout and
kill grace (checked as the recipe's own), variables.  The result is an *effective* recipe (what
``recipe.resolved.yaml`` writes) and a builder of each cell's argv.

Steps: the cell's ``steps``, else the recipe's, replace ``{STEPS}`` in the command, are exported
as ``SLEUTH_STEPS`` and, for a plugin with a ``steps`` parameter, become that parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sleuth._fields import Timeout
from sleuth.errors import ConfigError, UsageError
from sleuth.matrix.recipe import KillGrace, OracleSpec, Recipe, StepTimeSpec
from sleuth.workloads import REPORTED_VERDICT, NamedWorkload, load_workload

__all__ = ["STEPS_TOKEN", "Workload", "resolve_workload"]

STEPS_TOKEN = "{STEPS}"
#: environment kinds whose interpreter is not this one: the launcher runs their ``python``
_OWN_PYTHON = frozenset({"venv", "docker", "podman", "pyxis"})


@dataclass(frozen=True, slots=True)
class Workload:
    """What builds each cell's argv."""

    #: the recipe with the plugin's defaults filled in (and its parameters written out)
    recipe: Recipe
    named: NamedWorkload | None
    source: str

    @property
    def uses_steps(self) -> bool:
        """True when the command (or the plugin) takes the steps."""
        if self.named is not None:
            return "steps" in self.named.defaults or _mentions(self._template(None))
        return _mentions(self.recipe.workload.command)

    def steps_of(self, cell_steps: int | None) -> int | None:
        """The effective steps of a cell: its own, the recipe's, else the plugin's ``steps``."""
        steps = cell_steps if cell_steps is not None else self.recipe.steps
        if steps is None and self.named is not None:
            value = self.recipe.workload.params.get("steps")
            steps = value if isinstance(value, int) and not isinstance(value, bool) else None
        return steps

    def _launch(self, steps: int | None, env_kind: str = "host") -> tuple[list[str] | str, dict[str, str]]:
        if self.named is None:
            cmd = self.recipe.workload.command
            assert cmd is not None  # one of command/plugin, checked by the model
            return cmd, {}
        params = dict(self.recipe.workload.params)
        if steps is not None and "steps" in params:
            params["steps"] = steps
        python = "python" if env_kind in _OWN_PYTHON and self.named.launches() else None
        return self.named.launch(params, python=python)

    def _template(self, steps: int | None, env_kind: str = "host") -> list[str] | str:
        return self._launch(steps, env_kind)[0]

    def launch_env(self, steps: int | None) -> dict[str, str]:
        """The variables the command of a cell with ``steps`` needs: a plugin's parameters, which its
        launcher reads from its environment (:data:`sleuth.workloads.PARAMS_VAR`), not its argv."""
        return self._launch(steps)[1]

    def argv(self, steps: int | None, env_kind: str, cell: str) -> tuple[str, ...]:
        """The argv of ``cell`` with ``steps`` in an environment of ``env_kind``."""
        cmd = self._template(steps, env_kind)
        if _mentions(cmd) and steps is None:
            raise ConfigError(
                f"{self.source}: workload.command: uses {STEPS_TOKEN} but {cell} has no steps",
                hint="give steps: N in the recipe (or in the cell), or --steps N",
            )
        text = str(steps)
        if isinstance(cmd, str):
            return ("/bin/sh", "-c", cmd.replace(STEPS_TOKEN, text))
        return tuple(a.replace(STEPS_TOKEN, text) for a in cmd)


def _mentions(cmd: list[str] | str | None) -> bool:
    if cmd is None:
        return False
    return STEPS_TOKEN in (cmd if isinstance(cmd, str) else " ".join(cmd))


def _load(ref: str, source: str) -> NamedWorkload:
    try:
        return load_workload(ref, "plugin")
    except UsageError as exc:
        raise ConfigError(f"{source}: workload.plugin: {exc.message}", hint=exc.hint) from None


def _mapping(value: Any, what: str, ref: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"workload {ref}: {what} must be a mapping, got {type(value).__name__}")
    return dict(value)


def resolve_workload(recipe: Recipe, source: str) -> Workload:
    """Load the recipe's plugin (if any) and fill the workload from it; ConfigError naming the key."""
    spec = recipe.workload
    if spec.plugin is None:
        return Workload(recipe=recipe, named=None, source=source)
    named = _load(spec.plugin, source)
    params = named.check_params(spec.params, f"{source}: workload")
    if recipe.steps is not None and "steps" in params:
        if "steps" in spec.params and spec.params["steps"] != recipe.steps:
            raise ConfigError(
                f"{source}: workload.steps: {spec.params['steps']!r}, but steps: {recipe.steps} "
                "(the steps are given twice)",
                hint="keep the recipe's steps: (cells may override it)",
            )
        params["steps"] = recipe.steps
    given = spec.model_fields_set
    update: dict[str, Any] = {"params": params}
    if spec.name is None:
        update["name"] = named.name
    ref = named.ref
    oracle = _mapping(named.section("oracle"), "oracle", ref)
    if "oracle" not in given:
        data = oracle if oracle is not None else {"kind": "exit_code"}
        data.setdefault("callable", REPORTED_VERDICT)
        update["oracle"] = _validated(OracleSpec, data, f"workload {ref}: oracle")
    step_time = _mapping(named.section("step_time"), "step_time", ref)
    if "step_time" not in given and step_time is not None:
        update["step_time"] = _validated(StepTimeSpec, step_time, f"workload {ref}: step_time")
    # the plugin's seconds, checked as the recipe's own are; the recipe's (or --kill-grace) win
    for key, kind in (("timeout", Timeout), ("kill_grace", KillGrace)):
        value = named.section(key)
        if getattr(spec, key) is None and value is not None:
            update[key] = _seconds(value, kind, f"workload {ref}: {key}")
    env = _mapping(named.section("env"), "env", ref) or {}
    if env:
        update["env"] = {**{str(k): str(v) for k, v in env.items()}, **spec.env}
    workload = spec.model_copy(update=update)
    return Workload(recipe=recipe.model_copy(update={"workload": workload}), named=named, source=source)


def _seconds(value: Any, kind: Any, where: str) -> float:
    """``value`` as a recipe's field of type ``kind`` takes it; ConfigError naming ``where``."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return float(TypeAdapter(kind).validate_python(value))
    except ValidationError as exc:
        msg = str(exc.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{where}: {msg}") from None


def _validated(model: Any, data: Mapping[str, Any], where: str) -> Any:
    from pydantic import ValidationError

    from sleuth.datafile import format_validation_error

    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from None
