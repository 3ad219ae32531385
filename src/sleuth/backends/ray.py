"""The Ray backend: each trial is one Ray task running sleuth's own runner on a node.

``RayBackend(jobs, options={...})`` (``--backend ray --backend-opt KEY=VALUE``); options:

* ``address``: the cluster to join (``auto``, ``HOST:PORT``, ``ray://...``); default ``$RAY_ADDRESS``,
  else a private local instance started for this run and shut down at its end;
* ``cpus``: logical CPUs per trial (default 1; 0 allowed; a fraction allowed);
* ``gpus``: GPUs per trial (default 0): a whole number, or a fraction below 1 (Ray's rule: trials
  then share a device).  Ray picks the devices; the trial gets them as ``CUDA_VISIBLE_DEVICES``/
  ``HIP_VISIBLE_DEVICES`` and its result's ``device`` says which.  With 0, the trial's environment
  is left as its spec says.

Choices (and why):

* Dispatch is :class:`~sleuth.backends.local.LocalBackend`'s own (a subclass): ``jobs`` daemon worker
  threads on the sleuth host, fed by a C queue.  A worker runs ``prepare(trial_dir)`` here, submits
  one task and waits for its result.  Tasks, not actors (a slot's actor would hold its GPUs while
  idle, and a slot the cluster cannot place would hold its trials for ever) and not Ray Jobs
  (stdout and stderr merged, seconds of overhead per job).
* The task (:func:`_trial_on_node`) calls :func:`sleuth.runner.run_trial` in a thread of the Ray
  worker, which enforces the timeout and writes stdout/stderr into the trial dir; the trial dir
  must be on a file system the nodes share.  The spec (its COMPLETE environment, secrets included)
  travels as the task's argument through Ray's object store, never on a command line, and is
  never logged; the ``TrialResult`` comes back the same way.  A container hook pickles and runs on
  the node (the node needs the runtime).
* No silent reruns: ``max_retries=0``, ``retry_exceptions=False``.  A worker that dies under a
  trial (OOM killer, a node lost) makes that trial an ERROR (:class:`~sleuth.errors.InfrastructureError`
  through the engine), never a second run.
* Cancel: :meth:`cancel_all` sends Ray's non-forcing cancel, which raises ``KeyboardInterrupt`` in
  the task's main thread; the task then calls ``runner.kill_all()`` in that worker process, which
  stops the trial's process group and its escapees (SIGTERM, the grace, SIGKILL) while the worker
  stays alive.  A forced cancel would kill the worker and orphan the trial (the runner starts it
  in a session of its own), so it is only the backstop for a task that did not end within the
  grace plus :data:`_CANCEL_MARGIN_S`.  :meth:`cancel_all` returns when the tasks have ended.
* Logging: Ray's own lines stay off sleuth's terminal (``log_to_driver=False``, level ERROR, usage
  stats off); a connection failure is one :class:`~sleuth.errors.InfrastructureError` line naming
  the address.
* A kill -9 of sleuth: a local instance dies with its driver (Ray's fate sharing); Ray kills the
  dead driver's workers and their direct children, i.e. the trial's leader; a trial's descendants
  left behind on this host are stopped by ``--resume`` (``runner.reap_orphans`` finds them by
  ``SLEUTH_TRIAL_DIR``).  On other nodes of a cluster nothing of sleuth runs to do that (docs/ray.md).

``import ray`` happens only here, and this module is imported only when ``--backend ray`` is chosen.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import pickle
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any, ClassVar

from sleuth import __version__, runner
from sleuth.backends import prepare_remote
from sleuth.backends.local import LocalBackend, check_slots
from sleuth.errors import InfrastructureError, SleuthError, UsageError
from sleuth.model import TrialResult, TrialSpec
from sleuth.secrets import scrub_text

__all__ = ["RayBackend"]

_Prepare = Callable[[Path], TrialSpec]
#: beyond a trial's kill grace, how long :meth:`RayBackend.cancel_all` waits before forcing
_CANCEL_MARGIN_S = 10.0
#: how long the address's port may take to answer before sleuth says it cannot connect
_CONNECT_PROBE_S = 10.0
INSTALL_HINT = "pip install 'sleuth[ray]'"
log = logging.getLogger(__name__)


def _import_ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise UsageError(f"--backend ray: ray is not installed: {INSTALL_HINT}") from None
    return ray


def _number(key: str, value: str, *, gpu: bool) -> float:
    """A per-trial resource amount: >= 0; for GPUs whole, or a fraction below 1."""
    try:
        x = float(value)
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or x < 0 or (gpu and x > 1 and not x.is_integer()):
        what = "a whole number >= 0, or a fraction below 1" if gpu else "a number >= 0"
        raise UsageError(f"--backend-opt {key}={value}: must be {what} ({key} per trial)")
    return x


def _options(options: Mapping[str, str]) -> tuple[str | None, float, float]:
    """(address or None, cpus, gpus) from ``--backend-opt``; UsageError naming the key."""
    for key, value in options.items():
        if key not in RayBackend.OPTIONS:
            raise UsageError(
                f"--backend-opt {key}={value}: ray has no option {key!r}",
                hint=f"its options: {', '.join(sorted(RayBackend.OPTIONS))}",
            )
    address = options.get("address")
    if address is not None and not address.strip():
        raise UsageError(
            f"--backend-opt address={address}: must name a cluster (auto, HOST:PORT or ray://HOST:PORT)"
        )
    cpus = _number("cpus", options["cpus"], gpu=False) if "cpus" in options else 1.0
    gpus = _number("gpus", options["gpus"], gpu=True) if "gpus" in options else 0.0
    return address, cpus, gpus


def _probe(address: str) -> str | None:
    """Why ``HOST:PORT`` does not answer (refused, unknown host, no answer in time), else None."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host or "/" in host:
        return None  # "auto", "ray://...", a bare host: Ray resolves those itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_PROBE_S):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def _quiet_error_messages() -> None:
    """Ray prints the cluster's error messages for this job ("A worker died ...") on the driver's
    STDOUT whatever ``log_to_driver`` says: that broke ``--json``.  They go to this module's logger
    instead (the trial's ERROR says what happened).  Ray's private hook; left alone where it moved."""
    import sys

    worker = sys.modules.get("ray._private.worker")
    if worker is not None and callable(getattr(worker, "print_to_stdstream", None)):
        setattr(worker, "print_to_stdstream", _log_stdstream)  # noqa: B010 - a module's attribute


