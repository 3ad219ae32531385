"""The speed confound: did a "fix" only work because everything got slower?

Per-trial step times of a cell are compared with its baseline's over the whole distribution, not
the median alone: a slowdown that hits a quarter of the trials threefold leaves the median ratio
at 1.00 but moves the 90th percentile threefold.  For the median and the 90th percentile, the
ratio cell/baseline gets a percentile-bootstrap 95% interval (5000 resamples of both samples,
seeded, the same resamples for both quantiles); ``speed (+N%)`` (median) or ``speed (p90 +N%)``
is flagged when the lower end of either interval exceeds the threshold (1.15 by default).  The
Mann-Whitney rank test and its effect size (the chance that a trial of the cell is slower than
one of the baseline, 0.5 when neither is) are reported beside it.

Fewer than :data:`MIN_STEP_SAMPLES` timed trials on either side say ``too few timings``, and a
median ratio that does not exist (the baseline's median is 0) says ``ratio undefined: WHY``, never
nothing: silence would read as "no slowdown".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sleuth.matrix.aggregate import CellStats

__all__ = ["MIN_STEP_SAMPLES", "Confound", "quantile_ratios", "speed_confound"]

#: fewest step-time samples per side for an interval (and a flag)
MIN_STEP_SAMPLES = 3
QUANTILES = (50.0, 90.0)
TOO_FEW = "too few timings"


@dataclass(frozen=True, slots=True, kw_only=True)
class Confound:
    """The speed comparison of one cell with its baseline."""

    #: median ratio cell/baseline and its bootstrap 95% interval
    ratio: float | None
    ci: tuple[float, float] | None
    flagged: bool
    threshold: float
    p90_ratio: float | None = None
    p90_ci: tuple[float, float] | None = None
    #: Mann-Whitney: P(a cell trial is slower than a baseline trial) + P(tie)/2, and its p-value
    superiority: float | None = None
    rank_p: float | None = None
    n_cell: int = 0
    n_base: int = 0
    #: the cell ran but one side has fewer than MIN_STEP_SAMPLES timed trials
    too_few: bool = False
    #: what flagged it: "median" or "p90"
    by: str | None = None
    #: why the median ratio is undefined (the baseline's median step time is 0), None when it is not
    undefined: str | None = None

    @property
    def label(self) -> str | None:
        """``speed (+N%)``, ``speed (p90 +N%)``, ``too few timings``, ``ratio undefined: WHY``, or None."""
        if self.too_few:
            return TOO_FEW
        if self.undefined is not None and not self.flagged:  # silence would read as "no slowdown"
            return f"ratio undefined: {self.undefined}"
        if not self.flagged:
            return None
        if self.by == "p90" and self.p90_ratio is not None:
            return f"speed (p90 +{round((self.p90_ratio - 1) * 100)}%)"
        if self.ratio is None:
            return None
        return f"speed (+{round((self.ratio - 1) * 100)}%)"


def quantile_ratios(
    a: Sequence[float], b: Sequence[float], *, seed: int, n_boot: int = 5000, conf: float = 0.95
) -> list[tuple[float, float, float]]:
    """For each of :data:`QUANTILES`: (ratio of a's quantile to b's, bootstrap lo, hi); NaN where
    b's quantile is 0."""
    import numpy as np

    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    ra = xa[rng.integers(0, len(xa), size=(n_boot, len(xa)))]
    rb = xb[rng.integers(0, len(xb), size=(n_boot, len(xb)))]
    qs = np.asarray(QUANTILES) / 100.0
    qa, qb = np.quantile(ra, qs, axis=1), np.quantile(rb, qs, axis=1)
    pa, pb = np.quantile(xa, qs), np.quantile(xb, qs)
    out: list[tuple[float, float, float]] = []
    tail = (1.0 - conf) / 2
    for k in range(len(qs)):
        if pb[k] <= 0:
            out.append((math.nan, math.nan, math.nan))
            continue
        # a ratio past the float range (step times near its limit) is inf: no numpy warning on stderr
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratios = qa[k] / qb[k]
            ratio = float(pa[k] / pb[k])
        ratios = ratios[np.isfinite(ratios)]
        if not len(ratios):
            out.append((ratio, math.nan, math.nan))
            continue
        lo, hi = np.quantile(ratios, [tail, 1.0 - tail])
        out.append((ratio, float(lo), float(hi)))
    return out


def _rank(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    from scipy.stats import mannwhitneyu

    res = mannwhitneyu(a, b, alternative="two-sided")
    return float(res.statistic) / (len(a) * len(b)), float(res.pvalue)


def speed_confound(cell: CellStats, base: CellStats, *, threshold: float, seed: int = 0) -> Confound:
    """Compare ``cell``'s step times with ``base``'s (see the module docstring)."""
    a, b = list(cell.step_times), list(base.step_times)
    ran = cell.n_judged > 0
    if len(a) < MIN_STEP_SAMPLES or len(b) < MIN_STEP_SAMPLES:
        ratio, why = None, None
        if a and b:
            import numpy as np

            ratio, why = _median_ratio(float(np.median(a)), float(np.median(b)))
        return Confound(
            ratio=ratio,
            ci=None,
            flagged=False,
            threshold=threshold,
            n_cell=len(a),
            n_base=len(b),
            too_few=ran,
            undefined=why,
        )
    import numpy as np

    _, why = _median_ratio(float(np.median(a)), float(np.median(b)))
    (r50, lo50, hi50), (r90, lo90, hi90) = quantile_ratios(a, b, seed=seed)
    sup, rank_p = _rank(a, b)
    med_ok, p90_ok = not math.isnan(lo50), not math.isnan(lo90)
    by = "median" if med_ok and lo50 > threshold else ("p90" if p90_ok and lo90 > threshold else None)
    return Confound(
        ratio=r50 if math.isfinite(r50) else None,
        ci=(lo50, hi50) if med_ok else None,
        flagged=by is not None,
        threshold=threshold,
        p90_ratio=None if math.isnan(r90) else r90,
        p90_ci=(lo90, hi90) if p90_ok else None,
        superiority=sup,
        rank_p=rank_p,
        n_cell=len(a),
        n_base=len(b),
        by=by,
        undefined=why,
    )


def _median_ratio(med_a: float, med_b: float) -> tuple[float | None, str | None]:
    """The median ratio, or None and why it has none."""
    if med_b <= 0:
        return None, f"the baseline's median step time is {med_b:g}"
    ratio = med_a / med_b  # a float division past the range is inf, no error
    return (ratio, None) if math.isfinite(ratio) else (None, f"{med_a:g} / {med_b:g} is past the float range")
