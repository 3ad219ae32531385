"""The harness the scratch-copy benches share (``reduce_subdirs.py``, ``reduce_topfiles.py``): lay
out and remove a reduction's scratch copies in a fresh interpreter (this checkout's sleuth, or
another checkout's ``src/`` for an interleaved A/B), and print the phases side by side.

A bench's ``--one SPEC --out DIR`` mode calls :func:`time_layouts` and prints its row as JSON;
:func:`child` runs that mode and reads the row back.  Nothing is asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

#: what every row holds; ``own`` adds "own files" and "own MiB"
PHASES = ("first setup", "setup", "teardown")


def time_layouts(spec: Path, out: Path, candidates: int, *, own: bool = False) -> dict[str, float]:
    """Lay out and remove ``candidates`` scratch copies of ``spec``'s cwd in this process: the first
    one's setup, the later ones' median setup and teardown (milliseconds); with ``own``, the files of
    the second copy's top with an inode of their own (one link: made for that candidate) and their MiB."""
    from sleuth.reduce import scratch, session
    from sleuth.reduce.plan import materialize

    loaded = session.load(spec, output=out)
    cand = materialize(loaded.plan, loaded.plan.initial_point())
    run = out / "run"
    copies = scratch.PrivateCopies(run / scratch.PRIVATE_DIR)
    # as the driver gives a judged candidate's scratch copy back (a checkout from before it: rmtree)
    discard = getattr(copies, "discard", shutil.rmtree)
    setup: list[float] = []
    teardown: list[float] = []
    row: dict[str, float] = {}
    for k in range(candidates):
        work = run / "candidates" / f"c{k}" / "work"
        t0 = time.perf_counter()
        scratch.build_workdir(loaded.plan, cand, work, copies)
        setup.append(time.perf_counter() - t0)
        if own and k == 1:  # not timed
            sts = [
                e.stat(follow_symlinks=False) for e in os.scandir(work) if e.is_file(follow_symlinks=False)
            ]
            row["own files"] = float(sum(1 for st in sts if st.st_nlink == 1))
            row["own MiB"] = sum(st.st_size for st in sts if st.st_nlink == 1) / (1 << 20)
        t1 = time.perf_counter()
        discard(work)
        teardown.append(time.perf_counter() - t1)
    copies.remove()
    return {
        "first setup": setup[0] * 1e3,
        "setup": statistics.median(setup[1:]) * 1e3,
        "teardown": statistics.median(teardown[1:]) * 1e3,
        **row,
    }


def child(
    bench: str, spec: Path, out: Path, src: str | None, candidates: int, *, extra: Sequence[str] = ()
) -> dict[str, float]:
    """``bench --one spec`` in a fresh interpreter (sleuth imported from ``src`` when given): its row."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    cmd = [
        sys.executable,
        bench,
        "--one",
        str(spec),
        "--out",
        str(out),
        "--candidates",
        str(candidates),
        *extra,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{spec.parent}: the run failed:\n{done.stderr[-2000:]}")
    row: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return row


def trees(against: str | None) -> dict[str, str | None]:
    """The checkouts measured: this one, and ``--against``'s ``src/`` first when given."""
    if against:
        return {"against": str(Path(against).resolve()), "this": None}
    return {"this": None}


def print_table(rows: Mapping[str, Sequence[Mapping[str, float]]], phases: Sequence[str]) -> None:
    """One line a phase, one column a checkout: median (min-max) over the rounds."""
    print(f"  {'':<12} " + "  ".join(f"{t:>24}" for t in rows))
    for ph in phases:
        cells = []
        for runs in rows.values():
            vals = [g[ph] for g in runs]
            cells.append(f"{statistics.median(vals):>9.1f} ({min(vals):.1f}-{max(vals):.1f})".rjust(24))
        print(f"  {ph:<12} " + "  ".join(cells))
