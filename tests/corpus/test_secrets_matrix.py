"""Secrets across every verb: each case plants distinct secrets of known forms through one input path
of one verb and checks every output of it (files under its roots, stdout/stderr, ``--json``).

The forms: a Hugging Face token, a GitHub PAT, an AWS access key id and secret key, a PostgreSQL URL
with a password; the AWS secret key is also given as an INI/YAML config line
(``aws_secret_access_key = KEY``, ``AWS_SECRET_ACCESS_KEY: KEY``), the shapes a workload's config
dump and an env var's value take.  The workload's own stdout/stderr logs are kept verbatim by rule
(the trial's logs): they are the only files allowed to hold what the workload printed.

Matrix (verb x input path -> outputs checked): see ``CASES``.  Verbs covered elsewhere, in more
depth, and left out here: ``reduce``/``bundle`` (tests/reduce/test_secrets.py), ``matrix``
(tests/matrix/test_matrix_secrets.py), ``bisect git``/``pypi`` (tests/bisect/test_bisect_secrets.py),
``gate`` stores and metric names (tests/gate), ``serve`` (tests/attribution/test_service.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.badinput import assert_no_secret
from tests.conftest import CliResult

HF = "hf_" + "Mx7qLp2Rt9" * 3
GHP = "ghp_" + "Wn4kZs8Yv2" * 3 + "Qa3Jd5"
AKIA = "AKIA" + "QX7ZR2MK4PLW9TBN"
AWS_SECRET = "wJalrXUtnF9MIK7MDENGbPxRfiCYz3AMPLEKEY1q"
PG_PASSWORD = "Pgs3cretPw0rd"
PG = f"postgresql://alice:{PG_PASSWORD}@127.0.0.1:1/metrics"
SECRETS = (HF, GHP, AKIA, AWS_SECRET, PG_PASSWORD)

#: what a failing workload prints: each form, as a program or a config dump shows it
PRINTED = {
    "url": f"connecting to {PG}",
    "ini-id": f"aws_access_key_id = {AKIA}",
    "ini": f"aws_secret_access_key = {AWS_SECRET}",
    "yaml": f"AWS_SECRET_ACCESS_KEY: {AWS_SECRET}",
    "ghp": f"pushing with {GHP}",
    "hf": f"RuntimeError: 401 for token {HF}",
}


def leaky(form: str = "ini") -> str:
    """A program that prints one form to stderr and fails: that line alone is what its signature is
    made of (next to an error-looking line, the error line would be chosen instead)."""
    return f"import sys\nprint({PRINTED[form]!r}, file=sys.stderr)\nsys.exit(3)\n"


#: the workload's own logs, kept verbatim (the trial's, a candidate's, a supervised cycle's)
WORKLOAD_LOGS = frozenset({"stdout", "stderr", "output.log"})

#: variables a snapshot records (NCCL_, TORCH_, JAX_ ... prefixes), each holding a secret
SNAPSHOT_ENV = {
    "NCCL_SOCKET_HINT": f"eth0 {GHP}",
    "TORCH_HUB_TOKEN": HF,
    "TORCH_DB_URL": PG,
    "JAX_CLOUD_CONFIG": f"aws_secret_access_key = {AWS_SECRET}",
    "XLA_FLAGS": f"--xla_cloud_key {AKIA}",
}


@dataclass(frozen=True)
class Outcome:
    results: list[CliResult]
    roots: list[Path]


Sleuth = Callable[..., CliResult]


def _workload(tmp_path: Path, form: str = "ini") -> Path:
    script = tmp_path / "leaky.py"
    script.write_text(leaky(form))
    return script


def run_flag_env(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    env = [f"HF_TOKEN={HF}", f"DATABASE_URL={PG}", f"GH={GHP}", f"AWS_ACCESS_KEY_ID={AKIA}"]
    env += [f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}"]
    flags = [x for e in env for x in ("--env", e)]
    res = sleuth("run", "-n", "1", "--json", *flags, "--", sys.executable, "-c", "pass")
    return Outcome([res], [tmp_path / "runs"])


def run_argv(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    argv = ["--hf-token", HF, f"--github-token={GHP}", "--db", PG, "--aws-access-key-id", AKIA]
    argv += ["--aws-secret-access-key", AWS_SECRET]
    res = sleuth("run", "-n", "1", "--", sys.executable, "-c", "pass", *argv)
    return Outcome([res], [tmp_path / "runs"])


#: a workload's command that writes a credentials file before it trains (an inline shell script)
INLINE = f"printf '[default]\\naws_secret_access_key = {AWS_SECRET}\\n' > creds.ini && true"


def run_argv_inline(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    js = sleuth("run", "-n", "1", "--json", "--", "sh", "-c", INLINE)
    human = sleuth("run", "-n", "1", "--", "sh", "-c", INLINE)
    return Outcome([js, human], [tmp_path / "runs"])


def bisect_list_argv_inline(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    (tmp_path / "cands.txt").write_text("a\nb\nc\n")
    test = f'{INLINE}; test "$SLEUTH_CANDIDATE" != c'
    res = sleuth("bisect", "list", tmp_path / "cands.txt", "--", "sh", "-c", test)
    return Outcome([res], [tmp_path / "runs"])


def run_file_name(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    """The workload is a file named by a token, in a directory named by another (a run dir is named
    after its workload)."""
    where = tmp_path / f"ckpt-{HF}"
    where.mkdir()
    script = where / GHP
    script.write_text(leaky("url"))
    res = sleuth("run", "-n", "1", "--json", "--", sys.executable, script)
    return Outcome([res], [tmp_path / "runs"])


def run_workload_output(form: str) -> Callable[[Sleuth, Path], Outcome]:
    def case(sleuth: Sleuth, tmp_path: Path) -> Outcome:
        script = _workload(tmp_path, form)
        js = sleuth("run", "-n", "1", "--json", "--", sys.executable, script)
        human = sleuth("run", "-n", "1", "--", sys.executable, script)
        return Outcome([js, human], [tmp_path / "runs"])

    return case


def run_recorded_env(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    res = sleuth("run", "-n", "1", "--json", "--", sys.executable, "-c", "pass", env=SNAPSHOT_ENV)
    assert (Path(res.json()["run_dir"]) / "host_env.json").is_file()
    return Outcome([res], [tmp_path / "runs"])


def run_bad_flag(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    bad = [sleuth("run", "--env", f"HF_TOKEN:{HF}", "--", "true")]
    bad.append(sleuth("run", "--env", f"AWS_SECRET_ACCESS_KEY {AWS_SECRET}", "--", "true"))
    return Outcome(bad, [tmp_path / "runs"])


def env_snapshot(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    return Outcome([sleuth("env", "--json", env=SNAPSHOT_ENV), sleuth("env", env=SNAPSHOT_ENV)], [])


def env_diff_files(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    """Snapshots written before a rule existed (or by hand) hold secrets: a diff must not print them."""
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text(json.dumps({"schema": 1, "env": {"NCCL_DEBUG": "INFO"}}))
    b.write_text(json.dumps({"schema": 1, "env": {"NCCL_DEBUG": "WARN", **SNAPSHOT_ENV}}))
    return Outcome([sleuth("env", "diff", a, b), sleuth("env", "diff", "--json", a, b)], [])


def bisect_list_stdin(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    """Candidates on stdin, and a test that prints every form when it fails."""
    import subprocess

    lines = f"a\nb {GHP}\nc {AKIA}\nd {HF}\n"
    test = f"import os, sys\nif os.environ['SLEUTH_CANDIDATE'] > 'b':\n    exec({leaky()!r})\n"
    script = tmp_path / "test.py"
    script.write_text(test)
    out = []
    for fmt in (["--json"], []):
        proc = subprocess.run(
            [sys.executable, "-m", "sleuth", "bisect", "list", "-", *fmt, "--", sys.executable, script],
            input=lines,
            capture_output=True,
            text=True,
            timeout=120,
            env={**_env(tmp_path)},
            cwd=tmp_path,
        )
        out.append(CliResult(proc.returncode, proc.stdout, proc.stderr))
    return Outcome(out, [tmp_path / "runs"])


def gate_db_url(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    data = Path(__file__).parent.parent / "gate" / "data" / "sleuth-run.json"
    res = sleuth("gate", "record", "--suite", "s", "--db", PG, "--run-id", "r1", "--commit", "abc", data)
    return Outcome([res], [])


def gate_flag_values(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    data = Path(__file__).parent.parent / "gate" / "data" / "sleuth-run.json"
    db = f"dir://{tmp_path / 'hist'}"
    rec = sleuth("gate", "record", "--suite", "s", "--db", db, "--run-id", "r1", "--commit", "abc",
                 "--branch", f"fix-{GHP}", "--json", data, env=SNAPSHOT_ENV)  # fmt: skip
    return Outcome([rec], [tmp_path / "hist"])


def gate_check_policy(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    """A policy whose metric names and branch hold tokens: every view, ``--json`` and ``--markdown``."""
    import yaml

    out = tmp_path / "gate-out"
    out.mkdir()
    policy = tmp_path / "policy.yaml"
    metrics = {
        f"step_ms {GHP}": {"mode": "hard"},
        f"loss_{AKIA}": {"mode": "soft"},
        "step_ms": {"mode": "soft"},
    }
    policy.write_text(yaml.safe_dump({"version": 1, "branch": f"fix-{HF}", "metrics": metrics}))
    db = f"dir://{tmp_path / 'hist'}"
    check = ["gate", "check", "--suite", "s", "--policy", policy, "--db", db]
    res = [
        sleuth(*check, "--json"),
        sleuth(*check, "--markdown", out / "summary.md", "--junit", out / "j.xml"),
    ]
    return Outcome(res, [out, tmp_path / "hist"])


def attribute_log(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    log = tmp_path / "job.log"
    log.write_text("".join(f"{ln}\n" for ln in PRINTED.values()))
    return Outcome([sleuth("attribute", "--json", log), sleuth("attribute", log)], [])


def attribute_sources(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    log = tmp_path / "job.log"
    log.write_text("step 1\n")
    res = sleuth("attribute", "--json", "--http-source", f"http://alice:{PG_PASSWORD}@127.0.0.1:1/v",
                 "--command-source", f"false --token {GHP} --aws-secret-access-key {AWS_SECRET}",
                 "--source-timeout", "5", log)  # fmt: skip
    return Outcome([res], [])


def attribute_config(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    """An attribution config whose sources carry a password, a token and an inline credentials line."""
    import yaml

    log = tmp_path / "job.log"
    log.write_text("step 1\n")
    sources = [
        {"http": f"http://alice:{PG_PASSWORD}@127.0.0.1:1/v", "timeout": 5},
        {"command": f"false --token {GHP}", "timeout": 5},
        {"command": ["sh", "-c", f"aws_secret_access_key = {AWS_SECRET}; exit 1"], "timeout": 5},
    ]
    cfg = tmp_path / "att.yaml"
    cfg.write_text(yaml.safe_dump({"attribution": {"sources": sources}}))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"attribution": {"sources": [{"http": f"ftp://u:{PG_PASSWORD}@h/x"}]}}))
    res = [sleuth("attribute", "--config", cfg, "--json", log), sleuth("attribute", "--config", cfg, log)]
    return Outcome([*res, sleuth("attribute", "--config", bad, log)], [])


def supervise_workload_output(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    script = _workload(tmp_path)
    res = sleuth("supervise", "--max-restarts", "0", "--log-dir", tmp_path / "sup",
                 "--", sys.executable, script)  # fmt: skip
    return Outcome([res], [tmp_path / "sup"])


def serve_api(sleuth: Sleuth, tmp_path: Path) -> Outcome:
    """A node posts its logs (every form) to ``sleuth serve``, whose source URL holds a password:
    the API's answers, its database and its stderr."""
    from tests.attribution.conftest import start_server

    (tmp_path / "srv").mkdir()
    s = start_server(tmp_path / "srv", "--gather", "0", "--source-timeout", "5",
                     "--http-source", f"http://alice:{PG_PASSWORD}@127.0.0.1:1/v")  # fmt: skip
    try:
        logs = [{"name": "rank0.log", "text": "".join(f"{ln}\n" for ln in PRINTED.values())}]
        code, posted = s.call("POST", "/v1/attributions", {"job_id": "j", "cycle_id": 0, "logs": logs})
        assert code in (200, 201, 202), posted
        code, rec = s.call("GET", "/v1/attributions/j/0?wait=30")
        assert code == 200 and rec["status"] == "done", rec
    finally:
        s.stop()
    answers = CliResult(0, json.dumps(posted) + json.dumps(rec), s.stderr.read_text())
    return Outcome([answers], [tmp_path / "srv"])


