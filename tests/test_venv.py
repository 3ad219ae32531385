"""The venv environment for real: uv builds it from pins, the cache reuses it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sleuth.environments.venv import VenvEnvironment, find_python
from sleuth.errors import EnvironmentBuildError, UsageError


def _index_reachable() -> bool:
    try:
        with socket.create_connection(("pypi.org", 443), timeout=5):
            return True
    except OSError:
        return False


network = pytest.mark.skipif(
    not _index_reachable(), reason="the Python package index (pypi.org) is unreachable"
)


@pytest.mark.network
@network
def test_run_in_venv_builds_once_and_reuses(sleuth, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = [
        "run",
        "--json",
        "--environment",
        "venv",
        "--with",
        "six==1.16.0",
        "--",
        "python",
        "-c",
        "import six, sys; print(six.__version__, sys.prefix)",
    ]
    first = sleuth(*args, env={"SLEUTH_CACHE": str(cache)})
    assert first.rc == 0, first.stderr
    (venv,) = (p for p in (cache / "venvs").iterdir() if p.is_dir())
    marker = venv / ".sleuth-venv.json"
    stamp = marker.stat().st_mtime_ns
    second = sleuth(*args, env={"SLEUTH_CACHE": str(cache)})
    assert second.rc == 0
    assert marker.stat().st_mtime_ns == stamp, "the cached venv was rebuilt"
    rd = Path(second.json()["run_dir"])
    out = ((rd if rd.is_absolute() else tmp_path / rd) / "trials" / "0001" / "stdout").read_text().split()
    assert out[0] == "1.16.0" and Path(out[1]).resolve() == venv.resolve()
    rd = rd if rd.is_absolute() else tmp_path / rd
    assert json.loads((rd / "host_env.json").read_text())["python"]["in_venv"] is not None
    venv_env = json.loads((rd / "environment_env.json").read_text())
    assert Path(venv_env["python"]["prefix"]).resolve() == venv.resolve()


@pytest.mark.network
@network
def test_unknown_pin_is_an_infrastructure_error_with_nothing_left(sleuth, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    res = sleuth(
        "run",
        "--environment",
        "venv",
        "--with",
        "no-such-package-sleuth-xyz==1.0",
        "--",
        "true",
        env={"SLEUTH_CACHE": str(cache)},
    )
    assert res.rc == 4, res.stderr
    assert "uv pip install failed" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not any(p.is_dir() for p in (cache / "venvs").iterdir())
    assert not (tmp_path / "runs").exists()


def test_a_mistyped_pin_says_what_uv_could_not_parse(sleuth, tmp_path: Path) -> None:
    """``--with six=1.16.0`` (one '=') said only ``uv pip install failed: ^^^^^^^``: the last line of
    uv's parse error is the caret under the echoed pin."""
    cache = tmp_path / "cache"
    res = sleuth("run", "--environment", "venv", "--with", "six=1.16.0", "--", "true",
                 env={"SLEUTH_CACHE": str(cache)})  # fmt: skip
    assert res.rc == 4, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "six=1.16.0" in line and 'no such comparison operator "="' in line and "^" not in line, line
    assert not any(p.is_dir() for p in (cache / "venvs").iterdir())
    assert not (tmp_path / "runs").exists()


def test_a_cache_that_is_a_file_is_one_line(sleuth, tmp_path: Path) -> None:
    """``SLEUTH_CACHE`` naming a file: ``mkdir`` raised NotADirectoryError, a traceback."""
    cache = tmp_path / "cache-file"
    cache.write_text("not a directory\n")
    res = sleuth(
        "run", "--environment", "venv", "--with", "six", "--", "true", env={"SLEUTH_CACHE": str(cache)}
    )
    assert res.rc == 2 and "Traceback" not in res.stderr, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert f"venv cache {cache}/venvs: cannot create it" in line and "$SLEUTH_CACHE" in line
    assert not (tmp_path / "runs").exists()


