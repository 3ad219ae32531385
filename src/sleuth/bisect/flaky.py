"""Flake-aware Bayesian bisection: a posterior over "candidate f is the first bad".

Model (one-sided noise, a Z-channel): a good candidate always passes; a bad one fails with an
unknown probability ``p``.  ``p`` has a Beta(a, b) prior and is integrated out, so for hypothesis
f with ``F`` fails and ``P`` passes observed at candidates ``>= f`` the likelihood is
``B(a+F, b+P) / B(a, b)``, and zero when any candidate ``< f`` failed.  Suffix sums make one
update O(n).

Probes maximise the expected information gain (one probe, or a batch of them with the probes
already out): :mod:`sleuth.bisect.flakyinfo` chooses them from the posterior's CDF.

With ``p`` estimated (``p_quantile`` set) the stop uses a second, pessimistic posterior too: the
posterior over f with p fixed at the ``p_quantile`` quantile of p's posterior (a grid over p).  The
marginal posterior is calibrated only on average over the Beta prior; at a given low p the search
stops when the data happen to make p look high (a pass then looks conclusive), so it was
over-confident (p = 0.2: 0.97 reported, 93.5% right).  The reported confidence is the smaller of
the two masses.  The first ``given_fails`` FAILs of the bad end are the reason it is the bad end
(the search is started only once it failed) and are not counted as evidence about p.

``determinism`` adds a point mass at p = 1 to the prior (a hypothesis with no pass at or above it
then keeps that mass).  ``--flaky auto`` does not use it: it made deterministic tests cheaper, but
the answers of a p = 0.5 test that it reported at 0.98 or more were mostly wrong (see docs/bisect.md,
``bench/bisect_sim.py --determinism D --calibration``).

Invariants: SKIP candidates are never proposed, nor is one that skipped after it had results (its
results count; a build that works once and not again was proposed until the budget was spent);
hypotheses that only skipped candidates separate are pooled into one block, and the search stops
when one block holds ``confidence`` of the posterior (or after ``max_tests``).  The answer is the
block; its mass is the reported confidence, floored to four decimals and never 1.  numpy is
imported when a search is made, not with this module (``log B`` comes from a running sum of logs:
no scipy).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sleuth.bisect.flakyinfo import MAX_BATCH, most_informative
from sleuth.bisect.strategies import Query, SearchResult, SearchStatus
from sleuth.model import Outcome

if TYPE_CHECKING:  # numpy is imported when a Bayesian search starts, not with this module
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["FlakyBisection", "report_confidence"]

#: points of the grid over p for the pessimistic posterior (midpoints of 200 equal cells of [0, 1])
_P_POINTS = 200
#: a reported confidence is floored to this many decimals and never reaches 1 (flakiness is possible)
_DECIMALS = 4


def report_confidence(mass: float) -> float:
    """``mass`` as reported: floored to 4 decimals, at most 0.9999 (never a certainty)."""
    scale = float(10**_DECIMALS)
    return min(math.floor(mass * scale) / scale, 1 - 1 / scale)


def p_grid() -> list[float]:
    """The grid over p of the pessimistic posterior (shared with :mod:`sleuth.bisect.posterior`)."""
    return [(j + 0.5) / _P_POINTS for j in range(_P_POINTS)]


def lbeta(a: float, b: float) -> float:
    """log B(a, b)."""
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _lgamma_plus(c: float, k: NDArray[np.float64]) -> NDArray[np.float64]:
    """``lgamma(c + k)`` for an array of whole numbers ``k >= 0`` (a running sum of logs: no scipy)."""
    import numpy as np

    idx = k.astype(np.int64)
    top = int(idx.max()) if idx.size else 0
    table = math.lgamma(c) + np.concatenate([[0.0], np.cumsum(np.log(c + np.arange(top)))])
    return np.asarray(table[idx])


def betaln_counts(
    a: float, b: float, fails: NDArray[np.float64], passes: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``log B(a + fails, b + passes)`` for whole-number counts."""
    return _lgamma_plus(a, fails) + _lgamma_plus(b, passes) - _lgamma_plus(a + b, fails + passes)


