"""Virtual environments built by uv from pins, cached by a hash of the pins.

``VenvEnvironment(pins=("numpy==2.1.0",))`` builds ``<cache>/venvs/<hash>`` once (under a file
lock, so parallel sleuth processes build it once), marks it complete, and reuses it on every later
call.  A failed build leaves nothing behind.  Trials run with the venv's ``bin`` first on PATH and
``VIRTUAL_ENV`` set, so ``python`` and console scripts resolve inside it.  The marker records what
was installed (``uv pip freeze``), so that two venvs can be compared (:attr:`PreparedVenv.packages`).

``--python X.Y`` is found the way users expect (:func:`find_python`): uv's discovery, then
``pythonX.Y`` on PATH, then pyenv's versions directory; each candidate is run once to check that
it starts and is X.Y (a pyenv shim for a version that is not installed does not count).  An
``index_url`` (``--index-url``, ``$UV_DEFAULT_INDEX``, ``$UV_INDEX_URL``, ``$PIP_INDEX_URL``) is
passed to uv (as ``$UV_DEFAULT_INDEX``: credentials in it stay out of the process table) and is
part of the cache key; so are ``extra_index_urls`` when given (as ``$UV_INDEX``, in that order,
instead of the caller's ``$UV_INDEX``/``$UV_EXTRA_INDEX_URL``; None: uv's own configuration).
A pin that carries a secret by :mod:`sleuth.secrets`' rule (a private wheel's URL with credentials,
a token) reaches uv off its command line too: a line of a requirements file of mode 0600
(``--requirements``), removed once uv is done; the other pins stay on the command line as given.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.environments import cache_dir
from sleuth.errors import EnvironmentBuildError, InfrastructureError, UsageError
from sleuth.model import TrialSpec
from sleuth.runner import ToolResult, run_tool
from sleuth.secrets import scrub_text

__all__ = ["PreparedVenv", "VenvEnvironment", "find_python", "python_version", "uv_bin"]

_MARKER = ".sleuth-venv.json"

log = logging.getLogger(__name__)


def uv_bin() -> str:
    """The uv executable shipped by the ``uv`` package (a dependency), else ``uv`` on PATH."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise EnvironmentBuildError("uv not found", hint="pip install uv") from None
        return found


