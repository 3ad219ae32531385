"""Named workloads: one plugin protocol (entry-point group ``sleuth.workloads``) for every verb.

A named workload is a class (or an object) found by entry-point name, ``module:Class`` or
``path/file.py:Class``.  Every attribute is optional; each verb reads what it needs::

    class Train(sleuth.workloads.Workload):
        name = "train"                                  # names the run directory
        params = {"steps": 100, "lr": 0.1}              # defaults; a recipe may override them
        entry = "mypkg.train:main"                      # main(**params), in a FRESH interpreter
        step_time = {"metric": "step_time"}             # where the matrix reads step times
        oracle = {"kind": "regex", "pattern": "loss is nan"}   # optional; default: exit code

        # or, instead of ``entry``, build the argv yourself:
        def command(self, params): return ["python", "train.py", "--steps", str(params["steps"])]

``sleuth matrix`` runs it (``workload: {plugin: train, lr: 0.2}``); ``sleuth reduce --workload``
reads the spec sections (``workload``, ``axes``, ``predicate``, ``budget``...), so one class may
serve both verbs.

``entry`` runs through a tiny stdlib-only launcher (``python -c``): a fresh interpreter for every
trial, so a mitigation's variables (``NVIDIA_TF32_OVERRIDE``, ``XLA_FLAGS``...) are in place before
the workload imports anything.  The launcher gets the parameters in its environment
(:data:`PARAMS_VAR`, JSON), never on its command line, which any user of the machine may read
(``ps``, ``/proc/PID/cmdline``; a process's environment only its own user): a parameter may be a
token.  It takes the variable out before it calls the function, so the workload's children do not
inherit it.  The function gets the parameters as keyword arguments and may
return an exit code, or a mapping that reports for itself: ``{"failed": bool, "signature": str,
"step_times": [float, ...]}``; the launcher writes the step times to
``$SLEUTH_TRIAL_DIR/metrics.json`` (metric ``step_time``) and the verdict to
``$SLEUTH_TRIAL_DIR/verdict.json``, which :func:`reported_verdict` (the default oracle callable of a
named workload) reads back.  A command workload may write those two files itself.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.errors import ConfigError, UsageError
from sleuth.model import Outcome, TrialResult

__all__ = [
    "ENTRY_POINT_WORKLOADS",
    "LAUNCHER",
    "PARAMS_VAR",
    "REPORTED_VERDICT",
    "VERDICT_FILE",
    "NamedWorkload",
    "Workload",
    "available",
    "is_reference",
    "load_workload",
    "reported_verdict",
]

ENTRY_POINT_WORKLOADS = "sleuth.workloads"
#: the file a workload's own verdict is read from, in its trial directory
VERDICT_FILE = "verdict.json"
#: the oracle callable that reads it
REPORTED_VERDICT = "sleuth.workloads:reported_verdict"
#: ``module:Class`` or ``path/file.py:Class`` (anything else is an entry-point name or a command)
_REF = re.compile(r"\A(?:[A-Za-z_][\w.]*|\S+\.py):[A-Za-z_]\w*\Z")

#: the variable that carries the launcher's parameters (JSON): off its command line
PARAMS_VAR = "SLEUTH_WORKLOAD_PARAMS"
#: runs ``module:function`` with the JSON parameters of :data:`PARAMS_VAR` in a fresh interpreter;
#: stdlib only, so it runs in a venv or an image that lacks sleuth (the module is then loaded from
#: its file, when it exists)
LAUNCHER = """\
import importlib, importlib.util, json, os, sys
ref, path = sys.argv[1], sys.argv[2]
raw = os.environ.pop("SLEUTH_WORKLOAD_PARAMS", None)
if raw is None:
    sys.exit("sleuth's launcher: $SLEUTH_WORKLOAD_PARAMS (the parameters of %s) is not set" % ref)
params = json.loads(raw)
mod, _, fn = ref.rpartition(":")
try:
    m = importlib.import_module(mod)
