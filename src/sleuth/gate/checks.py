"""``gate check``: judge the latest runs of each metric against its policy.

Components (each gives PASS / FAIL / INCONCLUSIVE / INSUFFICIENT with its numbers):

* **budget** on the median of the last ``runs`` run values: with ``rule: bound`` PASS when the
  order-statistic upper bound of the median is within budget (``<=``), FAIL when the lower bound is
  over it, INCONCLUSIVE between; with ``rule: median`` the sample median decides (``<=`` passes;
  an even count averages the two middle values).
* **regression** (time metrics): the last ``recent_runs`` runs against the ``baseline_runs`` runs
  before them, each run one value (its median): a one-sided two-sample t test in the "worse"
  direction (:func:`~sleuth.gate.robust.run_shift`; the run is the unit, since a run's samples share
  its runner and are not independent), its p-values adjusted across metrics by Benjamini-Hochberg,
  and the change of the mean with its interval.  FAIL when significant (``q`` at most ``alpha`` and
  the policy's ``fdr``) *and* the change is at least ``min_effect``; INCONCLUSIVE when the change is
  that large but not significant; PASS otherwise.
* **counter**: every sample of the latest run equals the reference (the median of the runs before
  it, or the ``--baseline`` file's value) within ``tolerance``; any other value FAILs.
* **baseline** (time metrics with a ``--baseline`` entry that has a tolerance): the latest run's
  value is not worse than the file's by more than the tolerance.

A component's FAIL becomes a hard FAIL only when it also failed in each of the ``confirmations - 1``
runs before (each judged on the history as it was then); otherwise it is INCONCLUSIVE.  A metric's
verdict is its worst component (FAIL > INCONCLUSIVE > INSUFFICIENT > PASS).

Values near the float limit: every comparison is made where nothing overflows (``inf >= inf`` would
hold whatever the true values), so scaling a whole history changes no verdict; a sample that is not
finite (NaN compares False, so it would pass) makes the metric INCONCLUSIVE.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sleuth.gate.model import Run, Verdict, exit_code_for
from sleuth.gate.policy import BudgetSpec, MetricPolicy, Policy, RegressionSpec, Tolerance
from sleuth.gate.robust import (
    benjamini_hochberg,
    downscale,
    median,
    median_bounds,
    median_runs_needed,
    run_shift,
)
from sleuth.model import printable

__all__ = ["CheckReport", "Finding", "MetricCheck", "check"]

_SEVERITY = {Verdict.PASS: 0, Verdict.INSUFFICIENT: 1, Verdict.INCONCLUSIVE: 2, Verdict.FAIL: 3}


@dataclass(frozen=True, slots=True)
class Finding:
    """One component's verdict on one metric."""

    check: str
    verdict: Verdict
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)
    needed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "check": self.check,
            "verdict": self.verdict.value,
            "summary": self.summary,
            "runs_needed": self.needed,
            **dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class MetricCheck:
    """A metric's verdict and the findings behind it."""

    metric: str
    unit: str
    kind: str
    mode: str
    verdict: Verdict
    runs: int
    findings: tuple[Finding, ...]

    @property
    def needed(self) -> int | None:
        """More runs needed before every component can answer (None when none are)."""
        wanted = [f.needed for f in self.findings if f.verdict is Verdict.INSUFFICIENT and f.needed]
        return max(wanted) if wanted else None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "metric": self.metric,
            "unit": self.unit,
            "kind": self.kind,
            "mode": self.mode,
            "verdict": self.verdict.value,
            "runs": self.runs,
            "runs_needed": self.needed,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Every judged metric of one suite."""

    suite: str
    runs: int
    results: tuple[MetricCheck, ...]

    def exit_code(self) -> int:
        """1 when a hard metric FAILs, else 3 when one is undecided (or nothing was judged), else 0."""
        hard = [r for r in self.results if r.mode == "hard"]
        failed = any(r.verdict is Verdict.FAIL for r in hard)
        undecided = not self.results or any(
            r.verdict in (Verdict.INCONCLUSIVE, Verdict.INSUFFICIENT) for r in hard
        )
        return exit_code_for(failed, undecided)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        counts = {v.value: sum(r.verdict is v for r in self.results) for v in Verdict}
        return {
            "suite": self.suite,
            "runs": self.runs,
            "counts": counts,
            "exit_code": self.exit_code(),
            "metrics": [r.to_dict() for r in self.results],
        }


def _worse_by(delta: float, direction: str) -> float:
    """A change expressed so that positive means worse."""
    return delta if direction == "lower" else -delta


def _budget(values: Sequence[float], spec: BudgetSpec) -> Finding:
    vals = list(values)[-spec.runs :]
    n = len(vals)
    limit = spec.max if spec.max is not None else spec.min
    assert limit is not None
    side = "<=" if spec.max is not None else ">="
    base = {"budget": limit, "side": side, "rule": spec.rule, "n": n, "runs": spec.runs}
    if n < spec.runs:
        return Finding(
            "budget",
            Verdict.INSUFFICIENT,
            f"{n} of {spec.runs} runs for the median budget",
            base,
            spec.runs - n,
        )
    med = median(vals)
    mb = median_bounds(vals, spec.confidence)
    details = {**base, "median": med}
    if mb is not None:
        details.update(lower=mb.lower, upper=mb.upper, coverage=mb.coverage, rank=mb.rank)

    def within(x: float) -> bool:
        return x <= limit if spec.max is not None else x >= limit

    if spec.rule == "median":
        ok = within(med)
        text = f"median {med:g} {side} {limit:g}" if ok else f"median {med:g} breaks {side} {limit:g}"
        return Finding("budget", Verdict.PASS if ok else Verdict.FAIL, text, details)
    if mb is None:
        need = median_runs_needed(spec.confidence)
        return Finding(
            "budget",
            Verdict.INSUFFICIENT,
            f"{n} runs bound no median at {spec.confidence:.0%}; raise runs to {need}",
            details,
            need - n,
        )
    near, far = (mb.upper, mb.lower) if spec.max is not None else (mb.lower, mb.upper)
    cov = f"{mb.coverage:.1%}"
    if within(near):
        return Finding(
            "budget", Verdict.PASS, f"median {med:g}, {cov} bound {near:g} {side} {limit:g}", details
        )
    if not within(far):
        return Finding(
            "budget", Verdict.FAIL, f"median {med:g}, {cov} bound {far:g} breaks {side} {limit:g}", details
        )
    return Finding(
        "budget",
        Verdict.INCONCLUSIVE,
        f"median {med:g}; its {cov} bounds [{mb.lower:g}, {mb.upper:g}] straddle the budget {limit:g}",
        details,
    )


@dataclass(frozen=True, slots=True)
class _RegressionData:
    p: float
    details: dict[str, Any]
    worse_by: float
    limit: float


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _regression_data(
    series: Sequence[Sequence[float]], spec: RegressionSpec, direction: str
) -> _RegressionData | int:
    """The test's numbers, or how many more runs it needs."""
    need = spec.baseline_runs + spec.recent_runs
    if len(series) < need:
        return need - len(series)
    recent_runs, base_runs = series[-spec.recent_runs :], series[-need : -spec.recent_runs]
    recent, base = [median(run) for run in recent_runs], [median(run) for run in base_runs]
    ref = median(base)
    # judged in units where the change and the limit stay finite: near the float limit they would
    # overflow to inf, and inf >= inf holds whatever the true values are
    f = downscale([*base, *recent])
    worse_dir = "greater" if direction == "lower" else "less"
    conf = 1.0 - 2.0 * spec.alpha
    shift = run_shift([x * f for x in base], [x * f for x in recent], worse=worse_dir, conf=conf)
    assert shift is not None  # the policy asks for at least three runs
    p = shift.p
    worse = _worse_by(shift.estimate, direction)
    tol = spec.effect()
    limit = abs(ref * f) * tol.value if tol.relative else tol.value * f
    rel = (shift.estimate / abs(ref * f)) if ref else None
    details = {
        "p_value": p,
        "test": "t on run medians",
        "baseline_median": ref,
        "recent_median": median(recent),
        # JSON has no infinity: a change (or an interval side) beyond what a float holds is null
        "shift": _finite_or_none(shift.estimate / f),
        "shift_interval": [_finite_or_none(x / f) for x in (shift.lower, shift.upper)],
        "interval_confidence": shift.conf,
        "relative_shift": _finite_or_none(rel),
        "run_spread": _finite_or_none(shift.spread / f),
        "degrees_of_freedom": shift.df,
        "min_effect": str(tol),
        "n_recent": len(recent),
        "n_baseline": len(base),
        "samples_recent": sum(len(run) for run in recent_runs),
        "samples_baseline": sum(len(run) for run in base_runs),
    }
    return _RegressionData(p=p, details=details, worse_by=worse, limit=limit)


