"""The Ray backend on a real single-node Ray (``ray`` marker) and its checks that need no Ray.

Ray lives in a venv of its own (``.venv-ray``, built by .ci/run; ``$SLEUTH_TEST_RAY_PYTHON`` names
another): the core suite never imports it.  The tests marked ``ray`` run ``tests/backends/ray_driver.py`` under
that interpreter against ONE Ray head per test session (``ray start --head --block``, 2 CPUs, 2
logical GPUs, in a temp dir, killed at the end), and check from here what the trials left: their
files and, by pid, their processes.  Without that interpreter they skip, unless
``SLEUTH_REQUIRE_RAY=1`` (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sleuth.backends.ray import RayBackend
from sleuth.errors import UsageError
from tests.conftest import pid_alive, wait_dead

REPO = Path(__file__).parents[2]
#: run as a module from the repository root: tests/ as the script's directory would shadow the stdlib
#: (tests/bisect is a package)
DRIVER = ["-m", "tests.backends.ray_driver"]
PATH_ENV = {"PATH": "/usr/bin:/bin"}


def ray_python() -> str | None:
    """An interpreter with ray: $SLEUTH_TEST_RAY_PYTHON, else .venv-ray; None when neither has it."""
    for cand in (os.environ.get("SLEUTH_TEST_RAY_PYTHON"), str(REPO / ".venv-ray" / "bin" / "python")):
        if not cand or not Path(cand).is_file():
            continue
        probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('ray') is None)"
        if subprocess.run([cand, "-c", probe], check=False).returncode == 0:
            return cand
    return None


def _need_ray() -> str:
    py = ray_python()
    if py is None:
        why = (
            "no ray: set SLEUTH_TEST_RAY_PYTHON or build .venv-ray (pip install -e '.[ray]') as .ci/run does"
        )
        if os.environ.get("SLEUTH_REQUIRE_RAY") == "1":
            pytest.fail(f"SLEUTH_REQUIRE_RAY=1 but {why}")
        pytest.skip(why)
    return py


def _ray_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {"RAY_USAGE_STATS_ENABLED": "0", "HOME": str(tmp), "PYTHONPATH": str(REPO)}
    return env


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(ray python, head address, driver env): one head for the session, its processes killed after."""
    py = _need_ray()
    tmp = tmp_path_factory.mktemp("ray")
    rt = tempfile.mkdtemp(prefix="sleuth-ray-", dir="/tmp")  # Ray's socket paths must stay short
    env = _ray_env(tmp)
    ray_cli = str(Path(py).parent / "ray")
    log = tmp / "head.log"
    argv = [ray_cli, "start", "--head", "--block", "--num-cpus", "2", "--num-gpus", "2", "--port", "0",
            "--disable-usage-stats", "--include-dashboard=false", "--temp-dir", rt]  # fmt: skip
    with open(log, "wb") as fh:
        head = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        address = None
        deadline = time.monotonic() + 90
        while address is None and time.monotonic() < deadline and head.poll() is None:
            m = re.search(r"ray start --address='([^']+)'", log.read_text(errors="replace"))
            address = m[1] if m else None
            time.sleep(0.1)
        if address is None:
            pytest.fail(f"ray start --head did not come up: {log.read_text(errors='replace')[-2000:]}")
        yield py, address, env
    finally:
        # its processes share the session's group (ray stop would stop every Ray of this user)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            if sig == signal.SIGTERM:
                time.sleep(2)
        head.wait()
        shutil.rmtree(rt, ignore_errors=True)


