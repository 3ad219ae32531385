"""Fixtures of the attribution tests: a real ``sleuth serve`` started as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str
    db: Path
    stderr: Path

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(tmp: Path, *args: str, db: Path | None = None, name: str = "serve") -> Served:
    """``sleuth serve --port 0`` in a subprocess; returns once it answers /healthz."""
    db = db or tmp / "attr.db"
    port_file = tmp / f"{name}.port"
    port_file.unlink(missing_ok=True)
    err = tmp / f"{name}.stderr"
    with open(err, "ab") as err_file:  # the child has its own descriptor: ours closes at once
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sleuth",
                "serve",
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--db",
                str(db),
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            cwd=tmp,
            env={**os.environ, "COLUMNS": "200"},
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sleuth serve exited {proc.returncode}: {err.read_text()}")
        if port_file.exists():
            url = f"http://127.0.0.1:{port_file.read_text().strip()}"
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=5):
                    return Served(proc, url, db, err)
            except OSError:
                pass
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise AssertionError(f"sleuth serve did not start: {err.read_text()}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(*args: str, **kw: Any) -> Served:
        s = start_server(tmp_path, *args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