def _regression_finding(
    data: _RegressionData | int, q: float | None, spec: RegressionSpec, fdr: float
) -> Finding:
    if isinstance(data, int):
        total = spec.baseline_runs + spec.recent_runs
        return Finding("regression", Verdict.INSUFFICIENT, f"needs {total} runs with this metric", {}, data)
    assert q is not None
    level = min(spec.alpha, fdr)  # the metric's alpha, within the policy's false discovery rate
    d = {**data.details, "q_value": q, "level": level}
    rel, est = d["relative_shift"], d["shift"]
    shift = f"{rel:+.2%}" if rel is not None else f"{est:+g}" if est is not None else "beyond the float range"
    lo, hi = (f"{x:+.4g}" if x is not None else "unbounded" for x in d["shift_interval"])
    text = f"shift {shift} [{lo}, {hi}], p={data.p:.3g} q={q:.3g}"
    big = data.worse_by > 0 and data.worse_by >= data.limit
    if big and q <= level:
        return Finding("regression", Verdict.FAIL, f"regressed: {text}", d)
    if big:
        return Finding(
            "regression",
            Verdict.INCONCLUSIVE,
            f"worse by >= {d['min_effect']} but not significant: {text}",
            d,
        )
    return Finding("regression", Verdict.PASS, text, d)


