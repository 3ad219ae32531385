"""The Slurm backend: each trial is one ``srun`` of sleuth's own runner on a node.

``SlurmBackend(jobs, options={...})`` (``--backend slurm --backend-opt KEY=VALUE``; keys in
:data:`SlurmBackend.OPTIONS`).  Choices, and why:

* **Threads as on the local backend.**  It *is* a :class:`~sleuth.backends.local.LocalBackend` (the
  same ``jobs`` daemon workers, queue, cancel and close) whose worker runs, per trial, ``prepare`` on
  this host and then one ``srun``: ``jobs`` trials are in flight at once, and Slurm queues what does not
  fit.  Outside an allocation each srun is a job of its own; inside one (``SLURM_JOB_ID`` set, e.g. in
  ``salloc`` or an sbatch script) it is a step of it, with ``--exact`` (else a step takes every CPU of
  the allocation on its node, and the steps of an allocation ran one at a time).  No sbatch and no
  arrays: a trial's result is a file, and srun's exit tells when it is there (0.1-0.2 s per trial).
* **srun is itself run as a trial** (:func:`sleuth.runner.run_trial`) in the trial dir's
  :data:`~sleuth.runner.CLIENT_DIR` (``.sleuth-client/``: srun's own stdout/stderr, the spec file, the
  node's result), so the one spawning module starts it, a Ctrl-C stops it, and its cleanup command
  (a :class:`~sleuth.model.RunHook`) cancels the Slurm job: on ``cancel_all``, when srun dies of a
  signal, and, recorded in ``.sleuth-client/.sleuth-cleanup.json``, at ``--resume`` after a kill -9 of
  sleuth (:func:`sleuth.runner.reap_orphans`).  The cleanup is ``python -m sleuth.runner --cancel
  CLIENT_DIR [NAME]`` (:func:`sleuth.remote.cancel`): ``scancel --name`` for a job of its own (each
  trial's job name is unique), ``scancel JOB.STEP`` for a step (scancel cannot select steps by name;
  the node records its step id when it starts).  An srun killed with SIGKILL may leave its step, and
  outside an allocation leaves its job, running: the explicit scancel is needed.
* **The command line carries no environment.**  ``TrialSpec.env`` (the child's complete environment,
  maybe secrets) goes in the spec file (JSON, mode 0600, deleted by the node as soon as it is read, and
  by the cleanup when no node read it); ``--export`` is never used (a variable of srun's own
  environment wins over ``--export=ALL,NAME=...``).  srun gets sleuth's environment less the device
  variables, so only Slurm sets ``CUDA_VISIBLE_DEVICES`` on the node.
* **The node** runs ``PYTHON -m sleuth.runner SPEC TRIAL_DIR`` (:mod:`sleuth.remote`) in the trial's
  cwd made absolute here (none: sleuth's own, as on the local backend; srun starts it in the client
  dir, where a relative cwd was not found): the runner's
  timeout, kill sequence, output files and container hooks, with Slurm's ``CUDA_VISIBLE_DEVICES`` as
  the device.  srun's ``--time`` is only a backstop, a minute above the trial's timeout plus its
  grace (Slurm stops a step up to ~90 s after its limit).  srun has no ``--no-requeue`` (an sbatch
  flag): Slurm never requeues a job that srun made, so no trial is rerun behind sleuth's back.
* **Failures.**  No ``srun`` on PATH or no controller answering ``sinfo`` (15 s): the constructor
  raises :class:`~sleuth.errors.BackendUnavailable` (exit 4), and an unknown ``partition`` is a
  ``UsageError``.  A trial whose srun fails (an account Slurm refuses, the node dies) is an ERROR with
  srun's last error line; a node that cannot read the spec (another sleuth version) says so.
* **Not supported:** hooks other than docker/podman's (pyxis runs srun itself: a ``UsageError``), and
  ``--gpus`` device ids (the plumbing refuses them for cluster backends; ``gpus=N`` asks Slurm).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from sleuth import remote, runner
from sleuth.backends import prepare_remote
from sleuth.backends.local import LocalBackend
from sleuth.errors import BackendUnavailable, UsageError
from sleuth.model import RunPlan, TrialResult, TrialSpec

__all__ = ["SlurmBackend", "SlurmOptions", "job_name", "parse_options", "srun_argv"]

_Prepare = Callable[[Path], TrialSpec]
#: variables of sleuth's own environment that srun must not carry to the node (Slurm sets them)
_DEVICE_VARS = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL")
#: seconds srun may take past the node's own kill sequence before it is stopped from here
_CLIENT_GRACE_S = 15.0
_TIME_RE = re.compile(r"\A[0-9]+(-[0-9]+)?(:[0-9]+){0,2}\Z|\AUNLIMITED\Z|\Ainfinite\Z")
#: srun's line for a task that ended badly: the reason is on the lines before it
_TASK_EXIT = re.compile(r"srun: error: \S+: tasks? [0-9,-]+: ")
_NAME_RE = re.compile(r"\A[A-Za-z0-9_.,:+-]+\Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class SlurmOptions:
    """The validated ``--backend-opt`` values."""

    gpus: int = 0
    partition: str | None = None
    account: str | None = None
    #: srun ``--time`` for every trial; None: derived from each trial's timeout (none without one)
    time: str | None = None
    python: str = sys.executable
    srun_args: tuple[str, ...] = ()


OPTIONS: dict[str, str] = {
    "gpus": "GPUs per trial (default 0); Slurm picks them and sets CUDA_VISIBLE_DEVICES",
    "partition": "srun --partition",
    "account": "srun --account",
    "time": "srun --time for every trial (default: a minute above the trial's timeout; none without one)",
    "python": "the interpreter on the nodes that has sleuth installed (default: this sleuth's)",
    "srun_args": "more srun arguments, split like a shell line, e.g. 'gpus-per-task=1 --qos=high'",
}


def _bad(key: str, value: str, why: str) -> UsageError:
    return UsageError(f"--backend-opt {key}={value}: {why}")


def parse_options(options: Mapping[str, str]) -> SlurmOptions:
    """``--backend-opt`` values checked; ``UsageError`` naming the key otherwise."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UsageError(
            f"--backend-opt {unknown[0]}: unknown option of the slurm backend",
            hint=f"valid keys: {', '.join(OPTIONS)}",
        )
    kw: dict[str, object] = {}
    for key, value in options.items():
        if key == "gpus":
            if not value.isdigit() or not value.isascii() or int(value) > 64:
                raise _bad(key, value, "must be a whole number from 0 to 64")
            kw[key] = int(value)
        elif key in ("partition", "account"):
            if not _NAME_RE.fullmatch(value):
                raise _bad(key, value, "must be a Slurm name (letters, digits, '_', '.', ',', ':', '+', '-')")
            kw[key] = value
        elif key == "time":
            if not _TIME_RE.fullmatch(value):
                raise _bad(
                    key, value, "must be a Slurm time: MINUTES, MM:SS, HH:MM:SS, D-HH[:MM[:SS]] or UNLIMITED"
                )
            kw[key] = value
        elif key == "python":
            if not os.path.isabs(value):
                raise _bad(key, value, "must be an absolute path (the interpreter on the nodes)")
            kw[key] = value
        else:  # srun_args
            try:
                kw[key] = tuple(shlex.split(value))
            except ValueError as exc:
                raise _bad(key, value, f"cannot be split like a shell line: {exc}") from None
    return SlurmOptions(**kw)  # type: ignore[arg-type]


