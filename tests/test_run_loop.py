"""``batch.execute``: trials are submitted as slots free, not all up front (issue 8 row 3, issue 9).

The real engine, backend and processes run; a subclass of the engine only counts how many trials
were submitted and not yet returned whenever one more is submitted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sleuth import batch
from sleuth.engine import Engine
from sleuth.environments.host import HostEnvironment
from sleuth.journal import RunDir


class CountingEngine(Engine):
    most_pending = 0
    submitted = 0

    def submit(self, *args: Any, **kw: Any) -> None:
        super().submit(*args, **kw)
        CountingEngine.submitted += 1
        CountingEngine.most_pending = max(CountingEngine.most_pending, self.pending)


@pytest.mark.parametrize(("jobs", "until_fail"), [(1, False), (3, False), (3, True)])
def test_at_most_jobs_plus_a_small_lookahead_are_submitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int, until_fail: bool
) -> None:
    monkeypatch.setattr(batch, "Engine", CountingEngine)
    CountingEngine.most_pending = CountingEngine.submitted = 0
    config = batch.RunConfig(argv=("true",), trials=40, jobs=jobs, until_fail=until_fail, name="loop")
    run_dir = RunDir.create(tmp_path, "run", "loop")
    secrets, public = batch.record_start(config, run_dir)
    try:
        summary = batch.execute(
            config, run_dir, HostEnvironment(), state=batch.new_state(config, public), secrets=secrets
        )
    finally:
        run_dir.close()
    assert summary.data["trials"] == 40 and summary.exit_code == 0
    assert CountingEngine.submitted == 40
    # a slot's worth queued beside each running trial at most; none while the next result may stop the run
    assert CountingEngine.most_pending <= (jobs if until_fail else 2 * jobs)
    assert CountingEngine.most_pending >= jobs, "the slots were not kept busy"
