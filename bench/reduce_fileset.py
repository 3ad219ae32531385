"""sleuth reduce's own cost per candidate on a ``file_set`` of N files (the leftover of stop 29).

The workload is trivial: ``check.py`` fails (exit 1) when one marker file, in the middle of the
directory, is among the kept ones, so the reduction ends at that one file.  Each round runs a whole
reduction in this process (``sleuth.reduce.session.load`` then ``start``, ``--jobs 1``, one
baseline trial) for every N, interleaved, with timers wrapped around sleuth's own steps:

  * ``load``: the spec read and validated, the directory listed and every file hashed;
  * ``baseline scratch``: the baseline's scratch copy laid out (all N files) and removed;
  * ``scratch setup`` / ``teardown`` per candidate: its scratch copy laid out / removed once judged;
  * ``materialize``: a point made a candidate (argv, files, its content hash), per candidate;
  * ``journal``: a step's ``candidate`` event (scrubbed, values cut short) and the progress event
    (its values rendered);
  * ``scrub``: every value scrubbed for the journal and the progress events (what ``journal``
    shows of it too), per candidate;
  * ``search``: the fixpoint search's own ``propose``/``observe``, per candidate;
  * ``finish``: the bundle, trace, summary and the scrub pass at the end;
  * ``wall``: the whole reduction, and ``wall/cand`` that divided by the candidates run (each runs
    one ``python check.py``: about 20 ms of it is the workload's start).

Figures are the median over the rounds with the spread (min-max), in milliseconds.  ``--profile``
adds a cProfile of one reduction at the largest N (the main thread; the scratch copy is laid out
in the engine's worker thread, so ``build_workdir`` is profiled apart, once).  Nothing is asserted.

Usage: python bench/reduce_fileset.py [--quick] [--rounds 3] [--sizes 1000,10000,50000] [--against SRC]
       [--profile] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sleuth.reduce import driver as drv
from sleuth.reduce import finish as fin
from sleuth.reduce import fixpoint, scrub, session

CHECK = "import os, sys\nsys.exit(1 if os.path.exists(os.path.join(sys.argv[1], sys.argv[2])) else 0)\n"
PHASES = ("load", "baseline scratch", "scratch setup", "teardown", "materialize", "journal", "scrub", "search",
          "finish", "wall", "wall/cand")  # fmt: skip


def make_workload(root: Path, n: int) -> tuple[Path, str]:
    """``root`` with ``shards/`` (n files), ``check.py`` and ``spec.yaml``; the marker's name."""
    shards = root / "shards"
    shards.mkdir(parents=True)
    for i in range(n):
        (shards / f"shard-{i:06d}.bin").write_bytes(b"x%d\n" % i)
    marker = f"shard-{n // 2:06d}.bin"
    (root / "check.py").write_text(CHECK)
    (root / "spec.yaml").write_text(
        "name: fileset\n"
        f"workload:\n  command: [{sys.executable!r}, check.py, '{{SHARDS}}', {marker!r}]\n  timeout: 60\n"
        "oracle: {kind: exit_code}\n"
        "budget: {baseline_trials: 1, trials_per_candidate: 1, max_trials: 10000}\n"
        "axes:\n  - {name: SHARDS, kind: file_set, path: shards}\n"
    )
    return root / "spec.yaml", marker


