"""The decision: a pure function of findings, history and policy (no I/O, no clock).

Invariants (property-tested in ``tests/attribution/test_decide.py``):

* a cascade, a diagnostic line or a confirmation (when a root exists) is never the root;
* the root is the earliest root-role finding: by timestamp when every candidate has one, else by
  log order (file, then line), except that (the order of files is not the order of events) a first
  root that is a peer's symptom (``peer_symptom``: NET/IB error 12) yields to a root in another
  file that is not one, and a first root of the ``ambiguous`` class yields to a hardware,
  gpu-memory or fabric root in another file; confirmations stand in only when no root was found;
* the catalog says STOP only for (a) a root of an established deterministic class whose
  signature's action is STOP, (b) the same root again after its retry budget, counted over
  consecutive cycles without progress, or (c) ``max_no_progress_cycles`` cycles in a row without
  progress; everything else is RESTART (UNKNOWN when nothing matched);
* a root timed before the job's inferred start (``Finding.before_start``: an earlier job's, or a
  fault while this job started; see :mod:`sleuth.attribution.analyze`) is never blamed: the
  verdict is UNKNOWN, "inconclusive" (rule ``before-start``), unless (c) says STOP;
* aggregation over sources ignores abstentions (timeouts, errors, UNKNOWN); with no vote it is
  UNKNOWN;
* the mode never changes ``action``: shadow makes ``effective_action`` RESTART where enforce keeps
  STOP; UNKNOWN is acted on as RESTART (the safe default) in both modes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sleuth.attribution.model import (
    Action,
    Aggregation,
    CatalogAction,
    Decision,
    Finding,
    Mode,
    Role,
    SignatureClass,
    SourceVerdict,
)

__all__ = [
    "CATALOG_SOURCE",
    "CatalogVerdict",
    "CycleRecord",
    "Policy",
    "aggregate",
    "catalog_verdict",
    "choose_root",
    "decide",
    "effective_action",
]

CATALOG_SOURCE = "catalog"
#: classes of a fault of the machine itself, which programs on it see as ambiguous errors
_HARDWARE = frozenset({SignatureClass.HARDWARE, SignatureClass.GPU_MEMORY, SignatureClass.FABRIC})
_ANY = Aggregation("any")


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """When the catalog recommends STOP."""

    #: classes whose STOP action is trusted at once (a restart repeats them)
    deterministic_classes: frozenset[SignatureClass] = frozenset(
        {SignatureClass.SOFTWARE, SignatureClass.USER}
    )
    #: same-root retries allowed per catalog action, counted over cycles without progress
    budgets: Mapping[CatalogAction, int] = field(
        default_factory=lambda: {
            CatalogAction.RESTART: 3,
            CatalogAction.EXCLUDE_NODE: 3,
            CatalogAction.RESTART_ONCE: 1,
            CatalogAction.STOP: 1,
        }
    )
    #: stop after this many cycles in a row that showed no progress (0: never)
    max_no_progress_cycles: int = 3

    def to_json(self) -> dict[str, Any]:
        """The resolved policy, for records and ``--json``."""
        return {
            "deterministic_classes": sorted(c.value for c in self.deterministic_classes),
            "budgets": {a.value: n for a, n in self.budgets.items()},
            "max_no_progress_cycles": self.max_no_progress_cycles,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CycleRecord:
    """One earlier cycle as the history remembers it."""

    cycle: int
    #: the root signature's id, or None when no root was found
    root: str | None
    #: True: iterations or checkpoints advanced; False: they did not; None: unknown
    progress: bool | None
    action: Action

    def to_json(self) -> dict[str, Any]:
        """One history line."""
        return {
            "cycle": self.cycle,
            "root": self.root,
            "progress": self.progress,
            "action": self.action.value,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CycleRecord:
        """Inverse of :meth:`to_json`; KeyError/ValueError on a malformed record."""
        progress = data.get("progress")
        if progress is not None and not isinstance(progress, bool):
            raise ValueError("progress must be true, false or null")
        root = data.get("root")
        if root is not None and not isinstance(root, str):
            raise ValueError("root must be a signature id or null")
        return cls(cycle=int(data["cycle"]), root=root, progress=progress, action=Action(data["action"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogVerdict:
    """The built-in catalog's verdict with what it rests on."""

    verdict: SourceVerdict
    root: Finding | None
    rule: str
    #: how the root was ordered: ``timestamp`` or ``log order`` (None without a root)
    ordering: str | None = None
    advice: tuple[str, ...] = ()


