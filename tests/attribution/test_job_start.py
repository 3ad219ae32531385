"""The job's start and what it leaves out: given, inferred from the logs, and lines without a time.

A table of jobs: a rank's log (``rank0.log``) and a node's kernel log (``node7-dmesg.log``, ``dmesg -T``
times), each line at minutes after 12:00 (negative: before).  The root each must get, whether a
finding was left out as an earlier job's, and the catalog's action: UNKNOWN ("inconclusive") when
the root is from before the inferred start, kept because this job's findings do not explain the
failure (an earlier job's Xid cannot be told from a GPU that failed while this job started).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sleuth.attribution.analyze import Attributor
from sleuth.attribution.config import Settings
from sleuth.attribution.logs import HEAD_BYTES, TIME_SCAN_BYTES, LogInput, head_time

IAM = "RuntimeError: CUDA error: an illegal memory access was encountered"
OOM = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
XID = "NVRM: Xid (PCI:0000:3b:00): 79, pid=2231, GPU has fallen off the bus."
WATCHDOG = "[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1, OpType=ALLREDUCE) ran for 600000 milliseconds before timing out."
START = "iteration 1"


def _at(minute: int) -> datetime:
    return datetime(2026, 12, 1, 12, tzinfo=UTC) + timedelta(minutes=minute)


def _iso(minute: int) -> str:
    return _at(minute).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ctime(minute: int) -> str:  # dmesg -T
    t = _at(minute)
    return t.strftime(f"[%a %b {t.day:2d} %H:%M:%S %Y]")


@dataclass(frozen=True)
class Job:
    why: str
    rank: tuple[tuple[int, str], ...]
    dmesg: tuple[tuple[int, str], ...]
    root: str | None
    left_out: bool
    action: str


JOBS = [
    Job(
        "an earlier job's Xid, two days before",
        ((0, START), (10, OOM)),
        ((-2 * 24 * 60, XID),),
        "cuda.oom",
        True,
        "STOP",
    ),
    Job(
        "this job's Xid, while it ran",
        ((0, START), (12, IAM)),
        ((11, XID),),
        "nvidia.xid.79",
        False,
        "RESTART",
    ),
    Job(
        "this job's Xid, during start-up",
        ((0, START), (12, IAM)),
        ((-3, XID),),
        "nvidia.xid.79",
        False,
        "RESTART",
    ),
    # a rank that logs only when it fails: its first time is the failure's, 15 minutes after the
    # GPU fell off the bus while the job started; the inferred start (less 10 minutes) dropped the
    # Xid.  Kept, but it cannot be told from the next case's: inconclusive
    Job(
        "a rank that logs only on failure (an ambiguous error)",
        ((15, IAM),),
        ((0, XID),),
        "nvidia.xid.79",
        False,
        "UNKNOWN",
    ),
    Job(
        "a rank that logs only on failure (its watchdog)",
        ((15, WATCHDOG),),
        ((0, XID),),
        "nvidia.xid.79",
        False,
        "UNKNOWN",
    ),
    # the trade-off: without --job-start, an ambiguous error keeps an older Xid (a note says so),
    # and the decision says it cannot tell (it was blamed: RESTART, exclude the node)
    Job(
        "an earlier job's Xid and this job's ambiguous error",
        ((0, START), (10, IAM)),
        ((-2 * 24 * 60, XID),),
        "nvidia.xid.79",
        False,
        "UNKNOWN",
    ),
    # this job's own root explains the failure: an older Xid is not blamed
    Job("a rank that logs only on failure (an OOM)", ((15, OOM),), ((0, XID),), "cuda.oom", True, "STOP"),
]


@pytest.mark.parametrize("job", JOBS, ids=[j.why for j in JOBS])
def test_the_inferred_start_leaves_out_an_earlier_job_and_never_this_jobs_root(job: Job) -> None:
    logs = [
        LogInput.memory("rank0.log", "".join(f"{_iso(t)} {text}\n" for t, text in job.rank)),
        LogInput.memory("node7-dmesg.log", "".join(f"{_ctime(t)} {text}\n" for t, text in job.dmesg)),
    ]
    report = Attributor(Settings(), env={}).attribute(logs)
    assert (report.root.signature if report.root else None) == job.root, report.notes
    assert any("from before the job started" in n for n in report.notes) == job.left_out, report.notes
    assert report.decision.action.value == job.action, report.decision
    assert (report.decision.rule == "before-start") == (job.action == "UNKNOWN"), report.decision


def test_lines_without_a_time_are_kept_and_said_so_once_a_start_is_given() -> None:
    logs = [LogInput.memory("rank0.log", f"{OOM}\n")]
    report = Attributor(Settings(), env={}).attribute(logs, job_start=1764590400.0)
    assert report.root is not None and report.root.signature == "cuda.oom"
    assert any("1 finding(s) in rank0.log carry no time" in n for n in report.notes), report.notes


BANNER = "".join(f"Collecting package-{i}==1.0 (from -r requirements.txt (line {i}))\n" for i in range(3000))


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_start_behind_a_banner_longer_than_the_head_is_still_found(tmp_path: Path, gz: bool) -> None:
    """The rank's first time lies past its first 64 KiB (a pip install's output before it): the job's
    start was not inferred, and an earlier job's Xid was taken for this job's root."""
    assert len(BANNER) > 3 * HEAD_BYTES
    text = BANNER + "".join(f"{_iso(t)} {line}\n" for t, line in ((0, START), (10, OOM)))
    rank = tmp_path / ("rank0.log.gz" if gz else "rank0.log")
    rank.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    dmesg = tmp_path / "node7-dmesg.log"
    dmesg.write_text(f"{_ctime(-2 * 24 * 60)} {XID}\n")
    report = Attributor(Settings(), env={}).attribute([LogInput.file(rank), LogInput.file(dmesg)])
    assert report.root is not None and report.root.signature == "cuda.oom", report.notes
    assert any("from before the job started" in n for n in report.notes), report.notes


def test_the_head_is_read_on_to_the_first_64_kib_with_a_time_and_no_further(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    # a time in the head: the head's earliest, not an earlier one further on (as before)
    log.write_text(f"{_iso(5)} {START}\n" + BANNER + f"{_iso(-60)} {START}\n")
    assert head_time(LogInput.file(log)) == (False, _at(5).timestamp())
    # none in the head: the earliest of the first 64 KiB that holds one, not of what follows
    log.write_text(BANNER + f"{_iso(7)} a\n{_iso(6)} b\n" + BANNER + f"{_iso(-60)} c\n")
    assert head_time(LogInput.file(log)) == (False, _at(6).timestamp())
    # a time only past TIME_SCAN_BYTES is not looked for (a multi-GB log is not read whole)
    with log.open("w") as fh:
        while fh.tell() <= TIME_SCAN_BYTES:
            fh.write(BANNER)
        fh.write(f"{_iso(0)} {START}\n")
    assert head_time(LogInput.file(log)) == (False, None)
