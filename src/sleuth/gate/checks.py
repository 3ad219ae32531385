"""``gate check``: judge the latest runs of each metric against its policy.

Components (:mod:`sleuth.gate.components`: **budget**, **regression**, **counter**, **baseline**),
each gives PASS / FAIL / INCONCLUSIVE / INSUFFICIENT with its numbers; the regression p-values of
every metric are adjusted together here (Benjamini-Hochberg), as of each run that confirmations look at.

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
from dataclasses import dataclass, replace
from typing import Any

from sleuth.gate.components import (
    Finding,
    _baseline,
    _budget,
    _counter,
    _regression_data,
    _regression_finding,
    _RegressionData,
)
from sleuth.gate.model import Run, Verdict, exit_code_for
from sleuth.gate.policy import MetricPolicy, Policy
from sleuth.gate.robust import benjamini_hochberg, median
from sleuth.model import printable

__all__ = ["CheckReport", "Finding", "MetricCheck", "check"]

_SEVERITY = {Verdict.PASS: 0, Verdict.INSUFFICIENT: 1, Verdict.INCONCLUSIVE: 2, Verdict.FAIL: 3}


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
