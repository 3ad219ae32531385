"""What people see: ``-- CMD`` as run and bisect take it, tables that never break a name (80 columns,
narrower, piped), progress in logs, and hints that can be pasted."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth.cli._layout import Cell, Column, render_lines
from tests.matrix.conftest import CELLWORK, default_signals, recipe_data
from tests.matrix.test_matrix_cli import one_line_error

LONG = "cuda_launch_blocking,tf32_off+nccl_p2p_off+alloc_expandable_segments"


def test_the_workload_goes_after_dash_dash(sleuth: Callable[..., Any], tmp_path: Path) -> None:
    res = sleuth(
        "matrix", "--mitigation-axis", "none,nccl_p2p_off", "--trials", "3", "--fail-regex", "loss is nan",
        "--json", "--", sys.executable, str(CELLWORK), "--flag-for-the-workload",
        env={"WORK_FAIL_P": "1", "WORK_SEED": "1"},
    )  # fmt: skip
    assert res.rc in (0, 3), res.stderr
    doc = res.json()
    assert doc["command"] == [sys.executable, str(CELLWORK), "--flag-for-the-workload"]
    assert [c["counts"]["target_fail"] for c in doc["cells"]] == [3, 3]
    # resume is still a subcommand
    again = sleuth("matrix", "resume", doc["run_dir"], "--json")
    assert again.rc == res.rc, again.stderr
    assert again.json()["already_finished"] is True


def test_dash_dash_mistakes_are_one_line(sleuth: Callable[..., Any], write_recipe: Callable[..., Path],
                                         tmp_path: Path) -> None:  # fmt: skip
    err = one_line_error(sleuth("matrix", "--trials", "3", "python", "train.py"), "a workload goes after --")
    assert "sleuth matrix --mitigation-axis tf32_off -- python train.py" in err
    one_line_error(sleuth("matrix", "--workload-cmd", "true", "--", "true"), "give the command once")
    one_line_error(
        sleuth("matrix", "--recipe", write_recipe(), "--", "true"),
        "--recipe cannot be mixed with a command after --",
    )
    one_line_error(sleuth("matrix", "--trials", "3", "--"), "nothing after --")
    one_line_error(sleuth("matrix", "resume", tmp_path, "--", "true"), "takes its own options only")
    assert not (tmp_path / "runs").exists()


def _long_named_matrix(sleuth: Callable[..., Any]) -> dict[str, Any]:
    res = sleuth(
        "matrix", "--mitigation-axis", LONG, "--trials", "2", "--fail-regex", "loss is nan",
        "--step-time-regex", "step_time_ms=([0-9.]+)", "--seed", "3", "--json", "--", sys.executable, str(CELLWORK),
        env={"WORK_FAIL_P": "1", "WORK_SEED": "1"},
    )  # fmt: skip
    assert res.rc in (0, 3), res.stderr
    return dict(res.json())


def _words_of(doc: dict[str, Any]) -> list[str]:
    words = [c["name"] for c in doc["cells"]] + [m for c in doc["cells"] for m in c["mitigations"]]
    return sorted(set(words), key=len, reverse=True)


def test_an_80_column_terminal_breaks_no_name(sleuth: Callable[..., Any]) -> None:
    doc = _long_named_matrix(sleuth)
    names = [c["name"] for c in doc["cells"]]
    assert max(len(n) for n in names) > 40
    for width in (80, 60):
        out = sleuth("matrix", "resume", doc["run_dir"], env={"COLUMNS": str(width)}).stdout
        lines = out.splitlines()
        tokens = {t for ln in lines for t in ln.replace("+", " ").split()}
        for word in _words_of(doc):  # cuda_launch_blocking, never cuda_laun / ch_blocki / ng
            assert word in tokens, (word, out)
        for name in names:  # each cell's treatment is printed whole too
            c = next(c for c in doc["cells"] if c["name"] == name)
            assert f"{'+'.join(c['mitigations'])} @ host" in out
        notes = next(i for i, ln in enumerate(lines) if ln.startswith("  ") and not ln.startswith("   "))
        table = lines[1:notes]
        numbers = [ln for ln in table if ln.startswith("    ")]  # folded: the numbers below each name
        assert len(numbers) >= len(names)
        assert all(len(ln) <= width for ln in numbers), numbers
        assert all(len(ln) <= width for ln in table if not any(ln.startswith(n) for n in names))


def test_piped_the_table_is_one_line_per_cell_whatever_its_width(sleuth: Callable[..., Any],
                                                                 sleuth_env: dict[str, str]) -> None:  # fmt: skip
    doc = _long_named_matrix(sleuth)
    env = {k: v for k, v in sleuth_env.items() if k != "COLUMNS"}
    proc = subprocess.run(
        [sys.executable, "-m", "sleuth", "matrix", "resume", doc["run_dir"]],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    rows = [ln for ln in lines if ln.split() and ln.split()[0] in {c["name"] for c in doc["cells"]}]
    assert len(rows) == len(doc["cells"])
    for c, row in zip(doc["cells"], rows, strict=True):
        assert row.startswith(c["name"] + " ")
        assert f"{'+'.join(c['mitigations'])} @ host" in row
        assert c["classification"] in row
        assert f"{c['step_time_ratio']:.2f}" in row  # the last numbers are on the same line
    assert max(len(r) for r in rows) > 80  # and nothing folded them at 80 or cut them


def test_a_log_shows_progress_lines(sleuth: Callable[..., Any], write_recipe: Callable[..., Path]) -> None:
    data = recipe_data(trials=3)
    data["cells"] = data["cells"][:2]
    data["workload"]["env"]["WORK_SLEEP"] = "0.4"
    res = sleuth("matrix", "--recipe", write_recipe(data), env={"SLEUTH_PROGRESS_INTERVAL": "0.3"})
    assert res.rc in (0, 3), res.stderr  # 0/3 against 3/3 is not significant
    err = res.stderr.splitlines()
    assert err[0].startswith("sleuth matrix -> ")
    beats = [ln for ln in err if ln.startswith("trials ") and "/6 (" in ln and "elapsed" in ln]
    assert beats, res.stderr


def test_the_interrupt_hint_is_the_real_command(write_recipe: Callable[..., Path], tmp_path: Path,
                                                sleuth_env: dict[str, str]) -> None:  # fmt: skip
    data = recipe_data(trials=6)
    data["workload"]["env"]["WORK_SLEEP"] = "0.3"
    argv = [sys.executable, "-m", "sleuth", "matrix", "--recipe", str(write_recipe(data))]
    proc = subprocess.Popen(default_signals(argv), env=sleuth_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = list((tmp_path / "runs").glob("*/*/*/journal.jsonl"))
        if found and '"event": "trial"' in found[0].read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    run_dir = found[0].parent
    assert f"sleuth matrix resume {run_dir} runs the missing trials" in out.replace("`", "")
    assert "RUN_DIR" not in out
    md = (run_dir / "matrix.md").read_text()
    assert f"`sleuth matrix resume {run_dir}`" in md


def test_a_cell_decided_at_its_last_look_did_not_stop_early() -> None:
    from sleuth.matrix.aggregate import TrialRecord
    from sleuth.matrix.loop import _Loop
    from sleuth.matrix.recipe import parse_recipe
    from sleuth.matrix.resolve import resolve
    from sleuth.model import Outcome
    from sleuth.registry import load_registry

    data = recipe_data(trials=8, until_decided=True)
    data["cells"] = data["cells"][:2]
    plan = resolve(
        parse_recipe(data, "r"), load_registry(entry_points=False), "r", base_dir=Path("/"), environ={}
    )

    def rec(cell: str, i: int, fail: bool) -> TrialRecord:
        sig = "output: loss is nan" if fail else None
        return TrialRecord(cell=cell, index=i, outcome=Outcome.FAIL if fail else Outcome.PASS,
                           signature=sig, status="exit 0", wall_s=0.1, step_time=None)  # fmt: skip

    base = {("baseline", i): rec("baseline", i, True) for i in range(1, 9)}
    done = {**base, **{("fix", i): rec("fix", i, False) for i in range(1, 9)}}
    assert _Loop(plan, done, {}).check_stop(plan.cell("fix")) is None  # all 8 ran: nothing to stop
    early = {**base, **{("fix", i): rec("fix", i, False) for i in range(1, 7)}}
    stop = _Loop(plan, early, {}).check_stop(plan.cell("fix"))  # the 75% look, 6 of 8
    assert stop is not None and stop.indices == frozenset(range(1, 7))


names = st.text(alphabet="abcdefghij_-.+@0123456789", min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.lists(names, min_size=5, max_size=5), min_size=1, max_size=6),
    width=st.integers(min_value=30, max_value=200) | st.none(),
)
def test_layout_never_breaks_a_word(rows: list[list[str]], width: int | None) -> None:
    cols = [Column("cell"), Column("treatment", "tr"), Column("counts", "n", right=True), Column("rate"),
            Column("verdict", "v")]  # fmt: skip
    lines = render_lines(cols, [[Cell(t) for t in r] for r in rows], width, [[[0, 1], [2, 3, 4]]])
    text = ["".join(p.text for p in ln) for ln in lines]
    for r in rows:
        for word in r:
            assert any(word in t.split() for t in text), (word, text)
    if width is None:  # piped: one line per row after the header
        assert len(text) == len(rows) + 1
    for t in text:
        assert t == t.rstrip()


def test_layout_folds_columns_that_do_not_fit() -> None:
    cols = [Column("cell"), Column("numbers")]
    rows = [[Cell("a" * 30), Cell(" ".join(str(i) for i in range(1, 19)))]]
    wide = render_lines(cols, rows, 200, [[[0], [1]]])
    assert len(wide) == 2  # header and one row
    folded = ["".join(p.text for p in ln) for ln in render_lines(cols, rows, 60, [[[0], [1]]])]
    assert folded[2] == "a" * 30
    assert folded[3] == "    1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18"
    tiny = ["".join(p.text for p in ln) for ln in render_lines(cols, rows, 30, [[[0], [1]]])]
    assert tiny[0] == "a" * 30  # the name alone, then "numbers: ..." lines no wider than 30
    assert all(len(t) <= 30 for t in tiny[1:]), tiny


def test_a_baseline_that_never_failed_has_no_target_named_none(
    sleuth: Callable[..., Any], write_recipe: Callable[..., Path]
) -> None:
    """Exit-code oracle, the baseline never failed: every failure counts, and the report said
    ``target signature: None`` (a Python None) where matrix.md says ``any failure``."""
    data = recipe_data(trials=2)
    data["workload"]["oracle"] = {"kind": "exit_code"}
    data["workload"]["env"]["WORK_FAIL_P"] = "0"
    data["cells"] = data["cells"][:2]
    res = sleuth("matrix", "--recipe", write_recipe(data))
    assert res.rc == 3, res.stderr
    assert "target signature: any failure (the baseline did not fail);" in res.stdout, res.stdout
    assert "None" not in res.stdout
