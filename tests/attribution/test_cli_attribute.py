"""sleuth attribute end to end, as a subprocess: JSON shape, exit codes, history, config, secrets."""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.badinput import assert_no_secret

XID = "2024-05-01T12:00:07Z NVRM: Xid (PCI:0000:3b:00): 79, pid=2231, GPU has fallen off the bus.\n"
WATCHDOG = (
    "2024-05-01T12:10:00Z [Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=5, "
    "OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600021 milliseconds before timing out.\n"
)
IAM = "RuntimeError: CUDA error: an illegal memory access was encountered\n"


def test_json_shape_and_cascade_attribution(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "rank0.log").write_text("2024-05-01T12:00:00Z iteration 1\n" + WATCHDOG)
    (tmp_path / "rank3.log.gz").write_bytes(gzip.compress(XID.encode()))
    res = sleuth("attribute", "rank0.log", "rank3.log.gz", "--json")
    assert res.rc == 0, res.stderr
    doc = res.json()
    assert set(doc) >= {"decision", "root", "findings", "sources"}
    assert set(doc["decision"]) >= {"action", "effective_action", "reason", "decided_by"}
    assert doc["decision"]["action"] == "RESTART" and doc["decision"]["decided_by"] == "catalog"
    assert doc["root"]["signature"] == "nvidia.xid.79" and doc["root"]["rank"] == 3
    assert {f["signature"] for f in doc["findings"]} == {"nvidia.xid.79", "nccl.watchdog_timeout"}
    assert [s["name"] for s in doc["sources"]] == ["catalog"]
    assert set(doc["sources"][0]) >= {"name", "action", "status", "seconds"}


