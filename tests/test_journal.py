"""Run dirs, journals and atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sleuth.errors import InfrastructureError, UsageError
from sleuth.journal import RunDir, atomic_write_json, read_journal


def test_run_dirs_are_claimed_once_even_in_the_same_second(tmp_path: Path) -> None:
    dirs = [RunDir.create(tmp_path, "run", "job") for _ in range(5)]
    paths = {d.path for d in dirs}
    assert len(paths) == 5
    assert all(p.parent == tmp_path / "run" / "job" for p in paths)
    for d in dirs:
        d.close()


@pytest.mark.parametrize("bad", ["..", ".hidden", "a/b", "", "-x", "sp ace"])
def test_bad_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UsageError):
        RunDir.create(tmp_path, "run", bad)
    assert not (tmp_path / "run" / bad).exists() or bad in ("",)


def test_journal_appends_and_survives_a_torn_last_line(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "run", "j")
    rd.journal.append("start", config={"a": 1})
    rd.journal.append("trial", trial={"id": "0001"})
    rd.close()
    with open(rd.path / "journal.jsonl", "a") as fh:
        fh.write('{"event": "trial", "tri')  # kill -9 in the middle of a write
    events = read_journal(rd.path / "journal.jsonl")
    assert [e["event"] for e in events] == ["start", "trial"]
    assert events[1]["trial"] == {"id": "0001"}


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "summary.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert os.listdir(target.parent) == ["summary.json"]


def test_open_requires_a_journal(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a sleuth run dir"):
        RunDir.open(tmp_path)


def test_reopening_a_journal_with_a_torn_last_line_keeps_it_readable(tmp_path: Path) -> None:
    """kill -9 mid-write, then resume appends: the fragment must not swallow the next event."""
    rd = RunDir.create(tmp_path, "run", "j")
    rd.journal.append("start", config={"a": 1})
    rd.close()
    with open(rd.path / "journal.jsonl", "a") as fh:
        fh.write('{"event": "trial", "tri')
    again = RunDir.open(rd.path)
    again.journal.append("resume")
    again.journal.append("trial", trial={"id": "0002"})
    again.close()
    assert [e["event"] for e in again.events()] == ["start", "resume", "trial"]


def test_a_corrupt_line_in_the_middle_is_named_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"event": "start"}\n{"event": "tr\n{"event": "end"}\n')
    with pytest.raises(InfrastructureError, match=r"journal.jsonl: line 2 is not a JSON event"):
        read_journal(path)


def test_atomic_writes_are_as_readable_as_any_new_file(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "summary.json", {})
    (tmp_path / "plain").write_text("")
    mode = (tmp_path / "summary.json").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain").stat().st_mode & 0o777


def test_a_run_dir_in_use_cannot_be_opened_twice(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "run", "busy")
    with pytest.raises(UsageError, match="in use by another sleuth process"):
        RunDir.open(rd.path)
    rd.close()
    again = RunDir(rd.path)  # released on close (and by the kernel when a process dies)
    again.close()


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_a_journal_that_is_not_utf8_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"event": "start"}\n\xff\xfe binary \x00\n{"event": "end"}\n')
    with pytest.raises(UsageError, match=r"journal.jsonl: not a sleuth journal \(not UTF-8") as exc:
        read_journal(path)
    assert "\n" not in str(exc.value)


def test_a_last_line_cut_inside_a_character_is_torn_not_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"event": "start"}\n{"event": "trial", "x": "\xc3')  # kill -9 mid-character
    assert [e["event"] for e in read_journal(path)] == ["start"]


@pytest.mark.parametrize(
    "setup",
    ["empty", "no-start", "binary-journal", "missing-required"],
)
def test_opening_a_directory_that_is_not_the_run_dir_asked_for_creates_nothing(
    tmp_path: Path, setup: str
) -> None:
    d = tmp_path / "d"
    d.mkdir()
    if setup == "no-start":
        (d / "journal.jsonl").write_text('{"event": "test", "n": 1}\n')
    elif setup == "binary-journal":
        (d / "journal.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xff")
    elif setup == "missing-required":
        (d / "journal.jsonl").write_text('{"event": "start", "config": {}}\n')
    before = _tree(d)
    with pytest.raises(UsageError, match=str(d)):
        RunDir.open(d, kind="sleuth matrix", start_key="config", requires=("recipe.resolved.yaml",))
    assert _tree(d) == before  # no .lock, nothing


def test_a_name_too_long_or_an_empty_output_creates_no_directory(tmp_path: Path) -> None:
    out = tmp_path / "sleuth-runs"
    with pytest.raises(UsageError, match="cannot be used as a directory name"):
        RunDir.create(out, "run", "n" * 300)
    assert not out.exists()
    with pytest.raises(UsageError, match="--output ''"):
        RunDir.create("", "run", "job")
    assert _tree(tmp_path) == []


def test_a_failed_create_removes_the_directories_it_made(tmp_path: Path) -> None:
    blocker = tmp_path / "a" / "file"
    blocker.parent.mkdir()
    blocker.write_text("")
    with pytest.raises(UsageError, match="--output"):
        RunDir.create(blocker / "deeper", "run", "job")  # a file where a directory must go
    assert _tree(tmp_path) == ["a", "a/file"]


def test_append_encoded_puts_the_json_text_in_the_event(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "run", "enc")
    record = {"id": "0001", "metrics": {"loss": [1.0, "nan"]}}
    rd.journal.append_encoded("trial", {"trial": json.dumps(record)}, subdir="trials", cell="a")
    rd.close()
    (ev,) = read_journal(rd.journal.path)
    assert ev["event"] == "trial" and ev["subdir"] == "trials" and ev["cell"] == "a"
    assert ev["trial"] == record and list(ev)[-1] == "trial"
