"""A command line or a folder that is not UTF-8 (a Latin-1 file name on an old file system).

The workload gets the exact bytes, on the first run and on resume; every file sleuth writes stays
UTF-8 (a byte that is not is written as its JSON escape, ``\\udce9``), and nothing crashes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

LATIN1 = b"caf\xe9-donn\xe9es"
ARG = os.fsdecode(LATIN1)  # how Python (and so sleuth) sees those bytes: lone surrogates
ECHO = "import os, sys; open('got', 'wb').write(os.fsencode(sys.argv[1])); sys.exit(int(sys.argv[2]))"


def _all_utf8(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file() and p.name not in ("stdout", "stderr"):
            p.read_bytes().decode("utf-8")  # raises if not


def test_run_passes_the_bytes_and_writes_utf8_and_resume_passes_them_again(
    sleuth, sleuth_env: dict[str, str], tmp_path: Path
) -> None:
    work = tmp_path / os.fsdecode(b"w\xff")  # a --cwd that is not UTF-8 either
    work.mkdir()
    res = sleuth("run", "-n", "1", "--json", "--cwd", work, "--", sys.executable, "-c", ECHO, ARG, "0")
    assert res.rc == 0, res.stderr
    assert (work / "got").read_bytes() == LATIN1
    rd = Path(res.json()["run_dir"])
    _all_utf8(rd)
    assert "\\udce9" in (rd / "report.md").read_text(encoding="utf-8")
    start = json.loads((rd / "journal.jsonl").read_text().splitlines()[0])
    assert start["config"]["argv"][3] == ARG and start["config"]["cwd"] == str(work)
    # killed before its trial: the resume gives the workload the same bytes
    (work / "got").unlink()
    (rd / "journal.jsonl").write_text(json.dumps(start) + "\n")
    shutil.rmtree(rd / "trials")
    (rd / "summary.json").unlink()
    again = sleuth("run", "--resume", rd, "--json")
    assert again.rc == 0, again.stderr
    assert (work / "got").read_bytes() == LATIN1
    _all_utf8(rd)
    # a failing trial: its signature and the terminal's table carry the name too
    # (the terminal gets the raw bytes, as `ls` prints such a name: read them as bytes)
    argv = [sys.executable, "-m", "sleuth", "run", "-n", "1", "--cwd", work, "--", sys.executable, "-c", ECHO]
    failed = subprocess.run([*argv, ARG, "3"], capture_output=True, env=sleuth_env, cwd=tmp_path, timeout=60)
    assert failed.returncode == 1 and b"Traceback" not in failed.stderr, failed.stderr
    assert LATIN1 in failed.stdout


def test_bisect_with_such_a_command_finds_the_answer(sleuth, tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("".join(f"{i}\n" for i in range(1, 41)))
    test = f'test "$SLEUTH_CANDIDATE" -lt 30 # {ARG}'
    res = sleuth("bisect", "list", "--flaky", "off", "--json", "l.txt", "--", "sh", "-c", test)
    assert res.rc == 0, res.stderr
    doc = res.json()
    assert doc["first_bad"]["label"] == "30"
    _all_utf8(Path(doc["run_dir"]))
