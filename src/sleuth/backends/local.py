"""The local backend: trials on this machine, ``jobs`` at a time.

A plain trial (no ``prepare`` step) is started and reaped by one thread, the trial loop: it
spawns through :func:`sleuth.runner.start_trial` and waits on every running trial at once, each
one's pidfd (``os.pidfd_open``) in an ``epoll`` set and its timeout in a deadline heap.  No thread
blocks in a ``wait`` per trial: eight waiting workers handing results to the consumer cost about
140 GIL handoffs per trial.  A trial that ends cleanly (its group empty, nothing escaped: one
look) is finished in the loop; one that timed out or left processes behind is handed to a thread
of its own for the SIGTERM-grace-SIGKILL sequence (:func:`sleuth.runner.await_trial`), so a grace
never holds the other trials up.

A trial with a ``prepare`` step (a checkout, a build) runs in a worker thread, preparation and
trial, up to ``jobs`` workers; the loop counts it in the same ``jobs`` slots.  Without pidfds (an
old kernel, not Linux) every trial runs in a worker.

With ``gpus``, each running trial borrows one device id from a pool and gets it as
``CUDA_VISIBLE_DEVICES``/``HIP_VISIBLE_DEVICES``; two running trials never share one.  A trial's
``prepare`` step runs before it takes a device.

Every thread here is a daemon fed by lock-free queues: interpreter exit never waits for one (a
Ctrl-C ends sleuth once :meth:`cancel_all` has stopped the children), and the consumer thread
takes no lock another thread needs, so a signal landing anywhere cannot leave a trial unfinished.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import queue
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

from sleuth import runner
from sleuth.errors import UsageError
from sleuth.model import TrialResult, TrialSpec

__all__ = ["LocalBackend", "check_slots"]

_Prepare = Callable[[Path], TrialSpec]
_Item = tuple[Future[TrialResult], TrialSpec, Path, _Prepare | None]
#: pidfds and epoll (Linux >= 5.3): the trial loop; else a worker per running trial
_LOOP = hasattr(os, "pidfd_open") and hasattr(select, "epoll")


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
        #: trials submitted and not started (the loop's input)
        self._queue: deque[_Item] = deque()
        #: trials for the workers (prepared ones; every one without the loop)
        self._work: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: threading.Thread | None = None
        self._closed = False
        self._devices: queue.SimpleQueue[str] | None = None
        if gpus:
            self._devices = queue.SimpleQueue()
            for g in gpus:
                self._devices.put(g)
        #: futures queued or running (dropped when done): cancel_all's reach, O(in flight)
        self._futures: set[Future[TrialResult]] = set()
        #: one entry per slot another thread freed (a worker, a stopping trial), for the loop
        self._freed: deque[None] = deque()
        #: the loop waits with a slot free: a submission must wake it
        self._idle = False
        self._wake_lock = threading.Lock()
        self._wake_fds: tuple[int, int] | None = None

    def slots(self) -> int:
        """How many trials run at once."""
        return self._jobs

    def submit(
        self, spec: TrialSpec, trial_dir: Path, *, prepare: _Prepare | None = None
    ) -> Future[TrialResult]:
        """Queue one trial (``prepare``: see :class:`~sleuth.backends.Backend`)."""
        if self._closed:
            raise RuntimeError("LocalBackend is closed")
        fut: Future[TrialResult] = Future()
        self._futures.add(fut)
        fut.add_done_callback(self._futures.discard)
        item = (fut, spec, trial_dir, prepare)
        if not _LOOP:
            self._work.put(item)
            self._add_worker()
            return fut
        self._queue.append(item)
        if self._loop is None:
            self._wake_fds = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._loop = threading.Thread(target=self._serve, name="sleuth-trials", daemon=True)
            self._loop.start()
        elif self._idle:  # read after the append: the loop sets it before it looks at the queue
            self._wake()
        return fut

    def cancel_all(self) -> None:
        """Drop queued trials and stop running ones (SIGTERM, then SIGKILL after their grace)."""
        runner.cancel()  # first: a trial being started now finds it cancelled
        self._drop_queued()
        runner.kill_all()

    def close(self) -> None:
        """Let the threads end once the running trials are done; waits for nothing."""
        if self._closed:
            return
        self._closed = True
        self._drop_queued()
        for _ in self._threads:
            self._work.put(None)
        self._wake()

    # -- the workers: prepared trials (and every trial without the loop)

    def _add_worker(self) -> None:
        if len(self._threads) < self._jobs:
            t = threading.Thread(target=self._worker, name=f"sleuth-trial_{len(self._threads)}", daemon=True)
            t.start()
            self._threads.append(t)
            if self._closed:  # started by the loop after close() sent the others theirs
                self._work.put(None)

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
            try:
                if not fut.set_running_or_notify_cancel():
                    continue
                try:
                    fut.set_result(self._run(spec, trial_dir, prepare))
                except BaseException as exc:  # the future raises it in the consumer
                    fut.set_exception(exc)
            finally:
                if _LOOP:
                    self._slot_freed()
            del item, fut  # nothing of a finished trial stays referenced here

    def _drop_queued(self) -> None:
        while True:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            item[0].cancel()
        sentinels = 0
        while True:
            try:
                got = self._work.get_nowait()
            except queue.Empty:
                break
            if got is None:
                sentinels += 1
                continue
            got[0].cancel()
            if _LOOP:  # the loop counted it in a slot
                self._slot_freed()
        for _ in range(sentinels):  # close()'s: keep them for the workers
            self._work.put(None)

    # -- the trial loop

    def _wake(self) -> None:
        with self._wake_lock:  # never a write to a closed (or reused) descriptor
            if self._wake_fds is not None:
                with contextlib.suppress(BlockingIOError):
                    os.write(self._wake_fds[1], b"\0")

    def _slot_freed(self) -> None:
        self._freed.append(None)
        self._wake()

    def _serve(self) -> None:
        """The trial loop (see the module docstring); the only thread that touches its state."""
        assert self._wake_fds is not None
        wake_r = self._wake_fds[0]
        ep = select.epoll()
        ep.register(wake_r, select.EPOLLIN)
        loop = _LoopState(ep)
        try:
            while True:
                while self._freed:
                    self._freed.popleft()
                    loop.busy -= 1
                while loop.busy < self._jobs and self._dispatch(loop):
                    pass
                if self._closed and loop.busy == 0:
                    return
                timeout = max(0.0, loop.deadlines[0][0] - time.monotonic()) if loop.deadlines else -1.0
                if loop.busy < self._jobs:
                    self._idle = True
                    if self._queue:  # appended before submit() could see the flag
                        self._idle = False
                        continue
                events = ep.poll(timeout)
                self._idle = False
                for fd, _ in events:
                    if fd == wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake_r, 4096)
                    elif self._ended(loop.take(fd)):
                        loop.busy -= 1
                now = time.monotonic()
                while loop.deadlines and loop.deadlines[0][0] <= now:
                    _, n, fd = heapq.heappop(loop.deadlines)
                    entry = loop.running.get(fd)
                    if entry is not None and entry[3] == n:  # not finished before its deadline
                        self._hand_off(loop.take(fd))  # await_trial: the timeout's sequence
        except BaseException as exc:  # a bug here must not leave a consumer waiting forever
            self._closed = True
            for entry in loop.running.values():
                if not entry[1].done():
                    entry[1].set_exception(exc)
            while self._queue:
                self._queue.popleft()[0].set_exception(exc)
            raise
        finally:
            ep.close()
            with self._wake_lock:
                if self._wake_fds is not None:
                    for fd in self._wake_fds:
                        os.close(fd)
                    self._wake_fds = None
            for fd in loop.running:
                os.close(fd)

    def _dispatch(self, loop: _LoopState) -> bool:
        """Start the next queued trial (or hand it to a worker); False when none is queued."""
        try:
            item = self._queue.popleft()
        except IndexError:
            return False
        fut, spec, trial_dir, prepare = item
        if prepare is not None or (self._devices is not None and self._devices.empty()):
            loop.busy += 1  # a worker frees it (it may also find the future cancelled)
            self._work.put(item)
            self._add_worker()
            return True
        if not fut.set_running_or_notify_cancel():
            return True
        device = self._devices.get_nowait() if self._devices is not None else None
        try:
            r = runner.start_trial(spec, trial_dir, device=device)
        except BaseException as exc:
            self._give_back(device)
            fut.set_exception(exc)
            return True
        if r.proc is None or r.proc.returncode is not None:  # never started, or stopped by a cancel
            self._finish((r, fut, device, 0))
            return True
        loop.busy += 1
        try:
            fd = os.pidfd_open(r.pid)
        except OSError:  # no pidfd for this one after all: a thread waits for it
            self._hand_off((r, fut, device, 0))
            return True
        loop.add(fd, r, fut, device)
        return True

    def _ended(self, entry: _Entry) -> bool:
        """The trial's process exited: finish it here when nothing is left (True: its slot is free),
        else hand it to a thread that stops what is left."""
        try:
            clean = entry[0].settled()
        except Exception:
            clean = False
        if not clean:
            self._hand_off(entry)
            return False
        self._finish(entry)
        return True

    def _finish(self, entry: _Entry) -> None:
        r, fut, device, _ = entry
        try:
            result = runner.finish_trial(r)
        except BaseException as exc:
            self._give_back(device)
            fut.set_exception(exc)
        else:
            self._give_back(device)
            fut.set_result(result)

    def _hand_off(self, entry: _Entry) -> None:
        threading.Thread(target=self._await, args=entry[:3], name="sleuth-trial-stop", daemon=True).start()

    def _await(self, r: runner.Running, fut: Future[TrialResult], device: str | None) -> None:
        try:
            result = runner.await_trial(r)
        except BaseException as exc:
            self._give_back(device)
            fut.set_exception(exc)
        else:
            self._give_back(device)
            fut.set_result(result)
        finally:
            self._slot_freed()

    def _give_back(self, device: str | None) -> None:
        if device is not None and self._devices is not None:
            self._devices.put(device)


#: a trial in the loop: (its run, its future, its device, its number)
_Entry = tuple[runner.Running, Future[TrialResult], str | None, int]


class _LoopState:
    """What the trial loop tracks: the running trials by pidfd, their deadlines, the slots in use."""

    __slots__ = ("busy", "count", "deadlines", "ep", "running")

    def __init__(self, ep: select.epoll) -> None:
        self.ep = ep
        self.running: dict[int, _Entry] = {}
        #: (deadline, the trial's number, its pidfd), earliest first; stale ones are skipped
        self.deadlines: list[tuple[float, int, int]] = []
        self.busy = 0
        self.count = 0

    def add(self, fd: int, r: runner.Running, fut: Future[TrialResult], device: str | None) -> None:
        self.count += 1
        self.ep.register(fd, select.EPOLLIN)
        self.running[fd] = (r, fut, device, self.count)
        if r.deadline is not None:
            heapq.heappush(self.deadlines, (r.deadline, self.count, fd))

    def take(self, fd: int) -> _Entry:
        entry = self.running.pop(fd)
        self.ep.unregister(fd)
        os.close(fd)
        return entry
