"""The engine's cost next to plain Python, measured side by side (issue 9, issue 8 row 10).

Every measurement runs once per round, the rounds interleave them (so load drifts hit all alike),
and each figure is the median over the rounds with its spread (min-max).  Anchors come from the
same run: a bare ``subprocess.run`` loop, a plain 8-thread pool of ``subprocess.run``, and
``python -c pass``.  Targets are printed beside the figures; nothing here asserts anything.

  * per trial, ``sleuth run --trials N -- true`` against a bare loop: wall and CPU (the sleuth
    process and its children), from (T(N) - T(1)) / (N - 1) so start-up is not spread over trials;
    target: CPU <= 0.8 ms over bare; the bare loop writing the same files shows the files' share;
  * ``sleuth run --jobs 8 --trials 1000 -- true`` against a plain 8-thread pool, whole commands
    (both start an interpreter); target: <= 1.3x;
  * peak RSS of ``--trials 100000`` (stopped with SIGINT after a few seconds: it would take
    minutes) against ``--trials 1000`` run to the end; target: <= 1.2x;
  * start-up of every verb next to ``python -c pass``;
  * ``sleuth run`` on a terminal (a pty, the live table and bar) against piped output;
  * kill latency: a tree that dies at the first SIGTERM, ``--timeout 0.5 --kill-grace 2``: the
    time from the timeout to the trial's end (target: far below the grace).

Every trial writes files (its directory, stdout, stderr, result.json, a journal line): on a busy
disk those dominate, which the "pool writing the same files" anchor shows; ``--tmp /dev/shm``
takes the disk out.  The run dirs are kept until the end (moved aside between steps): on ext4
without a journal, inodes deleted less than about 30 s ago are skipped one by one when new ones
are allocated, so deleting the previous step's thousands of files made each step's file creation
several times slower (measured here: the pool writing the files took 1.1-2.0 s right after such a
delete, 0.5-0.8 s without).  The floor row adds sleuth's start-up (``--trials 1`` less ``python -c pass``)
to that anchor: what any tool that keeps every log and starts like sleuth would take; when it is
above 1.3x the pool, the whole-command target cannot be met on that disk.

Every Python here runs with its bytecode compiled first, into a private ``PYTHONPYCACHEPREFIX``, as
an installed package has it (``pip install`` compiles; an editable checkout run with
``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile sleuth's modules on every start).

Usage: python bench/overhead.py [--quick] [--rounds 5] [--trials 300] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import itertools
import os
import pty
import resource
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

from sleuth.cli import VERBS

SLEUTH = [sys.executable, "-m", "sleuth"]
POOL = (
    "import subprocess, sys\nfrom concurrent.futures import ThreadPoolExecutor\n"
    "with ThreadPoolExecutor(8) as ex:\n"
    "    list(ex.map(lambda _: subprocess.run(['true']), range(int(sys.argv[1]))))\n"
)
#: the pool again, each trial also doing the files sleuth keeps (its directory, stdout, stderr, an
#: atomic result.json, a journal line): the floor for a tool that keeps every log
POOL_FILES = (
    "import json, os, subprocess, sys\nfrom concurrent.futures import ThreadPoolExecutor\n"
    "root = sys.argv[2]\nos.makedirs(root, exist_ok=True)\n"
    "jfd = os.open(root + '/journal.jsonl', os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)\n"
    "def one(i):\n"
    "    d = f'{root}/{i:05d}'\n    os.mkdir(d)\n"
    "    o = os.open(d + '/stdout', os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)\n"
    "    e = os.open(d + '/stderr', os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)\n"
    "    subprocess.run(['true'], stdout=o, stderr=e, stdin=subprocess.DEVNULL, start_new_session=True)\n"
    "    os.close(o)\n    os.close(e)\n"
    "    rec = json.dumps({'id': i, 'outcome': 'pass', 'argv': ['true']})\n"
    "    t = d + '/.result.json.tmp'\n"
    "    f = os.open(t, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)\n"
    "    os.write(f, rec.encode())\n    os.close(f)\n    os.rename(t, d + '/result.json')\n"
    "    os.write(jfd, (rec + '\\n').encode())\n"
    "with ThreadPoolExecutor(8) as ex:\n    list(ex.map(one, range(int(sys.argv[1]))))\n"
)
BARE = "import subprocess, sys\nfor _ in range(int(sys.argv[1])):\n    subprocess.run(['true'])\n"
#: the bare loop doing the pool's files for each trial: the per-trial CPU of a tool that keeps every log
BARE_FILES = POOL_FILES.replace(
    "with ThreadPoolExecutor(8) as ex:\n    list(ex.map(one, range(int(sys.argv[1]))))\n",
    "for i in range(int(sys.argv[1])):\n    one(i)\n",
)
PEAK = (
    "import resource, signal, subprocess, sys, time\n"
    "p = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "limit = float(sys.argv[1])\n"
    "try:\n    p.wait(timeout=limit if limit > 0 else None)\n"
    "except subprocess.TimeoutExpired:\n    p.send_signal(signal.SIGINT)\n    p.wait()\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)
TREE = (
    "import subprocess, time\n"
    "[subprocess.Popen(['sleep', '1000']) for _ in range(3)]\n"
    "subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
    "time.sleep(1000)\n"
)


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime, r.ru_stime


def run(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, user and system CPU s of the command and everything it waited for)."""
    (u0, s0), t0 = _cpu(), time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    wall = time.perf_counter() - t0
    u1, s1 = _cpu()
    return wall, u1 - u0, s1 - s0


