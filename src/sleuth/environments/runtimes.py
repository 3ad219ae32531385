"""Asking a container runtime (docker, podman, srun/pyxis) about itself and its images; never pulls.

* :func:`resolve_runtime`: the executable on PATH, or an ``EnvironmentBuildError`` (exit 4).
* :func:`check_runtime`: ``None`` when the runtime answers (``podman info``, ``docker info``,
  ``srun --version``), else its own message in one line (``sleuth matrix --dry-run`` asks it).
* :func:`image_exists`: a local image, else the registry's manifest.  "No such image / manifest
  unknown" is ``False``; a daemon that is down, a registry that cannot be reached, a permission
  error is an ``InfrastructureError`` carrying the runtime's message: infrastructure is not a
  verdict, and only a tag that does not exist makes a candidate a SKIP.
* :func:`list_tags`: the tags of a repository (local images, then ``skopeo list-tags`` or
  ``podman search --list-tags`` for a registry), or ``None`` when nothing could list them.
* :func:`image_id`, :func:`copy_out`: what the commits stage of ``bisect images`` needs to read
  the git repositories baked into an image (``create`` + ``cp`` + ``rm``; nothing runs).

``localhost/NAME`` images (podman's name for images built or imported here) are never looked up
in a registry: there is none, and podman would try ``https://localhost/v2/`` for seconds.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
from enum import Enum

from sleuth.errors import EnvironmentBuildError, InfrastructureError, UsageError

__all__ = [
    "Runtime",
    "check_runtime",
    "copy_out",
    "image_exists",
    "image_id",
    "is_local_only",
    "list_tags",
    "repository_of",
    "resolve_runtime",
]

log = logging.getLogger(__name__)

_INSPECT_TIMEOUT_S = 120.0
_INFO_TIMEOUT_S = 60.0
_COPY_TIMEOUT_S = 3600.0
#: what a runtime or registry says when a tag does not exist (anything else is infrastructure)
_MISSING_RE = re.compile(
    r"manifest unknown|no such (image|manifest|object)|not found|name unknown|does not exist|"
    r"image not known|unknown: .*(manifest|repository|tag)|failed to resolve|no image found",
    re.IGNORECASE,
)


class Runtime(Enum):
    """A container runtime and the executable that drives it."""

    DOCKER = "docker"
    PODMAN = "podman"
    PYXIS = "pyxis"

    @property
    def executable(self) -> str:
        """The program on PATH: ``docker``, ``podman`` or ``srun``."""
        return "srun" if self is Runtime.PYXIS else self.value

    @classmethod
    def parse(cls, name: str | Runtime) -> Runtime:
        """``Runtime`` from its name; ``UsageError`` naming the choices otherwise."""
        if isinstance(name, Runtime):
            return name
        try:
            return cls(name.strip().lower())
        except ValueError:
            choices = ", ".join(r.value for r in cls)
            raise UsageError(f"unknown container runtime {name!r}", hint=f"use one of: {choices}") from None


def resolve_runtime(name: str | Runtime) -> str:
    """The absolute path of the runtime's executable; ``EnvironmentBuildError`` when not on PATH."""
    runtime = Runtime.parse(name)
    found = shutil.which(runtime.executable)
    if found is None:
        raise EnvironmentBuildError(
            f"container runtime {runtime.value}: {runtime.executable} not found on PATH",
            hint=f"install {runtime.executable} or choose another --runtime",
        )
    return found


def check_runtime(name: str | Runtime) -> str | None:
    """``None`` when the runtime answers; else why not, in one line with the runtime's own words."""
    from sleuth.runner import run_tool

    runtime = Runtime.parse(name)
    try:
        exe = resolve_runtime(runtime)
    except EnvironmentBuildError as exc:
        return str(exc)
    argv = [exe, "--version"] if runtime is Runtime.PYXIS else [exe, "info", "--format", "{{json .}}"]
    try:
        res = run_tool(argv, timeout_s=_INFO_TIMEOUT_S)
    except InfrastructureError as exc:
        return f"container runtime {runtime.value}: {exc.message}"
    if res.timed_out:
        took = f"{_INFO_TIMEOUT_S:g}s"
        return f"container runtime {runtime.value}: `{runtime.executable} info` did not answer in {took}"
    if not res.ok:
        return f"container runtime {runtime.value}: {res.brief()}"
    return None


