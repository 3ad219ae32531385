"""What a ``sleuth run`` journal says, read once, without loading it whole.

The journal is the truth, once: :func:`read_state` streams it (a run of 100,000 trials has a
60 MB journal) and keeps, per trial number, the byte offset of its ``trial`` event, so results are
keyed by trial id, never by arrival order, and ``summary.json`` can be written in id order later by
copying those lines.  It only reads: every check that can fail (not UTF-8, another verb's run dir,
a start event without its config) fails before the run dir is locked or touched.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.errors import UsageError
from sleuth.resuming import made_by, other_verbs_run_dir
from sleuth.run_tally import Tally

__all__ = ["SUBDIRS", "RunState", "TrialIndex", "iter_lines", "read_state", "record_text"]

#: where counted trials and warm-up trials live, relative to the run dir
SUBDIRS = ("trials", "warmup")
_FAST_ID = re.compile(rb'^\{"event": "trial", [^{]*?"subdir": "(\w+)"[^{]*"trial": \{"id": "w?(\d+)"')


def iter_lines(path: Path, start: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """``(line number, byte offset, line)`` of every complete line from ``start`` (torn tail skipped)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        offset = start
        for lineno, raw in enumerate(fh, 1):
            if not raw.endswith(b"\n"):
                return  # a line a kill -9 cut: dropped when the journal is next opened
            yield lineno, offset, raw
            offset += len(raw)


def record_text(line: bytes) -> bytes | None:
    """The trial record (JSON text) inside one journaled ``trial`` event line, without parsing it.

    Events are ``{"event": "trial", ..., "trial": {...}}`` with the record last.
    """
    i = line.find(b'"trial": {')
    body = line.rstrip(b"\n")
    if i < 0 or not body.endswith(b"}}"):
        return None
    return body[i + 9 : -1]


class TrialIndex:
    """Byte offset of the last ``trial`` event of each trial number, per subdir (-1: none)."""

    def __init__(self, sizes: Mapping[str, int]) -> None:
        self.offsets = {sub: array("q", [-1]) * n for sub, n in sizes.items()}
        self.scanned = 0  # journal bytes already indexed

    def put(self, subdir: str, number: int, offset: int) -> bool:
        """Record an event; False when ``subdir``/``number`` lies outside the plan."""
        arr = self.offsets.get(subdir)
        if arr is None or not 0 < number <= len(arr):
            return False
        arr[number - 1] = offset
        return True

    def scan(self, path: Path) -> None:
        """Index the ``trial`` events appended since the last scan (the engine journals them)."""
        end = self.scanned
        for _n, offset, raw in iter_lines(path, self.scanned):
            end = offset + len(raw)
            m = _FAST_ID.match(raw)
            if m is not None:
                self.put(m[1].decode(), int(m[2]), offset)
            elif raw.startswith(b'{"event": "trial"'):
                ev = json.loads(raw)
                self.put(str(ev.get("subdir", "trials")), int(str(ev["trial"]["id"]).lstrip("w")), offset)
        self.scanned = end

    def records(self, path: Path, subdir: str, numbers: Iterator[int] | None = None) -> Iterator[bytes]:
        """The JSON text of each indexed trial record of ``subdir``, in trial-number order."""
        arr = self.offsets[subdir]
        fast: bool | None = None  # the first line shows whether the record is the event's last key
        with open(path, "rb") as fh:
            for n in numbers if numbers is not None else range(1, len(arr) + 1):
                off = arr[n - 1]
                if off < 0:
                    continue
                fh.seek(off)
                line = fh.readline()
                text = record_text(line) if fast is not False else None
                if fast is None:
                    fast = text is not None and json.loads(text) == json.loads(line)["trial"]
                    text = text if fast else None
                yield text if text is not None else json.dumps(json.loads(line)["trial"]).encode()


@dataclass(slots=True)
class RunState:
    """A run's journal, read: its start config, whether it finished, its results by trial number."""

    config: dict[str, Any]
    tally: Tally
    warmup: Tally
    index: TrialIndex
    #: the last ``end`` event's summary when the run finished (not interrupted); None otherwise
    finished: dict[str, Any] | None = None
    #: a counted or warm-up trial so far exited 0 (so the metric check has been passed)
    completed_ok: bool = False
    replayed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _fail(journal: Path, what: str, hint: str | None = None) -> UsageError:
    return UsageError(f"{journal}: {what}", hint=hint)


