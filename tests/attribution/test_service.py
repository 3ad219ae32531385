"""The attribution service for real: uvicorn in a subprocess (or, to count what the app asks of its
store, in a thread of the test) on an ephemeral loopback port."""

from __future__ import annotations

import contextlib
import json
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sleuth.attribution.analyze import Attributor
from sleuth.attribution.config import Settings
from sleuth.attribution.service import ServiceConfig, build_app, wrap_limits
from sleuth.attribution.store import Store
from tests.attribution.conftest import Served

OOM = "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
XID = "NVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the bus.\n"
WATCHDOG = (
    "[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=5, OpType=ALLREDUCE, NumelIn=1, "
    "NumelOut=1, Timeout(ms)=600000) ran for 600021 milliseconds before timing out.\n"
)


def post(s: Served, job: str, cycle: Any, logs: list[tuple[str, str]], **kw: Any) -> tuple[int, Any]:
    body = {"job_id": job, "cycle_id": cycle, "logs": [{"name": n, "text": t} for n, t in logs], **kw}
    return s.call("POST", "/v1/attributions", body)


def test_submit_wait_and_decide(serve: Callable[..., Served]) -> None:
    s = serve("--gather", "0", "--mode", "enforce")
    code, rec = post(s, "job1", 0, [("rank0.log", OOM)])
    assert code == 202 and rec["status"] in ("pending", "running", "done") and not rec["deduplicated"]
    code, rec = s.call("GET", "/v1/attributions/job1/0?wait=30")
    assert code == 200 and rec["status"] == "done"
    assert rec["decision"]["action"] == "STOP" and rec["decision"]["effective_action"] == "STOP"
    assert rec["root"]["signature"] == "cuda.oom"
    assert s.call("GET", "/v1/attributions/job1/99")[0] == 404
    code, health = s.call("GET", "/healthz")
    assert code == 200 and health["records"] == {"done": 1}
    code, api = s.call("GET", "/openapi.json")
    assert code == 200 and "/v1/attributions" in api["paths"]


def test_dedupe_and_gather_across_nodes(serve: Callable[..., Served]) -> None:
    s = serve("--gather", "10")
    # the cascade arrives first, from node 0; the root from node 2
    assert post(s, "j", 3, [("rank0.log", WATCHDOG)], node="0", nodes=2)[0] == 202
    code, again = post(s, "j", 3, [("rank0.log", WATCHDOG)], node="0", nodes=2)
    assert code == 202 and again["deduplicated"] and again["posted_nodes"] == ["0"]
    assert s.call("GET", "/v1/attributions/j/3?wait=0.5")[1]["status"] == "pending"  # waiting for node 2
    assert post(s, "j", 3, [("rank3.log", XID)], node="2", nodes=2)[0] == 202
    rec = s.call("GET", "/v1/attributions/j/3?wait=30")[1]
    assert rec["status"] == "done" and rec["root"]["signature"] == "nvidia.xid.79"
    assert rec["posted_nodes"] == ["0", "2"]
    late = post(s, "j", 3, [("rank1.log", WATCHDOG)], node="1", nodes=2)[1]
    assert late["late_nodes"] == ["1"] and late["status"] == "done"


def test_a_log_text_with_a_lone_surrogate_is_accepted_not_a_500(serve: Callable[..., Served]) -> None:
    # JSON's "\udcff" (a client that read the log's bytes with surrogateescape) once made SQLite fail
    s = serve("--gather", "0")
    code, rec = post(s, "j", 0, [("rank0.log", "caf\udce9\n" + OOM)])
    assert code == 202, rec
    rec = s.call("GET", "/v1/attributions/j/0?wait=30")[1]
    assert rec["status"] == "done" and rec["root"]["signature"] == "cuda.oom"


def test_sigterm_stops_the_server_while_a_client_hangs_mid_request(serve: Callable[..., Served]) -> None:
    # a node that hung mid-POST (its body never finished) once kept the server up for ever
    s = serve("--gather", "0")
    host, port = s.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/attributions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        time.sleep(0.5)  # the server is reading the body
        s.proc.send_signal(signal.SIGTERM)
        try:
            s.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("sleuth serve did not stop on SIGTERM while a request was open")


