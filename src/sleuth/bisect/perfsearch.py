"""Performance mode's search: a posterior over where the metric steps, sampled until one answer holds.

The model (one step): a run of candidate i draws its metric from a distribution G when i < f and
from B, G shifted, when i >= f, for an unknown first bad f in 1..n-1 (uniform prior).  It is
distribution-free: the values of all runs so far are replaced by their normal scores (the normal
quantile of their pooled rank), and the scores are modelled as Gaussian with a mean on each side
and one spread, with the usual non-informative prior (flat means, 1/sigma) integrated out.  The
likelihood of f then depends only on which tested candidates lie left of f, so the hypotheses fall
into intervals between consecutive tested candidates, each weighted by its width: O(runs) per
update.  Ranks make the noise's shape irrelevant (Gaussian, log-normal, two clusters of timings),
and an outlier weighs no more than the largest score.  The likelihood is tempered (raised to
``TEMPER``): the Gaussian model of the scores is a model, and untempered it was over-confident.
(A Dirichlet-multinomial over quantile bins, tried first, was worse: it learns two unrelated
distributions where there is one shifted, and said 0.96 where it was right 89% of the time at a
5% step under 5% noise.)

Sampling (:meth:`StepSearch.propose`): a tested candidate whose side is uncertain (``P(f <= i)``
between ``eps`` and ``1 - eps``) runs again, the most uncertain first; when every tested candidate
is decided, a new one is probed at the posterior median of the heaviest stretch between decided
or pending candidates.  With k free slots, a candidate gets as many runs at once as it is expected
to need, and the slots left probe the next stretches, so k slots stay busy with useful runs.  The
search is done when one interval (ideally one candidate) holds ``confidence`` of the posterior,
nothing testable is left inside it, every probed candidate has ``min_runs`` values, and the
interval's last good and first bad have ``answer_runs`` values with a strict majority of them on
their side of the midpoint between the ends' medians; the confidence reported is that posterior
mass.  (The last rule is for outliers: a good build's run slower than every bad run gets the top
score, and the squared deviations of the Gaussian model let it outweigh two typical runs; a
candidate misjudged that way becomes the answer's first bad, so that is where it is caught.)

Pure: the caller runs the samples and tells the values (:meth:`StepSearch.observe`); the same
observations in the same order give the same proposals (what makes resume by replay exact).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

__all__ = [
    "CONF_CAP",
    "Posterior",
    "StepResult",
    "StepSearch",
    "posterior",
    "resolution_for",
    "side_probability",
]

#: the reported confidence never reaches 1: the model is a model (one step, exchangeable runs)
CONF_CAP = 0.9999
#: the likelihood's power (a tempered, "generalized Bayes" posterior): each run counts as 0.85 of a
#: run.  Untempered, the posterior was over-confident by 2-4 points where the Gaussian model of the
#: scores is furthest from the truth (2% outliers; a 2% step under 3% noise); at 0.85 every
#: confidence bin of bench/perf_bisect_sim.py holds, for about 15% more runs.
TEMPER = 0.85


@dataclass(frozen=True, slots=True)
class Posterior:
    """The posterior over f as intervals ``(tested[j], tested[j+1]]`` with masses ``mass[j]``."""

    tested: tuple[int, ...]
    mass: tuple[float, ...]
    #: expected log-likelihood ratio of one run between the two sides (nats; for planning)
    info: float

    def cdf(self, i: int) -> float:
        """P(f <= i): the probability that candidate i is bad (uniform inside an interval)."""
        acc = 0.0
        for j, m in enumerate(self.mass):
            a, b = self.tested[j], self.tested[j + 1]
            if i >= b:
                acc += m
            elif i > a:
                acc += m * (i - a) / (b - a)
                break
            else:
                break
        return min(1.0, acc)

    def best(self) -> int:
        """The index of the heaviest interval."""
        return max(range(len(self.mass)), key=lambda j: (self.mass[j], -j))


def normal_scores(values: np.ndarray) -> np.ndarray:
    """Blom's normal scores of the values' ranks (ties share their mean rank)."""
    r = rankdata(values)
    return np.asarray(ndtri((r - 0.375) / (len(values) + 0.25)))


def posterior(samples: Mapping[int, Sequence[float]], weights: Sequence[float] | None = None,
              resolution: float = 0.0) -> Posterior:  # fmt: skip
    """The one-step posterior given every tested candidate's values (the lowest and highest tested
    are the ends and must have values).  ``weights``: the prior weight of each interval (default:
    its width, i.e. a uniform prior over f).  ``resolution``: values are rounded to multiples of it
    first, so that differences far below the threshold (a slow drift, the last digits of a nearly
    constant metric) are ties, not ranks."""
    tested = sorted(i for i, xs in samples.items() if len(xs))
    sizes = np.array([len(samples[i]) for i in tested])
    values = np.concatenate([np.asarray(samples[i], dtype=float) for i in tested])
    if resolution > 0:
        values = np.round(values / resolution)
    z = normal_scores(values)
    total = len(z)
    owner = np.repeat(np.arange(len(tested)), sizes)
    sums = np.bincount(owner, weights=z, minlength=len(tested))
    nl = np.cumsum(sizes)[:-1].astype(float)
    nr = total - nl
    sl = np.cumsum(sums)[:-1]
    sr = float(sums.sum()) - sl
    # within-side sum of squares of each split; the marginal likelihood of two Gaussian groups with
    # flat means and a 1/sigma prior on their common spread
    ssw = np.maximum(float(np.sum(z * z)) - sl * sl / nl - sr * sr / nr, 1e-12)
    ll = TEMPER * (-0.5 * np.log(nl * nr) - (total - 2) / 2 * np.log(ssw))
    w = np.diff(np.asarray(tested, dtype=float)) if weights is None else np.asarray(weights, dtype=float)
    with np.errstate(divide="ignore"):
        logw = ll + np.log(w)
    logw -= logw.max()
    mass = np.exp(logw)
    mass /= mass.sum()
    j = int(np.argmax(mass))
    sd = math.sqrt(max(float(ssw[j]) / max(total - 2, 1), 1e-9))
    d = (sums[-1] / sizes[-1] - sums[0] / sizes[0]) / sd
    return Posterior(tuple(tested), tuple(float(x) for x in mass), max(float(d * d / 2), 0.05))


def side_probability(good: Sequence[float], cand: Sequence[float], bad: Sequence[float],
                     resolution: float = 0.0) -> float:  # fmt: skip
    """P(``cand`` is like ``bad``) against "like ``good``", even odds before the values."""
    return posterior({0: good, 1: cand, 2: bad}, weights=(1.0, 1.0), resolution=resolution).mass[0]


def resolution_for(threshold_pct: float, good: Sequence[float]) -> float:
    """A quarter of the threshold, in the good end's units (0 when there is no threshold)."""
    if threshold_pct <= 0 or not len(good):
        return 0.0
    return abs(float(np.median(np.asarray(good, dtype=float)))) * threshold_pct / 400.0