_ENV: dict[str, dict[str, str]] = {}


def _env(tmp_path: Path) -> dict[str, str]:
    return _ENV[str(tmp_path)]


CASES: dict[str, Callable[[Sleuth, Path], Outcome]] = {
    "run/--env flag/run dir+json": run_flag_env,
    "run/workload argv/run dir+terminal": run_argv,
    "run/file and directory names/run dir (paths too)+json": run_file_name,
    "run/workload argv, inline script/run dir+json+terminal": run_argv_inline,
    "bisect list/workload argv, inline script/run dir+terminal": bisect_list_argv_inline,
    **{f"run/workload output ({k})/summary,report,journal,terminal": run_workload_output(k) for k in PRINTED},
    "run/recorded env vars/host_env.json+json": run_recorded_env,
    "run/bad --env value/error line": run_bad_flag,
    "env/recorded env vars/json+table": env_snapshot,
    "env diff/snapshot files/terminal+json": env_diff_files,
    "bisect list/stdin candidates+test output/run dir+terminal": bisect_list_stdin,
    "gate record/--db URL/error line": gate_db_url,
    "gate record/--branch+recorded env/store+json": gate_flag_values,
    "gate check/policy file/json+table+markdown+junit": gate_check_policy,
    "attribute/log file/json+terminal": attribute_log,
    "attribute/source URL+command/json": attribute_sources,
    "attribute/config file sources/json+terminal+error line": attribute_config,
    "serve/posted logs+source URL/API answers+DB+stderr": serve_api,
    "supervise/workload output/cycles.jsonl+terminal": supervise_workload_output,
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_no_planted_secret_reaches_any_output(case: str, sleuth: Sleuth, sleuth_env: dict[str, str],
                                              tmp_path: Path) -> None:  # fmt: skip
    for name in ("HF_TOKEN", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
        sleuth_env.pop(name, None)
    _ENV[str(tmp_path)] = sleuth_env
    out = CASES[case](sleuth, tmp_path)
    texts = [t for r in out.results for t in (r.stdout, r.stderr)]
    assert all("Traceback" not in t for t in texts), texts
    for secret in SECRETS:
        assert_no_secret(secret, *texts, roots=out.roots, verbatim=WORKLOAD_LOGS)
        for root in out.roots:  # nor in the name of a file or directory a verb made
            assert not [p for p in root.rglob("*") if secret in str(p.relative_to(root))], secret