def _uv_said(res: ToolResult, limit: int = 500) -> str:
    """uv's error in one line: its last ``error:`` line with the ``cause:``/``Caused by:`` lines under
    it; not the echoed input and the ``^^^`` under it that end a parse error (``six=1.16.0``).  Over
    ``limit`` the beginning is cut, not the innermost cause (a long index URL, printed twice, once left
    ``invalid peer certificate: `` with nothing after it)."""
    lines = [ln.strip() for ln in res.stderr.splitlines() if ln.strip()]
    at = [i for i, ln in enumerate(lines) if ln.lower().startswith("error:")]
    if not at:
        return res.brief()
    parts = [lines[at[-1]].partition(":")[2].strip()]
    parts += [
        ln.partition(":")[2].strip()
        for ln in lines[at[-1] + 1 :]
        if ln.lower().startswith(("cause:", "caused by:"))
    ]
    said = ": ".join(p for p in parts if p)
    if len(said) <= limit:
        return said
    last = [p for p in parts if p][-1][: limit // 2]
    return said[: limit - len(last) - 5] + " ... " + last


#: uv's words for a failure of the network or of the index's server, not of the release: a
#: ``does not install`` SKIP would be journaled for good, an ERROR is tested again on resume
_NETWORK = re.compile(
    r"error sending request|HTTP status server error|429 Too Many Requests|error decoding response body"
    r"|connection (?:reset|closed)|operation timed out|request or response body error|dns error",
    re.IGNORECASE,
)
_TLS = re.compile(
    r"invalid peer certificate|certificate verify failed|UnknownIssuer|CERTIFICATE_VERIFY", re.I
)
_URL = re.compile(r"https?://[^\s)`'\"]+")


def _not_installed(pins: tuple[str, ...], inst: ToolResult, env: dict[str, str]) -> InfrastructureError:
    """Why ``uv pip install`` failed: the network, TLS, offline or a signal (an
    ``InfrastructureError``: resume tries again), else the release itself (``EnvironmentBuildError``)."""
    what = f"venv {' '.join(pins)}"
    if inst.rc < 0 and not inst.timed_out:  # the OOM killer, an admin: not the pins' fault
        return InfrastructureError(
            f"{what}: uv pip install was killed by signal {-inst.rc}",
            hint="out of memory? look at dmesg; try again",
        )
    said = _uv_said(inst)
    if _TLS.search(inst.stderr):
        from urllib.parse import urlsplit

        hosts = [urlsplit(u).hostname for u in _URL.findall(inst.stderr)]
        host = next((h for h in hosts if h), "the index")
        detail = said if not said.rstrip().endswith(":") else said + " (uv named no reason)"
        return InfrastructureError(
            f"{what}: uv could not verify the TLS certificate of {host}: {detail}",
            hint="a private CA or a proxy that inspects TLS? export SSL_CERT_FILE=<its CA bundle> "
            "or UV_NATIVE_TLS=1 (the system's certificate store), then resume",
        )
    if _NETWORK.search(inst.stderr):  # refused, timed out, DNS, a 5xx or 429 from the index
        return InfrastructureError(
            f"{what}: uv could not reach the index: {said}",
            hint="check the network and the index URL, then resume",
        )
    if "network was disabled" in inst.stderr:  # every version would fail so
        why = "$UV_OFFLINE is set" if env.get("UV_OFFLINE") else "uv is offline"
        return InfrastructureError(
            f"{what}: {why} and uv's cache does not hold it",
            hint="unset UV_OFFLINE (or uv's offline setting), or install it once online",
        )
    return EnvironmentBuildError(f"{what}: uv pip install failed: {said}")


def python_version(python: str) -> tuple[int, int] | None:
    """``(major, minor)`` of an interpreter that starts, else None (a broken shim, not a python)."""
    try:
        res = run_tool([python, "-c", "import sys; print(*sys.version_info[:2])"], timeout_s=30)
    except InfrastructureError:  # does not start: not an interpreter
        return None
    parts = res.stdout.split() if res.ok else []
    return (int(parts[0]), int(parts[1])) if len(parts) == 2 and all(p.isdigit() for p in parts) else None


def _pyenv_root(environ: dict[str, str]) -> Path:
    return Path(environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def _patch(p: Path) -> tuple[int, ...]:
    return tuple(int(x) if x.isdigit() else -1 for x in re.split(r"[.]", p.name)[:3])


def find_python(spec: str, flag: str = "--python", environ: dict[str, str] | None = None) -> str:
    """The interpreter for ``--python`` (``X.Y``, a name, or a path); a UsageError says where it looked.

    Order: a path as given; uv's discovery; ``pythonX.Y`` in every PATH directory; pyenv's
    ``$PYENV_ROOT/versions/X.Y.*/bin/python`` (newest patch first).  Each is run once to check it.
    """
    env = dict(os.environ if environ is None else environ)
    if not spec.strip() or "\0" in spec or "\n" in spec:
        raise UsageError(f"{flag} {spec!r}: not an interpreter", hint="e.g. --python 3.11, or a path")
    if os.sep in spec:
        if os.path.isfile(spec) and os.access(spec, os.X_OK) and python_version(spec) is not None:
            return os.path.abspath(spec)
        raise UsageError(f"{flag} {spec}: not a working Python interpreter", hint="give an executable python")
    m = re.fullmatch(r"(?:python)?(\d+)\.(\d+)", spec)
    want = (int(m[1]), int(m[2])) if m else None
    looked = ["uv's discovery"]
    found = run_tool([uv_bin(), "python", "find", "--no-python-downloads", spec], env=env, timeout_s=60)
    path = found.stdout.strip().splitlines()[-1] if found.ok and found.stdout.strip() else ""
    got = python_version(path) if path else None
    if got is not None and (want is None or got == want):
        return path
    if want is not None:
        name = f"python{want[0]}.{want[1]}"
        looked.append(f"{name} on PATH")
        for d in env.get("PATH", os.defpath).split(os.pathsep):
            cand = os.path.join(d or ".", name)
            if os.path.isfile(cand) and os.access(cand, os.X_OK) and python_version(cand) == want:
                return cand
        root = _pyenv_root(env)
        looked.append(f"{root}/versions/{want[0]}.{want[1]}.*")
        try:
            versions = sorted(root.glob(f"versions/{want[0]}.{want[1]}.*"), key=_patch, reverse=True)
        except OSError:  # another person's $PYENV_ROOT, not ours to read: nothing found there
            versions = []
        for v in versions:
            cand = str(v / "bin" / "python")
            if python_version(cand) == want:
                return cand
    raise UsageError(
        f"{flag} {spec}: no such interpreter here (looked in: {', '.join(looked)})",
        hint="install it (e.g. uv python install, pyenv install) or give its path",
    )


def _write_private(path: Path, lines: tuple[str, ...]) -> None:
    """``path`` holding ``lines``, one a line, readable by this user only (it may hold credentials)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fd, 0o600)  # one left by an older sleuth was made with the umask's mode
        fh.write("".join(f"{line}\n" for line in lines))


def _freeze(path: Path) -> tuple[str, ...]:
    """``uv pip freeze`` of the venv at ``path`` (empty when uv cannot say: it is only a record)."""
    try:
        res = run_tool([uv_bin(), "pip", "freeze", "--python", str(path / "bin" / "python")], timeout_s=120)
    except (InfrastructureError, EnvironmentBuildError):
        return ()
    return tuple(ln.strip() for ln in res.stdout.splitlines() if ln.strip()) if res.ok else ()


@dataclass(frozen=True, slots=True)
class PreparedVenv:
    """A built venv."""

    path: Path
    pins: tuple[str, ...]
    #: what is installed in it, as ``uv pip freeze`` lists it (``name==version`` lines), recorded at build
    packages: tuple[str, ...] = ()

    @property
    def python(self) -> Path:
        """The venv's interpreter."""
        return self.path / "bin" / "python"

    def wrap(self, spec: TrialSpec) -> TrialSpec:
        """Put the venv's ``bin`` first on PATH."""
        env = dict(spec.env)
        env.pop("PYTHONHOME", None)
        env["VIRTUAL_ENV"] = str(self.path)
        env["PATH"] = f"{self.path / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
        return TrialSpec(
            argv=spec.argv,
            env=env,
            cwd=spec.cwd,
            timeout_s=spec.timeout_s,
            kill_grace_s=spec.kill_grace_s,
            label=spec.label,
            metrics=spec.metrics,
        )

    def snapshot(self) -> dict[str, Any]:
        """The fingerprint seen by the venv's own interpreter."""
        from sleuth import snapshot

        return snapshot.collect(python=str(self.python))


@dataclass(frozen=True, slots=True)
class VenvEnvironment:
    """A uv-built venv from ``pins`` (requirement strings) for ``python`` (path or X.Y)."""

    pins: tuple[str, ...]
    python: str | None = None
    cache: Path | None = None
    name: str = "venv"
    build_timeout_s: float = 1800.0
    #: the package index (None: uv's own configuration)
    index_url: str | None = None
    #: requirements every resolution stays within (``uv pip install --constraint``)
    constraints: tuple[str, ...] = ()
    #: the extra indexes, first first (None: uv's own configuration; ``()``: none)
    extra_index_urls: tuple[str, ...] | None = None
    _key: str = field(init=False, default="")

    def __post_init__(self) -> None:
        for pin in self.pins:
            if not pin.strip():
                raise UsageError("--with '': an empty requirement", hint="give e.g. --with 'numpy==2.1.0'")
            if pin.lstrip().startswith("-"):  # uv took it as its own flag: --help built an empty venv
                raise UsageError(
                    f"--with {pin!r}: a requirement cannot start with '-' (uv would read it as a flag)",
                    hint="give a requirement ('numpy==2.1.0'), a path ('./pkg') or a URL",
                )
            if any(c in pin for c in "\r\n\0"):  # a secret pin is a line of a requirements file
                raise UsageError(
                    f"--with {scrub_text(pin)!r}: a requirement cannot hold a line break or a NUL",
                    hint="give each requirement as its own --with",
                )
        key: dict[str, Any] = {
            "pins": sorted(p.strip() for p in self.pins),
            "python": self.python or sys.version,
        }
        if self.index_url:  # another index may serve other files under the same versions
            key["index"] = self.index_url
        if self.constraints:
            key["constraints"] = sorted(c.strip() for c in self.constraints)
        if self.extra_index_urls is not None:  # the order matters: uv takes the first that has a package
            key["extra_index"] = list(self.extra_index_urls)
        blob = json.dumps(key)
        object.__setattr__(self, "_key", hashlib.sha256(blob.encode()).hexdigest()[:16])

    @property
    def path(self) -> Path:
        """Where this venv lives in the cache."""
        return (self.cache or cache_dir()) / "venvs" / self._key

    def describe(self) -> dict[str, Any]:
        """``{"kind": "venv", "pins": [...], "python": ...}`` (and ``index_url`` when one is set)."""
        out: dict[str, Any] = {"kind": "venv", "pins": list(self.pins), "python": self.python}
        if self.index_url:
            out["index_url"] = self.index_url
        if self.constraints:
            out["constraints"] = list(self.constraints)
        if self.extra_index_urls:
            out["extra_index_urls"] = list(self.extra_index_urls)
        return out

    def prepare(self) -> PreparedVenv:
        """Build the venv unless a complete one is cached."""
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (NotADirectoryError, FileExistsError, PermissionError) as exc:  # $SLEUTH_CACHE is a file
            raise UsageError(
                f"venv cache {path.parent}: cannot create it: {exc.strerror}",
                hint="point $SLEUTH_CACHE at a directory sleuth may write",
            ) from None
        with open(path.parent / f"{self._key}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("venv %s: waiting for its build by another process (another sleuth, or a uv "
                            "left running by one that was killed)", path)  # fmt: skip
                fcntl.flock(lock, fcntl.LOCK_EX)
            if not (path / _MARKER).is_file():
                self._build(path, lock.fileno())
            return PreparedVenv(path, self.pins, self._packages(path))

    def _packages(self, path: Path) -> tuple[str, ...]:
        """The marker's ``packages``; a venv cached before they were recorded is asked now."""
        try:
            got = json.loads((path / _MARKER).read_text()).get("packages")
        except (OSError, ValueError, AttributeError):
            got = None
        if isinstance(got, list) and all(isinstance(x, str) for x in got):
            return tuple(got)
        return _freeze(path)

    def _build(self, path: Path, lock: int) -> None:
        """Build at ``path``; uv inherits ``lock`` (held): a uv that outlives a killed sleuth keeps
        the venv locked until it ends, so the next build never writes beside it.  Whatever stops the
        build (a failure, Ctrl-C while uv runs, while the packages are listed or the marker written)
        removes the venv: the lock is held until then, so no other sleuth is using it."""
        uv = uv_bin()
        env = {**os.environ, "VIRTUAL_ENV": ""}
        env.pop("VIRTUAL_ENV")
        python = find_python(self.python) if self.python else sys.executable
        if self.index_url:  # in uv's environment, not its argv: any user may read a process's argv
            env.pop("UV_INDEX_URL", None)
            env["UV_DEFAULT_INDEX"] = self.index_url
        if self.extra_index_urls is not None:  # exactly these (and as variables, like the index)
            env.pop("UV_EXTRA_INDEX_URL", None)
            env.pop("UV_INDEX", None)
            if self.extra_index_urls:
                env["UV_INDEX"] = " ".join(self.extra_index_urls)
        held = path.parent / f"{self._key}.constraints.txt"
        within = ["--constraint", str(held)] if self.constraints else []
        # any user may read a process's argv (ps, /proc/PID/cmdline): a pin with a secret goes in a file
        hidden = tuple(p for p in self.pins if scrub_text(p) != p)
        shown = [p for p in self.pins if p not in hidden]
        secret_file = path.parent / f"{self._key}.requirements.txt"
        from_file = ["--requirements", str(secret_file)] if hidden else []
        try:
            shutil.rmtree(path, ignore_errors=True)
            if self.constraints:
                _write_private(held, self.constraints)
            if hidden:
                _write_private(secret_file, hidden)
            made = run_tool(
                [uv, "venv", "--quiet", "--python", python, str(path)],
                env=env,
                timeout_s=600,
                pass_fds=(lock,),
            )
            if not made.ok:
                raise EnvironmentBuildError(f"venv for python {python}: uv venv failed: {_uv_said(made)}")
            if self.pins:
                target = ["--python", str(path / "bin" / "python")]
                argv = [uv, "pip", "install", "--quiet", *within, *target, *from_file, "--", *shown]
                inst = run_tool(argv, env=env, timeout_s=self.build_timeout_s, pass_fds=(lock,))
                if not inst.ok:
                    raise _not_installed(self.pins, inst, env)
            marker = {
                "pins": [scrub_text(p) for p in self.pins],  # a record for people: no credentials
                "python": python,
                "built_at": time.time(),
                "packages": _freeze(path),
            }
            # whole or not at all: a marker cut short would still mark the venv complete
            partial = path / f"{_MARKER}.part"
            partial.write_text(json.dumps(marker, indent=2) + "\n")
            partial.rename(path / _MARKER)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            held.unlink(missing_ok=True)
            raise
        finally:
            secret_file.unlink(missing_ok=True)
