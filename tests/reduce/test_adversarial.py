"""Odd inputs a user really has: CRLF files, files that are not UTF-8, a symlink loop or an old
run dir in the workload's directory, and secrets in arg_set values.  Each is reduced by the real CLI
and what it writes (the run dir, the bundle, the archive) is checked byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from sleuth.reduce.scratch import COPY_LIMIT, PRIVATE_DIR
from tests.badinput import assert_no_secret
from tests.reduce.conftest import doc

TOKEN = "hf_PlantedTokenValue0123456789"

#: fails (exit 1) when the file named by argv[1] holds "needle"; with --strict only when it holds
#: b"needle\r\n" and ends in b"last" (no final newline)
PROGRAM = """\
import json
import os
import sys
data = open(sys.argv[1], "rb").read()
print("args", " ".join(sys.argv[2:]))
strict = "--strict" in sys.argv
if (b"needle\\r\\n" in data and data.endswith(b"last")) if strict else b"needle" in data:
    print("boom")
    raise SystemExit(1)
print("ok")
"""


def _spec(tmp_path: Path, lines: bytes, **extra: Any) -> Path:
    (tmp_path / "w.py").write_text(PROGRAM)
    (tmp_path / "lines.txt").write_bytes(lines)
    data: dict[str, Any] = {
        "name": "adv",
        "workload": {"command": [sys.executable, "w.py", "{LINES}"], "timeout": 30},
        "oracle": {"kind": "exit_code"},
        "budget": {"baseline_trials": 1},
        "axes": [{"name": "LINES", "kind": "file_lines", "path": "lines.txt"}],
        **extra,
    }
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec


def _archive(cli: Any, run: Path) -> dict[str, bytes]:
    b = cli("bundle", run, "--json")
    assert b.returncode == 0, b.stderr
    with tarfile.open(Path(doc(b)["archive"])) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_file_lines_keep_crlf_odd_separators_and_a_missing_final_newline(cli, tmp_path: Path) -> None:
    """The baseline runs the file as it is (CRLF, a form feed inside a line, no final newline): it
    reproduces, and the reduced file keeps the original's line endings."""
    spec = _spec(tmp_path, b"one\r\ntwo\x0cthree\r\nneedle\r\nfour\r\nlast")
    data = yaml.safe_load(spec.read_text())
    data["workload"]["command"].append("--strict")
    spec.write_text(yaml.safe_dump(data))
    res = cli("reduce", "--spec", spec, "--json")
    assert res.returncode == 0, res.stdout[-1500:] + res.stderr[-1500:]
    d = doc(res)
    assert d["status"] == "reduced"
    assert d["axes"]["LINES"]["initial"] == "5 items" or len(d["axes"]["LINES"]["initial"]) == 5
    run = Path(d["run_dir"])
    assert (run / "shrunken" / "inputs" / "lines.txt").read_bytes() == b"needle\r\nlast"


