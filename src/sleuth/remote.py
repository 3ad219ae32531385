"""One trial on a cluster node: ``python -m sleuth.runner SPEC TRIAL_DIR`` (DESIGN §2) and its files.

A cluster backend (``sleuth.backends.slurm``) writes the trial's :class:`~sleuth.model.TrialSpec` as a
JSON *spec file* (:func:`write_spec`, mode 0600: the environment may hold secrets) into the trial's
client dir (:data:`sleuth.runner.CLIENT_DIR`, on a file system the node shares) and starts this entry
there.  :func:`main`:

* reads the spec and deletes the file at once (before anything else can fail);
* records the Slurm step it runs in (``step``: ``JOB.STEP``) for :func:`cancel`;
* runs :func:`sleuth.runner.run_trial` with ``CUDA_VISIBLE_DEVICES`` as the device (what the cluster
  gave this task, or None), so the timeout, the kill sequence, the output files and container hooks are
  the runner's, exactly as on the local backend;
* writes the result (``result.json`` in the client dir, atomically) for the backend to read back
  (:func:`read_result`).

Its own failures (a spec it cannot read, from another sleuth version: ``SPEC_VERSION``) end as a
result whose ``error`` says so in one line (exit 2), never as a hang.  A SIGTERM/SIGINT (``scancel``,
srun forwarding a cancel) stops the trial through the runner's kill sequence and exits 143/130.

Only the container hook of docker/podman (:class:`~sleuth.environments.container.ContainerRun`)
travels in a spec; any other hook is refused (:func:`spec_to_json` raises ``UsageError``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sleuth.errors import UsageError
from sleuth.journal import atomic_write_text
from sleuth.model import MetricSpec, SeriesSummary, Stream, TrialResult, TrialSpec

__all__ = [
    "RESULT_FILE",
    "SPEC_FILE",
    "SPEC_VERSION",
    "STEP_FILE",
    "cancel",
    "main",
    "read_result",
    "result_to_json",
    "spec_from_json",
    "spec_to_json",
    "write_spec",
]

#: the version of the spec and result files; a node running another sleuth refuses them in one line
SPEC_VERSION = 1
#: names inside the client dir
SPEC_FILE = "spec.json"
RESULT_FILE = "result.json"
STEP_FILE = "step"


def _hook_to_json(spec: TrialSpec) -> dict[str, Any] | None:
    hook = spec.hook
    if hook is None:
        return None
    from sleuth.environments.container import ContainerRun

    if not isinstance(hook, ContainerRun):
        raise UsageError(
            f"a trial with a {type(hook).__name__} hook cannot run on a cluster node",
            hint="use --backend local for this environment",
        )
    return {
        "kind": "container",
        "runtime": hook.runtime.value,
        "executable": hook.executable,
        "output_dir": hook.output_dir,
        "nvidia": hook.nvidia,
        "amd": hook.amd,
    }


def spec_to_json(spec: TrialSpec) -> dict[str, Any]:
    """The spec as JSON-able data (``UsageError`` for a hook that cannot travel)."""
    return {
        "sleuth_spec": SPEC_VERSION,
        "argv": list(spec.argv),
        "env": dict(spec.env),
        "cwd": spec.cwd,
        "timeout_s": spec.timeout_s,
        "kill_grace_s": spec.kill_grace_s,
        "label": spec.label,
        "metrics": [
            {
                "name": m.name,
                "pattern": m.pattern.pattern,
                "flags": int(m.pattern.flags),
                "series": m.series,
                "stream": m.stream.value,
            }
            for m in spec.metrics
        ],
        "hook": _hook_to_json(spec),
    }


def spec_from_json(data: Any) -> TrialSpec:
    """The spec of :func:`spec_to_json`; ``ValueError`` (one line) for anything else."""
    if not isinstance(data, dict) or data.get("sleuth_spec") != SPEC_VERSION:
        found = data.get("sleuth_spec") if isinstance(data, dict) else None
        raise ValueError(
            f"spec version {found!r}, this sleuth reads version {SPEC_VERSION}: "
            "install the same sleuth on the nodes as on the host"
        )
    try:
        hook = None
        h = data["hook"]
        if h is not None:
            from sleuth.environments.container import ContainerRun, Runtime

            hook = ContainerRun(
                runtime=Runtime(h["runtime"]),
                executable=str(h["executable"]),
                output_dir=h["output_dir"],
                nvidia=bool(h["nvidia"]),
                amd=bool(h["amd"]),
            )
        return TrialSpec(
            argv=tuple(str(a) for a in data["argv"]),
            env={str(k): str(v) for k, v in data["env"].items()},
            cwd=data["cwd"],
            timeout_s=None if data["timeout_s"] is None else float(data["timeout_s"]),
            kill_grace_s=float(data["kill_grace_s"]),
            label=str(data["label"]),
            metrics=tuple(
                MetricSpec(
                    name=m["name"],
                    pattern=re.compile(m["pattern"], m["flags"]),
                    series=m["series"],
                    stream=Stream(m["stream"]),
                )
                for m in data["metrics"]
            ),
            hook=hook,
        )
    except (KeyError, TypeError, ValueError, AttributeError, re.error) as exc:
        raise ValueError(f"malformed spec: {type(exc).__name__}: {exc}") from None


def write_spec(path: Path, spec: TrialSpec) -> None:
    """Write the spec file, readable by its owner only, whole or not at all."""
    text = json.dumps(spec_to_json(spec))
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _number(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)


def result_to_json(result: TrialResult) -> dict[str, Any]:
    """What the backend needs of the node's result (the spec it ran is only its argv)."""
    return {
        "sleuth_result": SPEC_VERSION,
        "argv": list(result.spec.argv),
        "rc": result.rc,
        "signal": result.signal,
        "timed_out": result.timed_out,
        "started_at": result.started_at,
        "wall_s": result.wall_s,
        "stdout_tail": result.stdout_tail,
        "stderr_tail": result.stderr_tail,
        "metrics": {
            k: [_number(x) for x in v] if isinstance(v, tuple) else _number(v)
            for k, v in result.metrics.items()
        },
        "series": {k: _series_to_json(v) for k, v in result.series.items()},
        "host": result.host,
        "error": result.error,
        "device": result.device,
    }