@dataclass(frozen=True, slots=True)
class StepResult:
    """Where the search stands: the heaviest interval ``(last_good, first_bad]`` and its mass."""

    #: "found" (one candidate), "ambiguous" (only untestable ones inside), "inconclusive"
    status: str
    first_bad: int
    last_good: int
    confidence: float
    suspects: tuple[int, ...]
    note: str = ""


@dataclass(slots=True)
class StepSearch:
    """Sample candidates 0..n-1 (0 good, n-1 bad, both measured) until one first bad holds ``confidence``."""

    n: int
    confidence: float = 0.95
    #: runs of one candidate at most (the ends included)
    max_samples: int = 30
    #: runs of the whole search at most (None: no limit beyond ``max_samples``)
    max_runs: int | None = None
    #: values are compared after rounding to multiples of this (see :func:`posterior`)
    resolution: float = 0.0
    #: runs a probed candidate gets at least: where the step is clean, one run would decide its
    #: side, and one outlier (a slow run of a good build) would then decide it wrongly
    min_runs: int = 2
    #: runs the answer's last good and first bad get at least: a candidate misjudged by its outliers
    #: ends up as one of them, so checking these two catches what ``min_runs`` lets through
    answer_runs: int = 4
    samples: dict[int, list[float]] = field(default_factory=dict)
    #: candidates that cannot be tested (``--skip``, or a run without the metric)
    untestable: set[int] = field(default_factory=set)
    pending: Counter[int] = field(default_factory=Counter)
    runs: int = 0
    _post: Posterior | None = None

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError("a search needs at least two candidates (a good and a bad end)")

    @property
    def eps(self) -> float:
        """A tested candidate is decided when ``P(bad)`` is below ``eps`` or above ``1 - eps``."""
        return (1.0 - self.confidence) / 4.0

    # --- tell ------------------------------------------------------------------------------------

    def exclude(self, indices: Iterable[int]) -> None:
        """Candidates never to test (``--skip``)."""
        self.untestable.update(i for i in indices if 0 < i < self.n - 1)

    def expect(self, index: int) -> None:
        """A run of ``index`` is in flight that :meth:`propose` did not hand out."""
        self.pending[index] += 1

    def observe(self, index: int, value: float | None) -> None:
        """One run's value (None: the run gave no usable value; a candidate without any is untestable)."""
        if self.pending[index] > 0:
            self.pending[index] -= 1
        self.runs += 1
        if value is None or not math.isfinite(value):
            if not self.samples.get(index) and 0 < index < self.n - 1:
                self.untestable.add(index)
            return
        self.samples.setdefault(index, []).append(float(value))
        self._post = None

    # --- ask -------------------------------------------------------------------------------------

    def post(self) -> Posterior:
        """The posterior (cached until the next value)."""
        if self._post is None:
            self._post = posterior(self.samples, resolution=self.resolution)
        return self._post

    def _interval(self, post: Posterior, j: int) -> tuple[int, int]:
        return post.tested[j], post.tested[j + 1]

    def _open(self, a: int, b: int) -> list[int]:
        """Testable candidates strictly between ``a`` and ``b`` without values."""
        return [i for i in range(a + 1, b) if i not in self.untestable and not self.samples.get(i)]

    @property
    def done(self) -> bool:
        """One interval holds ``confidence`` with nothing testable inside, or the budget is spent."""
        if self.max_runs is not None and self.runs + sum(self.pending.values()) >= self.max_runs:
            return True
        post = self.post()
        j = post.best()
        a, b = self._interval(post, j)
        return post.mass[j] >= self.confidence and not self._open(a, b) and not self._short(post)

    def _short(self, post: Posterior) -> list[int]:
        """Tested candidates below ``min_runs`` values, or the answer's pair below ``answer_runs`` or
        with its median on the other end's side (and room for more runs)."""
        out = [i for i in post.tested[1:-1] if len(self.samples[i]) < self.min_runs]
        return out + self._unsettled(post)

    def _unsettled(self, post: Posterior) -> list[int]:
        """The answer's last good and first bad while they have fewer than ``answer_runs`` values, or
        while no strict majority of their values lies on their side of the midpoint between the ends'
        medians: the Gaussian model of the scores lets one outlier outweigh two typical runs, a
        majority does not."""
        a, b = self._interval(post, post.best())
        mid = (float(np.median(self.samples[0])) + float(np.median(self.samples[self.n - 1]))) / 2
        out = []
        for i, bad in ((b, True), (a, False)):
            if not 0 < i < self.n - 1 or self._room(i) <= 0:
                continue
            xs = np.asarray(self.samples.get(i, []), dtype=float)
            beyond = int(np.sum(xs > mid)) if bad else int(np.sum(xs < mid))
            if len(xs) < self.answer_runs or 2 * beyond <= len(xs):
                out.append(i)
        return out

    def _need(self, post: Posterior, i: int) -> int:
        """Runs candidate ``i`` is expected to need before its side is decided (planning only)."""
        p = min(max(post.cdf(i), 1e-12), 1 - 1e-12)
        have = abs(math.log(p / (1 - p)))
        want = math.log((1 - self.eps) / self.eps)
        return max(1, math.ceil((want - have) / post.info))

    def _count(self, i: int) -> int:
        return len(self.samples.get(i, ())) + self.pending[i]

    def _room(self, i: int) -> int:
        """Runs ``i`` may still get (the ends twice as many: every decision leans on them)."""
        cap = 2 * self.max_samples if i in (0, self.n - 1) else self.max_samples
        return cap - self._count(i)

    def _or_end(self, y: int, live: set[int]) -> int:
        """``y``, or an end when every candidate on that side together has fewer runs than ``y``: a
        candidate next to an end is judged against that end alone, and more runs of ``y`` help little."""
        have = self._count(y)
        for end, side in ((0, [i for i in live if i < y]), (self.n - 1, [i for i in live if i > y])):
            if self._count(end) + sum(self._count(i) for i in side) < have and self._room(end) > 0:
                return end
        return y

    def propose(self, k: int) -> list[int]:
        """Up to ``k`` candidates to run now (repeats allowed); they count as pending until observed."""
        if self.done:
            return []
        post = self.post()
        out: list[int] = []
        budget = None if self.max_runs is None else self.max_runs - self.runs - sum(self.pending.values())
        while len(out) < k and (budget is None or len(out) < budget):
            i = self._pick(post)
            if i is None:
                break
            self.pending[i] += 1
            out.append(i)
        return out

    def _pick(self, post: Posterior) -> int | None:
        eps = self.eps
        # 1. an uncertain candidate (tested, or pending) that has not been given the runs it needs
        live = {i for i, xs in self.samples.items() if xs} | {i for i, c in self.pending.items() if c > 0}
        live -= {0, self.n - 1}
        uncertain = []
        for i in live:
            p = post.cdf(i)
            u = min(p, 1 - p)
            if self._room(i) <= 0:
                continue
            if (u > eps and self.pending[i] < self._need(post, i)) or self._count(i) < self.min_runs:
                uncertain.append((u, -i, i))
        if uncertain:
            return self._or_end(max(uncertain)[2], live)
        # 1b. the answer holds: its last good and first bad get their ``answer_runs``
        j = post.best()
        a, b = self._interval(post, j)
        if post.mass[j] >= self.confidence and not self._open(a, b):
            for i in self._unsettled(post):
                if self.pending[i] == 0:
                    return i
        # 2. a new candidate: the posterior median of the heaviest stretch between live candidates
        walls = sorted({0, self.n - 1, *live})
        best: tuple[float, int] | None = None
        for a, b in itertools.pairwise(walls):
            if b - a < 2 or not self._open(a, b):
                continue
            m = post.cdf(b) - post.cdf(a)
            if m > eps and (best is None or m > best[0]):
                best = (m, a)
        if best is not None:
            m, a = best
            b = walls[walls.index(a) + 1]
            half = post.cdf(a) + m / 2
            opened = self._open(a, b)
            return min(opened, key=lambda i: (abs(post.cdf(i) - half), i))
        # 3. nothing new to probe and not done: more runs where the answer is least sure
        rest = []
        for i in live:
            p = post.cdf(i)
            if self._room(i) > 0 and self.pending[i] == 0:
                rest.append((min(p, 1 - p), -i, i))
        if rest:
            return self._or_end(max(rest)[2], live)
        ends = [(self._count(e), e) for e in (0, self.n - 1) if self._room(e) > 0]
        return min(ends)[1] if ends else None

    # --- the answer --------------------------------------------------------------------------------

    def result(self) -> StepResult:
        """The heaviest interval: found when one candidate wide, ambiguous when untestable ones fill it."""
        post = self.post()
        j = post.best()
        a, b = self._interval(post, j)
        conf = min(post.mass[j], CONF_CAP)
        suspects = tuple(range(a + 1, b + 1))
        open_ = self._open(a, b)
        if post.mass[j] < self.confidence or open_:
            why = (f"the search stopped below confidence {self.confidence:g} "
                   f"(the likeliest first bad holds {post.mass[j]:.3f})")  # fmt: skip
            return StepResult("inconclusive", b, a, conf, suspects, why)
        status = "found" if b - a == 1 else "ambiguous"
        return StepResult(status, b, a, conf, suspects)
