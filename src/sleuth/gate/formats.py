"""Parsers of benchmark output, with auto-detection.  Garbage is skipped and counted, never raised.

Formats and the metric names they give (``--metric`` uses these names):

* ``go``: ``go test -bench`` text (https://go.googlesource.com/proposal/+/master/design/14313-benchmark-format.md):
  ``BenchmarkName-8  N  v1 unit1  v2 unit2 ...`` -> ``BenchmarkName:unit1``, ``BenchmarkName:unit2``
  (the ``-GOMAXPROCS`` suffix is dropped so runners with other core counts share a history, unless
  one benchmark has several in the file: ``-cpu 1,2,4``; a sub-benchmark's own ``-N``, as
  ``size-1024`` on a one-core runner, stays: :func:`_go_names`);
  each ``-count`` repetition is one sample.  ``go test -json`` output (test2json events) is read
  through its ``Output`` fields.
* ``pytest-benchmark``: ``--benchmark-json`` -> the test's ``fullname``, in seconds; the raw
  rounds (``stats.data``) when saved, else the median.
* ``google-benchmark``: ``--benchmark_format=json`` -> ``run_name:real_time``, ``run_name:cpu_time``
  (in the file's ``time_unit``) and ``run_name:<counter>`` for user counters; one sample per
  repetition (aggregates are used only when no repetition was reported).
* ``hyperfine``: ``--export-json`` -> the command (or its ``--command-name``), ``times`` in seconds.
* ``sleuth-run``: ``sleuth run --json`` -> each ``--metric`` by name, and ``wall_s``.
* ``csv``: ``metric,value[,unit]`` lines (a header line and ``#`` comments are allowed; fields quoted
  as CSV writers quote them).
* ``json``: ``[{"metric", "value" (number or list), "unit"?}, ...]``, ``{"metrics": [...]}`` or
  ``{"name": number or [numbers], ...}``.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sleuth.gate.model import Sample, clean_cut

__all__ = ["FORMATS", "Parsed", "parse"]

FORMATS = ("go", "pytest-benchmark", "google-benchmark", "hyperfine", "sleuth-run", "csv", "json")

_GO_BENCH = re.compile(r"^(Benchmark\S*?)(?:-(\d+))?\s+(\d+)\s+(\S.*)$")
_GO_NAME_ONLY = re.compile(r"^Benchmark\S*\s*$")
_GO_NOISE = re.compile(r"^(goos|goarch|pkg|cpu|PASS|FAIL|ok\s|\?\s|---|===|\s*$)")
#: skipped lines kept as examples for the message
_EXAMPLES = 3


@dataclass
class _Collector:
    values: dict[str, list[float]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, metric: str, value: Any, unit: str = "") -> bool:
        try:
            v = float(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int of 400 digits
            return False
        if isinstance(value, bool) or not math.isfinite(v) or not metric:
            return False
        self.values.setdefault(metric, []).append(v)
        self.units.setdefault(metric, unit)
        return True

    def skip(self, what: object) -> None:
        """Count a skipped line or entry (an entry that is not text is kept as its JSON); the first
        few are kept as examples, hidden by the rule of :mod:`sleuth.secrets`, then cut (cut first,
        the start of a secret that straddled the cut stayed, the whole value no longer there)."""
        self.skipped += 1
        if len(self.examples) < _EXAMPLES:
            text = what if isinstance(what, str) else json.dumps(what, default=str)
            self.examples.append(clean_cut(text, 120))

    def result(self, fmt: str) -> Parsed:
        samples = tuple(Sample(m, tuple(vs), self.units.get(m, "")) for m, vs in self.values.items())
        return Parsed(format=fmt, samples=samples, skipped=self.skipped, examples=tuple(self.examples))


@dataclass(frozen=True, slots=True)
class Parsed:
    """What one file gave: its format, samples per metric, and how many lines/entries were skipped."""

    format: str
    samples: tuple[Sample, ...]
    skipped: int = 0
    examples: tuple[str, ...] = ()


def _go_lines(lines: Iterable[str], col: _Collector) -> None:
    found: list[tuple[str, str | None, list[tuple[str, str]]]] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        m = _GO_BENCH.match(line)
        if m is None:
            if not (_GO_NOISE.match(line) or _GO_NAME_ONLY.match(line)):
                col.skip(line)
            continue
        rest = m.group(4).split()
        if len(rest) % 2:
            col.skip(line)
            continue
        pairs = list(zip(rest[::2], rest[1::2], strict=True))
        if not all(_is_number(v) for v, _ in pairs):
            col.skip(line)
            continue
        found.append((m.group(1), m.group(2), pairs))
    names = _go_names([(name, p) for name, p, _ in found])
    for (_name, _p, pairs), full in zip(found, names, strict=True):
        for value, unit in pairs:
            col.add(f"{full}:{unit}", value, unit)


def _go_names(lines: list[tuple[str, str | None]]) -> list[str]:
    """Each benchmark line's name, ``(name before a trailing -N, N)`` in, metric name out.

    The ``-GOMAXPROCS`` suffix goes, so that runners with other core counts share a history; when
    a benchmark has several in the file (``-cpu 1,2,4``; Go prints none for 1) each is kept
    (``BenchmarkX-1``, ``-2``, ``-4``).  A top-level name (``BenchmarkX``, a Go identifier) cannot
    end in ``-N`` itself, so its suffix is GOMAXPROCS.  A sub-benchmark's may be its own name: on a
    one-core runner Go prints no suffix, and ``BenchmarkParse/size-1024`` is the name.  So a
    sub-benchmark's trailing ``-N`` counts as GOMAXPROCS only when it is consistent with the file:
    the same set of suffixes as a top-level benchmark's, or, in a file of sub-benchmarks only,
    the same set for every one of them (as ``golang.org/x/perf/benchfmt``, a file holding one lone
    ``size-1024`` line cannot tell and reads it as GOMAXPROCS 1024).
    """
    procs: dict[str, set[str | None]] = {}
    for name, p in lines:
        procs.setdefault(name, set()).add(p)
    top = [frozenset(ps) for name, ps in procs.items() if "/" not in name]
    subs = {frozenset(ps) for name, ps in procs.items() if "/" in name}
    out = []
    for name, p in lines:
        ps = frozenset(procs[name])
        gomaxprocs = "/" not in name or (ps in top if top else len(subs) == 1)
        if not gomaxprocs:
            out.append(f"{name}-{p}" if p else name)
        elif len(ps) > 1:
            out.append(f"{name}-{p or 1}")
        else:
            out.append(name)
    return out


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _go_json(text: str, col: _Collector) -> None:
    """``go test -json``: benchmark lines arrive in ``Output`` fields, possibly split across events."""
    out: list[str] = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            if line.strip():
                col.skip(line)
            continue
        if isinstance(event, dict) and isinstance(event.get("Output"), str):
            out.append(event["Output"])
    _go_lines("".join(out).splitlines(), col)


def _csv(lines: Iterable[str], col: _Collector) -> None:
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:  # quoted as csv writers quote a name with a comma or a quote: "sort -t, -k2",0.51
            fields = [f.strip() for f in next(csv.reader([line]))]
        except (csv.Error, StopIteration):
            col.skip(line)
            continue
        if i == 0 and len(fields) >= 2 and fields[0].lower() == "metric" and fields[1].lower() == "value":
            continue
        if len(fields) not in (2, 3) or not col.add(
            fields[0], fields[1], fields[2] if len(fields) == 3 else ""
        ):
            col.skip(line)


def _pytest_benchmark(doc: Mapping[str, Any], col: _Collector) -> None:
    for b in doc.get("benchmarks") or []:
        stats = b.get("stats") if isinstance(b, dict) else None
        name = (b.get("fullname") or b.get("name")) if isinstance(b, dict) else None
        if not isinstance(stats, dict) or not isinstance(name, str):
            col.skip(b)
            continue
        data = stats.get("data")
        values = data if isinstance(data, list) and data else [stats.get("median")]
        if not all([col.add(name, v, "s") for v in values]):
            col.skip(f"{name}: non-numeric value")


def _google_benchmark(doc: Mapping[str, Any], col: _Collector) -> None:
    entries = [b for b in doc.get("benchmarks") or [] if isinstance(b, dict)]
    iterated = {
        b.get("run_name", b.get("name")) for b in entries if b.get("run_type", "iteration") == "iteration"
    }
    skip_keys = {
        "name", "run_name", "run_type", "repetitions", "repetition_index", "threads", "iterations",
        "real_time", "cpu_time", "time_unit", "family_index", "per_family_instance_index",
        "aggregate_name", "aggregate_unit", "error_occurred", "error_message", "label",
    }  # fmt: skip
    for b in entries:
        run = b.get("run_name", b.get("name"))
        kind = b.get("run_type", "iteration")
        if not isinstance(run, str) or b.get("error_occurred"):
            col.skip(f"{b.get('name')}: {b.get('error_message', 'no name')}")
            continue
        if kind == "aggregate" and (run in iterated or b.get("aggregate_name") != "median"):
            continue  # repetitions are the samples; their mean/stddev/cv are not
        unit = str(b.get("time_unit", "ns"))
        ok = col.add(f"{run}:real_time", b.get("real_time"), unit)
        ok = col.add(f"{run}:cpu_time", b.get("cpu_time"), unit) and ok
        for key, value in b.items():
            if key not in skip_keys and isinstance(value, int | float) and not isinstance(value, bool):
                col.add(f"{run}:{key}", value)
        if not ok:
            col.skip(f"{run}: no numeric real_time/cpu_time")


def _hyperfine(doc: Mapping[str, Any], col: _Collector) -> None:
    for r in doc.get("results") or []:
        name = r.get("command") if isinstance(r, dict) else None
        times = r.get("times") if isinstance(r, dict) else None
        if not isinstance(name, str):
            col.skip(r)
            continue
        values = times if isinstance(times, list) and times else [r.get("median")]
        if not all([col.add(name, v, "s") for v in values]):
            col.skip(f"{name}: non-numeric time")


def _sleuth_run(doc: Mapping[str, Any], col: _Collector) -> None:
    for t in doc.get("trials") or []:
        if not isinstance(t, dict) or t.get("outcome") == "error":
            continue  # an infrastructure error measured nothing about the workload
        for name, v in (t.get("metrics") or {}).items():
            for x in v if isinstance(v, list) else [v]:
                if not col.add(str(name), x):
                    col.skip(f"trial {t.get('id')}: {name}={x!r}")
        if t.get("wall_s") is not None:
            col.add("wall_s", t["wall_s"], "s")


def _generic_json(doc: Any, col: _Collector) -> None:
    entries = doc.get("metrics") if isinstance(doc, dict) and isinstance(doc.get("metrics"), list) else doc
    if isinstance(entries, list):
        for e in entries:
            if not isinstance(e, dict) or not isinstance(e.get("metric"), str) or "value" not in e:
                col.skip(e)
                continue
            unit = str(e.get("unit") or "")
            values = e["value"] if isinstance(e["value"], list) else [e["value"]]
            if not all([col.add(e["metric"], v, unit) for v in values]):
                col.skip(f"{e['metric']}: non-numeric value")
        return
    if isinstance(entries, dict):
        for name, v in entries.items():
            if not all([col.add(str(name), x) for x in (v if isinstance(v, list) else [v])]):
                col.skip(f"{name}: not a number")
        return
    col.skip(f"a JSON {type(doc).__name__}, not benchmark results")


def _json_format(doc: Any) -> str:
    if isinstance(doc, dict):
        benches = doc.get("benchmarks")
        if isinstance(benches, list) and (
            "machine_info" in doc or any(isinstance(b, dict) and "stats" in b for b in benches)
        ):
            return "pytest-benchmark"
        if isinstance(benches, list) and (
            "context" in doc or any(isinstance(b, dict) and "real_time" in b for b in benches)
        ):
            return "google-benchmark"
        if isinstance(doc.get("results"), list):
            return "hyperfine"
        if isinstance(doc.get("trials"), list) and isinstance(doc.get("summary"), dict):
            return "sleuth-run"
    return "json"


_JSON_PARSERS = {
    "pytest-benchmark": _pytest_benchmark,
    "google-benchmark": _google_benchmark,
    "hyperfine": _hyperfine,
    "sleuth-run": _sleuth_run,
    "json": _generic_json,
}


def parse(text: str, fmt: str = "auto") -> Parsed:
    """Samples from the text of one file; ``fmt`` one of :data:`FORMATS` or ``"auto"``."""
    col = _Collector()
    stripped = text.lstrip()
    if fmt == "auto":
        fmt = _detect(text, stripped)
    if fmt in _JSON_PARSERS:
        try:
            doc = json.loads(text)
        except ValueError as exc:  # bad syntax, or an integer past the digit limit (5000 digits)
            col.skip(f"not valid JSON: {exc}")
            return col.result(fmt)
        except RecursionError:
            col.skip("JSON nested too deeply")
            return col.result(fmt)
        _JSON_PARSERS[fmt](doc, col)
    elif fmt == "go":
        if stripped.startswith("{") and '"Action"' in stripped[:400]:
            _go_json(text, col)
        else:
            _go_lines(text.splitlines(), col)
    else:
        _csv(text.splitlines(), col)
    return col.result(fmt)


def _detect(text: str, stripped: str) -> str:
    """The format a file's text looks like (JSON documents by their keys, text by its lines)."""
    if stripped.startswith("{") and '"Action"' in stripped[:400] and "\n{" in stripped:
        return "go"  # go test -json: one test2json event per line
    if stripped[:1] in ("{", "["):
        try:
            return _json_format(json.loads(text))
        except (ValueError, RecursionError):
            return "json"  # a truncated document: counted as one skipped entry
    if any(_GO_BENCH.match(line) for line in text.splitlines()):
        return "go"
    return "csv"
