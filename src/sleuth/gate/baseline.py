"""Committed per-metric baselines: capture them from recent history, diff them for a re-baseline PR.

The file (``baselines.json``)::

    {"schema": 1, "suite": "detectors", "captured_at": "...", "last": 10, "branch": "main",
     "metrics": {"BenchmarkDetector:allocs/op": {"value": 3.0, "unit": "allocs/op", "runs": 10,
                                                 "cv": 0.0, "tolerance": "1"}, ...}}

``value`` is the median of the last runs' values (each run's value is the median of its samples).
``tolerance`` (absolute like ``1`` or relative like ``"5%"``; null: exact for counters, no baseline
check for time metrics) is for people to edit: ``capture`` keeps the tolerances of an existing
file it overwrites, so re-baselining does not lose them.  A metric key is read as ``record`` stores
a name (:func:`sleuth.gate.ingest.stored_metric`), so a key edited by hand, or captured where a
value of the shell was no secret, still names its runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.errors import ConfigError
from sleuth.gate.graduate import metric_names, metric_values
from sleuth.gate.ingest import stored_metrics
from sleuth.gate.model import Run, clean_cut, utc_now
from sleuth.gate.policy import Tolerance, parse_tolerance
from sleuth.gate.robust import cv, median

__all__ = ["BaselineRow", "capture", "diff", "load_baseline"]


def capture(
    runs: Sequence[Run],
    *,
    suite: str,
    last: int,
    branch: str | None,
    patterns: Sequence[str] = (),
    keep: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The baseline document of the metrics of the ``last`` most recent ``runs``, each over the
    ``last`` most recent runs that have it (tolerances kept from ``keep``)."""
    old = (keep or {}).get("metrics", {}) if isinstance(keep, Mapping) else {}
    metrics: dict[str, Any] = {}
    for m in metric_names(list(runs)[-last:], patterns):
        values = metric_values(runs, m, last)
        unit = next((s.unit for r in reversed(runs) if (s := r.sample(m)) is not None), "")
        c = cv(values)
        prior = old.get(m) if isinstance(old, Mapping) else None
        metrics[m] = {
            "value": median(values),
            "unit": unit,
            "runs": len(values),
            "cv": None if math.isnan(c) else c,
            "tolerance": prior.get("tolerance") if isinstance(prior, Mapping) else None,
        }
    return {
        "schema": 1,
        "suite": suite,
        "captured_at": utc_now(),
        "last": last,
        "branch": branch,
        "metrics": metrics,
    }


def load_baseline(path: Path, what: str = "--baseline") -> dict[str, Any]:
    """Read and check a baseline file; ConfigError naming the file and key otherwise."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
            hint="save the file as UTF-8",
        ) from None
    except ValueError as exc:  # bad syntax, or an integer past the digit limit
        raise ConfigError(f"{what} {path}: not valid JSON: {clean_cut(exc, 200)}") from None
    except RecursionError:
        raise ConfigError(f"{what} {path}: not a baseline file (JSON nested too deeply)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        raise ConfigError(
            f"{what} {path}: metrics: required key is missing",
            hint="write it with 'sleuth gate baseline capture'",
        )
    if doc.get("schema", 1) != 1:
        raise ConfigError(f"{path}: schema: unsupported version {doc.get('schema')!r}")
    for key in ("suite", "branch"):  # 'baseline diff' takes them from the file when no flag is given
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise ConfigError(clean_cut(f"{path}: {key}: must be a string, got {doc[key]!r}", 300))
    last = doc.get("last")
    if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 1):
        raise ConfigError(clean_cut(f"{path}: last: must be a whole number of runs >= 1, got {last!r}", 300))
    try:  # named as `record` stores a name: a hand-edited key, one captured where a value was no secret
        stored = stored_metrics(list(doc["metrics"]))
    except ValueError as exc:
        raise ConfigError(f"{what} {path}: metrics: {exc}") from None
    doc["metrics"] = {stored[k]: entry for k, entry in doc["metrics"].items()}
    for name, entry in doc["metrics"].items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: metrics.{name}: an entry is an object with a 'value'")
        v = entry.get("value")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ConfigError(f"{path}: metrics.{name}.value: must be a finite number, got {v!r}")
        if entry.get("tolerance") is not None:
            try:
                parse_tolerance(entry["tolerance"])
            except ValueError as exc:
                raise ConfigError(f"{path}: metrics.{name}.tolerance: {exc}") from None
    return doc


@dataclass(frozen=True, slots=True)
class BaselineRow:
    """One metric in a baseline diff: ``status`` is same, moved, new or gone."""

    metric: str
    status: str
    old: float | None
    new: float | None
    tolerance: str | None

    @property
    def change(self) -> float | None:
        """Relative change new/old - 1 (None when undefined)."""
        if self.old is None or self.new is None or self.old == 0:
            return None
        return self.new / self.old - 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "metric": self.metric,
            "status": self.status,
            "old": self.old,
            "new": self.new,
            "change": self.change,
            "tolerance": self.tolerance,
        }


def diff(
    committed: Mapping[str, Any], current: Mapping[str, Any], default_tol: Tolerance
) -> list[BaselineRow]:
    """What moved from the committed baseline to a fresh capture (beyond each metric's tolerance)."""
    old, new = committed["metrics"], current["metrics"]
    rows = []
    for m in [*old, *(k for k in new if k not in old)]:
        o, n = old.get(m), new.get(m)
        tol_text = (o or {}).get("tolerance")
        tol = parse_tolerance(tol_text) if tol_text is not None else default_tol
        if o is None:
            rows.append(BaselineRow(m, "new", None, n["value"], None))
        elif n is None or math.isnan(n["value"]):
            rows.append(BaselineRow(m, "gone", o["value"], None, str(tol)))
        else:
            moved = not tol.allows(float(n["value"]), float(o["value"]))
            rows.append(BaselineRow(m, "moved" if moved else "same", o["value"], n["value"], str(tol)))
    return rows
