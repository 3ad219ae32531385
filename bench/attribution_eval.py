#!/usr/bin/env python3
"""Evaluate sleuth's failure attribution: accuracy on a labelled corpus, throughput against grep.

    python bench/attribution_eval.py                      # corpus + 500 MB throughput, 3 rounds
    python bench/attribution_eval.py --no-throughput      # corpus only (what CI runs)
    python bench/attribution_eval.py --size-mb 50 --repeats 5 --json

Corpus (bench/data/attribution/corpus.yaml, 60+ cases written from the vendors' documented message
formats): the confusion matrix of the recommended action (RESTART / STOP / UNKNOWN, expected rows,
predicted columns), root-cause accuracy, and the false-STOP rate (a STOP where a restart was
expected: the costly error, it ends a job that would have recovered).

Throughput: a generated log (training-log noise with planted failures) scanned by sleuth's
matcher in-process and by ``sleuth attribute`` as a command, against ``grep -E -c`` with the
catalog's own regexes translated to POSIX ERE; runs interleaved, repeated, median and spread
printed, and the line counts of both compared.  Figures only: no pass/fail on time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from sleuth.attribution.analyze import Attributor
from sleuth.attribution.config import Settings
from sleuth.attribution.decide import CycleRecord
from sleuth.attribution.logs import LogInput
from sleuth.attribution.match import Matcher, engine_name
from sleuth.attribution.signatures import load_catalog

CORPUS = Path(__file__).parent / "data" / "attribution" / "corpus.yaml"
ACTIONS = ["RESTART", "STOP", "UNKNOWN"]


# --- corpus ------------------------------------------------------------------------------------


def evaluate(corpus: Path) -> dict[str, Any]:
    """Run every case; the confusion matrix, accuracies and the mismatches."""
    cases = yaml.safe_load(corpus.read_text())["cases"]
    catalog = load_catalog(entry_points=False)
    attributors: dict[str | None, Attributor] = {}
    matrix = {e: dict.fromkeys(ACTIONS, 0) for e in ACTIONS}
    root_ok = 0
    misses: list[dict[str, Any]] = []
    for case in cases:
        regex = case.get("progress_regex")
        if regex not in attributors:
            attributors[regex] = Attributor(Settings(progress_regex=regex), catalog)
        logs = [LogInput.memory(name, text) for name, text in case["logs"].items()]
        history = [CycleRecord.from_json(h) for h in case.get("history", [])]
        report = attributors[regex].attribute(logs, history=history)
        want, got = case["expect"]["action"], report.decision.action.value
        matrix[want][got] += 1
        want_root = case["expect"]["root"]
        got_root = report.root.signature if report.root else None
        root_ok += want_root == got_root
        if want != got or want_root != got_root:
            misses.append(
                {
                    "id": case["id"],
                    "expected": [want, want_root],
                    "got": [got, got_root],
                    "reason": report.decision.reason,
                }
            )
    n = len(cases)
    not_stop = sum(matrix[e][a] for e in ("RESTART", "UNKNOWN") for a in ACTIONS)
    false_stop = matrix["RESTART"]["STOP"] + matrix["UNKNOWN"]["STOP"]
    stop_total = sum(matrix["STOP"].values())
    return {
        "cases": n,
        "confusion": matrix,
        "action_accuracy": sum(matrix[a][a] for a in ACTIONS) / n,
        "root_accuracy": root_ok / n,
        "false_stop_rate": false_stop / not_stop if not_stop else 0.0,
        "false_stops": false_stop,
        "missed_stops": stop_total - matrix["STOP"]["STOP"],
        "mismatches": misses,
    }


def print_eval(res: dict[str, Any]) -> None:
    """The confusion matrix and the rates, for people."""
    print(f"corpus: {res['cases']} cases ({CORPUS.name})")
    print("confusion matrix of the recommended action (rows: expected, columns: predicted)")
    print(f"  {'':<10}" + "".join(f"{a:>9}" for a in ACTIONS))
    for e in ACTIONS:
        print(f"  {e:<10}" + "".join(f"{res['confusion'][e][a]:>9}" for a in ACTIONS))
    print(f"action accuracy {res['action_accuracy']:.1%}, root-cause accuracy {res['root_accuracy']:.1%}")
    print(
        f"false-STOP rate {res['false_stop_rate']:.1%} ({res['false_stops']} false STOPs), "
        f"missed STOPs {res['missed_stops']}"
    )
    for m in res["mismatches"]:
        print(f"  mismatch {m['id']}: expected {m['expected']}, got {m['got']} ({m['reason'][:120]})")


# --- throughput --------------------------------------------------------------------------------


_CLASS_ESC = {"d": "0-9", "s": "[:space:]", "w": "[:alnum:]_", "n": "", "t": "\t"}
_ESC = {"d": "[0-9]", "n": ""}


def _bracket(regex: str, i: int) -> tuple[str, int]:
    """A Python character class starting at ``regex[i] == '['`` as an ERE bracket expression."""
    j = i + 1
    negate = regex.startswith("^", j)
    j += negate
    items: list[str] = []
    close = False
    while j < len(regex) and not (regex[j] == "]" and (items or close)):
        if regex[j] == "\\" and j + 1 < len(regex):
            nxt = regex[j + 1]
            if nxt == "]":
                close = True
            else:
                items.append(_CLASS_ESC.get(nxt, nxt))
            j += 2
            continue
        if regex[j] == "]":
            close = True
        else:
            items.append(regex[j])
        j += 1
    body = ("]" if close else "") + "".join(items)
    if negate and not body:
        return ".", j + 1  # [^\n]: any character of a line
    return "[" + ("^" if negate else "") + body + "]", j + 1


def to_ere(regex: str, ignore_case: bool) -> str:
    """A Python regex of the catalog as POSIX ERE for GNU grep (case folded by [aA] classes)."""
    out, i = [], 0
    while i < len(regex):
        ch = regex[i]
        if ch == "\\" and i + 1 < len(regex):
            nxt = regex[i + 1]
            out.append(_ESC.get(nxt, "\\" + nxt))
            i += 2
            continue
        if ch == "[":
            part, i = _bracket(regex, i)
            out.append(part)
            continue
        if regex.startswith("(?:", i):
            out.append("(")
            i += 3
            continue
        if regex.startswith("(?!", i):
            # ERE has no lookahead: drop it (grep then matches a superset of those lines)
            depth, j = 1, i + 3
            while j < len(regex) and depth:
                depth += {"(": 1, ")": -1}.get(regex[j], 0)
                j += 1
            i = j
            continue
        out.append(f"[{ch.lower()}{ch.upper()}]" if ignore_case and ch.isalpha() else ch)
        i += 1
    return "".join(out)


NOISE = [
    "{t} [rank{r}]: iteration {i:>8}/ 1000000 | consumed samples: {s:>12} | elapsed time per iteration (ms): 812.4 | "
    "learning rate: 2.999E-04 | global batch size: 1024 | lm loss: 2.3{r}11E+00 | loss scale: 1.0 | grad norm: 0.61{r} |",
    "{t} node{r}:1234:1234 [{r}] NCCL INFO Channel 03/32 :    0   1   2   3   4   5   6   7 via P2P/IPC",
    "{t} [rank{r}]: [2024-06-01 12:00:00,123] [INFO] [logging.py:96:log_dist] [Rank {r}] step={i}, skipped=0, lr=[0.0003]",
    "{t} [rank{r}]: saving checkpoint at iteration {i} to /ckpt/run7 in torch_dist format",
    "{t} [rank{r}]: WARNING: overflow-safe softmax not used; attention mask dtype torch.bool",
]


def generate_log(path: Path, size_mb: int) -> int:
    """Write a ~size_mb training log with a planted failure line every ~50k lines; lines written."""
    catalog = load_catalog(entry_points=False)
    planted = [line for s in catalog.signatures for line in s.match]
    lines = 0
    target = size_mb * 1024 * 1024
    written = 0
    block: list[str] = []
    with open(path, "w", encoding="utf-8") as fh:
        i = 0
        while written < target:
            t = f"2024-06-01T12:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z"
            if i % 50_000 == 49_999:
                block.append(f"{t} [rank{i % 8}]: {planted[(i // 50_000) % len(planted)]}")
            else:
                block.append(NOISE[i % len(NOISE)].format(t=t, r=i % 8, i=i, s=i * 1024))
            i += 1
            if len(block) == 10_000:
                text = "\n".join(block) + "\n"
                fh.write(text)
                written += len(text)
                lines += len(block)
                block = []
        if block:
            fh.write("\n".join(block) + "\n")
            lines += len(block)
    return lines


def throughput(size_mb: int, repeats: int) -> dict[str, Any]:
    """grep -E -c vs sleuth, interleaved, ``repeats`` rounds; medians and spread."""
    catalog = load_catalog(entry_points=False)
    tmp = Path(tempfile.mkdtemp(prefix="sleuth-bench-"))
    log, pats = tmp / "big.log", tmp / "patterns.ere"
    t0 = time.monotonic()
    nlines = generate_log(log, size_mb)
    gen_s = time.monotonic() - t0
    pats.write_text("\n".join(to_ere(s.pattern.pattern, s.ignore_case) for s in catalog.signatures) + "\n")
    env = {**os.environ, "LC_ALL": "C"}
    matcher = Matcher(catalog, max_findings=10**9)
    times: dict[str, list[float]] = {
        "grep -E -c": [],
        "sleuth scan (in-process)": [],
        "sleuth attribute (CLI)": [],
    }
    counts: dict[str, int] = {}
    try:
        for _ in range(repeats):
            t = time.monotonic()
            g = subprocess.run(
                ["grep", "-E", "-c", "-f", str(pats), str(log)], capture_output=True, text=True, env=env
            )
            times["grep -E -c"].append(time.monotonic() - t)
            counts["grep"] = int(g.stdout.strip() or 0)
            t = time.monotonic()
            res = matcher.scan([LogInput.file(log)])
            times["sleuth scan (in-process)"].append(time.monotonic() - t)
            counts["sleuth"] = len({f.line for f in res.findings})
            t = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "sleuth", "attribute", str(log), "--json"], capture_output=True
            )
            times["sleuth attribute (CLI)"].append(time.monotonic() - t)
    finally:
        log.unlink(missing_ok=True)
        pats.unlink(missing_ok=True)
        tmp.rmdir()
    base = statistics.median(times["grep -E -c"])
    rows = {
        name: {
            "median_s": statistics.median(ts),
            "min_s": min(ts),
            "max_s": max(ts),
            "mb_per_s": size_mb / statistics.median(ts),
            "ratio_to_grep": statistics.median(ts) / base,
        }
        for name, ts in times.items()
    }
    return {
        "size_mb": size_mb,
        "lines": nlines,
        "generate_s": gen_s,
        "repeats": repeats,
        "engine": engine_name(),
        "signatures": len(catalog),
        "matching_lines": counts,
        "runs": rows,
    }


def print_throughput(res: dict[str, Any]) -> None:
    """The timing table, for people."""
    print(
        f"\nthroughput: {res['size_mb']} MB log, {res['lines']:,} lines, {res['signatures']} signatures, "
        f"prefilter engine {res['engine']}, {res['repeats']} interleaved rounds (median [min-max])"
    )
    for name, r in res["runs"].items():
        print(
            f"  {name:<26} {r['median_s']:7.2f}s [{r['min_s']:.2f}-{r['max_s']:.2f}]  "
            f"{r['mb_per_s']:7.0f} MB/s  {r['ratio_to_grep']:5.2f}x grep"
        )
    c = res["matching_lines"]
    print(
        f"  matching lines: grep {c.get('grep')}, sleuth {c.get('sleuth')}"
        + ("" if c.get("grep") == c.get("sleuth") else "  (differ: see the ERE translation)")
    )


def main() -> int:
    """Parse flags, run, print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument("--size-mb", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out: dict[str, Any] = {"eval": evaluate(a.corpus)}
    if not a.no_throughput:
        out["throughput"] = throughput(a.size_mb, a.repeats)
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        print_eval(out["eval"])
        if "throughput" in out:
            print_throughput(out["throughput"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
