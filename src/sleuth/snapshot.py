"""Environment fingerprint (OS, CPU, memory, Python, packages, GPU tools, env vars) and its diff.

API (stable; bisect, matrix and the run dir use it):

* :func:`collect` ``(*, deep=False, packages=(), python=None) -> dict`` — a JSON-able snapshot::

      {"schema": 1, "taken_at": "2025-01-01T00:00:00Z",
       "os": {"system", "kernel", "kernel_version", "machine", "distro", "hostname"},
       "cpu": {"model", "count"}, "memory": {"total_bytes"},
       "python": {"version", "implementation", "executable", "prefix", "base_prefix", "in_venv"},
       "packages": {normalized name: version or None},
       "env": {NAME: value (secrets -> "<redacted>"; tokens and URL passwords inside a value too)},
       "gpu": {"nvidia_smi": {"present", "driver_version", "cuda_version",
                              "gpus": [{"name", "memory_total"}]},
               "rocm_smi": {"present", "driver_version", "gpus": [{"name", "memory_total"}]}},
       "torch": {...}, "jax": {...}}          # only with deep=True

  ``python=None`` probes this interpreter in-process; a path runs ``_probe.py`` with that interpreter
  (a venv's python) through :func:`sleuth.runner.run_tool`.  ``deep`` imports torch/jax (seconds):
  ``sleuth env`` uses it, run dirs do not.  Missing tools are ``{"present": False}``, never errors.
  With ``chosen_by`` (how the interpreter was picked, e.g. ``"first python on PATH"``) the snapshot
  also holds ``"interpreter": {"path", "version", "chosen_by"}``, the line ``sleuth env`` shows.
* :func:`workload_python` ``(path=None) -> (path, name) | None`` — the interpreter a workload's
  ``python`` runs: the first ``python``, then ``python3``, on PATH (what ``sleuth env`` describes).
* :func:`probe_via` ``(prefix, *, probe_path=None, deep=False, packages=())`` — only the in-interpreter
  part (python, packages, env), probed through any argv prefix (used for container images).
* :func:`diff` ``(a, b) -> list[Change]`` — flattened key paths (``packages.torch``,
  ``gpu.nvidia_smi.gpus[0].name``) that were added, removed or changed; volatile keys
  (:data:`VOLATILE`) are ignored.
* :func:`public_changes` ``(changes) -> list[Change]`` — the same with secret values hidden (what
  ``sleuth env diff`` prints: a snapshot from an older sleuth or edited by hand may hold raw ones).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from sleuth import _probe
from sleuth.errors import InfrastructureError

__all__ = [
    "SCHEMA",
    "VOLATILE",
    "Change",
    "ChangeKind",
    "collect",
    "diff",
    "flatten",
    "probe_via",
    "public_changes",
    "workload_python",
]

SCHEMA = 1
#: key paths that differ between any two snapshots and say nothing about the environment
VOLATILE = frozenset({"taken_at"})
#: a healthy nvidia-smi answers in seconds even on a node of many GPUs; a wedged GPU makes it hang for
#: minutes (`sleuth env` waited 2 min in silence, and a run dir's snapshot, given up after 30 s, was lost)
_TOOL_TIMEOUT_S = 15.0


class ChangeKind(Enum):
    """How one key path differs between two snapshots."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: ``old`` is ``None`` when added, ``new`` is ``None`` when removed."""

    path: str
    kind: ChangeKind
    old: Any = None
    new: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``sleuth env diff --json``."""
        return {"path": self.path, "kind": self.kind.value, "old": self.old, "new": self.new}


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _os_info() -> dict[str, Any]:
    uname = platform.uname()
    distro = None
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            distro = line.split("=", 1)[1].strip().strip('"')
    return {
        "system": uname.system,
        "kernel": uname.release,
        "kernel_version": uname.version,
        "machine": uname.machine,
        "distro": distro or (platform.mac_ver()[0] and f"macOS {platform.mac_ver()[0]}") or None,
        "hostname": uname.node,
    }


def _cpu_info() -> dict[str, Any]:
    model = None
    for line in _read("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
            model = value.strip()
            break
    return {"model": model or platform.processor() or None, "count": os.cpu_count()}


def _memory_info() -> dict[str, Any]:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return {"total_bytes": int(parts[1]) * 1024}
    return {"total_bytes": None}


def _tool(argv: Sequence[str]) -> tuple[str | None, str]:
    """(stdout of a GPU tool, "") or (``None``, why not) when it is absent, fails or hangs."""
    from sleuth.runner import run_tool

    try:
        res = run_tool(argv, timeout_s=_TOOL_TIMEOUT_S)
    except InfrastructureError as exc:
        return None, exc.message
    if res.timed_out:
        return None, f"timed out after {_TOOL_TIMEOUT_S:g} s"
    return (res.stdout, "") if res.ok else (None, res.brief(200))


def _nvidia_smi() -> dict[str, Any]:
    if shutil.which("nvidia-smi") is None:
        return {"present": False}
    query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    out, why = _tool(query)
    if out is None:
        return {"present": True, "error": f"nvidia-smi --query-gpu: {why}"}
    gpus: list[dict[str, Any]] = []
    drivers: set[str] = set()
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 3 and fields[0]:
            gpus.append({"name": fields[0], "memory_total": fields[2]})
            drivers.add(fields[1])
    cuda = None
    for line in (_tool(["nvidia-smi"])[0] or "").splitlines():
        if "CUDA Version:" in line:
            cuda = line.split("CUDA Version:", 1)[1].split()[0].strip("|")
    driver = ",".join(sorted(drivers)) or None
    return {"present": True, "driver_version": driver, "cuda_version": cuda, "gpus": gpus}


def _rocm_smi() -> dict[str, Any]:
    if shutil.which("rocm-smi") is None:
        return {"present": False}
    query = ["rocm-smi", "--showproductname", "--showdriverversion", "--showmeminfo", "vram", "--json"]
    out, why = _tool(query)
    if out is None:
        return {"present": True, "error": f"rocm-smi --json: {why}"}
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        return {"present": True, "error": "rocm-smi --json gave no JSON", "raw": out[:2000]}
    gpus: list[dict[str, Any]] = []
    driver = None
    for key, card in sorted(data.items()) if isinstance(data, dict) else ():
        if not isinstance(card, dict):
            continue
        if key.startswith("card"):
            name = card.get("Card Series") or card.get("Card series") or card.get("Card SKU")
            gpus.append({"name": name, "memory_total": card.get("VRAM Total Memory (B)")})
        driver = driver or card.get("Driver version")
    return {"present": True, "driver_version": driver, "gpus": gpus}


def probe_via(
    prefix: Sequence[str],
    *,
    probe_path: str | None = None,
    deep: bool = False,
    packages: Iterable[str] = (),
    timeout_s: float = 300.0,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``prefix + [probe_path, flags]`` (an interpreter, or ``docker run ... IMG python3``) and parse it.

    ``probe_path`` defaults to this file's ``_probe.py``; a container passes where it mounted it.
    ``env``: the client's environment (a container's ``-e NAME`` values travel there).
    Raises ``InfrastructureError`` when the probe does not print its JSON line.
    """
    from sleuth.runner import run_tool

    argv = [*prefix, probe_path or _probe.__file__, *(["--deep"] if deep else [])]
    for name in packages:
        argv += ["--package", name]
    res = run_tool(argv, timeout_s=timeout_s, env=env)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if not res.ok or not lines:
        raise InfrastructureError(f"could not probe with {' '.join(prefix)}: {res.brief()}")
    try:
        data: dict[str, Any] = json.loads(lines[-1])
    except (ValueError, RecursionError) as exc:
        raise InfrastructureError(f"probe with {' '.join(prefix)} printed bad JSON: {exc}") from None
    if not _is_probe_result(data):  # a wrapper or shim printing a JSON line of its own
        raise InfrastructureError(f"probe with {' '.join(prefix)} printed JSON that is not a probe result")
    return _public(data)


