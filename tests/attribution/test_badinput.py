"""Bad input to attribute, serve and supervise: exit 2, one line naming the file/key/flag, nothing written."""

from __future__ import annotations

import contextlib
import gzip
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.badinput import assert_usage_error, tree_state

GOOD_CATALOG = """version: 1
name: site
revision: 1
signatures:
  - id: site.flake
    regex: 'weka: stale handle'
    class: infrastructure
    role: root
    action: RESTART
    description: a flake
    docs: [https://example.org/runbook]
    match: ['weka: stale handle on /data']
    no_match: ['weka mounted']
"""

FILES: dict[str, str | bytes] = {
    "ok.log": "NVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the bus.\n",
    "binary.log": b"\x7fELF\x00\x00\x01\x02" * 64,
    "latin1.log": "caf\xe9 cr\xe8me: CUDA out of memory\n".encode("latin-1"),
    "broken.log.gz": b"\x1f\x8b\x08\x00garbage-not-deflate" * 4,
    "badyaml.yaml": "version: 1\nsignatures: [\n",
    "regex.yaml": GOOD_CATALOG.replace("'weka: stale handle'\n", "'weka: (stale'\n"),
    "fixture.yaml": GOOD_CATALOG.replace(
        "match: ['weka: stale handle on /data']", "match: ['weka stale handle']"
    ),
    "dup.yaml": GOOD_CATALOG.replace("site.flake", "cuda.oom"),
    "unknown.yaml": GOOD_CATALOG.replace("    role: root\n", "    role: root\n    colour: red\n"),
    "v7.yaml": GOOD_CATALOG.replace("version: 1", "version: 7"),
    "noblock.yaml": "gate:\n  x: 1\n",
    "cfg-unknown.yaml": "attribution:\n  bogus: 1\n",
    "cfg-mode.yaml": "attribution:\n  mode: loud\n",
    "cfg-agg.yaml": "attribution:\n  aggregation: most\n",
    "cfg-src.yaml": "attribution:\n  sources:\n    - http: http://127.0.0.1:1/x\n      command: echo\n",
    "cfg-regex.yaml": "attribution:\n  progress_regex: '(iteration'\n",
    "cfg-uregex.yaml": "attribution:\n  progress_regex: 'step\\u0031'\n",
    "cfg-dup.yaml": "attribution:\n  mode: shadow\n  mode: enforce\n",
    "cfg-budget.yaml": "attribution:\n  policy:\n    budgets:\n      RESTART: -2\n",
    "cfg-timeout.yaml": "attribution:\n  sources:\n    - command: echo\n      timeout: 0\n",
    "history.bad": "this is not a history file\nneither is this\n",
}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name, content in FILES.items():
        p = tmp_path / name
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    (tmp_path / "adir").mkdir()
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    (tmp_path / "gz.log.gz").write_bytes(gzip.compress(b"fine\n"))
    # corrupt past the 64 KiB head that is checked first: it was a traceback with exit 1 (STOP's code)
    text = b"".join(b"step %d %032x\n" % (i, (i * 2654435761) ** 3 % (1 << 128)) for i in range(100_000))
    data = bytearray(gzip.compress(text))
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(
        b ^ 0x5A for b in data[len(data) // 2 : len(data) // 2 + 64]
    )
    (tmp_path / "corrupt-mid.log.gz").write_bytes(bytes(data))
    for name, table in (("app.db", "users (id int)"), ("clash.db", "attributions (x int)")):
        with contextlib.closing(sqlite3.connect(tmp_path / name)) as c:
            c.execute(f"CREATE TABLE {table}")
            c.commit()
    return tmp_path


CASES: list[tuple[list[str], str | list[str]]] = [
    (["attribute"], "no LOG"),
    (["attribute", "nope.log"], "nope.log"),
    (["attribute", "adir"], ["adir", "directory"]),
    (["attribute", "loop1"], ["log loop1", "symlink"]),
    (["attribute", "ok.log", "--catalog", "loop1"], ["--catalog loop1", "symlink"]),
    (["attribute", "binary.log"], ["binary.log", "NUL"]),
    (["attribute", "latin1.log"], ["latin1.log", "UTF-8"]),
    (["attribute", "broken.log.gz"], ["broken.log.gz", "gzip"]),
    (["attribute", "corrupt-mid.log.gz"], ["corrupt-mid.log.gz", "gzip"]),
    (["attribute", "ok.log", "nope.log"], "nope.log"),
    (["attribute", "ok.log", "--catalog", "missing.yaml"], "--catalog missing.yaml"),
    (["attribute", "ok.log", "--catalog", "badyaml.yaml"], ["badyaml.yaml", "YAML"]),
    (["attribute", "ok.log", "--catalog", "regex.yaml"], ["regex.yaml", "signatures[0]", "compile"]),
    (["attribute", "ok.log", "--catalog", "fixture.yaml"], ["fixture.yaml", "match[0]"]),
    (["attribute", "ok.log", "--catalog", "dup.yaml"], ["cuda.oom", "twice"]),
    (["attribute", "ok.log", "--catalog", "unknown.yaml"], ["unknown.yaml", "colour"]),
    (["attribute", "ok.log", "--catalog", "v7.yaml"], ["v7.yaml", "version"]),
    (["attribute", "ok.log", "--catalog", "adir"], ["adir", "directory"]),
    (["attribute", "ok.log", "--config", "missing.yaml"], "missing.yaml"),
    (["attribute", "ok.log", "--config", "noblock.yaml"], ["noblock.yaml", "attribution"]),
    (["attribute", "ok.log", "--config", "cfg-unknown.yaml"], ["cfg-unknown.yaml", "attribution.bogus"]),
    (["attribute", "ok.log", "--config", "cfg-mode.yaml"], ["cfg-mode.yaml", "attribution.mode"]),
    (["attribute", "ok.log", "--config", "cfg-agg.yaml"], ["cfg-agg.yaml", "attribution.aggregation"]),
    (["attribute", "ok.log", "--config", "cfg-src.yaml"], ["cfg-src.yaml", "attribution.sources[0]"]),
    (["attribute", "ok.log", "--config", "cfg-regex.yaml"], ["cfg-regex.yaml", "progress_regex"]),
    (["attribute", "ok.log", "--config", "cfg-dup.yaml"], ["cfg-dup.yaml", "duplicate key"]),
    (["attribute", "ok.log", "--config", "cfg-budget.yaml"], ["cfg-budget.yaml", "budgets"]),
    (["attribute", "ok.log", "--config", "cfg-timeout.yaml"], ["cfg-timeout.yaml", "timeout"]),
    (["attribute", "ok.log", "--mode", "loud"], "--mode"),
    (["attribute", "ok.log", "--aggregation", "quorum:0"], "--aggregation"),
    (["attribute", "ok.log", "--aggregation", "most"], "--aggregation"),
    (["attribute", "ok.log", "--progress-regex", "(iter"], "--progress-regex"),
    # valid for str patterns, not for the bytes the scan runs on: it was a traceback
    (["attribute", "ok.log", "--progress-regex", "step\\u0031"], ["--progress-regex", "bytes"]),
    (["attribute", "ok.log", "--config", "cfg-uregex.yaml"], ["cfg-uregex.yaml", "progress_regex", "bytes"]),
    (["supervise", "--progress-regex", "\\N{DIGIT ONE}", "--", "true"], ["--progress-regex", "bytes"]),
    (["attribute", "ok.log", "--source-timeout", "0"], "--source-timeout"),
    (["attribute", "ok.log", "--http-source", "ftp://x"], "--http-source"),
    (["attribute", "ok.log", "--mcp-tool", "x"], "--mcp-tool"),
    (["attribute", "ok.log", "--history", "history.bad"], ["--history", "history.bad", "line 1"]),
    (["attribute", "ok.log", "--history", "adir"], ["--history", "directory"]),
    # a place that cannot be written (/proc takes no new files): both were tracebacks
    (["attribute", "ok.log", "--history", "/proc/1/h.jsonl"], ["--history /proc/1/h.jsonl", "cannot write"]),
    (
        ["supervise", "--log-dir", "/proc/1/sleuth-sup", "--", "true"],
        ["--log-dir /proc/1/sleuth-sup", "cannot"],
    ),
    (["attribute", "ok.log", "--max-no-progress-cycles", "-1"], "--max-no-progress-cycles"),
    (["attribute", "ok.log", "--bogus"], "--bogus"),
    (["serve", "--port", "70000"], "--port 70000"),
    (["serve", "--db", "adir"], ["--db", "directory"]),
    (["serve", "--db", "no/such/dir/x.db"], ["--db", "does not exist"]),
    (["serve", "--max-logs", "0"], "--max-logs"),
    (["serve", "--workers", "0"], "--workers"),
    (["serve", "--log-root", "nowhere"], "--log-root"),
    (["serve", "--db", "ok.log"], ["--db ok.log", "SQLite"]),
    # another program's database: it got our tables and WAL mode, then a traceback at startup
    (["serve", "--port", "0", "--db", "app.db"], ["app.db", "another program"]),
    (["serve", "--port", "0", "--db", "clash.db"], ["clash.db", "attributions", "job_id"]),
    (["serve", "--port", "0", "--port-file", "adir"], ["--port-file adir", "directory"]),
    (["serve", "--config", "cfg-mode.yaml"], "attribution.mode"),
    (["serve", "--catalog", "regex.yaml"], ["regex.yaml", "compile"]),
    (["supervise"], "no command"),
    (["supervise", "--max-restarts", "-1", "--", "true"], "--max-restarts"),
    (["supervise", "--decision-timeout", "0", "--", "true"], "--decision-timeout"),
    (["supervise", "--kill-grace", "-1", "--", "true"], ["--kill-grace -1", "zero or a positive"]),
    (["supervise", "--kill-grace", "abc", "--", "true"], ["--kill-grace", "abc"]),
    (["supervise", "--kill-grace", "nan", "--", "true"], ["--kill-grace nan", "zero or a positive"]),
    (["supervise", "--kill-grace", "1e9", "--", "true"], ["--kill-grace", "at most 3600"]),
    (["supervise", "--nodes", "2", "--", "true"], "--service"),
    (
        [
            "supervise",
            "--nodes",
            "2",
            "--node-rank",
            "5",
            "--service",
            "http://127.0.0.1:1",
            "--job-id",
            "j",
            "--",
            "true",
        ],
        "--node-rank",
    ),
    (["supervise", "--nodes", "2", "--service", "http://127.0.0.1:1", "--", "true"], "--job-id"),
    (["supervise", "--job-id", "bad id!", "--", "true"], "--job-id"),
    (["supervise", "--service", "ftp://x", "--", "true"], "--service"),
    (["supervise", "--attribution", "missing.yaml", "--", "true"], "missing.yaml"),
    (["supervise", "--attribution", "cfg-agg.yaml", "--", "true"], "attribution.aggregation"),
    (["supervise", "--mode", "loud", "--", "true"], "--mode"),
    (["supervise", "--log-dir", "ok.log/sub", "--", "true"], ["--log-dir ok.log/sub"]),
    (["supervise", "--", "no-such-command-xyz", "--flag"], ["no-such-command-xyz", "not found"]),
    (["supervise", "--", "./ok.log"], ["./ok.log", "executable"]),
    (["supervise", "--", "./adir"], ["./adir", "directory"]),
    (["supervise", "--catalog", "fixture.yaml", "--", "true"], "fixture.yaml"),
    (["schema", "catalogue"], "catalogue"),
]


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(("args", "mentions"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input(
    sleuth: Callable[..., object], files: Path, args: list[str], mentions: str | list[str]
) -> None:
    before = tree_state(files)
    res = sleuth(*args, cwd=files)
    assert_usage_error(res.rc, res.stdout, res.stderr, mentions, before=before, after=tree_state(files))
