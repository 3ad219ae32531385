"""Planted secrets (in the env, in a file line, in argv) reach no file of the run dir, the bundle
or the packed archive, and none of the output; ``--scrub`` patterns are listed, matches never."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from tests.badinput import assert_no_secret
from tests.reduce.conftest import doc, knobs_spec

TOKEN = "hf_PlantedTokenValue0123456789"
FILE_SECRET = "sekrit-4f2a9c77"
ARGV_SECRET = "sekrit-88beef01"


def test_planted_secrets_never_leave(cli, tmp_path: Path) -> None:
    spec = knobs_spec(tmp_path)
    data = yaml.safe_load(spec.read_text())
    data["workload"]["env"]["HF_TOKEN"] = TOKEN
    data["axes"][3]["keep"] = ["HF_TOKEN"]  # the env_set axis must not drop it: run_repro.sh asks for it
    data["workload"]["command"] = [sys.executable, "knobs.py", "--steps", "{STEPS}", "{LINES}", "--echo",
                                   f"--api-key={ARGV_SECRET}", "{FLAGS}"]  # fmt: skip
    spec.write_text(yaml.safe_dump(data))
    lines = (tmp_path / "lines.txt").read_text().splitlines()
    lines[30] = f"api_key={FILE_SECRET}"
    (tmp_path / "lines.txt").write_text("\n".join(lines) + "\n")
    res = cli("reduce", "--spec", spec, "--json", "--scrub", r"sekrit-[0-9a-f]{8}")
    assert res.returncode == 0, res.stderr[-2000:]
    d = doc(res)
    run = Path(d["run_dir"])
    # the workload saw the real values (it echoed them into its own logs, which were scrubbed)
    logs = "".join(p.read_text() for p in run.glob("candidates/*/t*/stdout"))
    assert "<redacted>" in logs and "token:" in logs
    # the secret env var is kept for resume, 0600
    kept = run / "secrets.json"
    assert kept.stat().st_mode & 0o777 == 0o600 and TOKEN in kept.read_text()
    b = cli("bundle", run, "--json")
    assert b.returncode == 0, b.stderr
    archive = Path(doc(b)["archive"])
    members = []
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            if m.isfile():
                fh = tar.extractfile(m)
                assert fh is not None
                members.append(fh.read().decode("utf-8", "replace"))
    for secret in (TOKEN, FILE_SECRET, ARGV_SECRET):
        assert_no_secret(secret, res.stdout, res.stderr, b.stdout, *members, roots=[run])
    repro = (run / "shrunken" / "run_repro.sh").read_text()
    assert 'export HF_TOKEN="${HF_TOKEN:?' in repro
    ship = (run / "SHIP.md").read_text()
    assert "HF_TOKEN" in ship and "sekrit-[0-9a-f]{8}" in ship
    journal = (run / "journal.jsonl").read_text()
    assert ARGV_SECRET not in journal and "sleuth.reduce._exec" in journal  # the trampoline hid argv


def test_tar_members_are_scrubbed_again_with_extra_patterns(cli, tmp_path: Path) -> None:
    spec = knobs_spec(tmp_path, budget={"baseline_trials": 1, "max_trials": 4})
    d = doc(cli("reduce", "--spec", spec, "--json"))
    run = Path(d["run_dir"])
    b = cli("bundle", run, "--json", "--scrub", "alpha", "--out", tmp_path / "x.tar.gz")
    assert b.returncode == 0, b.stderr
    with tarfile.open(tmp_path / "x.tar.gz") as tar:
        text = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    lines = next(v for k, v in text.items() if k.endswith("inputs/lines.txt"))
    assert b"alpha" not in lines and b"<redacted>" in lines
    ship = next(v for k, v in text.items() if k.endswith("SHIP.md")).decode()
    members = json.loads(b.stdout)["members"]
    assert all(m["sha256"] in ship for m in members if not m["path"].endswith("SHIP.md"))
    assert io.BytesIO(text[next(iter(text))]).read()


def test_command_values_named_by_their_flag_never_leave(cli, tmp_path: Path) -> None:
    """``--password hunter2`` and ``--api-key=abc123x`` in the command are hidden without a ``--scrub``
    pattern: the run dir, the bundle and the output never hold them."""
    spec = knobs_spec(tmp_path)
    data = yaml.safe_load(spec.read_text())
    data["workload"]["command"] = [sys.executable, "knobs.py", "--steps", "{STEPS}", "{LINES}", "--echo",
                                   "--password", "hunter2", "--api-key=abc123x", "{FLAGS}"]  # fmt: skip
    spec.write_text(yaml.safe_dump(data))
    res = cli("reduce", "--spec", spec, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    run = Path(doc(res)["run_dir"])
    logs = "".join(p.read_text() for p in run.glob("candidates/*/t*/stdout"))
    assert "--password <redacted> --api-key=<redacted>" in logs  # the workload's own echo, hidden
    b = cli("bundle", run, "--json")
    assert b.returncode == 0, b.stderr
    with tarfile.open(Path(doc(b)["archive"])) as tar:
        members = [
            tar.extractfile(m).read().decode("utf-8", "replace") for m in tar.getmembers() if m.isfile()
        ]  # type: ignore[union-attr]
    for secret in ("hunter2", "abc123x"):
        assert_no_secret(secret, res.stdout, res.stderr, b.stdout, *members, roots=[run])


def test_run_repro_takes_redacted_arguments_from_the_shell(cli, tmp_path: Path) -> None:
    """A secret in the command line is read from a variable by ``run_repro.sh``: written as
    ``<redacted>`` it was a shell redirection and the reproducer did not run at all."""
    spec = knobs_spec(tmp_path)
    data = yaml.safe_load(spec.read_text())
    data["workload"]["env"]["HF_TOKEN"] = TOKEN
    data["axes"][3]["keep"] = ["HF_TOKEN"]
    data["workload"]["command"] = [sys.executable, "knobs.py", "--steps", "{STEPS}", "{LINES}", "--echo",
                                   "--password", "hunter2xyz", f"--api-key={ARGV_SECRET}", "--hf", TOKEN,
                                   "{FLAGS}"]  # fmt: skip
    spec.write_text(yaml.safe_dump(data))
    res = cli("reduce", "--spec", spec, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    shrunken = Path(doc(res)["run_dir"]) / "shrunken"
    repro = (shrunken / "run_repro.sh").read_text()
    for secret in ("hunter2xyz", ARGV_SECRET, TOKEN):
        assert secret not in repro
    base = {"PATH": os.environ["PATH"]}
    bare = subprocess.run(["sh", str(shrunken / "run_repro.sh")], capture_output=True, text=True, env=base)
    assert bare.returncode != 0 and "was redacted from this bundle" in bare.stderr, bare.stderr
    # verify.sh stops with the same message (it said "reproduced 0/2": every run had exited 2)
    bare = subprocess.run(["sh", str(shrunken / "verify.sh"), "2"], capture_output=True, text=True, env=base)
    assert bare.returncode == 2 and "reproduced" not in bare.stdout, bare.stdout
    assert "HF_TOKEN was redacted from this bundle: export it first" in bare.stderr, bare.stderr
    given = {**base, "HF_TOKEN": TOKEN, "REPRO_SECRET_1": "hunter2xyz", "REPRO_SECRET_2": ARGV_SECRET}
    run = subprocess.run(["sh", str(shrunken / "run_repro.sh")], capture_output=True, text=True, env=given)
    assert run.returncode == 1 and "boom at step" in run.stdout, run.stdout + run.stderr
    # the workload got every real value (the token in argv read from the exported HF_TOKEN)
    assert f"--password hunter2xyz --api-key={ARGV_SECRET} --hf {TOKEN}" in run.stdout
    verify = subprocess.run(
        ["sh", str(shrunken / "verify.sh"), "2"], capture_output=True, text=True, env=given
    )
    assert verify.stdout.strip() == "reproduced 2/2"
    # SHIP.md tells variables from arguments (it called workload.command[7] a variable of your shell)
    ship = (shrunken.parent / "SHIP.md").read_text().splitlines()
    variables = next(x for x in ship if x.startswith("- secret variables"))
    arguments = next(x for x in ship if x.startswith("- secret arguments"))
    assert "HF_TOKEN" in variables and "workload.command" not in variables
    assert "REPRO_SECRET_<n>" in arguments and "workload.command[7]" in arguments
