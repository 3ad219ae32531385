"""Judge a distributed trial rank by rank (the ``world_size`` axis).

The launcher prefixes each line with its rank (torchrun ``--tee 3``: ``[default2]:...``).  Each
rank's lines are judged alone: with a regex oracle a rank fails when the pattern is in its lines,
otherwise when its lines hold an error (a traceback's last exception, an error line).  The trial
fails when ``any`` rank fails, ``all`` of them do, or rank 0 does (``rank0``), and its signature
is the one of the earliest failing rank: the rank whose error line comes first in the output, so
the launcher's own summary (``ChildFailedError``) never names the failure.  Without any rank prefix
in the output (another launcher), the whole output is judged as one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sleuth.model import Outcome, TrialResult
from sleuth.oracle import Judgement, StandardOracle
from sleuth.signature import error_text, make_signature

__all__ = ["WORLD_SIZE_VAR", "RankOracle", "split_ranks"]

#: set in every trial of a world_size axis: how many ranks the launcher starts
WORLD_SIZE_VAR = "SLEUTH_REDUCE_WORLD_SIZE"

#: how much of each stream is read to split it by rank
_READ_LIMIT = 8 * 1024 * 1024


def split_ranks(text: str, prefix: re.Pattern[str]) -> dict[int, list[tuple[int, str]]]:
    """rank -> [(line number, line without its prefix)] for every prefixed line of ``text``."""
    out: dict[int, list[tuple[int, str]]] = {}
    for n, line in enumerate(text.splitlines()):
        m = prefix.match(line)
        if m:
            out.setdefault(int(m.group(1)), []).append((n, line[m.end() :]))
    return out


def _read(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(_READ_LIMIT).decode("utf-8", "replace")
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class RankOracle:
    """Wraps the standard oracle; see the module docstring for the rule."""

    inner: StandardOracle
    prefix: re.Pattern[str]
    aggregate: str

    def _rank_failure(self, lines: list[tuple[int, str]]) -> tuple[int, str] | None:
        """(line number, signature) of this rank's failure, or None."""
        cfg = self.inner.config
        if cfg.fail_regex is not None:
            for n, line in lines:
                if cfg.fail_regex.search(line):
                    return n, make_signature("output", line)
            return None
        text = "\n".join(line for _, line in lines)
        err = error_text(text)
        if err is None:
            return None
        first = next((n for n, line in lines if err.split(":")[0] in line), lines[0][0])
        return first, make_signature("rank", err)

    def judge(self, result: TrialResult) -> Judgement:
        """The aggregated verdict; the earliest failing rank names the failure."""
        base = self.inner.judge(result)
        if base.outcome in (Outcome.ERROR, Outcome.SKIP):
            return base
        names = self.inner.config.stream.names()
        text = "\n".join(_read(result.stdout_path if n == "stdout" else result.stderr_path) for n in names)
        ranks = split_ranks(text, self.prefix)
        if not ranks:
            return base
        failures = {r: f for r, lines in ranks.items() if (f := self._rank_failure(lines)) is not None}
        size = int(result.spec.env.get(WORLD_SIZE_VAR, "0") or 0)
        expected = set(range(size)) | set(ranks)
        if self.aggregate == "rank0":
            failed = 0 in failures
        elif self.aggregate == "all":
            failed = bool(failures) and set(failures) >= expected
        else:
            failed = bool(failures)
        if not failures:  # no rank shows an error: the launcher's own verdict stands
            return base
        if not failed:
            why = f"ranks {sorted(failures)} of {sorted(expected)} failed, aggregate {self.aggregate}"
            return Judgement(Outcome.FAIL, "ranks: partial failure", why)
        first_rank, (_, sig) = min(failures.items(), key=lambda kv: kv[1][0])
        if self.aggregate == "rank0":
            first_rank, sig = 0, failures[0][1]
        return Judgement(
            Outcome.FAIL, sig, f"rank {first_rank} failed first ({len(failures)} of {len(expected)} failed)"
        )
