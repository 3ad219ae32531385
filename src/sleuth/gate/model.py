"""The gate room's words in code: a run's samples, a recorded run, verdicts.

A *run* is one CI run of a benchmark suite (one ``go test -bench -count=10`` job, one pytest-benchmark
session): its provenance, its status (failed runs are kept), and per *metric* the samples it
produced (the 10 repetitions of ``-count=10``).  Gates judge metrics across runs; the value of one
run for one metric is the median of its samples (:meth:`Run.value`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from sleuth.errors import ExitCode
from sleuth.gate.robust import median

__all__ = [
    "BRANCH_MAX",
    "COMMIT_MAX",
    "METRIC_MAX",
    "READER_VERSION",
    "UNIT_MAX",
    "Graduation",
    "Run",
    "RunStatus",
    "Sample",
    "Verdict",
    "clean",
    "clean_doc",
    "exit_code_for",
    "fit",
    "looks_secret",
    "parse_time",
    "stored_branch",
    "stored_name",
    "stored_names",
    "stored_time",
    "utc_now",
    "utc_text",
]


#: the longest metric name, unit, branch and commit a history keeps (PostgreSQL's columns hold no more)
METRIC_MAX, UNIT_MAX, BRANCH_MAX, COMMIT_MAX = 500, 100, 300, 100


def fit(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters: a longer one keeps its start and ends with a hash of the
    whole, so two long names stay two names and the same name always fits the same way."""
    if len(text) <= limit:
        return text
    import hashlib

    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{text[: limit - 13]}…{digest}"


def utc_now() -> str:
    """Now as ISO 8601 UTC with microseconds (sorts as text)."""
    return datetime.now(UTC).strftime(_UTC_FORMAT)


#: how a run's time is stored: the stores order runs by this text, so every time is written this way
_UTC_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_text(dt: datetime) -> str:
    """An aware time as stored (UTC, microseconds); OverflowError outside years 1-9999 in UTC."""
    return dt.astimezone(UTC).strftime(_UTC_FORMAT)


def parse_time(text: str) -> str | None:
    """An ISO 8601 time with a zone (``Z``, ``+05:00``) as stored; None when it is not one.

    ``2025-01-01T10:00:00+05:00`` and ``...T05:00:00Z`` are one instant, and ``...T07:00:00Z`` comes
    before ``...T07:00:00.5Z``: as text they sort the other way round.
    """
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    try:
        return utc_text(dt)
    except OverflowError:
        return None


def stored_time(created_at: str) -> str:
    """A recorded run's time as every run's time is stored (UTC, microseconds): a history recorded
    by an older sleuth may hold one with a zone offset (``10:00:00+05:00``) or without
    microseconds, which sort wrong as text.  A text that is no time at all stays as it is."""
    if len(created_at) == 27 and created_at[19] == "." and created_at.endswith("Z"):
        return created_at  # the stored form: no parsing for the common case
    return parse_time(created_at) or created_at


#: ``Run.source["reader"]``: the version of the readers that parsed a run's files; runs without it
#: were read by a sleuth that kept the quotes of a quoted CSV field in the metric name
READER_VERSION = 2


def _csv_unquoted(name: str) -> str:
    """A metric name as a CSV reader gives it, from the whole quoted field an older sleuth kept."""
    if len(name) >= 2 and name[0] == name[-1] == '"' and '"' not in name[1:-1].replace('""', ""):
        return name[1:-1].replace('""', '"')
    return name


def stored_names(metrics: Sequence[str]) -> list[str] | None:
    """The names under which ``metrics`` may be stored, for a store that filters by name (None:
    do not filter).  A history recorded by an older sleuth may keep a CSV name quoted, or a
    secret that the rule now hides (a name holding the redaction marker): read them all."""
    from sleuth.secrets import REDACTED

    if any(REDACTED in m for m in metrics):
        return None
    return sorted({*metrics, *('"' + m.replace('"', '""') + '"' for m in metrics)})


class RunStatus(Enum):
    """How the CI job that produced a run ended (a failed run's samples still count)."""

    SUCCESS = "success"
    FAILURE = "failure"


class Verdict(Enum):
    """A check's answer for one metric."""

    PASS = "PASS"
    FAIL = "FAIL"
    #: the data cannot tell (not significant, or a bound straddles the budget)
    INCONCLUSIVE = "INCONCLUSIVE"
    #: too few runs to judge at all; the result says how many more are needed
    INSUFFICIENT = "INSUFFICIENT"


class Graduation(Enum):
    """``gate graduate``'s answer for one metric: is it stable enough for a hard gate?"""

    OK = "OK"
    OVER = "OVER"
    INSUFFICIENT = "INSUFFICIENT"


