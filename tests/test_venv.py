"""The venv environment for real: uv builds it from pins, the cache reuses it."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from sleuth.environments.venv import VenvEnvironment
from sleuth.errors import EnvironmentBuildError


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


def test_cache_key_depends_on_pins_not_order(tmp_path: Path) -> None:
    a = VenvEnvironment(pins=("a==1", "b==2"), cache=tmp_path)
    b = VenvEnvironment(pins=("b==2", "a==1"), cache=tmp_path)
    c = VenvEnvironment(pins=("a==1", "b==3"), cache=tmp_path)
    assert a.path == b.path != c.path
    with pytest.raises(Exception, match="empty requirement"):
        VenvEnvironment(pins=(" ",))


def test_broken_interpreter_fails_cleanly(tmp_path: Path) -> None:
    env = VenvEnvironment(pins=(), python=str(tmp_path / "no-python"), cache=tmp_path)
    with pytest.raises(EnvironmentBuildError, match="uv venv failed"):
        env.prepare()
    assert not env.path.exists()