def _is_probe_result(data: Any) -> bool:
    py = data.get("python") if isinstance(data, dict) else None
    return (
        isinstance(py, dict)
        and isinstance(py.get("version"), str)
        and isinstance(py.get("executable"), str)
        and isinstance(data.get("packages"), dict)
        and isinstance(data.get("env"), dict)
    )


def _public(inner: dict[str, Any]) -> dict[str, Any]:
    """The probe's result with its ``env`` through :mod:`sleuth.secrets`: the probe hides whole
    values (secret names, token-shaped values); a token or URL password inside a longer value
    (``--hub-token hf_...``) is hidden here, the rest of the value kept."""
    from sleuth.secrets import Secrets

    env = inner.get("env")
    if isinstance(env, dict) and all(isinstance(v, str) for v in env.values()):
        inner["env"] = Secrets.of(env).public_env(env)
    return inner


def workload_python(path: str | None = None) -> tuple[str, str] | None:
    """``(path, name)`` of the first ``python``, else ``python3``, on ``path`` (default ``$PATH``).

    That is the interpreter a workload started as ``python ...`` runs (the runner looks commands up
    the same way), not necessarily sleuth's own; ``None`` when neither name is on PATH.
    """
    search = os.environ.get("PATH", os.defpath) if path is None else path
    for name in ("python", "python3"):
        found = shutil.which(name, path=search)
        if found is not None:
            return found, name
    return None


