"""The local backend: ``jobs`` worker threads over :func:`sleuth.runner.run_trial`.

With ``gpus``, each running trial borrows one device id from a pool and gets it as
``CUDA_VISIBLE_DEVICES``/``HIP_VISIBLE_DEVICES``; a trial waits for a free device, so two running
trials never share one.  A trial's ``prepare`` step runs in its worker before it takes a device.

The workers are daemon threads fed by a C queue: interpreter exit never waits for them (a Ctrl-C
ends sleuth once :meth:`cancel_all` has stopped the children), and the main thread takes no lock
a worker needs, so a signal landing anywhere cannot leave a worker blocked (``concurrent.futures``'
pool joins its workers at exit, and ``wait()`` holds every future's lock while it registers).

Why a worker per running trial, and not one thread that spawns every trial and waits on all of
them through pidfds (tried, issue 9): that thread saves about 15% of sleuth's CPU (no GIL handoff
per system call between nine threads) but serializes the spawns, and each spawn waits until the
kernel has run the child up to its exec.  On a loaded machine that wait is a scheduling delay:
1000 x ``true`` at ``--jobs 8`` took 1.5-1.7 s with one spawning thread against 0.63-0.69 s with
the workers (0.58-0.60 s both on a quieter one); eight workers overlap those waits, as a plain
thread pool of ``subprocess.run`` does.
"""

from __future__ import annotations

import errno
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

from sleuth import runner
from sleuth.errors import UsageError
from sleuth.model import MAX_JOBS, TrialResult, TrialSpec

__all__ = ["LocalBackend", "check_slots"]

_Prepare = Callable[[Path], TrialSpec]
_Item = tuple[Future[TrialResult], TrialSpec, Path, _Prepare | None]


def check_slots(jobs: int, gpus: Sequence[str] = ()) -> None:
    """``--jobs`` is in 1..MAX_JOBS and, with ``--gpus``, at most one running trial per device."""
    if not 1 <= jobs <= MAX_JOBS:
        raise UsageError(f"--jobs {jobs}: must be between 1 and {MAX_JOBS}")
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
        self._work: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._devices: queue.SimpleQueue[str] | None = None
        if gpus:
            self._devices = queue.SimpleQueue()
            for g in gpus:
                self._devices.put(g)

    def slots(self) -> int:
        """How many trials run at once."""
        return self._jobs

    def _run(self, spec: TrialSpec, trial_dir: Path, prepare: _Prepare | None) -> TrialResult:
        if prepare is not None:  # before taking a device: a build does not hold a GPU
            spec = prepare(trial_dir)
        if self._devices is None:
            return runner.run_trial(spec, trial_dir)
        device = self._devices.get()
        try:
            return runner.run_trial(spec, trial_dir, device=device)
        finally:
            self._devices.put(device)

    def _worker(self) -> None:
        while (item := self._work.get()) is not None:
            fut, spec, trial_dir, prepare = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(self._run(spec, trial_dir, prepare))
            except BaseException as exc:  # the future raises it in the consumer
                fut.set_exception(exc)
            del item, fut  # nothing of a finished trial stays referenced here

    def submit(
        self, spec: TrialSpec, trial_dir: Path, *, prepare: _Prepare | None = None
    ) -> Future[TrialResult]:
        """Queue one trial (``prepare``: see :class:`~sleuth.backends.Backend`)."""
        if self._closed:
            raise RuntimeError("LocalBackend is closed")
        fut: Future[TrialResult] = Future()
        self._work.put((fut, spec, trial_dir, prepare))
        if len(self._threads) < self._jobs:
            t = threading.Thread(target=self._worker, name=f"sleuth-trial_{len(self._threads)}", daemon=True)
            try:
                t.start()
            except RuntimeError as exc:  # "can't start new thread": the process limit counts threads
                if not self._threads:  # else the workers there are take the queue: fewer jobs at once
                    raise OSError(
                        errno.EAGAIN, "the process limit is reached: could not start a thread"
                    ) from exc
            else:
                self._threads.append(t)
        return fut

    def cancel_all(self) -> None:
        """Drop queued trials and stop running ones (SIGTERM, then SIGKILL after their grace)."""
        runner.cancel()  # first: a worker taking a queued trial now finds it cancelled
        self._drop_queued()
        runner.kill_all()

    def _drop_queued(self) -> None:
        sentinels = 0
        while True:
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                break
            if item is None:
                sentinels += 1
            else:
                item[0].cancel()
        for _ in range(sentinels):  # close()'s: keep them for the workers
            self._work.put(None)

    def close(self) -> None:
        """Let the workers end once the queue is done; waits for nothing."""
        if self._closed:
            return
        self._closed = True
        self._drop_queued()
        for _ in self._threads:
            self._work.put(None)
