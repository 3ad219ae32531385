"""``sleuth report`` on ``sleuth matrix`` run dirs: real matrices, the real CLI, a real headless Chromium.

Expected values come from the ``matrix.json`` each run wrote, never from hard-coded answers.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import CliResult
from tests.matrix.conftest import default_signals
from tests.matrix.test_matrix_envbaselines import SIDECAR, plugin_env, shim
from tests.report.conftest import external_refs, parse, visible_text

__all__ = ["plugin_env"]  # the fixture, imported to be used here

# tf32_off fixes the failure; cuda_launch_blocking fixes it too, but every step is four times slower;
# nccl_p2p_off changes nothing
WORKLOAD = (
    't=10; [ "$CUDA_LAUNCH_BLOCKING" = 1 ] && t=40; echo "step_time_ms=$t.$SLEUTH_TRIAL_ID"; '
    'if [ "$NVIDIA_TF32_OVERRIDE" = 0 ] || [ "$CUDA_LAUNCH_BLOCKING" = 1 ]; then echo ok; '
    'else echo "loss is nan at step 3" >&2; exit 1; fi'
)
AXIS = ("--mitigation-axis", "tf32_off,cuda_launch_blocking,nccl_p2p_off")
STEP = ("--step-time-regex", "step_time_ms=([0-9.]+)")


def _matrix(
    sleuth: Callable[..., CliResult], *args: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    result = sleuth("matrix", "--json", *args, env=env)
    assert result.rc in (0, 3), result.stderr
    doc: dict[str, Any] = result.json()
    return doc


def _report(sleuth: Callable[..., CliResult], run_dir: Path, *args: str) -> str:
    made = sleuth("report", run_dir, *args)
    assert made.rc == 0, made.stderr
    return (run_dir / "report.html").read_text(encoding="utf-8") if not args else ""


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _rate(c: dict[str, Any]) -> str:
    lo, hi = c["failure_rate_ci"]
    return f"{_pct(c['failure_rate'])} [{_pct(lo)}, {_pct(hi)}]"


def test_a_finished_matrix_says_which_cell_fixes_it_with_its_p_and_draws_rates_and_step_times(
    sleuth: Callable[..., CliResult], browser: Callable[[Path], str]
) -> None:
    doc = _matrix(sleuth, *AXIS, *STEP, "--trials", "8", "--seed", "1", "--", "sh", "-c", WORKLOAD)
    run_dir = Path(doc["run_dir"])
    cells = {c["name"]: c for c in doc["cells"]}
    base, fix, slow = cells[doc["baseline"]], cells["tf32_off"], cells["cuda_launch_blocking"]
    assert (fix["classification"], slow["classification"]) == ("fixed", "fixed")
    assert slow["confound"] and not fix["confound"]
    _report(sleuth, run_dir)
    dom = browser(run_dir / "report.html")
    text = visible_text(dom)
    headline = " ".join(parse(dom).by_id["headline"])
    # the clean fix first, with its rate against the baseline's, Fisher p and Holm's; the slow one said plainly
    assert headline.startswith(
        f"tf32_off fixes it: failure rate {_rate(fix)} against {_rate(base)} in {doc['baseline']}, "
        f"Fisher p {fix['p_value']:.3g} (Holm-adjusted {fix['p_adjusted']:.3g})"
    )
    assert f"but the fix comes with a {slow['confound']}: the slowdown itself may be what helps" in headline
    assert 'class="headline good"' in dom
    # two figures (rates with CI bars, step times), inline SVG; nothing fetched
    assert [t for t, _ in parse(dom).tags].count("svg") == 2
    assert external_refs(dom) == []
    # each cell's row: counts, rate [CI], decision, p (Holm), step-time median and ratio [CI]
    lo, hi = slow["step_time_ratio_ci"]
    row = (
        f"cuda_launch_blocking cuda_launch_blocking @ host {slow['counts']['total']} 0 0 {_rate(slow)} fixed "
        f"{slow['p_value']:.3g} ({slow['p_adjusted']:.3g}) {slow['step_time_median']:.4g} "
        f"{slow['step_time_ratio']:.2f}x [{lo:.2f}, {hi:.2f}] {slow['confound']}"
    )
    assert row in text
    noop = cells["nccl_p2p_off"]
    assert f"nccl_p2p_off @ host {noop['counts']['total']} {noop['counts']['fail']} 0 {_rate(noop)}" in text
    # the first failing log of each failing cell's top signature, and the command that runs it again
    for name in (doc["baseline"], "nccl_p2p_off"):
        sig, n = next(iter(cells[name]["signatures"].items()))
        assert f"{name}: trial 1, the first of {n} with: {sig}" in text
        assert f"cells/{name}/trials/0001/stderr loss is nan at step 3" in text
    assert doc["rerun"] in text
    # the same run dir gives the same page, byte for byte
    _report(sleuth, run_dir, "--out", str(run_dir / "again.html"))
    assert (run_dir / "again.html").read_bytes() == (run_dir / "report.html").read_bytes()


def test_an_environment_that_is_itself_the_cause_gets_its_own_table_and_headline(
    sleuth: Callable[..., CliResult], tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    side = tmp_path / "side.yaml"
    side.write_text(SIDECAR)
    doc = _matrix(sleuth, *shim(side)[1:], env=plugin_env)
    (effect,) = doc["environment_effects"]
    text = visible_text(_report(sleuth, Path(doc["run_dir"])))
    assert (
        f"environment {effect['environment']} is {effect['classification']} against {effect['reference']}"
        in text
    )
    assert (
        f"{effect['environment']} {effect['baseline_cell']} {_rate(effect)} {effect['classification']}"
        in text
    )
    assert "work_fix.broken-driver fixes it" in text


def test_a_killed_matrix_gets_a_page_from_its_journal_that_says_it_did_not_finish(
    sleuth: Callable[..., CliResult],
) -> None:
    doc = _matrix(sleuth, *AXIS, *STEP, "--trials", "2", "--", "sh", "-c", WORKLOAD)
    run_dir = Path(doc["run_dir"])
    # what a kill -9 before the end leaves: no matrix.json nor matrix.md, no end event
    lines = (run_dir / "journal.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "journal.jsonl").write_text("".join(ln for ln in lines if '"event": "end"' not in ln))
    (run_dir / "matrix.json").unlink()
    (run_dir / "matrix.md").unlink()
    page = _report(sleuth, run_dir)
    text = visible_text(page)
    total = sum(c["counts"]["total"] for c in doc["cells"])
    fails = sum(c["counts"]["fail"] for c in doc["cells"])
    assert (
        f"Not finished (interrupted or still running): {total} trial(s) in {len(doc['cells'])} cell(s), "
        f"{fails} failed; no cell is decided before the matrix ends (sleuth matrix resume {run_dir} goes on)"
    ) in text
    assert 'class="headline unsure"' in page
    # the journal's counts are the matrix's own (same target rule), and nothing is decided
    for c in doc["cells"]:
        n = c["counts"]
        assert (
            f"{c['name']} {'+'.join(c['mitigations'])} {n['total']} {n['fail']} 0 {_rate(c)} not decided"
            in text
        )
    assert [t for t, _ in parse(page).tags].count("svg") == 2
    assert "fixes it" not in text


def test_a_matrix_whose_matrix_json_is_unreadable_gets_its_page_from_the_journal(
    sleuth: Callable[..., CliResult],
) -> None:
    doc = _matrix(sleuth, *AXIS, *STEP, "--trials", "2", "--", "sh", "-c", WORKLOAD)
    run_dir = Path(doc["run_dir"])
    whole = (run_dir / "matrix.json").read_text()
    total = sum(c["counts"]["total"] for c in doc["cells"])
    fails = sum(c["counts"]["fail"] for c in doc["cells"])
    for cut in (whole[: len(whole) // 2], "\x00garbage"):  # a full disk cut it short; not JSON at all
        (run_dir / "matrix.json").write_text(cut)
        page = _report(sleuth, run_dir)  # before: exit 2, "matrix.json: not readable as JSON", no page
        text = visible_text(page)
        assert "The matrix ended but matrix.json is unreadable (" in text
        assert (
            f"{total} trial(s) in {len(doc['cells'])} cell(s), {fails} failed, counted from the journal; "
            f"no cell is decided here (sleuth matrix resume {run_dir} reports it again from the journal)"
        ) in text
        assert 'class="headline unsure"' in page and "Not finished" not in text
        for c in doc["cells"]:  # the journal's counts, undecided
            n = c["counts"]
            assert (
                f"{c['name']} {'+'.join(c['mitigations'])} {n['total']} {n['fail']} 0 {_rate(c)} not decided"
                in text
            )
    # what is no run dir is still bad input: one line, exit 2
    bad = sleuth("report", run_dir / "cells")
    assert bad.rc == 2 and len(bad.stderr.strip().splitlines()) == 1 and "not a sleuth run dir" in bad.stderr


def test_odd_values_in_matrix_json_and_the_journal_never_stop_the_page(
    sleuth: Callable[..., CliResult],
) -> None:
    doc = _matrix(sleuth, *AXIS, *STEP, "--trials", "2", "--", "sh", "-c", WORKLOAD)
    run_dir = Path(doc["run_dir"])
    odd = ["x", None, [1], {"a": 1}, -1, True, 1e308]
    for i, cell in enumerate(doc["cells"]):  # every value of each cell but its name made odd, or gone
        for j, key in enumerate(sorted(k for k in cell if k != "name")):
            if (i + j) % 5:
                cell[key] = odd[(i + j) % len(odd)]
            else:
                del cell[key]
    doc["environment_effects"] = [{"environment": 3}, "x"]
    (run_dir / "matrix.json").write_text(json.dumps(doc))
    assert "sleuth matrix:" in _report(sleuth, run_dir)
    # the journal's trial events, odd too, once matrix.json is gone
    (run_dir / "matrix.json").unlink()
    events = [json.loads(ln) for ln in (run_dir / "journal.jsonl").read_text().splitlines()]
    for i, e in enumerate(e for e in events if e["event"] == "trial"):
        e["trial"].update(
            {"signature": [1], "metrics": "x", "error": {"a": 1}} if i % 2 else {"outcome": "?"}
        )
    (run_dir / "journal.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in events if e["event"] != "end")
    )
    assert "Not finished (interrupted or still running)" in visible_text(_report(sleuth, run_dir))


def test_a_running_a_ctrl_c_d_and_a_resuming_matrix_each_say_so(
    sleuth: Callable[..., CliResult], tmp_path: Path, sleuth_env: dict[str, str]
) -> None:
    gate = tmp_path / "gate"
    # each cell's first trial fails at once; the others wait for the gate, so the matrix is
    # surely running (or resuming) while its page is made
    script = f'[ "$SLEUTH_TRIAL_ID" = 0001 ] || while [ ! -e {gate} ]; do sleep 0.05; done; exit 1'
    argv = [sys.executable, "-m", "sleuth", "matrix", "--mitigation-axis", "tf32_off", "--trials", "3",
            "--", "sh", "-c", script]  # fmt: skip
    with _started(argv, sleuth_env) as proc:
        journal = _wait_for(tmp_path / "runs", '"event": "trial", ', count=2)
        run_dir = journal.parent
        running = visible_text(_report(sleuth, run_dir))
        proc.send_signal(signal.SIGINT)  # Ctrl-C: it keeps what finished and writes matrix.json
        assert proc.wait(timeout=60) == 130
    assert "Not finished (interrupted or still running): 2 trial(s) in 2 cell(s), 2 failed" in running
    assert json.loads((run_dir / "matrix.json").read_text())["interrupted"] is True
    resume = f"sleuth matrix resume {run_dir} goes on"
    assert f"Interrupted (the numbers cover the trials that finished; {resume}):" in visible_text(
        _report(sleuth, run_dir)
    )
    # a resume appends to the journal: until it ends, the matrix.json there is the old one
    with _started([sys.executable, "-m", "sleuth", "matrix", "resume", str(run_dir)], sleuth_env) as proc:
        _wait_for(tmp_path / "runs", '"event": "resume"', count=1)
        resuming = visible_text(_report(sleuth, run_dir))
        gate.touch()
        assert proc.wait(timeout=60) in (0, 3)
    assert "Not finished (interrupted or still running):" in resuming
    doc = json.loads((run_dir / "matrix.json").read_text())
    text = visible_text(_report(sleuth, run_dir))
    assert not doc["interrupted"] and "Not finished" not in text and "Interrupted" not in text
    assert f"{doc['baseline']} none @ host 3 3 0 {_rate(doc['cells'][0])} baseline" in text


def _started(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        default_signals(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _wait_for(output: Path, needle: str, count: int) -> Path:
    """The journal under ``output`` once it holds ``needle`` ``count`` times."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for journal in output.glob("*/*/*/journal.jsonl"):
            if journal.read_text().count(needle) >= count:
                return journal
        time.sleep(0.02)
    raise AssertionError(f"no journal with {count} x {needle}")