def is_local_only(image: str) -> bool:
    """``localhost/NAME[:TAG]`` (no port): podman's images built here, in no registry."""
    return image.startswith("localhost/")


def repository_of(image: str) -> str:
    """``REGISTRY/NAME`` of ``REGISTRY/NAME:TAG`` (a port's colon stays)."""
    head, _, tail = image.rpartition("/")
    name = tail.split("@", 1)[0].split(":", 1)[0]
    return f"{head}/{name}" if head else name


def _ask(argv: list[str], what: str) -> bool:
    """Run an existence check: True (exit 0), False (the runtime says there is no such image), or
    an ``InfrastructureError`` with the runtime's message (it could not answer)."""
    from sleuth.runner import run_tool

    res = run_tool(argv, timeout_s=_INSPECT_TIMEOUT_S)
    if res.timed_out:
        raise InfrastructureError(f"{' '.join(argv)} timed out", hint="is the registry reachable?")
    if res.ok:
        return True
    said = res.brief()
    log.debug("%s: exit %s: %s", " ".join(argv), res.rc, said)
    if res.rc == 1 and (not said.strip() or said == f"exit {res.rc}" or _MISSING_RE.search(said)):
        return False
    if _MISSING_RE.search(said):
        return False
    raise InfrastructureError(f"{what}: {said}")


def image_exists(runtime: str | Runtime, image: str) -> bool:
    """True when ``image`` exists locally or in its registry; never pulls it.

    docker/podman: a local image, else ``manifest inspect`` (not for ``localhost/`` images).
    pyxis: a squashfs file path, else ``skopeo inspect``/``docker``/``podman`` when one is on
    PATH, else assumed (with a warning).  Raises ``InfrastructureError`` when the runtime or the
    registry cannot answer (see the module docstring).
    """
    rt = Runtime.parse(runtime)
    if rt is Runtime.PYXIS:
        if image.startswith(("/", "./")) or image.endswith(".sqsh"):
            return os.path.isfile(image)
        ref = image
        if "#" in ref:  # pyxis syntax [USER@][REGISTRY#]IMAGE[:TAG]
            head, tail = ref.split("#", 1)
            ref = f"{head.rsplit('@', 1)[-1]}/{tail}"
        if shutil.which("skopeo"):
            return _ask(["skopeo", "inspect", "--raw", f"docker://{ref}"], f"skopeo inspect {ref}")
        for tool in ("docker", "podman"):
            if shutil.which(tool):
                return _ask([tool, "manifest", "inspect", ref], f"{tool} manifest inspect {ref}")
        log.warning("cannot check that %s exists (no skopeo, docker or podman); assuming it does", image)
        return True
    exe = resolve_runtime(rt)
    local = [exe, "image", "inspect", image] if rt is Runtime.DOCKER else [exe, "image", "exists", image]
    if _ask(local, f"{rt.value} image {image}"):
        return True
    if is_local_only(image):
        return False
    return _ask([exe, "manifest", "inspect", image], f"{rt.value} manifest inspect {image}")


def list_tags(runtime: str | Runtime, repository: str) -> list[str] | None:
    """Every ``REPOSITORY:TAG`` there is, or ``None`` when that cannot be known.

    A ``localhost/`` repository lives only here: the local images are all of it.  Any other needs
    its registry's list (``skopeo list-tags``, ``podman search --list-tags``), to which the local
    images are added; the local ones alone are only what was pulled, so without the registry's
    list the answer is ``None`` (the caller then tries each date in turn).
    """
    from sleuth.runner import run_tool

    rt = Runtime.parse(runtime)
    tool = rt.executable if rt is not Runtime.PYXIS else next(
        (t for t in ("podman", "docker") if shutil.which(t)), None)  # fmt: skip
    local: set[str] | None = None
    if tool is not None and shutil.which(tool):
        res = run_tool([tool, "images", "--format", "{{.Repository}}:{{.Tag}}", repository],
                       timeout_s=_INSPECT_TIMEOUT_S)  # fmt: skip
        if res.ok:
            local = {t for t in res.stdout.split() if t.startswith(repository + ":")}
        else:
            log.debug("%s images %s: %s", tool, repository, res.brief())
    if is_local_only(repository):
        return sorted(local) if local is not None else None
    remote = _registry_tags(repository, tool)
    if remote is None:
        return None
    return sorted({*(local or set()), *(f"{repository}:{t}" for t in remote)})