def test_non_utf8_and_binary_inputs_ship_scrubbed(cli, tmp_path: Path) -> None:
    """A token in a file with a Latin-1 byte, or in a binary file, is hidden in the bundle like one
    in a UTF-8 file; the other bytes are kept as they were."""
    spec = _spec(tmp_path, b"a\nneedle\n")
    (tmp_path / "conf.ini").write_bytes(b"caf\xe9 = 1\ntoken = " + TOKEN.encode() + b"\n")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02" + TOKEN.encode() + b"\x00\xff")
    res = cli("reduce", "--spec", spec, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    run = Path(doc(res)["run_dir"])
    members = _archive(cli, run)
    conf = next(v for k, v in members.items() if k.endswith("inputs/conf.ini"))
    assert conf.startswith(b"caf\xe9 = 1\n") and b"<redacted>" in conf
    assert_no_secret(TOKEN, res.stdout, *(v.decode("latin-1") for v in members.values()), roots=[run])


def test_symlink_loops_fifos_and_old_run_dirs_stay_out_of_inputs(cli, tmp_path: Path) -> None:
    """``ln -s . loop`` and ``ln -s self self`` in the workload's directory, a FIFO, and a previous
    run's output dir there (its ``secrets.json`` included) are not copied into ``inputs/``: the
    bundle is written, no secret in it."""
    spec = _spec(tmp_path, b"a\nneedle\n")
    data = yaml.safe_load(spec.read_text())
    data["workload"]["env"] = {"DB_PASSWORD": "dbPassword42xy"}
    spec.write_text(yaml.safe_dump(data))
    (tmp_path / "loop").symlink_to(".")
    (tmp_path / "self").symlink_to("self")  # resolves to nothing, ever
    os.mkfifo(tmp_path / "fifo")  # copying it would wait for a writer forever
    first = cli("reduce", "--spec", spec, "--json", "--output", tmp_path / "old")
    assert first.returncode == 0, first.stderr[-2000:]
    assert list((tmp_path / "old").rglob("secrets.json"))
    res = cli("reduce", "--spec", spec, "--json", "--output", tmp_path / "new", timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    run = Path(doc(res)["run_dir"])
    inputs = run / "shrunken" / "inputs"
    assert (inputs / "w.py").is_file() and not (inputs / "loop").exists() and not (inputs / "fifo").exists()
    assert not list(inputs.rglob("journal.jsonl"))  # the old run dir was left out
    assert not list((run / "shrunken").rglob("secrets.json"))
    members = _archive(cli, run)
    assert_no_secret("dbPassword42xy", *(v.decode("latin-1") for v in members.values()))


def test_a_tree_500_deep_and_odd_file_names_ship(cli, tmp_path: Path) -> None:
    """A directory 500 levels deep (shutil.copytree recursed into a RecursionError, a traceback at
    the end of the reduction) and names with a newline or a byte that is not UTF-8 are copied
    into ``inputs/`` and packed."""
    spec = _spec(tmp_path, b"a\nneedle\n")
    deep = tmp_path.joinpath(*["d"] * 500)
    deep.mkdir(parents=True)
    (deep / "leaf.txt").write_text("leaf")
    (tmp_path / "new\nline.txt").write_text("nl")
    (Path(os.fsdecode(bytes(tmp_path)) + os.fsdecode(b"/caf\xe9.txt"))).write_text("latin")
    res = cli("reduce", "--spec", spec, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    inputs = Path(doc(res)["run_dir"]) / "shrunken" / "inputs"
    assert inputs.joinpath(*["d"] * 500, "leaf.txt").read_text() == "leaf"
    assert (inputs / "new\nline.txt").read_text() == "nl"
    assert os.fsencode(inputs / os.fsdecode(b"caf\xe9.txt")) in [os.fsencode(p) for p in inputs.iterdir()]
    members = _archive(cli, Path(doc(res)["run_dir"]))
    assert any(k.endswith("inputs/" + "d/" * 500 + "leaf.txt") for k in members)
    subprocess.run(["rm", "-rf", str(tmp_path / "d"), str(inputs / "d")], check=True)  # rmtree recurses


def test_a_tree_1000_deep_left_in_each_trial_dir(cli, tmp_path: Path) -> None:
    """A workload that leaves a tree 1,000 deep in ``$SLEUTH_TRIAL_DIR``: the scrub of the run dir
    at the end (os.walk) recursed into a RecursionError, a traceback instead of the bundle."""
    spec = _spec(tmp_path, b"a\nneedle\n")
    data = yaml.safe_load(spec.read_text())
    data["workload"]["command"][1:2] = ["-c", DEEP_THEN + PROGRAM.replace("sys.argv[1]", "sys.argv[2]"), "w"]
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        res = cli("reduce", "--spec", spec, "--json")
        assert res.returncode == 0, res.stderr[-2000:]
        assert "Traceback" not in res.stderr
        assert doc(res)["status"] == "reduced"
        assert _archive(cli, Path(doc(res)["run_dir"]))
    finally:  # pytest removes old temp dirs with shutil.rmtree, which recurses too
        subprocess.run(["rm", "-rf", str(tmp_path / "runs")], check=True)


DEEP_THEN = """\
import os
here = os.getcwd()
os.chdir(os.environ["SLEUTH_TRIAL_DIR"])
for _ in range(1000):
    os.mkdir("d")
    os.chdir("d")
os.chdir(here)
"""


def test_secret_values_of_an_arg_set_never_leave(cli, tmp_path: Path) -> None:
    """``--password VALUE`` and ``--token=VALUE`` as an arg_set's values are secrets like the same
    words in the command: hidden in the output, the run dir and the bundle."""
    values = ["--password", "hunter2xyzQ", "--token=abcdefSecret9", "--x"]
    spec = _spec(tmp_path, b"a\nneedle\n")
    data = yaml.safe_load(spec.read_text())
    data["workload"]["command"].append("{FLAGS}")
    data["axes"].append({"name": "FLAGS", "kind": "arg_set", "values": values})
    spec.write_text(yaml.safe_dump(data))
    res = cli("reduce", "--spec", spec)
    assert res.returncode == 0, res.stderr[-2000:]
    run = next((tmp_path / "runs" / "reduce" / "adv").iterdir())
    members = _archive(cli, run)
    for secret in ("hunter2xyzQ", "abcdefSecret9"):
        assert_no_secret(secret, res.stdout, res.stderr, *(v.decode("latin-1") for v in members.values()),
                         roots=[run])  # fmt: skip


def test_a_fifo_as_spec_is_named_not_called_missing(cli, tmp_path: Path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    res = cli("reduce", "--spec", fifo, "--dry-run", timeout=60)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        f"error: {fifo}: not a regular file (a FIFO); give a YAML or JSON file"
    ], res.stderr


def test_an_exit_code_oracle_that_never_failed_says_so(cli, tmp_path: Path) -> None:
    """Not reproducible with ``kind: exit_code``: the summary names no regex (it said "output matches None")."""
    spec = _spec(tmp_path, b"a\nb\n")
    res = cli("reduce", "--spec", spec, "--json")
    assert res.returncode == 3, res.stderr[-2000:]
    assert "None" not in doc(res)["signature"]


def test_a_file_lines_path_that_is_not_utf8_text_or_not_a_file(cli, tmp_path: Path) -> None:
    """One line naming the key path and the file, what is wrong and what to do; nothing written."""
    spec = _spec(tmp_path, b"a\n\xffb\nneedle\n")
    res = cli("reduce", "--spec", spec)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "axes[0].path: lines.txt: not UTF-8 text (byte 0xff at offset 2)" in res.stderr
    assert "file_set" in res.stderr
    (tmp_path / "lines.txt").unlink()
    (tmp_path / "lines.txt").mkdir()
    res = cli("reduce", "--spec", spec)
    assert res.returncode == 2 and "axes[0].path: lines.txt: not a regular file" in res.stderr, res.stderr
    assert not (tmp_path / "runs").exists()


def test_a_file_too_large_to_scrub_is_named_in_ship_md(cli, tmp_path: Path) -> None:
    """A file over the scrub limit (64 MiB) is not rewritten: SHIP.md of the run dir and of the
    archive must say so, by name, rather than list it among scrubbed files."""
    spec = _spec(tmp_path, b"a\nneedle\n")
    with open(tmp_path / "huge.log", "wb") as fh:  # sparse: 65 MiB of zeros, then a token
        fh.seek(65 * 1024 * 1024)
        fh.write(TOKEN.encode())
    res = cli("reduce", "--spec", spec, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    run = Path(doc(res)["run_dir"])
    assert "huge.log" in (run / "SHIP.md").read_text().split("## Scrubbed", 1)[1]
    ship = next(v for k, v in _archive(cli, run).items() if k.endswith("SHIP.md")).decode()
    assert "huge.log" in ship.split("## Scrubbed", 1)[1]


def test_a_linked_file_or_directory_outside_the_workload_is_not_copied(cli, tmp_path: Path) -> None:
    """``data -> /datasets/...`` in the workload's directory: the size limit never saw it and the
    bundle copied all of it (a dataset, or ~/.aws); ``creds -> ~/.aws/credentials`` was copied as
    its bytes.  Both are left out, and SHIP.md says so."""
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "credentials").write_text("aws_secret_access_key = plantedOutsideValue42\n")
    home = tmp_path / "home"
    home.mkdir()
    (home / "token").write_text("plantedLinkedFileValue43\n")
    spec = _spec(work, b"a\nneedle\n")
    (work / "data").symlink_to(outside)
    (work / "creds").symlink_to(home / "token")
    res = cli("reduce", "--spec", spec, "--json", cwd=work)
    assert res.returncode == 0, res.stderr[-2000:]
    d = doc(res)
    run = Path(d["run_dir"])
    assert not (run / "shrunken" / "inputs" / "data").exists()
    assert not (run / "shrunken" / "inputs" / "creds").exists()
    ship = (run / "SHIP.md").read_text()
    for name in ("data", "creds"):
        assert f"{name} -> " in d["inputs"] and f"{name} -> " in ship
    archive = [v.decode("latin-1") for v in _archive(cli, run).values()]
    for planted in ("plantedOutsideValue42", "plantedLinkedFileValue43"):
        assert_no_secret(planted, *archive, roots=[run])


def test_bundle_out_where_nothing_can_be_written_is_one_line(cli, tmp_path: Path) -> None:
    spec = _spec(tmp_path, b"a\nneedle\n")
    run = Path(doc(cli("reduce", "--spec", spec, "--json"))["run_dir"])
    res = cli("bundle", run, "--out", "/proc/x-repro.tar.gz")  # a directory no file can be created in
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "--out /proc/x-repro.tar.gz" in res.stderr and "Traceback" not in res.stderr
    assert not list(run.glob(".sleuth-pack-*"))


def test_resume_with_a_damaged_reduce_json_is_one_line(cli, tmp_path: Path) -> None:
    spec = _spec(tmp_path, b"a\nneedle\n")
    run = Path(doc(cli("reduce", "--spec", spec, "--json"))["run_dir"])
    good = (run / "reduce.json").read_text()
    for damaged in (b"\xff{", b"[]", b"{}", good.replace('"output": "', '"output": 5, "x": "').encode()):
        (run / "reduce.json").write_bytes(damaged)
        res = cli("reduce", "resume", run)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, (
            damaged,
            res.stderr[-1500:],
        )
        assert "reduce.json" in res.stderr


def test_bundle_of_a_tampered_summary_is_refused(cli, tmp_path: Path) -> None:
    """A run dir received from someone else: its summary.json's name must not steer where the
    archive (or its staging copy) is written, and a summary that is not an object is one line."""
    spec = _spec(tmp_path, b"a\nneedle\n")
    run = Path(doc(cli("reduce", "--spec", spec, "--json"))["run_dir"])
    good = json.loads((run / "summary.json").read_text())
    for bad in ([1], "x", {**good, "name": "../../../escaped"}, {**good, "name": 5}):
        (run / "summary.json").write_text(json.dumps(bad))
        res = cli("bundle", run)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, (bad, res.stderr[-1500:])
        assert "summary.json" in res.stderr
    assert not list(tmp_path.rglob("escaped*"))


@pytest.mark.parametrize("where", ["command", "arg_set", "cwd"])
def test_a_nul_byte_in_an_argument_or_path_is_one_line(cli, tmp_path: Path, where: str) -> None:
    """exec cannot pass a NUL byte: it was a ValueError traceback when the first trial started."""
    spec = _spec(tmp_path, b"a\nneedle\n")
    data = yaml.safe_load(spec.read_text())
    if where == "command":
        data["workload"]["command"].append("a\0b")
    elif where == "arg_set":
        data["workload"]["command"].append("{FLAGS}")
        data["axes"].append({"name": "FLAGS", "kind": "arg_set", "values": ["--x", "a\0b"]})
    else:
        data["workload"]["cwd"] = "sub\0dir"
    spec.write_text(yaml.safe_dump(data))
    res = cli("reduce", "--spec", spec)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr[-1500:]
    assert "NUL" in res.stderr and not (tmp_path / "runs").exists()


def test_not_reproducible_says_why_and_names_no_bundle(cli, tmp_path: Path) -> None:
    """The original never failed: no axis is "already at its smallest value", no miss probability
    of candidates never tried, and the run dir is not called a bundle (there is no shrunken/)."""
    spec = _spec(tmp_path, b"a\nb\n")
    res = cli("reduce", "--spec", spec)
    assert res.returncode == 3, res.stderr[-2000:]
    assert "not searched: the original did not reproduce" in res.stdout, res.stdout
    assert "smallest value" not in res.stdout and "miss probability" not in res.stdout
    assert "original reproduced 0/1" in res.stdout
    run = next((tmp_path / "runs" / "reduce" / "adv").iterdir())
    assert not (run / "shrunken").exists() and f"run dir (no bundle): {run}" in res.stdout
    assert "bundle: " not in res.stdout


#: fails on every second run (a counter outside the workload's directory): a 1-in-2 flaky failure
ALTERNATE = """\
import os, sys
counter = os.environ["COUNTER"]
n = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
open(counter, "w").write(str(n))
if "needle" in open(sys.argv[1]).read() and n % 2 == 0:
    print("boom")
    raise SystemExit(1)
"""


def test_a_flaky_original_is_reported_with_its_rate_at_the_stated_confidence(cli, tmp_path: Path) -> None:
    """The original's own rate (k/n and its interval) is reported beside the pooled one, at the spec's
    confidence: run_repro.sh said "95% CI" whatever the confidence was."""
    spec = _spec(tmp_path, b"a\nneedle\nb\n", budget={"baseline_trials": 2, "confidence": 0.9})
    (tmp_path / "w.py").write_text(ALTERNATE)
    data = yaml.safe_load(spec.read_text())
    data["workload"]["env"] = {"COUNTER": str(tmp_path / "counter")}
    spec.write_text(yaml.safe_dump(data))
    res = cli("reduce", "--spec", spec, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    d = doc(res)
    original = d["flaky"]["original"]
    assert (original["reproduced"], original["trials"]) == (2, 4)  # flaky: twice the baseline trials
    assert original["reproduction_rate"] == 0.5 and original["reproduction_rate_ci"][0] > 0.0
    repro = (Path(d["run_dir"]) / "shrunken" / "run_repro.sh").read_text()
    assert "# Reproduction rate of the original: 2/4 (90% CI [" in repro
    assert "95% CI" not in repro and "(90% CI [" in repro.split("while reducing:")[1]


def test_progress_lines_on_stderr_are_scrubbed(cli, tmp_path: Path) -> None:
    """The line printed when the best point moves (``LINES -> [...]``) showed a --scrub match and a
    secret of a file line that every file of the run dir hides."""
    secret = "sekrit-4f2a9c77"
    spec = _spec(tmp_path, f"a\nb\nneedle {secret}\nc\n".encode())
    res = cli("reduce", "--spec", spec, "--scrub", r"sekrit-[0-9a-f]{8}")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "LINES -> ['needle <redacted>']" in res.stderr, res.stderr
    assert_no_secret(secret, res.stdout, res.stderr, roots=[tmp_path / "runs"])


def test_progress_lines_of_a_file_set_are_scrubbed(cli, tmp_path: Path) -> None:
    """The progress lines of a file_set (built from its file names scrubbed once, not rendered and
    scrubbed again for each candidate) hide a --scrub match in a kept file's name, as every file of
    the run dir does; a choice axis beside it is shown as before."""
    secret = "sekrit-4f2a9c77"
    shards = tmp_path / "shards"
    (shards / "sub").mkdir(parents=True)
    for name in ("a.bin", "b.bin", f"sub/needle-{secret}.bin", "sub/c.bin"):
        (shards / name).write_bytes(b"x")
    (tmp_path / "w.py").write_text(
        "import os, sys\n"
        "raise SystemExit(1 if any('needle' in n for _, _, fs in os.walk(sys.argv[1]) for n in fs) else 0)\n"
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "adv", "workload": {"command": [sys.executable, "w.py", "{SHARDS}"], "timeout": 30},
        "oracle": {"kind": "exit_code"}, "budget": {"baseline_trials": 1},
        "axes": [{"name": "SHARDS", "kind": "file_set", "path": "shards"},
                 {"name": "API_TOKEN", "kind": "env", "type": "choice", "values": ["tok-aaaaaaaa", "tok-bbbbbbbb"],
                  "initial": "tok-bbbbbbbb"}],
    }))  # fmt: skip
    res = cli("reduce", "--spec", spec, "--scrub", r"sekrit-[0-9a-f]{8}")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "SHARDS -> ['sub/needle-<redacted>.bin']" in res.stderr, res.stderr
    assert "API_TOKEN -> tok-aaaaaaaa" in res.stderr, res.stderr
    assert_no_secret(secret, res.stdout, res.stderr, roots=[tmp_path / "runs"])


def test_a_predicate_that_always_reproduces_reduces_to_the_floor_and_says_so(cli, tmp_path: Path) -> None:
    """Every axis at its smallest legal value: the summary and SHIP.md say the failure may not depend
    on the inputs (it said only "reduced"); a reduction that stops above a floor says nothing of it."""
    spec = _spec(tmp_path, b"a\nneedle\nb\n")
    data = yaml.safe_load(spec.read_text())
    data["workload"]["command"] = [sys.executable, "-c", "raise SystemExit(1)", "{LINES}", "{STEPS}"]
    data["axes"].append({"name": "STEPS", "kind": "param", "initial": 50, "floor": 2})
    spec.write_text(yaml.safe_dump(data))
    d = doc(cli("reduce", "--spec", spec, "--json"))
    assert d["status"] == "reduced" and d["final"]["axes"] == {"LINES": [], "STEPS": 2}
    assert "every axis reached its smallest value" in d["note"]
    assert "every axis reached its smallest value" in (Path(d["run_dir"]) / "SHIP.md").read_text()
    needed = doc(cli("reduce", "--spec", _spec(tmp_path, b"a\nneedle\nb\n"), "--json"))
    assert needed["final"]["axes"] == {"LINES": ["needle"]} and "note" not in needed


def test_an_original_that_cannot_run_says_why(cli, tmp_path: Path) -> None:
    """Exit 4 naming the cause (it said only "could not be run: error")."""
    spec = _spec(tmp_path, b"needle\n")
    data = yaml.safe_load(spec.read_text())
    data["workload"]["command"] = ["no-such-program-4f2a", "{LINES}"]
    spec.write_text(yaml.safe_dump(data))
    res = cli("reduce", "--spec", spec)
    assert res.returncode == 4, res.stderr[-2000:]
    assert "could not be run: error (command not found: no-such-program-4f2a)" in res.stderr, res.stderr


def test_odd_file_names_keep_ship_md_one_row_per_file(cli, tmp_path: Path) -> None:
    """A file named with a newline or a ``|`` split its row of SHIP.md's table."""
    spec = _spec(tmp_path, b"a\nneedle\n")
    (tmp_path / "new\nline.txt").write_text("x")
    (tmp_path / "a|b.txt").write_text("y")
    d = doc(cli("reduce", "--spec", spec, "--json"))
    ship = (Path(d["run_dir"]) / "SHIP.md").read_text()
    table = ship.split("| file | bytes | sha256 |\n|---|---|---|\n")[1].split("\n\n")[0].splitlines()
    assert all(row.startswith("| shrunken/") and row.count(" | ") == 2 for row in table), table
    assert "| shrunken/inputs/new\\nline.txt |" in ship and "| shrunken/inputs/a\\|b.txt |" in ship


def test_absolute_paths_into_the_workload_dir_point_into_the_bundle(cli, tmp_path: Path) -> None:
    """``[python, /home/me/proj/w.py]`` and ``PYTHONPATH=/home/me/proj/lib``: run_repro.sh, spec.yaml
    and recipe.yaml named the user's files, not the bundle's copies (elsewhere: "No such file")."""
    import shutil
    import subprocess

    spec = _spec(tmp_path, b"a\nneedle\n")
    data = yaml.safe_load(spec.read_text())
    data["workload"]["command"] = [sys.executable, str(tmp_path / "w.py"), "{LINES}"]
    data["workload"]["env"] = {"PYTHONPATH": f"{tmp_path}/lib:/opt/elsewhere"}
    spec.write_text(yaml.safe_dump(data))
    d = doc(cli("reduce", "--spec", spec, "--json"))
    shrunken = Path(d["run_dir"]) / "shrunken"
    for name in ("run_repro.sh", "spec.yaml", "recipe.yaml"):
        assert str(tmp_path) not in (shrunken / name).read_text(), name
    moved = shutil.copytree(shrunken, tmp_path / "elsewhere" / "shrunken")
    (tmp_path / "w.py").unlink()  # the user's copy is gone: only the bundle's can run
    res = subprocess.run(["sh", str(moved / "run_repro.sh")], capture_output=True, text=True, cwd="/")
    assert res.returncode == 1 and "boom" in res.stdout, res.stdout + res.stderr
    assert 'export PYTHONPATH="$here/inputs"/lib:/opt/elsewhere' in (moved / "run_repro.sh").read_text()


def test_verify_sh_interrupted_leaves_no_temp_dir(cli, tmp_path: Path) -> None:
    """Ctrl-C in verify.sh left its mktemp folder (the workload's output) in $TMPDIR."""
    import signal
    import subprocess
    import time

    spec = _spec(tmp_path, b"a\nneedle\n")
    (tmp_path / "w.py").write_text(
        "import os, sys, time\ntime.sleep(float(os.environ.get('NAP', '0')))\n"
        "raise SystemExit(1 if 'needle' in open(sys.argv[1]).read() else 0)\n"
    )
    d = doc(cli("reduce", "--spec", spec, "--json"))
    verify = Path(d["run_dir"]) / "shrunken" / "verify.sh"
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    env = {"PATH": os.environ["PATH"], "TMPDIR": str(tmp), "NAP": "30"}
    proc = subprocess.Popen(["sh", str(verify), "3"], env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while not any(tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(tmp.iterdir()), "verify.sh made no temp dir"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    assert proc.wait(timeout=30) != 0
    assert list(tmp.iterdir()) == []


def test_a_large_workload_dir_still_ships_the_script_named_by_its_absolute_path(cli, tmp_path: Path) -> None:
    """Over INPUTS_LIMIT only the files the command names are copied: one named by an absolute path
    into the cwd was left out, and the reproducer could not run elsewhere."""
    import subprocess

    from sleuth.reduce.bundle import INPUTS_LIMIT

    spec = _spec(tmp_path, b"a\nneedle\n")
    with open(tmp_path / "weights.bin", "wb") as fh:  # sparse: no disk used
        fh.truncate(INPUTS_LIMIT + 1)
    data = yaml.safe_load(spec.read_text())
    data["workload"]["command"] = [sys.executable, str(tmp_path / "w.py"), "{LINES}"]
    spec.write_text(yaml.safe_dump(data))
    d = doc(cli("reduce", "--spec", spec, "--json"))
    inputs = Path(d["run_dir"]) / "shrunken" / "inputs"
    assert sorted(p.name for p in inputs.iterdir()) == ["lines.txt", "w.py"]
    (tmp_path / "w.py").unlink()
    res = subprocess.run(["sh", str(inputs.parent / "run_repro.sh")], capture_output=True, text=True)
    assert res.returncode == 1 and "boom" in res.stdout, res.stdout + res.stderr


def _main_py_spec(tmp_path: Path, axis: str, path: str) -> Path:
    """A spec reducing ``path`` (a file_lines axis) under ``python main.py {AXIS}``, exit code judged."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "main", "workload": {"command": [sys.executable, "main.py", f"{{{axis}}}"]},
        "oracle": {"kind": "exit_code"}, "budget": {"baseline_trials": 1},
        "axes": [{"name": axis, "kind": "file_lines", "path": path}],
    }))  # fmt: skip
    return spec


def test_a_file_lines_axis_on_a_module_the_script_imports(cli, tmp_path: Path) -> None:
    """``python main.py`` importing ``conf.py``, the axis file: the scratch copy symlinked main.py,
    Python put the original directory on sys.path (it resolves the script's links), every candidate
    imported the original conf.py and the reduction ended at nothing, a bundle that passes."""
    import subprocess

    (tmp_path / "main.py").write_text(
        "import conf\nraise SystemExit(1 if getattr(conf, 'NEEDLE', 0) else 0)\n"
    )
    (tmp_path / "conf.py").write_text("".join(f"A{i} = {i}\n" for i in range(12)) + "NEEDLE = 1\n")
    spec = _main_py_spec(tmp_path, "CONF", "conf.py")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    d = doc(cli("reduce", "--spec", spec, "--json"))
    assert d["final"]["axes"] == {"CONF": ["NEEDLE = 1"]}, d["final"]
    res = subprocess.run(["sh", str(Path(d["run_dir"]) / "shrunken" / "run_repro.sh")], capture_output=True)
    assert res.returncode == 1
    assert {
        p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()
    } == before  # originals untouched


def test_a_workload_that_rewrites_its_own_file_leaves_the_users_alone(cli, tmp_path: Path) -> None:
    """Each run rewrites ``state.json`` of its directory in place; the scratch copies hard-linked
    it (symlinked before), so every candidate wrote into the user's own file."""
    (tmp_path / "main.py").write_text(
        "import sys\nopen('state.json', 'w').write('{\"run\": 1}')\n"
        "raise SystemExit(1 if 'NEEDLE' in open(sys.argv[1]).read() else 0)\n"
    )
    (tmp_path / "state.json").write_text('{"theirs": true}')
    (tmp_path / "lines.txt").write_text("a\nb\nNEEDLE\nc\n")
    spec = _main_py_spec(tmp_path, "LINES", "lines.txt")
    d = doc(cli("reduce", "--spec", spec, "--json"))
    assert d["final"]["axes"] == {"LINES": ["NEEDLE"]}, d["final"]
    assert (tmp_path / "state.json").read_text() == '{"theirs": true}'


def test_a_workload_that_rewrites_a_large_file_leaves_the_users_alone(cli, tmp_path: Path) -> None:
    """Files over 1 MiB were hard-linked into the scratch copies: a workload that truncated its
    checkpoint (``open(p, "wb")``, as ``torch.save`` does) or patched a weights file in place
    (``"r+b"``) destroyed the user's file.  A file over ``COPY_LIMIT`` is now a hard link to the
    reduction's private copy, made again after a candidate rewrote it: every candidate reads the
    original bytes, and the private copies are gone when the reduction ends."""
    big = COPY_LIMIT + 1
    originals = {"ckpt.pt": os.urandom(big), "data.bin": os.urandom(big), "small.bin": os.urandom(1000)}
    for rel, content in originals.items():
        (tmp_path / rel).write_bytes(content)
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "s0.bin").write_bytes(b"x" * 100)
    (tmp_path / "shards" / "s1.bin").write_bytes(b"NEEDLE")
    seen = tmp_path.parent / f"{tmp_path.name}-seen.log"
    heads = {rel: content[:32] for rel, content in originals.items()}
    (tmp_path / "main.py").write_text(
        "import os, sys\n"
        f"heads = {heads!r}\n"
        f"with open({str(seen)!r}, 'a') as log:\n"
        "    log.write(' '.join(r for r, h in heads.items() if open(r, 'rb').read(32) != h) + '|\\n')\n"
        "open('ckpt.pt', 'wb').write(b'candidate')\n"
        "with open('data.bin', 'r+b') as f:\n    f.write(b'candidate')\n"
        "open('small.bin', 'wb').close()\n"
        "found = any(open(os.path.join(sys.argv[1], n), 'rb').read().startswith(b'NEEDLE')\n"
        "            for n in os.listdir(sys.argv[1]))\n"
        "raise SystemExit(1 if found else 0)\n"
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "main", "workload": {"command": [sys.executable, "main.py", "{SHARDS}"]},
        "oracle": {"kind": "exit_code"}, "budget": {"baseline_trials": 1},
        "axes": [{"name": "SHARDS", "kind": "file_set", "path": "shards"}],
    }))  # fmt: skip
    d = doc(cli("reduce", "--spec", spec, "--json"))
    assert d["final"]["axes"] == {"SHARDS": ["s1.bin"]}, d["final"]
    for rel, content in originals.items():
        assert (tmp_path / rel).read_bytes() == content, f"{rel} was rewritten"
    runs = seen.read_text().splitlines()
    assert len(runs) >= 3 and set(runs) == {"|"}, runs  # no candidate saw another's rewrite
    assert not (Path(d["run_dir"]) / PRIVATE_DIR).exists()


def test_ship_md_names_the_input_files_that_held_a_hidden_value(cli, tmp_path: Path) -> None:
    """A token inside a reduced input is hidden in the bundle: the reproducer may then pass (verify.sh
    "reproduced 0/N") and nothing said which file had changed."""
    spec = _spec(tmp_path, f"a\nneedle {TOKEN}\n".encode())
    d = doc(cli("reduce", "--spec", spec, "--json"))
    run = Path(d["run_dir"])
    note = "values hidden in 1 input file(s), put them back if the failure needs them: `shrunken/inputs/lines.txt`"
    assert note in (run / "SHIP.md").read_text()
    ship = _archive(cli, run)["adv-repro/SHIP.md"].decode()  # the archive's own SHIP.md says it too
    assert note in ship


@pytest.mark.parametrize(
    ("first", "second", "how"),
    [
        ({"kind": "file_set", "path": "data"}, {"kind": "file_lines", "path": "data/cfg.txt"}, "overlaps"),
        ({"kind": "file_lines", "path": "data/cfg.txt"}, {"kind": "file_set", "path": "./data"}, "overlaps"),
        ({"kind": "file_lines", "path": "data/cfg.txt"}, {"kind": "file_lines", "path": "data//cfg.txt"},
         "is the same path as"),
    ],
)  # fmt: skip
def test_file_axes_that_overlap_are_refused(
    cli, tmp_path: Path, first: dict[str, str], second: dict[str, str], how: str
) -> None:
    """A file_lines file inside a file_set folder (or one file on two axes): the scratch copy laid out
    one of them, so the other axis's candidates all ran the original; now one line, exit 2, no run."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cfg.txt").write_text("a\nb\n")
    (tmp_path / "data" / "shard0").write_text("x\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "workload": {"command": ["true"]},
        "axes": [{"name": "A", **first}, {"name": "B", **second}],
    }))  # fmt: skip
    res = cli("reduce", "--spec", spec, "--output", tmp_path / "runs")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert (
        f"axes[1].path: {second['path']} ({second['kind']}) {how} axes[0].path {first['path']}" in res.stderr
    )
    assert not (tmp_path / "runs").exists()
