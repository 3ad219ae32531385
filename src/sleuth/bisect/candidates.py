"""Candidate sources: the protocol, lines of a file, and rebuilding any source on resume.

A source resolves its ordered candidates once (oldest first; the journal keeps them, so a resume
never asks git or the index again) and, per test, turns the workload's ``TrialSpec`` into the
spec for one candidate: a git worktree (plus the build step), a uv venv, a container image, or
just ``$SLEUTH_CANDIDATE``.  Preparing a candidate that cannot be prepared (a failed build, a
release that does not install, an image tag that does not exist) is a SKIP, never an exception.
git sources live in :mod:`sleuth.bisect.git` and :mod:`sleuth.bisect.multigit`, PyPI in
:mod:`sleuth.bisect.packaged`, images in :mod:`sleuth.bisect.imagesource`.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from sleuth.errors import UsageError
from sleuth.model import TrialSpec

__all__ = [
    "LABEL_MAX",
    "Candidate",
    "ListSource",
    "Prepared",
    "Source",
    "candidate_key",
    "parse_date",
    "source_from_config",
    "with_candidate",
]


#: the longest candidate label a list file may hold (labels reach the journal and the terminal)
LABEL_MAX = 1000
#: a list file larger than this is refused (a million 64-character labels fit)
LIST_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Candidate:
    """One point of the search: its label (SHA, version, tag, line) and its position."""

    index: int
    label: str


@dataclass(frozen=True, slots=True)
class Prepared:
    """A candidate ready to test: the spec to run, or why it cannot be tested."""

    spec: TrialSpec | None
    skip_reason: str = ""


def candidate_key(c: Candidate) -> str:
    """A directory name for a candidate: ``0007-<label slug>`` (path-safe; long labels get a hash).

    The slug is of the label with its secrets hidden (a list line ``https://user:pass@mirror/x``).
    """
    from sleuth.secrets import scrub_text

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", scrub_text(c.label))
    if len(slug) > 48:
        slug = slug[:40] + "-" + hashlib.sha1(c.label.encode()).hexdigest()[:7]
    return f"{c.index:04d}-{slug.strip('._-') or 'x'}"


class Source(Protocol):
    """Where candidates come from and how one is made ready."""

    kind: str

    def resolve(self) -> list[str]:
        """The candidate labels, oldest first (queries git, the index, ...)."""
        ...

    def prepare(self, cand: Candidate, spec: TrialSpec, cand_dir: Path) -> Prepared:
        """The spec to run for ``cand`` (called from worker threads)."""
        ...

    def config(self) -> dict[str, Any]:
        """JSON-able form, enough to rebuild the source on resume."""
        ...


def with_candidate(spec: TrialSpec, cand: Candidate, **extra: str) -> TrialSpec:
    """The spec with ``$SLEUTH_CANDIDATE`` (the label) and ``$SLEUTH_CANDIDATE_INDEX`` set."""
    return spec.with_env({"SLEUTH_CANDIDATE": cand.label, "SLEUTH_CANDIDATE_INDEX": str(cand.index), **extra})


@dataclass(slots=True)
class ListSource:
    """``sleuth bisect list FILE``: one label per line, oldest first (blank and ``#`` lines ignored).

    FILE may be a pipe (``<(git tag --sort=creatordate)``) or ``-`` (standard input): the labels are
    journaled when the bisection starts, so a resume does not read it again.
    """

    path: str
    kind: str = "list"

    def resolve(self) -> list[str]:
        """The file's lines (UTF-8 text, a byte-order mark ignored; each at most :data:`LABEL_MAX`
        characters, none twice)."""
        where = f"sleuth bisect list {self.path}"
        try:
            if self.path == "-":
                data = sys.stdin.buffer.read(LIST_MAX_BYTES + 1)
            else:
                with open(self.path, "rb") as fh:
                    data = fh.read(LIST_MAX_BYTES + 1)
        except OSError as exc:
            raise UsageError(f"{where}: cannot read it ({exc.strerror})") from exc
        if len(data) > LIST_MAX_BYTES:
            raise UsageError(f"{where}: larger than {LIST_MAX_BYTES >> 20} MiB",
                             hint="list one candidate per line, oldest first")  # fmt: skip
        if b"\0" in data:
            raise UsageError(
                f"{where}: a binary file, not text", hint="list one candidate per line, oldest first"
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise UsageError(f"{where}: line {line} is not UTF-8 text (byte 0x{data[exc.start]:02x})",
                             hint="save the file as UTF-8") from None  # fmt: skip
        # a byte-order mark (Notepad, Excel, PowerShell save UTF-8 with one) is no part of the first line:
        # kept, the first candidate would be tested as "\ufeffv1.0", which no one can see
        text = text.removeprefix("\ufeff")
        labels: list[str] = []
        seen: dict[str, int] = {}
        for no, ln in enumerate(text.splitlines(), 1):
            label = ln.strip()
            if not label or label.startswith("#"):
                continue
            if len(label) > LABEL_MAX:
                raise UsageError(f"{where}: line {no} is {len(label)} characters long (at most {LABEL_MAX})",
                                 hint="list one short label per line")  # fmt: skip
            if label in seen:
                raise UsageError(f"{where}: {label!r} is listed twice (lines {seen[label]} and {no})")
            seen[label] = no
            labels.append(label)
        return labels

    def resolve_skip(self, values: tuple[str, ...], labels: list[str]) -> tuple[str, ...]:
        """``--skip LINE``: lines strictly between the first and the last."""
        out: list[str] = []
        for v in values:
            if v not in labels[1:-1]:
                raise UsageError(f"--skip {v!r}: not a line between the first and the last of {self.path}")
            if v not in out:
                out.append(v)
        return tuple(out)

    def prepare(self, cand: Candidate, spec: TrialSpec, cand_dir: Path) -> Prepared:
        """``$SLEUTH_CANDIDATE`` is the line."""
        return Prepared(with_candidate(spec, cand))

    def config(self) -> dict[str, Any]:
        """``{"kind": "list", "path": ...}``."""
        path = Path(self.path)
        return {"kind": self.kind, "path": str(path.resolve()) if path.is_file() else self.path}


def parse_date(text: str, flag: str) -> date:
    """``YYYY-MM-DD`` or raise a UsageError naming the flag."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected a date like 2024-09-19") from None


