"""The flaky model's confidence in an answer, in pure Python (no numpy: a deterministic search stays light).

The same model as :class:`~sleuth.bisect.flaky.FlakyBisection`: hypothesis f ("candidate f is the
first bad"), a good candidate never fails, a bad one fails with probability p, and p's prior is a
point mass ``determinism`` at p = 1 beside Beta(a, b).  The likelihood of f depends only on the fails
F and passes P counted at candidates >= f, so the hypotheses fall into runs between tested
candidates with equal (F, P): the cost is O(tested candidates), not O(candidates).

:func:`block_confidence` is what ``--flaky auto`` reports for a deterministic-looking answer: the
posterior mass of "the first bad is in (lo, hi]", and (with ``p_quantile``) the smaller mass at p
fixed at that quantile of p's posterior, exactly as the Bayesian search stops (a test checks that the
two agree).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sleuth.bisect.flaky import lbeta, p_grid

__all__ = ["Model", "block_confidence"]

_NEG = -math.inf


@dataclass(frozen=True, slots=True, kw_only=True)
class Model:
    """The prior of the flaky search (see :func:`sleuth.bisect.policy.auto_model`)."""

    a: float = 1.0
    b: float = 2.0
    determinism: float = 0.0
    given_fails: int = 0
    p_quantile: float | None = None


def _lse(xs: Iterable[float]) -> float:
    vals = [x for x in xs if x != _NEG]
    if not vals:
        return _NEG
    top = max(vals)
    return top + math.log(sum(math.exp(x - top) for x in vals))


def _runs(n: int, counts: Mapping[int, tuple[int, int]], given: int) -> list[tuple[int, int, int, int]]:
    """``(first f, last f, F, P)`` for each run of hypotheses with equal suffix counts, f in 1..limit."""
    fails = {i: f for i, (f, _) in counts.items() if i > 0}
    if n - 1 in fails:
        fails[n - 1] = max(0, fails[n - 1] - given)
    failed = [i for i, (f, _) in counts.items() if f > 0 and i > 0]
    limit = min(failed) if failed else n - 1
    tested = sorted(i for i, (f, p) in counts.items() if f + p > 0)
    out: list[tuple[int, int, int, int]] = []
    fs = sum(fails.values())
    ps = sum(p for _, p in counts.values())
    start = 1
    # walk upward: hypotheses in (previous tested, t] see every count at t and above
    for t in tested:
        if t >= start:
            hi = min(t, limit)
            if hi >= start:
                out.append((start, hi, fs, ps))
            start = t + 1
        fs -= fails.get(t, 0)
        ps -= counts[t][1]
    if start <= limit:
        out.append((start, limit, 0, 0))
    return out


def _weights(runs: list[tuple[int, int, int, int]], m: Model) -> list[float]:
    """Log posterior weight of one hypothesis in each run (p integrated out)."""
    out = []
    base = lbeta(m.a, m.b)
    for _, _, f, p in runs:
        w = lbeta(m.a + f, m.b + p) - base
        if m.determinism > 0:
            w += math.log1p(-m.determinism)
            if p == 0:
                w = _lse([w, math.log(m.determinism)])
        out.append(w)
    return out


def _mass(runs: list[tuple[int, int, int, int]], logw: list[float], lo: int, hi: int) -> float:
    """The share of the posterior on hypotheses in (lo, hi]."""
    total, inside = [], []
    for (s, e, _, _), w in zip(runs, logw, strict=True):
        total.append(w + math.log(e - s + 1))
        a, b = max(s, lo + 1), min(e, hi)
        if b >= a:
            inside.append(w + math.log(b - a + 1))
    t = _lse(total)
    return 0.0 if t == _NEG else math.exp(_lse(inside) - t)


def block_confidence(n: int, counts: Mapping[int, tuple[int, int]], lo: int, hi: int, model: Model) -> float:
    """P(the first bad is in (lo, hi] | the outcomes), pessimistic in p as the Bayesian search is.

    ``counts`` maps a candidate to its (fails, passes); a fail of the good end (0) is not evidence.
    """
    runs = _runs(n, counts, model.given_fails)
    if not runs:
        return 0.0
    marginal = _mass(runs, _weights(runs, model), lo, hi)
    if model.p_quantile is None:
        return marginal
    grid = p_grid()
    det = model.determinism
    base = math.log1p(-det) if det > 0 else 0.0
    prior = [
        base + (model.a - 1) * math.log(p) + (model.b - 1) * math.log1p(-p) - lbeta(model.a, model.b)
        - math.log(len(grid))
        for p in grid
    ]  # fmt: skip
    sizes = [math.log(e - s + 1) for s, e, _, _ in runs]
    cols = [
        [pr + f * math.log(p) + q * math.log1p(-p) for _, _, f, q in runs]
        for p, pr in zip(grid, prior, strict=True)
    ]
    col_mass = [_lse(w + z for w, z in zip(col, sizes, strict=True)) for col in cols]
    exact = [math.log(det) if det > 0 and q == 0 else _NEG for _, _, _, q in runs]
    atom = _lse(w + z for w, z in zip(exact, sizes, strict=True))
    total = _lse([*col_mass, atom])
    acc = 0.0
    for col, cm in zip(cols, col_mass, strict=True):
        acc += math.exp(cm - total)
        if acc >= model.p_quantile:
            return min(marginal, _mass(runs, col, lo, hi))
    if atom == _NEG:
        return marginal
    return min(marginal, _mass(runs, exact, lo, hi))