def choose_root(findings: Sequence[Finding]) -> tuple[Finding | None, str | None]:
    """The earliest root-role finding (confirmations when no root), and how candidates were ordered."""
    candidates = [f for f in findings if f.role is Role.ROOT] or [
        f for f in findings if f.role is Role.CONFIRMATION
    ]
    if not candidates:
        return None, None
    files = _file_order(findings)
    if all(f.timestamp is not None for f in candidates):
        best = min(candidates, key=lambda f: (f.timestamp, files[f.file], f.line))
        return best, "timestamp"

    def order(f: Finding) -> tuple[int, int]:
        return files[f.file], f.line

    first = min(candidates, key=order)
    how = "log order"
    if first.peer_symptom:
        # across files, log order is only the order the logs were given: rank 0's NET/IB error 12
        # is what rank 3's death (its CUDA OOM) looks like from the other end of the link
        local = [f for f in candidates if f.file != first.file and not f.peer_symptom]
        if local:
            first, how = min(local, key=order), "local over network symptom"
    if first.cls is SignatureClass.AMBIGUOUS:
        # an ambiguous root (what a failed GPU looks like to the program) yields to a hardware
        # fault in another log (a peer's symptom is not one)
        hardware = [
            f for f in candidates if f.file != first.file and f.cls in _HARDWARE and not f.peer_symptom
        ]
        if hardware:
            return min(hardware, key=order), "hardware over ambiguous"
    return first, how


def _file_order(findings: Sequence[Finding]) -> dict[str, int]:
    """Each file's place in log order: as given, except that torchrun's attempts go in their order
    (a shell lists ``attempt_10`` before ``attempt_2``) among the places of the files that have one."""
    names = list(dict.fromkeys(f.file for f in findings))
    attempt = {f.file: f.attempt for f in findings if f.attempt is not None}
    slots = [i for i, n in enumerate(names) if n in attempt]
    ordered = sorted((n for n in names if n in attempt), key=lambda n: attempt[n])  # stable: given order
    for slot, n in zip(slots, ordered, strict=True):
        names[slot] = n
    return {n: i for i, n in enumerate(names)}


def _same_root_streak(root: str, history: Sequence[CycleRecord], progress: bool | None) -> int:
    """Earlier consecutive cycles with this root, not counting past (or at) observed progress."""
    if progress is True:
        return 0
    streak = 0
    for rec in reversed(history):
        if rec.root != root:
            break
        streak += 1
        if rec.progress is True:  # it failed the same way, but only after advancing: the streak starts here
            break
    return streak


def _no_progress_run(history: Sequence[CycleRecord], progress: bool | None) -> int:
    """Cycles in a row, ending with this one, known to have made no progress."""
    if progress is not False:
        return 0
    run = 1
    for rec in reversed(history):
        if rec.progress is not False:
            break
        run += 1
    return run


def _describe(f: Finding) -> str:
    where = f"{f.file}:{f.line}" + (f" (rank {f.rank})" if f.rank is not None else "")
    return f"{f.signature} [{f.cls.value}] at {where}"