except ImportError:
    if not path or not os.path.isfile(path):
        raise
    spec = importlib.util.spec_from_file_location(mod.rpartition(".")[2], path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
out = getattr(m, fn)(**params)
d, rc = os.environ.get("SLEUTH_TRIAL_DIR"), 0
def put(name, data):
    with open(os.path.join(d, name + ".tmp"), "w") as f:
        json.dump(data, f)
    os.replace(os.path.join(d, name + ".tmp"), os.path.join(d, name))
if isinstance(out, dict):
    if d and out.get("step_times") is not None:
        try:
            with open(os.path.join(d, "metrics.json")) as f:
                metrics = json.load(f)
        except (OSError, ValueError):
            metrics = {}
        metrics = metrics if isinstance(metrics, dict) else {}
        metrics["step_time"] = [float(x) for x in out["step_times"]]
        put("metrics.json", metrics)
    if d and "failed" in out:
        verdict = {"outcome": "fail" if out["failed"] else "pass", "signature": out.get("signature")}
        put("verdict.json", verdict)
    if out.get("failed"):
        print("workload failed: %s" % (out.get("signature") or "reported by the workload"), file=sys.stderr)
    rc = 1 if out.get("failed") else int(out.get("exit_code") or 0)
elif isinstance(out, int) and not isinstance(out, bool):
    rc = out
sys.stdout.flush()
sys.exit(rc)
"""


class Workload:
    """Base class of a named workload (optional: any object with these attributes works).

    Give ``entry`` (``module:function`` or the function itself) or override :meth:`command`;
    ``params`` holds the defaults (a recipe's value must have the default's type).
    """

    name: str = ""
    description: str = ""
    params: Mapping[str, Any] = {}
    entry: str | Callable[..., Any] | None = None
    oracle: Mapping[str, Any] | None = None
    step_time: Mapping[str, Any] | None = None
    timeout: float | None = None
    #: seconds a stopped trial (its timeout, Ctrl-C) has between SIGTERM and SIGKILL
    kill_grace: float | None = None
    env: Mapping[str, str] = {}

    def command(self, params: Mapping[str, Any]) -> Sequence[str] | str | None:
        """The argv (or a shell string) for ``params``; None: run ``entry`` in a fresh interpreter."""
        return None


def is_reference(text: str) -> bool:
    """True when ``text`` is spelled ``module:Class`` or ``path/file.py:Class``."""
    return _REF.fullmatch(text) is not None


def available() -> list[str]:
    """The names registered under :data:`ENTRY_POINT_WORKLOADS`, sorted."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_WORKLOADS)})


def _find(ref: str, where: str) -> tuple[Any, str]:
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=ENTRY_POINT_WORKLOADS) if ep.name == ref]
    if found:
        ep = found[0]
        dist = getattr(ep.dist, "name", None)
        origin = f"entry point {ep.name} = {ep.value}" + (f" ({dist})" if dist else "")
        try:
            return ep.load(), origin
        except Exception as exc:  # a broken plugin is named, not a traceback
            raise UsageError(f"{where} {ref}: {origin} cannot load: {type(exc).__name__}: {exc}") from exc
    if not is_reference(ref):
        raise UsageError(
            f"{where} {ref!r}: no workload plugin of that name (entry point group {ENTRY_POINT_WORKLOADS})",
            hint=f"installed: {', '.join(available()) or 'none'}; or give module:Class or file.py:Class",
        )
    from sleuth.oracle import load_callable

    return load_callable(ref, where), ref


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    if isinstance(default, list | tuple):
        return "list"
    return "any"


def _fits(kind: str, value: Any) -> bool:
    """Strict: ``true`` is no number and ``'1.2'`` no float."""
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str)
    if kind == "list":
        return isinstance(value, list)
    return True


