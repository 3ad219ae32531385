"""The gate verbs' library half: record runs, read a metric's series, run change points on it.

The CLI parses flags and renders; these functions decide and touch the store.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.errors import UsageError
from sleuth.gate.changepoint import ChangePoint, Incremental, Settings, detect
from sleuth.gate.ingest import ArtifactScan, Ingested, run_from_artifact
from sleuth.gate.model import Run, RunStatus
from sleuth.gate.store.base import Store

if TYPE_CHECKING:  # pydantic: not imported by record, which does not need it
    from sleuth.gate.policy import Policy

__all__ = [
    "RecordResult",
    "Series",
    "changepoints",
    "check_runs",
    "metric_series",
    "read_csv_series",
    "recent_runs",
    "record_artifacts",
    "record_run",
]


@dataclass(slots=True)
class RecordResult:
    """What a ``record`` did: runs recorded, runs already there, artifacts skipped (with why)."""

    recorded: list[dict[str, Any]] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    garbage: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "recorded": self.recorded,
            "already_recorded": self.already,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "skipped_lines": self.garbage,
        }


def _summary(run: Run) -> dict[str, Any]:
    return {
        "suite": run.suite,
        "run_id": run.run_id,
        "status": run.status.value,
        "commit": run.commit,
        "branch": run.branch,
        "created_at": run.created_at,
        "metrics": len(run.samples),
        "samples": sum(len(s.values) for s in run.samples),
        "skipped_lines": int(run.source.get("skipped", 0)),
        "formats": sorted({str(f["format"]) for f in run.source.get("files", [])}),
    }


def record_run(store: Store, run: Run, *, replace: bool = False) -> RecordResult:
    """Store one run, secrets hidden (already-recorded is reported, not an error).  A commit is
    hidden as every output hides it (:func:`sleuth.gate.model.clean`: the rule, this shell's secret
    values), then cut: cut first, the start of a secret that straddled the cut stayed."""
    from sleuth.gate.model import COMMIT_MAX, clean, fit, stored_branch
    from sleuth.gate.provenance import public

    run = dataclasses.replace(
        run,
        commit=fit(clean(public(run.commit, "commit")), COMMIT_MAX) if run.commit is not None else None,
        branch=stored_branch(run.branch) if run.branch is not None else None,
        provenance=public(run.provenance),
        source=public(run.source),
    )
    res = RecordResult(garbage=int(run.source.get("skipped", 0)))
    if store.add_run(run, replace=replace):
        res.recorded.append(_summary(run))
    else:
        res.already.append(f"{run.suite}/{run.run_id}")
    return res


def recent_runs(
    store: Store,
    suite: str,
    need: Callable[[str], int | None],
    *,
    last: int,
    branch: str | None = None,
    statuses: Sequence[RunStatus] | None = None,
) -> list[Run]:
    """The suite's most recent runs: at least ``last``, and more while a metric seen in them is in
    fewer than ``need(metric)`` of them (None: not judged) and older runs still add some of it; a
    metric that one run in five records needs five times as many runs."""
    short: dict[str, int] = {}
    while True:
        runs = store.runs(suite, branch=branch, statuses=statuses, last=last)
        if len(runs) < last:
            return runs  # the whole history
        have: dict[str, int] = {}
        for r in runs:
            for s in r.samples:
                if s.values:
                    have[s.metric] = have.get(s.metric, 0) + 1
        gained = not short or any(have.get(m, 0) > n for m, n in short.items())
        short = {m: n for m, n in have.items() if (k := need(m)) is not None and n < k}
        if not short or not gained:
            return runs
        last *= 4


def check_runs(store: Store, suite: str, policy: Policy) -> list[Run]:
    """The runs ``check`` judges: enough that each policy metric has the runs its checks need."""

    def need(metric: str) -> int | None:
        pol = policy.for_metric(metric)
        return None if pol is None else pol.runs_needed()

    statuses = None if policy.include_failed else [RunStatus.SUCCESS]
    return recent_runs(
        store, suite, need, last=3 * policy.runs_needed() + 20, branch=policy.branch, statuses=statuses
    )


def build_run(ingested: Ingested, meta: Mapping[str, Any], provenance: Mapping[str, Any]) -> Run:
    """A run from parsed files and the flags that describe it."""
    return Run(
        suite=str(meta["suite"]),
        run_id=str(meta["run_id"]),
        created_at=str(meta["created_at"]),
        status=RunStatus(meta.get("status", "success")),
        commit=meta.get("commit"),
        branch=meta.get("branch"),
        samples=ingested.samples,
        provenance=dict(provenance),
        source=ingested.source(),
    )


def record_artifacts(
    store: Store, scan: ArtifactScan, *, suite: str | None = None, replace: bool = False, fmt: str = "auto"
) -> RecordResult:
    """Record every run of an artifact tree (oldest first by their metadata); skipped folders counted
    (one whose listed files cannot be read too: the tree's other runs are recorded)."""
    res = RecordResult(skipped=list(scan.skipped))
    arts = sorted(scan.artifacts, key=lambda a: (str(a.meta.get("created_at") or ""), str(a.meta["run_id"])))
    for art in arts:
        if suite is not None and art.meta["suite"] != suite:
            res.skipped.append((str(art.folder), f"suite {art.meta['suite']!r}, not {suite!r}"))
            continue
        if not replace and store.has_run(str(art.meta["suite"]), str(art.meta["run_id"])):
            res.already.append(f"{art.meta['suite']}/{art.meta['run_id']}")
            continue
        try:
            run = run_from_artifact(art, fmt)
        except UsageError as exc:
            # a listed file unreadable (or gone since the scan): skipped, as a folder without its files is
            res.skipped.append((str(art.folder), str(exc)))
            continue
        one = record_run(store, run, replace=replace)
        res.recorded += one.recorded
        res.already += one.already
        res.garbage += one.garbage
    return res


@dataclass(frozen=True, slots=True)
class Series:
    """A metric's history: one value per run (the median of its samples), oldest first."""

    values: tuple[float, ...]
    labels: tuple[str, ...]


def metric_series(runs: Sequence[Run], metric: str) -> Series:
    """The runs' values of ``metric`` (runs without it are left out)."""
    pairs = [(v, r.run_id) for r in runs if (v := r.value(metric)) is not None]
    return Series(values=tuple(v for v, _ in pairs), labels=tuple(label for _, label in pairs))


def read_csv_series(path: Path, column: str | None) -> tuple[Series, int]:
    """A numeric column of a CSV file (header optional) and how many cells were not numbers.

    Without ``column``: the last column.  A missing file or an unknown column is a UsageError.
    """
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except FileNotFoundError:
        raise UsageError(f"--csv {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--csv {path}: is a directory") from None
    except OSError as exc:
        raise UsageError(f"--csv {path}: cannot read: {exc.strerror}") from None
    try:
        rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    except csv.Error as exc:  # a field over the csv module's limit (128 KiB): not a series
        raise UsageError(f"--csv {path}: not a CSV series ({exc})") from None
    if not rows:
        return Series((), ()), 0
    header = [c.strip() for c in rows[0]]
    has_header = not all(_number(c) is not None or not c.strip() for c in header)
    body = rows[1:] if has_header else rows
    if column is not None:
        if not has_header or column not in header:
            cols = ", ".join(header) if has_header else "none (no header line)"
            raise UsageError(f"--column {column!r}: not a column of {path}", hint=f"columns: {cols}")
        idx = header.index(column)
    else:
        idx = len(header) - 1
    values, labels, bad = [], [], 0
    for i, row in enumerate(body):
        v = _number(row[idx]) if idx < len(row) else None
        if v is None:
            bad += 1
            v = math.nan
        values.append(v)
        labels.append(row[0] if has_header and idx != 0 and row else str(i))
    return Series(tuple(values), tuple(labels)), bad


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _digest(series: Series, n: int) -> str:
    """A fingerprint of the first ``n`` points (values and run ids) of ``series``."""
    import hashlib
    import struct

    h = hashlib.sha256()
    for v, label in zip(series.values[:n], series.labels[:n], strict=False):
        h.update(struct.pack("<d", v))
        h.update(label.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def _fits(det: Incremental, digest: object, series: Series) -> bool:
    """Whether the series starts with the points ``det`` has seen.  A state written before states
    kept a fingerprint is checked on its tail (each kept value at its position)."""
    if digest is not None:
        return digest == _digest(series, det.seen)
    return all(
        0 <= i < det.seen and series.values[i] == v for i, v in zip(det.positions, det.values, strict=True)
    )


def changepoints(
    series: Series,
    settings: Settings,
    *,
    state: Mapping[str, Any] | None = None,
    incremental: bool = False,
) -> tuple[list[ChangePoint], dict[str, Any] | None]:
    """Offline: every change point.  Incremental: the new ones since ``state``, and the new state.

    The state keeps a fingerprint of the points it has seen (values and run ids); when the series
    no longer starts with them (a run backfilled with an older time than those seen, a run
    re-recorded with ``--replace``, another branch, other settings) it is rebuilt from scratch, and
    the answer is the from-scratch one: the change points of the whole series, once more.
    """
    if not incremental:
        return detect(series.values, settings), None
    det = None
    if state is not None:
        try:
            det = Incremental.from_dict(dict(state))
        except (KeyError, TypeError, ValueError):
            det = None
        if det is not None and (
            det.settings != settings
            or det.seen > len(series.values)
            or not _fits(det, state.get("series"), series)
        ):
            det = None
    if det is None:
        det, found = Incremental.start(series.values, settings)
    else:
        found = det.extend(list(series.values[det.seen :]))
    return found, {**det.to_dict(), "series": _digest(series, det.seen)}
