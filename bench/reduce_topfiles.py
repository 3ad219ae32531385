"""sleuth reduce's scratch copy per candidate when the workload's directory has many files at its top
(a flat folder of configs, shards or checkpoints): ``--small`` files of 4 KiB and ``--big`` files of
8 MiB beside ``main.py`` and a ``file_lines`` axis (``lines.txt``).

Each measurement is a fresh interpreter (sleuth imported from ``--against SRC`` or from this
checkout, interleaved round by round) that loads the spec (``sleuth.reduce.session.load``) and lays
out the initial candidate's scratch copy ``--candidates`` times with one ``PrivateCopies``, as the
driver does (``build_workdir``), removing each as the driver does once a candidate is judged
(``PrivateCopies.discard``; ``shutil.rmtree`` in a checkout from before it):

  * ``first setup``: the first candidate's (it lists the cwd and makes the private copies);
  * ``setup`` / ``teardown``: each later candidate's scratch copy laid out / removed, the median;
  * ``own files`` / ``own MiB``: the files of a later scratch copy with an inode of their own (one
    link: a copy or a clone, made for that candidate) and their bytes.

Figures are the median over the rounds with the spread (min-max).  Nothing is asserted.

Usage: python bench/reduce_topfiles.py [--rounds 3] [--small 2000] [--big 50] [--candidates 4]
       [--against SRC] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from _scratch_ab import PHASES as LAYOUT_PHASES  # bench/ is sys.path[0]
from _scratch_ab import child, print_table, time_layouts
from _scratch_ab import trees as checkouts

PHASES = (*LAYOUT_PHASES, "own files", "own MiB")


def make_workload(root: Path, small: int, big: int) -> Path:
    """``root`` with ``small`` files of 4 KiB and ``big`` of 8 MiB, ``main.py``, ``lines.txt``, the spec."""
    root.mkdir(parents=True)
    for i in range(small):
        (root / f"cfg-{i:05d}.txt").write_bytes(b"%05d" % i + b"x" * 4091)
    for i in range(big):
        (root / f"shard-{i:03d}.bin").write_bytes(bytes([i % 256]) * (8 << 20))
    (root / "lines.txt").write_text("".join(f"l{i}\n" for i in range(20)))
    (root / "main.py").write_text("import sys\nsys.exit(0)\n")
    (root / "spec.yaml").write_text(
        "name: topfiles\n"
        f"workload:\n  command: [{sys.executable!r}, main.py, '{{LINES}}']\n  timeout: 60\n"
        "oracle: {kind: exit_code}\n"
        "axes:\n  - {name: LINES, kind: file_lines, path: lines.txt}\n"
    )
    return root / "spec.yaml"


def one_run(spec: Path, out: Path, candidates: int) -> dict[str, float]:
    """Lay out and remove ``candidates`` scratch copies in this process; milliseconds, files, MiB."""
    return time_layouts(spec, out, candidates, own=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--small", type=int, default=2000, help="files of 4 KiB at the cwd's top")
    ap.add_argument("--big", type=int, default=50, help="files of 8 MiB at the cwd's top")
    ap.add_argument("--candidates", type=int, default=4, help="scratch copies laid out per run (at least 2)")
    ap.add_argument("--against", default=None, metavar="SRC",
                    help="another checkout's src/ (e.g. `git archive` of the old commit): its figures "
                         "are measured in the same rounds, interleaved, and printed beside")  # fmt: skip
    ap.add_argument("--tmp", default=None, help="where the workload and scratch copies go")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    candidates = max(2, args.candidates)
    if args.one:
        print(json.dumps(one_run(Path(args.one), Path(args.out), candidates)))
        return 0
    trees = checkouts(args.against)
    root = Path(tempfile.mkdtemp(prefix="sleuth-topfiles-", dir=args.tmp))
    try:
        spec = make_workload(root / "w", args.small, args.big)
        rows: dict[str, list[dict[str, float]]] = {t: [] for t in trees}
        for r in range(args.rounds):
            for t, src in trees.items():
                out = root / f"out-{t}-{r}"
                rows[t].append(child(__file__, spec, out, src, candidates))
                shutil.rmtree(out, ignore_errors=True)
        print(f"sleuth reduce's scratch copy, {args.small:,} files of 4 KiB and {args.big} of 8 MiB at the "
              f"cwd's top: {args.rounds} round(s) of {candidates} candidates; ms, files, MiB: median "
              "(min-max) over the rounds")  # fmt: skip
        print_table(rows, PHASES)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
