"""``bisect pypi`` with more than one index, and uv failures that are not the release's: a local
index served by a thread (the fixtures of test_bisect_pypi_index), no network."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sleuth.bisect.index import list_releases
from sleuth.environments.venv import VenvEnvironment
from sleuth.errors import EnvironmentBuildError, InfrastructureError, UsageError
from tests.bisect.test_bisect_cli import doc, sleuth
from tests.bisect.test_bisect_pypi_index import TEST, _Handler, build_index


def test_extra_indexes_come_from_the_flags_else_uvs_variables_else_pips() -> None:
    from sleuth.bisect.index import extra_indexes_from_env

    env = {"UV_INDEX": "cu=https://a.example/whl/cu121 https://b.example/simple",
           "UV_EXTRA_INDEX_URL": "https://c.example/simple", "PIP_EXTRA_INDEX_URL": "https://pip.example/s"}  # fmt: skip
    assert [u for u, _ in extra_indexes_from_env((), env)] == [
        "https://a.example/whl/cu121",  # uv's `name=URL` form
        "https://b.example/simple",
        "https://c.example/simple",
    ]
    assert extra_indexes_from_env((), {"PIP_EXTRA_INDEX_URL": "https://pip.example/s/"}) == (
        ("https://pip.example/s", "$PIP_EXTRA_INDEX_URL"),
    )
    assert extra_indexes_from_env(("https://flag.example/s",), env) == (
        ("https://flag.example/s", "--extra-index-url"),
    )
    with pytest.raises(UsageError, match=r"\$UV_EXTRA_INDEX_URL 'nope'"):
        extra_indexes_from_env((), {"UV_EXTRA_INDEX_URL": "nope"})


def test_releases_of_an_extra_index_are_listed_and_installed_from_it(tmp_path: Path) -> None:
    from tests.badinput import assert_no_secret

    # the default index (PyPI's place) and a CUDA-like index whose builds carry a local label
    main_root = build_index(
        tmp_path / "main", {"1.0": {}, "1.1": {}, "1.2": {}, "1.3": {"body": "BROKEN = 1\n"}}
    )
    cuda_root = build_index(tmp_path / "cu", {"1.1+cu1": {}, "1.2+cu1": {"body": "BROKEN = 1\n"}})
    secret = "ExtraIndexPassw0rd"
    with _served(main_root) as main, _served(cuda_root) as cuda:
        env = {"UV_EXTRA_INDEX_URL": cuda.replace("http://", f"http://bob:{secret}@"), "UV_INDEX": "",
               "UV_CACHE_DIR": str(tmp_path / "uv")}  # fmt: skip
        res = sleuth("bisect", "pypi", "tinypkg", "--index-url", main, "--good", "1.0", "--bad", "1.3",
                     "--flaky", "off", "--json", "--output", "o", *TEST, cwd=tmp_path, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = doc(res)
    # 1.2+cu1 (the extra index's build of 1.2) is the first bad one; the default's 1.1 and 1.2 are
    # hidden by the extra index's builds of them, as uv hides them; 1.3, only on the default, installs
    assert (d["last_good"]["label"], d["first_bad"]["label"]) == ("1.1+cu1", "1.2+cu1"), d
    (run,) = (tmp_path / "o").glob("bisect/pypi/*")
    events = [json.loads(x) for x in (run / "journal.jsonl").read_text().splitlines()]
    assert next(e["labels"] for e in events if e["event"] == "candidates") == [
        "1.0",
        "1.1+cu1",
        "1.2+cu1",
        "1.3",
    ]
    source = next(e["source"] for e in events if e["event"] == "start")
    assert source["from_extra"] == {"1.1+cu1": 0, "1.2+cu1": 0}  # which index serves each
    assert_no_secret(secret, res.stdout, res.stderr, roots=[tmp_path / "o"])
    assert secret in (run / "secrets.json").read_text()


class _Unavailable(_Handler):
    """The index answers its pages and a 503 for every file: a server having a bad minute."""

    def do_GET(self) -> None:  # http.server's name
        if "/files/" in self.path:
            self.send_error(503)
            return
        super().do_GET()


@contextmanager
def _served(
    root: Path,
    handler: type[http.server.BaseHTTPRequestHandler] = _Handler,
    tls: ssl.SSLContext | None = None,
) -> Iterator[str]:
    """``root`` served by a thread (over TLS with ``tls``): the URL of its ``simple`` index."""
    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a, **k: handler(*a, directory=str(root), **k)
    )
    if tls is not None:
        srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{srv.server_address[1]}/simple"
    finally:
        srv.shutdown()
        srv.server_close()


def test_an_index_answering_503_is_an_error_resume_retries_not_a_release_that_does_not_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv"))
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    with _served(build_index(tmp_path / "idx", {"1.0": {}}), _Unavailable) as url:
        venv = VenvEnvironment(pins=("tinypkg==1.0",), cache=tmp_path / "cache", index_url=url)
        with pytest.raises(InfrastructureError) as err:
            venv.prepare()
    assert not isinstance(err.value, EnvironmentBuildError), err.value  # that would be a SKIP, for good
    assert "uv could not reach the index" in err.value.message and "503" in err.value.message
    assert not venv.path.exists()


class _Down(_Handler):
    """A 503 for 1.2's wheel while ``down`` is set: the index had a bad minute for that file."""

    down = threading.Event()

    def _refused(self) -> bool:
        if self.down.is_set() and "tinypkg-1.2-" in self.path:
            self.send_error(503)
            return True
        return False

    def do_GET(self) -> None:  # http.server's name
        if not self._refused():
            super().do_GET()

    def do_HEAD(self) -> None:  # http.server's name
        if not self._refused():
            super().do_HEAD()


