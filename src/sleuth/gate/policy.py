"""The ``gate check`` policy file: per metric, what is checked and how strictly.

```yaml
version: 1
branch: main                 # judge only this branch's runs (default: every branch)
include_failed: true         # failed CI runs count (a slow run that failed its job is data)
fdr: 0.05                    # Benjamini-Hochberg level across the metrics' regression tests
metrics:
  "BenchmarkDetector:allocs/op":      # exact metric name, or a glob ("*:allocs/op")
    kind: counter                      # any exact change fails (within tolerance)
    tolerance: 0
  "helm:install_to_ready_s":
    kind: time
    direction: lower                   # lower is better
    budget: {max: 300, runs: 10, rule: median}
    regression: {baseline_runs: 10, recent_runs: 3, min_effect: "5%"}
    confirmations: 2                   # a hard FAIL needs 2 consecutive failing runs
    mode: hard                         # soft: report, never fail the job
```

Keys are matched in file order: an exact name first, then the first glob that matches.  A key is
read as ``record`` stores a name (secrets hidden, a long name fitted); two keys that become one are
an error.
"""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from sleuth.errors import ConfigError

__all__ = [
    "BudgetSpec",
    "MetricPolicy",
    "Policy",
    "RegressionSpec",
    "Tolerance",
    "load_policy",
    "parse_tolerance",
    "policy_schema",
]

PositiveInt = Annotated[int, Field(gt=0, strict=True)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Probability = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]


class Tolerance(BaseModel):
    """An allowed deviation: absolute (``1``) or relative (``"5%"``)."""

    model_config = ConfigDict(frozen=True)

    value: float
    relative: bool

    def allows(self, observed: float, reference: float) -> bool:
        """Whether ``observed`` lies within the tolerance of ``reference`` (<=, boundary allowed)."""
        return not self.excess(max(observed, reference), min(observed, reference), reference)

    def excess(self, worse: float, better: float, reference: float) -> bool:
        """Whether ``worse - better`` (positive = worse) exceeds the tolerance of ``reference``.

        Near the float limit the difference overflows to inf, and so may a relative limit
        (``inf > inf`` is False: a wrong pass); both sides are then compared halved, which is exact there.
        """
        slack = 1e-12 * max(1.0, abs(reference))
        gap = worse - better
        if math.isinf(gap):
            half = abs(reference) / 2.0 * self.value if self.relative else self.value / 2.0
            return worse / 2.0 - better / 2.0 > half + slack / 2.0
        limit = abs(reference) * self.value if self.relative else self.value
        return gap > limit + slack

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