def collect(
    *,
    deep: bool = False,
    packages: Iterable[str] = (),
    python: str | None = None,
    chosen_by: str | None = None,
) -> dict[str, Any]:
    """Snapshot this machine plus the interpreter ``python`` (default: this one); see the module doc."""
    packages = tuple(packages)
    if python is None:
        inner = _public(_probe.probe(deep=deep, packages=packages))
    else:
        inner = probe_via([python], deep=deep, packages=packages)
    snap: dict[str, Any] = {
        "schema": SCHEMA,
        "taken_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "os": _os_info(),
        "cpu": _cpu_info(),
        "memory": _memory_info(),
        "gpu": {"nvidia_smi": _nvidia_smi(), "rocm_smi": _rocm_smi()},
    }
    snap.update(inner)
    if chosen_by is not None:
        snap["interpreter"] = {
            "path": python or inner["python"]["executable"],
            "version": inner["python"]["version"],
            "chosen_by": chosen_by,
        }
    return snap


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Leaf ``(path, value)`` pairs: dict keys joined by ``.``, list items as ``[i]``."""
    if isinstance(data, dict) and data:
        for key in sorted(data, key=str):
            yield from flatten(data[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list) and data:
        for i, item in enumerate(data):
            yield from flatten(item, f"{prefix}[{i}]")
    else:
        yield prefix, data


def diff(a: dict[str, Any], b: dict[str, Any], *, ignore: Iterable[str] = VOLATILE) -> list[Change]:
    """What differs from snapshot ``a`` to ``b``, by flattened key path, sorted by path."""
    skip = set(ignore)
    fa = {k: v for k, v in flatten(a) if k.split(".")[0] not in skip and k not in skip}
    fb = {k: v for k, v in flatten(b) if k.split(".")[0] not in skip and k not in skip}
    # an empty dict or list on one side whose keys the other side has ({} vs {"NCCL_X": ...}) is
    # said by those keys alone: "- env: {}" read as if the whole section had been removed
    for mine, other in ((fa, fb), (fb, fa)):
        for path in [p for p, v in mine.items() if v in ({}, []) and p not in other]:
            if any(k.startswith((f"{path}.", f"{path}[")) for k in other):
                del mine[path]
    changes: list[Change] = []
    for path in sorted(fa.keys() | fb.keys()):
        if path not in fb:
            changes.append(Change(path, ChangeKind.REMOVED, old=fa[path]))
        elif path not in fa:
            changes.append(Change(path, ChangeKind.ADDED, new=fb[path]))
        elif fa[path] != fb[path]:
            changes.append(Change(path, ChangeKind.CHANGED, old=fa[path], new=fb[path]))
    return changes


def public_changes(changes: Iterable[Change]) -> list[Change]:
    """``changes`` with each secret value hidden by :mod:`sleuth.secrets` (the key's last name says
    secret, the value looks like a token, or a token or URL password inside it)."""
    from sleuth.secrets import REDACTED, is_secret, scrub_text

    def hide(name: str, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return REDACTED if is_secret(name, value) else scrub_text(value)

    out = []
    for c in changes:
        name = c.path.rsplit(".", 1)[-1].split("[", 1)[0]
        out.append(Change(c.path, c.kind, hide(name, c.old), hide(name, c.new)))
    return out