class FlakyBisection:
    """Bayesian bisection for tests whose bad candidates fail only sometimes."""

    def __init__(
        self,
        n: int,
        *,
        prior: tuple[float, float] = (1.0, 2.0),
        confidence: float = 0.95,
        max_tests: int | None = None,
        end_fails: int = 0,
        end_runs: int = 0,
        given_fails: int = 0,
        p_quantile: float | None = None,
        determinism: float = 0.0,
    ) -> None:
        import numpy as np

        if n < 2:
            raise ValueError("a bisection needs at least two candidates (a good and a bad end)")
        if not 0.5 <= confidence < 1.0:
            raise ValueError("confidence must be in [0.5, 1)")
        if not 0.0 <= determinism < 1.0:
            raise ValueError("determinism must be in [0, 1)")
        self.n = n
        self.a, self.b = prior
        self.confidence = confidence
        self.max_tests = max_tests
        self.end_fails = end_fails
        self.end_runs = end_runs
        self.given_fails = given_fails
        self.p_quantile = p_quantile
        #: prior probability that the test is deterministic (p = 1): a point mass beside Beta(a, b)
        self.determinism = determinism
        self.fails = np.zeros(n)
        self.passes = np.zeros(n)
        self._skip = np.zeros(n, dtype=bool)
        #: tested, then skipped: its results count, but it is not proposed again
        self._retired = np.zeros(n, dtype=bool)
        self.pending: dict[int, Query] = {}
        self.contradictions: list[int] = []
        self._seq = 0
        self._tests = 0
        self._post: NDArray[np.float64] | None = None
        self._block: tuple[tuple[int, int], float] | None = None

    @property
    def tests(self) -> int:
        """How many outcomes were observed."""
        return self._tests

    def _suffix_counts(self) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
        """Fails and passes at candidates >= f (the evidence about p under hypothesis f), and the
        largest f still possible (the first candidate that failed)."""
        import numpy as np

        fails = self.fails.copy()
        fails[-1] = max(0.0, fails[-1] - self.given_fails)
        fsuf = np.cumsum(fails[::-1])[::-1]
        psuf = np.cumsum(self.passes[::-1])[::-1]
        failed = np.flatnonzero(self.fails[1:]) + 1
        limit = int(failed[0]) if failed.size else self.n - 1
        return fsuf, psuf, limit

    def _components(self) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
        """Log-likelihood per f under the flaky part (p ~ Beta, weighted by 1 - determinism) and
        under the deterministic part (p = 1: no pass at or above f), and the largest possible f."""
        import numpy as np

        fsuf, psuf, limit = self._suffix_counts()
        det = self.determinism
        flaky = betaln_counts(self.a, self.b, fsuf, psuf) - lbeta(self.a, self.b)
        if det > 0:
            flaky += math.log1p(-det)
            exact = np.where(psuf == 0, math.log(det), -np.inf)
        else:
            exact = np.full(self.n, -np.inf)
        for arr in (flaky, exact):
            arr[0] = -np.inf
            arr[limit + 1 :] = -np.inf
        return flaky, exact, limit

    def posterior(self) -> NDArray[np.float64]:
        """P(first bad = f) for f in 0..n-1 (entry 0 is always 0: the good end was checked)."""
        import numpy as np

        if self._post is None:
            flaky, exact, _ = self._components()
            logl = np.logaddexp(flaky, exact)
            w = np.exp(logl - logl.max())
            self._post = w / w.sum()
        return self._post

    def pessimistic_posterior(self) -> NDArray[np.float64]:
        """P(first bad = f) with p fixed at the ``p_quantile`` quantile of its posterior."""
        import numpy as np

        if self.p_quantile is None:
            return self.posterior()
        fsuf, psuf, limit = self._suffix_counts()
        grid = np.asarray(p_grid())
        lp, lq = np.log(grid), np.log1p(-grid)
        # the Beta density on the grid, times the cell width: the flaky part integrates to 1 - det
        prior = (self.a - 1) * lp + (self.b - 1) * lq - lbeta(self.a, self.b) - math.log(_P_POINTS)
        det = self.determinism
        logl = np.outer(fsuf, lp) + np.outer(psuf, lq) + prior[None, :]
        if det > 0:
            logl += math.log1p(-det)
        exact = np.where(psuf == 0, math.log(det), -np.inf) if det > 0 else np.full(self.n, -np.inf)
        for arr in (logl, exact):
            arr[0] = -np.inf
            arr[limit + 1 :] = -np.inf
        top = max(float(logl.max()), float(exact.max()))
        w, we = np.exp(logl - top), np.exp(exact - top)
        p_post = w.sum(axis=0)
        cdf = np.cumsum(p_post) / (p_post.sum() + we.sum())
        j = int(np.searchsorted(cdf, self.p_quantile))
        col = we if j >= grid.size else w[:, j]  # past the grid: the quantile is p = 1 itself
        total = float(col.sum())
        return np.asarray(col / total) if total > 0 else self.posterior()

    def p_estimate(self) -> float:
        """Posterior mean of the probability that a bad candidate fails."""
        import numpy as np

        fsuf, psuf, _ = self._suffix_counts()
        per_f = (self.a + fsuf) / (self.a + self.b + fsuf + psuf)
        if self.determinism > 0:
            flaky, exact, _ = self._components()
            top = np.maximum(flaky, exact)
            top[~np.isfinite(top)] = 0.0
            wf, we = np.exp(flaky - top), np.exp(exact - top)
            with np.errstate(invalid="ignore"):
                per_f = np.nan_to_num((wf * per_f + we) / (wf + we))
        return float(np.dot(self.posterior(), per_f))

    @property
    def skipped(self) -> set[int]:
        """Candidates that could not be tested."""
        import numpy as np

        return {int(i) for i in np.flatnonzero(self._skip)}

    def _blocks(
        self, post: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
        import numpy as np

        cum = np.concatenate([[0.0], np.cumsum(post)])
        testable = ~self._skip
        testable[-1] = True
        ends = np.flatnonzero(testable[1:]) + 1
        starts = np.concatenate([[1], ends[:-1] + 1])
        return starts, ends, cum[ends + 1] - cum[starts]

    def _best_block(self) -> tuple[tuple[int, int], float]:
        """The block of hypotheses with the most mass (a testable candidate and the skips below it)
        and its confidence: its mass, or its pessimistic mass when that is smaller (worked out only
        when the mass reaches ``confidence``: below it the search goes on either way)."""
        import numpy as np

        if self._block is None:
            starts, ends, masses = self._blocks(self.posterior())
            j = int(np.argmax(masses))
            mass = float(masses[j])
            if self.p_quantile is not None and mass >= self.confidence:
                mass = min(mass, float(self._blocks(self.pessimistic_posterior())[2][j]))
            self._block = (int(starts[j]), int(ends[j])), mass
        return self._block

    @property
    def done(self) -> bool:
        """True at the requested confidence, or when the test budget is spent."""
        if self.pending:
            return False
        if self.max_tests is not None and self._tests >= self.max_tests:
            return True
        return self._best_block()[1] >= self.confidence

    def exclude(self, indices: list[int]) -> None:
        """Candidates never to test (``--skip``): treated as skipped, no test counted."""
        for i in indices:
            if 0 < i < self.n - 1:
                self._skip[i] = True
        self._block = None

    def expect(self, query: Query) -> None:
        """A test the search did not propose (an end check) is in flight."""
        self.pending[query.seq] = query

    def propose(self, k: int) -> list[Query]:
        """Up to ``k`` probes with the most expected information, given the probes still out."""
        import numpy as np

        if k <= 0 or self._best_block()[1] >= self.confidence:
            return []
        if self.max_tests is not None and self._tests + len(self.pending) >= self.max_tests:
            return []
        cdf = np.cumsum(self.posterior())
        eligible = np.flatnonzero(~(self._skip | self._retired))
        p = min(max(self.p_estimate(), 0.02), 1.0)
        end = self.n - 1
        out = []
        out_at_end = sum(q.index == end for q in self.pending.values())
        end_runs = self.fails[end] + self.passes[end] + out_at_end
        # rerun the known-bad end until it failed ``end_fails`` times and ran ``end_runs`` times (at
        # most 5 * end_fails runs): a good estimate of p is what keeps the posterior honest
        cap = max(5 * self.end_fails, self.end_runs)
        while (
            k > 0
            and end_runs < cap
            and (self.fails[end] + out_at_end < self.end_fails or end_runs < self.end_runs)
        ):
            out.append(self._hand_out(end))
            out_at_end += 1
            end_runs += 1
            k -= 1
        fixed = [float(cdf[q.index]) for q in self.pending.values() if q.index != end]
        k = min(k, MAX_BATCH - len(fixed))
        if k <= 0 or eligible.size == 0:
            return out
        picks = most_informative(cdf, eligible, p, fixed, k)
        return out + [self._hand_out(i) for i in picks]

    def _hand_out(self, index: int) -> Query:
        q = Query(self._seq, index)
        self._seq += 1
        self.pending[q.seq] = q
        return q

    def observe(self, query: Query, outcome: Outcome) -> None:
        """Add one outcome; a SKIP (or ERROR) removes the candidate from the probes."""
        self.pending.pop(query.seq, None)
        self._seq = max(self._seq, query.seq + 1)
        self._tests += 1
        i = query.index
        if outcome in (Outcome.SKIP, Outcome.ERROR):
            if self.fails[i] + self.passes[i] == 0 and 0 < i < self.n - 1:
                self._skip[i] = True
                self._block = None
            elif 0 < i < self.n - 1:  # it ran before: what it said stands, it is not asked again
                self._retired[i] = True  # (the bad end's reruns are the driver's to stop)
            return
        if outcome is Outcome.FAIL and i == 0:
            self.contradictions.append(i)  # the good end failed: the model has no room for it
            return
        if outcome is Outcome.FAIL:
            self.fails[i] += 1
        else:
            self.passes[i] += 1
        self._post = None
        self._block = None

    def evidence(self) -> dict[int, tuple[int, int]]:
        """``{candidate: (fails, passes)}`` for every candidate tested."""
        import numpy as np

        idx = np.flatnonzero(self.fails + self.passes)
        return {int(i): (int(self.fails[i]), int(self.passes[i])) for i in idx}

    def result(self) -> SearchResult:
        """The most probable block of first-bad hypotheses and its confidence (see _best_block)."""
        import numpy as np

        (a, b), mass = self._best_block()
        if self.p_quantile is not None and mass < self.confidence:
            pess = self._blocks(self.pessimistic_posterior())[2]
            mass = min(mass, float(pess[int(np.searchsorted(self._blocks(self.posterior())[1], b))]))
        last_good = a - 1  # the block starts right above a testable candidate (or the good end)
        if mass < self.confidence:
            status, note = SearchStatus.INCONCLUSIVE, f"stopped after {self._tests} tests below confidence"
        elif a == b:
            status, note = SearchStatus.FOUND, ""
        else:
            status, note = SearchStatus.AMBIGUOUS, "only skipped candidates separate good from bad"
        return SearchResult(
            status=status,
            first_bad=b,
            last_good=last_good,
            suspects=tuple(range(a, b + 1)),
            confidence=report_confidence(mass),
            note=note,
        )