def exit_code_for(failed: bool, undecided: bool) -> int:
    """0 all passed, 1 something failed (hard), 3 nothing failed but something is undecided."""
    if failed:
        return int(ExitCode.FAILED)
    return int(ExitCode.INCONCLUSIVE) if undecided else int(ExitCode.OK)


def _finite_values(values: Any) -> tuple[float, ...]:
    """A stored sample's values as floats, without the non-finite ones (record refuses them; a file
    edited by hand may hold them).  One pass for the usual all-finite list: a history of 1,000 runs
    of 10,000 metrics is ten million of them."""
    floats = [float(v) for v in values]
    if all(map(math.isfinite, floats)):
        return tuple(floats)
    return tuple(v for v in floats if math.isfinite(v))


def clean(text: Any, hidden: tuple[str, ...] | None = None) -> str:
    """Any text a gate verb shows (its tables, markdown, JUnit, HTML pages, warnings): printable,
    secrets hidden by the rule and ``hidden`` (by default the values of this shell's secret
    variables as they are now, :func:`sleuth.secrets.env_secret_values`).  ``record`` refuses a run
    id or suite it would hide (:func:`looks_secret`); one an older sleuth stored as given (it is the
    run's key) is hidden here, on the way out: ``ghp_...`` shows ``<redacted>``."""
    from sleuth.secrets import env_secret_values

    return _clean(str(text), env_secret_values(os.environ) if hidden is None else hidden)


def clean_cut(text: Any, limit: int) -> str:
    """:func:`clean` within ``limit`` characters, for a quote in a message (an artifact's file name, a
    metadata value): hidden first, then cut; cut first, a secret's start stayed where the whole
    value was no longer there to be found."""
    return clean(text)[:limit]


@lru_cache(maxsize=65536)
def _clean(text: str, hidden: tuple[str, ...]) -> str:
    """:func:`clean` of a text against given values; cached: a history repeats its names (keyed by
    the values too: a cache by the text alone kept what an earlier environment hid)."""
    from sleuth.model import printable
    from sleuth.secrets import scrub_text

    return scrub_text(printable(text), hidden)


def stored_name(name: str) -> str:
    """A suite, run id or branch as the gate keeps it: :func:`clean` by its words, with only the
    values of secret-named variables hidden (:func:`_named_secret_values`)."""
    return clean(name, _named_secret_values())


def stored_branch(branch: str) -> str:
    """A branch as ``record`` stores it, and so as every filter by branch (``--branch``, a policy's
    ``branch``) must name it: :func:`clean` (a token inside it hidden, the value of a secret variable
    of this shell hidden), within :data:`BRANCH_MAX` characters.  A name is judged by the words it
    holds, not as a whole: ``renovate/Major-Updates-Python3-2025`` is kept as given (the whole-value
    token rule of environment values, 32+ characters mixing cases and digits, would hide it)."""
    return fit(stored_name(branch), BRANCH_MAX)


def _named_secret_values() -> tuple[str, ...]:
    """The values of this shell's variables whose name says secret (``DEPLOY_PASSWORD``): what a
    suite, run id or branch may not be or hold.  A CI variable's value that only looks like a token
    (``GITHUB_HEAD_REF=renovate/Major-Updates-Python3-2025``) is where names come from, not a secret;
    outputs still hide it (:func:`clean`)."""
    from sleuth.secrets import env_secret_values

    return env_secret_values(os.environ, named=True)


def looks_secret(text: str) -> bool:
    """True when a suite, run id or branch would not come back as given: :func:`clean` hides some of
    it (a token-shaped word such as ``ghp_...``, a URL password, the value of a secret variable of
    this shell).  Stored, it would be shown as ``<redacted>`` and written so into an uploaded
    artifact's metadata, which ``record --from-dir`` could then not tell from any other: the writing
    verbs refuse it.  Names are judged by their words, not by the whole-value rule for environment
    values (``resnet50-A100-bf16-batch256-seq2048-v2`` is a name, not an API key)."""
    from sleuth.model import printable

    return stored_name(text) != printable(text)


def clean_doc(doc: Any) -> Any:
    """A gate verb's ``--json`` document with what :func:`clean` hides hidden in every string."""
    from sleuth.secrets import Secrets, env_secret_values

    return Secrets({}, frozenset(env_secret_values(os.environ))).scrub(doc)


@lru_cache(maxsize=65536)
def _scrub_name(name: str, hidden: tuple[str, ...] = ()) -> str:
    """A metric name (or commit, branch) through the rule, with the values ``hidden`` hidden too;
    cached (keyed by the values too): a history repeats its names."""
    from sleuth.secrets import scrub_text

    return scrub_text(name, hidden)


