"""Sources beside the catalog, each against a real counterpart: an HTTP server, a command, an MCP server."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sleuth.attribution.analyze import Attributor
from sleuth.attribution.config import Settings, SourceSpec
from sleuth.attribution.logs import LogInput
from sleuth.attribution.model import Action, Aggregation, Mode, SourceStatus
from sleuth.attribution.sources import Excerpt, consult_all, consult_one

HERE = Path(__file__).parent
TOKEN = "hf_" + "abcdefghijklmnopqrstuvwx1234"
XID_LOG = f"HF_TOKEN={TOKEN}\nNVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the bus.\n"
EXCERPT = Excerpt(text="the excerpt", root=None, findings=[], catalog={"action": "RESTART", "reason": "x"})


class _Handler(BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, bytes, float]] = {}
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        code, data, delay = type(self).answers[self.path]
        time.sleep(delay)
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (the timeout test)
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_source() -> Iterator[str]:
    _Handler.answers = {
        "/stop": (200, b'{"action": "stop", "reason": "LLM: config error"}', 0.0),
        "/restart": (200, b'{"action": "RESTART", "reason": "flaky link"}', 0.0),
        "/garbage": (200, b"not json", 0.0),
        "/bad-action": (200, b'{"action": "MAYBE"}', 0.0),
        "/500": (500, b"{}", 0.0),
        "/slow": (200, b'{"action": "STOP", "reason": "too late"}', 3.0),
    }
    _Handler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_source_answers_and_abstentions(http_source: str) -> None:
    ok = consult_one(SourceSpec(http=f"{http_source}/stop"), EXCERPT, 5)
    assert (ok.action, ok.status, ok.reason) == (Action.STOP, SourceStatus.OK, "LLM: config error")
    assert _Handler.seen[-1]["excerpt"] == "the excerpt"
    for path, status in (
        ("garbage", SourceStatus.ERROR),
        ("bad-action", SourceStatus.ERROR),
        ("500", SourceStatus.ERROR),
        ("slow", SourceStatus.TIMEOUT),
    ):
        got = consult_one(SourceSpec(http=f"{http_source}/{path}"), EXCERPT, 1.0)
        assert got.status is status and not got.votes, (path, got)
    refused = consult_one(SourceSpec(http="http://127.0.0.1:9/x"), EXCERPT, 2)
    assert refused.status is SourceStatus.ERROR


def test_command_source(tmp_path: Path) -> None:
    script = tmp_path / "analyzer.py"
    script.write_text(
        "import json, sys\ntext = sys.stdin.read()\n"
        "print(json.dumps({'action': 'STOP' if 'excerpt' in text else 'RESTART', 'reason': f'read {len(text)}'}))\n"
    )
    got = consult_one(SourceSpec(command=[sys.executable, str(script)]), EXCERPT, 20)
    assert (got.action, got.reason) == (Action.STOP, "read 11")
    slow = consult_one(SourceSpec(command=[sys.executable, "-c", "import time; time.sleep(30)"]), EXCERPT, 1)
    assert slow.status is SourceStatus.TIMEOUT and slow.seconds < 10
    bad = consult_one(SourceSpec(command=[sys.executable, "-c", "import sys; sys.exit(3)"]), EXCERPT, 10)
    assert bad.status is SourceStatus.ERROR and "exit 3" in bad.reason
    missing = consult_one(SourceSpec(command="no-such-analyzer-xyz"), EXCERPT, 10)
    assert missing.status is SourceStatus.ERROR


def test_mcp_source_over_stdio(tmp_path: Path) -> None:
    seen = tmp_path / "seen.txt"
    server = f"{sys.executable} {HERE / 'mcp_server.py'} {seen}"
    got = consult_one(SourceSpec(mcp=server), Excerpt("CUDA out of memory", None, [], {}), 60)
    assert (got.action, got.status) == (Action.STOP, SourceStatus.OK), got
    assert seen.read_text() == "CUDA out of memory"
    got = consult_one(SourceSpec(mcp=server), EXCERPT, 60)
    assert got.action is Action.RESTART
    broken = consult_one(SourceSpec(mcp=server, tool="broken"), EXCERPT, 60)
    assert broken.status is SourceStatus.ERROR
    slow = consult_one(SourceSpec(mcp=f"{sys.executable} {HERE / 'mcp_server.py'} {seen} 20"), EXCERPT, 3)
    assert slow.status is SourceStatus.TIMEOUT and slow.seconds < 15


def test_mcp_source_over_streamable_http(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path / "mcp.log"
    with open(log, "wb") as err:  # the child has its own descriptor: ours closes at once
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "mcp_server.py"), "-"],
            env={**os.environ, "SLEUTH_TEST_MCP_PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        got = consult_one(
            SourceSpec(mcp=f"http://127.0.0.1:{port}/mcp"), Excerpt("HIP out of memory", None, [], {}), 60
        )
        assert (got.action, got.status) == (Action.STOP, SourceStatus.OK), (got, log.read_text()[-2000:])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_sources_run_concurrently_each_with_its_timeout(http_source: str) -> None:
    specs = [SourceSpec(http=f"{http_source}/slow", timeout=1.0), SourceSpec(http=f"{http_source}/restart")]
    t0 = time.monotonic()
    got = consult_all(specs, EXCERPT, 30)
    assert time.monotonic() - t0 < 2.9
    assert [g.status for g in got] == [SourceStatus.TIMEOUT, SourceStatus.OK]


def test_attributor_aggregates_and_scrubs_what_sources_see(http_source: str, tmp_path: Path) -> None:
    log = tmp_path / "rank3.log"
    log.write_text(XID_LOG)
    settings = Settings(sources=(SourceSpec(http=f"{http_source}/stop", name="llm"),), mode=Mode.ENFORCE)
    report = Attributor(settings).attribute([LogInput.file(log)])
    assert report.decision.action is Action.STOP and report.decision.decided_by == "llm"
    assert report.root is not None and report.root.signature == "nvidia.xid.79"
    assert TOKEN not in json.dumps(_Handler.seen[-1]) and "<redacted>" in _Handler.seen[-1]["excerpt"]
    # all: the catalog (RESTART) outvotes the single STOP
    report = Attributor(Settings(sources=settings.sources, aggregation=Aggregation.parse("all"))).attribute(
        [LogInput.file(log)]
    )
    assert report.decision.action is Action.RESTART
    names = [s.name for s in report.sources]
    assert names == ["llm", "catalog"]


def test_the_root_is_among_the_lines_a_source_is_shown_after_a_storm_of_cascades(
    http_source: str, tmp_path: Path
) -> None:
    # the first 50 findings were shown: 3,000 ranks' watchdog lines, never the one root between them
    watchdog = "[rank{}]: [Rank 0] Watchdog caught collective operation timeout: ran for 600021 milliseconds before timing out.\n"
    log = tmp_path / "all.log"
    log.write_text(
        "".join(watchdog.format(r) for r in range(100))
        + "[rank1777]: RuntimeError: CUDA error: unspecified launch failure\n"
        + "".join(watchdog.format(r) for r in range(100, 3000))
    )
    settings = Settings(sources=(SourceSpec(http=f"{http_source}/restart", name="llm"),))
    report = Attributor(settings).attribute([LogInput.file(log)])
    assert report.root is not None and report.root.signature == "cuda.launch_failure"
    seen = _Handler.seen[-1]
    assert "unspecified launch failure" in seen["excerpt"]
    assert seen["findings"][0]["signature"] == "cuda.launch_failure" and len(seen["findings"]) == 50
