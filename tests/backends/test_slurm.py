"""The slurm backend: its srun command line and options (no Slurm needed), the node's entry and spec
files, and trials on a real Slurm (marked ``slurm``; `.ci/slurm-up` starts one: single node, two fake
GPUs).  Without a Slurm the real-service tests skip, unless ``SLEUTH_REQUIRE_SLURM=1`` (CI)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleuth import remote, runner
from sleuth.backends.slurm import SlurmBackend, SlurmOptions, parse_options, srun_argv
from sleuth.environments.container import ContainerRun, Runtime
from sleuth.errors import BackendUnavailable, UsageError
from sleuth.model import MetricSpec, Stream, TrialSpec
from tests.conftest import pid_alive

REQUIRED = os.environ.get("SLEUTH_REQUIRE_SLURM") == "1"
PY = sys.executable


def _slurm_here() -> str | None:
    """Why Slurm cannot be used here, or None."""
    if shutil.which("srun") is None or shutil.which("sinfo") is None:
        return "srun/sinfo are not installed (.ci/slurm-up installs and starts a Slurm)"
    try:
        res = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=15, check=False
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer"
    states = res.stdout.split()
    bad = ("down", "drain", "drng", "fail", "unk", "maint", "futr", "inval", "boot", "npc", "pow")
    if res.returncode != 0 or not any(not s.startswith(bad) for s in states):
        last = ((res.stderr or res.stdout).strip().splitlines() or [""])[-1][:200]
        return f"no Slurm node up: {last} (start one: eval $(.ci/slurm-up))"
    return None


@pytest.fixture
def slurm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A usable Slurm; trials are jobs of their own (no allocation inherited from the shell)."""
    why = _slurm_here()
    if why is not None:
        if REQUIRED:
            pytest.fail(f"SLEUTH_REQUIRE_SLURM=1 but {why}")
        pytest.skip(why)
    for var in ("SLURM_JOB_ID", "SLURM_JOBID", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    try:
        yield
    finally:
        runner.reset_cancel()  # cancel_all stops new trials process-wide: not the next test's


def _ours(tag: str) -> list[str]:
    """squeue's jobs and steps whose name has ``tag``."""
    out = subprocess.run(["squeue", "-h", "-o", "%j %T"], capture_output=True, text=True, check=True).stdout
    steps = subprocess.run(
        ["squeue", "-h", "-s", "-o", "%j"], capture_output=True, text=True, check=True
    ).stdout
    return [ln for ln in (out + steps).splitlines() if tag in ln]


def _gone(tag: str, pids: list[int], within: float = 20.0) -> tuple[list[str], list[int]]:
    """What is still queued/running of ``tag`` and which ``pids`` live, once both are empty or after ``within``."""
    deadline = time.monotonic() + within
    while True:
        left, alive = _ours(tag), [p for p in pids if pid_alive(p)]
        if (not left and not alive) or time.monotonic() > deadline:
            return left, alive
        time.sleep(0.1)


def _spec(code: str, env: dict[str, str] | None = None, **kw: object) -> TrialSpec:
    return TrialSpec(argv=(PY, "-c", code), env=env if env is not None else {"PATH": os.defpath}, **kw)  # type: ignore[arg-type]


def _wait_files(paths: list[Path], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not all(p.exists() and p.read_text().strip() for p in paths):
        assert time.monotonic() < deadline, f"never written: {[str(p) for p in paths if not p.exists()]}"
        time.sleep(0.05)


# ---- no Slurm needed ------------------------------------------------------------------------------


def test_srun_argv_golden(tmp_path: Path) -> None:
    opts = parse_options({"gpus": "2", "partition": "gpu", "account": "ml", "python": "/opt/py/bin/python",
                          "srun_args": "--qos=high --exclusive"})  # fmt: skip
    spec = TrialSpec(argv=("true",), timeout_s=100, kill_grace_s=5)
    client = tmp_path / "t1" / ".sleuth-client"
    assert srun_argv(spec, tmp_path / "t1", "sleuth-t1-abcd", opts) == (
        "srun", "--job-name=sleuth-t1-abcd", "--nodes=1", "--ntasks=1", "--exact", f"--chdir={client}",
        "--gres=gpu:2", "--time=3", "--partition=gpu", "--account=ml", "--qos=high", "--exclusive",
        "/opt/py/bin/python", "-m", "sleuth.runner", f"{client}/spec.json", str(tmp_path / "t1"),
    )  # fmt: skip
    # no timeout: no --time; the option wins over the derived one
    assert not any(
        a.startswith("--time") for a in srun_argv(TrialSpec(argv=("x",)), tmp_path, "n", SlurmOptions())
    )
    assert "--time=1-00" in srun_argv(spec, tmp_path, "n", parse_options({"time": "1-00"}))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gpus": "x"}, "--backend-opt gpus=x: must be a whole number from 0 to 64"),
        ({"gpus": "-1"}, "--backend-opt gpus=-1: must be a whole number"),
        (
            {"nodes": "2"},
            "--backend-opt nodes: unknown option of the slurm backend; valid keys: gpus, partition",
        ),
        ({"time": "soon"}, "--backend-opt time=soon: must be a Slurm time"),
        ({"python": "python3"}, "--backend-opt python=python3: must be an absolute path"),
        ({"srun_args": "'open"}, "--backend-opt srun_args='open: cannot be split like a shell line"),
        ({"partition": "a b"}, "--backend-opt partition=a b: must be a Slurm name"),
    ],
)
def test_bad_options_are_usage_errors(options: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as err:
        SlurmBackend(1, options=options)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_no_srun_on_path_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackendUnavailable) as err:
        SlurmBackend(1)
    assert str(err.value).startswith("slurm backend: srun/sinfo not found on PATH; ")
    assert err.value.exit_code == 4