def test_secrets_in_the_workloads_logs_and_markup_in_them_are_shown_as_scrubbed_text(
    sleuth: Callable[..., CliResult], browser: Callable[[Path], str]
) -> None:
    secret = "hunter2-but-longer-value"
    token = "ghp_" + "Zx9" * 10
    evil = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"
    script = f'echo "using $API_PASSWORD and {token}" >&2; echo "{evil}" >&2; exit 1'
    doc = _matrix(sleuth, "--mitigation-axis", "tf32_off", "--trials", "2", "--env", f"API_PASSWORD={secret}",
                  "--", "sh", "-c", script)  # fmt: skip
    run_dir = Path(doc["run_dir"])
    assert secret in (run_dir / "cells" / doc["baseline"] / "trials" / "0001" / "stderr").read_text()
    page = _report(sleuth, run_dir)
    assert "using " in page and secret not in page and token not in page
    dom = browser(run_dir / "report.html")
    assert not [t for t, _ in parse(dom).tags if t in ("script", "img")]
    assert evil in visible_text(dom)
    # nothing decided in two trials a cell: inconclusive, said plainly
    assert "Inconclusive: no cell differs significantly from its baseline" in visible_text(dom)
    assert 'class="headline unsure"' in page


def test_a_big_matrix_keeps_its_baseline_and_failing_cells_when_the_table_is_cut(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    cells = [{"name": "baseline", "mitigations": ["none"]}]
    cells += [{"name": f"c{i:03d}", "extra_env": {"X": str(i)}} for i in range(205)]
    recipe = {"schema_version": 1, "seed": 1, "trials": 1, "cells": cells,
              "workload": {"name": "big", "command": 'case "$X" in 150|204) exit 1;; esac'}}  # fmt: skip
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(recipe))
    doc = _matrix(sleuth, "--recipe", str(tmp_path / "big.yaml"), "--jobs", "2")
    text = visible_text(_report(sleuth, Path(doc["run_dir"])))
    assert f"200 of {len(doc['cells'])} rows shown." in text
    assert "baseline none @ host 1 0" in text and "c000 none @ host 1 0" in text
    assert "c150 none @ host 1 1" in text and "c204 none @ host 1 1" in text
    assert "c199 none @ host" not in text
    assert f"40 of {len(doc['cells'])} cells drawn." in text