def parse_tolerance(value: Any, what: str = "tolerance") -> Tolerance:
    """``1`` / ``0.5`` (absolute) or ``"5%"`` (relative); ValueError naming ``what`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number or a percentage like '5%', got {value!r}")
    if isinstance(value, int | float):
        v, rel = float(value), False
    elif isinstance(value, str):
        text = value.strip()
        rel = text.endswith("%")
        try:
            v = float(text[:-1] if rel else text)
        except ValueError:
            raise ValueError(f"{what} must be a number or a percentage like '5%', got {value!r}") from None
        v = v / 100.0 if rel else v
    else:
        raise ValueError(f"{what} must be a number or a percentage like '5%', got {value!r}")
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{what} must be finite and >= 0, got {value!r}")
    return Tolerance(value=v, relative=rel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetSpec(_Strict):
    """A budget on the median: ``max`` (lower is better) or ``min`` (higher is better)."""

    max: Finite | None = None
    min: Finite | None = None
    #: runs the median is taken over (the most recent ones); fewer is INSUFFICIENT
    runs: PositiveInt = 10
    #: ``bound``: PASS when the order-statistic upper bound of the median is within budget, FAIL when
    #: the lower bound is over, INCONCLUSIVE between; ``median``: the sample median decides
    rule: Literal["bound", "median"] = "bound"
    #: coverage of the order-statistic bounds (each side)
    confidence: Probability = 0.95

    @model_validator(mode="after")
    def _one_side(self) -> BudgetSpec:
        if (self.max is None) == (self.min is None):
            raise ValueError("give exactly one of max (lower is better) or min (higher is better)")
        if self.rule == "bound":  # the median of the last `runs` runs: more runs would never answer
            from sleuth.gate.robust import median_runs_needed

            need = median_runs_needed(self.confidence)
            if self.runs < need:
                raise ValueError(
                    f"runs {self.runs} bound no median at confidence {self.confidence:g} (it would stay "
                    f"INSUFFICIENT for ever): give runs >= {need}, or rule: median"
                )
        return self


class RegressionSpec(_Strict):
    """Recent runs against the runs before them, a run one value: one-sided t test plus a minimum effect."""

    baseline_runs: PositiveInt = 10
    recent_runs: PositiveInt = 1
    #: the smallest worsening that counts, of the baseline median ("2%") or absolute (0.5)
    min_effect: float | str = "2%"
    #: significance of the (Benjamini-Hochberg adjusted) test
    alpha: Probability = 0.05

    @field_validator("min_effect")
    @classmethod
    def _effect(cls, v: float | str) -> float | str:
        parse_tolerance(v, "min_effect")
        return v

    @model_validator(mode="after")
    def _room_for_noise(self) -> RegressionSpec:
        if self.baseline_runs + self.recent_runs < 3:  # no degrees of freedom for run-to-run noise
            raise ValueError(
                f"baseline_runs {self.baseline_runs} + recent_runs {self.recent_runs} runs cannot tell a "
                "change from run-to-run noise: give at least 3 runs in all (baseline_runs: 10 is the default)"
            )
        return self

    def effect(self) -> Tolerance:
        """``min_effect`` parsed."""
        return parse_tolerance(self.min_effect, "min_effect")


class MetricPolicy(_Strict):
    """How one metric (or a glob of metrics) is judged."""

    #: ``counter``: a deterministic count (allocs/op): any change beyond ``tolerance`` fails;
    #: ``time``: a noisy measurement: budget and/or regression tests
    kind: Literal["counter", "time"] = "time"
    direction: Literal["lower", "higher"] = "lower"
    budget: BudgetSpec | None = None
    #: time metrics: the regression test (on by default; ``null`` turns it off)
    regression: RegressionSpec | None = RegressionSpec()
    #: counters: allowed deviation from the reference (baseline median or --baseline file)
    tolerance: float | str = 0
    #: counters: how many runs before the judged ones make the reference
    baseline_runs: PositiveInt = 10
    #: a hard FAIL needs this many consecutive failing runs (fewer: INCONCLUSIVE)
    confirmations: PositiveInt = 1
    mode: Literal["soft", "hard"] = "hard"

    @field_validator("tolerance")
    @classmethod
    def _tol(cls, v: float | str) -> float | str:
        parse_tolerance(v)
        return v

    def tol(self) -> Tolerance:
        """``tolerance`` parsed."""
        return parse_tolerance(self.tolerance)

    def runs_needed(self) -> int:
        """The most recent runs with this metric its checks can look at (confirmations included)."""
        window = self.baseline_runs + 1 if self.kind == "counter" else 1
        if self.budget is not None:
            window = max(window, self.budget.runs)
        if self.kind == "time" and self.regression is not None:
            window = max(window, self.regression.baseline_runs + self.regression.recent_runs)
        return window + self.confirmations - 1


class Policy(_Strict):
    """A whole policy file."""

    version: Literal[1] = 1
    branch: str | None = None
    include_failed: bool = True
    fdr: Probability = 0.05
    metrics: dict[str, MetricPolicy] = Field(min_length=1)
    #: the glob keys in file order: a policy of 10,000 exact keys was searched whole for each
    #: metric it does not name (10^8 tests for a history of 10,000 more metrics)
    _globs: tuple[tuple[str, MetricPolicy], ...] = PrivateAttr(default=())

    @field_validator("metrics", mode="after")
    @classmethod
    def _stored_names(cls, v: dict[str, MetricPolicy]) -> dict[str, MetricPolicy]:
        """Metric names (and globs) as ``record`` stores a name (:func:`sleuth.gate.ingest.stored_metric`:
        secrets hidden, this shell's secret values too, a name over 500 characters fitted): a key
        holding a token was printed whole by every view, and one over 500 characters or holding a
        secret value of the shell matched no recorded run.  Two keys that become one are an error."""
        from sleuth.gate.ingest import stored_metrics

        stored = stored_metrics(list(v))
        return {stored[k]: pol for k, pol in v.items()}

    @field_validator("branch", mode="after")
    @classmethod
    def _scrubbed_branch(cls, v: str | None) -> str | None:
        """The branch as recorded branches are stored (:func:`sleuth.gate.model.stored_branch`: a
        branch the rule hides whole, ``renovate/Major-Updates-Python3-2025``, was kept as written
        here and matched no run)."""
        from sleuth.gate.model import stored_branch

        return None if v is None else stored_branch(v)

    def model_post_init(self, context: Any, /) -> None:
        """Index the glob keys once."""
        self._globs = tuple((k, pol) for k, pol in self.metrics.items() if any(c in k for c in "*?["))

    def runs_needed(self) -> int:
        """The most recent runs any metric's checks can look at (confirmations included)."""
        return max(pol.runs_needed() for pol in self.metrics.values())

    def for_metric(self, name: str) -> MetricPolicy | None:
        """The policy of ``name``: its exact key, else the first glob key that matches, else None."""
        if name in self.metrics:
            return self.metrics[name]
        for pattern, pol in self._globs:
            if fnmatch.fnmatchcase(name, pattern):
                return pol
        return None


def policy_schema() -> dict[str, Any]:
    """JSON Schema of the policy file (``sleuth schema gate-policy``)."""
    return Policy.model_json_schema()


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file; ConfigError ``FILE: key.path: message`` otherwise."""
    from sleuth.datafile import format_validation_error, load_data_file

    data = load_data_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a policy is a mapping with a 'metrics' key, got {type(data).__name__}")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None
