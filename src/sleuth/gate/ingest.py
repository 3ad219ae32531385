"""From files to runs: one CI run's output files, a producing job's metadata, a tree of CI artifacts.

``read_files`` parses the files of one run (a missing or unreadable file is a usage error; garbage
inside a file is counted).  The producing job writes a small metadata file next to its raw output
(``write_metadata``, what ``sleuth gate record --emit-metadata DIR`` does), uploads the folder as
an artifact, and the gating job downloads the last N artifacts (``gh run download`` leaves one
folder per artifact) and reads them all (``scan_artifacts``): a folder without metadata, with
unreadable metadata, or without the files it lists (or with one that cannot be read:
:func:`sleuth.gate.service.record_artifacts`) is skipped and counted, never fatal.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.errors import UsageError
from sleuth.gate.formats import Parsed, parse
from sleuth.gate.model import (
    METRIC_MAX,
    READER_VERSION,
    UNIT_MAX,
    Run,
    RunStatus,
    Sample,
    clean,
    clean_cut,
    fit,
    looks_secret,
    parse_time,
)
from sleuth.model import check_name, printable
from sleuth.secrets import REDACTED

__all__ = [
    "METADATA_FILE",
    "Artifact",
    "ArtifactScan",
    "Ingested",
    "parse_raw",
    "public_metric",
    "read_files",
    "read_raw",
    "scan_artifacts",
    "stored_metric",
    "stored_metrics",
    "write_metadata",
]

#: the metadata file a producing job writes next to its raw benchmark output
METADATA_FILE = "sleuth-gate.json"
#: files larger than this are read only up to the last whole line before it (a runaway log must not
#: eat the gating job's memory)
_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Ingested:
    """The samples of one run's files, merged (a metric in two files keeps both files' samples)."""

    samples: tuple[Sample, ...]
    files: tuple[dict[str, Any], ...]

    @property
    def skipped(self) -> int:
        """Lines or entries skipped as garbage, over all files."""
        return sum(int(f["skipped"]) for f in self.files)

    def source(self) -> dict[str, Any]:
        """The ``source`` record stored with the run."""
        return {"files": [dict(f) for f in self.files], "skipped": self.skipped, "reader": READER_VERSION}


def _read_text(path: Path, what: str) -> str:
    return _decode(_read_bytes(path, what))


def _decode(data: bytes) -> str:
    return data.decode("utf-8-sig", errors="replace")  # a BOM (Windows editors, PowerShell) is not data


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_BYTES)
            if fh.read(1):  # cut at the limit: drop the cut line, whose value would be wrong (0.1 of 0.123)
                data = data[: data.rfind(b"\n") + 1]
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(
            f"{what} {path}: is a directory", hint="pass the files inside it, or use --from-dir"
        ) from None
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read: {exc.strerror}") from None
    return data


def public_metric(name: str, hidden: tuple[str, ...] | None = None) -> str:
    """A metric name with the secrets of :mod:`sleuth.secrets` hidden (hyperfine names a benchmark
    by its whole command line: ``curl --api-key=...``, a URL with a password, an ``hf_`` token), the
    values of this shell's secret variables hidden (``hidden``: by default
    :func:`sleuth.secrets.env_secret_values`, as :func:`sleuth.gate.model.clean` hides them on the
    way out) and each control character replaced by U+FFFD (an ANSI escape would reach terminals
    and CI logs, a BEL makes the JUnit file invalid XML)."""
    from sleuth.secrets import Secrets, env_secret_values

    found = Secrets.of_argv(name)
    shell = env_secret_values(os.environ) if hidden is None else hidden
    hidden_name: str = Secrets(found.values, found.words | frozenset(shell)).scrub(name)
    return printable(hidden_name)


def stored_metric(name: str, hidden: tuple[str, ...] | None = None) -> str:
    """A metric name as ``record`` stores it, and so as a filter by one exact name must give it:
    :func:`public_metric`, then within :data:`METRIC_MAX` characters.  Hidden first, then cut: cut
    first, the start of a secret that straddled the cut stayed, the whole value no longer there to
    be found."""
    return fit(public_metric(name, hidden), METRIC_MAX)


def stored_metrics(names: Sequence[str]) -> dict[str, str]:
    """Each of ``names`` (a policy's metric keys, a baseline file's) -> :func:`stored_metric` of it,
    so that a key finds the runs of the name it gives.  ValueError naming both keys (by position,
    hidden, then cut) when two become one stored name: one of them would silently not apply."""
    from sleuth.secrets import env_secret_values

    hidden = env_secret_values(os.environ)  # once: a policy of 10,000 keys
    out: dict[str, str] = {}
    first: dict[str, int] = {}
    for i, name in enumerate(names, 1):
        out[name] = stored = stored_metric(name, hidden)
        if stored in first:
            a, b = (_quoted(public_metric(k, hidden)) for k in (names[first[stored] - 1], name))
            raise ValueError(
                f"keys #{first[stored]} {a} and #{i} {b} are one metric as 'record' stores names "
                f"({_quoted(stored)}: secrets hidden, a name over {METRIC_MAX} characters fitted); keep one"
            )
        first[stored] = i
    return out


def _quoted(name: str, limit: int = 80) -> str:
    """A (hidden) name in a message: quoted, cut to ``limit`` characters."""
    return repr(name if len(name) <= limit else name[:limit] + "…")


def merge(parsed: Sequence[tuple[str, Parsed]]) -> Ingested:
    """Merge per-file results into one run's samples, keeping first-seen metric order; names and
    units are hidden (:func:`stored_metric`, :func:`sleuth.gate.model.clean`), then fitted."""
    from sleuth.secrets import env_secret_values

    hidden = env_secret_values(os.environ)  # once: a run of 10,000 metrics
    values: dict[str, list[float]] = {}
    units: dict[str, str] = {}
    files = []
    for name, p in parsed:
        files.append({"file": name, "format": p.format, "metrics": len(p.samples), "skipped": p.skipped})
        for s in p.samples:
            metric = stored_metric(s.metric, hidden)  # a hyperfine command line, a C++ template
            values.setdefault(metric, []).extend(s.values)
            if metric not in units:
                units[metric] = fit(clean(s.unit, hidden), UNIT_MAX)
    samples = tuple(Sample(m, tuple(v), units[m]) for m, v in values.items())
    return Ingested(samples=samples, files=tuple(files))


def read_raw(paths: Sequence[Path], what: str = "FILE") -> list[tuple[Path, bytes]]:
    """The bytes of every file of one run, each file once (``a.txt ./a.txt``: its samples are not
    measurements twice over); UsageError naming a file that cannot be read, before any is parsed."""
    first: dict[Path, Path] = {}
    for p in paths:
        first.setdefault(p.resolve(), p)
    return [(p, _read_bytes(p, what)) for p in first.values()]


def parse_raw(raw: Sequence[tuple[Path, bytes]], fmt: str = "auto") -> Ingested:
    """The samples of :func:`read_raw`'s files."""
    return merge([(p.name, parse(_decode(data), fmt)) for p, data in raw])


