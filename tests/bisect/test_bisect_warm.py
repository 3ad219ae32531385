"""Warm checkouts: the candidates the next probe can be are checked out while a test runs.

Real git repositories and real checkouts; the strategy's speculation is a property test.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth.bisect import checkouts as checkouts_mod
from sleuth.bisect.checkouts import Checkouts
from sleuth.bisect.driver import Driver
from sleuth.bisect.git import GitSource
from sleuth.bisect.policy import FlakyMode
from sleuth.bisect.strategies import Bisection
from sleuth.bisect.trials import Options
from sleuth.journal import RunDir
from sleuth.model import Outcome, TrialSpec
from sleuth.oracle import OracleConfig, StandardOracle
from tests.bisect.test_bisect_cli import TEST, make_repo


def _head(path: Path) -> str:
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def _wait_warm(co: Checkouts, sha: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        spare = co._warm.get(sha)
        if spare is not None and spare.done.is_set():
            return
        time.sleep(0.01)
    raise AssertionError(f"{sha} was never warmed")


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(2, 3000),
    culprit_at=st.floats(0, 1, exclude_max=True),
    skipped=st.sets(st.floats(0, 1, exclude_max=True), max_size=6),
)
def test_the_next_probe_is_one_the_bisection_speculated(
    n: int, culprit_at: float, skipped: set[float]
) -> None:
    culprit = 1 + int(culprit_at * (n - 1))
    untestable = {1 + int(x * (n - 2)) for x in skipped if n > 2}
    b = Bisection(n)
    b.exclude(sorted(untestable))
    probes = b.propose(1)
    while probes:
        (q,) = probes
        guesses = b.speculate()
        assert len(guesses) <= 2
        b.observe(q, Outcome.FAIL if q.index >= culprit else Outcome.PASS)
        probes = b.propose(1)
        if probes:  # whatever the outcome was, the probe that follows was prepared
            assert probes[0].index in guesses, (q, guesses, probes)
    if not untestable:
        assert (b.lo, b.hi) == (culprit - 1, culprit)


def test_a_warm_checkout_is_taken_over_clean_and_the_old_one_let_go(tmp_path: Path) -> None:
    shas = make_repo(tmp_path, 12, 6)
    co = Checkouts(str(tmp_path / "repo"), tmp_path / "cache")
    try:
        first = co.checkout(shas[3])
        (first / "left-behind").write_text("a test's output\n")
        (first / "value").write_text("modified by the test\n")
        co.warm([shas[8], shas[1]])
        # both: while shas[1] waits for a spare, the warmer could take the slot the takeover frees
        _wait_warm(co, shas[8])
        _wait_warm(co, shas[1])
        taken = co.checkout(shas[8])
        assert taken != first and co.warm_hits == 1
        assert _head(taken) == shas[8] and (taken / "value").read_text() == "8\n"
        assert not (taken / "left-behind").exists()
        # the previous checkout is free again: another holder can take it
        other = co._try_hold(first.name)
        assert other is not None
        other.close()
        # a commit nobody warmed is checked out in this thread's own checkout
        plain = co.checkout(shas[5])
        assert plain == taken and _head(plain) == shas[5] and co.warm_hits == 1
    finally:
        co.close()
    # closing lets every checkout go, spare ones included
    for name in ("slot-0", "slot-1", "slot-2"):
        fh = co._try_hold(name)
        assert fh is not None
        fh.close()


def test_a_tree_slow_to_check_out_gets_no_spare_checkouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkouts_mod, "WARM_MAX_ADD_S", 0.0)
    shas = make_repo(tmp_path, 6, 3)
    co = Checkouts(str(tmp_path / "repo"), tmp_path / "cache")
    try:
        co.checkout(shas[1])
        co.warm([shas[4]])
        assert co._warmer is None and not co._warm
        assert sorted(p.name for p in co.dir.glob("slot-*")) == ["slot-0"]
    finally:
        co.close()


@pytest.mark.parametrize("mode", [FlakyMode(False, 1.0), FlakyMode(True)])
def test_bisection_probes_are_checked_out_while_a_test_runs_each_in_its_own_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: FlakyMode
) -> None:
    monkeypatch.setattr(checkouts_mod, "WARM_MAX_ADD_S", 1e9)  # however loaded the machine is
    monkeypatch.setenv("SLEUTH_CACHE", str(tmp_path / "cache"))
    shas = make_repo(tmp_path, 200, 137)
    src = GitSource(str(tmp_path / "repo"), shas[0], shas[-1])
    rd = RunDir.create(tmp_path / "out", "bisect", "t")
    # the test also checks that it runs in a checkout of its own commit
    check = (
        '[ "$(git rev-parse HEAD)" = "$SLEUTH_CANDIDATE" ] || { echo "Error: wrong checkout" >&2; exit 3; }\n'
    )
    spec = TrialSpec(argv=("sh", "-c", check + "sleep 0.2\n" + TEST), env=dict(os.environ), timeout_s=60)
    driver = Driver(src, spec, StandardOracle(OracleConfig()), rd, Options(flaky=mode), labels=src.resolve())
    try:
        res, _ = driver.run()
    finally:
        rd.close()
        hits = src.checkouts().warm_hits
        src.close()
    assert driver.labels[res.first_bad or 0] == shas[137]
    probes = [e for e in driver.events if e.phase == "search"]
    assert all(e.counted is not Outcome.SKIP for e in driver.events)
    # spares were taken over (how many depends on whether a warm checkout finished before the test
    # did: no count is asserted), and every test ran in a checkout of its own commit (checked above)
    assert hits >= 1 and len(probes) >= 7
