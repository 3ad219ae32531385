"""The in-interpreter half of an environment snapshot; stdlib only, runnable as a script.

``python /path/to/_probe.py [--deep] [--package NAME]...`` prints one JSON document (one line) on
stdout describing the interpreter that runs it: ``python`` (version, executable, implementation,
prefixes), ``packages`` (name -> version, ``None`` when absent), ``env`` (selected variables,
secrets redacted) and, with ``--deep``, ``torch`` and ``jax`` build information.  Because it
imports nothing from sleuth and spawns nothing, ``sleuth.snapshot`` can run it with any Python
(a venv's interpreter) through the runner, or call :func:`probe` in-process.
"""

from __future__ import annotations

import os
import sys

# run as a script, this file's directory (sleuth's package, with ``bisect/`` and friends) is
# sys.path[0] and would shadow the standard library: drop it before importing anything else
if __name__ == "__main__":
    _here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:] = [p for p in sys.path if not p or os.path.realpath(p) != _here]

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["DEFAULT_PACKAGES", "ENV_PREFIXES", "REDACTED", "TF_PREFIXES", "probe", "redact_env"]

#: packages always looked up (absent ones are recorded as ``None``)
DEFAULT_PACKAGES = (
    "torch",
    "jax",
    "jaxlib",
    "numpy",
    "triton",
    "transformer-engine",
    "nvidia-nccl-cu11",
    "nvidia-nccl-cu12",
    "nvidia-nccl-cu13",
)
#: installed distributions whose name matches this are recorded too (nccl/rccl wheels, GPU plugins)
_EXTRA_DIST_RE = re.compile(r"nccl|rccl|rocm|transformer[-_.]engine|jax[-_.](cuda|rocm)|pytorch[-_.]triton")
#: TensorFlow's variables, by family (not a bare ``TF_``: Terraform's TF_VAR_*, TF_LOG, TF_CLI_ARGS,
#: TF_TOKEN_*, TF_DATA_DIR, TF_WORKSPACE are configuration of another tool, and TF_TOKEN_* a secret).
#: TF_CPP_MIN_LOG_LEVEL/TF_CPP_MAX_VLOG_LEVEL/TF_CPP_VMODULE (logging), TF_ENABLE_ONEDNN_OPTS,
#: TF_FORCE_GPU_ALLOW_GROWTH, TF_GPU_ALLOCATOR/TF_GPU_THREAD_MODE/TF_GPU_THREAD_COUNT, TF_XLA_FLAGS,
#: TF_CUDNN_DETERMINISTIC/TF_CUDNN_USE_AUTOTUNE, TF_NUM_INTEROP_THREADS/TF_NUM_INTRAOP_THREADS,
#: TF_USE_LEGACY_KERAS, TF_DETERMINISTIC_OPS, TF_AUTOTUNE_THRESHOLD, TF_DISABLE_MKL, TF2_BEHAVIOR ...
TF_PREFIXES = (
    *("TF_CPP_", "TF_ENABLE_", "TF_FORCE_", "TF_GPU_", "TF_XLA_", "TF_CUDNN_", "TF_CUDA_", "TF_ROCM_"),
    *("TF_NUM_", "TF_USE_", "TF_ONEDNN_", "TF_DISABLE_", "TF_AUTOTUNE", "TF_AUTO_MIXED_PRECISION"),
    *("TF_DETERMINISTIC_OPS", "TF_KERAS", "TF_DUMP_GRAPH_PREFIX", "TF2_BEHAVIOR"),
)
#: variables recorded in a snapshot: those starting with one of these
ENV_PREFIXES = (
    "NCCL_",
    "RCCL_",
    "CUDA_",
    "HIP_",
    "HSA_",
    "ROCR_",
    "TORCH_",
    "PYTORCH_",
    "XLA_",
    "JAX_",
    *TF_PREFIXES,
    "OMP_",
)
REDACTED = "<redacted>"
#: a variable is secret when one word of its name (words split at ``_``, ``-``, ``.``) is, or ends
#: with, one of these: ``HF_TOKEN``, ``OPENAI_API_KEY``, ``NPM_AUTHTOKEN``, ``DB_PASSWD``; not
#: ``TOKENIZERS_PARALLELISM`` or ``KEYBOARD`` (the word only starts with one)
_SECRET_WORDS = (
    "TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD", "PASS", "KEY", "KEYS",
    "CREDENTIAL", "CREDENTIALS", "CREDS", "AUTH", "PAT", "APIKEY", "PRIVATE",
)  # fmt: skip
_NAME_WORDS_RE = re.compile(r"[-_.]+")


