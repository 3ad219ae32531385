"""``sleuth bisect`` against ``git bisect run`` on one generated repository, plus bisect start-up.

One repository of ``--commits`` commits (default 1000) is generated with a known culprit; its test
script reads a file, sleeps ``--test-s`` (a stand-in for a real test's cost; 0.05 and 0.5 by
default) and fails from the culprit on.  Each round runs every tool once, in a rotated order
(interleaved), each on a fresh copy: ``git bisect start/run/reset`` in a fresh clone (the clone is
not timed: a user has the checkout), sleuth with a fresh ``SLEUTH_CACHE`` (its clone of the
repository is timed); ``auto`` runs at the default ``--jobs 1`` and again at ``--jobs 2``, where its
checks (reruns of the ends) run beside the bisection.  Printed per tool: the culprit each found, tests run, median wall and the
spread (min-max) over the rounds, and the ratio of medians to git.

Start-up: ``python -c pass`` against ``sleuth bisect list`` over 10,000 candidates: the time until
the first test starts (the test writes a timestamp) and the wall of a whole run over 2 candidates,
with the output piped and on a terminal (a pty).

Every Python here runs with its bytecode compiled first, into a private ``PYTHONPYCACHEPREFIX``, as
an installed package has it (``pip install`` compiles; an editable checkout run with
``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile sleuth's modules on every start).

  python bench/bisect_vs_git.py [--rounds 5] [--test-s 0.05 --test-s 0.5] [--commits 1000] [--no-startup]
  python bench/bisect_vs_git.py --startup-only --rounds 15
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
       "GIT_COMMITTER_EMAIL": "b@b"}  # fmt: skip
SLEUTH = [sys.executable, "-m", "sleuth"]


def compiled_bytecode(root: Path) -> None:
    """Every Python started from here reads bytecode compiled once, into ``root`` (see the docstring)."""
    import sleuth

    ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    ENV["PYTHONPYCACHEPREFIX"] = str(root)
    packages = [Path(sleuth.__file__).parent]
    for name in ("click", "rich"):
        mod = __import__(name)
        packages.append(Path(mod.__file__).parent)  # type: ignore[arg-type]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *map(str, packages)], env=ENV, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    # the standard library's bytecode comes with the interpreter; a warm-up start writes the rest
    subprocess.run([*SLEUTH, "--version"], env=ENV, check=True, stdout=subprocess.DEVNULL)


def make_repo(repo: Path, n: int, culprit: int) -> list[str]:
    """N commits through fast-import; commit ``culprit`` flips ``bug`` to 1."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=ENV)
    stream = []
    for i in range(n):
        body, bug = f"{i}\n", ("1\n" if i >= culprit else "0\n")
        stream.append(f"commit refs/heads/main\nmark :{i + 1}\ncommitter b <b@b> {1_700_000_000 + i} +0000\n"
                      f"data {len(f'c{i}')}\nc{i}\n" + ("" if i == 0 else f"from :{i}\n")
                      + f"M 644 inline value\ndata {len(body)}\n{body}M 644 inline bug\ndata {len(bug)}\n{bug}\n")  # fmt: skip
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input="".join(stream), text=True,
                   check=True, env=ENV)  # fmt: skip
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "main"], check=True, env=ENV)
    return subprocess.run(["git", "-C", str(repo), "rev-list", "--reverse", "main"], capture_output=True,
                          text=True, check=True).stdout.split()  # fmt: skip


def test_script(path: Path, count: Path, test_s: float) -> Path:
    path.write_text(f'#!/bin/sh\necho x >> {count}\nsleep {test_s}\n'
                    'test "$(cat bug)" = 0 || { echo "AssertionError: bug" >&2; exit 1; }\n')  # fmt: skip
    path.chmod(0o755)
    return path