def test_spec_round_trip_keeps_metrics_env_and_container_hook() -> None:
    hook = ContainerRun(runtime=Runtime.PODMAN, executable="/usr/bin/podman", output_dir="/o", nvidia=True)
    metric = MetricSpec(
        name="loss", pattern=re.compile(r"loss=(\S+)", re.I), series=True, stream=Stream.STDERR
    )
    spec = TrialSpec(argv=("a", "b c"), env={"K": "v=1"}, cwd="/w", timeout_s=2.5, kill_grace_s=1.0,
                     label="L", metrics=(metric,), hook=hook)  # fmt: skip
    back = remote.spec_from_json(json.loads(json.dumps(remote.spec_to_json(spec))))
    assert back == spec  # hook is not compared: checked alone
    assert back.hook == hook
    assert back.metrics[0].pattern.flags == metric.pattern.flags


def test_spec_of_another_version_says_so() -> None:
    with pytest.raises(
        ValueError, match=r"spec version 99, this sleuth reads version 1: install the same sleuth"
    ):
        remote.spec_from_json({"sleuth_spec": 99})


def test_a_hook_that_cannot_travel_is_refused() -> None:
    class Other:
        def bind(self, *a: object) -> None: ...
        def own_error(self, *a: object) -> None: ...

    with pytest.raises(UsageError, match="a trial with a Other hook cannot run on a cluster node"):
        remote.spec_to_json(TrialSpec(argv=("x",), hook=Other()))  # type: ignore[arg-type]


