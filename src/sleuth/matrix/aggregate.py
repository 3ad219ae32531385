"""Per-cell aggregation: outcome counts, target-signature failure rate, step times, histograms.

Only failures with the *target signature* count towards the failure rate: with a regex oracle
that is a match of the oracle's pattern; otherwise the baseline's dominant failure signature.  A
trial that fails some other way is an *other failure*: it is not a pass (a mitigation that turns
a NaN into an OOM is no fix) and it is reported in the signature histogram and ``other_rate``.
Error (infrastructure) trials stay out of the denominator; the error rate is reported apart.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sleuth import stats
from sleuth.model import Outcome, Trial

__all__ = ["STEP_METRIC", "CellStats", "TrialRecord", "aggregate", "dominant_signature", "is_target"]

#: the metric name a ``step_time.regex`` is extracted under
STEP_METRIC = "step_time"
#: signatures of regex-oracle matches start with this (see sleuth.oracle)
REGEX_SIGNATURE_PREFIX = "output:"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialRecord:
    """What the statistics need from one judged trial; built live or replayed from the journal."""

    cell: str
    index: int
    outcome: Outcome
    signature: str | None
    status: str
    wall_s: float
    #: this trial's step time (the median of its series), None when the source had no value
    step_time: float | None
    error: str | None = None

    @classmethod
    def from_dict(cls, cell: str, index: int, d: Mapping[str, Any], step_source: str) -> TrialRecord:
        """From ``Trial.to_dict()`` (a ``result.json`` or a journal event)."""
        outcome = Outcome(d["outcome"])
        if d.get("error"):
            status = "error"
        elif d.get("timed_out"):
            status = "timeout"
        elif d.get("signal") is not None:
            status = f"signal {d['signal']}"
        else:
            status = f"exit {d.get('rc')}"
        return cls(
            cell=cell,
            index=index,
            outcome=outcome,
            signature=d.get("signature"),
            status=status,
            wall_s=float(d.get("wall_s") or 0.0),
            step_time=_step_time(d.get("metrics") or {}, float(d.get("wall_s") or 0.0), step_source),
            error=d.get("error"),
        )

    @classmethod
    def from_trial(cls, cell: str, index: int, trial: Trial, step_source: str) -> TrialRecord:
        """From a live ``Trial``."""
        return cls.from_dict(cell, index, trial.to_dict(), step_source)


def _step_time(metrics: Mapping[str, Any], wall_s: float, source: str) -> float | None:
    if source == "wall_s":
        return wall_s
    name = source.split(":", 1)[1] if source.startswith("metric:") else STEP_METRIC
    value = metrics.get(name)
    if isinstance(value, list | tuple):
        finite = [float(v) for v in value if isinstance(v, int | float) and math.isfinite(v)]
        return stats.percentile(finite, 50) if finite else None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


NO_SIGNATURE = "(no signature)"


def _same(a: str, b: str) -> bool:
    from sleuth.oracle import same_failure

    return a == b == NO_SIGNATURE or same_failure(a, b)


def dominant_signature(records: Iterable[TrialRecord]) -> str | None:
    """The most common failure (signatures that name the same failure count together, under the
    alphabetically first of their most frequent spelling); None without failures."""
    counts = Counter(r.signature or NO_SIGNATURE for r in records if r.outcome is Outcome.FAIL)
    if not counts:
        return None
    groups: list[list[tuple[str, int]]] = []
    for sig, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        group = next((g for g in groups if _same(g[0][0], sig)), None)
        if group is None:
            groups.append([(sig, n)])
        else:
            group.append((sig, n))
    best = max(groups, key=lambda g: sum(n for _, n in g))  # first of the largest: stable
    return best[0][0]


def is_target(record: TrialRecord, target: str | None, regex_oracle: bool) -> bool:
    """Whether a FAIL record has the target signature (compared as ``sleuth.oracle.same_failure`` does)."""
    if record.outcome is not Outcome.FAIL:
        return False
    if regex_oracle:
        return (record.signature or "").startswith(REGEX_SIGNATURE_PREFIX)
    return target is None or _same(record.signature or NO_SIGNATURE, target)


@dataclass(frozen=True, slots=True, kw_only=True)
class CellStats:
    """The numbers of one cell."""

    name: str
    n_pass: int
    n_target: int
    n_other: int
    n_error: int
    n_skip: int
    step_times: tuple[float, ...]
    status_counts: Mapping[str, int] = field(default_factory=dict)
    signature_counts: Mapping[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()

    @property
    def n_fail(self) -> int:
        """Every failure, target or not."""
        return self.n_target + self.n_other

    @property
    def n_judged(self) -> int:
        """Trials that passed or failed: the denominator of the failure rate."""
        return self.n_pass + self.n_fail

    @property
    def n_total(self) -> int:
        """Every trial that ran (or tried to)."""
        return self.n_judged + self.n_error + self.n_skip

    @property
    def failure_rate(self) -> float | None:
        """Target failures / (pass + fail); None without judged trials."""
        return self.n_target / self.n_judged if self.n_judged else None

    def failure_rate_ci(self, conf: float = 0.95) -> tuple[float, float]:
        """Wilson interval of the failure rate."""
        return stats.wilson(self.n_target, self.n_judged, conf)

    @property
    def other_rate(self) -> float | None:
        """Failures with another signature / (pass + fail)."""
        return self.n_other / self.n_judged if self.n_judged else None

    @property
    def error_rate(self) -> float | None:
        """(error + skip) / all trials; None when nothing ran."""
        return (self.n_error + self.n_skip) / self.n_total if self.n_total else None

    def step(self) -> stats.Distribution | None:
        """Summary of the per-trial step times."""
        return stats.describe(list(self.step_times))


def aggregate(name: str, records: Sequence[TrialRecord], target: str | None, regex_oracle: bool) -> CellStats:
    """Count one cell's records (already filtered to the cell, in index order)."""
    n_pass = n_target = n_other = n_error = n_skip = 0
    for r in records:
        if r.outcome is Outcome.PASS:
            n_pass += 1
        elif r.outcome is Outcome.FAIL:
            if is_target(r, target, regex_oracle):
                n_target += 1
            else:
                n_other += 1
        elif r.outcome is Outcome.SKIP:
            n_skip += 1
        else:
            n_error += 1
    return CellStats(
        name=name,
        n_pass=n_pass,
        n_target=n_target,
        n_other=n_other,
        n_error=n_error,
        n_skip=n_skip,
        # error and skip trials did not run the workload: their wall time (a failed start, an exit
        # 125) says nothing about its speed and would drag the median down
        step_times=tuple(
            r.step_time
            for r in records
            if r.step_time is not None and r.outcome in (Outcome.PASS, Outcome.FAIL)
        ),
        status_counts=dict(Counter(r.status for r in records).most_common()),
        signature_counts=dict(
            Counter(r.signature or NO_SIGNATURE for r in records if r.outcome is Outcome.FAIL).most_common()
        ),
        errors=tuple(dict.fromkeys(r.error for r in records if r.error)),
    )