def compiled_bytecode(root: str, env: dict[str, str]) -> None:
    """Every Python started with ``env`` reads bytecode compiled once, into ``root`` (see the docstring)."""
    import sleuth

    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = root
    packages = [os.path.dirname(str(__import__(name).__file__)) for name in ("click", "rich")]
    packages.append(os.path.dirname(str(sleuth.__file__)))
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    # the standard library's bytecode comes with the interpreter; a warm-up start writes the rest
    subprocess.run([*SLEUTH, "--version"], env=env, check=True, stdout=subprocess.DEVNULL)


def run_pty(argv: Sequence[str], env: dict[str, str]) -> float:
    """Wall time of ``argv`` with stdout/stderr on a terminal (its output drained as it comes)."""
    master, slave = pty.openpty()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                if not os.read(master, 65536):
                    break
            except OSError:  # EIO: the other side is closed
                break
        elif proc.poll() is not None:
            break
    proc.wait()
    os.close(master)
    return time.perf_counter() - t0


class Bench:
    """Interleaved rounds of named measurements."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.steps: list[tuple[str, Callable[[], dict[str, float]]]] = []
        self.values: dict[str, list[float]] = {}

    def add(self, name: str, step: Callable[[], dict[str, float]]) -> None:
        self.steps.append((name, step))

    def go(self) -> None:
        for r in range(self.rounds):
            for _name, step in self.steps:
                for key, value in step().items():
                    self.values.setdefault(key, []).append(value)
            print(f"  round {r + 1}/{self.rounds} done", file=sys.stderr, flush=True)

    def med(self, key: str) -> float:
        return statistics.median(self.values[key])

    def spread(self, key: str, scale: float) -> str:
        v = self.values[key]
        return f"{min(v) * scale:.2f}-{max(v) * scale:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer and smaller runs (a smoke test of the bench)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 5, quick 3)")
    ap.add_argument("--trials", type=int, default=None, help="trials for the per-trial figures (default 300)")
    ap.add_argument(
        "--rss-seconds", type=float, default=None, help="how long --trials 100000 runs (default 8)"
    )
    ap.add_argument("--tmp", default=None, help="where the run dirs go (default: the system's temp dir)")
    args = ap.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    n = args.trials or (60 if args.quick else 300)
    pool_n = 200 if args.quick else 1000
    rss_s = args.rss_seconds or (3.0 if args.quick else 8.0)
    tmp = tempfile.mkdtemp(prefix="sleuth-bench-", dir=args.tmp)
    pycache = tempfile.mkdtemp(prefix="sleuth-bench-pycache-")
    env = {**os.environ, "SLEUTH_OUTPUT": tmp, "COLUMNS": "120", "TERM": os.environ.get("TERM", "xterm")}
    compiled_bytecode(pycache, env)
    sl = [*SLEUTH, "run", "--name", "bench"]

    used = tempfile.mkdtemp(prefix="sleuth-bench-used-", dir=args.tmp)
    steps = itertools.count()

    def fresh() -> None:
        # moved aside, deleted at the end: deleting thousands of files here would slow the next
        # step's file creation (see the docstring)
        os.rename(tmp, os.path.join(used, str(next(steps))))
        os.makedirs(tmp)

    # the same steps with the run dirs in memory (tmpfs): the disk's share of the per-trial files
    shm = "/dev/shm" if args.tmp is None and os.access("/dev/shm", os.W_OK) else None
    shm_tmp = tempfile.mkdtemp(prefix="sleuth-bench-", dir=shm) if shm else ""
    shm_env = {**env, "SLEUTH_OUTPUT": shm_tmp}

    def shm_fresh() -> None:
        shutil.rmtree(shm_tmp)  # tmpfs frees inodes at once: no slow-down to avoid here
        os.makedirs(shm_tmp)

    def timed(key: str, argv: Sequence[str], *, in_memory: bool = False) -> Callable[[], dict[str, float]]:
        def step() -> dict[str, float]:
            wall, user, system = run(argv, shm_env if in_memory else env)
            (shm_fresh if in_memory else fresh)()
            return {
                f"{key}.wall": wall,
                f"{key}.cpu": user + system,
                f"{key}.user": user,
                f"{key}.sys": system,
            }

        return step

    def peak(key: str, argv: Sequence[str], limit: float) -> Callable[[], dict[str, float]]:
        def step() -> dict[str, float]:
            out = subprocess.run(
                [sys.executable, "-c", PEAK, str(limit), *argv],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            fresh()
            return {key: float(out.stdout.split()[-1]) / 1024}  # MiB

        return step

    def on_pty(key: str, argv: Sequence[str]) -> Callable[[], dict[str, float]]:
        def step() -> dict[str, float]:
            wall = run_pty(argv, env)
            fresh()
            return {key: wall}

        return step

    b = Bench(rounds)
    b.add("python", timed("py", [sys.executable, "-c", "pass"]))
    b.add("bare", timed("bare", [sys.executable, "-c", BARE, str(n)]))
    b.add(
        "bare-files", timed("barefiles", [sys.executable, "-c", BARE_FILES, str(n), os.path.join(tmp, "bf")])
    )
    b.add("run1", timed("run1", [*sl, "--trials", "1", "--", "true"]))
    b.add("runN", timed("runN", [*sl, "--trials", str(n), "--", "true"]))
    b.add("runN-json", timed("runNjson", [*sl, "--json", "--trials", str(n), "--", "true"]))
    b.add("pool", timed("pool", [sys.executable, "-c", POOL, str(pool_n)]))
    b.add(
        "pool-files",
        timed("poolfiles", [sys.executable, "-c", POOL_FILES, str(pool_n), os.path.join(tmp, "pf")]),
    )
    b.add("run-j8", timed("runj8", [*sl, "--jobs", "8", "--trials", str(pool_n), "--", "true"]))
    b.add(
        "run-j8-json",
        timed("runj8json", [*sl, "--json", "--jobs", "8", "--trials", str(pool_n), "--", "true"]),
    )
    if shm:
        b.add("pool-files-shm", timed("poolfilesshm", [sys.executable, "-c", POOL_FILES, str(pool_n),
                                                       os.path.join(shm_tmp, "pf")], in_memory=True))  # fmt: skip
        b.add("run1-shm", timed("run1shm", [*sl, "--json", "--trials", "1", "--", "true"], in_memory=True))
        b.add(
            "run-j8-json-shm",
            timed("runj8jsonshm", [*sl, "--json", "--jobs", "8", "--trials", str(pool_n), "--", "true"],
                  in_memory=True),
        )  # fmt: skip
    b.add("pty", on_pty("pty", [*sl, "--trials", str(n), "--", "true"]))
    b.add("piped", timed("piped", [*sl, "--trials", str(n), "--", "true"]))
    b.add("rss-small", peak("rss1000", [*sl, "--jobs", "8", "--trials", "1000", "--", "true"], 0))
    b.add("rss-big", peak("rss100000", [*sl, "--jobs", "8", "--trials", "100000", "--", "true"], rss_s))
    # every verb's --help: what a verb imports before it can say how it is used
    verbs = {"--version": ["--version"]} | {f"{v} --help": [v, "--help"] for v in VERBS}
    for label, verb in verbs.items():
        b.add(label, timed(f"start {label}", [*SLEUTH, *verb]))
    kill_argv = [
        *sl,
        "--trials",
        "1",
        "--timeout",
        "0.5",
        "--kill-grace",
        "2",
        "--",
        sys.executable,
        "-c",
        TREE,
    ]
    b.add("kill", timed("kill", kill_argv))
    print(
        f"sleuth overhead bench: {rounds} interleaved rounds, N={n}, pool N={pool_n} (median, min-max)",
        file=sys.stderr,
    )
    try:
        b.go()
    finally:
        for path in (tmp, used, pycache, *([shm_tmp] if shm else [])):
            shutil.rmtree(path, ignore_errors=True)

    ms = 1e3
    bare_wall = (b.med("bare.wall") - b.med("py.wall")) / n
    bare_cpu = (b.med("bare.cpu") - b.med("py.cpu")) / n
    per_wall = (b.med("runN.wall") - b.med("run1.wall")) / (n - 1)
    per_cpu = (b.med("runN.cpu") - b.med("run1.cpu")) / (n - 1)
    json_cpu = (b.med("runNjson.cpu") - b.med("run1.cpu")) / (n - 1)
    files_cpu = (b.med("barefiles.cpu") - b.med("py.cpu")) / n
    rows: list[tuple[str, str, str, str, str, str]] = []

    def row(
        name: str, value: str, spread: str = "", anchor: str = "", ratio: str = "", *, target: str = ""
    ) -> None:
        rows.append((name, value, spread, anchor, ratio, target))

    row("bare subprocess.run(true), ms/trial wall", f"{bare_wall * ms:.3f}")
    row("bare subprocess.run(true), ms/trial CPU", f"{bare_cpu * ms:.3f}")
    row(
        f"sleuth run --trials {n}, ms/trial wall",
        f"{per_wall * ms:.3f}",
        "",
        f"{bare_wall * ms:.3f}",
        f"{per_wall / bare_wall:.2f}x",
    )
    row(
        f"sleuth run --trials {n}, ms/trial CPU",
        f"{per_cpu * ms:.3f}",
        "",
        f"{bare_cpu * ms:.3f}",
        f"+{(per_cpu - bare_cpu) * ms:.3f}",
        target="<= +0.8 ms",
    )
    row(
        "  same with --json, ms/trial CPU",
        f"{json_cpu * ms:.3f}",
        "",
        f"{bare_cpu * ms:.3f}",
        f"+{(json_cpu - bare_cpu) * ms:.3f}",
        target="<= +0.8 ms",
    )
    row(
        "  anchor: the bare loop writing the same files, ms/trial CPU",
        f"{files_cpu * ms:.3f}",
        "",
        "",
        f"+{(files_cpu - bare_cpu) * ms:.3f}",
        target="(the files' share of the +; disk-bound, see the docstring)",
    )
    row(
        f"sleuth run --jobs 8 --trials {pool_n}, s",
        f"{b.med('runj8.wall'):.3f}",
        b.spread("runj8.wall", 1),
        f"{b.med('pool.wall'):.3f}",
        f"{b.med('runj8.wall') / b.med('pool.wall'):.2f}x",
        target="<= 1.3x",
    )
    row(
        "  same with --json (no live table), s",
        f"{b.med('runj8json.wall'):.3f}",
        b.spread("runj8json.wall", 1),
        f"{b.med('pool.wall'):.3f}",
        f"{b.med('runj8json.wall') / b.med('pool.wall'):.2f}x",
        target="<= 1.3x",
    )
    j8 = b.med("runj8json.wall") - b.med("run1.wall")
    pool = b.med("pool.wall") - b.med("py.wall")
    row(
        "  --json less start-up (T - T(--trials 1)), s",
        f"{j8:.3f}",
        "",
        f"{pool:.3f}",
        f"{j8 / pool:.2f}x",
        target="<= 1.3x (anchor less python -c pass)",
    )
    row(
        "  --json against the pool writing the same files, s",
        f"{b.med('runj8json.wall'):.3f}",
        "",
        f"{b.med('poolfiles.wall'):.3f}",
        f"{b.med('runj8json.wall') / b.med('poolfiles.wall'):.2f}x",
        target="(anchor: pool + dir, stdout, stderr, result.json, journal line per trial)",
    )
    start = b.med("run1.wall") - b.med("py.wall")
    floor = b.med("poolfiles.wall") + start
    row(
        "  floor: the pool writing the same files + sleuth's start-up, s",
        f"{floor:.3f}",
        "",
        f"{b.med('pool.wall'):.3f}",
        f"{floor / b.med('pool.wall'):.2f}x",
        target="(above 1.3x: the target needs fewer files or a shorter start-up)",
    )
    if shm:
        j8shm = b.med("runj8jsonshm.wall")
        row(
            f"  --json, run dirs on tmpfs ({shm}), s",
            f"{j8shm:.3f}",
            b.spread("runj8jsonshm.wall", 1),
            f"{b.med('pool.wall'):.3f}",
            f"{j8shm / b.med('pool.wall'):.2f}x",
            target="<= 1.3x",
        )
        shm_floor = b.med("poolfilesshm.wall") + b.med("run1shm.wall") - b.med("py.wall")
        row(
            "  floor on tmpfs: the pool writing the same files there + sleuth's start-up, s",
            f"{shm_floor:.3f}",
            "",
            f"{b.med('pool.wall'):.3f}",
            f"{shm_floor / b.med('pool.wall'):.2f}x",
        )
    row(
        f"  anchor: 8-thread pool of subprocess.run x{pool_n}, s",
        f"{b.med('pool.wall'):.3f}",
        b.spread("pool.wall", 1),
    )
    for key, label in (("runj8", f"sleuth run --jobs 8 x{pool_n}"), ("poolfiles", "pool writing the files"),
                       ("pool", "pool")):  # fmt: skip
        row(f"  CPU user + system, {label}, s", f"{b.med(key + '.user'):.2f}+{b.med(key + '.sys'):.2f}")
    row(
        "peak RSS --trials 100000 --jobs 8, MiB",
        f"{b.med('rss100000'):.1f}",
        b.spread("rss100000", 1),
        f"{b.med('rss1000'):.1f}",
        f"{b.med('rss100000') / b.med('rss1000'):.2f}x",
        target="<= 1.2x",
    )
    row(f"  (stopped by SIGINT after {rss_s:g} s; anchor: --trials 1000 to the end)", "")
    py = b.med("py.wall")
    row("python -c pass, s", f"{py:.3f}", b.spread("py.wall", 1))
    for label in verbs:
        k = f"start {label}.wall"
        row(f"sleuth {label}, s", f"{b.med(k):.3f}", b.spread(k, 1), f"{py:.3f}", f"+{b.med(k) - py:.3f}")
    row(
        f"sleuth run --trials {n} on a pty, s",
        f"{b.med('pty'):.3f}",
        b.spread("pty", 1),
        f"{b.med('piped.wall'):.3f}",
        f"{b.med('pty') / b.med('piped.wall'):.2f}x",
        target="(anchor: piped)",
    )
    kill = b.med("kill.wall") - b.med("run1.wall") - 0.5
    row(
        "kill latency: timeout 0.5 s, grace 2 s, s",
        f"{kill:.3f}",
        "",
        "2.000",
        f"{kill / 2:.2f} of grace",
        target="far below the grace",
    )
    width = max(len(r[0]) for r in rows) + 2
    print(f"{'measure':<{width}}{'median':>10}{'min-max':>16}{'anchor':>10}{'ratio':>16}  target")
    for name, value, spread, anchor, ratio, target in rows:
        print(f"{name:<{width}}{value:>10}{spread:>16}{anchor:>10}{ratio:>16}  {target}")


if __name__ == "__main__":
    main()
