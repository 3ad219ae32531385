"""The local backend: a thread pool over :func:`sleuth.runner.run_trial`.

With ``gpus``, each running trial borrows one device id from a pool and gets it as
``CUDA_VISIBLE_DEVICES``/``HIP_VISIBLE_DEVICES``; a trial waits for a free device, so two running
trials never share one.  A trial's ``prepare`` step runs in its worker before it takes a device.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sleuth import runner
from sleuth.errors import UsageError
from sleuth.model import TrialResult, TrialSpec

__all__ = ["LocalBackend", "check_slots"]


def check_slots(jobs: int, gpus: Sequence[str] = ()) -> None:
    """``--jobs`` is at least 1 and, with ``--gpus``, at most one running trial per device."""
    if jobs < 1:
        raise UsageError(f"--jobs {jobs}: must be at least 1")
    if gpus and jobs > len(gpus):
        raise UsageError(
            f"--jobs {jobs} exceeds the {len(gpus)} device(s) of --gpus",
            hint="each running trial gets its own device: lower --jobs or list more --gpus",
        )


class LocalBackend:
    """Run trials on this machine, ``jobs`` at a time."""

    def __init__(self, jobs: int = 1, gpus: Sequence[str] = ()) -> None:
        check_slots(jobs, gpus)
        self._jobs = jobs
        runner.reset_cancel()  # a new backend is new work, even after an earlier Ctrl-C in this process
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sleuth-trial")
        self._devices: queue.Queue[str] | None = None
        if gpus:
            self._devices = queue.Queue()
            for g in gpus:
                self._devices.put(g)
        self._futures: set[Future[TrialResult]] = set()

    def slots(self) -> int:
        """How many trials run at once."""
        return self._jobs

    def _run(
        self, spec: TrialSpec, trial_dir: Path, prepare: Callable[[Path], TrialSpec] | None
    ) -> TrialResult:
        if prepare is not None:  # before taking a device: a build does not hold a GPU
            spec = prepare(trial_dir)
        if self._devices is None:
            return runner.run_trial(spec, trial_dir)
        device = self._devices.get()
        try:
            return runner.run_trial(spec, trial_dir, device=device)
        finally:
            self._devices.put(device)

    def submit(
        self, spec: TrialSpec, trial_dir: Path, *, prepare: Callable[[Path], TrialSpec] | None = None
    ) -> Future[TrialResult]:
        """Queue one trial (``prepare``: see :class:`~sleuth.backends.Backend`)."""
        fut = self._pool.submit(self._run, spec, trial_dir, prepare)
        self._futures.add(fut)
        fut.add_done_callback(self._futures.discard)
        return fut

    def cancel_all(self) -> None:
        """Drop queued trials and stop running ones (SIGTERM, then SIGKILL)."""
        for fut in list(self._futures):
            fut.cancel()
        runner.kill_all()

    def close(self) -> None:
        """Shut the pool down without waiting."""
        self._pool.shutdown(wait=False, cancel_futures=True)