def test_node_entry_with_a_bad_spec_writes_an_error_result(tmp_path: Path) -> None:
    client = tmp_path / "t" / ".sleuth-client"
    client.mkdir(parents=True)
    (client / "spec.json").write_text('{"sleuth_spec": 0}')
    res = subprocess.run([PY, "-m", "sleuth.runner", str(client / "spec.json"), str(tmp_path / "t")],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert res.returncode == 2
    assert not (client / "spec.json").exists()
    got = remote.read_result(client / "result.json", TrialSpec(argv=("x",)), tmp_path / "t")
    assert not isinstance(got, str)
    assert got.error is not None
    assert got.error.startswith("node: spec version 0, this sleuth reads version 1")


def test_node_entry_runs_the_spec_and_deletes_it(tmp_path: Path) -> None:
    client = tmp_path / "t" / ".sleuth-client"
    client.mkdir(parents=True)
    spec = TrialSpec(
        argv=("/bin/sh", "-c", "env | cut -d= -f1 | sort | tr '\\n' ' '; exit 3"), env={"ONLY": "1"}
    )
    remote.write_spec(client / "spec.json", spec)
    assert (client / "spec.json").stat().st_mode & 0o777 == 0o600
    res = subprocess.run([PY, "-m", "sleuth.runner", str(client / "spec.json"), str(tmp_path / "t")],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert not (client / "spec.json").exists()
    got = remote.read_result(client / "result.json", spec, tmp_path / "t")
    assert not isinstance(got, str)
    assert (got.rc, got.error) == (3, None)
    assert (tmp_path / "t" / "stdout").read_text().split() == [
        "ONLY",
        "PWD",
        "SLEUTH_TRIAL_DIR",
        "SLEUTH_TRIAL_ID",
    ]


def test_resume_runs_the_cleanup_recorded_in_a_client_dir(tmp_path: Path) -> None:
    """A client's record sits under a trial dir that has output: reap_orphans must still find it."""
    trial = tmp_path / "trials" / "t1"
    (trial / runner.CLIENT_DIR).mkdir(parents=True)
    (trial / "stdout").write_text("")
    flag = tmp_path / "cleaned"
    record = {"argv": [PY, "-c", f"open({str(flag)!r}, 'w').close()"], "env": {}}
    (trial / runner.CLIENT_DIR / runner.CLEANUP_FILE).write_text(json.dumps(record))
    runner.reap_orphans(tmp_path)
    assert flag.exists()
    assert not (trial / runner.CLIENT_DIR / runner.CLEANUP_FILE).exists()


# ---- a real Slurm ---------------------------------------------------------------------------------


@pytest.mark.slurm
def test_exit_codes_signal_and_output_files(slurm: None, tmp_path: Path) -> None:
    backend = SlurmBackend(3)
    try:
        codes = {
            "ok": _spec("print('out'); import sys; print('err', file=sys.stderr)"),
            "three": _spec("raise SystemExit(3)"),
            "segv": _spec("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"),
        }
        futs = {k: backend.submit(s, tmp_path / k) for k, s in codes.items()}
        res = {k: f.result(timeout=120) for k, f in futs.items()}
    finally:
        backend.close()
    assert (res["ok"].rc, res["ok"].error, res["ok"].stdout_tail) == (0, None, "out\n")
    assert (tmp_path / "ok" / "stderr").read_text() == "err\n"
    assert (res["three"].rc, res["three"].signal) == (3, None)
    assert (res["segv"].rc, res["segv"].signal) == (None, signal.SIGSEGV)
    assert all(r.device is None and r.host for r in res.values())
    assert not any((tmp_path / k / ".sleuth-client" / "spec.json").exists() for k in codes)


@pytest.mark.slurm
def test_env_reaches_the_child_exactly(slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEUTH_TEST_HOST_ONLY", "leak")  # in srun's environment, not in the spec's
    backend = SlurmBackend(1)
    try:
        env = {"PATH": os.defpath, "SECRET_TOKEN": "s3cr3t", "SPACES": "a b"}
        spec = TrialSpec(argv=("/usr/bin/env", "-0"), env=env)  # not python: it sets LC_CTYPE itself
        r = backend.submit(spec, tmp_path / "env").result(timeout=120)
    finally:
        backend.close()
    seen = dict(e.split("=", 1) for e in (tmp_path / "env" / "stdout").read_text().split("\0") if e)
    # PWD: where the child runs (no cwd given: sleuth's own, made explicit for srun), as on every backend
    trial = {"SLEUTH_TRIAL_DIR": str(tmp_path / "env"), "SLEUTH_TRIAL_ID": "env", "PWD": os.getcwd()}
    assert seen == {**env, **trial}
    assert r.rc == 0
    client = tmp_path / "env" / ".sleuth-client"
    assert not (client / "spec.json").exists()
    argv = (client / "stdout").read_text() + (client / "stderr").read_text()
    assert "s3cr3t" not in argv


@pytest.mark.slurm
def test_gpus_come_from_slurm_and_a_third_trial_waits(slurm: None, tmp_path: Path) -> None:
    """Two fake GPUs, three trials at once: each device is held by one trial at a time (an exclusive
    file per device), so the third waited; each saw the device Slurm gave it."""
    locks = tmp_path / "locks"
    locks.mkdir()
    code = (
        "import os, time; d = os.environ['CUDA_VISIBLE_DEVICES']; p = os.environ['L'] + '/' + d\n"
        "fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)\n"
        "time.sleep(1); os.close(fd); os.unlink(p); print(d)"
    )
    backend = SlurmBackend(3, options={"gpus": "1"})
    try:
        futs = [backend.submit(_spec(code, env={"L": str(locks)}), tmp_path / f"g{i}") for i in range(3)]
        res = [f.result(timeout=120) for f in futs]
    finally:
        backend.close()
    assert [r.rc for r in res] == [0, 0, 0], [r.stderr_tail for r in res]
    assert {r.device for r in res} == {"0", "1"}
    assert all(r.stdout_tail == f"{r.device}\n" for r in res)


@pytest.mark.slurm
def test_our_timeout_fires_before_slurms(slurm: None, tmp_path: Path) -> None:
    backend = SlurmBackend(1)
    try:
        r = backend.submit(
            _spec("import time; time.sleep(600)", timeout_s=1, kill_grace_s=1), tmp_path / "to"
        )
        res = r.result(timeout=120)
    finally:
        backend.close()
    assert res.timed_out
    assert res.error is None
    assert res.signal == signal.SIGTERM


@pytest.mark.slurm
def test_an_srun_that_cannot_allocate_is_the_trials_error(slurm: None, tmp_path: Path) -> None:
    backend = SlurmBackend(1, options={"srun_args": "--nodelist=no-such-node"})
    try:
        res = backend.submit(_spec("print(1)"), tmp_path / "bad").result(timeout=120)
    finally:
        backend.close()
    assert res.rc is None
    assert res.error is not None
    assert res.error == "srun: error: Unable to allocate resources: Invalid node name specified"
    assert not (tmp_path / "bad" / ".sleuth-client" / "spec.json").exists()


@pytest.mark.slurm
def test_unknown_partition_is_a_usage_error(slurm: None) -> None:
    with pytest.raises(
        UsageError, match=r"--backend-opt partition=nope: no partition 'nope' in this cluster; sinfo"
    ):
        SlurmBackend(1, options={"partition": "nope"})


@pytest.mark.slurm
def test_cancel_all_leaves_no_process_and_no_job(slurm: None, tmp_path: Path) -> None:
    tag = f"cx{os.getpid()}"
    code = "import os, time; open(os.environ['P'], 'w').write(str(os.getpid())); time.sleep(600)"
    backend = SlurmBackend(2)
    pidfiles = [tmp_path / f"pid{i}" for i in range(2)]
    try:
        futs = [
            backend.submit(_spec(code, env={"P": str(p)}), tmp_path / f"{tag}-{i}")
            for i, p in enumerate(pidfiles)
        ]
        queued = backend.submit(_spec(code, env={"P": str(tmp_path / "never")}), tmp_path / f"{tag}-q")
        _wait_files(pidfiles)
        assert len(_ours(tag)) >= 2
        backend.cancel_all()
    finally:
        backend.close()
    pids = [int(p.read_text()) for p in pidfiles]
    assert _gone(tag, pids) == ([], [])
    assert queued.cancelled() or queued.result(timeout=60).error is not None
    assert not (tmp_path / "never").exists()
    for f in futs:
        f.result(timeout=60)  # ended (an ERROR or a signal), not hanging


_KILLED_SLEUTH = """
import os, sys, time
from pathlib import Path
from sleuth.backends.slurm import SlurmBackend
from sleuth.model import TrialSpec
run, n, tag = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
code = "import os, time; open(os.environ['P'], 'w').write(str(os.getpid())); time.sleep(600)"
b = SlurmBackend(n)
for i in range(n):
    b.submit(TrialSpec(argv=(sys.executable, "-c", code), env={"P": str(run / f"pid{i}")}), run / "trials" / f"{tag}-{i}")
time.sleep(600)
"""


@pytest.mark.slurm
@pytest.mark.parametrize("allocation", [False, True], ids=["jobs", "steps"])
def test_kill_9_then_reap_cancels_what_was_left(slurm: None, tmp_path: Path, allocation: bool) -> None:
    """sleuth killed with SIGKILL leaves srun, the node's runner and the workload running (and, in an
    allocation, its steps); the resume's reap_orphans runs the recorded cleanups: nothing is left."""
    env = dict(os.environ)
    alloc = None
    if allocation:
        out = subprocess.run(["salloc", "--no-shell", "-n2", f"-Jsleuth-test-alloc-{os.getpid()}"],
                             capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        alloc = re.search(r"Granted job allocation (\d+)", out.stderr).group(1)  # type: ignore[union-attr]
        env["SLURM_JOB_ID"] = alloc
    try:
        pidfiles = [tmp_path / f"pid{i}" for i in range(2)]
        tag = f"k{os.getpid()}{'s' if allocation else 'j'}"
        with subprocess.Popen([PY, "-c", _KILLED_SLEUTH, str(tmp_path), "2", tag], env=env) as sleuth:
            try:
                _wait_files(pidfiles)
            finally:
                sleuth.kill()
        pids = [int(p.read_text()) for p in pidfiles]
        assert all(pid_alive(p) for p in pids)  # the trials outlived sleuth
        assert len(_ours(tag)) >= 2
        runner.reap_orphans(tmp_path)
        assert _gone(tag, pids) == ([], [])
        records = list(tmp_path.glob("trials/*/.sleuth-client/.sleuth-cleanup.json"))
        assert records == []
    finally:
        if alloc is not None:
            subprocess.run(["scancel", alloc], check=False)


@pytest.mark.slurm
def test_cancel_scancels_a_step_by_the_id_the_node_recorded(slurm: None, tmp_path: Path) -> None:
    """A step of an allocation is cancelled by its id (scancel cannot select steps by name; a SIGKILLed
    srun may leave its step running, so the resume's cleanup cannot count on srun)."""
    out = subprocess.run(["salloc", "--no-shell", "-n1", f"-Jsleuth-test-step-{os.getpid()}"],
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    alloc = re.search(r"Granted job allocation (\d+)", out.stderr).group(1)  # type: ignore[union-attr]
    tag = f"sleuth-step-{os.getpid()}"
    try:
        env = {**os.environ, "SLURM_JOB_ID": alloc}
        pidfile = tmp_path / "pid"
        argv = ["srun", f"-J{tag}", "-n1", "--exact", "sh", "-c", f"echo $$ > {pidfile}; exec sleep 600"]
        with subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL) as srun:
            _wait_files([pidfile])
            steps = subprocess.run(["squeue", "-h", "-s", "-o", "%i %j"], capture_output=True, text=True,
                                   check=True).stdout  # fmt: skip
            step = next(ln.split()[0] for ln in steps.splitlines() if tag in ln)
            (tmp_path / remote.STEP_FILE).write_text(step + "\n")
            (tmp_path / remote.SPEC_FILE).write_text("{}")
            assert remote.cancel(tmp_path, None) == 0
            assert srun.wait(timeout=60) != 0
        assert _gone(tag, [int(pidfile.read_text())]) == ([], [])
        assert not (tmp_path / remote.SPEC_FILE).exists()  # a spec no node read is removed too
    finally:
        subprocess.run(["scancel", alloc], check=False)


@pytest.mark.slurm
def test_through_the_engine_with_prepare_and_metrics(slurm: None, tmp_path: Path) -> None:
    """The engine's path: prepare on this host, the prepared spec on the node, a metric regex, the
    judged trial written to result.json and the journal."""
    from sleuth.engine import Engine
    from sleuth.journal import RunDir, read_journal
    from sleuth.model import Outcome
    from sleuth.oracle import OracleConfig, build_oracle

    metric = MetricSpec(name="loss", pattern=re.compile(r"loss=([0-9.]+)"))

    def prepare(trial_dir: Path) -> TrialSpec:
        (tmp_path / "prepared").write_text(trial_dir.name)
        return _spec("print('loss=0.25'); raise SystemExit(1)", metrics=(metric,))

    rd = RunDir.create(tmp_path, "test", "slurm")
    try:
        with Engine(SlurmBackend(1), build_oracle(OracleConfig()), rd) as engine:
            engine.submit(TrialSpec(argv=("never-run",)), "t1", prepare=prepare)
            (trial,) = list(engine.completed())
    finally:
        rd.close()
    assert (tmp_path / "prepared").read_text() == "t1"
    assert (trial.outcome, trial.result.rc, dict(trial.result.metrics)) == (Outcome.FAIL, 1, {"loss": 0.25})
    record = json.loads((rd.path / "trials" / "t1" / "result.json").read_text())
    assert record["argv"][1:] == ["-c", "print('loss=0.25'); raise SystemExit(1)"]
    assert [
        e["trial"]["outcome"] for e in read_journal(rd.path / "journal.jsonl") if e.get("event") == "trial"
    ] == ["fail"]


@pytest.mark.slurm
def test_a_pyxis_trial_is_refused(slurm: None, tmp_path: Path) -> None:
    backend = SlurmBackend(1)
    try:
        fut = backend.submit(TrialSpec(argv=("/usr/bin/srun", "--container-image=x", "true")), tmp_path / "p")
        with pytest.raises(
            UsageError, match=r"runs srun itself \(the pyxis environment\): it cannot run inside"
        ):
            fut.result(timeout=60)
    finally:
        backend.close()


@pytest.mark.slurm
def test_a_node_without_sleuth_is_the_trials_error(slurm: None, tmp_path: Path) -> None:
    """The interpreter on the node cannot import sleuth: the ERROR says why, not srun's "exit code 1"."""
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'sleuth'\" >&2\nexit 1\n")
    python.chmod(0o755)
    backend = SlurmBackend(1, options={"python": str(python)})
    try:
        res = backend.submit(_spec("print(1)"), tmp_path / "n").result(timeout=120)
    finally:
        backend.close()
    assert res.error == "node: ModuleNotFoundError: No module named 'sleuth'"


@pytest.mark.slurm
def test_a_controller_that_does_not_answer_is_one_line(slurm: None, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    conf = Path(os.environ["SLURM_CONF"])
    text = re.sub(r"(?m)^SlurmctldPort=.*$", "SlurmctldPort=9", conf.read_text()) + "MessageTimeout=1\n"
    (tmp_path / "slurm.conf").write_text(text)
    shutil.copy(conf.parent / "gres.conf", tmp_path / "gres.conf")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    with pytest.raises(BackendUnavailable) as err:
        SlurmBackend(1)
    assert str(err.value) == (
        "slurm backend: Slurm is not usable here: slurm_load_partitions: Unable to contact slurm controller "
        "(connect failure); check `sinfo` and SLURM_CONF"
    )


@pytest.mark.slurm
def test_a_run_dir_the_node_does_not_see_is_the_trials_error(
    slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node finds no spec file (no shared file system): the trial's ERROR says so in one line."""
    backend = SlurmBackend(1)

    def unshared(path: Path, spec: TrialSpec) -> None:  # the node looks elsewhere than the host wrote
        del path, spec

    monkeypatch.setattr(remote, "write_spec", unshared)
    try:
        res = backend.submit(_spec("print(1)"), tmp_path / "u").result(timeout=120)
    finally:
        backend.close()
    assert res.error is not None
    assert res.error.startswith(f"node: cannot read the spec file {tmp_path}/u/.sleuth-client/spec.json: ")
    assert res.error.endswith("(the run dir must be on a file system the nodes share)")


@pytest.mark.slurm
def test_a_trial_runs_where_it_would_run_here(
    slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node starts in the client dir: a relative cwd (reduce's candidates: `working directory
    not found`) and none at all (the trial ran in .sleuth-client) are taken from sleuth's own."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path)
    backend = SlurmBackend(2)
    try:
        code = "import os; print(os.getcwd())"
        rel = backend.submit(_spec(code, cwd="work"), tmp_path / "rel")
        none = backend.submit(_spec(code), tmp_path / "none")
        res = {"rel": rel.result(timeout=120), "none": none.result(timeout=120)}
    finally:
        backend.close()
    assert [(r.rc, r.error, r.stdout_tail) for r in res.values()] == [
        (0, None, f"{tmp_path / 'work'}\n"),
        (0, None, f"{tmp_path}\n"),
    ]
    assert res["rel"].spec.cwd == "work"  # what the verb asked for, as it asked
