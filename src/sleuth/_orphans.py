"""A private part of :mod:`sleuth.runner`: the cleanup records of hooked trials and :func:`reap_orphans`.

* a hooked trial's cleanup command (a container's removal) is recorded in its trial dir,
  :data:`CLEANUP_FILE` (``{"argv": [...], "env": {...}}``, written atomically), by
  :func:`arm_cleanup` before the spawn; the runner removes it when the trial is closed, so a record
  that is still there names a trial of a sleuth that died (kill -9);
* :func:`reap_orphans` runs those records' commands (then removes them), and stops every process
  whose environment carries ``SLEUTH_TRIAL_DIR`` inside the run dir (no other process is ever
  touched) as sleuth stops its own: SIGTERM to their groups, the verb's kill grace, SIGKILL, then a
  wait for them to be gone; every verb that takes up a killed sleuth's run (a resume, a rerun of
  ``supervise``, ``serve`` on the same database) does it through this one function;
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
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from sleuth import _spawn, reaper
from sleuth.model import DEFAULT_KILL_GRACE_S, RunPlan

__all__ = ["CLEANUP_FILE", "CLIENT_DIR", "GONE_S", "STOPPED_GONE_S", "arm_cleanup", "reap_orphans"]

#: a hooked trial's cleanup command, in its trial dir while it runs (read by :func:`reap_orphans`)
CLEANUP_FILE = ".sleuth-cleanup.json"
#: a cluster backend's client (``srun``) runs as a trial of its own in this subdirectory of the trial
#: dir (its output, the spec file, the node's result); its cleanup record there is read too
CLIENT_DIR = ".sleuth-client"
#: how long :func:`reap_orphans` waits for what it SIGKILLed to exit (freeing a GPU's memory takes time)
GONE_S = 30.0
#: the same once a Ctrl-C cut the grace: the user is waiting, and a resume takes up what is still exiting
STOPPED_GONE_S = 5.0


def arm_cleanup(tdir: str, plan: RunPlan) -> None:
    """Record the cleanup in the trial dir before the spawn: a resume after a kill -9 runs it."""
    tmp = f"{tdir}/{CLEANUP_FILE}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"argv": list(plan.cleanup), "env": dict(plan.cleanup_env)}, fh)
    os.replace(tmp, f"{tdir}/{CLEANUP_FILE}")


def reap_orphans(
    run_dir: Path, grace_s: float = DEFAULT_KILL_GRACE_S, *, stop: Callable[[], bool] | None = None
) -> int:
    """Stop the processes of trials of ``run_dir`` left running by a sleuth that died (kill -9).

    A trial is recognised by ``SLEUTH_TRIAL_DIR`` inside ``run_dir`` in its environment (the runner
    sets it for every child, and grandchildren inherit it), so no other process is ever touched.
    They are stopped as sleuth stops its own: SIGTERM to their process groups, up to ``grace_s``
    (the verb's kill grace; a resume's is the one the run recorded) for them to end (a trap's
    checkpoint save), SIGKILL to what is left, then a wait of up to :data:`GONE_S` for that to exit.
    Call it only while holding the run dir (``RunDir`` locks it).  Linux only (``/proc``); returns
    how many process groups were found.  First, the cleanup commands that hooked trials left in
    their trial dirs (``.sleuth-cleanup.json``: containers of the killed run) run, and are removed.

    A Ctrl-C cuts the grace: once ``stop()`` is true (a verb that only notes signals: ``sleuth run``'s
    held gate, supervise's handler) the wait returns, and a KeyboardInterrupt raised in it (the
    verb's handler) is raised again, after what is left got SIGKILL at once and up to
    :data:`STOPPED_GONE_S` to exit (one still exiting then is taken up by the next resume).
    """
    _reap_cleanups(run_dir)
    prefixes = tuple(
        f"SLEUTH_TRIAL_DIR={p}{os.sep}".encode() for p in {os.path.abspath(run_dir), str(run_dir.resolve())}
    )
    groups, _ = _scan(prefixes, set())
    found = len(groups)
    try:
        if groups:
            _stop(prefixes, groups, grace_s, stop or (lambda: False))
    finally:
        reaper.reap_zombies(_spawn.owned, allowed=_spawn.no_spawn_in_flight)
    return found


def _stop(prefixes: tuple[bytes, ...], groups: set[int], grace_s: float, stop: Callable[[], bool]) -> None:
    """SIGTERM ``groups``, wait up to ``grace_s`` for them (and any marked process that left its group
    meanwhile, SIGTERMed in its turn) to be gone, SIGKILL what is left and wait up to :data:`GONE_S`
    for it to exit; ``stop()`` (or a KeyboardInterrupt) cuts the grace and the wait for it."""
    live = set(groups)
    try:
        for g in groups:  # inside: a Ctrl-C as soon as one got its SIGTERM SIGKILLs them all
            reaper._signal_group(g, signal.SIGTERM)
        if _wait(prefixes, groups, live, sig=signal.SIGTERM, within=grace_s, stop=stop):
            return
    except KeyboardInterrupt:  # the verb's handler raised it: the grace is over for all of them
        for g in live:  # first (live at the last pass), so a second Ctrl-C in the scan leaves none
            reaper._signal_group(g, signal.SIGKILL)
        _wait(prefixes, groups, live, sig=signal.SIGKILL, within=STOPPED_GONE_S, stop=lambda: False)
        raise
    within = STOPPED_GONE_S if stop() else GONE_S
    _wait(prefixes, groups, live, sig=signal.SIGKILL, within=within, stop=lambda: False)


def _wait(
    prefixes: tuple[bytes, ...],
    groups: set[int],
    live: set[int],
    *,
    sig: int,
    within: float,
    stop: Callable[[], bool],
) -> bool:
    """Wait up to ``within`` for ``groups`` (grown by the marked processes that left them, given
    ``sig`` in their turn) to be gone, sending SIGKILL again on each pass if ``sig`` is SIGKILL;
    ``live`` is kept as those found live on the last pass.  True once they are all gone, False when
    the time is up or ``stop()``."""
    until, delay = time.monotonic() + within, 0.001
    while True:
        marked, now_live = _scan(prefixes, groups)
        for g in marked - groups:  # a setsid'd saver: its turn now
            reaper._signal_group(g, sig)
        groups |= marked
        live |= now_live | marked  # grown, then cut: a Ctrl-C in between leaves no live one out
        live &= now_live | marked
        if not live:
            return True
        if sig == signal.SIGKILL:  # again on each pass: what a SIGTERMed process forked as it died
            for g in live:
                reaper._signal_group(g, signal.SIGKILL)
        now = time.monotonic()
        if now >= until or stop():
            return False
        time.sleep(min(delay, max(0.0, until - now)))
        delay = min(delay * 2, 0.05)


def _scan(prefixes: tuple[bytes, ...], groups: Collection[int]) -> tuple[set[int], set[int]]:
    """One pass over ``/proc``: (the process groups of the live processes whose environment holds a
    marker under one of ``prefixes``, those of ``groups`` that still have a live member); sleuth's
    own group is never among them."""
    me = os.getpgid(0)
    marked: set[int] = set()
    live: set[int] = set()
    try:
        candidates = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return marked, live
    for pid in candidates:
        st = reaper.stat(pid)
        if st is None or st[0] in ("Z", "X") or st[2] == me:
            continue
        if st[2] in groups:
            live.add(st[2])
        if st[2] in marked:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:  # gone, or not ours to read
            continue
        if any(v.startswith(prefixes) for v in environ.split(b"\0")):
            marked.add(st[2])
    return marked, live


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
