"""A full disk is the machine's problem, said in one line, and nothing is lost.

A real, tiny tmpfs stands for the full disk (mounting needs root; skipped with a reason elsewhere):
the journal keeps only whole events (a write cut short by ENOSPC is cut again), ``sleuth run``
exits 4 with one line naming the file and saying to resume, and the resume, once there is space,
runs every trial once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleuth.journal import Journal


def _mount(path: Path, size: str) -> bool:
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size}", f"sleuth-test-{uuid.uuid4().hex[:8]}", str(path)]
    return subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, unmounted afterwards."""
    path = tmp_path / "tiny"
    path.mkdir()
    if shutil.which("mount") is None or not _mount(path, "64k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(journal: Journal, blob: str) -> OSError:
    for i in range(100):
        try:
            journal.append("trial", i=i, blob=blob)
        except OSError as exc:
            return exc
    raise AssertionError("the disk never filled")


def test_a_journal_on_a_full_disk_keeps_only_whole_events(tiny_disk: Path) -> None:
    journal = Journal(tiny_disk / "journal.jsonl")
    # events that straddle pages: the last one is written in part, then ENOSPC
    err = _fill(journal, "x" * 5000)
    journal.close()
    text = (tiny_disk / "journal.jsonl").read_text()
    assert text.endswith("\n")
    events = [json.loads(line) for line in text.splitlines()]
    assert [e["i"] for e in events] == list(range(len(events))) and len(events) >= 5
    assert err.filename == str(tiny_disk / "journal.jsonl") and "space" in str(err.strerror)


def test_run_on_a_full_disk_says_so_in_one_line_and_resumes(sleuth, tiny_disk: Path) -> None:
    res = sleuth("run", "-n", "300", "--output", tiny_disk, "--", "echo", "hi")
    assert res.rc == 4, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and res.stderr.startswith("error: ")
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "No space left on device" in res.stderr and "resume" in res.stderr
    (rd,) = (tiny_disk / "run" / "echo").iterdir()
    subprocess.run(["mount", "-o", "remount,size=16m", str(tiny_disk)], check=True)
    again = sleuth("run", "--resume", rd, "--json")
    assert again.rc == 0, again.stdout + again.stderr
    doc = again.json()
    assert doc["summary"]["trials"] == doc["summary"]["pass"] == 300
    events = [json.loads(line) for line in (rd / "journal.jsonl").read_text().splitlines()]
    ids = [e["trial"]["id"] for e in events if e["event"] == "trial"]
    assert sorted(ids) == [f"{i:04d}" for i in range(1, 301)]  # every trial once