@dataclass(frozen=True, slots=True)
class NamedWorkload:
    """A loaded named workload: the object, how it was found, and what the verbs read from it."""

    ref: str
    obj: Any
    origin: str

    @property
    def name(self) -> str:
        """Its ``name``, else the reference (an entry-point name, or the class's name)."""
        name = getattr(self.obj, "name", "") or ""
        return str(name) if name else self.ref.rpartition(":")[2]

    @property
    def description(self) -> str:
        """Its ``description``, else its docstring's first line."""
        text = getattr(self.obj, "description", "") or inspect.getdoc(self.obj) or ""
        return str(text).strip().splitlines()[0] if str(text).strip() else ""

    @property
    def defaults(self) -> dict[str, Any]:
        """The parameters and their defaults."""
        params = getattr(self.obj, "params", None) or {}
        if not isinstance(params, Mapping):
            raise ConfigError(f"workload {self.ref}: params must be a mapping of name -> default")
        return dict(params)

    def section(self, attr: str) -> Any:
        """The attribute ``attr``, or None (reduce reads its spec sections this way)."""
        return getattr(self.obj, attr, None)

    def check_params(self, given: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The defaults overlaid with ``given``; ConfigError naming ``where.NAME`` for an unknown
        parameter or a value of another type (strict: ``true`` is not 1, ``'1.2'`` is not 1.2)."""
        defaults = self.defaults
        out = dict(defaults)
        for key, value in given.items():
            if key not in defaults:
                known = ", ".join(sorted(defaults)) or "none"
                raise ConfigError(
                    f"{where}.{key}: workload {self.ref} has no parameter {key!r} (its parameters: {known})"
                )
            kind = _kind(defaults[key])
            if not _fits(kind, value):
                raise ConfigError(
                    f"{where}.{key}: expected {'a number' if kind == 'float' else kind}, "
                    f"got {type(value).__name__} {value!r}"
                )
            out[key] = float(value) if kind == "float" else value
        try:
            json.dumps(out)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: parameters must be plain data (JSON): {exc}") from None
        return out

    def entry_ref(self) -> tuple[str, str] | None:
        """``(module:function, the module's file or '')`` of ``entry``; None without one."""
        entry = getattr(self.obj, "entry", None)
        if entry is None:
            return None
        if inspect.ismethod(entry):
            entry = entry.__func__
        if isinstance(entry, str):
            mod, sep, func = entry.rpartition(":")
            if not sep or not mod or not func:
                raise ConfigError(f"workload {self.ref}: entry {entry!r}: expected module:function")
            return entry, _module_file(mod)
        if not callable(entry) or "<" in getattr(entry, "__qualname__", "<"):
            raise ConfigError(
                f"workload {self.ref}: entry must be module:function or a module-level function"
            )
        path = inspect.getsourcefile(entry) or ""
        return f"{entry.__module__}:{entry.__qualname__}", path

    def launch(
        self, params: Mapping[str, Any], *, python: str | None = None
    ) -> tuple[list[str] | str, dict[str, str]]:
        """The command for ``params`` and the variables it needs: ``command(params)``, else ``entry``
        through :data:`LAUNCHER` (run by ``python``, default this interpreter) with the parameters
        in :data:`PARAMS_VAR`, else the ``workload.command`` section."""
        build = getattr(self.obj, "command", None)
        cmd = build(dict(params)) if callable(build) else None
        if cmd is not None:
            return _checked_command(cmd, self.ref), {}
        entry = self.entry_ref()
        if entry is not None:
            ref, path = entry
            argv = [python or sys.executable, "-c", LAUNCHER, ref, path]
            return argv, {PARAMS_VAR: json.dumps(dict(params))}
        section = self.section("workload")
        if isinstance(section, Mapping) and section.get("command"):
            return _checked_command(section["command"], self.ref), {}
        raise ConfigError(
            f"workload {self.ref}: gives no command",
            hint="define entry = 'module:function', a command(params) method, or workload = {command: [...]}",
        )

    def launches(self) -> bool:
        """True when the command is the launcher (``entry``): its interpreter may be swapped."""
        build = getattr(self.obj, "command", None)
        return not (callable(build) and build(self.defaults) is not None) and self.entry_ref() is not None


def _module_file(mod: str) -> str:
    """The file of module ``mod`` (found, not run), or '' when it cannot be found."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(mod)
    except (ImportError, ValueError):
        return ""
    origin = getattr(spec, "origin", None) if spec is not None else None
    return str(origin) if origin and origin.endswith(".py") else ""


def _checked_command(cmd: Any, ref: str) -> list[str] | str:
    if isinstance(cmd, str) and cmd.strip():
        return cmd
    if isinstance(cmd, list | tuple) and cmd and all(isinstance(a, str) for a in cmd) and cmd[0].strip():
        return list(cmd)
    raise ConfigError(f"workload {ref}: its command must be a non-empty argv list or string, got {cmd!r}")


def load_workload(ref: str, where: str = "--workload") -> NamedWorkload:
    """Find ``ref`` (entry-point name, ``module:Class``, ``file.py:Class``) and create it.

    A UsageError naming ``where`` when it cannot be found, imported or created.
    """
    found, origin = _find(ref, where)
    try:
        obj = found() if isinstance(found, type) else found
    except Exception as exc:
        raise UsageError(f"{where} {ref}: cannot create {found!r}: {type(exc).__name__}: {exc}") from exc
    return NamedWorkload(ref=ref, obj=obj, origin=origin)


def reported_verdict(result: TrialResult) -> Any:
    """Oracle callable: the workload's own verdict from ``$SLEUTH_TRIAL_DIR/verdict.json``; None
    (keep the built-in verdict) when it wrote none."""
    from sleuth.oracle import Judgement
    from sleuth.signature import make_signature

    path = Path(result.trial_dir) / VERDICT_FILE if result.trial_dir else None
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: nested too deep
        return Judgement(Outcome.ERROR, None, f"{VERDICT_FILE} is not valid JSON")
    if not isinstance(data, dict) or data.get("outcome") not in ("pass", "fail"):
        return Judgement(Outcome.ERROR, None, f'{VERDICT_FILE} must hold {{"outcome": "pass"|"fail"}}')
    if data["outcome"] == "pass":
        return Outcome.PASS
    sig = data.get("signature")
    return Judgement(
        Outcome.FAIL, make_signature("reported", sig if isinstance(sig, str) else None), "reported"
    )
