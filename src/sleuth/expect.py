"""Catch a typo in a metric flag before it costs a run: named metrics must be produced.

``--fail-above nope=3`` fails every trial (the metric is "missing"), and ``--metric a=step`` (a regex
that captures no number) records nothing; neither says so.  Two checks, usable by every verb that
names metrics (``sleuth run``, bisect's performance mode):

* :func:`metric_regex_problem` at parse time, for what can be decided from the regex alone;
* :func:`check_metrics` after the first trial that ran to completion: a metric named by a flag
  that no trial so far has produced is a usage error that lists the metrics that were seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sleuth.model import MetricSpec, TrialResult, printable
from sleuth.oracle import OracleConfig

__all__ = ["check_metrics", "metric_regex_problem", "ran_to_completion", "wanted_metrics"]

_META = set(".^$*+?{}[]\\|()")
#: characters a number float() accepts may start or end with (digits, sign, '.', inf, nan, infinity)
_FLOAT_START = set("0123456789+-.iInN \t")
_FLOAT_END = set("0123456789.fFnNyY \t")


def metric_regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` (no capturing group) can never yield a number, when the regex alone says so.

    The metric is the first group of the match, else the whole match.  Without a group, a plain
    literal (``step``) is a number only if it spells one, and a match that must begin or end with a
    letter (``step=\\d+``, ``\\d+ms``) never is.  Anything less certain is left to
    :func:`check_metrics` after the first trial.
    """
    if "(" in pattern.replace("\\(", "") or "|" in pattern or not pattern:
        return None  # a group (or an alternation) may capture anything: decided after a trial
    if not _META & set(pattern):
        try:
            float(pattern)
        except ValueError:
            return f"the regex has no group and matches only the text {pattern!r}, which is not a number"
        return None
    first, after = pattern[0], pattern[1:2]
    if first not in _META and first not in _FLOAT_START and after not in ("?", "*", "{"):
        return f"the regex has no group, so the whole match is the value, and it starts with {first!r}"
    last, before = pattern[-1], pattern[-2:-1]
    if last not in _META and last not in _FLOAT_END and before != "\\":
        return f"the regex has no group, so the whole match is the value, and it ends with {last!r}"
    return None


def wanted_metrics(metrics: Sequence[MetricSpec], oracle: OracleConfig) -> list[tuple[str, str]]:
    """``(flag, metric name)`` for every metric a flag names: ``--metric``, thresholds."""
    out = [("--metric-series" if m.series else "--metric", m.name) for m in metrics]
    out += [("--fail-above" if t.above else "--fail-below", t.name) for t in oracle.thresholds]
    return list(dict.fromkeys(out))


def ran_to_completion(result: TrialResult) -> bool:
    """True when the workload exited 0 on its own (a crash may stop before printing its metrics)."""
    return result.error is None and not result.timed_out and result.signal is None and result.rc == 0


def check_metrics(seen: Iterable[str], wanted: Iterable[tuple[str, str]]) -> str | None:
    """The usage error when a named metric was produced by no trial so far, else None.

    ``seen`` are the metric names the trials so far produced (call it once a trial has run to
    completion, see :func:`ran_to_completion`); ``wanted`` comes from :func:`wanted_metrics`.
    """
    produced = set(seen)
    missing = [(flag, name) for flag, name in wanted if name not in produced]
    if not missing:
        return None
    flag, name = missing[0]
    also = ", ".join(f"{f} {n}" for f, n in missing[1:])
    listing = printable(", ".join(sorted(produced))) or "none"  # names a workload wrote (metrics.json)
    return (
        f"{flag} {name}: no trial produced a metric {name!r}"
        + (f" (nor {also})" if also else "")
        + f"; metrics seen: {listing}"
    )