def test_outcome_written_once(serve: Callable[..., Served]) -> None:
    s = serve("--gather", "0")
    post(s, "j", "c1", [("a", XID)])
    assert s.call("GET", "/v1/attributions/j/c1/outcome")[1] == {"outcome": None}
    code, got = s.call("PUT", "/v1/attributions/j/c1/outcome", {"action": "RESTART", "decided_by": "catalog"})
    assert code == 200 and got["recorded"]
    code, got = s.call("PUT", "/v1/attributions/j/c1/outcome", {"action": "STOP"})
    assert code == 409 and got["outcome"]["action"] == "RESTART"
    assert s.call("GET", "/v1/attributions/j/c1/outcome?wait=1")[1]["outcome"]["action"] == "RESTART"
    assert s.call("PUT", "/v1/attributions/nope/1/outcome", {"action": "STOP"})[0] == 404


def test_limits_and_malformed_requests(serve: Callable[..., Served]) -> None:
    s = serve("--max-body-mb", "1", "--max-logs", "3", "--max-log-mb", "0.25")
    big = "x" * (2 * 1024 * 1024)
    code, body = post(s, "j", 1, [("a", big)])
    assert code == 413 and "larger than" in body["detail"]
    code, body = post(s, "j", 1, [("a", "y" * 300_000)])
    assert code == 413 and "log a" in body["detail"]
    code, body = post(s, "j", 1, [(f"l{i}", "z") for i in range(4)])
    assert code == 422 and "at most 3" in body["detail"]
    assert s.call("POST", "/v1/attributions", raw=b"{not json")[0] == 422
    for raw in (b'{"job_id": "caf\xe9"}', b"[" * 100_000):  # not UTF-8; nested too deep
        code, body = s.call("POST", "/v1/attributions", raw=raw)
        assert code == 422 and "not JSON" in body["detail"], (code, body)
    assert post(s, "j", 1, [])[0] == 422
    assert post(s, "bad job id!", 1, [("a", "z")])[0] == 422
    assert (
        s.call("POST", "/v1/attributions", {"job_id": "j", "cycle_id": 1, "logs": [], "extra": 1})[0] == 422
    )
    code, body = s.call(
        "POST", "/v1/attributions", {"job_id": "j", "cycle_id": 1, "paths": ["/etc/hostname"]}
    )
    assert code == 422 and "log-root" in body["detail"]
    assert s.call("GET", "/healthz")[1]["records"] == {}  # nothing was accepted


def test_kill_9_loses_no_accepted_request(serve: Callable[..., Served], tmp_path: Path) -> None:
    slow = tmp_path / "slow.py"
    slow.write_text("import time, sys; sys.stdin.read(); time.sleep(60)\n")
    s = serve(
        "--gather",
        "0",
        "--workers",
        "1",
        "--command-source",
        f"{sys.executable} {slow}",
        "--source-timeout",
        "120",
        name="first",
    )
    for i in range(5):
        assert post(s, "job", i, [(f"r{i}.log", OOM if i % 2 else XID)])[0] == 202
    time.sleep(0.5)
    s.stop(signal.SIGKILL)  # mid-analysis: every record is pending or running
    assert s.proc.returncode == -signal.SIGKILL
    # a second kill -9 in a row, while the restarted service takes the records up again
    s2 = serve(
        "--gather", "0", "--workers", "1", "--command-source", f"{sys.executable} {slow}", db=s.db, name="mid"
    )
    post(s2, "job", 5, [("r5.log", XID)])
    time.sleep(0.5)
    s2.stop(signal.SIGKILL)
    again = serve("--gather", "0", db=s.db, name="second")  # same database, no slow source
    assert again.call("GET", "/v1/attributions/job/5?wait=60")[1]["status"] == "done"
    for i in range(5):
        rec = again.call("GET", f"/v1/attributions/job/{i}?wait=60")[1]
        assert rec["status"] == "done", rec
        assert rec["root"]["signature"] == ("cuda.oom" if i % 2 else "nvidia.xid.79")


def test_history_across_cycles_stops_a_repeating_root(serve: Callable[..., Served]) -> None:
    s = serve("--gather", "0", "--mode", "enforce")
    iam = "RuntimeError: CUDA error: an illegal memory access was encountered\n"
    actions = []
    for cycle in range(2):
        post(s, "hjob", cycle, [("r.log", iam)], progress=False)
        actions.append(s.call("GET", f"/v1/attributions/hjob/{cycle}?wait=30")[1]["decision"]["action"])
    assert actions == ["RESTART", "STOP"]


def test_secrets_are_scrubbed_before_storage(serve: Callable[..., Served]) -> None:
    s = serve("--gather", "0")
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0"
    post(
        s,
        "sj",
        0,
        [
            (
                "r.log",
                f"export GITHUB_TOKEN={token}\n{OOM}{token} in the same line as CUDA out of memory. Tried to allocate\n",
            )
        ],
    )
    rec = s.call("GET", "/v1/attributions/sj/0?wait=30")[1]
    assert rec["status"] == "done"
    s.stop()
    for p in s.db.parent.glob(s.db.name + "*"):
        assert token.encode() not in p.read_bytes(), p


