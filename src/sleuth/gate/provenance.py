"""Where a run was measured: host, CPU, GPU/driver/CUDA, CI runner; and CI defaults for run ids.

Recorded with every run so histories can be stratified by hardware later.  Only named fields are
kept (never the whole environment), and everything goes through :mod:`sleuth.secrets` first, so
a token that leaked into a runner name or a URL does not reach the history.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["CI_VARS", "ci_defaults", "collect", "public"]

#: CI variables kept as the run's ``runner`` provenance (GitHub Actions, GitLab CI, Buildkite, Jenkins)
CI_VARS = (
    "GITHUB_REPOSITORY",
    "GITHUB_WORKFLOW",
    "GITHUB_JOB",
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
    "GITHUB_EVENT_NAME",
    "GITHUB_REF_NAME",
    "GITHUB_SHA",
    "RUNNER_NAME",
    "RUNNER_OS",
    "RUNNER_ARCH",
    "RUNNER_ENVIRONMENT",
    "CI_JOB_ID",
    "CI_PIPELINE_ID",
    "CI_RUNNER_DESCRIPTION",
    "BUILDKITE_BUILD_NUMBER",
    "BUILDKITE_AGENT_NAME",
    "NODE_NAME",
)


def ci_defaults(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """``run_id``, ``commit`` and ``branch`` as the CI environment tells them (GitHub Actions, GitLab)."""
    env = os.environ if environ is None else environ
    run_id = env.get("GITHUB_RUN_ID") or env.get("CI_PIPELINE_ID") or env.get("BUILDKITE_BUILD_NUMBER")
    attempt = env.get("GITHUB_RUN_ATTEMPT")
    if run_id and attempt and attempt != "1":
        run_id = f"{run_id}-{attempt}"
    return {
        "run_id": run_id or None,
        "commit": env.get("GITHUB_SHA") or env.get("CI_COMMIT_SHA") or None,
        "branch": env.get("GITHUB_HEAD_REF")
        or env.get("GITHUB_REF_NAME")
        or env.get("CI_COMMIT_REF_NAME")
        or None,
    }


def collect(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """This machine's provenance (host, CPU, memory, GPU tools, Python, CI runner), scrubbed."""
    from sleuth import __version__, snapshot
    from sleuth.secrets import Secrets

    env = dict(os.environ if environ is None else environ)
    snap = snapshot.collect()
    gpu: dict[str, Any] = {}
    for tool, info in snap.get("gpu", {}).items():
        if info.get("present"):
            gpu[tool] = {
                k: info.get(k) for k in ("driver_version", "cuda_version", "gpus", "error") if k in info
            }
    prov = {
        "host": {k: snap["os"].get(k) for k in ("hostname", "system", "kernel", "machine", "distro")},
        "cpu": snap.get("cpu", {}),
        "memory_bytes": snap.get("memory", {}).get("total_bytes"),
        "gpu": gpu,
        "python": snap.get("python", {}).get("version"),
        "runner": {k: env[k] for k in CI_VARS if env.get(k)},
        "sleuth": __version__,
        "taken_at": snap.get("taken_at"),
    }
    scrubbed: dict[str, Any] = Secrets.of(env).scrub(prov)
    return scrubbed


def public(obj: Any, key: str = "") -> Any:
    """A copy of JSON-like ``obj`` with secrets hidden by :mod:`sleuth.secrets`' rule: a string whose
    key names a secret or that looks like a token whole, and tokens or URL passwords inside any
    string.  For what was not collected here (an artifact's metadata, written by hand or by an
    older producing job) before it reaches the history."""
    from sleuth.secrets import REDACTED, is_secret, scrub_text

    if isinstance(obj, str):
        return REDACTED if is_secret(key, obj) else scrub_text(obj)
    if isinstance(obj, Mapping):
        return {k: public(v, str(k)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [public(v, key) for v in obj]
    return obj