def _counter(
    series: Sequence[Sequence[float]], pol: MetricPolicy, reference: float | None, tol: Tolerance
) -> Finding:
    if not series:
        return Finding("counter", Verdict.INSUFFICIENT, "no run has this metric", {}, 1)
    latest = series[-1]
    source = "baseline file"
    if reference is None:
        before = [median(run) for run in series[:-1][-pol.baseline_runs :] if run]
        if not before:
            return Finding("counter", Verdict.INSUFFICIENT, "no earlier run to compare with", {}, 1)
        reference = median(before)
        source = f"median of {len(before)} earlier run(s)"
    off = sorted({x for x in latest if not tol.allows(x, reference)})
    details = {
        "reference": reference,
        "reference_from": source,
        "tolerance": str(tol),
        "observed": sorted(set(latest)),
    }
    if not off:
        return Finding(
            "counter",
            Verdict.PASS,
            f"{median(latest):g} = reference {reference:g} (tolerance {tol})",
            details,
        )
    way = "up" if max(off, key=lambda x: abs(x - reference)) > reference else "down"
    return Finding(
        "counter",
        Verdict.FAIL,
        f"changed {way}: {', '.join(f'{x:g}' for x in off[:5])} vs {reference:g}",
        details,
    )


def _baseline(
    series: Sequence[Sequence[float]], entry: Mapping[str, Any], tol: Tolerance, direction: str
) -> Finding:
    if not series or not series[-1]:
        return Finding("baseline", Verdict.INSUFFICIENT, "no run has this metric", {}, 1)
    ref = float(entry["value"])
    value = median(series[-1])
    worse, better = (value, ref) if direction == "lower" else (ref, value)
    details = {"baseline": ref, "value": value, "tolerance": str(tol)}
    if tol.excess(worse, better, ref):
        return Finding(
            "baseline", Verdict.FAIL, f"{value:g} is worse than baseline {ref:g} beyond {tol}", details
        )
    return Finding("baseline", Verdict.PASS, f"{value:g} within {tol} of baseline {ref:g}", details)


def _confirm(findings: list[Finding], confirmations: int) -> Finding:
    """The latest finding, its FAIL kept only when the ``confirmations - 1`` before it failed too."""
    latest = findings[0]
    if latest.verdict is not Verdict.FAIL or confirmations <= 1:
        return latest
    k = 1
    while k < len(findings) and findings[k].verdict is Verdict.FAIL:
        k += 1
    if k >= confirmations:
        return Finding(
            latest.check, Verdict.FAIL, f"{latest.summary} ({confirmations} consecutive runs)", latest.details
        )
    return Finding(
        latest.check,
        Verdict.INCONCLUSIVE,
        f"{latest.summary}; failing in {k} consecutive run(s), a hard FAIL needs {confirmations}",
        {**latest.details, "consecutive_failures": k, "confirmations": confirmations},
    )