def drive(py: str, env: dict[str, str], scenario: dict[str, Any], *, refused: bool = False) -> dict[str, Any]:
    """The driver's document; ``refused``: the backend is expected to refuse to start."""
    proc = subprocess.run([py, *DRIVER], input=json.dumps(scenario), capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=180, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ("error" in json.loads(proc.stdout)) == refused, proc.stdout
    # Ray's own log lines stay off sleuth's terminal
    assert "INFO" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


@pytest.mark.ray
def test_trials_run_on_ray_with_their_exact_env_files_signal_and_timeout(ray_head, tmp_path: Path) -> None:
    py, address, env = ray_head
    env = {**env, "SLEUTH_RAY_DRIVER_ONLY": "leak"}  # in the driver's env, never the trial's
    trials = [
        {"argv": sh("echo out; echo err >&2; exit 3"), "env": PATH_ENV, "dir": str(tmp_path / "rc")},
        {"argv": ["/usr/bin/env"], "env": {"ONLY_IN_SPEC": "s3cret value"}, "dir": str(tmp_path / "env")},
        {"argv": sh("kill -9 $$"), "env": PATH_ENV, "dir": str(tmp_path / "sig")},
        {"argv": ["sleep", "30"], "env": PATH_ENV, "timeout": 1, "dir": str(tmp_path / "slow")},
        {"argv": ["srun", "--container-image=x", "true"], "env": PATH_ENV, "dir": str(tmp_path / "pyxis")},
    ]
    out = drive(py, env, {"jobs": 2, "options": {"address": address}, "trials": trials})
    rc, envr, sig, slow, pyxis = out["results"]
    assert (rc["rc"], rc["signal"], rc["timed_out"], rc["error"]) == (3, None, False, None)
    assert (tmp_path / "rc" / "stdout").read_text() == "out\n"
    assert (tmp_path / "rc" / "stderr").read_text() == "err\n"
    assert rc["device"] is None and rc["host"] == os.uname().nodename
    assert envr["rc"] == 0
    lines = sorted((tmp_path / "env" / "stdout").read_text().splitlines())
    assert lines == [
        "ONLY_IN_SPEC=s3cret value",
        f"SLEUTH_TRIAL_DIR={tmp_path / 'env'}",
        "SLEUTH_TRIAL_ID=env",
    ]
    assert (sig["rc"], sig["signal"]) == (None, 9)
    assert slow["timed_out"] is True and slow["signal"] == signal.SIGTERM
    assert pyxis["exception"] == "UsageError" and "pyxis" in pyxis["message"]
    assert out["connected_after_close"] is False


@pytest.mark.ray
def test_gpus_per_trial_get_distinct_devices_and_a_third_trial_waits(ray_head, tmp_path: Path) -> None:
    py, address, env = ray_head
    running = tmp_path / "running"
    running.mkdir()
    # each trial marks itself running with its device, waits until two trials have arrived (the
    # first two meet there), then prints the devices of the others running and ends
    script = (f'cd {running}; echo "$CUDA_VISIBLE_DEVICES" > "$SLEUTH_TRIAL_ID"; echo x >> ../arrivals; '
              'while [ "$(wc -l < ../arrivals)" -lt 2 ]; do sleep 0.1; done; '
              'echo "others=$(for f in *; do [ "$f" = "$SLEUTH_TRIAL_ID" ] || cat "$f"; done | tr "\\n" " ")"; '
              'sleep 0.5; rm "$SLEUTH_TRIAL_ID"')  # fmt: skip
    trials = [{"argv": sh(script), "env": PATH_ENV, "dir": str(tmp_path / f"g{i}")} for i in range(3)]
    out = drive(py, env, {"jobs": 3, "options": {"address": address, "gpus": "1"}, "trials": trials})
    devices = [r["device"] for r in out["results"]]
    assert set(devices) <= {"0", "1"} and len(set(devices)) == 2, devices
    saw_another = 0
    for r in out["results"]:
        others = r["stdout"].strip().removeprefix("others=").split()
        assert len(others) <= 1, out  # never more than the 2 GPUs' trials at once
        assert r["device"] not in others, out  # a running trial's device is never handed out again
        saw_another += len(others)
    assert saw_another >= 2, out  # the first two ran side by side


@pytest.mark.ray
def test_cancel_all_stops_every_trial_process_and_drops_the_queued(ray_head, tmp_path: Path) -> None:
    py, address, env = ray_head
    trials = []
    for i in range(2):
        d = tmp_path / f"c{i}"
        # the leader, a child in its group, an escapee in a session of its own
        script = (f"sleep 300 & echo $! > {tmp_path}/child{i}; setsid sleep 301 & echo $! > {tmp_path}/esc{i}; "
                  f"echo $$ > {tmp_path}/pid{i}; wait")  # fmt: skip
        trials.append({"argv": sh(script), "env": PATH_ENV, "dir": str(d)})
    trials.append({"argv": ["true"], "env": PATH_ENV, "dir": str(tmp_path / "queued")})
    waits = [str(tmp_path / f"pid{i}") for i in range(2)]
    out = drive(py, env, {"jobs": 2, "options": {"address": address}, "trials": trials, "cancel_when": waits})
    pids = [int((tmp_path / f"{n}{i}").read_text()) for n in ("pid", "child", "esc") for i in range(2)]
    try:
        assert not [p for p in pids if pid_alive(p)]
        assert out["results"][2] == {"cancelled": True}
        assert not (tmp_path / "queued").exists()
    finally:
        for p in pids:
            if pid_alive(p):
                os.kill(p, signal.SIGKILL)


@pytest.mark.ray
def test_a_killed_worker_is_one_error_trial_never_rerun(ray_head, tmp_path: Path) -> None:
    py, address, env = ray_head
    script = f"echo run >> {tmp_path}/runs; echo $PPID > {tmp_path}/worker; echo $$ > {tmp_path}/pid; exec sleep 300"
    trials = [{"argv": sh(script), "env": PATH_ENV}]
    scenario = {
        "jobs": 1,
        "options": {"address": address},
        "trials": trials,
        "engine": str(tmp_path / "runs-dir"),
    }
    out, err = tmp_path / "driver.out", tmp_path / "driver.err"
    with (
        open(out, "wb") as fo,
        open(err, "wb") as fe,
        subprocess.Popen(
            [py, *DRIVER], stdin=subprocess.PIPE, stdout=fo, stderr=fe, text=True, cwd=REPO, env=env
        ) as proc,
    ):
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(scenario))
        proc.stdin.close()
        deadline = time.monotonic() + 60
        while not (tmp_path / "pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        trial_pid = int((tmp_path / "pid").read_text())
        try:
            os.kill(int((tmp_path / "worker").read_text()), signal.SIGKILL)  # the Ray worker running it
            proc.wait(timeout=120)
        finally:
            if pid_alive(trial_pid):  # the worker's death orphans its trial (docs/ray.md)
                os.kill(trial_pid, signal.SIGKILL)
    assert proc.returncode == 0, err.read_text()[-3000:]
    stdout = out.read_text()
    (trial,) = json.loads(stdout)["trials"]
    assert trial["outcome"] == "error"
    assert "WorkerCrashedError" in trial["reason"]
    assert json.loads((Path(trial["dir"]) / "result.json").read_text())["outcome"] == "error"
    time.sleep(1)  # a rerun by Ray would have started by now
    assert (tmp_path / "runs").read_text() == "run\n"


@pytest.mark.ray
def test_a_private_local_instance_is_started_and_shut_down(tmp_path: Path) -> None:
    py = _need_ray()
    env = _ray_env(tmp_path)
    trials = [{"argv": ["sh", "-c", "echo local"], "env": PATH_ENV, "dir": str(tmp_path / "t")}]
    out = drive(py, env, {"jobs": 1, "options": {"cpus": "0"}, "trials": trials})
    assert out["results"][0]["rc"] == 0 and out["results"][0]["stdout"] == "local\n"
    assert out["connected_after_close"] is False


@pytest.mark.ray
def test_after_a_kill_9_of_sleuth_reap_orphans_stops_what_its_local_ray_left(tmp_path: Path) -> None:
    """A kill -9 of the driver: its private Ray instance dies with it and Ray kills the trial's leader;
    the rest of the trial's tree is stopped by ``runner.reap_orphans`` (what ``--resume`` runs)."""
    from sleuth import runner

    py = _need_ray()
    rt = tempfile.mkdtemp(prefix="sleuth-ray-", dir="/tmp")  # Ray's socket paths must stay short
    env = {**_ray_env(tmp_path), "RAY_TMPDIR": rt}
    run = tmp_path / "run"
    script = (f"sleep 300 & echo $! > {tmp_path}/child; setsid sleep 301 & echo $! > {tmp_path}/esc; "
              f"echo $$ > {tmp_path}/pid; wait")  # fmt: skip
    scenario = {
        "jobs": 1,
        "options": {},
        "trials": [{"argv": sh(script), "env": PATH_ENV, "dir": str(run / "t")}],
    }
    with (
        open(tmp_path / "driver.log", "wb") as log,
        subprocess.Popen(
            [py, *DRIVER], stdin=subprocess.PIPE, stdout=log, stderr=log, text=True, cwd=REPO, env=env
        ) as proc,
    ):
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(scenario))
        proc.stdin.close()
        deadline = time.monotonic() + 90
        while not (tmp_path / "pid").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.kill()
    pids = [int((tmp_path / n).read_text()) for n in ("pid", "child", "esc")]
    try:
        # Ray kills a dead driver's workers and their children (the leader), in its own time: a loaded
        # machine took over 30 s; what --resume runs must stop the whole tree either way
        wait_dead(pids[0], 30)
        runner.reap_orphans(run)
        assert not [p for p in pids if not wait_dead(p, 10)]
    finally:
        for p in [*pids, *_processes_with_files_under(rt)]:  # Ray's agents outlive it
            if pid_alive(p):
                os.kill(p, signal.SIGKILL)
        shutil.rmtree(rt, ignore_errors=True)