def _log_stdstream(data: Mapping[str, Any], ignore_prefix: bool = False) -> None:
    for line in data.get("lines") or ():
        log.info("ray (%s): %s", data.get("pid", "?"), line)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class RayBackend(LocalBackend):
    """Run each trial as a Ray task on a cluster (or a local instance), ``jobs`` at a time: the local
    backend's queue and worker threads, each worker waiting on its trial's task."""

    OPTIONS: ClassVar[dict[str, str]] = {
        "address": "the cluster (auto, HOST:PORT, ray://...); default $RAY_ADDRESS, else a local instance",
        "cpus": "logical CPUs per trial (default 1; 0 allowed)",
        "gpus": "GPUs per trial (default 0; whole, or a fraction below 1 to share a device)",
    }

    def __init__(self, jobs: int = 1, options: Mapping[str, str] | None = None) -> None:
        check_slots(jobs)
        address, cpus, gpus = _options(options or {})
        ray = _import_ray()
        super().__init__(jobs)
        self._ray = ray
        self._gpus = gpus
        self._owned = False
        address = address or os.environ.get("RAY_ADDRESS") or None
        if ray.is_initialized():  # a caller's own connection (in-process use): kept, never shut down
            pass
        else:
            self._connect(address)
            self._owned = True
        self._task = ray.remote(_trial_on_node)
        #: per task: its resources, and no rerun by Ray (k-of-n counts depend on it)
        self._task_options: dict[str, Any] = {
            "num_cpus": cpus,
            "num_gpus": gpus,
            "max_retries": 0,
            "retry_exceptions": False,
        }
        self._cancelled = False
        self._lock = threading.Lock()
        #: tasks submitted and not yet ended: ref -> the trial's kill grace
        self._inflight: dict[Any, float] = {}
        atexit.register(self._at_exit)

    def _connect(self, address: str | None) -> None:
        ray = self._ray
        shown = scrub_text(address) if address else "a local instance"
        if address is not None and (why := _probe(address)) is not None:
            raise InfrastructureError(
                f"--backend ray: cannot connect to Ray at {shown}: {why}",
                hint="start the cluster (ray start --head) or fix --backend-opt address / $RAY_ADDRESS",
            )
        # Ray's own log lines (its loggers, its workers' output) stay off sleuth's terminal
        logging.getLogger("ray").setLevel(logging.ERROR)
        _quiet_error_messages()
        kw: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
        if address is None:
            kw |= {"address": "local", "include_dashboard": False}
        else:
            kw["address"] = address
        try:
            ray.init(**kw)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError: all "cannot use it"
            with contextlib.suppress(Exception):
                ray.shutdown()
            what = f"cannot connect to Ray at {shown}" if address else "could not start a local Ray instance"
            raise InfrastructureError(
                f"--backend ray: {what}: {scrub_text(_first_line(exc))}",
                hint="start the cluster (ray start --head) or fix --backend-opt address / $RAY_ADDRESS; "
                "a cluster with token authentication also needs RAY_AUTH_MODE=token here"
                if address
                else "see Ray's logs under /tmp/ray",
            ) from None

    def _run(self, spec: TrialSpec, trial_dir: Path, prepare: _Prepare | None) -> TrialResult:
        spec = prepare_remote(spec, trial_dir, prepare, "ray")
        ray = self._ray
        with self._lock:
            if self._cancelled:
                raise CancelledError
            task = self._task.options(name=f"sleuth:{trial_dir.name}", **self._task_options)
            try:
                ref = task.remote(spec, str(trial_dir), self._gpus, __version__)
            except (TypeError, AttributeError, pickle.PicklingError) as exc:  # what Ray cannot serialize
                raise UsageError(
                    f"this trial cannot travel to a Ray node: {_first_line(exc)}",
                    hint="use --backend local for this environment",
                ) from None
            self._inflight[ref] = spec.kill_grace_s
        try:
            result: TrialResult = ray.get(ref)
            return result
        except ray.exceptions.TaskCancelledError:
            raise CancelledError from None
        except ray.exceptions.RayTaskError as exc:  # the task raised: a sleuth error is passed on as such
            cause = exc.cause if isinstance(exc.cause, BaseException) else None
            if isinstance(cause, KeyboardInterrupt):
                raise CancelledError from None
            if isinstance(cause, SleuthError):
                raise cause from None
            raise InfrastructureError(f"ray: the trial's task failed: {_first_line(cause or exc)}") from None
        except ray.exceptions.RayError as exc:  # the worker or node died, the cluster went away
            raise InfrastructureError(
                f"ray: the trial's task ended without a result: {type(exc).__name__}: {_first_line(exc)}"
            ) from None
        finally:
            with self._lock:
                self._inflight.pop(ref, None)

    def cancel_all(self) -> None:
        """Drop queued trials, stop what runs here (a ``prepare``: a checkout, a venv build) and the
        trials' tasks; returns when the tasks have ended."""
        with self._lock:
            self._cancelled = True
            inflight = dict(self._inflight)
        super().cancel_all()
        if not inflight:
            return
        ray = self._ray
        refs = list(inflight)
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=False)
        grace = max(inflight.values()) + _CANCEL_MARGIN_S
        _done, left = ray.wait(refs, num_returns=len(refs), timeout=grace, fetch_local=False)
        for ref in left:  # the backstop: the worker dies (its trial may be orphaned)
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Let the workers end once the queue is done; disconnect (a local instance stops) when no
        trial is in flight, else at exit after stopping them.  Waits for nothing."""
        if self._closed:
            return
        super().close()
        with self._lock:
            idle = not self._inflight
        if idle:
            self._disconnect()

    def _disconnect(self) -> None:
        atexit.unregister(self._at_exit)
        if self._owned:
            self._owned = False
            with contextlib.suppress(Exception):
                self._ray.shutdown()

    def _at_exit(self) -> None:
        # before Ray's own exit hook: a shutdown with a task running would kill its worker and orphan
        # the trial; stop the trials first
        self.cancel_all()
        self._disconnect()


def _trial_on_node(spec: TrialSpec, trial_dir: str, gpus: float, version: str) -> TrialResult:
    """The Ray task: :func:`sleuth.runner.run_trial` in a thread of this worker (``version``: the
    sleuth that sent it; a node with another one refuses).

    The main thread waits for it in short steps, so Ray's cancel (a ``KeyboardInterrupt`` raised
    there) is seen within a tenth of a second; it stops the trial through ``runner.kill_all`` (its
    group, its escapees) and re-raises once the trial's process is reaped.
    """
    if version != __version__:
        raise InfrastructureError(
            f"the Ray node {os.uname().nodename} has sleuth {__version__}, this sleuth is {version}",
            hint="install the same sleuth on every node",
        )
    device = None
    if gpus > 0:
        device = os.environ.get("CUDA_VISIBLE_DEVICES") or None
        if device is None:
            device = ",".join(str(i) for i in _import_ray().get_gpu_ids()) or None
    runner.reset_cancel()  # a worker runs many tasks: an earlier cancel does not stop this one
    box: list[TrialResult | BaseException] = []

    def run() -> None:
        try:
            box.append(runner.run_trial(spec, Path(trial_dir), device=device))
        except BaseException as exc:  # raised in the task below
            box.append(exc)

    t = threading.Thread(target=run, name="sleuth-trial", daemon=True)
    try:
        t.start()
        while t.is_alive():
            t.join(0.1)
    except BaseException:  # Ray's cancel: stop the trial's processes, wait for the runner to reap them
        runner.kill_all()
        if t.ident is not None:
            t.join()
        raise
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]