def job_name(trial_dir: Path) -> str:
    """A name for this run of this trial, unique (a random suffix) and readable in ``squeue``."""
    slug = "".join(c if c.isalnum() or c in "_.-" else "-" for c in trial_dir.name)[:60]
    return f"sleuth-{slug}-{secrets.token_hex(4)}"


def backstop_time(spec: TrialSpec, opts: SlurmOptions) -> str | None:
    """srun's ``--time``: the option, else whole minutes a minute above the timeout and its grace."""
    if opts.time is not None:
        return opts.time
    if spec.timeout_s is None:
        return None
    return str(math.ceil((spec.timeout_s + spec.kill_grace_s + _CLIENT_GRACE_S) / 60) + 1)


def srun_argv(spec: TrialSpec, trial_dir: Path, name: str, opts: SlurmOptions) -> tuple[str, ...]:
    """The srun command line of one trial (no environment on it: see the module docstring)."""
    client = Path(os.path.abspath(trial_dir)) / runner.CLIENT_DIR
    argv = ["srun", f"--job-name={name}", "--nodes=1", "--ntasks=1", "--exact", f"--chdir={client}"]
    if opts.gpus:
        argv.append(f"--gres=gpu:{opts.gpus}")
    time = backstop_time(spec, opts)
    if time is not None:
        argv.append(f"--time={time}")
    if opts.partition:
        argv.append(f"--partition={opts.partition}")
    if opts.account:
        argv.append(f"--account={opts.account}")
    argv += opts.srun_args
    argv += [opts.python, "-m", "sleuth.runner", str(client / remote.SPEC_FILE), os.path.abspath(trial_dir)]
    return tuple(argv)


@dataclass(frozen=True, slots=True)
class _ScancelHook:
    """The srun client's :class:`~sleuth.model.RunHook`: its cleanup cancels the trial's Slurm job/step.
    It runs on this host (not the node): with this sleuth's interpreter."""

    client_dir: str
    #: the job's name when the trial is a job of its own; None for a step of an allocation
    name: str | None

    def bind(self, spec: TrialSpec, trial_dir: Path, device: str | None) -> RunPlan:
        """srun as is; the cleanup is :func:`sleuth.remote.cancel`."""
        del trial_dir, device
        argv = (sys.executable, "-m", "sleuth.runner", "--cancel", self.client_dir)
        keep = {k: spec.env[k] for k in ("SLURM_CONF", "PATH", "PYTHONPATH") if k in spec.env}
        return RunPlan(spec=spec, cleanup=argv + ((self.name,) if self.name else ()), cleanup_env=keep)

    def own_error(self, rc: int | None, stderr_tail: str) -> str | None:
        """Decided by the backend once it has looked for the node's result."""
        del rc, stderr_tail
        return None