def test_a_local_oom_outranks_a_peers_network_error_without_timestamps(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    # a 2,000-GPU job: rank 0 logged the IB completion error its peer's death caused, rank 3 the
    # CUDA OOM that killed it; per-rank files, no times: rank0.log first once made it a RESTART
    (tmp_path / "rank0.log").write_text(
        "iteration 100\nnode0:1234:1299 [0] NCCL WARN NET/IB : Got completion from peer 10.0.0.12<40213> "
        "with error 12, opcode 0, len 0, vendor err 129 (Recv)\n"
    )
    (tmp_path / "rank3.log").write_text(
        "iteration 100\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    )
    doc = sleuth("attribute", "rank0.log", "rank3.log", "--json").json()
    assert doc["root"]["signature"] == "cuda.oom" and doc["root"]["rank"] == 3
    assert doc["root_ordering"] == "local over network symptom"
    assert doc["decision"]["action"] == "STOP"


def test_torchruns_log_dir_layout_gives_each_file_its_rank_and_attempt(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    # torchrun --log-dir: <log_dir>/<run_id>_<x>/attempt_<n>/<local_rank>/stderr.log|error.json; the
    # rank was None, and a shell's glob gives attempt_10 before attempt_2 (its OOM was the root)
    run = tmp_path / "logs" / "job_ab12"
    first, later = run / "attempt_2" / "3", run / "attempt_10" / "0"
    for d in (first, later):
        d.mkdir(parents=True)
    (first / "stderr.log").write_text(IAM)
    (first / "error.json").write_text(
        json.dumps({"message": {"message": IAM.strip(), "extraInfo": {"timestamp": "1712345678"}}}) + "\n"
    )
    (later / "stderr.log").write_text("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB\n")
    names = sorted(str(p.relative_to(tmp_path)) for p in run.glob("attempt_*/*/*"))
    assert names[0].startswith("logs/job_ab12/attempt_10/")
    doc = sleuth("attribute", *names, "--json").json()
    placed = {(f["file"].split("/")[2], f["rank"], f["attempt"]) for f in doc["findings"]}
    assert placed == {("attempt_2", 3, 2), ("attempt_10", 0, 10)}
    assert doc["root"]["signature"] == "cuda.illegal_address" and doc["root"]["attempt"] == 2


def test_torchruns_error_json_times_each_worker_and_the_first_to_fail_is_the_root(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    # torch's error file: {"message": {"message": "<Type>: <text>", "extraInfo": {"py_callstack",
    # "timestamp": "<epoch>"}}}; its time was not read (log order: rank 0's illegal address, which
    # failed 30 s after rank 1's OOM) and the finding's text was the JSON line
    oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    attempt = tmp_path / "logs" / "job_ab12" / "attempt_0"
    for rank, (text, at) in enumerate([(IAM.strip(), 1764590430), (oom, 1764590400)]):
        (attempt / str(rank)).mkdir(parents=True)
        (attempt / str(rank) / "stderr.log").write_text(f"Traceback (most recent call last):\n{text}\n")
        stack = f'Traceback (most recent call last):\n  File "train.py", line 9, in main\n{text}\n'
        error = {"message": {"message": text, "extraInfo": {"py_callstack": stack, "timestamp": str(at)}}}
        (attempt / str(rank) / "error.json").write_text(json.dumps(error))
    names = sorted(str(p.relative_to(tmp_path)) for p in attempt.glob("*/*"))
    doc = sleuth("attribute", *names, "--json").json()
    assert doc["root"]["signature"] == "cuda.oom" and doc["root"]["rank"] == 1
    assert doc["root_ordering"] == "timestamp" and doc["decision"]["action"] == "STOP"
    by_file = {f["file"]: f for f in doc["findings"]}
    error_json = by_file["logs/job_ab12/attempt_0/1/error.json"]
    assert error_json["text"] == f"2025-12-01T12:00:00Z {oom}" and error_json["timestamp"] == 1764590400
    # the worker's stderr.log lines, without a time of their own, take its error.json's
    assert by_file["logs/job_ab12/attempt_0/0/stderr.log"]["timestamp"] == 1764590430
    # an error file cut short is scanned as it is
    (attempt / "0" / "error.json").write_text(json.dumps(error)[:90])
    cut = sleuth("attribute", "logs/job_ab12/attempt_0/0/error.json", "--json").json()
    assert cut["root"]["signature"] == "cuda.oom" and cut["root"]["text"].startswith('{"message"')


def test_an_earlier_jobs_xid_in_a_nodes_dmesg_is_not_blamed_on_this_job(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    (tmp_path / "rank0.log").write_text(
        "2026-12-01T12:00:00Z iteration 1\n"
        "2026-12-01T12:10:00Z torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    )
    (tmp_path / "node7-dmesg.log").write_text(  # two days before: the node's previous job
        "[Mon Nov 30 03:12:09 2026] NVRM: Xid (PCI:0000:3b:00): 79, pid=2231, GPU has fallen off the bus.\n"
    )
    (tmp_path / "node8-dmesg.log").write_text(
        "[ 1234.567890] NVRM: Xid (PCI:0000:3b:00): 79, pid=2231, GPU has fallen off the bus.\n"
    )
    res = sleuth("attribute", "rank0.log", "node7-dmesg.log", "--json")
    doc = res.json()
    assert doc["root"]["signature"] == "cuda.oom"
    assert [f["file"] for f in doc["findings"]] == ["rank0.log"]
    assert "ignored 1 finding(s) from before the job started" in doc["notes"][0] and "node7" in res.stderr
    # the start given: the Xid is after it, and the root
    given = sleuth(
        "attribute", "rank0.log", "node7-dmesg.log", "--job-start", "2026-11-29T00:00:00Z", "--json"
    )
    assert given.json()["root"]["signature"] == "nvidia.xid.79"
    # seconds since boot: kept, and said so
    uptime = sleuth("attribute", "node8-dmesg.log", "rank0.log", "--json").json()
    assert any(
        "node8-dmesg.log: 1 kernel line(s)" in n and "could not be placed" in n for n in uptime["notes"]
    )
    bad = sleuth("attribute", "rank0.log", "--job-start", "yesterday")
    assert (
        bad.rc == 2 and "--job-start 'yesterday': not a time" in bad.stderr and "Traceback" not in bad.stderr
    )


def test_an_xid_from_before_the_inferred_start_is_inconclusive_not_blamed(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    # no --job-start, and this job's only root is an illegal address (ambiguous): the node's Xid
    # from two days before was kept (a GPU that failed while the job started looks the same) and
    # blamed as this job's cause: RESTART, "exclude the node", exit 0
    (tmp_path / "rank0.log").write_text("2026-12-01T12:00:00Z iteration 1\n2026-12-01T12:10:00Z " + IAM)
    (tmp_path / "node7-dmesg.log").write_text(
        "[Mon Nov 30 03:12:09 2026] NVRM: Xid (PCI:0000:3b:00): 79, pid=2231, GPU has fallen off the bus.\n"
    )
    res = sleuth("attribute", "rank0.log", "node7-dmesg.log", "--json")
    doc = res.json()
    assert res.rc == 3 and doc["decision"]["action"] == "UNKNOWN", doc["decision"]
    assert doc["decision"]["effective_action"] == "RESTART" and doc["decision"]["rule"] == "before-start"
    reason = doc["decision"]["reason"]
    assert reason.startswith(
        "inconclusive: the root nvidia.xid.79 [hardware] at node7-dmesg.log:1 is from before"
    )
    assert "this job's own root would be cuda.illegal_address [ambiguous] at rank0.log:2" in reason
    assert doc["root"]["signature"] == "nvidia.xid.79" and doc["root"]["before_start"] is True
    assert [f["before_start"] for f in doc["findings"]] == [False, True]
    assert not any(a.startswith("exclude the node") for a in doc["decision"]["advice"])
    text = sleuth("attribute", "rank0.log", "node7-dmesg.log")
    assert text.rc == 3 and "(timestamp, before the job's inferred start)" in text.stdout
    # the start given, either way: a confident answer
    before = sleuth(
        "attribute", "rank0.log", "node7-dmesg.log", "--job-start", "2026-11-29T00:00:00Z", "--json"
    )
    assert before.rc == 0 and before.json()["decision"]["rule"] == "restart"
    assert before.json()["root"]["before_start"] is False
    after = sleuth(
        "attribute", "rank0.log", "node7-dmesg.log", "--job-start", "2026-12-01T11:55:00Z", "--json"
    )
    assert after.json()["root"]["signature"] == "cuda.illegal_address"


def test_the_inferred_start_is_the_earliest_time_of_a_logs_head_not_its_first(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    # rank logs merged one after the other: rank 1's failure (12:30) is the first line, rank 0's
    # first iteration (12:00) follows.  The start was read from the first line (12:30 less 10
    # minutes), so the Xid this job's GPU raised at 12:05 was left out as an earlier job's and
    # rank 1's OOM, a consequence, was blamed: STOP
    (tmp_path / "merged.log").write_text(
        "[rank1]: 2026-12-01T12:30:00Z torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
        "[rank0]: 2026-12-01T12:00:00Z iteration 1\n"
        "[rank0]: 2026-12-01T12:29:00Z iteration 900\n"
    )
    (tmp_path / "node7-dmesg.log").write_text(
        "[Tue Dec  1 12:05:00 2026] NVRM: Xid (PCI:0000:3b:00): 79, pid=2231, GPU has fallen off the bus.\n"
    )
    res = sleuth("attribute", "merged.log", "node7-dmesg.log", "--json")
    doc = res.json()
    assert doc["root"]["signature"] == "nvidia.xid.79" and doc["decision"]["action"] == "RESTART", doc
    assert not any("before the job" in n for n in doc["notes"]), doc["notes"]


def test_exit_codes(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "oom.log").write_text("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1 GiB\n")
    (tmp_path / "clean.log").write_text("iteration 1\niteration 2\n")
    assert sleuth("attribute", "oom.log").rc == 0  # shadow: recommended STOP, restarts anyway
    enforce = sleuth("attribute", "oom.log", "--mode", "enforce")
    assert enforce.rc == 1 and "STOP" in enforce.stdout
    assert sleuth("attribute", "clean.log").rc == 3  # UNKNOWN


def test_history_is_updated_and_stops_a_repeating_root(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "r.log").write_text(IAM)
    hist = tmp_path / "h.jsonl"
    first = sleuth("attribute", "r.log", "--history", hist, "--json", "--mode", "enforce")
    assert first.rc == 0 and first.json()["decision"]["action"] == "RESTART"
    second = sleuth("attribute", "r.log", "--history", hist, "--json", "--mode", "enforce")
    assert second.rc == 1 and second.json()["decision"]["rule"] == "retry-budget"
    lines = [json.loads(x) for x in hist.read_text().splitlines()]
    assert [(x["cycle"], x["root"], x["action"]) for x in lines] == [
        (0, "cuda.illegal_address", "RESTART"),
        (1, "cuda.illegal_address", "STOP"),
    ]


def test_config_block_and_flags_over_it(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "r.log").write_text(XID)
    analyzer = tmp_path / "analyzer.py"
    analyzer.write_text(
        "import json,sys; sys.stdin.read(); print(json.dumps({'action':'STOP','reason':'llm says no'}))\n"
    )
    (tmp_path / "c.yaml").write_text(
        "attribution:\n  mode: enforce\n  aggregation: any\n  sources:\n"
        f"    - command: [{json.dumps(sys.executable)}, {json.dumps(str(analyzer))}]\n      name: llm\n"
    )
    doc = sleuth("attribute", "r.log", "--config", "c.yaml", "--json")
    assert doc.rc == 1 and doc.json()["decision"]["decided_by"] == "llm"
    over = sleuth("attribute", "r.log", "--config", "c.yaml", "--aggregation", "all", "--json")
    assert over.rc == 0 and over.json()["decision"]["action"] == "RESTART"


def test_secrets_never_reach_output_or_history(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    token = "hf_" + "SeCrEtToKeN1234567890ab"
    (tmp_path / "r.log").write_text(
        f"RuntimeError: CUDA error: an illegal memory access was encountered {token}\n"
    )
    hist = tmp_path / "h.jsonl"
    res = sleuth("attribute", "r.log", "--history", hist, "--json")
    assert res.rc == 0 and "<redacted>" in res.stdout
    human = sleuth("attribute", "r.log")
    assert_no_secret(token, res.stdout, res.stderr, human.stdout, roots=[hist.parent / "runs"])
    assert token not in hist.read_text()


def test_a_wandb_key_in_its_context_is_hidden_and_a_commit_sha_is_not(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    key, sha = "5f" * 20, "9c1e" * 10  # 40 hex digits each
    (tmp_path / "r.log").write_text(
        f"+ wandb login --relogin {key}; RuntimeError: CUDA error: an illegal memory access was encountered\n"
        f"machine api.wandb.ai login user password {key} torch.OutOfMemoryError: CUDA out of memory.\n"
        f"at commit {sha}: RuntimeError: CUDA error: unspecified launch failure\n"
    )
    hist = tmp_path / "h.jsonl"
    res = sleuth("attribute", "r.log", "--history", hist, "--json")
    assert res.rc == 0 and res.stdout.count("<redacted>") >= 2
    assert_no_secret(key, res.stdout, res.stderr, hist.read_text())
    assert sha in res.stdout  # a 40-hex word alone is a git commit


def test_list_signatures(sleuth: Callable[..., Any]) -> None:
    res = sleuth("attribute", "--list-signatures", "--json")
    rows = res.json()
    assert res.rc == 0 and len(rows) >= 45 and all(r["docs"] for r in rows)


def test_a_gzip_log_cut_short_is_attributed_up_to_the_cut(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    """``head -c`` of a .gz (the job died while writing it) was refused whole, exit 2: the failure it
    holds is attributed now, with a note and one stderr line naming the byte where the file ends."""
    import os
    import random

    rng = random.Random(3)
    noise = "".join(
        f"2024-05-01T12:00:00Z iteration {i} {rng.getrandbits(128):032x}\n" for i in range(200_000)
    )
    log = tmp_path / "rank2.log.gz"
    log.write_bytes(
        gzip.compress((noise + XID + noise).encode())
    )  # Xid in the middle: ~5 MiB of text each side
    at = log.stat().st_size * 3 // 4
    os.truncate(log, at)
    res = sleuth("attribute", "rank2.log.gz", "--json")
    assert res.rc == 0, res.stderr
    doc = res.json()
    assert doc["root"]["signature"] == "nvidia.xid.79" and doc["root"]["line"] == 200_001
    (note,) = doc["notes"]
    assert f"rank2.log.gz was cut short at byte {at} of the compressed file" in note
    assert res.stderr.strip() == f"warning: {note}"
    text = sleuth("attribute", "rank2.log.gz")
    assert text.rc == 0 and f"note: {note}" in text.stdout


def test_brackets_in_a_source_name_or_a_site_catalog_are_text_not_markup(
    sleuth: Callable[..., Any], tmp_path: Path
) -> None:
    # "[/oom]" in a command source's name (it decided) or "[/dev/shm]" in a site catalog's description
    # was read as rich markup: a MarkupError traceback instead of the decision
    (tmp_path / "an.py").write_text(
        "import sys, json\nsys.stdin.read()\nprint(json.dumps({'action': 'STOP', 'reason': 'r'}))\n"
    )
    (tmp_path / "r.log").write_text(IAM)
    res = sleuth("attribute", "r.log", "--command-source", f"{sys.executable} an.py --labels [/oom]")
    assert res.rc == 0 and "decided by command:" in res.stdout and "[/oom]" in res.stdout, res.stderr
    (tmp_path / "site.yaml").write_text(
        "version: 1\nname: site\nrevision: 1\nsignatures:\n  - id: site.shm\n    regex: 'shm is full'\n"
        "    class: infrastructure\n    role: root\n    action: RESTART\n"
        "    description: '[/dev/shm] is full'\n    docs: [https://example.org]\n"
        "    match: ['shm is full']\n    no_match: ['shm ok']\n"
    )
    res = sleuth("attribute", "--list-signatures", "--catalog", "site.yaml")
    assert res.rc == 0 and "[/dev/shm]" in res.stdout, res.stderr