def read_files(paths: Sequence[Path], fmt: str = "auto", *, what: str = "FILE") -> Ingested:
    """Parse every file of one run (:func:`read_raw`, then :func:`parse_raw`)."""
    return parse_raw(read_raw(paths, what), fmt)


def write_metadata(
    directory: Path,
    meta: Mapping[str, Any],
    files: Sequence[Path],
    streams: Mapping[Path, bytes] | None = None,
) -> Path:
    """Copy ``files`` into ``directory`` (unless already there) and write its metadata file.

    ``streams``: what files that cannot be read twice held when they were read (a pipe:
    ``<(go test -bench .)``, ``/dev/stdin``); those bytes are written instead of a copy."""
    from sleuth.journal import atomic_write_json

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / METADATA_FILE
    # a folder reused from an earlier run: its metadata goes first, so an interrupted copy leaves
    # a folder without metadata (skipped), never the new files under the old run id
    path.unlink(missing_ok=True)
    names: list[str] = []
    for f in files:
        if f.name in names:  # the same file named twice (the caller refuses two files of one name)
            continue
        dest = directory / f.name
        if streams is not None and f in streams:
            dest.write_bytes(streams[f])
        elif not dest.exists() or not dest.samefile(f):
            shutil.copyfile(f, dest)
        names.append(f.name)
    atomic_write_json(path, {**meta, "schema": 1, "files": names})
    return path


@dataclass(frozen=True, slots=True)
class Artifact:
    """One artifact folder that holds a run: its metadata and the files it lists."""

    folder: Path
    meta: Mapping[str, Any]
    files: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class ArtifactScan:
    """What a tree of artifacts holds: usable runs, and the folders skipped (with why)."""

    artifacts: tuple[Artifact, ...]
    skipped: tuple[tuple[str, str], ...] = field(default=())


