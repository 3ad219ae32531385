"""ContainerEnvironment with a real podman: exit codes, signals, env, mounts, output dirs, cleanup.

Each trial runs through the real runner (the per-run hook names the container and mounts the trial
dir), against images built in the test run's own store (see conftest.py).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from sleuth.environments.container import ContainerEnvironment, Mount, Runtime, check_runtime, image_exists
from sleuth.environments.runtimes import list_tags
from sleuth.errors import InfrastructureError
from sleuth.model import TrialSpec
from sleuth.runner import run_trial
from tests.containers.conftest import APP, APP_DATES, BUSYBOX, PYTHON, Podman, needs_podman

pytestmark = needs_podman


def env(image: str = BUSYBOX, **kw: object) -> ContainerEnvironment:
    return ContainerEnvironment(image=image, runtime=Runtime.PODMAN, **kw)  # type: ignore[arg-type]


def sh(script: str, **kw: object) -> TrialSpec:
    return TrialSpec(argv=("sh", "-c", script), env=dict(os.environ), **kw)  # type: ignore[arg-type]


def rundir(tmp_path: Path) -> Path:
    """A directory that looks like a sleuth run dir (the container's name and label come from it)."""
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "journal.jsonl").touch()
    return run


@pytest.mark.parametrize(("script", "rc"), [("exit 0", 0), ("exit 3", 3), ("exit 255", 255), ("exit 300", 44),
                                             ("sleep 30 & kill -KILL $!; wait $!", 137)])  # fmt: skip
def test_exit_codes_pass_through(podman: Podman, tmp_path: Path, script: str, rc: int) -> None:
    prepared = env().prepare()
    r = run_trial(prepared.wrap(sh(script)), rundir(tmp_path) / "t")
    assert (r.rc, r.signal, r.error) == (rc, None, None), r.stderr_tail
    assert podman.containers(tmp_path / "run") == []  # --rm: gone with its process


def test_env_values_arrive_exactly_and_nothing_else(podman: Podman, tmp_path: Path) -> None:
    odd = "two  spaces, 'quotes' \"dq\" $HOME ünïcode = signs"
    prepared = env(forward_env={"ODD": odd, "EMPTY": ""}).prepare()
    spec = sh('printf "%s|%s|%s|%s" "$ODD" "${EMPTY-unset}" "${HOST_ONLY-unset}" "$SLEUTH_CANDIDATE"')
    spec = spec.with_env({"HOST_ONLY": "secret", "SLEUTH_CANDIDATE": "c1"})
    r = run_trial(prepared.wrap(spec), rundir(tmp_path) / "t")
    assert r.rc == 0, r.stderr_tail
    assert r.stdout_path.read_text() == f"{odd}||unset|c1"
    assert "secret" not in " ".join(r.spec.argv) and odd not in " ".join(r.spec.argv)  # values never in argv


def test_mounts_arrive_and_ro_is_enforced(podman: Podman, tmp_path: Path) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "in.txt").write_text("data\n")
    prepared = env(mounts=(Mount.parse(f"{ro}:/in:ro"), Mount.parse(f"{rw}:/out"))).prepare()
    script = "cat /in/in.txt; echo w > /out/made; if echo x > /in/nope 2>/dev/null; then exit 9; fi; exit 0"
    r = run_trial(prepared.wrap(sh(script)), rundir(tmp_path) / "t")
    assert r.rc == 0, "writing to a :ro mount succeeded"
    assert r.stdout_tail == "data\n"
    assert (rw / "made").read_text() == "w\n"
    assert not (ro / "nope").exists()


def test_each_trial_writes_its_own_output_dir(podman: Podman, tmp_path: Path) -> None:
    run = rundir(tmp_path)
    prepared = env().prepare()
    script = ('echo "{\\"n\\": $N}" > "$SLEUTH_TRIAL_DIR/metrics.json"; '
              'echo "$SLEUTH_TRIAL_ID" > "$SLEUTH_OUTPUT_DIR/id"')  # fmt: skip
    results = [run_trial(prepared.wrap(sh(script).with_env({"N": str(n)}), extra_env={"N": str(n)}),
                         run / "candidates" / f"000{n}-x" / "run-1") for n in (1, 2)]  # fmt: skip
    for n, r in zip((1, 2), results, strict=True):
        assert r.rc == 0, r.stderr_tail
        assert r.metrics == {"n": n}  # read by the runner from the trial dir
        assert (r.trial_dir / "id").read_text() == "run-1\n"