def _series_to_json(s: SeriesSummary) -> dict[str, Any]:
    return {"n": s.n, "kept": s.kept, "first": _number(s.first), "last": _number(s.last), "min": s.min,
            "max": s.max, "mean": s.mean, "nonfinite": s.nonfinite, "file": s.file}  # fmt: skip


def read_result(path: Path, spec: TrialSpec, trial_dir: Path) -> TrialResult | str:
    """The node's result as a ``TrialResult`` of ``spec`` (the argv the node ran), or why not (a line)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "the node wrote no result"
    except (OSError, ValueError) as exc:
        return f"unreadable result {path}: {exc}"
    if not isinstance(data, dict) or data.get("sleuth_result") != SPEC_VERSION:
        return f"{path}: not a version {SPEC_VERSION} result (is the same sleuth installed on the nodes?)"
    try:
        metrics = {
            str(k): tuple(float(x) for x in v) if isinstance(v, list) else float(v)
            for k, v in data["metrics"].items()
        }
        series = {str(k): SeriesSummary(**{**v, "first": float(v["first"]), "last": float(v["last"])})
                  for k, v in data["series"].items()}  # fmt: skip
        return TrialResult(
            spec=spec.with_argv(tuple(str(a) for a in data["argv"])) if data["argv"] else spec,
            trial_dir=trial_dir,
            rc=data["rc"],
            signal=data["signal"],
            timed_out=bool(data["timed_out"]),
            started_at=float(data["started_at"]),
            wall_s=float(data["wall_s"]),
            stdout_path=trial_dir / "stdout",
            stderr_path=trial_dir / "stderr",
            stdout_tail=str(data["stdout_tail"]),
            stderr_tail=str(data["stderr_tail"]),
            metrics=metrics,
            series=series,
            host=str(data["host"]),
            error=data["error"],
            device=data["device"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed result {path}: {type(exc).__name__}: {exc}"


def _error_result(client_dir: str, error: str) -> None:
    """The node's own failure as a result the backend reads (a trial that never ran), and on stderr,
    which srun relays, for when the result cannot be written (a client dir the node does not see)."""
    from sleuth.runner import _HOST

    print(error, file=sys.stderr)
    data = {"sleuth_result": SPEC_VERSION, "argv": [], "rc": None, "signal": None, "timed_out": False,
            "started_at": 0.0, "wall_s": 0.0, "stdout_tail": "", "stderr_tail": "", "metrics": {},
            "series": {}, "host": _HOST, "error": f"node: {error}", "device": None}  # fmt: skip
    with contextlib.suppress(OSError):
        atomic_write_text(f"{client_dir}/{RESULT_FILE}", json.dumps(data) + "\n")


def _stop_on_signal(signum: int, _frame: object) -> None:
    for s in (signal.SIGTERM, signal.SIGINT):  # once: the runner's kill sequence must not be cut short
        signal.signal(s, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def main(argv: Sequence[str]) -> int:
    """``SPEC TRIAL_DIR``: run the trial (see above); ``--cancel CLIENT_DIR [NAME]``: :func:`cancel`."""
    if len(argv) >= 2 and argv[0] == "--cancel":
        return cancel(Path(argv[1]), argv[2] if len(argv) > 2 else None)
    if len(argv) != 2:
        print("usage: python -m sleuth.runner SPEC_FILE TRIAL_DIR", file=sys.stderr)
        return 2
    spec_path, trial_dir = argv[0], Path(argv[1])
    client_dir = os.path.dirname(os.path.abspath(spec_path))
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)
    try:
        with open(spec_path, encoding="utf-8") as fh:
            text = fh.read()
        os.unlink(spec_path)
    except OSError as exc:
        _error_result(
            client_dir,
            f"cannot read the spec file {spec_path}: {exc.strerror or exc} "
            "(the run dir must be on a file system the nodes share)",
        )
        return 2
    try:
        spec = spec_from_json(json.loads(text))
    except ValueError as exc:
        _error_result(client_dir, str(exc))
        return 2
    del text
    job, step = os.environ.get("SLURM_JOB_ID"), os.environ.get("SLURM_STEP_ID")
    if job:
        atomic_write_text(f"{client_dir}/{STEP_FILE}", f"{job}.{step}\n" if step else f"{job}\n")
    from sleuth import runner

    result = runner.run_trial(spec, trial_dir, device=os.environ.get("CUDA_VISIBLE_DEVICES") or None)
    atomic_write_text(f"{client_dir}/{RESULT_FILE}", json.dumps(result_to_json(result)) + "\n")
    return 0


def cancel(client_dir: Path, job_name: str | None, env: Mapping[str, str] | None = None) -> int:
    """Cancel what a trial's client dir says runs on the cluster: the job named ``job_name`` (a job of
    its own), else the step the node recorded; removes a spec file no node has read.  Used as the
    cleanup command of the client run (the backend's cancel, and ``--resume`` after a kill -9)."""
    from sleuth import runner

    with contextlib.suppress(OSError):
        os.unlink(client_dir / SPEC_FILE)  # its environment may hold secrets
    if job_name:
        argv = ["scancel", "--quiet", f"--name={job_name}"]
    else:
        try:
            step = (client_dir / STEP_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            return 0  # not started on a node: srun, stopped, cancels its own pending step
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", step):
            return 0
        argv = ["scancel", "--quiet", step]
    try:
        res = runner.run_tool(argv, env=env, timeout_s=30)
    except Exception:  # a cleanup never raises: what it could do, it did
        return 1
    return 0 if res.ok else 1