def test_a_resume_counts_the_tests_it_replays_apart_from_the_errors_it_tests_again(tmp_path: Path) -> None:
    from tests.bisect.test_bisect_interrupts import PROGRAM

    versions = {
        "1.0": {},
        "1.1": {},
        "1.2": {},
        "1.3": {"body": "BROKEN = 1\n"},
        "1.4": {"body": "BROKEN = 1\n"},
    }
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache"), "UV_CACHE_DIR": str(tmp_path / "uv"),
           "UV_HTTP_RETRIES": "0", "UV_INDEX": "", "UV_EXTRA_INDEX_URL": ""}  # fmt: skip
    handler = type("H", (_Down,), {"down": threading.Event()})
    handler.down.set()
    with _served(build_index(tmp_path / "idx", versions), handler) as url:
        argv = ["bisect", "pypi", "tinypkg", "--index-url", url, "--good", "1.0", "--bad", "1.4", "--flaky", "off",
                "--output", "o", *TEST]  # fmt: skip
        # the whole search runs (1.2 an ERROR: its wheel answers 503), then a kill -9 at the report
        # (a Ctrl-C there finishes the report: the run would be done)
        first = subprocess.run([sys.executable, "-c", PROGRAM, "killed", *argv], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert first.returncode == -signal.SIGKILL, first.stderr
        (run,) = (tmp_path / "o").glob("bisect/pypi/*")
        tests = [
            e
            for e in map(json.loads, (run / "journal.jsonl").read_text().splitlines())
            if e["event"] == "test"
        ]
        errors = [e["label"] for e in tests if e["outcome"] == "error"]
        assert errors == ["1.2"], tests
        handler.down.clear()  # the index is back
        res = sleuth("bisect", "resume", str(run), cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    events = [json.loads(x) for x in (run / "journal.jsonl").read_text().splitlines()]
    resume = next(e for e in events if e["event"] == "resume")  # what the journal held (was replayed=4)
    assert (resume["journaled"], resume["errors"]) == (len(tests) - 1, 1), resume
    assert "first bad 1.3  (last good 1.2)" in res.stdout, res.stdout
    # 1.2 passes now, so the search needs only 1.3 of the journaled tests: what the resume did
    again = [e for e in events[events.index(resume) :] if e["event"] == "test"]
    assert [(e["label"], e["run"]) for e in again] == [("1.2", 2)]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed"] == {"replayed": 1, "retried": 1}, summary
    assert "resumed: 1 test(s) replayed from the journal, 1 run again in place of an ERROR" in res.stdout


def _private_ca(tmp_path: Path) -> ssl.SSLContext:
    """A server context whose certificate a private CA signed, as behind a company proxy."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=test-ca")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
            "-subj", "/CN=127.0.0.1")  # fmt: skip
    (tmp_path / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "leaf.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    return tls


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_an_untrusted_certificate_names_the_host_and_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = _private_ca(tmp_path)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv"))
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    for var in ("SSL_CERT_FILE", "SSL_CERT_DIR", "UV_NATIVE_TLS"):
        monkeypatch.delenv(var, raising=False)
    with _served(build_index(tmp_path / "idx", {"1.0": {}}), tls=tls) as url:
        # a long index path, as a mirror's: uv prints it twice, and the cut once left only
        # "invalid peer certificate: " at the end of the line
        long = url.replace("/simple", f"/{'mirror' * 33}/simple")
        with pytest.raises(InfrastructureError) as err:
            VenvEnvironment(pins=("tinypkg==1.0",), cache=tmp_path / "cache", index_url=long).prepare()
    msg, hint = err.value.message, err.value.hint or ""
    assert "could not verify the TLS certificate of 127.0.0.1" in msg, msg
    assert msg.endswith("invalid peer certificate: UnknownIssuer"), msg  # uv's own words, whole
    assert "SSL_CERT_FILE" in hint and "UV_NATIVE_TLS=1" in hint, hint
    # sleuth's own listing of the same index says the same
    with (
        _served(build_index(tmp_path / "idx2", {"1.0": {}}), tls=tls) as url,
        pytest.raises(InfrastructureError) as err,
    ):
        list_releases(url, "tinypkg")
    assert "the TLS certificate of 127.0.0.1 is not trusted" in err.value.message, err.value.message
    assert "SSL_CERT_FILE" in (err.value.hint or "")
