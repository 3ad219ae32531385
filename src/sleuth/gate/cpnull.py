"""The change-point statistic and its permutation null: what makes :mod:`.changepoint` calibrated.

For a segment of ``n`` values with (mid)ranks ``r`` and ``c = r - (n + 1) / 2``, the statistic at
split ``k`` (left size) is the standardised Mann-Whitney sum ``Z_k = |c_1 + ... + c_k| /
sqrt(k (n - k) / (n (n - 1)) * sum(c^2))``; the segment's statistic is ``max Z_k`` over
``min_segment <= k <= n - min_segment``, divided by ``sqrt((1 + rho) / (1 - rho))``, where ``rho``
is the lag-1 autocorrelation of the rank residuals around the two side means at the best split,
corrected for its small-sample bias and clipped to ``[0, 0.9]`` (an AR(1) long-run variance).

The null distribution is that of the same studentised maximum over random permutations of the
ranks, so the choice of split and the estimate of ``rho`` are both paid for.  Without ties it
depends on ``(n, min_segment)`` only: for the default ``min_segment`` a table built once (seeded,
20000 permutations per length; regenerate with ``python -m sleuth.gate.cpnull``) gives the
p-value with no sampling at run time.  Other cases (ties, another ``min_segment``, longer
segments than the table) draw 999 permutations from a generator seeded by the segment's shape,
cached.  Lengths are rounded *up* to a grid (steps of about 6 %): a longer segment has more splits
to choose from, so its null is stochastically larger and the p-value errs on the safe side.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["DEFAULT_MIN_SEGMENT", "TABLE_LEVELS", "grid_length", "midranks", "p_value", "studentised_max"]

#: the ``min_segment`` the shipped table was built for
DEFAULT_MIN_SEGMENT = 5
#: p-value levels of the table (descending); the table holds the null quantile at 1 - level
TABLE_LEVELS = (0.9, 0.75, 0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.003, 0.002, 0.001, 0.0005)
#: permutations behind the shipped table, and behind an on-the-fly null
TABLE_PERMUTATIONS = 20_000
RUNTIME_PERMUTATIONS = 999
#: lengths up to this are their own grid point; above, the grid grows by 6 %
_EXACT_UP_TO = 40
#: an estimated AR(1) coefficient above this is clipped (a long-run variance of 19)
_MAX_RHO = 0.9


def midranks(values: Sequence[float]) -> NDArray[np.float64]:
    """Ranks 1..n, ties sharing their average rank (what ``scipy.stats.rankdata`` gives; numpy only,
    so a CI job does not pay for importing scipy.stats)."""
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    n = x.size
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.concatenate(([True], xs[1:] != xs[:-1])))
    ends = np.concatenate((starts[1:], [n]))
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def grid_length(n: int) -> int:
    """The grid length whose null stands in for a segment of ``n`` (the smallest grid point >= n)."""
    g = _EXACT_UP_TO
    if n <= g:
        return n
    while g < n:
        g = math.ceil(g * 1.06)
    return g


def studentised_max(ranks: NDArray[np.float64], m: int) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Per row of ``ranks`` (B x n): the studentised max of ``Z_k`` and its split ``k*`` (left size)."""
    import numpy as np

    b, n = ranks.shape
    c = ranks - (n + 1) / 2.0
    ss = np.einsum("ij,ij->i", c, c)
    s = np.cumsum(c, axis=1)[:, :-1]  # s[:, k - 1]: sum of the first k centred ranks
    k = np.arange(1, n, dtype=np.float64)
    var = k * (n - k) / (n * (n - 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(s[:, m - 1 : n - m]) / np.sqrt(var[None, m - 1 : n - m] * ss[:, None])
    z = np.nan_to_num(z, nan=0.0, posinf=0.0)  # a constant segment (ss == 0) has no split
    j = z.argmax(axis=1)
    rows = np.arange(b)
    zmax = z[rows, j]
    kstar = j + m
    # rank residuals around the two side means at k*, for the lag-1 autocorrelation
    left_sum = s[rows, kstar - 1] + kstar * (n + 1) / 2.0
    mean_l = left_sum / kstar
    mean_r = (ranks.sum(axis=1) - left_sum) / (n - kstar)
    idx = np.arange(n)[None, :]
    e = ranks - np.where(idx < kstar[:, None], mean_l[:, None], mean_r[:, None])
    lag = e[:, 1:] * e[:, :-1]
    lag[idx[:, 1:] == kstar[:, None]] = 0.0  # the pair across the split belongs to neither side
    den = np.einsum("ij,ij->i", e, e)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(den > 0, lag.sum(axis=1) / den, 0.0)
    # a lag-1 correlation after fitting two means is biased: E[rho^] ~ rho - 2 (1 + 3 rho) / n
    rho = np.clip((rho + 2.0 / n) / (1.0 - 6.0 / n), 0.0, _MAX_RHO)
    return zmax / np.sqrt((1.0 + rho) / (1.0 - rho)), kstar


def simulate_null(ranks: tuple[float, ...], m: int, permutations: int, seed: int = 0) -> NDArray[np.float64]:
    """Sorted studentised maxima of ``permutations`` seeded permutations of ``ranks``."""
    import numpy as np

    n = len(ranks)
    rng = np.random.default_rng([seed, n, m])
    base = np.asarray(ranks, dtype=np.float64)
    out = []
    chunk = max(1, 2_000_000 // max(n, 1))  # bounded memory for long segments
    for start in range(0, permutations, chunk):
        rows = min(chunk, permutations - start)
        stat, _ = studentised_max(rng.permuted(np.tile(base, (rows, 1)), axis=1), m)
        out.append(stat)
    return np.sort(np.concatenate(out))


@lru_cache(maxsize=1024)
def _runtime_null(ranks: tuple[float, ...], m: int) -> NDArray[np.float64]:
    return simulate_null(ranks, m, RUNTIME_PERMUTATIONS)


def _table_p(stat: float, quantiles: tuple[float, ...]) -> float:
    """The p-value of ``stat`` from one row of the table, never below the truth by more than its error.

    ``P(S > q_j) <= level_j``, so the smallest level whose quantile lies strictly below ``stat`` bounds
    the p-value; between two distinct quantiles ``log p`` is interpolated.  A short segment's
    null is discrete: when ``stat`` sits exactly on a quantile shared by several levels (an atom),
    no interpolation happens and the bound is kept.
    """
    levels = (1.0, *TABLE_LEVELS)
    qs = (0.0, *quantiles)
    below = [j for j in range(len(qs)) if qs[j] < stat]
    if not below:
        return 1.0
    j = below[-1]
    if j == len(qs) - 1 or qs[j + 1] == stat:
        return levels[j]
    t = (stat - qs[j]) / (qs[j + 1] - qs[j])
    return math.exp(math.log(levels[j]) + t * (math.log(levels[j + 1]) - math.log(levels[j])))


def p_value(stat: float, ranks: Sequence[float], m: int) -> float:
    """The permutation p-value of a segment's studentised max ``stat`` (its ``ranks`` give n and ties)."""
    n = len(ranks)
    tied = len(set(ranks)) < n
    g = grid_length(n)
    if not tied and m == DEFAULT_MIN_SEGMENT:
        from sleuth.gate._cpnull_table import TABLE

        row = TABLE.get(g)
        if row is not None:
            return _table_p(stat, row)
    import numpy as np

    key = tuple(sorted(ranks)) if tied else tuple(float(i) for i in range(1, g + 1))
    null = _runtime_null(key, m)
    # a tiny tolerance: an equal statistic computed in another order counts as "as extreme"
    exceed = len(null) - int(np.searchsorted(null, stat * (1 - 1e-12), side="left"))
    return (1 + exceed) / (len(null) + 1)


def build_table(lengths: list[int], permutations: int = TABLE_PERMUTATIONS) -> dict[int, tuple[float, ...]]:
    """The null quantiles at ``1 - TABLE_LEVELS`` for each length (no ties, default ``min_segment``)."""
    import numpy as np

    table: dict[int, tuple[float, ...]] = {}
    for n in lengths:
        null = simulate_null(tuple(float(i) for i in range(1, n + 1)), DEFAULT_MIN_SEGMENT, permutations)
        qs = np.quantile(null, [1.0 - p for p in TABLE_LEVELS], method="higher")
        table[n] = tuple(round(float(q), 6) for q in qs)
    return table


def table_lengths(up_to: int = 2000) -> list[int]:
    """The grid lengths the shipped table covers: every n from 2 * min_segment to 40, then +6 %."""
    out = list(range(2 * DEFAULT_MIN_SEGMENT, _EXACT_UP_TO + 1))
    g = _EXACT_UP_TO
    while g < up_to:
        g = math.ceil(g * 1.06)
        out.append(g)
    return out


def render_table(table: dict[int, tuple[float, ...]]) -> str:
    """The source of ``_cpnull_table.py`` (kept out of the formatter's way, lines <= 100 chars)."""
    lines = [
        '"""Generated by ``python -m sleuth.gate.cpnull``: do not edit.',
        "",
        f"Null quantiles of the studentised change-point statistic (min_segment {DEFAULT_MIN_SEGMENT},",
        f"{TABLE_PERMUTATIONS} seeded permutations per length) at 1 - level for each level of",
        '``cpnull.TABLE_LEVELS``."""',
        "",
        "# fmt: off",
        "TABLE: dict[int, tuple[float, ...]] = {",
    ]
    for n, qs in table.items():
        lines.append(f"    {n}: (")
        for i in range(0, len(qs), 8):
            lines.append("        " + " ".join(f"{q!r}," for q in qs[i : i + 8]))
        lines.append("    ),")
    return "\n".join([*lines, "}", "# fmt: on", ""])


def main(argv: list[str] | None = None) -> int:
    """Regenerate ``_cpnull_table.py`` (minutes): ``python -m sleuth.gate.cpnull [OUT]``."""
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path(__file__).with_name("_cpnull_table.py")
    lengths = table_lengths()
    table = build_table(lengths)
    from sleuth.journal import atomic_write_text

    atomic_write_text(out, render_table(table))
    print(f"wrote {out}: {len(table)} lengths")
    return 0


if __name__ == "__main__":
    sys.exit(main())