def test_a_flag_given_as_a_requirement_is_refused_before_anything_is_built(sleuth, tmp_path: Path) -> None:
    """``--with=--help``: uv took it as its own flag, printed its help, exited 0, and the empty venv
    was cached under the pin's key for every later run."""
    cache = tmp_path / "cache"
    res = sleuth(
        "run", "--environment", "venv", "--with=--help", "--", "true", env={"SLEUTH_CACHE": str(cache)}
    )
    assert res.rc == 2 and "Traceback" not in res.stderr, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "--with '--help': a requirement cannot start with '-'" in line, line
    assert not cache.exists() and not (tmp_path / "runs").exists()


def test_a_ctrl_c_after_uv_finished_leaves_no_venv_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sleuth.environments.venv as venv_mod

    def interrupted(path: Path) -> tuple[str, ...]:  # Ctrl-C while `uv pip freeze` lists the packages
        raise KeyboardInterrupt

    monkeypatch.setattr(venv_mod, "_freeze", interrupted)
    env = VenvEnvironment(pins=(), cache=tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        env.prepare()
    assert not env.path.exists(), list(env.path.iterdir())
    monkeypatch.undo()
    assert env.prepare().python.is_file()  # the next use builds it


def test_cache_key_depends_on_pins_not_order(tmp_path: Path) -> None:
    a = VenvEnvironment(pins=("a==1", "b==2"), cache=tmp_path)
    b = VenvEnvironment(pins=("b==2", "a==1"), cache=tmp_path)
    c = VenvEnvironment(pins=("a==1", "b==3"), cache=tmp_path)
    assert a.path == b.path != c.path
    with pytest.raises(Exception, match="empty requirement"):
        VenvEnvironment(pins=(" ",))


def test_broken_interpreter_fails_cleanly(tmp_path: Path) -> None:
    env = VenvEnvironment(pins=(), python=str(tmp_path / "no-python"), cache=tmp_path)
    with pytest.raises(UsageError, match="no-python: not a working Python interpreter"):
        env.prepare()
    assert not env.path.exists()
    # an interpreter that starts but cannot make a venv is the environment's failure
    fake = tmp_path / "fake" / "python"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n[ "$1" = -c ] && echo 3 99 && exit 0\nexit 1\n')
    fake.chmod(0o755)
    env = VenvEnvironment(pins=(), python=str(fake), cache=tmp_path)
    with pytest.raises(EnvironmentBuildError, match="uv venv failed"):
        env.prepare()
    assert not env.path.exists()


REAL = os.path.realpath(sys.executable)
XY = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture
def layouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """PATH with a broken pyenv shim for pythonX.Y (uv's lookup trips on it), a pyenv root with X.Y.

    The pyenv version is a symlink to this interpreter; uv's own managed pythons and the project's
    ``.venv`` (uv looks in the working directory) are out of sight.
    """
    monkeypatch.chdir(tmp_path)
    shims = tmp_path / "shims"
    shims.mkdir()
    for name in (f"python{XY}", "python3", "python"):
        shim = shims / name
        shim.write_text(f'#!/bin/sh\necho "pyenv: {name}: command not found" >&2\nexit 127\n')
        shim.chmod(0o755)
    root = tmp_path / "pyenv"
    for patch in ("1", "99"):
        (root / "versions" / f"{XY}.{patch}" / "bin").mkdir(parents=True)
    (root / "versions" / f"{XY}.99" / "bin" / "python").symlink_to(REAL)
    (root / "versions" / f"{XY}.1" / "bin" / "python").symlink_to(tmp_path / "gone")  # a broken install
    (tmp_path / "uv-pythons").mkdir()
    return {"PATH": str(shims), "PYENV_ROOT": str(root), "HOME": str(tmp_path),
            "UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv-pythons")}  # fmt: skip


def test_uv_alone_trips_on_the_broken_shim(layouts: dict[str, str]) -> None:
    from sleuth.environments.venv import uv_bin

    res = subprocess.run([uv_bin(), "python", "find", "--no-python-downloads", XY], env=layouts,
                         capture_output=True, text=True, cwd=layouts["HOME"])  # fmt: skip
    assert res.returncode != 0  # what users saw: "no such interpreter"