def catalog_verdict(
    findings: Sequence[Finding], history: Sequence[CycleRecord], policy: Policy, progress: bool | None
) -> CatalogVerdict:
    """What the built-in catalog recommends for this cycle (see the module docstring for the rules)."""

    def out(action: Action, reason: str, rule: str, root: Finding | None = None, **kw: Any) -> CatalogVerdict:
        verdict = SourceVerdict(name=CATALOG_SOURCE, action=action, reason=reason)
        return CatalogVerdict(verdict=verdict, root=root, rule=rule, **kw)

    root, ordering = choose_root(findings)
    stalled = _no_progress_run(history, progress)
    limit = policy.max_no_progress_cycles
    if root is None:
        cascades = [f for f in findings if f.role is Role.CASCADE]
        if limit and stalled >= limit:
            return out(
                Action.STOP, f"{stalled} cycles in a row without progress (limit {limit})", "no-progress"
            )
        if cascades:
            first = cascades[0]
            return out(
                Action.RESTART,
                f"only consequences of an earlier failure were found (first: {_describe(first)}); "
                "the cause is not in these logs",
                "cascade-only",
            )
        return out(Action.UNKNOWN, "no known failure signature in the logs", "no-match")
    kw: dict[str, Any] = {"root": root, "ordering": ordering}
    early = root.before_start  # from before the job's inferred start: not this job's for sure
    if not early and root.action is CatalogAction.STOP and root.cls in policy.deterministic_classes:
        return out(
            Action.STOP,
            f"{_describe(root)} is a deterministic {root.cls.value} failure: a restart repeats it",
            "deterministic-class",
            **kw,
        )
    budget = policy.budgets.get(root.action, 1)
    streak = _same_root_streak(root.signature, history, progress)
    if not early and streak >= budget:
        return out(
            Action.STOP,
            f"same root cause {root.signature} in the {streak} previous cycle(s) without progress "
            f"(retry budget {budget} for {root.action.value})",
            "retry-budget",
            **kw,
        )
    if limit and stalled >= limit:
        return out(
            Action.STOP, f"{stalled} cycles in a row without progress (limit {limit})", "no-progress", **kw
        )
    who = f"rank {root.rank}" if root.rank is not None else root.file
    if early:
        own, _ = choose_root([f for f in findings if not f.before_start])
        mine = f"this job's own root would be {_describe(own)}" if own else "this job's logs hold no root"
        return out(
            Action.UNKNOWN,
            f"inconclusive: the root {_describe(root)} is from before this job's inferred start (an "
            f"earlier job's, or a fault while this job started); {mine}; give the job's start "
            "(--job-start, the service's job_start) to tell",
            "before-start",
            advice=(
                (f"check the node of {who}: exclude it (or reset its GPU) if the fault is still there",)
                if root.action is CatalogAction.EXCLUDE_NODE
                else ()
            ),
            **kw,
        )
    advice: tuple[str, ...] = ()
    if root.action is CatalogAction.EXCLUDE_NODE:
        advice = (f"exclude the node of {who} (or reset its GPU) before restarting",)
    left = budget - streak
    return out(
        Action.RESTART,
        f"{_describe(root)}: {root.action.value} ({left} same-root retr{'y' if left == 1 else 'ies'} left)",
        "restart",
        advice=advice,
        **kw,
    )


def aggregate(verdicts: Sequence[SourceVerdict], aggregation: Aggregation) -> tuple[Action, str, str]:
    """``(action, decided_by, reason)`` over the voting verdicts, in the order given."""
    voting = [v for v in verdicts if v.votes]
    if not voting:
        return Action.UNKNOWN, "none", "no source gave a verdict"
    stops = [v for v in voting if v.action is Action.STOP]
    restarts = [v for v in voting if v.action is Action.RESTART]
    kind = aggregation.kind
    if kind == "priority":
        first = voting[0]
        return first.action, first.name, first.reason
    if kind == "any":
        stop = bool(stops)
    elif kind == "all":
        stop = len(stops) == len(voting)
    else:  # quorum
        stop = len(stops) >= aggregation.k
    if stop:
        names = ", ".join(v.name for v in stops) if kind != "any" else stops[0].name
        return Action.STOP, names, stops[0].reason
    lead = restarts[0] if restarts else voting[0]
    why = lead.reason
    if stops:
        need = {"all": f"all {len(voting)}", "quorum": f"{aggregation.k}"}.get(kind, "1")
        why += f" ({len(stops)} STOP vote(s), {need} needed under {aggregation})"
    return Action.RESTART, lead.name, why


def effective_action(action: Action, mode: Mode) -> Action:
    """What is done: STOP only for a STOP under ``enforce``; everything else restarts."""
    return Action.STOP if action is Action.STOP and mode is Mode.ENFORCE else Action.RESTART


def decide(
    findings: Sequence[Finding],
    history: Sequence[CycleRecord],
    policy: Policy,
    *,
    progress: bool | None = None,
    external: Sequence[SourceVerdict] = (),
    aggregation: Aggregation = _ANY,
    mode: Mode = Mode.SHADOW,
) -> tuple[Decision, CatalogVerdict]:
    """The whole decision: the catalog's verdict, the sources' verdicts aggregated, the mode applied.

    ``external`` verdicts come first (in their configured order), the catalog last, so under
    ``priority`` an external source that answers decides and the catalog is the fallback.
    """
    cat = catalog_verdict(findings, history, policy, progress)
    action, by, reason = aggregate([*external, cat.verdict], aggregation)
    if by == "none":  # nobody voted: the catalog's own words say why (nothing matched)
        reason = cat.verdict.reason + (f"; {reason}" if external else "")
    eff = effective_action(action, mode)
    if action is Action.STOP and eff is Action.RESTART:
        reason += " [shadow mode: recorded, not acted on]"
    return (
        Decision(
            action=action,
            effective_action=eff,
            reason=reason,
            decided_by=by,
            mode=mode,
            rule=cat.rule if by in (CATALOG_SOURCE, "none") else "source",
            advice=cat.advice,
        ),
        cat,
    )