def _registry_tags(repository: str, tool: str | None) -> list[str] | None:
    from sleuth.runner import run_tool

    if shutil.which("skopeo"):
        res = run_tool(["skopeo", "list-tags", f"docker://{repository}"], timeout_s=_INSPECT_TIMEOUT_S)
        if res.ok:
            try:
                return [str(t) for t in json.loads(res.stdout).get("Tags") or []]
            except (ValueError, AttributeError):
                return None
        log.debug("skopeo list-tags %s: %s", repository, res.brief())
    if tool == "podman" and shutil.which("podman"):
        res = run_tool(["podman", "search", "--list-tags", "--limit", "100000", "--format", "{{.Tag}}",
                        repository], timeout_s=_INSPECT_TIMEOUT_S)  # fmt: skip
        if res.ok:
            return res.stdout.split()
        log.debug("podman search --list-tags %s: %s", repository, res.brief())
    return None


def image_id(runtime: str | Runtime, image: str) -> str:
    """The local image's id (the image must exist locally: ``run`` pulls it first if needed)."""
    from sleuth.runner import run_tool

    exe = resolve_runtime(runtime)
    res = run_tool([exe, "image", "inspect", "--format", "{{.Id}}", image], timeout_s=_INSPECT_TIMEOUT_S)
    if not res.ok:
        raise InfrastructureError(f"{Runtime.parse(runtime).value} image inspect {image}: {res.brief()}")
    return res.stdout.strip().removeprefix("sha256:")


def _copy_prefix() -> str:
    """Copy containers are named for this host and the process that made them (``copy_out``)."""
    import hashlib
    import socket

    return f"sleuth-copy-{hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]}-"


_swept: set[str] = set()


def _sweep_copies(exe: str) -> None:
    """Remove the copy containers a killed sleuth on this host left (created, never started, never
    removed: a kill -9 between ``create`` and ``rm``); those of a live process are its own.  Once a
    process and runtime."""
    from sleuth.reaper import alive
    from sleuth.runner import run_tool

    if exe in _swept:
        return
    _swept.add(exe)
    prefix = _copy_prefix()
    res = run_tool([exe, "ps", "-a", "--filter", f"name={prefix}", "--format", "{{.Names}}"],
                   timeout_s=_INSPECT_TIMEOUT_S)  # fmt: skip
    if not res.ok:
        return
    stale = [
        name
        for name in res.stdout.split()
        if (m := re.fullmatch(re.escape(prefix) + r"(\d+)-[0-9a-f]+", name)) and not alive(int(m[1]))
    ]
    if stale:
        log.info("removing %d copy container(s) a killed sleuth left: %s", len(stale), " ".join(stale))
        run_tool([exe, "rm", "-f", *stale], timeout_s=_INSPECT_TIMEOUT_S)


def copy_out(runtime: str | Runtime, image: str, parts: list[tuple[str, str, bool]]) -> None:
    """Copy paths of ``image`` to the host: ``parts`` is ``[(path in the image, host dest, required)]``
    (a container is created, never started, and removed).

    ``UsageError`` when a required path is not in the image (the user named it);
    ``InfrastructureError`` when the runtime fails.
    """
    from sleuth.runner import run_tool

    rt = Runtime.parse(runtime)
    exe = resolve_runtime(rt)
    _sweep_copies(exe)
    name = f"{_copy_prefix()}{os.getpid()}-{secrets.token_hex(6)}"
    try:  # a Ctrl-C or a kill during the create: the finally (or the next copy's sweep) removes it
        made = run_tool([exe, "create", "--name", name, image, "true"], timeout_s=_COPY_TIMEOUT_S)
        if not made.ok:
            raise InfrastructureError(f"{rt.value} create {image}: {made.brief()}")
        for path, dest, required in parts:
            res = run_tool([exe, "cp", f"{name}:{path}", dest], timeout_s=_COPY_TIMEOUT_S)
            if res.ok:
                continue
            said = res.brief()
            if _MISSING_RE.search(said) or "could not be found" in said:
                if required:
                    raise UsageError(f"{image} has no {path}")
                continue
            raise InfrastructureError(f"{rt.value} cp {image}:{path}: {said}")
    finally:
        run_tool([exe, "rm", "-f", name], timeout_s=_INSPECT_TIMEOUT_S)