def _raw_request(s: Served, head: bytes, body: bytes) -> bytes:
    """Send ``head`` and the start of a body on a raw socket, then stall; what the server answers
    until it closes the connection (the socket's timeout only guards the test)."""
    port = int(s.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + body)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    return got


def test_a_client_that_stalls_its_body_is_answered_408_and_let_go(serve: Callable[..., Served]) -> None:
    # headers with a large Content-Length, then a few bytes and nothing: it held its connection for ever
    s = serve("--body-timeout", "1", "--max-body-mb", "1")
    head = (
        b"POST /v1/attributions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 500000\r\n\r\n"
    )
    got = _raw_request(s, head, b'{"job_id": "j", ')
    status, _, rest = got.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout", got[:300]
    assert b"not received within 1 s" in rest and rest.count(b"\n{") == 1
    # an oversize Content-Length whose body never comes: 413, not a wait for ever
    over = head.replace(b"500000", b"5000000")
    assert _raw_request(s, over, b"{").startswith(b"HTTP/1.1 413 ")
    assert s.call("GET", "/healthz")[0] == 200  # the server goes on


def _trickle(s: Served, data: bytes, guard_s: float = 60) -> bytes:
    """Send ``data`` a byte at a time (a slowloris), reading what the server answers, until it
    closes the connection (``guard_s`` only guards the test: the server held it for ever)."""
    port = int(s.url.rsplit(":", 1)[1])
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=guard_s) as sock:
        deadline = time.monotonic() + guard_s
        for byte in (data[i : i + 1] for i in range(len(data))):
            try:
                sock.sendall(byte)
            except OSError:  # closed by the server
                break
            if select.select([sock], [], [], 0.2)[0]:
                break
            assert time.monotonic() < deadline, "the server kept the connection"
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                got += chunk
    return got


