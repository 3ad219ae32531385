"""Build the demo's dated images locally: two tiny git repositories baked into nightly images.

``dep`` is a dependency, ``lib`` a library that uses it, each a git repository with a few commits a
day from 2025-03-01 to 2025-03-12.  On 2025-03-09 one of dep's commits renames ``encode`` to
``dumps``: lib's test fails in every image from that day on.  Each nightly image
``localhost/sleuth-demo/app:DATE`` holds both repositories (with their history, HEAD at that
day's last commit) in ``/opt/dep`` and ``/opt/lib``, built with ``/opt/build.py`` (``build/`` next
to ``src/``), and the test ``/opt/test.sh``.  There is no image for 2025-03-06 (a nightly that
failed to publish).

Everything goes to ``OUT`` (default ``.demo/images``): the repositories, and a podman store of
its own (``OUT/store``: ``containers.conf`` with runc and explicit ulimits, ``storage.conf``),
so the user's images are not touched.  The base image is a busybox rootfs with the Python that runs
this script (no registry is needed).  Prints the variables that point podman at the store.

    python examples/bisect-images/build_images.py [--out .demo/images]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository: its tests build small images without a registry
from tests.containers.images import build_from, import_rootfs, python_rootfs, store_env, write_store_config  # noqa: E402

BASE = "localhost/sleuth-demo/python:base"
APP = "localhost/sleuth-demo/app"
DAYS = [f"2025-03-{d:02d}" for d in range(1, 13)]
MISSING = "2025-03-06"
BREAKS = "2025-03-09"

DEP_MODULES = ("numbers", "text", "util", "io", "version")
LIB_MODULES = ("core", "fmt", "report")
LIB_INIT = '''"""lib: uses dep."""
import dep


def selftest():
    assert dep.encode({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'
    print("lib selftest ok")
'''
TEST = """#!/bin/sh
# lib's test: runs the built modules (python3 /opt/build.py puts them in build/)
PYTHONPATH=/opt/dep/build:/opt/lib/build exec python3 -c 'import lib; lib.selftest()'
"""


def git(repo: Path, *args: str, when: str | None = None) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "demo",
        "GIT_AUTHOR_EMAIL": "demo@example.com",
        "GIT_COMMITTER_NAME": "demo",
        "GIT_COMMITTER_EMAIL": "demo@example.com",
    }
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when
    return subprocess.run(
        ["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def commit(repo: Path, message: str, when: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, when=when)
    return git(repo, "rev-parse", "HEAD")


def make_repos(work: Path) -> dict[str, list[tuple[str, str, str]]]:
    """dep and lib with their histories; ``{name: [(day, sha, subject)]}``."""
    shutil.rmtree(work, ignore_errors=True)
    hist: dict[str, list[tuple[str, str, str]]] = {"dep": [], "lib": []}
    dep, lib = work / "dep", work / "lib"
    for repo in (dep, lib):
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", "main")
    api = "encode"
    for i, day in enumerate(DAYS):
        for hour, what in ((9, "numbers"), (13, "api" if day == BREAKS else "text"), (17, "version")):
            if what == "api":
                api = "dumps"
                subject = "codec: rename encode() to dumps() (the API change)"
            else:
                subject = f"{what}: tune ({day} {hour}:00)"
            write(
                dep / "src" / "dep" / "__init__.py", f'"""dep: a tiny codec."""\nfrom .codec import {api}\n'
            )
            write(
                dep / "src" / "dep" / "codec.py",
                f"import json\n\n\ndef {api}(obj):\n    return json.dumps(obj, sort_keys=True)\n",
            )
            for m in DEP_MODULES:
                write(
                    dep / "src" / "dep" / f"{m}.py",
                    f"# {m}\nREVISION = {i * 10 + (hour if m == what else 0)}\n",
                )
            when = f"{day}T{hour:02d}:00:00+00:00"
            hist["dep"].append((day, commit(dep, subject, when), subject))
        for hour in (10, 15):
            write(lib / "src" / "lib" / "__init__.py", LIB_INIT)
            for m in LIB_MODULES:
                write(lib / "src" / "lib" / f"{m}.py", f"# {m}\nREVISION = {i * 10 + hour}\n")
            subject = f"fmt: polish ({day} {hour}:00)"
            hist["lib"].append((day, commit(lib, subject, f"{day}T{hour:02d}:00:00+00:00"), subject))
    return hist


def nightly(work: Path, hist: dict[str, list[tuple[str, str, str]]], day: str, env: dict[str, str]) -> None:
    """The image of ``day``: each repository cloned at that day's last commit (history included)."""
    ctx = work / "ctx" / day
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)
    for name in ("dep", "lib"):
        sha = [s for d, s, _ in hist[name] if d <= day][-1]
        subprocess.run(["git", "clone", "-q", str(work / name), str(ctx / name)], check=True)
        git(ctx / name, "checkout", "-q", "-B", "main", sha)
        git(ctx / name, "remote", "remove", "origin")
        git(ctx / name, "pack-refs", "--all")
    shutil.copy(HERE / "build.py", ctx / "build.py")
    write(ctx / "test.sh", TEST)
    subprocess.run(
        [sys.executable, str(ctx / "build.py")],
        check=True,
        capture_output=True,
        env={**os.environ, "SOURCES": f"{ctx / 'dep'}:{ctx / 'lib'}", "BUILD_DELAY": "0"},
    )
    build_from(
        env,
        BASE,
        f"{APP}:{day}",
        context=ctx,
        lines=(
            "COPY dep /opt/dep",
            "COPY lib /opt/lib",
            "COPY build.py /opt/build.py",
            "COPY test.sh /opt/test.sh",
            "ENV SOURCES=/opt/dep:/opt/lib",
        ),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=".demo/images", help="where the repositories and the podman store go")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    if shutil.which("podman") is None:
        print("podman is not installed (Debian: apt-get install podman runc)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    store = out / "store"
    env = write_store_config(store)
    if subprocess.run(["podman", "image", "exists", BASE], env={**os.environ, **env}, check=False).returncode:
        python_rootfs(out / "rootfs")
        import_rootfs(env, out / "rootfs", BASE, out / "rootfs.tar")
        shutil.rmtree(out / "rootfs")
    hist = make_repos(out / "work")
    for day in DAYS:
        if day != MISSING:
            nightly(out / "work", hist, day, env)
    shutil.rmtree(out / "work" / "ctx", ignore_errors=True)
    culprit = next(s for d, s, subj in hist["dep"] if "API change" in subj)
    print(
        f"built {len(DAYS) - 1} images {APP}:{DAYS[0]} .. {DAYS[-1]} (none for {MISSING}) "
        f"in {time.monotonic() - t0:.1f}s",
        file=sys.stderr,
    )
    print(f"the culprit is dep {culprit} (breaks lib's test from {BREAKS})", file=sys.stderr)
    for key, value in store_env(store).items():
        print(f"export {key}={value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