def test_timeout_removes_the_container_at_once(podman: Podman, tmp_path: Path) -> None:
    run = rundir(tmp_path)
    prepared = env().prepare()
    # PID 1 ignores SIGTERM: without the cleanup the container would outlive the 120 s grace (the bound
    # below tells the two behaviours apart, it is not a speed target)
    spec = sh("trap '' TERM; while true; do sleep 1; done", timeout_s=2.0, kill_grace_s=120.0)
    t0 = time.monotonic()
    r = run_trial(prepared.wrap(spec), run / "t")
    took = time.monotonic() - t0
    assert r.timed_out
    assert took < 60, f"the trial took {took:.1f}s: the container was not removed at once"
    assert podman.containers(run) == []
    assert not (run / "t" / ".sleuth-cleanup.json").exists()


def test_the_runtimes_own_error_is_an_error(podman: Podman, tmp_path: Path) -> None:
    prepared = env(mounts=(Mount.parse(f"{tmp_path}/no-such-dir:/x"),)).prepare()
    r = run_trial(prepared.wrap(sh("exit 0")), rundir(tmp_path) / "t")
    assert r.rc == 125
    assert r.error is not None and r.error.startswith("podman: Error:"), r.error
    own = run_trial(env().prepare().wrap(sh("echo 'user says skip' >&2; exit 125")), rundir(tmp_path) / "u")
    assert own.rc == 125 and own.error is None  # the workload's own 125 stays its verdict
    # a test program the image lacks: podman's 127 is its own error (it read as the test's FAIL)
    spec = TrialSpec(argv=("/opt/no-such-test",), env=dict(os.environ))
    gone = run_trial(env().prepare().wrap(spec), rundir(tmp_path) / "v")
    assert gone.rc == 127 and gone.error is not None and gone.error.startswith("podman: Error:"), gone
    own = run_trial(env().prepare().wrap(sh("no-such-command")), rundir(tmp_path) / "w")
    assert own.rc == 127 and own.error is None  # the shell's own 127 inside the container


def test_existence_and_listing_without_a_pull(podman: Podman) -> None:
    assert image_exists("podman", f"{APP}:{APP_DATES[0]}")
    assert not image_exists("podman", f"{APP}:2025-01-05")  # localhost/: never asked of a registry
    tags = list_tags("podman", APP)
    assert tags == sorted(f"{APP}:{d}" for d in APP_DATES)
    assert check_runtime("podman") is None


def test_a_runtime_that_cannot_answer_is_infrastructure(podman: Podman, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("CONTAINER_HOST", f"unix://{tmp_path}/down.sock")  # a podman service that is down
    why = check_runtime("podman")
    assert why is not None and "down.sock" in why and "\n" not in why
    with pytest.raises(InfrastructureError, match=r"down\.sock"):
        image_exists("podman", BUSYBOX)
    assert list_tags("podman", APP) is None


def test_registry_that_cannot_be_reached_is_infrastructure(podman: Podman) -> None:
    with pytest.raises(InfrastructureError, match=r"127\.0\.0\.1:9|connection refused|connect"):
        image_exists("podman", "127.0.0.1:9/nothing/here:1")


def test_snapshot_probes_the_images_python(podman: Podman) -> None:
    snap = env(PYTHON, forward_env={"NCCL_DEBUG": "WARN"}).prepare().snapshot()
    assert "probe_error" not in snap, snap.get("probe_error")
    assert snap["python"]["version"].startswith("3.")
    assert snap["env"].get("NCCL_DEBUG") == "WARN"
    assert json.loads(json.dumps(snap)) == snap
    assert "probe_error" in env(BUSYBOX).prepare().snapshot()  # no python3 in it: said, not guessed


def test_a_copy_container_a_killed_sleuth_left_is_removed_by_the_next_copy(
    podman: Podman, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bisect images --source copies the repositories out of an image (create, cp, rm): a kill -9
    # between create and rm left a container in state Created that nothing ever removed
    import subprocess
    import sys

    from sleuth.environments import runtimes

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = f"{runtimes._copy_prefix()}{int(dead.stdout)}-abc123"
    mine = f"{runtimes._copy_prefix()}{os.getpid()}-def456"  # a live process's copy in progress
    other = "sleuth-copy-0000beef-1-abc"  # another host's (a shared docker daemon): not ours to judge
    for name in (stale, mine, other):
        podman.run("create", "--name", name, BUSYBOX, "true")
    monkeypatch.setattr(runtimes, "_swept", set())
    try:
        runtimes.copy_out("podman", BUSYBOX, [])
        names = podman.run("ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert stale not in names and mine in names and other in names, names
        assert not [
            n for n in names if n.startswith(runtimes._copy_prefix()) and n != mine
        ]  # its own: removed
    finally:
        for name in (stale, mine, other):
            podman.run("rm", "-f", name, check=False)