def _meta_problem(meta: Any) -> str | None:
    if not isinstance(meta, dict):
        return "metadata is not a JSON object"
    for key in ("suite", "run_id"):
        flag = "--" + key.replace("_", "-")
        if meta.get(key) == REDACTED:  # an older sleuth's --emit-metadata hid one that looked secret
            return (
                f"{METADATA_FILE} key {key!r} is {REDACTED}: the producing job gave a {flag} that looks "
                f"like a credential; emit the run again with a non-secret {flag}"
            )
        if not isinstance(meta.get(key), str) or not check_name(meta[key]):
            return f"metadata key {key!r} missing or not a valid name"
        if looks_secret(meta[key]):  # stored, it would be shown as <redacted>: never told apart
            return (
                f"{METADATA_FILE} key {key!r} looks like a credential (a token, or the value of a secret "
                f"variable of this shell); the producing job must pass a non-secret {flag}"
            )
    if meta.get("status", "success") not in {s.value for s in RunStatus}:
        return f"metadata key 'status' is {meta.get('status')!r}"
    if not isinstance(meta.get("files", []), list):
        return "metadata key 'files' is not a list"
    if not all(isinstance(f, str) for f in meta.get("files", [])):
        return "metadata key 'files' holds a non-string"
    for key in ("commit", "branch", "created_at"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            return f"metadata key {key!r} is {type(meta[key]).__name__}, not a string"
    if meta.get("provenance") is not None and not isinstance(meta["provenance"], dict):
        return "metadata key 'provenance' is not a JSON object"
    if meta.get("created_at") and parse_time(meta["created_at"]) is None:
        when = clean_cut(meta["created_at"], 40)
        return f"metadata key 'created_at' {when!r} is not an ISO 8601 time with a zone"
    return None


def scan_artifacts(root: Path) -> ArtifactScan:
    """Every run under ``root`` (any depth); folders without usable metadata are skipped and counted.

    A metadata file whose listed files are all missing is a run whose artifact is incomplete:
    skipped.  A folder holding files but no metadata is skipped too (it cannot be attributed to
    a run).  An empty folder is a download that left nothing: skipped.
    """
    if not root.is_dir():
        raise UsageError(f"--from-dir {root}: not a directory")
    artifacts: list[Artifact] = []
    skipped: list[tuple[str, str]] = []
    metas = sorted(root.rglob(METADATA_FILE))
    claimed = {m.parent for m in metas}
    for meta_path in metas:
        folder = meta_path.parent
        if not meta_path.is_file():  # a FIFO would be read forever, a folder cannot be
            skipped.append((str(folder), f"{METADATA_FILE} is not a regular file"))
            continue
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8-sig", errors="replace"))
        except (OSError, ValueError, RecursionError) as exc:
            skipped.append((str(folder), f"unreadable {METADATA_FILE}: {clean_cut(exc, 80)}"))
            continue
        problem = _meta_problem(meta)
        if problem:
            skipped.append((str(folder), problem))
            continue
        if meta.get("created_at"):  # stored as every run's time is: the stores order runs by it as text
            meta = {**meta, "created_at": parse_time(meta["created_at"])}
        listed = list(dict.fromkeys(meta.get("files") or [])) or [
            p.name for p in sorted(folder.iterdir()) if p.is_file() and p.name != METADATA_FILE
        ]
        # an artifact comes from CI (a fork's pull request, say): it may name only its own files
        outside = [str(n) for n in listed if not _inside(folder, folder / str(n))]
        if outside:
            skipped.append(
                (str(folder), f"metadata lists a file outside its folder ({clean_cut(outside[0], 80)})")
            )
            continue
        files = [folder / str(name) for name in listed if (folder / str(name)).is_file()]
        if listed and not files:
            skipped.append(
                (
                    str(folder),
                    f"none of the listed files is there ({clean_cut(', '.join(map(str, listed)), 80)})",
                )
            )
            continue
        artifacts.append(Artifact(folder=folder, meta=meta, files=tuple(files)))
    for folder in sorted(p for p in [root, *root.rglob("*")] if p.is_dir()):
        if folder in claimed or any(c.is_relative_to(folder) for c in claimed):
            continue
        has_files = any(p.is_file() for p in folder.iterdir())
        has_dirs = any(p.is_dir() for p in folder.iterdir())
        if has_files:
            skipped.append((str(folder), f"no {METADATA_FILE}"))
        elif not has_dirs and folder != root:
            skipped.append((str(folder), "empty (artifact missing)"))
    return ArtifactScan(artifacts=tuple(artifacts), skipped=tuple(skipped))


def _inside(folder: Path, path: Path) -> bool:
    """Whether ``path`` (symlinks followed) lies inside ``folder``."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


def run_from_artifact(art: Artifact, fmt: str = "auto") -> Run:
    """The run an artifact holds (its files parsed, garbage counted)."""
    from sleuth.gate.model import utc_now

    got = merge([(p.name, parse(_read_text(p, "artifact file"), fmt)) for p in art.files])
    meta = art.meta
    source = {**got.source(), "artifact": art.folder.name}
    return Run(
        suite=str(meta["suite"]),
        run_id=str(meta["run_id"]),
        created_at=str(meta.get("created_at") or utc_now()),
        status=RunStatus(meta.get("status", "success")),
        commit=meta.get("commit"),
        branch=meta.get("branch"),
        samples=got.samples,
        provenance=dict(meta.get("provenance") or {}),
        source=source,
    )