def run_git(root: Path, repo: Path, shas: list[str], test: Path, count: Path) -> tuple[str, int, float]:
    work = root / "git-work"
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(repo), str(work)], check=True, env=ENV)
    count.write_text("")
    t0 = time.perf_counter()
    subprocess.run(["git", "-C", str(work), "bisect", "start", shas[-1], shas[0]], check=True,
                   capture_output=True, env=ENV)  # fmt: skip
    out = subprocess.run(["git", "-C", str(work), "bisect", "run", str(test)], capture_output=True, text=True,
                         env=ENV, cwd=work).stdout  # fmt: skip
    subprocess.run(["git", "-C", str(work), "bisect", "reset"], check=True, capture_output=True, env=ENV)
    wall = time.perf_counter() - t0
    found = next((ln.split()[0] for ln in out.splitlines() if "is the first bad commit" in ln), "?")
    return found, len(count.read_text().split()), wall


def run_sleuth(
    root: Path, repo: Path, shas: list[str], test: Path, count: Path, *, flaky: str, jobs: int = 1
) -> tuple[str, int, float]:
    cache, out = root / "sleuth-cache", root / "sleuth-out"
    for d in (cache, out):
        shutil.rmtree(d, ignore_errors=True)
    count.write_text("")
    t0 = time.perf_counter()
    res = subprocess.run([*SLEUTH, "bisect", "git", "--repo", str(repo), "--good", shas[0], "--bad", shas[-1],
                          "--flaky", flaky, "--jobs", str(jobs), "--json", "--output", str(out), "--", str(test)],
                         capture_output=True, text=True, env={**ENV, "SLEUTH_CACHE": str(cache)})  # fmt: skip
    wall = time.perf_counter() - t0
    doc = json.loads(res.stdout) if res.stdout.strip() else {}
    return (doc.get("first_bad") or {}).get("label", "?"), len(count.read_text().split()), wall


def on_pty(argv: list[str], env: dict[str, str]) -> float:
    """Wall time of ``argv`` with stdout and stderr on a terminal (read to the end)."""
    leader, follower = pty.openpty()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env)
    os.close(follower)
    while True:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                if not os.read(leader, 65536):
                    break
            except OSError:  # the terminal closed: the process is gone
                break
        elif proc.poll() is not None:
            break
    proc.wait()
    os.close(leader)
    return time.perf_counter() - t0


def startup(root: Path, rounds: int) -> None:
    """Time to the first test over 10,000 candidates, and a whole 2-candidate run, vs python -c pass."""
    big, two = root / "big.txt", root / "two.txt"
    big.write_text("".join(f"{i}\n" for i in range(10_000)))
    two.write_text("0\n1\n")
    stamp = root / "first"
    first = root / "first.sh"
    first.write_text(f"#!/bin/sh\n[ -e {stamp} ] || date +%s.%N > {stamp}\nexit 0\n")
    first.chmod(0o755)
    flip = root / "flip.sh"
    flip.write_text('#!/bin/sh\n[ "$SLEUTH_CANDIDATE" = 0 ]\n')
    flip.chmod(0o755)
    env = {**ENV, "SLEUTH_OUTPUT": str(root / "startup-out"), "SLEUTH_CACHE": str(root / "startup-cache")}
    py, to_first, whole_pipe, whole_pty, auto_pipe = [], [], [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
        py.append(time.perf_counter() - t0)
        stamp.unlink(missing_ok=True)
        wall0 = time.time()
        subprocess.run([*SLEUTH, "bisect", "list", str(big), "--flaky", "off", "--", str(first)], env=env,
                       capture_output=True, check=False)  # fmt: skip
        to_first.append(float(stamp.read_text()) - wall0)
        argv = [*SLEUTH, "bisect", "list", str(two), "--flaky", "off", "--", str(flip)]
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=False)
        whole_pipe.append(time.perf_counter() - t0)
        whole_pty.append(on_pty(argv, env))
        t0 = time.perf_counter()
        subprocess.run([*SLEUTH, "bisect", "list", str(two), "--", str(flip)], env=env, capture_output=True,
                       check=False)  # fmt: skip
        auto_pipe.append(time.perf_counter() - t0)
    base = statistics.median(py)
    print(f"\nstart-up ({rounds} rounds, median and min-max; 'over' = median minus python -c pass)")
    print(f"{'measure':<62} {'median':>8} {'min-max':>15} {'over':>7}")
    for name, xs in (("python -c pass", py),
                     ("bisect list, 10,000 candidates: until the first test starts", to_first),
                     ("bisect list, 2 candidates, whole run, --flaky off, piped", whole_pipe),
                     ("bisect list, 2 candidates, whole run, --flaky off, on a pty", whole_pty),
                     ("bisect list, 2 candidates, whole run, auto, piped", auto_pipe)):  # fmt: skip
        med = statistics.median(xs)
        print(f"{name:<62} {med:>7.3f}s {min(xs):>6.3f}-{max(xs):<6.3f}s {med - base:>6.3f}s")
    over = statistics.median(to_first) - base
    print(f"# target: start-up of bisect list over 10,000 candidates <= 0.15 s above python -c pass: "
          f"{over:.3f} s -> {'met' if over <= 0.15 else 'NOT met'}")  # fmt: skip


