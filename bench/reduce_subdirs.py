"""sleuth reduce's scratch copy per candidate when the workload's directory has a subdirectory of N
files (a dataset, a cache): ``data/`` with N files, a small ``out/`` and ``state/``, and a
``file_lines`` axis (``lines.txt``) so that every candidate runs in a scratch copy.

Each measurement is a fresh interpreter (sleuth imported from ``--against SRC`` or from this
checkout, interleaved round by round) that loads the spec (``sleuth.reduce.session.load``) and lays
out the initial candidate's scratch copy ``--candidates`` times with one ``PrivateCopies``, as the
driver does (``build_workdir``), removing each as the driver does once a candidate is judged
(``PrivateCopies.discard``; ``shutil.rmtree`` in a checkout from before it):

  * ``first setup``: the first candidate's (this one lists the tree, and makes the reduction's
    symlinks where the layout links files);
  * ``setup`` / ``teardown``: each later candidate's scratch copy laid out / removed, the median.

Figures are the median over the rounds with the spread (min-max), in milliseconds.  ``--entries``
sets ``layout.LAYOUT_ENTRIES`` in this checkout's runs (what a larger budget would cost).  Nothing
is asserted.

Usage: python bench/reduce_subdirs.py [--rounds 3] [--sizes 1000,10000,50000] [--candidates 5]
       [--against SRC] [--entries N] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from _scratch_ab import PHASES, child, print_table, time_layouts  # bench/ is sys.path[0]
from _scratch_ab import trees as checkouts


def make_workload(root: Path, n: int) -> Path:
    """``root`` with ``data/`` (n files in 100s), ``out/``, ``state/``, ``lines.txt`` and the spec."""
    for i in range(n):
        d = root / "data" / f"part-{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(parents=True)
        (d / f"{i:06d}.bin").write_bytes(b"x%d\n" % i)
    (root / "out").mkdir()
    (root / "out" / "metrics.json").write_text("{}")
    (root / "state").mkdir()
    (root / "state" / "progress.json").write_text("{}")
    (root / "lines.txt").write_text("".join(f"l{i}\n" for i in range(20)))
    (root / "main.py").write_text("import sys\nsys.exit(0)\n")
    (root / "spec.yaml").write_text(
        "name: subdirs\n"
        f"workload:\n  command: [{sys.executable!r}, main.py, '{{LINES}}']\n  timeout: 60\n"
        "oracle: {kind: exit_code}\n"
        "axes:\n  - {name: LINES, kind: file_lines, path: lines.txt}\n"
    )
    return root / "spec.yaml"


def one_run(spec: Path, out: Path, candidates: int, entries: int | None) -> dict[str, float]:
    """Lay out and remove ``candidates`` scratch copies in this process; milliseconds."""
    if entries is not None:
        from sleuth.reduce import layout

        layout.LAYOUT_ENTRIES = entries  # type: ignore[misc,unused-ignore]
    return time_layouts(spec, out, candidates)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="1000,10000,50000", help="comma-separated file counts in data/")
    ap.add_argument("--candidates", type=int, default=5, help="scratch copies laid out per run (at least 2)")
    ap.add_argument("--against", default=None, metavar="SRC",
                    help="another checkout's src/ (e.g. `git archive` of the old commit): its figures "
                         "are measured in the same rounds, interleaved, and printed beside")  # fmt: skip
    ap.add_argument("--entries", type=int, default=None, help="layout.LAYOUT_ENTRIES in this checkout's runs")
    ap.add_argument("--tmp", default=None, help="where the workloads and scratch copies go")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    candidates = max(2, args.candidates)
    if args.one:
        print(json.dumps(one_run(Path(args.one), Path(args.out), candidates, args.entries)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    trees = checkouts(args.against)
    root = Path(tempfile.mkdtemp(prefix="sleuth-subdirs-", dir=args.tmp))
    try:
        specs = {n: make_workload(root / f"w{n}", n) for n in sizes}
        rows: dict[tuple[str, int], list[dict[str, float]]] = {(t, n): [] for t in trees for n in sizes}
        for r in range(args.rounds):
            for n in sizes:
                for t, src in trees.items():
                    out = root / f"out-{t}-{n}-{r}"
                    entries = args.entries if src is None else None
                    extra = ["--entries", str(entries)] if entries is not None else []
                    rows[t, n].append(child(__file__, specs[n], out, src, candidates, extra=extra))
                    shutil.rmtree(out, ignore_errors=True)
        print(f"sleuth reduce's scratch copy, data/ of N files: {args.rounds} round(s) of {candidates} "
              "candidates, milliseconds, median (min-max) over the rounds")  # fmt: skip
        for n in sizes:
            print(f"\nN = {n:,}")
            print_table({t: rows[t, n] for t in trees}, PHASES)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