class Timers:
    """Seconds spent in each wrapped step (any thread), and how many calls."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def wrap(self, owner: Any, attr: str, phase: str | Callable[..., str]) -> Callable[[], None]:
        """Time ``owner.attr`` under ``phase`` (a function of the call's arguments); undo."""
        orig = getattr(owner, attr)

        def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return orig(*a, **kw)
            finally:
                name = phase(*a, **kw) if callable(phase) else phase
                with self._lock:
                    self.total[name] += time.perf_counter() - t0
                    self.calls[name] += 1

        setattr(owner, attr, timed)
        return lambda: setattr(owner, attr, orig)


def _callers(attr: str) -> list[Any]:
    """The modules of the driver that call ``attr`` by its global name: the driver and its parts (a
    tree from before the driver was split, under ``--against``, has the driver alone)."""
    found = []
    for name in ("driver", "trials", "baseline", "verdicts"):
        try:
            module = importlib.import_module(f"sleuth.reduce.{name}")
        except ImportError:
            continue
        if hasattr(module, attr):
            found.append(module)
    return found


@contextmanager
def instrumented(timers: Timers) -> Iterator[None]:
    # the baseline's scratch copy is the first one laid out (and removed, in Driver.baseline)
    seen: dict[str, int] = defaultdict(int)

    def first(kind: str, then: str) -> Callable[..., str]:
        def name(*_a: Any, **_kw: Any) -> str:
            seen[then] += 1
            return "baseline scratch" if seen[then] == 1 else then

        return name

    undo = [
        *(timers.wrap(m, "build_workdir", first("s", "scratch setup")) for m in _callers("build_workdir")),
        timers.wrap(drv.Driver, "_drop_work", first("t", "teardown")),
        *(timers.wrap(m, "materialize", "materialize") for m in _callers("materialize")),
        timers.wrap(drv.Driver, "_journal", "journal"),
        timers.wrap(drv.Driver, "_render", "journal"),
        timers.wrap(scrub.Scrubber, "obj", "scrub"),  # the journal's and the progress events'
        timers.wrap(fixpoint.Reduction, "propose", "search"),
        timers.wrap(fixpoint.Reduction, "observe", "search"),
        timers.wrap(fin, "finish", "finish"),
    ]
    try:
        yield
    finally:
        for u in reversed(undo):
            u()


def one_run(spec: Path, out: Path, events: list[str]) -> dict[str, float]:
    """One whole reduction in this process; milliseconds per phase (per candidate where so named)."""
    timers = Timers()

    def on_event(kind: str, data: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        events.append(kind)
        timers.total["journal"] += time.perf_counter() - t0

    with instrumented(timers):
        t0 = time.perf_counter()
        loaded = session.load(spec, output=out)
        timers.total["load"] = time.perf_counter() - t0
        result = session.start(loaded, output=out, jobs=1, gpus=(), one_minimal=False, on_event=on_event)
        wall = time.perf_counter() - t0
    cands = max(1, timers.calls["scratch setup"])
    row = {
        "load": timers.total["load"] * 1e3,
        "baseline scratch": timers.total["baseline scratch"] * 1e3,
        "finish": timers.total["finish"] * 1e3,
        "wall": wall * 1e3,
        "wall/cand": wall * 1e3 / cands,
        "candidates": float(cands),
        "final": float(len(result.doc.get("final", {}).get("axes", {}).get("SHARDS", []))),
    }
    for per in ("scratch setup", "teardown", "materialize", "journal", "scrub", "search"):
        row[per] = timers.total[per] * 1e3 / cands
    return row


def profile_once(spec: Path, out: Path) -> None:
    loaded = session.load(spec, output=out / "p0")
    prof = cProfile.Profile()
    prof.enable()
    session.start(loaded, output=out / "p1", jobs=1, gpus=(), one_minimal=False, on_event=lambda k, d: None)
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(25)
    print("\ncProfile of one reduction (main thread), by cumulative time:\n" + s.getvalue())
    from sleuth.reduce.plan import materialize
    from sleuth.reduce.scratch import build_workdir

    cand = materialize(loaded.plan, loaded.plan.initial_point())
    prof = cProfile.Profile()
    prof.enable()
    build_workdir(loaded.plan, cand, out / "work")
    shutil.rmtree(out / "work")
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(12)
    print("cProfile of one scratch copy of all the files laid out and removed, by own time:\n" + s.getvalue())


def child(n: int, spec: Path, out: Path, src: str | None) -> dict[str, float]:
    """One reduction in a fresh interpreter (sleuth imported from ``src`` when given)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    cmd = [sys.executable, __file__, "--one", str(spec), "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"N = {n}: the reduction failed:\n{done.stderr[-2000:]}")
    row: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 and 10,000 files, 2 rounds")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--sizes", default=None, help="comma-separated file counts (default 1000,10000,50000)")
    ap.add_argument("--against", default=None, metavar="SRC",
                    help="another checkout's src/ (e.g. `git archive` of the old commit): its figures "
                         "are measured in the same rounds, interleaved, and printed beside")  # fmt: skip
    ap.add_argument("--profile", action="store_true", help="also print a cProfile at the largest size")
    ap.add_argument("--tmp", default=None, help="where the workloads and run dirs go")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_run(Path(args.one), Path(args.out), [])))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else \
        ([1000, 10000] if args.quick else [1000, 10000, 50000])  # fmt: skip
    rounds = args.rounds or (2 if args.quick else 3)
    trees: dict[str, str | None] = {"this": None}
    if args.against:
        trees = {"against": str(Path(args.against).resolve()), "this": None}
    root = Path(tempfile.mkdtemp(prefix="sleuth-fileset-", dir=args.tmp))
    try:
        specs = {n: make_workload(root / f"w{n}", n)[0] for n in sizes}
        rows: dict[tuple[str, int], list[dict[str, float]]] = {(t, n): [] for t in trees for n in sizes}
        for r in range(rounds):
            for n in sizes:
                for t, src in trees.items():
                    out = root / f"out-{t}-{n}-{r}"
                    rows[t, n].append(child(n, specs[n], out, src))
                    shutil.rmtree(out, ignore_errors=True)
        print(f"sleuth reduce, file_set of N files, one marker needed: {rounds} round(s), milliseconds, "
              "median (min-max); the rows from materialize down to search are per candidate")  # fmt: skip
        for n in sizes:
            got = rows["this", n]
            c = statistics.median(g["candidates"] for g in got)
            final = statistics.median(g["final"] for g in got)
            print(f"\nN = {n:,}: {c:.0f} candidates, final {final:.0f} file(s)")
            print(f"  {'':<18} " + "  ".join(f"{t:>26}" for t in trees))
            for ph in PHASES:
                cells = []
                for t in trees:
                    vals = [g[ph] for g in rows[t, n]]
                    cells.append(
                        f"{statistics.median(vals):>10.1f} ({min(vals):.1f}-{max(vals):.1f})".rjust(26)
                    )
                print(f"  {ph:<18} " + "  ".join(cells))
        if args.profile:
            profile_once(specs[sizes[-1]], root / "prof")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