def secret_name(name: str) -> bool:
    """True when a variable's name says its value is secret (see ``_SECRET_WORDS``)."""
    words = [w for w in _NAME_WORDS_RE.split(name.upper()) if w]
    return any(w == s or (w.endswith(s) and len(s) >= 4) for w in words for s in _SECRET_WORDS)


#: the scheme is bounded (see sleuth.secrets): unbounded, a long run of letters took quadratic time
_URL_CREDENTIALS_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{0,31}://)[^/@\s:]+:[^/@\s]*@")
_TOKEN_PREFIX_RE = re.compile(
    r"^(ghp_|gho_|ghs_|github_pat_|glpat-|hf_|sk-|xox[abprs]-|AKIA|ASIA)[A-Za-z0-9_-]{8,}"
)
_TOKEN_LIKE_RE = re.compile(r"^[A-Za-z0-9_+/=.-]{32,}$")
#: device UUIDs (``GPU-8f3a...``, ``MIG-...``) are long but not secret
_UUID_LIKE_RE = re.compile(r"^([A-Za-z]+-)?[0-9a-fA-F-]+$")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _looks_like_token(value: str) -> bool:
    if _TOKEN_PREFIX_RE.match(value):
        return True
    # long, unbroken, mixed-case alphanumerics: an API key; hex UUIDs and paths do not qualify
    return (
        bool(_TOKEN_LIKE_RE.match(value))
        and not value.startswith(("/", ".", "~"))
        and not _UUID_LIKE_RE.match(value)
        and any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    )


def redact_value(name: str, value: str) -> str:
    """``value`` with secrets hidden: all of it for secret names or token-like values, else URL passwords."""
    if secret_name(name) or _looks_like_token(value):
        return REDACTED
    return _URL_CREDENTIALS_RE.sub(lambda m: f"{m['scheme']}{REDACTED}@", value)


def redact_env(env: Mapping[str, str], prefixes: Iterable[str] = ENV_PREFIXES) -> dict[str, str]:
    """The variables of ``env`` starting with one of ``prefixes``, sorted, with secrets redacted."""
    pre = tuple(prefixes)
    return {k: redact_value(k, v) for k, v in sorted(env.items()) if k.startswith(pre)}


def _installed() -> dict[str, str]:
    """Normalized name -> metadata directory of every distribution on ``sys.path``, first one wins.

    The names come from the directory names (``name-version.dist-info``, ``name.egg-info``), so
    nothing is parsed here; ``importlib.metadata.distributions()`` reads every METADATA file (tens
    of milliseconds per snapshot, at the start of every run).  Same search order as
    ``importlib.metadata.version``: path entries in order, the first distribution of a name wins.
    """
    found: dict[str, str] = {}
    for entry in sys.path:
        base = entry or "."
        if base.endswith(".egg") and os.path.isdir(f"{base}/EGG-INFO"):  # an unzipped egg on the path
            found.setdefault(_normalize(os.path.basename(base).split("-", 1)[0]), f"{base}/EGG-INFO")
            continue
        try:
            names = os.listdir(base)
        except OSError:  # a zip, a missing or unreadable entry
            continue
        for fn in sorted(names):
            if fn.endswith(".dist-info"):
                stem = fn[: -len(".dist-info")]
            elif fn.endswith(".egg-info"):
                stem = fn[: -len(".egg-info")]
            else:
                continue
            found.setdefault(_normalize(stem.split("-", 1)[0]), f"{base}/{fn}")
    return found