@dataclass(frozen=True, slots=True)
class Sample:
    """One metric's values from one run (finite floats), with the unit the tool printed."""

    metric: str
    values: tuple[float, ...]
    unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"metric": self.metric, "unit": self.unit, "values": list(self.values)}


@dataclass(frozen=True, slots=True)
class Run:
    """One recorded CI run of a suite."""

    suite: str
    run_id: str
    created_at: str
    status: RunStatus = RunStatus.SUCCESS
    commit: str | None = None
    branch: str | None = None
    samples: tuple[Sample, ...] = ()
    provenance: Mapping[str, Any] = field(default_factory=dict)
    #: where the samples came from: files, detected formats, skipped lines
    source: Mapping[str, Any] = field(default_factory=dict)
    #: ``samples`` by metric, built on the first look-up (a run of 10,000 metrics was searched
    #: from the start for each one: a check of 10,000 metrics compared names 10^8 times a run)
    _by_metric: dict[str, Sample] | None = field(default=None, init=False, repr=False, compare=False)

    def metrics(self) -> list[str]:
        """The metric names this run has samples for, in recorded order."""
        return [s.metric for s in self.samples]

    def sample(self, metric: str) -> Sample | None:
        """This run's samples of ``metric`` (the first, should a metric be there twice), or None."""
        index = self._by_metric
        if index is None:
            index = {}
            for s in self.samples:
                index.setdefault(s.metric, s)
            object.__setattr__(self, "_by_metric", index)  # a cache: the run itself does not change
        return index.get(metric)

    def value(self, metric: str) -> float | None:
        """The run's value for ``metric``: the median of its samples (mean of the middle two when even)."""
        s = self.sample(metric)
        if s is None or not s.values:
            return None
        return median(s.values)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the dir store's file, ``--json`` output)."""
        return {
            "schema": 1,
            "suite": self.suite,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "status": self.status.value,
            "commit": self.commit,
            "branch": self.branch,
            "provenance": dict(self.provenance),
            "source": dict(self.source),
            "samples": [s.to_dict() for s in self.samples],
        }

    def public(self) -> Run:
        """This run as every reader shows it: the one redaction rule applied to its metric names,
        commit, branch, provenance and source.  Runs are recorded scrubbed; a history recorded
        before a rule was added (``--api-key=`` in a hyperfine command line, stored as a metric name)
        is scrubbed here, on the way out of the store, so that no view or ``--json`` repeats it.  A
        metric name and a commit hide the values of this shell's secret variables here too, as
        ``record`` hides them (:func:`sleuth.gate.ingest.public_metric`): a run recorded where the
        value was no secret is read under the name a run recorded now has, so a ``--metric`` filter
        (given as ``record`` stores it) finds both, and they are one series.
        What older sleuths recorded otherwise is read as it is recorded now: the time in UTC
        (:func:`stored_time`), a quoted CSV name unquoted (runs without ``source["reader"]``)."""
        from dataclasses import replace

        from sleuth.secrets import Secrets, env_secret_values

        walk = Secrets().scrub
        hidden = env_secret_values(os.environ)
        reader, files = self.source.get("reader"), self.source.get("files")
        legacy_csv = not (isinstance(reader, int) and reader >= READER_VERSION) and any(
            isinstance(f, Mapping) and f.get("format") == "csv"
            for f in (files if isinstance(files, list) else ())
        )

        def name(metric: str) -> str:
            return _scrub_name(_csv_unquoted(metric) if legacy_csv else metric, hidden)

        return replace(
            self,
            created_at=stored_time(self.created_at),
            commit=_scrub_name(self.commit, hidden) if self.commit is not None else None,
            branch=_scrub_name(self.branch) if self.branch is not None else None,
            samples=tuple(
                s if (new := name(s.metric)) == s.metric else Sample(new, s.values, s.unit)
                for s in self.samples
            ),
            provenance=walk(dict(self.provenance)),
            source=walk(dict(self.source)),
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Run:
        """Inverse of :meth:`to_dict`; KeyError/TypeError/ValueError when malformed."""
        samples = tuple(
            Sample(str(s["metric"]), _finite_values(s["values"]), str(s.get("unit") or ""))
            for s in d["samples"]
        )
        return cls(
            suite=str(d["suite"]),
            run_id=str(d["run_id"]),
            created_at=str(d["created_at"]),
            status=RunStatus(d.get("status", "success")),
            commit=d.get("commit"),
            branch=d.get("branch"),
            samples=samples,
            provenance=dict(d.get("provenance") or {}),
            source=dict(d.get("source") or {}),
        )