def source_from_config(cfg: dict[str, Any]) -> Source:
    """Rebuild a source from :meth:`Source.config` (resume)."""
    from sleuth.bisect.git import GitSource
    from sleuth.bisect.imagesource import ImageSource
    from sleuth.bisect.multigit import MultiGitSource, RepoSpec
    from sleuth.bisect.packaged import PypiSource

    kind = cfg["kind"]
    args = {k: v for k, v in cfg.items() if k != "kind"}
    if kind == "multigit":
        repos = tuple(RepoSpec(**r) for r in args.pop("repos"))
        return MultiGitSource(repos, **args)
    if kind == "list":
        return ListSource(**args)
    if kind == "git":
        return GitSource(**args)
    if kind == "pypi":
        return PypiSource(
            **{
                **args,
                "pins": tuple(args["pins"]),
                "constraints": tuple(args.get("constraints", ())),
                "extra_index_urls": tuple(args.get("extra_index_urls", ())),
                "extra_with_package": tuple(args.get("extra_with_package", ())),
                "fixed_extras": tuple(args.get("fixed_extras", ())),
            }
        )
    if kind == "images":
        return ImageSource(**{**args, "mounts": tuple(args["mounts"])})
    if kind == "image-commits":
        from sleuth.bisect.chain import ChainSource

        return ChainSource.from_config(args)
    raise UsageError(f"unknown candidate source {kind!r} in the run dir")