def _events(journal: Path) -> Iterator[tuple[int, int, bytes, dict[str, Any]]]:
    for lineno, offset, raw in iter_lines(journal):
        try:
            ev = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise _fail(
                journal, f"line {lineno} is not UTF-8 text", "this is not a journal sleuth wrote"
            ) from None
        except json.JSONDecodeError:
            raise _fail(journal, f"line {lineno} is not a JSON event (the journal is corrupt)") from None
        if not isinstance(ev, dict) or not isinstance(ev.get("event"), str):
            raise _fail(journal, f"line {lineno} is not a sleuth event (no 'event' name)")
        yield lineno, offset, raw, ev


def read_state(run_dir: Path, sizes_of: Any) -> RunState:
    """Read ``run_dir/journal.jsonl`` (which must exist) into a :class:`RunState`; reads only.

    ``sizes_of(config) -> (trials, warmup)`` validates the start config (raising ``UsageError``)
    and says how many trials of each kind it plans.
    """
    journal = run_dir / "journal.jsonl"
    events = _events(journal)
    start: dict[str, Any] | None = None
    for _lineno, _offset, _raw, ev in events:
        if ev["event"] == "start":
            start = ev
            break
    if start is None:
        raise _fail(journal, "no 'start' event", "is this a sleuth run dir? pass the run dir a run printed")
    verb = made_by(run_dir, start)
    if verb not in (None, "run"):
        raise other_verbs_run_dir(run_dir, verb, "run")
    config = start.get("config")
    if not isinstance(config, dict):
        raise _fail(
            journal, "the start event has no 'config' object", "this run dir was not made by sleuth run"
        )
    trials, warmup = sizes_of(config)
    width = max(4, len(str(trials)))
    state = RunState(
        config, Tally(trials), Tally(max(warmup, 0)), TrialIndex({"trials": trials, "warmup": warmup})
    )
    dup = False
    end = 0
    for lineno, offset, raw, ev in events:
        end = offset + len(raw)
        if ev["event"] == "end":
            summary = ev.get("summary")
            state.finished = summary if isinstance(summary, dict) and not summary.get("interrupted") else None
            continue
        if ev["event"] != "trial":
            continue
        rec = ev.get("trial")
        sub = str(ev.get("subdir", "trials"))
        tid = str(rec.get("id", "")) if isinstance(rec, dict) else ""
        digits = tid.removeprefix("w") if sub == "warmup" else tid
        number = int(digits) if digits.isdigit() else 0
        if (
            not isinstance(rec, dict)
            or not isinstance(rec.get("outcome"), str)
            or not state.index.put(sub, number, offset)
        ):
            raise _fail(journal, f"line {lineno}: a trial event outside this run's plan ({sub}/{number})")
        tally = state.tally if sub == "trials" else state.warmup
        if tally.done(number):
            dup = True
            continue
        _add(tally, number, rec, journal, lineno)
        state.replayed += 1
        state.completed_ok = state.completed_ok or _ok(rec)
    state.index.scanned = max(end, state.index.scanned)
    if dup:  # an older sleuth journaled a replayed result again: count the last record of each id
        state.tally, state.warmup = Tally(trials), Tally(max(warmup, 0))
        for sub, tally in (("trials", state.tally), ("warmup", state.warmup)):
            for text in state.index.records(journal, sub):
                rec = json.loads(text)
                _add(tally, int(str(rec["id"]).lstrip("w")), rec, journal, 0)
        state.replayed = sum(state.tally.counts.values()) + sum(state.warmup.counts.values())
    state.extra["width"] = width
    return state


def _ok(rec: Mapping[str, Any]) -> bool:
    return (
        rec.get("rc") == 0 and not rec.get("timed_out") and not rec.get("error") and rec.get("signal") is None
    )


def _add(tally: Tally, number: int, rec: Mapping[str, Any], journal: Path, lineno: int) -> None:
    try:
        tally.add(number, rec)
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(journal, f"line {lineno}: a trial record sleuth cannot read ({exc})") from None
