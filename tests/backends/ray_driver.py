"""Runs a scenario through ``RayBackend`` in an interpreter that has ray (tests/backends/test_ray.py).

Reads a JSON scenario from stdin, prints one JSON document on stdout:

* ``jobs``, ``options``: the backend's arguments;
* ``trials``: ``[{"argv": [...], "env": {...}, "timeout": s, "dir": path}]``;
* ``engine``: a run dir path: run the trials through ``sleuth.engine.Engine`` (result.json written)
  and report outcomes; else through ``submit()`` and report the results;
* ``cancel_when``: files to wait for, then ``cancel_all()`` (and report what the futures did).

The test process (without ray) checks the files and the processes the trials left.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

from sleuth.errors import SleuthError
from sleuth.model import TrialSpec


def _spec(t: dict[str, Any]) -> TrialSpec:
    return TrialSpec(argv=tuple(t["argv"]), env=t["env"], timeout_s=t.get("timeout"), kill_grace_s=1.0)


def main() -> int:
    sc = json.load(sys.stdin)
    from sleuth.backends.ray import RayBackend

    try:
        backend = RayBackend(sc["jobs"], options=sc.get("options", {}))
    except SleuthError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc), "exit": int(exc.exit_code)}))
        return 0
    out: dict[str, Any] = {}
    try:
        if sc.get("engine"):
            out["trials"] = _engine(backend, sc)
        else:
            out["results"] = _submit(backend, sc)
    finally:
        backend.close()
    import ray

    out["connected_after_close"] = ray.is_initialized()
    print(json.dumps(out))
    return 0


def _engine(backend: Any, sc: dict[str, Any]) -> list[dict[str, Any]]:
    from sleuth.engine import Engine
    from sleuth.journal import RunDir
    from sleuth.oracle import OracleConfig, build_oracle

    run_dir = RunDir.create(Path(sc["engine"]), "run", "ray")
    trials = []
    with Engine(backend, build_oracle(OracleConfig()), run_dir) as engine:
        for i, t in enumerate(sc["trials"]):
            engine.submit(_spec(t), f"t{i}")
        for trial in engine.completed():
            trials.append({"id": trial.result.trial_dir.name, "outcome": trial.outcome.value,
                           "reason": trial.reason, "dir": str(trial.result.trial_dir)})  # fmt: skip
    run_dir.close()
    return trials


def _submit(backend: Any, sc: dict[str, Any]) -> list[dict[str, Any]]:
    futs = [backend.submit(_spec(t), Path(t["dir"])) for t in sc["trials"]]
    if sc.get("cancel_when"):
        deadline = time.monotonic() + 60
        while not all(Path(p).exists() for p in sc["cancel_when"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        backend.cancel_all()
    results = []
    for f in futs:
        try:
            r = f.result(timeout=120)
        except CancelledError:
            results.append({"cancelled": True})
            continue
        except SleuthError as exc:
            results.append({"exception": type(exc).__name__, "message": str(exc)})
            continue
        results.append({"rc": r.rc, "signal": r.signal, "timed_out": r.timed_out, "device": r.device,
                        "host": r.host, "error": r.error, "stdout": r.stdout_tail, "stderr": r.stderr_tail,
                        "stdout_path": str(r.stdout_path)})  # fmt: skip
    return results


if __name__ == "__main__":
    sys.exit(main())