def _srun_error(client: TrialResult) -> str:
    """srun's failure as one line: the last error line (the node's own, e.g. sleuth missing there,
    before srun's "task 0: Exited with exit code 1"), else the last line, else the exit."""
    if client.error:
        return f"srun: {client.error}"
    lines = [ln.strip() for ln in client.stderr_tail.splitlines() if ln.strip()]
    own = [ln for ln in lines if not _TASK_EXIT.match(ln)]
    errors = [ln for ln in own if "error" in ln.lower()]
    last = (errors or own or lines or [""])[-1]
    if last:
        return (last if last.startswith(("srun", "slurmstepd")) else f"node: {last}")[:300]
    return f"srun exited {client.rc}" if client.signal is None else f"srun killed by signal {client.signal}"


class SlurmBackend(LocalBackend):
    """Run each trial as one ``srun`` of sleuth's runner, ``jobs`` at a time (module docstring)."""

    OPTIONS: ClassVar[dict[str, str]] = OPTIONS

    def __init__(self, jobs: int = 1, options: Mapping[str, str] | None = None) -> None:
        super().__init__(jobs)
        self.options = parse_options(options or {})
        self._in_allocation = bool(os.environ.get("SLURM_JOB_ID"))
        self._env = {k: v for k, v in os.environ.items() if k not in _DEVICE_VARS}
        _check_slurm(self.options, self._env)

    def _run(self, spec: TrialSpec, trial_dir: Path, prepare: _Prepare | None) -> TrialResult:
        spec = prepare_remote(spec, trial_dir, prepare, "slurm")
        opts = self.options
        tdir = Path(os.path.abspath(trial_dir))
        client = tdir / runner.CLIENT_DIR
        os.makedirs(client, exist_ok=True)
        for stale in (remote.RESULT_FILE, remote.STEP_FILE):  # a resumed trial's earlier attempt
            with contextlib.suppress(FileNotFoundError):
                os.unlink(client / stale)
        # the node starts in the client dir: a trial runs where it would run here (sleuth's working
        # directory, or its cwd taken from there; reduce's candidates give a relative one)
        cwd = os.path.abspath(spec.cwd) if spec.cwd is not None else os.getcwd()
        remote.write_spec(client / remote.SPEC_FILE, spec if cwd == spec.cwd else spec.with_cwd(cwd))
        name = job_name(tdir)
        hook = _ScancelHook(str(client), None if self._in_allocation else name)
        srun = TrialSpec(
            argv=srun_argv(spec, tdir, name, opts),
            env=self._env,
            kill_grace_s=spec.kill_grace_s + _CLIENT_GRACE_S,
            label=f"srun {name}",
            hook=hook,
        )
        try:
            done = runner.run_trial(srun, client)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(client / remote.SPEC_FILE)  # no node read it (srun failed, cancelled)
        result = remote.read_result(client / remote.RESULT_FILE, spec, trial_dir)
        if isinstance(result, TrialResult):
            return result
        return TrialResult(
            spec=spec,
            trial_dir=trial_dir,
            rc=None,
            signal=None,
            timed_out=False,
            started_at=done.started_at,
            wall_s=done.wall_s,
            stdout_path=trial_dir / "stdout",
            stderr_path=trial_dir / "stderr",
            host=done.host,
            error=_srun_error(done) if done.rc != 0 or done.error else result,
        )


def _check_slurm(opts: SlurmOptions, env: Mapping[str, str]) -> None:
    """srun on PATH and a controller that answers (and knows the partition), or one line why not."""
    path = env.get("PATH", os.defpath)
    if shutil.which("srun", path=path) is None or shutil.which("sinfo", path=path) is None:
        raise BackendUnavailable(
            "slurm backend: srun/sinfo not found on PATH",
            hint="run sleuth on a node of the cluster (a login node) or install Slurm's client commands",
        )
    res = runner.run_tool(["sinfo", "--noheader", "--format=%R"], env=env, timeout_s=15)
    if not res.ok:
        why = "sinfo did not answer within 15 s" if res.timed_out else res.brief()
        raise BackendUnavailable(f"slurm backend: Slurm is not usable here: {why}",
                                 hint="check `sinfo` and SLURM_CONF")  # fmt: skip
    partitions = sorted({p.strip() for p in res.stdout.split() if p.strip()})
    missing = [p for p in (opts.partition or "").split(",") if p and p not in partitions]
    if missing:
        raise UsageError(
            f"--backend-opt partition={opts.partition}: no partition {missing[0]!r} in this cluster",
            hint=f"sinfo lists: {', '.join(partitions) or 'none'}",
        )