def test_find_python_looks_past_the_shim_into_pyenv(layouts: dict[str, str], tmp_path: Path) -> None:
    got = find_python(XY, environ=layouts)
    assert got == str(tmp_path / "pyenv" / "versions" / f"{XY}.99" / "bin" / "python")
    assert find_python(f"python{XY}", environ=layouts) == got
    # a working pythonX.Y on PATH comes before pyenv
    good = tmp_path / "good"
    good.mkdir()
    (good / f"python{XY}").symlink_to(REAL)
    on_path = {**layouts, "PATH": f"{layouts['PATH']}{os.pathsep}{good}"}
    assert find_python(XY, environ=on_path) == str(good / f"python{XY}")


def test_find_python_says_where_it_looked(layouts: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        find_python("2.1", environ=layouts)
    msg = str(info.value)
    assert msg.startswith("--python 2.1: no such interpreter here")
    assert (
        "uv's discovery" in msg and "python2.1 on PATH" in msg and f"{tmp_path}/pyenv/versions/2.1.*" in msg
    )
    with pytest.raises(UsageError, match="not a working Python interpreter"):
        find_python(str(tmp_path / "shims" / f"python{XY}"), environ=layouts)
    assert find_python(REAL, environ=layouts) == REAL


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root reads every directory: a closed one takes a non-root user"
)
def test_a_pyenv_root_we_may_not_read_is_looked_past(layouts: dict[str, str], tmp_path: Path) -> None:
    """$PYENV_ROOT inherited from another account (`su`, a shared module file): reading it was
    EACCES, which came out as "check its permissions (a run dir goes under --output)", exit 4."""
    closed = tmp_path / "closed"
    (closed / "pyenv").mkdir(parents=True)
    closed.chmod(0)
    try:
        with pytest.raises(UsageError, match=r"^--python 2\.1: no such interpreter here"):
            find_python("2.1", environ={**layouts, "PYENV_ROOT": str(closed / "pyenv")})
    finally:
        closed.chmod(0o755)


def test_cli_finds_the_pyenv_interpreter(layouts: dict[str, str], tmp_path: Path) -> None:
    from tests.bisect.test_bisect_pypi_index import wheel

    env = {**layouts, "SLEUTH_CACHE": str(tmp_path / "cache"), "SLEUTH_OUTPUT": str(tmp_path / "runs"),
           "UV_CACHE_DIR": str(tmp_path / "uv-cache"), "UV_OFFLINE": "1"}  # fmt: skip
    whl = wheel(tmp_path, "tinypkg", "1.0")
    run = [sys.executable, "-m", "sleuth"]
    res = subprocess.run([*run, "run", "--json", "--environment", "venv", "--python", XY, "--with", str(whl), "--",
                          "python", "-c", "import sys, tinypkg; print(sys.version_info[:2], tinypkg.VERSION)"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    # bisect pypi checks --python before it asks the index (an empty file:// index here)
    (tmp_path / "empty").mkdir()
    res = subprocess.run([*run, "bisect", "pypi", "tinypkg", "--python", XY, "--index-url",
                          (tmp_path / "empty").as_uri(), "--", "true"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2 and "no such package" in res.stderr, res.stderr
    res = subprocess.run([*run, "bisect", "pypi", "tinypkg", "--python", "2.1", "--", "true"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2 and "looked in" in res.stderr and len(res.stderr.splitlines()) == 1


@pytest.mark.parametrize("pin", ["six==1.16.0\n--index-url=http://elsewhere", "six\r", "six\0"])
def test_a_requirement_with_a_line_break_is_refused(pin: str) -> None:
    # a pin with a secret reaches uv as a line of a requirements file: one pin, one line
    with pytest.raises(UsageError, match="cannot hold a line break"):
        VenvEnvironment(pins=(pin,))
