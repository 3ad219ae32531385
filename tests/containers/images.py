"""Small images built here, without a registry: a busybox rootfs and one with the host's Python.

``podman import`` of a rootfs tarball makes a base image (busybox-static from Debian, or the Python
that runs the tests with its standard library and shared libraries at their own paths); dated tags
are ``podman build`` steps ``FROM`` a base (an ``ENV`` or a ``COPY``: no container runs).  Used by
the tests in this directory and by ``examples/bisect-images/build_images.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "build_from",
    "busybox_rootfs",
    "import_rootfs",
    "python_rootfs",
    "store_env",
    "write_store_config",
]

#: parts of the standard library no test needs (keeps the Python image near 30 MB)
_SKIP_DIRS = {"test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
              "site-packages", "dist-packages", "__phello__", "distutils", "unittest", "venv"}  # fmt: skip


def write_store_config(root: Path) -> dict[str, str]:
    """``containers.conf`` (runc, explicit ulimits, no network) and ``storage.conf`` (a store in
    ``root``) as the research note says; returns the variables that point podman at them."""
    root.mkdir(parents=True, exist_ok=True)
    runtime = "runc" if shutil.which("runc") or os.path.exists("/usr/sbin/runc") else "crun"
    (root / "containers.conf").write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
        'netns = "none"\n'
        "[engine]\n"
        f'runtime = "{runtime}"\n'
        # podman's own state (locks, the boot marker) in the store too, not in /run/libpod: two
        # stores in use at once (two test runs, the demo) never share it
        f'tmp_dir = "{root}/tmp"\n'
    )
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/graph"\nrunroot = "{root}/run"\n'
    )
    return store_env(root)


def store_env(root: Path) -> dict[str, str]:
    """The variables of a store made by :func:`write_store_config`."""
    return {
        "CONTAINERS_CONF": str(root / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
    }


def _podman(env: Mapping[str, str], *args: str, cwd: Path | None = None, stdin: str | None = None) -> str:
    res = subprocess.run(["podman", *args], env={**os.environ, **env}, cwd=cwd, input=stdin, text=True,
                         capture_output=True, timeout=600, check=False)  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: exit {res.returncode}: {res.stderr.strip()[-2000:]}")
    return res.stdout


def _libs(binary: str) -> list[str]:
    """The shared libraries ``binary`` loads (from ldd), the loader included."""
    res = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
    if "not a dynamic executable" in res.stdout + res.stderr or res.returncode != 0:
        return []
    return [m for m in re.findall(r"(/\S+)", res.stdout) if os.path.exists(m)]


def _ignored(_dir: str, names: list[str]) -> list[str]:
    return [
        n
        for n in names
        if n in _SKIP_DIRS or n.startswith("config-") or n.endswith((".opt-1.pyc", ".opt-2.pyc"))
    ]


def _copy(src: str, rootfs: Path) -> None:
    """``src`` at its own path inside ``rootfs`` (links followed for files; dirs as trees)."""
    dest = rootfs / src.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if os.path.isdir(src):
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True, ignore=_ignored)
    else:
        shutil.copy2(os.path.realpath(src), dest)


def busybox_rootfs(rootfs: Path) -> None:
    """A static busybox at ``/bin/busybox`` with a link per applet (sh, sleep, cat, ...)."""
    found = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(found):
        raise RuntimeError("busybox is not installed (apt-get install busybox-static)")
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(found), rootfs / "bin" / "busybox")
    for lib in _libs(found):  # a dynamic busybox needs its libc
        _copy(lib, rootfs)
    applets = subprocess.run([found, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for name in applets:
        link = rootfs / "bin" / name
        if name != "busybox" and not link.exists():
            link.symlink_to("busybox")
    for d in ("tmp", "proc", "sys", "dev", "etc", "root"):
        (rootfs / d).mkdir(exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)


def python_rootfs(rootfs: Path) -> str:
    """busybox plus the Python running this (its standard library and libraries at their own paths,
    ``/usr/local/bin/python3`` linking to it); returns the interpreter's path inside."""
    busybox_rootfs(rootfs)
    exe = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    _copy(exe, rootfs)
    for lib in _libs(exe):
        _copy(lib, rootfs)
    base = {
        "base": sys.base_prefix,
        "platbase": sys.base_exec_prefix,
        "installed_base": sys.base_prefix,
        "installed_platbase": sys.base_exec_prefix,
    }  # a venv's own lib dir is not the standard library
    paths = sysconfig.get_paths(vars=base)
    for key in ("stdlib", "platstdlib"):
        _copy(paths[key], rootfs)
    dynload = Path(paths["platstdlib"]) / "lib-dynload"
    for ext in dynload.glob("*.so") if dynload.is_dir() else []:
        for lib in _libs(str(ext)):
            if not (rootfs / lib.lstrip("/")).exists():
                _copy(lib, rootfs)
    (rootfs / "usr" / "local" / "bin").mkdir(parents=True, exist_ok=True)
    for name in ("python3", "python"):
        link = rootfs / "usr" / "local" / "bin" / name
        if not link.exists():
            link.symlink_to(exe)
    return exe


def import_rootfs(env: Mapping[str, str], rootfs: Path, name: str, tar: Path) -> None:
    """``podman import`` of ``rootfs`` as ``name`` (PATH set; no registry involved)."""
    with tarfile.open(tar, "w") as tf:
        tf.add(rootfs, arcname=".")
    _podman(env, "import", "--change", "ENV PATH=/usr/local/bin:/usr/bin:/bin", str(tar), name)
    tar.unlink()


def build_from(env: Mapping[str, str], base: str, name: str, *, lines: tuple[str, ...] = (),
               context: Path | None = None) -> None:  # fmt: skip
    """``podman build`` of ``FROM base`` plus ``lines`` (``ENV``, ``COPY``) as ``name``; nothing runs."""
    ctx = context or Path(os.devnull).parent
    text = "\n".join([f"FROM {base}", *lines]) + "\n"
    _podman(env, "build", "--pull=never", "-q", "-t", name, "-f", "-", str(ctx), stdin=text)
