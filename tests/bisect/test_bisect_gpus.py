"""``sleuth bisect --gpus``: each running test gets its own device, like ``sleuth run --gpus``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sleuth.cli._bisect_flags import spec_and_options

PY = sys.executable


def sleuth(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLEUTH_CACHE": str(cwd / "cache")}
    return subprocess.run(
        [PY, "-m", "sleuth", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def recording_test(log: Path) -> list[str]:
    """A test that records its devices and start/end times; candidates v6 and later fail."""
    body = (
        "import os,sys,time; t=time.time(); time.sleep(0.3); e=os.environ; "
        f"p=os.path.join({str(log)!r}, e['SLEUTH_TRIAL_DIR'].replace(os.sep, '_')); "
        "open(p,'w').write(f\"{e['CUDA_VISIBLE_DEVICES']} {e['HIP_VISIBLE_DEVICES']} {t} {time.time()}\"); "
        "bad=int(e['SLEUTH_CANDIDATE'][1:])>=6; bad and print('Error: boom', file=sys.stderr); sys.exit(bad)"
    )
    return [PY, "-c", body]


def spans(log: Path) -> list[tuple[str, float, float]]:
    rows = [f.read_text().split() for f in log.iterdir()]
    assert rows and all(r[0] == r[1] and r[0] in ("0", "1") for r in rows), rows
    return [(r[0], float(r[2]), float(r[3])) for r in rows]


def overlapping(got: list[tuple[str, float, float]]) -> list[tuple[str, str]]:
    """The devices of every two tests that ran at the same time."""
    return [
        (d1, d2) for i, (d1, s1, e1) in enumerate(got) for d2, s2, e2 in got[i + 1 :] if s1 < e2 and s2 < e1
    ]


@pytest.fixture
def listing(tmp_path: Path) -> Path:
    (tmp_path / "list.txt").write_text("\n".join(f"v{i}" for i in range(1, 13)) + "\n")
    (tmp_path / "log").mkdir()
    return tmp_path / "list.txt"


def run_bisect(tmp_path: Path, listing: Path, *flags: str) -> dict[str, Any]:
    res = sleuth("bisect", "list", str(listing), "--output", "o", "--json", *flags, "--",
                 *recording_test(tmp_path / "log"), cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    d: dict[str, Any] = json.loads(res.stdout)
    assert d["first_bad"]["label"] == "v6" and d["last_good"]["label"] == "v5"
    return d


def test_gpus_each_running_test_gets_its_own_device(tmp_path: Path, listing: Path) -> None:
    d = run_bisect(tmp_path, listing, "--gpus", "0,1", "--jobs", "2")
    got = spans(tmp_path / "log")
    assert len(got) == d["tests"]
    both = overlapping(got)
    assert both, "with --jobs 2 some tests run at the same time"
    assert all(d1 != d2 for d1, d2 in both), "two running tests shared a device"
    assert {g[0] for g in got} == {"0", "1"}
    run_dir = tmp_path / d["run_dir"]
    results = [json.loads(p.read_text()) for p in run_dir.glob("candidates/*/run-*/result.json")]
    assert len(results) == d["tests"] and {r["device"] for r in results} == {"0", "1"}


def test_jobs_default_to_one_per_device_and_resume_keeps_them(tmp_path: Path, listing: Path) -> None:
    d = run_bisect(tmp_path, listing, "--gpus", "0,1")
    both = overlapping(spans(tmp_path / "log"))
    assert both and all(d1 != d2 for d1, d2 in both)
    journal = [json.loads(x) for x in (tmp_path / d["run_dir"] / "journal.jsonl").read_text().splitlines()]
    flags = next(e for e in journal if e["event"] == "start")["flags"]
    _, _, opts = spec_and_options(dict(flags), ())  # what `sleuth bisect resume` runs with
    assert (opts.jobs, opts.gpus) == (2, ("0", "1"))
    del flags["gpus"]  # a run dir from before --gpus
    flags["jobs"] = 3
    _, _, opts = spec_and_options(flags, ())
    assert (opts.jobs, opts.gpus) == (3, ())


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--gpus", "0,1", "--jobs", "3"], "--jobs 3 exceeds"), (["--gpus", "x"], "--gpus 'x'")],
)
def test_bad_gpus_are_usage_errors(tmp_path: Path, listing: Path, args: list[str], needle: str) -> None:
    res = sleuth("bisect", "list", str(listing), "--output", "o", *args, "--", "true", cwd=tmp_path)
    assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()  # rejected before a run dir exists


def test_resume_can_move_to_other_devices(tmp_path: Path, listing: Path) -> None:
    import signal
    import time

    block = tmp_path / "block"
    block.touch()
    log = tmp_path / "log"
    body = (
        "import os,sys,time; e=os.environ; c=int(e['SLEUTH_CANDIDATE'][1:]); "
        f"p=os.path.join({str(log)!r}, e['SLEUTH_TRIAL_DIR'].replace(os.sep, '_')); "
        "open(p,'w').write(e['CUDA_VISIBLE_DEVICES']); "
        f"time.sleep(600 if c not in (1, 12) and os.path.exists({str(block)!r}) else 0); sys.exit(int(c >= 6))"
    )
    argv = [PY, "-m", "sleuth", "bisect", "list", str(listing), "--output", "o", "--flaky", "off",
            "--gpus", "0,1", "--", PY, "-c", body]  # fmt: skip
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(log.iterdir())) < 3:  # both ends done, a probe hangs
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    block.unlink()
    (run_dir,) = (tmp_path / "o" / "bisect").glob("*/*")
    before = {f.name for f in log.iterdir()}
    bad = sleuth("bisect", "resume", str(run_dir), "--gpus", "x", cwd=tmp_path)
    assert bad.returncode == 2 and "--gpus 'x'" in bad.stderr
    res = sleuth("bisect", "resume", str(run_dir), "--gpus", "4,5", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["first_bad"]["label"] == "v6"
    after = {f.name: f.read_text() for f in log.iterdir() if f.name not in before}
    assert after and set(after.values()) <= {"4", "5"}, after
