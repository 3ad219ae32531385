"""A private part of :mod:`sleuth.runner`: the cleanup records of hooked trials and :func:`reap_orphans`.

* a hooked trial's cleanup command (a container's removal) is recorded in its trial dir,
  :data:`CLEANUP_FILE` (``{"argv": [...], "env": {...}}``, written atomically), by
  :func:`arm_cleanup` before the spawn; the runner removes it when the trial is closed, so a record
  that is still there names a trial of a sleuth that died (kill -9);
* :func:`reap_orphans` runs those records' commands (then removes them), and SIGKILLs every process
  whose environment carries ``SLEUTH_TRIAL_DIR`` inside the run dir: no other process is ever touched;
* a cluster backend's client (``srun``) runs as a trial of its own in :data:`CLIENT_DIR` of the trial
  dir; its record there is read too, and nothing else a workload wrote in its trial dir is walked.

Processes are spawned only through :mod:`sleuth._spawn` (the cleanups) and signalled through
:mod:`sleuth.reaper`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from sleuth import _spawn, reaper
from sleuth.model import RunPlan

__all__ = ["CLEANUP_FILE", "CLIENT_DIR", "arm_cleanup", "reap_orphans"]

#: a hooked trial's cleanup command, in its trial dir while it runs (read by :func:`reap_orphans`)
CLEANUP_FILE = ".sleuth-cleanup.json"
#: a cluster backend's client (``srun``) runs as a trial of its own in this subdirectory of the trial
#: dir (its output, the spec file, the node's result); its cleanup record there is read too
CLIENT_DIR = ".sleuth-client"


def arm_cleanup(tdir: str, plan: RunPlan) -> None:
    """Record the cleanup in the trial dir before the spawn: a resume after a kill -9 runs it."""
    tmp = f"{tdir}/{CLEANUP_FILE}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"argv": list(plan.cleanup), "env": dict(plan.cleanup_env)}, fh)
    os.replace(tmp, f"{tdir}/{CLEANUP_FILE}")


def reap_orphans(run_dir: Path) -> int:
    """SIGKILL the processes of trials of ``run_dir`` left running by a sleuth that died (kill -9).

    A trial is recognised by ``SLEUTH_TRIAL_DIR`` inside ``run_dir`` in its environment (the runner
    sets it for every child, and grandchildren inherit it), so no other process is ever touched.
    Call it only while holding the run dir (``RunDir`` locks it).  Linux only (``/proc``); returns
    how many process groups were killed.  First, the cleanup commands that hooked trials left in
    their trial dirs (``.sleuth-cleanup.json``: containers of the killed run) run, and are removed.
    """
    _reap_cleanups(run_dir)
    prefixes = tuple(
        f"SLEUTH_TRIAL_DIR={p}{os.sep}".encode() for p in {os.path.abspath(run_dir), str(run_dir.resolve())}
    )
    groups: set[int] = set()
    pids: list[int] = []
    me = os.getpgid(0)
    try:
        candidates = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in candidates:
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read()
            pgid = os.getpgid(pid)
        except OSError:  # gone, or not ours to read
            continue
        if pgid != me and any(v.startswith(prefixes) for v in environ.split(b"\0")):
            groups.add(pgid)
            pids.append(pid)
    for pgid in groups:
        reaper._signal_group(pgid, signal.SIGKILL)
    reaper._signal(pids, signal.SIGKILL)  # and those that left their group
    reaper.reap_zombies(_spawn.owned, allowed=_spawn.no_spawn_in_flight)
    return len(groups)


def _reap_cleanups(run_dir: Path) -> None:
    """Run the cleanups that a killed sleuth left in ``run_dir``'s trial dirs, then forget them."""
    jobs: list[tuple[Path, tuple[str, ...], dict[str, str]]] = []
    for path in _cleanup_records(run_dir):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            argv = tuple(str(a) for a in rec["argv"])
            env = {**os.environ, **{str(k): str(v) for k, v in dict(rec.get("env") or {}).items()}}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if argv:
            jobs.append((path, argv, env))
    _spawn.at_once([(_spawn.run_cleanup, a, e) for _, a, e in jobs])
    for path, _, _ in jobs:
        with contextlib.suppress(OSError):
            path.unlink()


def _cleanup_records(run_dir: Path) -> Iterator[Path]:
    """The cleanup records under ``run_dir``, walked without recursion and without entering what a
    workload wrote in its trial dir (a directory with a ``stdout``): ``rglob`` walked its 100,000
    files on every resume, and a tree 1,000 deep there raised RecursionError (a traceback)."""
    top = os.fspath(run_dir)
    stack = [top]
    while stack:
        d = stack.pop()
        record = os.path.join(d, CLEANUP_FILE)
        if os.path.isfile(record):
            yield Path(record)
        if d != top and os.path.isfile(os.path.join(d, "stdout")):
            client = os.path.join(d, CLIENT_DIR, CLEANUP_FILE)  # a trial dir: only sleuth's own subdir
            if os.path.isfile(client):
                yield Path(client)
            continue
        try:
            with os.scandir(d) as entries:
                stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
