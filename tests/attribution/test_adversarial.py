"""Adversarial paths of attribute, serve and supervise: planted secrets, pipes, kill -9 and reruns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.attribution.conftest import Served
from tests.badinput import assert_no_secret, assert_usage_error, tree_state
from tests.conftest import pid_alive, wait_dead

W = Path(__file__).parent / "workloads"
OOM = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."
AWS = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "hf_" + "PlantedToken0123456789"
ARG_SECRET = "hunter2hunter2"
URL_PASS = "s3cretUrlPass"

ANALYZER = """import sys
sys.stdin.read()
print('{"action": "STOP", "reason": "args %s"}' % " ".join(sys.argv[1:]))
"""


#: ``sleuth supervise --log-dir sup`` (each test runs it in its tmp_path)
SUPERVISE = [sys.executable, "-m", "sleuth", "supervise", "--log-dir", "sup"]


def _assert_first_cycle_is_oom(tmp: Path) -> None:
    evs = [json.loads(x) for x in (tmp / "sup" / "cycles.jsonl").read_text().splitlines()]
    cycle = next(e for e in evs if e["event"] == "cycle")
    assert (cycle["attribution"] or {}).get("root", {}).get("signature") == "cuda.oom", evs


def _planted(tmp: Path) -> dict[str, str]:
    (tmp / "an.py").write_text(ANALYZER)
    return {"AWS_SECRET_ACCESS_KEY": AWS, "HF_TOKEN": TOKEN}


def test_attribute_hides_inherited_env_and_source_argv_secrets(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    env = _planted(tmp_path)
    (tmp_path / "r.log").write_text(f"{OOM} key={AWS}\n")
    hist = tmp_path / "h.jsonl"
    args = [
        "attribute",
        "r.log",
        "--history",
        hist,
        "--command-source",
        f"{sys.executable} an.py --password {ARG_SECRET}",
        "--http-source",
        f"http://admin:{URL_PASS}@127.0.0.1:9/x",
        "--source-timeout",
        "5",
    ]
    res = sleuth(*args, "--json", env=env)
    human = sleuth(*args, env=env)
    assert res.rc == 0, res.stderr
    doc = res.json()
    assert doc["root"]["signature"] == "cuda.oom" and "<redacted>" in doc["root"]["text"]
    assert doc["decision"]["decided_by"].startswith("command:")
    for secret in (AWS, ARG_SECRET, URL_PASS):
        assert_no_secret(secret, res.stdout, res.stderr, human.stdout, human.stderr, hist.read_text())


def test_supervise_hides_the_workload_argv_env_and_source_secrets(tmp_path: Path) -> None:
    env = _planted(tmp_path)
    script = tmp_path / "wl.py"
    script.write_text(
        "import os, sys\n"
        f"print({OOM!r}, *sys.argv[1:], os.environ['AWS_SECRET_ACCESS_KEY'], flush=True)\n"
        "sys.exit(1)\n"
    )
    r = subprocess.run(
        [
            *SUPERVISE,
            "--max-restarts",
            "0",
            "--command-source",
            f"{sys.executable} an.py --api-key={ARG_SECRET}",
            "--",
            sys.executable,
            str(script),
            "--password",
            ARG_SECRET,
            f"--db=https://u:{URL_PASS}@db/x",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, **env},
    )
    assert r.returncode == 1, r.stderr
    cycles = (tmp_path / "sup" / "cycles.jsonl").read_text()
    assert "cuda.oom" in cycles and "<redacted>" in cycles
    assert ARG_SECRET in (tmp_path / "sup" / "cycle-000" / "output.log").read_text()  # the workload's own
    for secret in (AWS, ARG_SECRET, URL_PASS):
        assert_no_secret(secret, r.stdout, r.stderr, cycles)


def test_serve_scrubs_log_names_and_outcomes_and_echoes_no_rejected_input(
    serve: Callable[..., Served],
) -> None:
    s = serve("--gather", "0")
    code, _ = s.call(
        "POST",
        "/v1/attributions",
        {"job_id": "j", "cycle_id": "0", "logs": [{"name": f"rank0-{TOKEN}.log", "text": OOM + "\n"}]},
    )
    assert code == 202
    rec = s.call("GET", "/v1/attributions/j/0?wait=30")[1]
    assert rec["status"] == "done" and rec["root"]["signature"] == "cuda.oom"
    code, put = s.call(
        "PUT",
        "/v1/attributions/j/0/outcome",
        {"action": "STOP", "reason": f"token {TOKEN}", "decided_by": f"https://u:{URL_PASS}@h/x"},
    )
    assert code == 200 and put["recorded"]
    code, bad = s.call(
        "POST",
        "/v1/attributions",
        {"job_id": "j", "cycle_id": "1", "logs": [{"name": "r.log", "txt": f"{OOM} {TOKEN}"}]},
    )
    assert code == 422 and "txt" in json.dumps(bad)
    got = [json.dumps(x) for x in (rec, put, bad, s.call("GET", "/v1/attributions/j/0/outcome")[1])]
    s.stop()
    for secret in (TOKEN, URL_PASS):
        assert_no_secret(secret, *got)
        for p in s.db.parent.glob(s.db.name + "*"):
            assert secret.encode() not in p.read_bytes(), p


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["attribute", "f/pipe"], ["log f/pipe", "regular file"]),
        (["attribute", "w/ok.log", "--config", "f/pipe"], ["f/pipe", "regular file"]),
        (["attribute", "w/ok.log", "--catalog", "f/pipe"], ["--catalog f/pipe", "regular file"]),
        (["attribute", "w/ok.log", "--history", "f/pipe"], ["--history f/pipe", "regular file"]),
        (["supervise", "--attribution", "f/pipe", "--", "true"], ["f/pipe", "regular file"]),
    ],
)
def test_a_fifo_is_refused_not_waited_on(
    sleuth: Callable[..., Any], tmp_path: Path, args: list[str], mentions: list[str]
) -> None:
    (tmp_path / "f").mkdir()
    os.mkfifo(tmp_path / "f" / "pipe")  # nobody writes to it: opening it to read would block forever
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "ok.log").write_text(OOM + "\n")
    roots = [tmp_path / "w", tmp_path / "runs", tmp_path / "sleuth-supervise"]  # not f/: reading blocks
    before = tree_state(*roots)
    res = sleuth(*args, timeout=30)
    assert_usage_error(res.rc, res.stdout, res.stderr, mentions, before=before, after=tree_state(*roots))


def test_dev_null_stays_usable_as_a_history(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "r.log").write_text(OOM + "\n")
    res = sleuth("attribute", "r.log", "--history", os.devnull, "--json")
    assert res.rc == 0 and res.json()["root"]["signature"] == "cuda.oom", res.stderr


def _start_sleeper(tmp: Path, pid_file: Path) -> subprocess.Popen[bytes]:
    pid_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            *SUPERVISE,
            "--max-restarts",
            "2",
            "--",
            sys.executable,
            str(W / "sleeper.py"),
            str(pid_file),
            str(tmp / "got"),
        ],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_file.exists(), "the workload did not start"
    return proc


def test_kill_9_twice_then_a_rerun_stops_the_orphans_and_continues_the_cycles(tmp_path: Path) -> None:
    sup = tmp_path / "sup"
    orphans = []
    for i in range(2):
        proc = _start_sleeper(tmp_path, tmp_path / f"pid{i}")
        if i == 1:  # a second supervisor on the same log dir while one runs: refused, nothing touched
            busy = subprocess.run(
                [*SUPERVISE, "--", "true"],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert busy.returncode == 2 and "in use" in busy.stderr, busy.stderr
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        orphans.append(int((tmp_path / f"pid{i}").read_text()))
        assert pid_alive(orphans[-1])  # kill -9 leaves the workload running: the rerun must stop it
        if i == 1:
            assert wait_dead(orphans[0]), "the first rerun left the first orphan running"
    done = subprocess.run(
        [*SUPERVISE, "--", sys.executable, "-c", "pass"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert wait_dead(orphans[1])
    # the user is told, not only the cycles file
    assert "sleuth supervise: stopped 1 workload process group(s) left running by a killed supervisor" in (
        done.stderr
    ), done.stderr
    evs = [json.loads(x) for x in (sup / "cycles.jsonl").read_text().splitlines()]
    cyc = [(e["cycle"], e["outcome"]) for e in evs if e["event"] == "cycle"]
    assert cyc == [(0, "lost"), (1, "lost"), (2, "done")], cyc
    assert (sup / "cycle-000" / "output.log").read_text().count("running") == 1
    assert (sup / "cycle-002" / "output.log").exists()


def test_ctrl_c_while_the_decision_is_awaited_stops_at_once_and_starts_no_cycle(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text("import sys, time\nsys.stdin.read()\ntime.sleep(60)\n")
    proc = subprocess.Popen(
        [
            *SUPERVISE,
            "--command-source",
            f"{sys.executable} slow.py",
            "--source-timeout",
            "60",
            "--",
            sys.executable,
            "-c",
            f"print({OOM!r}); raise SystemExit(1)",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = tmp_path / "sup" / "cycle-000" / "output.log"
    deadline = time.monotonic() + 60
    while not (out.exists() and "OutOfMemoryError" in out.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the workload has failed; the supervisor waits for the slow source's verdict
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)  # not the source's 60 s
    assert proc.returncode == 130, err
    evs = [json.loads(x) for x in (tmp_path / "sup" / "cycles.jsonl").read_text().splitlines()]
    assert [e["cycle"] for e in evs if e["event"] == "cycle_start"] == [0], evs
    assert [e["outcome"] for e in evs if e["event"] == "cycle"] == ["signalled"], evs


def test_an_http_source_url_with_credentials_authenticates_and_hides_them(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen: list[str | None] = []

    class Verdict(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers.get("Authorization"))
            body = b'{"action": "STOP", "reason": "authenticated"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Verdict)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "r.log").write_text(f"{OOM}\n")
        url = f"http://alice:{URL_PASS}@127.0.0.1:{server.server_port}/verdict"
        res = sleuth("attribute", "r.log", "--http-source", url, "--aggregation", "priority", "--json")
    finally:
        server.shutdown()
        server.server_close()
    assert res.rc == 0, res.stderr
    assert seen == ["Basic " + base64.b64encode(f"alice:{URL_PASS}".encode()).decode()]
    doc = res.json()
    assert doc["sources"][0]["status"] == "ok" and doc["decision"]["reason"].startswith("authenticated")
    assert_no_secret(URL_PASS, res.stdout, res.stderr)


def test_serve_paths_with_a_symlink_loop_or_a_nul_byte_are_422(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    root = tmp_path / "logs"
    root.mkdir()
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    (root / "short.log").write_bytes(b"caf\xe9\n")  # the invalid byte is near the end of a small file
    s = serve("--log-root", str(root))
    for path in (root / "a", f"{root}/x\x00y", root / "short.log"):
        code, body = s.call(
            "POST", "/v1/attributions", {"job_id": "p", "cycle_id": "1", "paths": [str(path)]}
        )
        assert code == 422, (path, code, body)
    assert s.call("GET", "/healthz")[1]["records"] == {}


def test_a_signal_before_the_first_cycle_starts_no_workload(tmp_path: Path) -> None:
    from sleuth.attribution.supervise import SuperviseConfig, Supervisor

    marker = tmp_path / "ran"
    sup = Supervisor(
        SuperviseConfig(
            argv=(sys.executable, "-c", f"open({str(marker)!r}, 'w')"),
            env=dict(os.environ),
            log_dir=tmp_path / "sup",
        )
    )
    sup._on_signal(signal.SIGINT, None)  # Ctrl-C while the supervisor was still starting
    assert sup.run() == 130
    assert not marker.exists()
    assert "cycle_start" not in (tmp_path / "sup" / "cycles.jsonl").read_text()


def test_a_torn_last_line_left_by_kill_9_is_dropped_from_history_and_cycles(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    from sleuth.attribution.supervise import SuperviseConfig, Supervisor

    (tmp_path / "r.log").write_text(OOM + "\n")
    hist = tmp_path / "h.jsonl"
    hist.write_text(
        '{"cycle": 0, "root": "cuda.oom", "progress": null, "action": "STOP", "t": 1}\n{"cycle": 1, "ro'
    )
    assert sleuth("attribute", "r.log", "--history", hist).rc == 0
    lines = [json.loads(x) for x in hist.read_text().splitlines()]
    assert [x["cycle"] for x in lines] == [0, 1]

    sup = tmp_path / "sup"
    sup.mkdir()
    (sup / "cycles.jsonl").write_text(
        '{"event": "cycle_start", "cycle": 0, "t": 1}\n'
        '{"event": "cycle", "cycle": 0, "outcome": "restart", "rc": 1, "progress": null}\n'
        '{"event": "cycle_start", "cycle": 1, "t": 2}\n{"event": "cyc'
    )
    cfg = SuperviseConfig(argv=(sys.executable, "-c", "pass"), env=dict(os.environ), log_dir=sup)
    assert Supervisor(cfg).run() == 0
    evs = [json.loads(x) for x in (sup / "cycles.jsonl").read_text().splitlines()]  # every line whole
    assert [(e["cycle"], e["outcome"]) for e in evs if e["event"] == "cycle"] == [
        (0, "restart"),
        (1, "lost"),
        (2, "done"),
    ]


def test_cycles_lost_to_a_killed_supervisor_spend_the_restart_budget(tmp_path: Path) -> None:
    # a supervisor killed with its workload every cycle (an OOM that takes the node's processes)
    # was restarted by the scheduler and restarted the workload for ever: lost cycles cost nothing
    from sleuth.attribution.supervise import SuperviseConfig, Supervisor

    sup = tmp_path / "sup"
    sup.mkdir()
    (sup / "cycles.jsonl").write_text(
        '{"event": "cycle_start", "cycle": 0, "t": 1}\n'
        '{"event": "cycle", "cycle": 0, "outcome": "lost", "t": 2}\n'
        '{"event": "cycle_start", "cycle": 1, "t": 3}\n'
        '{"event": "cycle", "cycle": 1, "outcome": "lost", "t": 4}\n'
        '{"event": "cycle_start", "cycle": 2, "t": 5}\n'  # killed again: recorded lost at take-up
    )
    cfg = SuperviseConfig(argv=(sys.executable, "-c", "raise SystemExit(1)"), env=dict(os.environ),
                          log_dir=sup, max_restarts=3)  # fmt: skip
    assert Supervisor(cfg).run() != 0
    evs = [json.loads(x) for x in (sup / "cycles.jsonl").read_text().splitlines()]
    got = [(e["cycle"], e["outcome"], e.get("decided_by")) for e in evs if e["event"] == "cycle"]
    assert got == [(0, "lost", None), (1, "lost", None), (2, "lost", None), (3, "stop", "budget")], got


def test_a_log_over_the_services_limit_is_sent_as_a_shorter_tail(
    tmp_path: Path, serve: Callable[..., Served]
) -> None:
    s = serve("--max-log-mb", "0.25", "--gather", "0")
    script = tmp_path / "chatty.py"
    script.write_text(
        "import sys\nfor i in range(10000):\n    print('iteration', i, 'x' * 60)\n"
        f"print({OOM!r})\nsys.exit(1)\n"
    )
    r = subprocess.run(
        [
            *SUPERVISE,
            "--max-restarts",
            "0",
            "--decision-timeout",
            "30",
            "--service",
            s.url,
            "--",
            sys.executable,
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 1, r.stderr
    _assert_first_cycle_is_oom(tmp_path)


def test_a_rerun_after_kill_9_stops_a_command_source_left_running(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(
        "import os, sys, time\nsys.stdin.read()\nopen('src.pid.tmp', 'w').write(str(os.getpid()))\n"
        "os.replace('src.pid.tmp', 'src.pid')\ntime.sleep(120)\n"
    )
    base = [*SUPERVISE, "--source-timeout", "120"]
    proc = subprocess.Popen(
        [
            *base,
            "--command-source",
            f"{sys.executable} slow.py",
            "--",
            sys.executable,
            "-c",
            "raise SystemExit(1)",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file = tmp_path / "src.pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    source = int(pid_file.read_text())
    assert pid_alive(source)  # the analyzer outlived its supervisor
    done = subprocess.run(
        [*base, "--", sys.executable, "-c", "pass"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert wait_dead(source), "the rerun left the killed supervisor's command source running"


@pytest.mark.parametrize("where", ["local", "service"])
@pytest.mark.parametrize(
    "head",
    [
        "bin \\x00\\xff junk",
        # starts like gzip: it was decompressed, and the supervisor died ("not a valid gzip file")
        "\\x1f\\x8b\\x08\\x00 not deflate",
    ],
)
def test_supervise_attributes_a_workload_whose_output_has_nul_and_non_utf8_bytes(
    tmp_path: Path, serve: Callable[..., Served], where: str, head: str
) -> None:
    service = ["--service", serve("--gather", "0").url] if where == "service" else []
    r = subprocess.run(
        [
            *SUPERVISE,
            "--max-restarts",
            "0",
            "--progress-regex",
            "iteration",
            *service,
            "--",
            sys.executable,
            "-c",
            f"import sys; sys.stdout.buffer.write(b'{head}\\n'); print({OOM!r}); sys.exit(1)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 1, r.stderr
    _assert_first_cycle_is_oom(tmp_path)


def test_serve_killed_leaves_no_source_running_once_restarted_and_one_server_per_db(tmp_path: Path) -> None:
    """kill -9 of ``sleuth serve`` while a command source analyses: the next server on the same
    database stops that source; a second server on a database in use is refused (exit 2)."""
    from tests.attribution.conftest import start_server

    (tmp_path / "slow.py").write_text(
        "import os, sys, time\nsys.stdin.read()\nopen('src.pid.tmp', 'w').write(str(os.getpid()))\n"
        "os.replace('src.pid.tmp', 'src.pid')\ntime.sleep(120)\n"
    )
    args = ("--gather", "0", "--source-timeout", "120", "--command-source", f"{sys.executable} slow.py")
    first = start_server(tmp_path, *args)
    try:
        body = {"job_id": "j", "cycle_id": 0, "logs": [{"name": "rank0", "text": OOM + "\n"}]}
        assert first.call("POST", "/v1/attributions", body)[0] in (200, 202)
        pid_file = tmp_path / "src.pid"
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        source = int(pid_file.read_text())
        busy = subprocess.run(
            [sys.executable, "-m", "sleuth", "serve", "--port", "0", "--db", str(first.db)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert busy.returncode == 2 and "in use by another sleuth serve" in busy.stderr, busy.stderr
        first.stop(signal.SIGKILL)
        assert pid_alive(source)  # the source outlived its server
        second = start_server(tmp_path, name="second")
        try:
            assert wait_dead(source), "the restarted server left the killed one's command source running"
        finally:
            second.stop()
    finally:
        first.stop()


def test_serve_paths_decompress_gzip_bounded_and_read_a_cut_one_up_to_the_cut(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """A ``.gz`` under --log-root was attributed as its compressed bytes (garbage); it is now read as
    ``attribute`` reads it: decompressed, at most --max-log-mb of text, a cut one up to the cut."""
    import gzip

    root = tmp_path / "logs"
    root.mkdir()
    noise = "".join(f"step {i} loss {i * 0.001:.3f} {os.urandom(24).hex()}\n" for i in range(20_000))
    (root / "whole.log.gz").write_bytes(gzip.compress(f"{OOM}\n{noise}".encode()))
    cut = gzip.compress(f"{OOM}\n{noise}".encode())
    (root / "cut.log.gz").write_bytes(cut[: len(cut) // 2])
    (root / "bomb.log.gz").write_bytes(gzip.compress(b"x" * 1000 + b"\n" * (3 * 1024 * 1024)))
    s = serve("--log-root", str(root), "--gather", "0", "--max-log-mb", "2")
    for job, name in (("w", "whole.log.gz"), ("c", "cut.log.gz")):
        code, body = s.call(
            "POST", "/v1/attributions", {"job_id": job, "cycle_id": "1", "paths": [str(root / name)]}
        )
        assert code == 202, body
        rec = s.call("GET", f"/v1/attributions/{job}/1?wait=60")[1]
        assert rec["status"] == "done" and rec["root"]["signature"] == "cuda.oom", rec
        said = json.dumps(rec)
        assert ("cut short at byte" in said) == (job == "c"), said[:2000]
        # the record says it as `sleuth attribute --json` does: a note (the log's name stays its name)
        at = len(cut) // 2
        note = f"log 0/cut.log.gz was cut short at byte {at} of the compressed file; attributed up to the cut"
        assert rec["notes"] == ([note] if job == "c" else []), rec
    code, body = s.call(
        "POST", "/v1/attributions", {"job_id": "b", "cycle_id": "1", "paths": [str(root / "bomb.log.gz")]}
    )
    assert code == 413 and "decompressed" in json.dumps(body), body


def test_serve_reads_a_database_made_before_logs_had_a_cut_column(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """A server started on an older --db (its ``logs`` table without ``cut``) adds the column,
    analyses the request the old one had accepted, and takes new ones."""
    import sqlite3

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as c:
        c.executescript(
            """
            CREATE TABLE attributions (job_id VARCHAR(128) NOT NULL, cycle_id VARCHAR(128) NOT NULL,
              status VARCHAR(16) NOT NULL, created FLOAT NOT NULL, updated FLOAT NOT NULL,
              nodes INTEGER NOT NULL, progress INTEGER, posted_nodes TEXT NOT NULL,
              late_nodes TEXT NOT NULL, result TEXT, error TEXT, outcome TEXT,
              PRIMARY KEY (job_id, cycle_id));
            CREATE TABLE logs (id INTEGER NOT NULL PRIMARY KEY, job_id VARCHAR(128) NOT NULL,
              cycle_id VARCHAR(128) NOT NULL, node VARCHAR(128) NOT NULL, name VARCHAR(256) NOT NULL,
              text TEXT NOT NULL);
            CREATE INDEX ix_logs_job_id ON logs (job_id);
            """
        )
        c.execute(
            "INSERT INTO attributions VALUES ('old', '1', 'pending', 1.0, 1.0, 1, NULL, '[\"0\"]', '[]',"
            " NULL, NULL, NULL)"
        )
        c.execute(
            "INSERT INTO logs (job_id, cycle_id, node, name, text) VALUES ('old', '1', '0', 'a.log', ?)",
            (OOM,),
        )
    s = serve("--gather", "0", db=db)
    rec = s.call("GET", "/v1/attributions/old/1?wait=60")[1]
    assert rec["status"] == "done" and rec["root"]["signature"] == "cuda.oom" and rec["notes"] == [], rec
    code, body = s.call(
        "POST",
        "/v1/attributions",
        {"job_id": "new", "cycle_id": "1", "logs": [{"name": "b.log", "text": OOM}]},
    )
    assert code == 202, body
    rec = s.call("GET", "/v1/attributions/new/1?wait=60")[1]
    assert rec["status"] == "done" and rec["root"]["signature"] == "cuda.oom", rec


def test_a_database_error_during_an_analysis_is_retried_not_fatal_to_the_worker(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """The worker claimed a record outside its error handling: one database error (locked past the
    timeout, a disk error) killed the thread, and the record stayed ``pending`` for ever."""
    import sqlite3

    s = serve("--gather", "2", "--workers", "1")
    body = {"job_id": "j", "cycle_id": "1", "nodes": 2, "logs": [{"name": "a.log", "text": OOM}]}
    code, _ = s.call("POST", "/v1/attributions", body)
    assert code == 202
    with sqlite3.connect(s.db) as c:  # the analysis, after --gather, finds no logs table
        c.execute("ALTER TABLE logs RENAME TO logs_away")
    deadline = time.monotonic() + 60
    while "no such table" not in s.stderr.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "no such table" in s.stderr.read_text()
    with sqlite3.connect(s.db) as c:
        c.execute("ALTER TABLE logs_away RENAME TO logs")
    rec = s.call("GET", "/v1/attributions/j/1?wait=60")[1]
    assert rec["status"] == "done" and rec["root"]["signature"] == "cuda.oom", rec
