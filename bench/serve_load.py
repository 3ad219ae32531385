#!/usr/bin/env python3
"""Load test of ``sleuth serve`` on loopback, with a ``kill -9`` of the server in the middle.

    python bench/serve_load.py                    # 2000 requests, 50 concurrent clients
    python bench/serve_load.py --requests 400 --clients 20 --json

The mix: valid POSTs (each a new job/cycle, a small log with a failure line), malformed JSON
(expected 422), oversize bodies (expected 413) and GETs of accepted records.  When half the
requests are done the server is killed with SIGKILL and started again on the same port and
database; clients retry refused connections (bounded), as launchers would.  At the end every
request answered 202 must exist on the restarted server and reach ``done``: "lost" counts those
that do not.  Prints latency percentiles per kind, the status-code histogram, lost and 5xx
counts.  Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

LINE = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.\n"


def start(port: int, db: Path, port_file: Path, log: Path) -> subprocess.Popen[bytes]:
    """``sleuth serve`` on 127.0.0.1 (port 0: any), waiting until it answers."""
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sleuth",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            str(db),
            "--port-file",
            str(port_file),
            "--gather",
            "0",
            "--max-body-mb",
            "1",
            "--workers",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),  # noqa: SIM115 - the child keeps it
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"sleuth serve exited {proc.returncode}; see {log}")
        if port_file.exists():
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port_file.read_text().strip()}/healthz", timeout=2
                ):
                    return proc
            except OSError:
                pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("sleuth serve did not start in 60 s")


class Load:
    """Shared state of the clients."""

    def __init__(self, url: str, deadline_s: float) -> None:
        self.url = url
        self.deadline = time.monotonic() + deadline_s
        self.lock = threading.Lock()
        self.codes: Counter[str] = Counter()
        self.lat: dict[str, list[float]] = {"post": [], "malformed": [], "oversize": [], "get": []}
        self.accepted: list[tuple[str, str]] = []
        self.retries = 0
        self.gave_up = 0

    def request(self, kind: str, method: str, path: str, data: bytes | None) -> int:
        """One request, retried while the server is down (bounded); its status code (0: gave up)."""
        while time.monotonic() < self.deadline:
            req = urllib.request.Request(
                self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
            )
            t = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    resp.read()
                    code: int = resp.status
            except urllib.error.HTTPError as exc:
                code = exc.code
                # an error's body cut by the kill -9 (IncompleteRead): the status line already came
                with contextlib.suppress(OSError, http.client.HTTPException):
                    exc.read()
            except (OSError, http.client.HTTPException):  # refused, reset or cut mid-body by the kill -9
                with self.lock:
                    self.retries += 1
                time.sleep(0.1)
                continue
            with self.lock:
                self.lat[kind].append(time.monotonic() - t)
                self.codes[f"{kind} {code}"] += 1
            return code
        with self.lock:
            self.gave_up += 1
        return 0

    def one(self, i: int) -> None:
        rnd = random.Random(i)
        r = rnd.random()
        if r < 0.80:
            job, cycle = f"job{i % 97}", f"c{i}"
            body = {
                "job_id": job,
                "cycle_id": cycle,
                "logs": [{"name": "rank0.log", "text": f"step {i}\n" + LINE}],
            }
            if self.request("post", "POST", "/v1/attributions", json.dumps(body).encode()) == 202:
                with self.lock:
                    self.accepted.append((job, cycle))
        elif r < 0.90:
            self.request("malformed", "POST", "/v1/attributions", b'{"job_id": "j", "cycle_id": ')
        elif r < 0.95:
            big = {"job_id": "big", "cycle_id": str(i), "logs": [{"name": "x", "text": "x" * (1536 * 1024)}]}
            self.request("oversize", "POST", "/v1/attributions", json.dumps(big).encode())
        else:
            with self.lock:
                key = self.accepted[rnd.randrange(len(self.accepted))] if self.accepted else None
            path = f"/v1/attributions/{key[0]}/{key[1]}" if key else "/healthz"
            self.request("get", "GET", path, None)


def pct(xs: list[float], q: float) -> float:
    """The q-quantile of xs (nearest rank)."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))] if s else float("nan")


def main() -> int:
    """Run the load, kill and restart the server, verify, print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds for the whole load")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sleuth-serve-load-"))
    db, port_file, log = tmp / "load.db", tmp / "port", tmp / "serve.stderr"
    proc = start(0, db, port_file, log)
    port = int(port_file.read_text())
    load = Load(f"http://127.0.0.1:{port}", a.deadline)
    done = 0
    killed_at = None
    restart_s = 0.0
    t0 = time.monotonic()
    with ThreadPoolExecutor(a.clients) as pool:
        futures = [pool.submit(load.one, i) for i in range(a.requests)]
        for f in futures:
            f.result()
            done += 1
            if killed_at is None and done >= a.requests // 2:
                killed_at = done
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                t1 = time.monotonic()
                proc = start(port, db, port_file, log)
                restart_s = time.monotonic() - t1
    wall = time.monotonic() - t0
    lost = []
    try:
        for job, cycle in load.accepted:
            got = urllib.request.urlopen(f"{load.url}/v1/attributions/{job}/{cycle}?wait=60", timeout=90)
            rec = json.loads(got.read())
            if rec.get("status") != "done":
                lost.append((job, cycle, rec.get("status")))
    except urllib.error.HTTPError as exc:
        lost.append(("?", "?", f"HTTP {exc.code}"))
    except OSError as exc:  # a timeout or a reset: reported as lost, not a traceback without figures
        lost.append(("?", "?", f"{type(exc).__name__}: {exc}"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    five_xx = sum(n for k, n in load.codes.items() if k.split()[1].startswith("5"))
    unexpected = {
        k: n
        for k, n in load.codes.items()
        if k not in ("post 202", "malformed 422", "oversize 413", "get 200")
    }
    out: dict[str, Any] = {
        "requests": a.requests,
        "clients": a.clients,
        "wall_s": round(wall, 2),
        "killed_after": killed_at,
        "restart_s": round(restart_s, 2),
        "accepted": len(load.accepted),
        "lost": len(lost),
        "five_xx": five_xx,
        "unexpected": unexpected,
        "gave_up": load.gave_up,
        "connection_retries": load.retries,
        "codes": dict(load.codes),
        "latency_ms": {
            k: {
                "n": len(v),
                "p50": 1000 * pct(v, 0.5),
                "p90": 1000 * pct(v, 0.9),
                "p99": 1000 * pct(v, 0.99),
                "max": 1000 * max(v) if v else float("nan"),
                "mean": 1000 * statistics.fmean(v) if v else float("nan"),
            }
            for k, v in load.lat.items()
        },
    }
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"serve load: {a.requests} requests from {a.clients} clients in {wall:.1f}s; server killed -9 after "
            f"{killed_at} and restarted in {restart_s:.1f}s ({load.retries} connection retries)"
        )
        print(
            f"  accepted {len(load.accepted)}, lost {len(lost)}, 5xx {five_xx}, unexpected {unexpected or 'none'},"
            f" gave up {load.gave_up}"
        )
        for k, v in out["latency_ms"].items():
            print(
                f"  {k:<10} n={v['n']:<5} p50 {v['p50']:7.1f} ms  p90 {v['p90']:7.1f} ms  p99 {v['p99']:7.1f} ms  "
                f"max {v['max']:7.1f} ms"
            )
    for p in sorted(tmp.iterdir()):
        p.unlink()
    tmp.rmdir()
    return 0 if not lost and not five_xx and not load.gave_up else 1


if __name__ == "__main__":
    sys.exit(main())
