"""The hint after a stop the machine caused (EMFILE, EAGAIN) names the verb's own resume command and
its run dir, and that command goes on: `run`, `matrix`, `bisect` and `reduce` each under a real
``ulimit -n``; the process limit (which root does not meet) made at the one place it comes from."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

#: a test that opens at most 40 descriptors: 40 trials at once cannot all get their files and pipes
_ULIMIT = ["sh", "-c", 'ulimit -n 40 && exec "$@"', "sh", sys.executable, "-m", "sleuth"]
_SLOW = "sleep 0.3"


def _write_inputs(tmp_path: Path) -> None:
    (tmp_path / "lines.txt").write_text("".join(f"{i}\n" for i in range(1, 2001)))
    (tmp_path / "recipe.yaml").write_text(
        "schema_version: 1\nticket: LIM\n"
        f'workload: {{command: ["sh", "-c", "{_SLOW}"], oracle: {{kind: exit_code}}, timeout: 60}}\n'
        "trials: 40\ncells:\n  - {name: baseline, mitigations: [none]}\n"
    )
    (tmp_path / "spec.yaml").write_text(
        "name: lim\n"
        f'workload: {{command: ["sh", "-c", "{_SLOW}; [ $N -lt 7 ]"], timeout: 30}}\n'
        "oracle: {kind: exit_code}\nbudget: {baseline_trials: 40}\n"
        "axes:\n  - {name: N, kind: env, type: int, initial: 500, floor: 0}\n"
    )


_VERBS = {
    "run": ["run", "-n", "40", "-j", "40", "--", "sh", "-c", _SLOW],
    "matrix": ["matrix", "--recipe", "recipe.yaml", "--jobs", "40"],
    "bisect": [
        "bisect",
        "list",
        "--jobs",
        "40",
        "--flaky",
        "off",
        "lines.txt",
        "--",
        "sh",
        "-c",
        f'{_SLOW}; [ "$SLEUTH_CANDIDATE" -lt 1000 ]',
    ],
    "reduce": ["reduce", "--spec", "spec.yaml", "--jobs", "40", "--json"],
}
_COMMAND = {
    "run": r"sleuth run --resume (\S+)$",
    "matrix": r"sleuth matrix resume (\S+)$",
    "bisect": r"sleuth bisect resume (\S+)$",
    "reduce": r"sleuth reduce resume (\S+)$",
}


@pytest.mark.parametrize("verb", list(_VERBS))
def test_out_of_file_descriptors_names_the_verbs_own_resume_command(
    tmp_path: Path, sleuth_env: dict[str, str], verb: str
) -> None:
    """Every verb said "then resume (sleuth run/matrix/reduce --resume DIR, sleuth bisect resume DIR)":
    `matrix --resume` and `reduce --resume` do not exist, and the run dir was not named."""
    _write_inputs(tmp_path)
    res = subprocess.run([*_ULIMIT, *_VERBS[verb]], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env=sleuth_env, stdin=subprocess.DEVNULL)  # fmt: skip
    assert res.returncode == 4, res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert "Too many open files" in line and "limit of 40 open files (ulimit -n 40" in line, line
    assert "/trials/" not in line and "stderr" not in line, line
    found = re.search(_COMMAND[verb], line)
    assert found is not None, line
    run_dir = Path(shlex.split(found.group(1))[0])
    assert (run_dir / "journal.jsonl").is_file(), line
    if verb == "reduce":  # the command named goes on (the others' resumes have their own tests)
        again = subprocess.run([sys.executable, "-m", "sleuth", *shlex.split(line.split("then resume: ")[1])[1:],
                                "--json"], capture_output=True, text=True, timeout=120, env=sleuth_env,
                               stdin=subprocess.DEVNULL)  # fmt: skip
        assert again.returncode == 0 and '"status": "reduced"' in again.stdout, again.stderr


#: sleuth reduce with its fork failing as at the process limit after the first two trials; RLIMIT_NPROC
#: does not apply to root, so the failure is made here, at the one place it comes from
_NO_PROCESSES_LEFT = """
import errno, sys
from sleuth import _spawn
from sleuth.cli import main
real_spawn, calls = _spawn.spawn, []
def spawn(*a, **kw):
    calls.append(1)
    if len(calls) > 2:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
    return real_spawn(*a, **kw)
_spawn.spawn = spawn
sys.exit(main(sys.argv[1:]))
"""


def test_a_reduction_at_the_process_limit_names_reduce_resume(
    tmp_path: Path, sleuth_env: dict[str, str]
) -> None:
    _write_inputs(tmp_path)
    res = subprocess.run([sys.executable, "-c", _NO_PROCESSES_LEFT, *_VERBS["reduce"]], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path, env=sleuth_env)  # fmt: skip
    assert res.returncode == 4, res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert "the process limit is reached" in line and "ulimit -u" in line, line
    assert re.search(_COMMAND["reduce"], line), line


def test_a_stop_before_any_run_dir_says_run_it_again(tmp_path: Path, sleuth_env: dict[str, str]) -> None:
    """No run dir was opened (`sleuth env` at the process limit at its probe): nothing to resume."""
    res = subprocess.run([sys.executable, "-c", _NO_PROCESSES_LEFT.replace("> 2", ">= 0"), "env", "--json"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path, env=sleuth_env)  # fmt: skip
    assert res.returncode == 4, res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert line.endswith("then run it again") and "resume" not in line, line