def compare(
    root: Path, repo: Path, shas: list[str], culprit: int, *, test_s: float, rounds: int
) -> dict[str, float]:
    """Interleaved rounds of git and sleuth at one test duration; the ratio of medians to git per tool."""
    count = root / "count"
    test = test_script(root / "test.sh", count, test_s)
    tools = {
        "git bisect run": lambda: run_git(root, repo, shas, test, count),
        "sleuth --flaky off": lambda: run_sleuth(root, repo, shas, test, count, flaky="off"),
        "sleuth (auto)": lambda: run_sleuth(root, repo, shas, test, count, flaky="auto"),
        # a second slot runs auto's checks (reruns of the ends) beside the bisection
        "sleuth (auto) -j 2": lambda: run_sleuth(root, repo, shas, test, count, flaky="auto", jobs=2),
    }
    walls: dict[str, list[float]] = {k: [] for k in tools}
    seen: dict[str, tuple[str, int]] = {}
    names = list(tools)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate who goes first
            found, tests, wall = tools[name]()
            walls[name].append(wall)
            seen[name] = (found, tests)
    truth = shas[culprit]
    git = statistics.median(walls["git bisect run"])
    print(f"\n{len(shas)} commits, culprit #{culprit}, test {test_s:g} s, {rounds} interleaved rounds")
    print(f"{'tool':<20} {'culprit':<13} {'ok':<4} {'tests':>5} {'median':>8} {'min-max':>15} {'ratio':>6}")
    ratios = {}
    for name in names:
        found, tests = seen[name]
        med = statistics.median(walls[name])
        ratios[name] = med / git
        print(f"{name:<20} {found[:12]:<13} {'yes' if found == truth else 'NO':<4} {tests:>5} {med:>7.2f}s "
              f"{min(walls[name]):>6.2f}-{max(walls[name]):<6.2f}s {med / git:>6.2f}")  # fmt: skip
    return ratios


def main(argv: list[str] | None = None) -> int:
    """Print the comparisons and the start-up table, then the targets against what was measured."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--culprit", type=int, default=701)
    ap.add_argument("--test-s", type=float, action="append", help="test duration (repeatable)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-startup", action="store_true")
    ap.add_argument("--startup-only", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        compiled_bytecode(root / "pycache")
        shas = make_repo(root / "repo", args.commits, args.culprit)
        results = {
            t: compare(root, root / "repo", shas, args.culprit, test_s=t, rounds=args.rounds)
            for t in ([] if args.startup_only else args.test_s or [0.05, 0.5])
        }
        if not args.no_startup:
            startup(root, args.rounds)
    print("\n# targets (ratio of median walls to git bisect run)")
    for t, limit_off, limit_auto in ((0.05, 1.15, 1.5), (0.5, 1.05, None)):
        if t not in results:
            continue
        off = results[t]["sleuth --flaky off"]
        print(
            f"  test {t:g} s: --flaky off {off:.2f} (target <= {limit_off}) {'met' if off <= limit_off else 'NOT met'}"
        )
        if limit_auto is not None:
            auto = results[t]["sleuth (auto)"]
            print(f"  test {t:g} s: auto       {auto:.2f} (target <= {limit_auto}) "
                  f"{'met' if auto <= limit_auto else 'NOT met'}")  # fmt: skip
            two = results[t]["sleuth (auto) -j 2"]
            print(
                f"  test {t:g} s: auto -j 2  {two:.2f} (not the target's default --jobs 1; its checks"
                " beside the bisection)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
