"""A fake container runtime: ``fake_runtime.py TOOL ARGS...``, TOOL one of docker, podman, srun, skopeo.

Tests install it on a tmp PATH under those names through a shell shim.  It appends
``{"tool", "argv", "cwd"}`` to the JSONL file named by ``$FAKE_RUNTIME_LOG`` and then:

* ``docker|podman run [OPTIONS] IMAGE CMD...`` and ``srun [OPTIONS] --container-image=IMAGE CMD...``
  execute CMD on the host, simulating the container: mount destinations in CMD, in ``-e`` values and
  in the workdir are mapped back to their host sources; docker/podman give CMD only ``PATH`` and the
  ``-e`` variables (``-e NAME`` takes the value from this process, skipped when unset); srun keeps the
  whole environment.  ``FAKE_CONTAINER_IMAGE`` tells CMD which image it "runs in".
* ``manifest inspect IMG`` / ``image inspect IMG`` / ``image exists IMG`` / ``skopeo inspect docker://IMG``
  exit 0 when IMG is listed in ``$FAKE_RUNTIME_IMAGES`` (remote) or ``$FAKE_RUNTIME_LOCAL_IMAGES``
  (local; comma- or space-separated), else 1 with "manifest unknown".  ``run`` of an unlisted image
  exits 125 when ``$FAKE_RUNTIME_IMAGES`` is set.  ``$FAKE_RUNTIME_DOWN`` set: every command but
  ``--version`` exits 125 with a daemon-down message (infrastructure, not a missing image).
* ``images --format F REPO`` lists the local images of REPO; ``search --list-tags ... REPO`` and
  ``skopeo list-tags docker://REPO`` the remote ones (exit 125 when ``$FAKE_RUNTIME_NO_LIST`` is set).
* ``rm -f [-t 0] NAME`` kills the process that ran ``run --name NAME`` (as removing a container
  would); ``info`` exits 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path

DOCKER_VALUE_FLAGS = {
    *("-e", "--env", "-v", "--volume", "--mount", "-w", "--workdir", "--gpus", "--device"),
    *("--group-add", "--shm-size", "--security-opt", "--ipc", "--network", "--name", "-u", "--user"),
    *("--entrypoint", "--ulimit", "--cap-add", "--runtime", "--platform", "--pull", "--label"),
}
DOCKER_BOOL_FLAGS = {"--rm", "-i", "--init", "--privileged", "-t", "--read-only"}
SRUN_VALUE_FLAGS = {"-n", "-N", "-p", "-t", "-G", "-A", "-q", "-c", "-J"}


def _images(var: str) -> set[str]:
    return set(os.environ.get(var, "").replace(",", " ").split())


def _known(image: str, *, local_too: bool = True) -> bool:
    names = {image, image.replace("#", "/", 1)}
    known = _images("FAKE_RUNTIME_IMAGES") | (_images("FAKE_RUNTIME_LOCAL_IMAGES") if local_too else set())
    return bool(names & known)


def _map(value: str, mounts: list[tuple[str, str]]) -> str:
    for src, dst in sorted(mounts, key=lambda m: -len(m[1])):
        if value == dst or value.startswith(dst + "/"):
            return src + value[len(dst) :]
        value = value.replace(f"={dst}/", f"={src}/").replace(f"={dst}", f"={src}")
    return value


Mounts = list[tuple[str, str]]


def _exec(image: str, cmd: list[str], env: dict[str, str], workdir: str | None, mounts: Mounts) -> int:
    if not cmd:
        sys.stderr.write("fake runtime: no command\n")
        return 125
    if os.environ.get("FAKE_RUNTIME_IMAGES") is not None and not _known(image):
        sys.stderr.write(f"Unable to find image '{image}' locally\n")
        sys.stderr.write(
            f"docker: Error response from daemon: manifest for {image} not found: manifest unknown\n"
        )
        return 125
    env = {k: _map(v, mounts) for k, v in env.items()}
    env["FAKE_CONTAINER_IMAGE"] = image
    if workdir:
        os.chdir(_map(workdir, mounts))
    argv = [_map(a, mounts) for a in cmd]
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        sys.stderr.write(f"exec: {argv[0]}: not found\n")
        return 127


def _docker_run(args: list[str]) -> int:
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    mounts: list[tuple[str, str]] = []
    workdir = None
    i = 0
    while i < len(args) and args[i].startswith("-"):
        flag, _, inline = args[i].partition("=")
        if flag in DOCKER_BOOL_FLAGS and not inline:
            i += 1
            continue
        if flag not in DOCKER_VALUE_FLAGS:
            sys.stderr.write(f"unknown flag: {flag}\n")
            return 125
        value = inline if inline else args[i + 1]
        i += 1 if inline else 2
        if flag in ("-e", "--env"):
            name, eq, val = value.partition("=")
            if eq:
                env[name] = val
            elif name in os.environ:
                env[name] = os.environ[name]
        elif flag in ("-v", "--volume"):
            src, dst = value.split(":")[:2]
            mounts.append((src, dst))
        elif flag == "--mount":
            fields = dict(f.partition("=")[::2] for f in value.split(","))
            mounts.append((fields.get("src") or fields["source"], fields.get("dst") or fields["target"]))
        elif flag in ("-w", "--workdir"):
            workdir = value
        elif flag == "--name" and os.environ.get("FAKE_RUNTIME_LOG"):
            # the "container" is this process once it execs: rm -f NAME kills it, as a runtime would
            names = Path(os.environ["FAKE_RUNTIME_LOG"] + ".names")
            names.mkdir(exist_ok=True)
            (names / value).write_text(str(os.getpid()))
    if i >= len(args):
        sys.stderr.write("run: no image\n")
        return 125
    return _exec(args[i], args[i + 1 :], env, workdir, mounts)


def _srun(args: list[str]) -> int:
    image = workdir = None
    mounts: list[tuple[str, str]] = []
    env = dict(os.environ)
    i = 0
    while i < len(args) and args[i].startswith("-"):
        flag, _, value = args[i].partition("=")
        i += 1
        if flag in SRUN_VALUE_FLAGS and not value:
            i += 1
        elif flag == "--container-image":
            image = value
        elif flag == "--container-mounts":
            mounts += [(m.split(":")[0], m.split(":")[1]) for m in value.split(",")]
        elif flag == "--container-workdir":
            workdir = value
        elif flag == "--export":
            env.update(dict(kv.partition("=")[::2] for kv in value.split(",") if "=" in kv))
    if image is None:  # plain srun: run the command as it is
        os.execvp(args[i], args[i:])
    return _exec(image, args[i:], env, workdir, mounts)


def _missing(image: str) -> int:
    sys.stderr.write(f"Error: {image}: manifest unknown\n")
    return 1


def _tags(repo: str, var: str) -> int:
    if os.environ.get("FAKE_RUNTIME_NO_LIST"):
        sys.stderr.write("Error: listing is not supported here\n")
        return 125
    for image in sorted(_images(var)):
        if image.startswith(repo + ":"):
            print(image if var.endswith("LOCAL_IMAGES") else image[len(repo) + 1 :])
    return 0


def main(argv: list[str]) -> int:
    tool, args = argv[0], argv[1:]
    log = os.environ.get("FAKE_RUNTIME_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"tool": tool, "argv": args, "cwd": os.getcwd()}) + "\n")
    if os.environ.get("FAKE_RUNTIME_DOWN") and args[:1] != ["--version"]:
        sys.stderr.write("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n")
        return 125
    if tool == "srun":
        return _srun(args)
    if tool == "skopeo":
        ref = args[-1].removeprefix("docker://")
        if args[:1] == ["list-tags"]:
            if os.environ.get("FAKE_RUNTIME_NO_LIST"):
                return 1
            tags = sorted(
                i[len(ref) + 1 :] for i in _images("FAKE_RUNTIME_IMAGES") if i.startswith(ref + ":")
            )
            print(json.dumps({"Repository": ref, "Tags": tags}))
            return 0
        return 0 if args[:1] == ["inspect"] and _known(ref, local_too=False) else _missing(ref)
    if args[:2] == ["manifest", "inspect"]:
        return 0 if _known(args[2], local_too=False) else _missing(args[2])
    if args[:2] in (["image", "inspect"], ["image", "exists"]):
        return 0 if args[-1] in _images("FAKE_RUNTIME_LOCAL_IMAGES") else _missing(args[-1])
    if args[:1] == ["images"]:
        return _tags(args[-1], "FAKE_RUNTIME_LOCAL_IMAGES")
    if args[:1] == ["search"]:
        return _tags(args[-1], "FAKE_RUNTIME_IMAGES")
    if args[:1] == ["rm"] and os.environ.get("FAKE_RUNTIME_LOG"):
        pidfile = Path(os.environ["FAKE_RUNTIME_LOG"] + ".names") / args[-1]
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            pidfile.unlink()
        return 0
    if args[:1] in (["rm"], ["info"]):
        return 0
    if args[:1] == ["run"]:
        return _docker_run(args[1:])
    sys.stderr.write(f"fake {tool}: unsupported: {' '.join(args)}\n")
    return 125


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
