"""What a probe of the flaky search is worth in bits, and which probes to run.

The channel is :mod:`sleuth.bisect.flaky`'s Z-channel: a good candidate always passes, a bad one
fails with probability ``p``.  One probe at a candidate whose prior CDF is C gains
``h(p C) - C h(p)`` bits (h the binary entropy).  A batch of k probes (k free slots, or probes
already out) maximises the joint mutual information, found by coordinate ascent over the CDF levels
of the candidates; the outcome patterns of k probes are enumerated (2^k <= 256).

Invariants: pure functions of the CDF and ``p`` (the posterior and its counts stay with
:class:`~sleuth.bisect.flaky.FlakyBisection`); a batch holds at most :data:`MAX_BATCH` probes,
those still out included; picks come only from the eligible candidates given, sorted.  numpy is
imported when a probe is chosen, not with this module.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported when a Bayesian search starts, not with this module
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["MAX_BATCH", "binary_entropy", "most_informative", "z_channel_capacity"]

#: probes out at once, those already out included (2^k outcome patterns are enumerated)
MAX_BATCH = 8
_GRID = 160


def binary_entropy(p: float) -> float:
    """h(p) in bits."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def z_channel_capacity(p: float) -> float:
    """Bits per test when a bad candidate fails with probability ``p`` and a good one never does."""
    if p >= 1.0:
        return 1.0
    if p <= 0.0:
        return 0.0
    eps = 1.0 - p
    return math.log2(1.0 + (1.0 - eps) * eps ** (eps / (1.0 - eps)))


def _h(x: NDArray[np.float64]) -> NDArray[np.float64]:
    import numpy as np

    x = np.clip(x, 1e-15, 1 - 1e-15)
    return np.asarray(-(x * np.log2(x) + (1 - x) * np.log2(1 - x)))


@lru_cache(maxsize=64)
def _patterns(k: int, p: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``M[s, y]`` = P(outcome pattern y | f lies in segment s) and the count of noisy probes per s."""
    import numpy as np

    ys = (np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1  # (2^k, k): 1 = FAIL, sorted probes
    seg = np.arange(k + 1)
    below = np.arange(k)[None, :] < seg[:, None]  # probe j lies below segment s: it must PASS
    valid = ~np.any(below[:, None, :] & (ys[None, :, :] == 1), axis=2)
    fails = ys.sum(axis=1)[None, :]
    noisy = (k - seg)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(valid, p**fails * (1 - p) ** (noisy - fails), 0.0)
    return np.nan_to_num(m), (k - seg).astype(float)


def _batch_mi(levels: NDArray[np.float64], p: float) -> NDArray[np.float64]:
    """Mutual information (bits) between f and the outcomes of probes at CDF ``levels`` (G, k)."""
    import numpy as np

    g, k = levels.shape
    srt = np.sort(levels, axis=1)
    edges = np.concatenate([np.zeros((g, 1)), srt, np.ones((g, 1))], axis=1)
    masses = np.clip(np.diff(edges, axis=1), 0.0, 1.0)
    m, noisy = _patterns(k, round(p, 4))
    py = masses @ m
    with np.errstate(divide="ignore", invalid="ignore"):
        hy = -np.sum(np.where(py > 0, py * np.log2(py), 0.0), axis=1)
    return np.asarray(hy - (masses @ noisy) * binary_entropy(p))


def most_informative(
    cdf: NDArray[np.float64], eligible: NDArray[np.int64], p: float, fixed: list[float], k: int
) -> list[int]:
    """The ``k`` eligible candidates to probe next, given the CDF levels of the probes still out."""
    import numpy as np

    if not fixed and k == 1:
        c = cdf[eligible]
        gain = _h(p * c) - c * binary_entropy(p)
        return [int(eligible[int(np.argmax(gain))])]
    return _batch(cdf, eligible, p, fixed, k)


def _batch(
    cdf: NDArray[np.float64], eligible: NDArray[np.int64], p: float, fixed: list[float], k: int
) -> list[int]:
    """Coordinate ascent over the candidates' CDF levels for ``k`` new probes."""
    import numpy as np

    levels_all = cdf[eligible]
    _, first = np.unique(np.round(levels_all, 6), return_index=True)
    cand = eligible[first]
    if cand.size > _GRID:
        targets = np.linspace(0, 1, _GRID)
        near = np.unique(np.searchsorted(cdf[cand], targets).clip(0, cand.size - 1))
        cand = cand[near]
    grid = cdf[cand]
    chosen = [int(cand[int(np.argmin(np.abs(grid - (j + 1) / (k + 1))))]) for j in range(k)]
    for _ in range(3):
        changed = False
        for j in range(k):
            others = fixed + [float(cdf[c]) for t, c in enumerate(chosen) if t != j]
            lv = np.column_stack([np.tile(others, (grid.size, 1)), grid]) if others else grid[:, None]
            best = int(cand[int(np.argmax(_batch_mi(lv, p)))])
            if best != chosen[j]:
                chosen[j], changed = best, True
        if not changed:
            break
    return sorted(chosen)