def _version(meta_dir: str) -> str | None:
    """The ``Version:`` header of a distribution's METADATA (PKG-INFO for an egg); None if unreadable."""
    for fn in ("METADATA", "PKG-INFO"):
        path = meta_dir if os.path.isfile(meta_dir) else f"{meta_dir}/{fn}"  # an egg-info may be a file
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.startswith("Version:"):
                        return line.split(":", 1)[1].strip()
                    if not line.strip():  # the headers end at the first blank line
                        break
        except OSError:
            continue
    return None


def _packages(extra: Iterable[str]) -> dict[str, str | None]:
    wanted = {_normalize(name) for name in (*DEFAULT_PACKAGES, *extra)}
    installed = _installed()
    wanted.update(key for key in installed if _EXTRA_DIST_RE.search(key))
    found: dict[str, str | None] = {}
    for key in sorted(wanted):
        meta_dir = installed.get(key)
        found[key] = _version(meta_dir) if meta_dir is not None else None
    return found


def _python() -> dict[str, Any]:
    import platform

    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "in_venv": sys.prefix != sys.base_prefix,
    }


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _torch() -> dict[str, Any]:
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]
    except Exception as exc:  # a broken install is information, not a crash
        return {"importable": False, "error": _error(exc)}
    info: dict[str, Any] = {"importable": True, "version": str(torch.__version__)}
    version = getattr(torch, "version", None)
    info["cuda"] = getattr(version, "cuda", None)
    info["hip"] = getattr(version, "hip", None)
    info["git_version"] = getattr(version, "git_version", None)
    try:
        info["cudnn"] = torch.backends.cudnn.version()
    except Exception as exc:
        info["cudnn"] = _error(exc)
    try:
        info["cuda_available"] = bool(torch.cuda.is_available())
        info["device_count"] = int(torch.cuda.device_count())
        info["devices"] = [str(torch.cuda.get_device_name(i)) for i in range(info["device_count"])]
    except Exception as exc:
        info["cuda_error"] = _error(exc)
    try:
        nccl = torch.cuda.nccl.version()
        info["nccl"] = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl)
    except Exception:
        info["nccl"] = None
    return info


def _jax() -> dict[str, Any]:
    try:
        import jax  # type: ignore[import-not-found, unused-ignore]
    except Exception as exc:
        return {"importable": False, "error": _error(exc)}
    info: dict[str, Any] = {"importable": True, "version": str(jax.__version__)}
    try:
        info["backend"] = str(jax.default_backend())
        info["devices"] = [str(d) for d in jax.devices()]
    except Exception as exc:
        info["backend_error"] = _error(exc)
    return info


def probe(*, deep: bool = False, packages: Iterable[str] = ()) -> dict[str, Any]:
    """Describe this interpreter: python, packages, redacted env vars and, when ``deep``, torch/jax."""
    result: dict[str, Any] = {
        "python": _python(),
        "packages": _packages(packages),
        "env": redact_env(os.environ),
    }
    if deep:
        # only import what is installed: a failed import of an absent package is noise
        result["torch"] = _torch() if result["packages"].get("torch") else {"importable": False}
        jax_present = result["packages"].get("jax")
        result["jax"] = _jax() if jax_present else {"importable": False}
    return result


def _main(argv: list[str]) -> int:
    deep = False
    packages: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--deep":
            deep = True
        elif arg == "--package":
            packages.append(next(it, ""))
        elif arg.startswith("--package="):
            packages.append(arg.split("=", 1)[1])
        else:
            sys.stderr.write(f"_probe.py: unknown argument {arg!r}\n")
            return 2
    # deep imports (torch, jax) may write to fd 1; keep stdout for the one JSON line
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        data = probe(deep=deep, packages=[p for p in packages if p])
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
