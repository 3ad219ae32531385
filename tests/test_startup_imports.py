"""What a verb imports before it does its work: heavy modules only where they are used.

Each check starts a fresh interpreter (``sys.modules`` of this test process says nothing) and
runs the real CLI in it with stdout and stderr piped, as a script or CI would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sleuth.cli import VERBS

#: run `sleuth.cli.main(argv)` in a fresh interpreter; print the exit code and the heavy modules loaded
_PROBE = """
import json, sys
from sleuth.cli import main
rc = main(sys.argv[1:])
sys.stdout.flush()
heavy = {m.split(".")[0] for m in sys.modules} & {"rich", "numpy", "scipy", "pydantic"}
heavy = sorted(heavy | ({"sleuth.signature"} & set(sys.modules)))
print(json.dumps({"rc": rc, "heavy": heavy}), file=sys.stderr)
"""


def _probe(tmp_path: Path, *argv: str) -> tuple[dict[str, object], str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["SLEUTH_OUTPUT"] = str(tmp_path / "runs")
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    last = proc.stderr.strip().splitlines()[-1]
    return json.loads(last), proc.stdout


def test_run_json_on_a_pipe_loads_no_renderer(tmp_path: Path) -> None:
    """``run --json`` piped prints one document and never imports rich (nor numpy, scipy, pydantic)."""
    seen, out = _probe(tmp_path, "run", "--name", "imports", "--json", "--trials", "2", "--", "true")
    assert seen == {"rc": 0, "heavy": []}
    assert json.loads(out)["summary"]["pass"] == 2


def test_run_piped_prints_its_header_and_summary_without_rich(tmp_path: Path) -> None:
    """``run`` piped into a log (no ``--json``): the header, the rows and the summary are plain text,
    written without importing rich; a command rich would render differently still goes through it."""
    seen, out = _probe(tmp_path, "run", "--name", "plain", "--trials", "2", "--", "true")
    assert seen == {"rc": 0, "heavy": []}
    lines = out.splitlines()
    assert lines[0].startswith("sleuth run 2 trial(s) of true, 1 at a time -> "), out
    assert lines[1].split() == ["trial", "outcome", "rc", "wall", "metrics", "/", "signature"]
    assert "summary" in lines and any(ln.startswith("  trials        2: 2 pass  0 fail") for ln in lines)
    assert "  failure rate  0.0% [95% CI 0.0-65.8%]" in lines, out
    seen, out = _probe(tmp_path, "run", "--name", "emoji", "--trials", "1", "--", "echo", ":smile: [b]")
    assert seen == {"rc": 0, "heavy": ["rich"]}  # rich's emoji codes and escapes: rich renders them
    assert "of echo '\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES} [b]', 1 at a time" in out, out


def test_signatures_are_loaded_at_the_first_failure(tmp_path: Path) -> None:
    """A run whose trials pass never compiles the signature rules; a failing one does and names it."""
    seen, _ = _probe(tmp_path, "run", "--name", "passes", "--json", "--trials", "2", "--", "true")
    assert seen == {"rc": 0, "heavy": []}
    seen, out = _probe(tmp_path, "run", "--name", "fails", "--json", "--trials", "2", "--", "false")
    assert seen["heavy"] == ["sleuth.signature"]
    assert json.loads(out)["trials"][0]["signature"] == "exit 1"


def test_run_json_heartbeat_still_prints(tmp_path: Path) -> None:
    """The progress heartbeat of ``--json`` on a pipe still reaches stderr (its console made on demand)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env |= {"SLEUTH_OUTPUT": str(tmp_path / "runs"), "SLEUTH_PROGRESS_INTERVAL": "0.1"}
    cmd = ["run", "--name", "beat", "--json", "--trials", "2", "--", "sleep", "0.4"]
    proc = subprocess.run(
        [sys.executable, "-m", "sleuth", *cmd], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^trials [0-2]/2 \(\d+%\), 0:0\d elapsed$", proc.stderr, re.MULTILINE), proc.stderr
    assert json.loads(proc.stdout)["summary"]["trials"] == 2


def test_bisect_list_json_loads_no_renderer(tmp_path: Path) -> None:
    """``bisect list --json`` piped prints its document without importing rich."""
    (tmp_path / "cands.txt").write_text("".join(f"{i}\n" for i in range(1, 41)))
    test = tmp_path / "test.sh"
    test.write_text('#!/bin/sh\ntest "$SLEUTH_CANDIDATE" -lt 17\n')
    test.chmod(0o755)
    seen, out = _probe(tmp_path, "bisect", "list", "--json", "--flaky", "off", "cands.txt", str(test))
    assert seen == {"rc": 0, "heavy": ["sleuth.signature"]}  # bad candidates failed: signatures needed
    assert json.loads(out)["first_bad"]["label"] == "17"


#: as :data:`_PROBE`, and also which of them were loaded when the first test (``test.sh``) was spawned
_FIRST_SPAWN_PROBE = """
import json, subprocess, sys
seen = []
_popen_init = subprocess.Popen.__init__
def _init(self, args, *a, **k):
    if not seen and any(str(x).endswith("test.sh") for x in args):
        seen.append(sorted(m for m in ("rich", "sleuth.bisect.report", "sleuth.signature") if m in sys.modules))
    _popen_init(self, args, *a, **k)
subprocess.Popen.__init__ = _init
from sleuth.cli import main
rc = main(sys.argv[1:])
late = sorted(m for m in ("rich", "sleuth.bisect.report", "sleuth.signature") if m in sys.modules)
print(json.dumps({"rc": rc, "at_first_test": seen[0] if seen else None, "at_end": late}), file=sys.stderr)
"""


def test_a_bisection_starts_its_first_test_before_it_loads_the_console_and_the_report(tmp_path: Path) -> None:
    """``bisect list`` on a pipe: the first test is spawned before rich, the report and the signature
    rules are imported (they load while it runs; issue 9's start-up), and the header still comes
    before the first test's line."""
    (tmp_path / "cands.txt").write_text("".join(f"{i}\n" for i in range(1, 41)))
    test = tmp_path / "test.sh"
    test.write_text('#!/bin/sh\ntest "$SLEUTH_CANDIDATE" -lt 17\n')
    test.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["SLEUTH_OUTPUT"] = str(tmp_path / "runs")
    proc = subprocess.run([sys.executable, "-c", _FIRST_SPAWN_PROBE, "bisect", "list", "--flaky", "off",
                           "cands.txt", str(test)], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)  # fmt: skip
    seen = json.loads(proc.stderr.strip().splitlines()[-1])
    assert seen == {"rc": 0, "at_first_test": [],
                    "at_end": ["rich", "sleuth.bisect.report", "sleuth.signature"]}, proc.stderr  # fmt: skip
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("sleuth bisect list -> "), proc.stderr
    assert re.match(r"\s+0 search\s+\d+\s+(PASS|FAIL)", lines[1]), proc.stderr
    assert "first bad 17" in proc.stdout


@pytest.mark.parametrize("argv", [("--version",), *((verb, "--help") for verb in VERBS)])
def test_cheap_verbs_load_nothing_heavy(tmp_path: Path, argv: tuple[str, ...]) -> None:
    """``--version`` and every verb's ``--help`` import none of rich, numpy, scipy, pydantic."""
    seen, out = _probe(tmp_path, *argv)
    assert seen == {"rc": 0, "heavy": []}
    assert out.strip()


def test_a_bisection_that_is_not_pypi_loads_no_package_index_client(tmp_path: Path) -> None:
    """The report of every bisection names a pypi answer's release notes; the index client behind them
    (http.client, ssl) loads only for ``bisect pypi`` (it once loaded into every bisection)."""
    (tmp_path / "cands.txt").write_text("".join(f"{i}\n" for i in range(1, 9)))
    probe = _PROBE.replace('{"rich", "numpy", "scipy", "pydantic"}', '{"ssl", "http"}').replace(
        '{"sleuth.signature"}', '{"sleuth.bisect.index"}'
    )
    env = {**os.environ, "SLEUTH_OUTPUT": str(tmp_path / "runs")}
    proc = subprocess.run([sys.executable, "-c", probe, "bisect", "list", "--json", "--flaky", "off", "cands.txt",
                           "--", "sh", "-c", 'test "$SLEUTH_CANDIDATE" -lt 5'], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)  # fmt: skip
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == {"rc": 0, "heavy": []}
    assert json.loads(proc.stdout)["first_bad"]["label"] == "5"


def test_gate_check_loads_matplotlib_and_jinja2_only_for_its_html_page(tmp_path: Path) -> None:
    """``gate check`` draws with matplotlib and renders with Jinja2 only when ``--html`` asks for a page."""
    (tmp_path / "r.csv").write_text("metric,value,unit\nallocs,3,count\n")
    (tmp_path / "policy.yaml").write_text("metrics:\n  allocs: {kind: counter}\n")
    db = f"sqlite:///{tmp_path / 'h.db'}"
    for i in range(2):
        rec = subprocess.run([sys.executable, "-m", "sleuth", "gate", "record", "--suite", "s", "--run-id", f"r{i}",
                              "--no-provenance", "--db", db, "r.csv"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
        assert rec.returncode == 0, rec.stderr
    probe = _PROBE.replace('{"rich", "numpy", "scipy", "pydantic"}', '{"matplotlib", "jinja2"}')
    check = ["gate", "check", "--suite", "s", "--policy", "policy.yaml", "--db", db, "--json"]
    for extra, heavy in (((), []), (("--html", "page.html"), ["jinja2", "matplotlib"])):
        proc = subprocess.run([sys.executable, "-c", probe, *check, *extra], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120)  # fmt: skip
        assert json.loads(proc.stderr.strip().splitlines()[-1]) == {"rc": 0, "heavy": heavy}, proc.stderr
        assert json.loads(proc.stdout)["counts"]["PASS"] == 1
    assert (tmp_path / "page.html").read_text().startswith("<!DOCTYPE html>")
