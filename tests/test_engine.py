"""The trial engine in-process: prepared trials, untestable ones, completion order, journaling."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleuth.backends.local import LocalBackend
from sleuth.engine import Engine, Untestable
from sleuth.errors import InfrastructureError
from sleuth.journal import RunDir, read_journal
from sleuth.model import Outcome, TrialSpec
from sleuth.oracle import OracleConfig, build_oracle

FALSE = TrialSpec(argv=("false",), label="base")


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[RunDir]:
    rd = RunDir.create(tmp_path, "test", "engine")
    yield rd
    rd.close()


def engine(rd: RunDir, jobs: int = 1, gpus: tuple[str, ...] = ()) -> Engine:
    return Engine(LocalBackend(jobs, gpus), build_oracle(OracleConfig()), rd)


def test_prepare_runs_in_the_worker_and_its_spec_is_run(run_dir: RunDir) -> None:
    seen: list[tuple[Path, str]] = []

    def prepare(trial_dir: Path) -> TrialSpec:
        seen.append((trial_dir, threading.current_thread().name))
        return TrialSpec(argv=("true",), label="prepared")

    with engine(run_dir) as e:
        e.submit(FALSE, "run-1", "candidates/c1", prepare=prepare, test=7)
        (trial,) = list(e.completed())
    assert trial.outcome is Outcome.PASS and trial.result.spec.label == "prepared"
    assert seen == [(run_dir.path / "candidates/c1/run-1", seen[0][1])]
    assert seen[0][1].startswith("sleuth-trial")
    assert (run_dir.path / "candidates/c1/run-1/result.json").is_file()
    (ev,) = [ev for ev in read_journal(run_dir.journal.path) if ev["event"] == "trial"]
    assert ev["subdir"] == "candidates/c1" and ev["test"] == 7 and ev["trial"]["outcome"] == "pass"


def test_untestable_is_a_skip_and_infrastructure_an_error(run_dir: RunDir) -> None:
    def broken_build(_d: Path) -> TrialSpec:
        raise Untestable("build failed (exit 2)")

    def no_docker(_d: Path) -> TrialSpec:
        raise InfrastructureError("docker: not found")

    with engine(run_dir, jobs=2) as e:
        e.submit(FALSE, "a", prepare=broken_build)
        e.submit(FALSE, "b", prepare=no_docker)
        got = {t.id: t for t in e.completed()}
    assert got["a"].outcome is Outcome.SKIP and got["a"].reason == "build failed (exit 2)"
    assert got["a"].result.error is None and got["a"].result.rc is None
    assert got["b"].outcome is Outcome.ERROR and got["b"].reason == "docker: not found"
    assert got["b"].result.error == "docker: not found"
    events = [ev for ev in read_journal(run_dir.journal.path) if ev["event"] == "trial"]
    assert sorted(ev["trial"]["outcome"] for ev in events) == ["error", "skip"]
    assert (run_dir.path / "trials/a/result.json").is_file()
    assert not (run_dir.path / "trials/a/stdout").exists()  # it never ran


def test_preparations_run_in_parallel(run_dir: RunDir) -> None:
    both = threading.Barrier(2, timeout=10)

    def prepare(_d: Path) -> TrialSpec:
        both.wait()  # a serial engine would time out here
        return TrialSpec(argv=("true",))

    with engine(run_dir, jobs=2) as e:
        e.submit(FALSE, "a", prepare=prepare)
        e.submit(FALSE, "b", prepare=prepare)
        assert sorted(t.outcome.value for t in e.completed()) == ["pass", "pass"]


def test_a_bug_in_prepare_is_not_swallowed(run_dir: RunDir) -> None:
    def buggy(_d: Path) -> TrialSpec:
        raise ValueError("oops")

    with engine(run_dir) as e:
        e.submit(FALSE, "a", prepare=buggy)
        with pytest.raises(ValueError, match="oops"):
            e.next_completed()
        assert e.pending == 0


def test_prepared_trial_gets_a_device_and_next_completed_needs_a_pending_trial(run_dir: RunDir) -> None:
    with engine(run_dir, gpus=("3",)) as e:
        e.submit(FALSE, "a", prepare=lambda _d: TrialSpec(argv=("true",)))
        assert e.next_completed().result.device == "3"
        with pytest.raises(LookupError):
            e.next_completed()


def test_trials_released_together_each_come_out_once(run_dir: RunDir) -> None:
    gate = threading.Event()

    def held(_d: Path) -> TrialSpec:
        gate.wait(10)
        return TrialSpec(argv=("true",))

    with engine(run_dir, jobs=4) as e:
        for tid in ("d", "c", "b", "a"):
            e.submit(FALSE, tid, prepare=held)
        gate.set()
        ids = [t.id for t in e.completed()]
    assert sorted(ids) == ["a", "b", "c", "d"]
