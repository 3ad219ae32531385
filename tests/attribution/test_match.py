"""Reading and scanning logs: ranks, timestamps, gzip, chunk boundaries, bounds, engine fallback."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from sleuth.attribution import logs as logs_mod
from sleuth.attribution import match as match_mod
from sleuth.attribution.logs import LogInput, parse_rank_prefix, parse_timestamp, rank_from_name
from sleuth.attribution.match import Matcher
from sleuth.attribution.signatures import load_catalog

CATALOG = load_catalog(entry_points=False)
XID = "NVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the bus."
OOM = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."


@pytest.mark.parametrize(
    ("line", "rank", "rest"),
    [
        ("[rank3]: boom", 3, "boom"),
        ("[default12]:boom", 12, "boom"),
        ("7: boom", 7, "boom"),
        ("[1,5]<stderr>: boom", 5, "boom"),
        ("2024-05-01T12:00:00Z [rank2]: boom", 2, "2024-05-01T12:00:00Z [rank2]: boom"),
        ("step 12: loss 2", None, "step 12: loss 2"),
        # srun -l pads its label to the widest task id; it once gave no rank at all
        ("   3: boom", 3, "boom"),
        ("  17: [rank137]: boom", 137, "boom"),  # srun's task is a node's torchrun: the global rank wins
        ("[default3]:[rank11]: boom", 11, "boom"),  # torchrun --tee's local rank, then torch's global one
    ],
)
def test_rank_prefixes(line: str, rank: int | None, rest: str) -> None:
    assert parse_rank_prefix(line) == (rank, rest)


def test_rank_from_file_name() -> None:
    assert rank_from_name("/x/worker_rank-3.log") == 3 and rank_from_name("rank12.txt") == 12
    assert rank_from_name("node1.log") is None
    # torchrun --log-dir: attempt_<n>/<local_rank>/stdout.log|stderr.log|error.json
    assert rank_from_name("logs/job_x1/attempt_2/7/stderr.log") == 7
    assert rank_from_name("/l/job/attempt_0/12/error.json") == 12
    assert rank_from_name("attempt_0/3/notes.log") is None


def test_timestamps() -> None:
    assert parse_timestamp("2024-05-01T12:00:00Z x") == 1714564800.0
    assert parse_timestamp("2024-05-01 14:00:00,500+02:00 x") == 1714564800.5
    assert parse_timestamp("[ 1234.5678] amdgpu: dmesg uptime") is None
    assert parse_timestamp("Oct  7 12:58:23 host kernel: x") is not None
    assert parse_timestamp("no time here") is None
    # dmesg -T, how an Xid is usually saved: it once had no time, so log order put it after the ranks
    xid = "[Tue Dec  1 12:00:02 2026] NVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the bus."
    assert parse_timestamp(xid) == parse_timestamp("2026-12-01 12:00:02 x")
    assert parse_timestamp("[Tue Dec 41 12:00:02 2026] x") is None


def scan(*logs: LogInput) -> list[tuple[str, str, int, int | None]]:
    return [(f.signature, f.file, f.line, f.rank) for f in Matcher(CATALOG).scan(list(logs)).findings]


def test_gzip_and_plain_give_the_same_findings(tmp_path: Path) -> None:
    text = "\n".join(["noise"] * 1000 + ["[rank4]: " + XID] + ["noise"] * 10 + [OOM]) + "\n"
    plain, gz = tmp_path / "a.log", tmp_path / "b.log.gz"
    plain.write_text(text)
    gz.write_bytes(gzip.compress(text.encode()))
    a = [(s, ln, r) for s, _, ln, r in scan(LogInput.file(plain))]
    b = [(s, ln, r) for s, _, ln, r in scan(LogInput.file(gz))]
    assert a == b == [("nvidia.xid.79", 1001, 4), ("cuda.oom", 1012, None)]


def test_line_numbers_across_chunk_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs_mod, "CHUNK", 97)  # many chunks, lines cut anywhere
    lines = [f"line {i} " + "x" * (i % 37) for i in range(400)]
    for n in (17, 18, 250, 399):
        lines[n] = f"{n}: " + XID
    p = tmp_path / "r.log"
    p.write_text("\n".join(lines))  # no final newline
    got = scan(LogInput.file(p))
    assert [(ln, r) for _, _, ln, r in got] == [(18, 17), (19, 18), (251, 250), (400, 399)]


def test_findings_are_bounded_and_counted() -> None:
    log = LogInput.memory("r.log", (XID + "\n") * 50)
    res = Matcher(CATALOG, max_findings=10).scan([log])
    assert len(res.findings) == 10 and res.dropped == 40


def test_a_storm_of_cascades_does_not_hide_the_root_after_it() -> None:
    # 2,000 ranks' watchdog lines filled the cap: the stuck rank's error after them was dropped
    # and the decision was "only consequences" (cascade-only)
    watchdog = "[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=5) ran for 600021 milliseconds before timing out."
    log = LogInput.memory("r.log", (watchdog + "\n") * 30 + "[rank7]: " + OOM + "\n")
    res = Matcher(CATALOG, max_findings=10).scan([log])
    assert [f.signature for f in res.findings].count("nccl.watchdog_timeout") == 10 and res.dropped == 20
    assert res.findings[-1].signature == "cuda.oom" and res.findings[-1].rank == 7


def test_progress_regex() -> None:
    import re

    m = Matcher(CATALOG, progress=re.compile(r"iteration \d+"))
    assert m.scan([LogInput.memory("a", "iteration 12 | loss 2\n" + XID)]).progress is True
    assert m.scan([LogInput.memory("a", XID)]).progress is False
    assert Matcher(CATALOG).scan([LogInput.memory("a", XID)]).progress is None


def test_python_re_fallback_finds_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "\n".join(line for s in CATALOG.signatures for line in s.match)
    with_engine = scan(LogInput.memory("r.log", text))
    monkeypatch.setattr(match_mod, "_re2", None)
    assert match_mod.engine_name() == "re"
    assert scan(LogInput.memory("r.log", text)) == with_engine
    assert len(with_engine) >= len(CATALOG)


def test_overlong_line_does_not_blow_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs_mod, "MAX_LINE", 4096)
    monkeypatch.setattr(logs_mod, "CHUNK", 1024)
    p = tmp_path / "blob.log"
    p.write_text("A" * 50_000 + "\n" + XID + "\n")
    # at line 2: the overlong line's pieces once counted as lines (line 11 here)
    assert [(s, ln) for s, _, ln, _ in scan(LogInput.file(p))] == [("nvidia.xid.79", 2)]
    assert b"".join(LogInput.file(p).chunks()) == p.read_bytes()  # the log's own bytes


def test_a_gzip_log_cut_short_is_read_up_to_the_cut(tmp_path: Path) -> None:
    """The job died while writing its .gz: everything decompressible before the cut is read (a prefix of
    the log, nothing lost between reads), in bounded blocks, and the size where it was cut is told."""
    import os
    import random

    rng = random.Random(7)  # random hex: about 1.7 bytes of gzip per 3 of text, so cuts land mid-log
    text = "".join(f"step {i} {rng.getrandbits(128):032x}\n" for i in range(300_000)).encode()
    full = tmp_path / "full.log.gz"
    full.write_bytes(gzip.compress(text))
    for at in (5, 4096, full.stat().st_size // 2, full.stat().st_size - 4):
        cut = tmp_path / f"cut{at}.log.gz"
        cut.write_bytes(full.read_bytes())
        os.truncate(cut, at)
        told: list[int] = []
        LogInput.file(cut).check()  # not refused
        blocks = list(LogInput.file(cut).chunks(on_cut=told.append))
        got = b"".join(blocks)
        assert told == [at] and text.startswith(got)
        assert max((len(b) for b in blocks), default=0) <= 2 * logs_mod.CHUNK
        if at > 4096:  # all but the last deflate block's worth (at most 64 KiB of text) is there
            assert len(got) > at * 3 // 2 - 65536
    told = []
    assert b"".join(LogInput.file(full).chunks(on_cut=told.append)) == text and told == []


def test_tail_of_plain_and_gzip(tmp_path: Path) -> None:
    text = "".join(f"line {i}\n" for i in range(5000))
    p, g = tmp_path / "a.log", tmp_path / "a.log.gz"
    p.write_text(text)
    g.write_bytes(gzip.compress(text.encode()))
    assert LogInput.file(p).tail(100) == LogInput.file(g).tail(100)
    assert LogInput.file(p).tail(100).endswith("line 4999\n") and LogInput.file(p).tail(100).startswith(
        "line "
    )


@pytest.mark.parametrize(
    ("line", "sig"),
    [
        # cudaErrorMemoryAllocation as cudaGetErrorString words it: once no finding at all (UNKNOWN),
        # or only NCCL's cascade; HIP's twin likewise
        ("[rank2]: RuntimeError: CUDA error: out of memory", "cuda.oom"),
        ("node1:1234:1240 [2] include/alloc.h:103 NCCL WARN Cuda failure 2 'out of memory'", "cuda.oom"),
        ("RuntimeError: HIP error: out of memory", "amd.hip_oom"),
    ],
)
def test_runtime_out_of_memory_wordings_are_the_oom_root(line: str, sig: str) -> None:
    from sleuth.attribution.decide import choose_root

    root, _ = choose_root(Matcher(CATALOG).scan([LogInput.memory("r.log", line + "\n")]).findings)
    assert root is not None and root.signature == sig


def test_a_progress_bar_redrawn_with_cr_is_not_part_of_the_finding(tmp_path: Path) -> None:
    # tqdm writes \r and no \n: the OOM after it was found with no rank and a text of progress bar
    bar = "".join(
        f"Epoch 1: {i:3d}%|{'#' * (i // 5):<20}| {i * 10}/1000 [00:{i:02d}<00:12]\r" for i in range(60)
    )
    p = tmp_path / "train.log"
    p.write_text(f"start\n{bar}[rank3]: {OOM}\nnext\r\n[rank2]: {XID}\r\n")
    found = Matcher(CATALOG).scan([LogInput.file(p)]).findings
    assert [(x.signature, x.line, x.rank, x.text) for x in found] == [
        ("cuda.oom", 2, 3, OOM),
        ("nvidia.xid.79", 4, 2, XID),
    ]


def test_a_step_killed_by_srun_after_a_task_failed_is_no_user_stop() -> None:
    # srun --kill-on-bad-exit (or a SIGTERM to srun) makes slurmstepd print the STEP line: it was
    # taken for a user's scancel, a STOP; the JOB line (the batch step, as scancel prints it) still is
    from sleuth.attribution.decide import choose_root

    step = "slurmstepd: error: *** STEP 4321.0 ON gpu-a-017 CANCELLED AT 2024-06-07T09:13:44 ***"
    job = "slurmstepd: error: *** JOB 4321 ON gpu-a-017 CANCELLED AT 2024-06-07T09:13:44 ***"
    text = f"srun: error: gpu-a-019: task 3: Exited with exit code 1\n{step}\n"
    assert choose_root(Matcher(CATALOG).scan([LogInput.memory("slurm.out", text)]).findings)[0] is None
    root, _ = choose_root(Matcher(CATALOG).scan([LogInput.memory("slurm.out", f"{step}\n{job}\n")]).findings)
    assert root is not None and root.signature == "slurm.cancelled_by_user"