def check(
    runs: Sequence[Run],
    policy: Policy,
    *,
    suite: str,
    baseline: Mapping[str, Mapping[str, Any]] | None = None,
    only: Sequence[str] = (),
    mode: str | None = None,
) -> CheckReport:
    """Judge every metric of ``runs`` (oldest first) that ``policy`` covers; see the module doc.

    ``baseline`` maps metric names to ``--baseline`` file entries (``value``, ``tolerance``);
    ``only`` restricts to these metric names; ``mode`` ("soft"/"hard") overrides every metric's.
    Exact policy keys without data get an
    INSUFFICIENT row, so a metric that stopped being reported never passes silently.
    """
    from sleuth.gate.graduate import metric_names, selected

    names = [m for m in metric_names(runs) if policy.for_metric(m) is not None]
    # a key without '*' or '?' names metrics ("test_parse[case1]" is a pytest id as much as a glob):
    # when no metric answers to it, it is a row of its own, INSUFFICIENT.  A name is looked up
    # first (a policy of 10,000 exact keys matched each against every name: 60 s of a check)
    present = set(names)
    names += [
        k
        for k in policy.metrics
        if not any(c in k for c in "*?")
        and k not in present
        and ("[" not in k or not any(selected(n, [k]) for n in present))
    ]
    if only:
        names = [m for m in names if m in only]
    baseline = baseline or {}
    series: dict[str, list[list[float]]] = {
        m: [list(s.values) for r in runs if (s := r.sample(m)) is not None and s.values] for m in names
    }
    units = {m: next((s.unit for r in runs if (s := r.sample(m)) is not None), "") for m in names}
    # regression p-values per as-of point, adjusted across metrics (Benjamini-Hochberg)
    reg: dict[tuple[str, int], _RegressionData | int] = {}
    for m in names:
        pol = policy.for_metric(m)
        assert pol is not None
        if pol.kind == "time" and pol.regression is not None:
            for j in range(pol.confirmations):
                hist = series[m][: len(series[m]) - j]
                reg[(m, j)] = _regression_data(hist, pol.regression, pol.direction)
    qvals: dict[tuple[str, int], float] = {}
    for j in {j for _, j in reg}:
        keys = [k for k, v in reg.items() if k[1] == j and not isinstance(v, int)]
        ps = [reg[k].p for k in keys]  # type: ignore[union-attr]
        qvals.update(zip(keys, benjamini_hochberg(ps), strict=True))
    results = []
    for m in names:
        pol = policy.for_metric(m)
        assert pol is not None
        res = _metric(
            m,
            units[m],
            pol=pol,
            series=series[m],
            reg=reg,
            qvals=qvals,
            entry=baseline.get(m),
            fdr=policy.fdr,
        )
        results.append(res if mode is None else replace(res, mode=mode))
    return CheckReport(suite=suite, runs=len(runs), results=tuple(results))


def _metric(
    m: str,
    unit: str,
    *,
    pol: MetricPolicy,
    series: list[list[float]],
    reg: Mapping[tuple[str, int], _RegressionData | int],
    qvals: Mapping[tuple[str, int], float],
    entry: Mapping[str, Any] | None,
    fdr: float,
) -> MetricCheck:
    from sleuth.gate.policy import parse_tolerance

    bad = sum(not math.isfinite(x) for run in series for x in run)
    if bad:  # record refuses them and the stores skip them; a NaN compares False, so it would pass
        finding = Finding(
            "values",
            Verdict.INCONCLUSIVE,
            f"{bad} sample(s) are not finite numbers (inf or NaN): cannot be judged; record the runs again",
            {"not_finite": bad},
        )
        return MetricCheck(
            printable(m), unit, pol.kind, pol.mode, Verdict.INCONCLUSIVE, len(series), (finding,)
        )
    per_component: dict[str, list[Finding]] = {}
    for j in range(pol.confirmations):
        hist = series[: len(series) - j]
        if j and not hist:
            break
        values = [median(run) for run in hist]
        if pol.budget is not None:
            per_component.setdefault("budget", []).append(_budget(values, pol.budget))
        if pol.kind == "counter":
            ref = float(entry["value"]) if entry is not None else None
            tol = (
                parse_tolerance(entry["tolerance"])
                if entry is not None and entry.get("tolerance") is not None
                else pol.tol()
            )
            per_component.setdefault("counter", []).append(_counter(hist, pol, ref, tol))
        elif pol.regression is not None:
            per_component.setdefault("regression", []).append(
                _regression_finding(reg[(m, j)], qvals.get((m, j)), pol.regression, fdr)
            )
        if pol.kind == "time" and entry is not None and entry.get("tolerance") is not None:
            per_component.setdefault("baseline", []).append(
                _baseline(hist, entry, parse_tolerance(entry["tolerance"]), pol.direction)
            )
    findings = tuple(_confirm(fs, pol.confirmations) for fs in per_component.values())
    if not findings:
        findings = (
            Finding(
                "policy", Verdict.PASS, "nothing to check for this metric (no budget, regression or counter)"
            ),
        )
    verdict = max((f.verdict for f in findings), key=lambda v: _SEVERITY[v])
    return MetricCheck(
        metric=printable(m),  # a policy key without data is shown under its own name: no escapes
        unit=unit,
        kind=pol.kind,
        mode=pol.mode,
        verdict=verdict,
        runs=len(series),
        findings=findings,
    )
