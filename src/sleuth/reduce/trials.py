"""A candidate's trials: the spec a worker runs, and each finished trial judged.

:func:`trial_spec` runs in the worker (the engine's ``prepare``): it lays out the trial's own
scratch copy of the cwd (:func:`~sleuth.reduce.scratch.build_workdir`, at :func:`scratch_dir`;
removed once the trial is judged) whatever the axes, so that no trial, the baseline's included,
runs in the user's directory: none leaves its outputs there, none reads the outputs of another
running at once (``--jobs``), and each starts from the user's files, not from what an earlier trial
of its candidate left.  It adds the candidate's variables, starts a command line that holds a
secret through the trampoline :mod:`sleuth.reduce._exec` (the engine journals argv), and wraps the
spec in the prepared environment (a container or pyxis starts in the scratch copy).  :func:`judge`
turns a finished or replayed trial into a :class:`TrialRecord`: its signature scrubbed as the
journal is, whether it reproduces the target (:func:`reproduces`), the step its logs reached
(:func:`scan_step`).  :class:`Evaluation` is one candidate under test.

A part of :class:`~sleuth.reduce.driver.Driver`, given the driver as its own methods were.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.model import Outcome, TrialSpec
from sleuth.oracle import same_failure
from sleuth.reduce.fixpoint import Query
from sleuth.reduce.plan import Candidate
from sleuth.reduce.ranks import WORLD_SIZE_VAR
from sleuth.reduce.scratch import build_workdir
from sleuth.signature import parse_signature

if TYPE_CHECKING:
    from sleuth.reduce.driver import Driver

__all__ = ["Evaluation", "TrialRecord", "judge", "reproduces", "scan_step", "scratch_dir", "trial_spec"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialRecord:
    """One judged trial of one candidate."""

    id: str
    k: int
    outcome: Outcome
    reproduced: bool
    signature: str | None
    wall_s: float
    step: int | None
    replayed: bool
    #: why the trial could not be judged (``oracle raised ValueError: ...``), as the engine recorded it
    reason: str | None = None

    def label(self) -> str:
        """``reproduced`` / ``other_failure`` / ``pass`` / ``skip`` / ``error``."""
        if self.reproduced:
            return "reproduced"
        return "other_failure" if self.outcome is Outcome.FAIL else self.outcome.value


@dataclass(slots=True)
class Evaluation:
    """One candidate under test: the queries it answers, its trials so far and those running."""

    cand: Candidate
    queries: list[Query]
    trials: list[TrialRecord] = field(default_factory=list)
    running: int = 0
    cache_hit: bool = False
    started: float = field(default_factory=time.monotonic)


def scratch_dir(trial_dir: Path) -> Path:
    """The scratch copy a trial runs in: ``candidates/<short>/work/t<k>`` beside its trial dir."""
    return trial_dir.parent / "work" / trial_dir.name


def trial_spec(d: Driver, cand: Candidate, trial_dir: Path) -> TrialSpec:
    """In the worker: lay out the trial's scratch copy of the cwd, then the spec to run in it."""
    cwd = scratch_dir(trial_dir)
    shutil.rmtree(cwd, ignore_errors=True)  # what a process killed before it removed this one left
    build_workdir(d.plan, cand, cwd, d._copies)
    env = {**d.environ, **cand.env}
    if cand.world_size is not None:
        env[WORLD_SIZE_VAR] = str(cand.world_size)
    argv = cand.argv
    shown = tuple(d.scrub.text(a) for a in argv)
    if shown != argv:  # the engine journals argv: start through a trampoline that hides it
        import json

        env["SLEUTH_EXEC_ARGV"] = json.dumps(list(argv))
        argv = (sys.executable, "-m", "sleuth.reduce._exec", *shown)
    spec = TrialSpec(argv=argv, env=env, cwd=str(cwd), timeout_s=d.timeout,
                     kill_grace_s=d.plan.spec.workload.kill_grace_s, label=cand.short)  # fmt: skip
    from dataclasses import replace

    from sleuth.environments.container import PreparedContainer
    from sleuth.environments.pyxis import PreparedPyxis

    p = d.prepared
    extra = {k: env[k] for k in (*cand.env, *(k for k in env if k.startswith("SLEUTH_")))}
    # a container sees only the variables named, and starts in the candidate's scratch copy
    if isinstance(p, PreparedContainer):
        inside = replace(p, env=replace(p.env, workdir=str(cwd)))
        return inside.wrap(spec, output_dir=trial_dir, extra_env=extra)
    if isinstance(p, PreparedPyxis):
        on_node = replace(p, env=replace(p.env, workdir=str(cwd)))
        return on_node.wrap(spec, output_dir=trial_dir, extra_env=extra)
    wrapped: TrialSpec = d.prepared.wrap(spec)
    return wrapped


def judge(d: Driver, cand: Candidate, rec: Mapping[str, Any], k: int, *, replayed: bool) -> TrialRecord:
    """Trial ``k`` of ``cand`` (``rec``: the result the engine recorded, or the journal kept) judged."""
    outcome = Outcome(rec["outcome"])
    # scrubbed as the journal is at the end of a run (Ctrl-C too): a trial replayed from it and
    # one run now compare alike ("project <redacted>" never matched "project zebrafishy")
    sig = d.scrub.text(rec["signature"]) if rec.get("signature") else None
    step = None
    if outcome is Outcome.FAIL and d._step_rx:
        step = scan_step(d._step_rx, d.run_dir.path / "candidates" / cand.short / f"t{k}")
    return TrialRecord(
        id=f"{cand.short}/t{k}",
        k=k,
        outcome=outcome,
        reproduced=reproduces(d, outcome, sig),
        signature=sig,
        wall_s=float(rec.get("wall_s") or 0.0),
        step=step,
        replayed=replayed,
        reason=rec.get("error") or rec.get("reason"),
    )


def scan_step(step_rx: Mapping[str, re.Pattern[str]], trial_dir: Path) -> int | None:
    """The highest last step any of ``step_rx`` finds in the trial's stdout or stderr (None: none)."""
    best: int | None = None
    for rx in step_rx.values():
        for name in ("stdout", "stderr"):
            try:
                text = (trial_dir / name).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            found = [m.group(1) if rx.groups else m.group(0) for m in rx.finditer(text)]
            nums = [int(x) for x in found if x.isdigit()]
            if nums:
                best = nums[-1] if best is None else max(best, nums[-1])
    return best


def reproduces(d: Driver, outcome: Outcome, sig: str | None) -> bool:
    """Whether a trial that ended ``outcome`` with ``sig`` reproduces the target (or matched the regex)."""
    if outcome is not Outcome.FAIL or sig is None:
        return False
    if d.plan.spec.oracle.kind == "regex":
        return parse_signature(sig).head == "output"
    return d.target is not None and same_failure(sig, d.target)