def test_a_client_that_trickles_its_headers_is_let_go(serve: Callable[..., Served]) -> None:
    # a slowloris: request headers a byte at a time never complete; uvicorn has no bound on the
    # time they take, and each such client held a connection for ever
    s = serve("--header-timeout", "1")
    head = b"POST /v1/attributions HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 4000
    got = _trickle(s, head)
    status, _, rest = got.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout", got[:300]
    assert b'{"detail": "request headers not received within 1 s"}' in rest
    # a connection that sends nothing is closed without an answer; a kept-alive one too, after
    # its response, and its next request's headers are bounded the same way
    assert _trickle(s, b"") == b""
    port = int(s.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHo")
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    assert got.startswith(b"HTTP/1.1 200 OK") and got.count(b"HTTP/1.1 408 Request Timeout") == 1, got
    assert s.call("GET", "/healthz")[0] == 200  # the server goes on


def _hold_write_lock(db: Path) -> sqlite3.Connection:
    """Another program's write transaction on the service's database (SQLite: one writer)."""
    conn = sqlite3.connect(db, timeout=10, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def _wait_for_text(path: Path, text: str) -> None:
    deadline = time.monotonic() + 60
    while text not in path.read_text(errors="replace"):
        assert time.monotonic() < deadline, path.read_text(errors="replace")[-2000:]
        time.sleep(0.05)


def test_a_locked_database_is_retried_with_backoff_then_answered_503(serve: Callable[..., Served]) -> None:
    # a database error was a 500 (a request) or retried every second for ever (an analysis, whose
    # record then stayed pending for ever)
    s = serve("--gather", "2", "--db-timeout", "0.1")
    lock = _hold_write_lock(s.db)
    got: dict[str, Any] = {}
    poster = threading.Thread(target=lambda: got.update(first=post(s, "j", 0, [("rank0.log", OOM)])))
    poster.start()
    _wait_for_text(s.stderr, "job j cycle 0: database error (database is locked); try 1 of 6")
    assert s.call("GET", "/healthz")[0] == 200  # the others are answered meanwhile
    lock.rollback()
    poster.join(60)
    assert got["first"][0] == 202
    lock.execute("BEGIN IMMEDIATE")
    code, body = post(s, "j", 1, [("rank0.log", OOM)])
    assert code == 503 and body["detail"] == (
        "job j cycle 1: the database is unavailable (database is locked) after 6 tries; try again later"
    )
    lock.rollback()
    # an analysis whose database stays locked is given up, and says so
    assert post(s, "j", 2, [("rank0.log", OOM)], nodes=2)[0] == 202  # analysed after --gather 2 s
    lock.execute("BEGIN IMMEDIATE")
    code, rec = s.call("GET", "/v1/attributions/j/2?wait=60")
    assert code == 200 and rec["status"] == "error", rec
    assert rec["error"] == "the database failed (database is locked) after 6 tries; post the logs again"
    lock.rollback()
    lock.close()


@contextlib.contextmanager
def _served_in_process(config: ServiceConfig) -> Iterator[str]:
    """The service's app on real uvicorn in a thread of this process, on an ephemeral loopback port
    (in this process, so a test can count what the app asks of its store)."""
    import uvicorn

    app = wrap_limits(build_app(config, Attributor(Settings(), env={})), config)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(
            uvicorn.Config(
                app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5
            )
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn")
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while not server.started:
                assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.02)
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(60)


def _http(url: str, method: str = "GET", body: Any = None, timeout: float = 60) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, json.loads(resp.read())


def test_waiting_clients_read_the_database_only_when_their_record_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each waiting client read its record every 50 ms, each read a hop to the thread pool (40
    # workers): 60 followers waiting for a decision took 1,200 hops a second and every other
    # request queued behind them (a plain GET went from 2 ms to 0.3-0.9 s)
    reads = {"j": 0, "k": 0}
    counted = threading.Lock()
    get = Store.get

    def spy(self: Store, job_id: str, cycle_id: str) -> dict[str, Any] | None:
        if not threading.current_thread().name.startswith("sleuth-serve"):  # not the analysis workers
            with counted:
                reads[job_id] = reads.get(job_id, 0) + 1
        return get(self, job_id, cycle_id)

    monkeypatch.setattr(Store, "get", spy)

    def waiting() -> int:
        with counted:
            return reads["j"]

    config = ServiceConfig(db=tmp_path / "attr.db", gather_s=600)
    with _served_in_process(config) as url:
        log = [{"name": "rank3.log", "text": XID}]
        first = {"job_id": "j", "cycle_id": "0", "logs": log, "nodes": 2, "node": "0"}
        assert _http(url + "/v1/attributions", "POST", first)[0] == 202  # waits for node 1
        assert _http(url + "/v1/attributions", "POST", {**first, "job_id": "k"})[0] == 202
        answers: list[tuple[int, Any]] = []

        def wait_for(path: str) -> None:
            try:
                answers.append(_http(url + path, timeout=150))  # the timeout: a hang guard only
            except OSError as exc:  # the server stopped (the test failed): said by the asserts
                answers.append((0, repr(exc)))

        waiters = [
            threading.Thread(target=wait_for, args=("/v1/attributions/j/0?wait=120",)) for _ in range(60)
        ]
        base = waiting()
        for t in waiters:
            t.start()
        deadline = time.monotonic() + 60
        while waiting() < base + 60:  # each waiter read the record once
            assert time.monotonic() < deadline, reads
            time.sleep(0.02)
        # the others are answered while the 60 wait, and the waiters read nothing more meanwhile
        assert _http(url + "/healthz")[0] == 200
        assert _http(url + "/v1/attributions/k/0")[1]["status"] == "pending"
        time.sleep(0.5)  # ten polls of the old loop
        assert waiting() == base + 60 and not answers, (reads, answers)
        # node 1 posts: the analysis runs, and every waiter is answered with its decision
        assert _http(url + "/v1/attributions", "POST", {**first, "node": "1"})[0] == 202
        for t in waiters:
            t.join(150)
        assert len(answers) == 60 and {(code, rec["status"]) for code, rec in answers} == {(200, "done")}
        assert {rec["root"]["signature"] for _, rec in answers} == {"nvidia.xid.79"}
        assert waiting() <= base + 60 * 5, reads  # a read per change (posted, claimed, finished)
        # followers waiting for the leader's outcome: woken by its PUT
        answers.clear()
        waiters = [
            threading.Thread(target=wait_for, args=("/v1/attributions/j/0/outcome?wait=120",))
            for _ in range(60)
        ]
        base = waiting()
        for t in waiters:
            t.start()
        deadline = time.monotonic() + 60
        while waiting() < base + 60:
            assert time.monotonic() < deadline, reads
            time.sleep(0.02)
        time.sleep(0.5)
        assert waiting() == base + 60 and not answers, (reads, answers)
        outcome = {"action": "RESTART", "decided_by": "catalog", "node": "0"}
        assert _http(url + "/v1/attributions/j/0/outcome", "PUT", outcome)[0] == 200
        for t in waiters:
            t.join(150)
        assert len(answers) == 60 and {rec["outcome"]["action"] for _, rec in answers} == {"RESTART"}
