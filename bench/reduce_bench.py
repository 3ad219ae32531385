"""sleuth reduce's strategies against picire 21.8 (PyPI) on seeded cases with known minima.

Every case is an in-process predicate, so oracle calls are exact and both reducers see the very
same predicate.  Cases (research/reduction.md §6):
  * needles: a list of n items, interesting iff all k needles are kept (n up to 4096);
  * def-use: a Python script of unrelated assignments (some using each other) with a 5-deep chain
    ending in ``1 / c4``; interesting iff it raises ZeroDivisionError (a NameError is another failure);
  * shapes: 500 ``AxBxC`` lines; interesting iff the one line with a dimension > 65535 and the one
    with an inner-dimension mismatch are both kept;
  * env: 40 ``K=V`` lines; interesting iff ``A=1`` and ``B=x`` are kept and ``C=1`` is dropped unless
    ``D=1`` is kept (so the input is interesting and the minimum is two lines);
  * numeric: STEPS=10000, BATCH=256, SEQ_LEN=2049; steps >= 137 and B*L >= 65536, and L % 64 != 0 in
    the non-monotone variant.  The known minimum is an exhaustive scan of every value of each axis in
    the declared order, repeated to a fixpoint (picire has no numeric axes: n/a);
  * flaky: needles and env with true failures reproducing with p = 0.5 and 0.2.  sleuth measures the
    rate on 20 runs and picks trials per candidate; picire gets the same any-of-r retry in its test
    (it asserts the input fails at every run start: a miss there is a crash, counted).
picire runs as ``DD(test, split=ZellerSplit(n=2), cache=ConfigCache())`` with its defaults and with
``--subset-iterator=skip --complement-iterator=backward`` (its README's recommendation); its
per-run "assert" re-tests are counted apart.  Targets (issue #12): sleuth's final size equals the
known minimum in every deterministic case; sleuth's total calls <= 0.5x picire's recommended
setting; every flaky result truly reproduces.

Usage: python bench/reduce_bench.py [--quick] [--seeds N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sleuth.reduce.fixpoint import AxisPlan, Reduction
from sleuth.reduce.flaky import RateTracker, reduce_in_process

Pred = Callable[[list[Any]], bool]


@dataclass
class Case:
    name: str
    items: list[Any]
    pred: Pred
    minimum: int
    #: the ground truth for flaky cases (pred draws random numbers)
    truth: Pred | None = None
    p: float = 1.0


@dataclass
class Row:
    case: str
    calls: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    ok: list[bool] = field(default_factory=list)
    asserts: list[int] = field(default_factory=list)
    crashes: int = 0
    seconds: float = 0.0


# --- cases ----------------------------------------------------------------------------------


def needles(n: int, k: int, seed: int, p: float = 1.0) -> Case:
    rng = random.Random(f"needles:{n}:{k}:{seed}")
    hit = set(rng.sample(range(n), k))
    truth: Pred = lambda kept: hit <= set(kept)  # noqa: E731
    flip = random.Random(f"flaky:{seed}")
    pred: Pred = truth if p >= 1 else (lambda kept: truth(kept) and flip.random() < p)
    return Case(f"needles n={n} k={k}" + (f" p={p}" if p < 1 else ""), list(range(n)), pred, k, truth, p)


def def_use(seed: int, n: int = 200) -> Case:
    rng = random.Random(f"defuse:{seed}")
    lines = []
    names: list[str] = []
    for i in range(n):
        if names and rng.random() < 0.4:
            lines.append(f"v{i} = {rng.choice(names)} + {rng.randint(1, 9)}")
        else:
            lines.append(f"v{i} = {rng.randint(1, 99)}")
        names.append(f"v{i}")
    chain = ["c0 = 0", "c1 = c0 * 2", "c2 = c1 + 0", "c3 = c2 - 0", "c4 = c3 * 5", "x = 1 / c4"]
    spots = sorted(rng.sample(range(len(lines) + 1), len(chain)))
    for off, (pos, line) in enumerate(zip(spots, chain, strict=True)):
        lines.insert(pos + off, line)

    def pred(kept: list[str]) -> bool:
        try:
            exec("\n".join(kept), {})
        except ZeroDivisionError:
            return True
        except Exception:
            return False
        return False

    return Case("def-use script", lines, pred, len(chain))


def shapes(seed: int, n: int = 500) -> Case:
    rng = random.Random(f"shapes:{seed}")
    lines = [
        f"{rng.choice([1, 2, 4, 8])}x{rng.choice([64, 128, 256])}x{rng.choice([64, 128, 256])}"
        for _ in range(n)
    ]
    big, bad = rng.sample(range(n), 2)
    lines[big] = "2x70000x64"
    lines[bad] = "4x7x128"

    def pred(kept: list[str]) -> bool:
        dims = [[int(x) for x in s.split("x")] for s in kept]
        return any(max(d) > 65535 for d in dims) and any(d[1] == 7 for d in dims)

    return Case("shapes list", lines, pred, 2)


def env_set(seed: int, p: float = 1.0) -> Case:
    rng = random.Random(f"env:{seed}")
    lines = [f"TORCH_VAR_{i}={rng.randint(0, 3)}" for i in range(36)] + ["A=1", "B=x", "C=1", "D=1"]
    rng.shuffle(lines)

    def truth(kept: list[str]) -> bool:
        s = set(kept)
        return "A=1" in s and "B=x" in s and ("C=1" not in s or "D=1" in s)

    flip = random.Random(f"flaky-env:{seed}")
    pred: Pred = truth if p >= 1 else (lambda kept: truth(kept) and flip.random() < p)
    return Case("env-var set" + (f" p={p}" if p < 1 else ""), lines, pred, 2, truth, p)


# --- reducers -------------------------------------------------------------------------------


def run_sleuth(case: Case, seed: int) -> tuple[int, list[Any], bool]:
    """(oracle calls, result, crashed)."""
    calls = [0]

    def trial(point: dict[str, Any]) -> bool:
        calls[0] += 1
        return case.pred([case.items[i] for i in point["L"]])

    if case.p < 1:  # measure the rate on the original, as the driver's baseline does
        hits = sum(trial({"L": tuple(range(len(case.items)))}) for _ in range(20))
        tracker = RateTracker(max(hits, 1), 20, 0.95)
    else:
        tracker = RateTracker(1, 1, 0.95)
    r = Reduction([AxisPlan(name="L", kind="file_lines", initial=tuple(range(len(case.items))))])
    final, _, _ = reduce_in_process(r, trial, tracker)
    return calls[0], [case.items[i] for i in final["L"]], False


def run_picire(case: Case, recommended: bool, retries: int) -> tuple[int, int, list[Any], bool]:
    """(oracle calls, of which assert re-tests, result, crashed)."""
    import picire
    from picire.config_iterators import backward, skip
    from picire.config_splitters import ZellerSplit

    calls = [0, 0]

    def test(config: list[int], config_id: tuple[Any, ...]) -> Any:
        is_assert = "assert" in config_id
        for _ in range(retries):
            calls[0] += 1
            calls[1] += is_assert
            if case.pred([case.items[i] for i in config]):
                return picire.Outcome.FAIL
        return picire.Outcome.PASS

    kw: dict[str, Any] = {"split": ZellerSplit(n=2), "cache": picire.ConfigCache()}
    if recommended:
        kw.update(subset_iterator=skip, complement_iterator=backward)
    try:
        result = picire.DD(test, **kw)(list(range(len(case.items))))
    except AssertionError:
        return calls[0], calls[1], list(case.items), True
    return calls[0], calls[1], [case.items[i] for i in result], False


# --- numeric --------------------------------------------------------------------------------


def numeric_case(monotone: bool) -> tuple[str, Callable[[dict[str, int]], bool], dict[str, int]]:
    def pred(p: dict[str, int]) -> bool:
        ok = p["STEPS"] >= 137 and p["BATCH"] * p["SEQ_LEN"] >= 65536
        return ok and (monotone or p["SEQ_LEN"] % 64 != 0)

    return ("numeric knobs" + ("" if monotone else " (L%64 != 0)"), pred,
            {"STEPS": 10000, "BATCH": 256, "SEQ_LEN": 2049})  # fmt: skip


def exhaustive(
    pred: Callable[[dict[str, int]], bool], start: dict[str, int], order: list[str]
) -> dict[str, int]:
    """Every value of each axis in ``order``, smallest first, repeated until nothing moves."""
    point = dict(start)
    moved = True
    while moved:
        moved = False
        for axis in order:
            for v in range(0, point[axis]):
                if pred({**point, axis: v}):
                    point[axis], moved = v, True
                    break
    return point


def run_numeric(monotone: bool) -> tuple[str, int, dict[str, int], dict[str, int]]:
    name, pred, start = numeric_case(monotone)
    order = ["STEPS", "SEQ_LEN", "BATCH"]
    calls = [0]

    def trial(p: dict[str, Any]) -> bool:
        calls[0] += 1
        return pred(p)

    axes = [AxisPlan(name=a, kind="int", initial=start[a], floor=0, monotone="true" if monotone else "unknown")
            for a in order]  # fmt: skip
    final, _, _ = reduce_in_process(Reduction(axes), trial, RateTracker(1, 1, 0.95))
    return name, calls[0], final, exhaustive(pred, start, order)


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer and smaller cases (a minute or two)")
    ap.add_argument("--seeds", type=int, default=None)
    args = ap.parse_args()
    seeds = args.seeds or (2 if args.quick else 10)
    try:
        import warnings

        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # picire 21.8's own import
        import picire

        have_picire, version = True, getattr(picire, "__version__", "?")
    except ImportError:
        have_picire, version = False, None
    print(f"sleuth reduce bench: {'quick' if args.quick else 'full'}, {seeds} seed(s) per case")
    if not have_picire:
        print("picire is not installed: its columns are skipped (pip install picire==21.8 to compare)")
    else:
        print(f"picire {version} (in-process DD, ZellerSplit(n=2), ConfigCache)")

    sizes = [(256, 1), (256, 4), (1024, 1), (1024, 8)] if args.quick else \
        [(256, 1), (256, 4), (1024, 1), (1024, 8), (4096, 1), (4096, 8), (4096, 64)]  # fmt: skip
    det: list[Callable[[int], Case]] = [partial(needles, n, k) for n, k in sizes]
    det += [def_use, shapes, env_set]
    flaky: list[Callable[[int], Case]] = []
    for p in (0.5, 0.2):
        flaky.append(partial(needles, 256, 4, p=p))
        flaky.append(partial(env_set, p=p))

    header = f"{'case':<28} {'min':>4} | {'sleuth':>8} {'size':>5} | {'picire':>8} {'(assert)':>8} {'size':>5} | " \
             f"{'picire s+b':>10} {'(assert)':>8} {'size':>5} | {'ratio':>5}"  # fmt: skip
    print("\ndeterministic cases (median calls over seeds; size: worst seed)")
    print(header)
    print("-" * len(header))
    tot = {"s": 0.0, "d": 0.0, "r": 0.0}
    all_min = True
    for make in det:
        rows = {"s": Row(""), "d": Row(""), "r": Row("")}
        name, minimum = "", 0
        for seed in range(seeds):
            case = make(seed)
            name, minimum = case.name, case.minimum
            t0 = time.perf_counter()
            c, res, _ = run_sleuth(case, seed)
            rows["s"].seconds += time.perf_counter() - t0
            rows["s"].calls.append(c)
            rows["s"].sizes.append(len(res))
            rows["s"].ok.append(case.pred(res) and len(res) == minimum)
            if have_picire:
                for key, rec in (("d", False), ("r", True)):
                    c, a, res, crash = run_picire(case, rec, 1)
                    rows[key].calls.append(c)
                    rows[key].asserts.append(a)
                    rows[key].sizes.append(len(res))
                    rows[key].ok.append(not crash and case.pred(res))
        all_min &= all(rows["s"].ok)
        med = {k: statistics.median(r.calls) if r.calls else 0.0 for k, r in rows.items()}
        for k in tot:
            tot[k] += med[k]
        pic = "" if not have_picire else \
            f"{med['d']:>8.0f} {statistics.median(rows['d'].asserts):>8.0f} {max(rows['d'].sizes):>5} | " \
            f"{med['r']:>10.0f} {statistics.median(rows['r'].asserts):>8.0f} {max(rows['r'].sizes):>5} | " \
            f"{med['s'] / med['r']:>5.2f}"  # fmt: skip
        mark = "" if all(rows["s"].ok) else "  <- not the minimum"
        print(f"{name:<28} {minimum:>4} | {med['s']:>8.0f} {max(rows['s'].sizes):>5} | {pic}{mark}")
    for monotone in (True, False):
        name, calls, final, known = run_numeric(monotone)
        ok = final == known
        all_min &= ok
        print(f"{name:<28} {'':>4} | {calls:>8} {'':>5} | {'n/a (no numeric axes)':>34} | final {final}"
              f"{'' if ok else f' <- known minimum {known}'}")  # fmt: skip
    print("-" * len(header))
    print(f"{'total (list cases, medians)':<28} {'':>4} | {tot['s']:>8.0f} {'':>5} | {tot['d']:>8.0f} {'':>8} {'':>5} | "
          f"{tot['r']:>10.0f}")  # fmt: skip

    print("\nflaky cases (true failures reproduce with probability p; calls = trials)")
    print(
        f"{'case':<28} | {'sleuth':>8} {'true':>5} {'min':>4} | {'picire s+b':>10} {'true':>5} {'crash':>5}"
    )
    flaky_ok = True
    for make in flaky:
        s_calls, s_true, s_min, p_calls, p_true, p_crash = [], 0, 0, [], 0, 0
        name = ""
        for seed in range(seeds):
            case = make(seed)
            name = case.name
            assert case.truth is not None
            c, res, _ = run_sleuth(case, seed)
            s_calls.append(c)
            s_true += case.truth(res)
            s_min += case.truth(res) and len(res) == case.minimum
            if have_picire:
                from sleuth.reduce.flaky import trials_for

                c, _, res, crash = run_picire(case, True, trials_for(case.p, 0.95))
                p_calls.append(c)
                p_crash += crash
                p_true += (not crash) and case.truth(res)
        flaky_ok &= s_true == seeds
        pic = f"{statistics.median(p_calls):>10.0f} {p_true:>5} {p_crash:>5}" if have_picire else "n/a"
        print(
            f"{name:<28} | {statistics.median(s_calls):>8.0f} {s_true:>4}/{seeds} {s_min:>2}/{seeds} | {pic}"
        )

    print("\ntargets:")
    print(f"  final size == known minimum in every deterministic case: {'met' if all_min else 'NOT met'}")
    if have_picire and tot["r"]:
        ratio = tot["s"] / tot["r"]
        print(f"  total calls vs picire skip+backward: {ratio:.2f}x (target <= 0.5x): "
              f"{'met' if ratio <= 0.5 else 'NOT met'}")  # fmt: skip
    print(f"  every flaky result truly reproduces: {'met' if flaky_ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