def _processes_with_files_under(root: str) -> list[int]:
    """The processes holding a file under ``root`` open (Ray's processes write their logs there;
    their renamed titles overwrite what /proc shows of their command line and environment)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}").startswith(root + "/"):
                    found.append(int(entry))
                    break
            except OSError:
                continue
    return found


@pytest.mark.ray
def test_an_address_that_does_not_answer_is_one_infrastructure_error(tmp_path: Path) -> None:
    py = _need_ray()
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = drive(
        py,
        _ray_env(tmp_path),
        {"jobs": 1, "options": {"address": f"127.0.0.1:{port}"}, "trials": []},
        refused=True,
    )
    assert out["error"] == "InfrastructureError" and out["exit"] == 4
    assert out["message"].startswith(f"--backend ray: cannot connect to Ray at 127.0.0.1:{port}: ")
    assert "\n" not in out["message"]


@pytest.mark.ray
def test_sleuth_run_on_ray_through_the_cli_keeps_json_on_stdout(ray_head, tmp_path: Path) -> None:
    py, address, env = ray_head
    env = {**env, "SLEUTH_OUTPUT": str(tmp_path / "runs")}
    argv = [str(Path(py).parent / "sleuth"), "run", "--trials", "2", "--jobs", "2", "--json", "--backend", "ray",
            "--backend-opt", f"address={address}", "--backend-opt", "cpus=0.5", "--", "sh", "-c", "echo hi"]  # fmt: skip
    proc = subprocess.run(
        argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["summary"]["backend"] == "ray" and doc["summary"]["pass"] == 2


# ---- without Ray --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gpu": "1"}, "--backend-opt gpu=1: ray has no option 'gpu'; its options: address, cpus, gpus"),
        (
            {"gpus": "x"},
            "--backend-opt gpus=x: must be a whole number >= 0, or a fraction below 1 (gpus per trial)",
        ),
        (
            {"gpus": "1.5"},
            "--backend-opt gpus=1.5: must be a whole number >= 0, or a fraction below 1 (gpus per trial)",
        ),
        (
            {"gpus": "-1"},
            "--backend-opt gpus=-1: must be a whole number >= 0, or a fraction below 1 (gpus per trial)",
        ),
        ({"cpus": "nan"}, "--backend-opt cpus=nan: must be a number >= 0 (cpus per trial)"),
        (
            {"address": " "},
            "--backend-opt address= : must name a cluster (auto, HOST:PORT or ray://HOST:PORT)",
        ),
    ],
)
def test_bad_options_are_one_usage_error_naming_the_flag(options: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as err:
        RayBackend(1, options=options)
    assert str(err.value) == message


def test_without_ray_installed_the_error_says_how_to_install_it() -> None:
    if (
        ray_python() == sys.executable
        or subprocess.run([sys.executable, "-c", "import ray"], capture_output=True, check=False).returncode
        == 0
    ):
        pytest.skip("this interpreter has ray")
    with pytest.raises(UsageError) as err:
        RayBackend(2, options={"gpus": "1"})
    assert str(err.value) == "--backend ray: ray is not installed: pip install 'sleuth[ray]'"
    assert "ray" not in sys.modules  # and nothing of it was half-imported


def test_the_sleuth_ray_cli_without_ray_says_how_to_install_it(sleuth, tmp_path: Path) -> None:
    if subprocess.run([sys.executable, "-c", "import ray"], capture_output=True, check=False).returncode == 0:
        pytest.skip("this interpreter has ray")
    res = sleuth("run", "--backend", "ray", "--backend-opt", "gpus=1", "--", "true")
    assert res.rc == 2
    assert res.stderr.strip().splitlines()[-1].endswith("ray is not installed: pip install 'sleuth[ray]'")
    assert not (tmp_path / "runs").exists()  # refused before a run dir exists


def test_a_node_with_another_sleuth_refuses_the_trial(tmp_path: Path) -> None:
    from sleuth.backends.ray import _trial_on_node
    from sleuth.errors import InfrastructureError
    from sleuth.model import TrialSpec

    with pytest.raises(InfrastructureError, match=r"has sleuth .*, this sleuth is 0\.0\.0"):
        _trial_on_node(TrialSpec(argv=("true",)), str(tmp_path / "t"), 0, "0.0.0")
    assert not (tmp_path / "t").exists()


def test_a_container_hook_travels_to_the_node(tmp_path: Path) -> None:
    """The spec goes through Ray's pickling: a container trial's hook must survive it and bind there."""
    from sleuth.environments.container import ContainerRun, Runtime
    from sleuth.model import TrialSpec

    hook = ContainerRun(runtime=Runtime.PODMAN, executable="/usr/bin/podman", nvidia=True)
    spec = TrialSpec(argv=("podman", "run", "--rm", "img", "true"), env={"A": "1"}, hook=hook)
    back = pickle.loads(pickle.dumps(spec))
    assert back.hook == hook and back.env == {"A": "1"}
    plan = back.hook.bind(back, tmp_path / "t", "1")
    assert "nvidia.com/gpu=1" in plan.spec.argv and plan.cleanup[:2] == ("/usr/bin/podman", "rm")
