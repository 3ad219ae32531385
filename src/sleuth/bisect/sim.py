"""The real bisection loop on a simulated test: only the process is replaced.

:class:`SimBackend` is a :class:`~sleuth.backends.Backend` whose trials take one unit of virtual
time each.  A discrete-event clock decides when each starts (at the time the driver submits it, or
when a slot frees) and finishes, and the driver sees results in finishing order, one at a time,
refilling a slot after each, exactly as with processes.  The outcome of a run of candidate i is
drawn from a seeded model: the culprit f, a bad candidate (i >= f; i < f for a fix search) fails with
probability p, a good one never; so the bad end's first run may pass, and p is unknown to the search
unless ``--flaky P`` gives it.  Everything else is real: :class:`~sleuth.bisect.driver.Driver`, its
end checks and strategies, :class:`~sleuth.engine.Engine`, the oracle, the journal and the trial
files (put ``root`` on a tmpfs such as /dev/shm to keep it fast).

:func:`simulate` runs one search and reports what a user would see plus the truth; it is what
``bench/bisect_sim.py`` and the seeded property tests call.

Performance mode: ``metric(index)`` gives each run a value (``metrics={"t": value}``, as if the
workload printed it); :class:`Noise` draws it around a level that steps up at given candidates, and
:func:`simulate_perf` runs one performance search (``bench/perf_bisect_sim.py``).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import shutil
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from sleuth.bisect.candidates import ListSource
from sleuth.bisect.driver import Driver
from sleuth.bisect.strategies import SearchResult, Strategy
from sleuth.bisect.trials import Options
from sleuth.journal import RunDir
from sleuth.model import TrialResult, TrialSpec
from sleuth.oracle import OracleConfig, StandardOracle

__all__ = [
    "CONFIDENCE_BINS",
    "CalibrationBin",
    "Noise",
    "PerfSimResult",
    "SimBackend",
    "SimResult",
    "calibration",
    "simulate",
    "simulate_perf",
]


class SimBackend:
    """Trials on ``slots`` virtual workers; ``fails(index)`` draws each outcome, ``duration()`` its length.

    A trial's future is resolved only when virtual time reaches its finish (:meth:`advance`, which
    the pool calls before it would block), so the driver sees results in finishing order; trials that
    finish at the same time finish together.
    """

    def __init__(
        self,
        slots: int,
        fails: Callable[[int], bool],
        duration: Callable[[], float] | None = None,
        metric: Callable[[int], float | None] | None = None,
    ) -> None:
        self._slots = slots
        self._fails = fails
        self._metric = metric
        self._duration = duration or (lambda: 1.0)
        self._free = [0.0] * slots  # when each worker is next free (a heap)
        #: (finish, submission number, future, result) of the trials still running
        self._running: list[tuple[float, int, Future[TrialResult], TrialResult | Exception]] = []
        self._n = 0
        #: the virtual time: when the latest finished trial finished
        self.now = 0.0

    def slots(self) -> int:
        """How many trials run at once."""
        return self._slots

    def submit(
        self, spec: TrialSpec, trial_dir: Path, *, prepare: Callable[[Path], TrialSpec] | None = None
    ) -> Future[TrialResult]:
        """Start the trial now, or when a worker frees; its outcome is drawn now, delivered at its finish."""
        fut: Future[TrialResult] = Future()
        start = max(self.now, heapq.heappop(self._free))
        wall = self._duration()
        heapq.heappush(self._free, start + wall)
        got: TrialResult | Exception
        try:
            spec = prepare(trial_dir) if prepare is not None else spec
        except Exception as exc:  # an untestable candidate: the engine makes it a SKIP
            got = exc
        else:
            index = int(spec.env["SLEUTH_CANDIDATE_INDEX"])
            fail = self._fails(index)
            value = self._metric(index) if self._metric is not None else None
            got = TrialResult(spec=spec, trial_dir=trial_dir, rc=1 if fail else 0, signal=None,
                              timed_out=False, started_at=start, wall_s=wall, host="sim",
                              stdout_path=trial_dir / "stdout", stderr_path=trial_dir / "stderr",
                              stderr_tail="AssertionError: bug\n" if fail else "",
                              metrics={} if value is None else {"t": value})  # fmt: skip
        heapq.heappush(self._running, (start + wall, self._n, fut, got))
        self._n += 1
        return fut

    def advance(self) -> int:
        """Run virtual time to the next finish; resolve every trial finishing then.  How many."""
        if not self._running:
            return 0
        self.now = max(self.now, self._running[0][0])
        done = 0
        while self._running and self._running[0][0] <= self.now:
            _, _, fut, got = heapq.heappop(self._running)
            if isinstance(got, Exception):
                fut.set_exception(got)
            else:
                fut.set_result(got)
            done += 1
        return done

    def cancel_all(self) -> None:
        """Drop the running trials."""
        for _, _, fut, _ in self._running:
            fut.cancel()
        self._running.clear()

    def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True, slots=True)
class SimResult:
    """One simulated search: what it said, the truth, and what it cost."""

    status: str
    first_bad: int | None
    confidence: float
    culprit: int
    tests: int
    #: virtual time: test durations of wall time, end checks included
    rounds: float
    strategy: str

    @property
    def hit(self) -> bool:
        """The answer names the culprit (whatever its status)."""
        return self.first_bad == self.culprit

    @property
    def right(self) -> bool:
        """Found, and right."""
        return self.status == "found" and self.hit


def simulate(n: int, p: float, options: Options, seed: int, root: Path, *, culprit: int | None = None,
             fix: bool = False, jitter: float = 0.0, keep: bool = False) -> SimResult:  # fmt: skip
    """Run the real driver on ``n`` candidates whose bad ones fail with probability ``p``.

    The culprit is drawn from 1..n-1 with ``seed`` unless given; with ``fix`` the candidates before
    it fail instead (a ``find_fix`` search).  ``jitter`` spreads test durations uniformly over
    1 +- jitter (0: every test takes one unit, so tests started together finish together).  The
    run dir goes under ``root`` and is removed unless ``keep``.
    """
    rng = random.Random(seed)
    f = culprit if culprit is not None else rng.randint(1, n - 1)

    def fails(i: int) -> bool:
        return (i < f if fix else i >= f) and rng.random() < p

    def duration() -> float:
        return 1.0 + jitter * (2 * rng.random() - 1)

    backend = SimBackend(max(1, options.jobs), fails, duration if jitter else None)
    driver, res, strat = _drive(n, options, backend, root, keep)
    inner = getattr(strat, "inner", strat)
    return SimResult(status=res.status.value, first_bad=res.first_bad, confidence=res.confidence, culprit=f,
                     tests=len(driver.events), rounds=backend.now,
                     strategy=type(inner).__name__ if inner is not None else "")  # fmt: skip


#: the kinds of run-to-run noise :class:`Noise` draws
NOISE_KINDS = ("gauss", "lognormal", "bimodal", "outliers", "lognormal-outliers")


@dataclass(frozen=True, slots=True)
class Noise:
    """Run-to-run noise of a metric: a factor around 1 with coefficient of variation ``cv``.

    ``gauss`` 1 + cv Z; ``lognormal`` exp(s Z - s^2/2) with the same cv; ``bimodal`` two clusters
    of timings at 1 -+ 0.9 cv (half each, spread 0.44 cv: cv in all); ``outliers`` Gaussian, and 2%
    of runs slower by 20-100%; ``lognormal-outliers`` log-normal, and 1% of runs slower by 20-100%.
    """

    kind: str = "gauss"
    cv: float = 0.03

    def draw(self, rng: random.Random) -> float:
        """One factor."""
        k, cv = self.kind, self.cv
        if k in ("lognormal", "lognormal-outliers"):
            s = math.sqrt(math.log1p(cv * cv))
            x = math.exp(rng.gauss(-s * s / 2, s))
        elif k == "bimodal":
            x = 1 + cv * ((0.9 if rng.random() < 0.5 else -0.9) + 0.436 * rng.gauss(0, 1))
        else:
            x = 1 + cv * rng.gauss(0, 1)
        rate = {"outliers": 0.02, "lognormal-outliers": 0.01}.get(k, 0.0)
        if rate and rng.random() < rate:
            x *= 1 + rng.uniform(0.2, 1.0)
        return x


@dataclass(frozen=True, slots=True)
class PerfSimResult:
    """One simulated performance search: what it said, the truth, what it cost."""

    status: str
    first_bad: int | None
    confidence: float
    #: the first bad of every step, in order (empty: a null range)
    culprits: tuple[int, ...]
    #: the first bad of every step the search reported
    found: tuple[int, ...]
    tests: int
    rounds: float

    @property
    def hit(self) -> bool:
        """The answer names a culprit (whatever its status)."""
        return self.first_bad is not None and self.first_bad in self.culprits

    @property
    def right(self) -> bool:
        """Found, and right."""
        return self.status == "found" and self.hit


def simulate_perf(n: int, options: Options, seed: int, root: Path, *, regression: float, noise: Noise,
                  culprit: int | None = None, steps: tuple[tuple[int, float], ...] | None = None,
                  jitter: float = 0.0, keep: bool = False) -> PerfSimResult:  # fmt: skip
    """Run the real driver in performance mode on ``n`` candidates whose metric steps up.

    The level is 100 before the culprit (drawn from 1..n-1 with ``seed`` unless given) and
    100 (1 + regression) from it on; ``steps`` ((first bad, regression), ...) gives several steps
    instead; ``regression`` 0 is a null range.  Each run's value is the level times a factor drawn
    from ``noise`` with the seeded generator.  ``options.perf`` names the metric ``t``.
    """
    rng = random.Random(seed)
    f = culprit if culprit is not None else rng.randint(1, n - 1)
    plan = steps if steps is not None else (((f, regression),) if regression else ())

    def level(i: int) -> float:
        out = 100.0
        for at, r in plan:
            if i >= at:
                out *= 1 + r
        return out

    def metric(i: int) -> float:
        return level(i) * noise.draw(rng)

    def duration() -> float:
        return 1.0 + jitter * (2 * rng.random() - 1)

    backend = SimBackend(max(1, options.jobs), lambda _i: False, duration if jitter else None, metric)
    driver, res, _ = _drive(n, options, backend, root, keep)
    state = driver.perf_state
    found = tuple(int(s["first_bad"]) for s in state.steps) if state is not None else ()
    return PerfSimResult(status=res.status.value, first_bad=res.first_bad, confidence=res.confidence,
                         culprits=tuple(at for at, _ in plan), found=found, tests=len(driver.events),
                         rounds=backend.now)  # fmt: skip


def _drive(
    n: int, options: Options, backend: SimBackend, root: Path, keep: bool
) -> tuple[Driver, SearchResult, Strategy | None]:
    """The real driver over ``n`` list candidates on ``backend``; the run dir under ``root``, removed
    unless ``keep``.  Returns the driver, its result and its strategy."""
    run_dir = RunDir.create(root, "bisect", "sim")
    labels = [str(i) for i in range(n)]
    oracle = StandardOracle(OracleConfig())
    driver = Driver(ListSource("simulated"), TrialSpec(argv=("simulated-test",)), oracle, run_dir, options,
                    labels=labels, backend=backend)  # fmt: skip
    try:
        res, strat = driver.run()
    finally:
        run_dir.close()
        if not keep:
            shutil.rmtree(run_dir.path, ignore_errors=True)
    return driver, res, strat


#: the reported-confidence bins of the calibration tables (the last edge takes in 1.0)
CONFIDENCE_BINS = (0.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0001)


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """Answers whose reported confidence fell in [lo, hi), and how many of them were right."""

    lo: float
    hi: float
    count: int
    hits: int
    mean_conf: float

    @property
    def ok(self) -> bool:
        """The target: hit rate >= mean reported confidence - 2 points."""
        return self.hits / self.count >= self.mean_conf - 0.02


def calibration(
    answers: Iterable[tuple[float, bool]], edges: Sequence[float] = CONFIDENCE_BINS
) -> list[CalibrationBin]:
    """``(reported confidence, right)`` pairs binned by confidence; empty bins left out."""
    pairs = list(answers)
    out = []
    for lo, hi in itertools.pairwise(edges):
        sel = [(c, hit) for c, hit in pairs if lo <= c < hi]
        if sel:
            out.append(CalibrationBin(lo, min(hi, 1.0), len(sel), sum(h for _, h in sel),
                                      sum(c for c, _ in sel) / len(sel)))  # fmt: skip
    return out
