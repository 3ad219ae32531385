"""The decision as a pure function: unit cases and properties over random findings and histories."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth.attribution.decide import CycleRecord, Policy, aggregate, catalog_verdict, choose_root, decide
from sleuth.attribution.model import (
    Action,
    Aggregation,
    CatalogAction,
    Finding,
    Mode,
    Role,
    SignatureClass,
    SourceStatus,
    SourceVerdict,
)

POLICY = Policy()


def f(
    sig: str,
    role: Role = Role.ROOT,
    cls: SignatureClass = SignatureClass.HARDWARE,
    action: CatalogAction = CatalogAction.RESTART,
    *,
    file: str = "a.log",
    line: int = 1,
    ts: float | None = None,
    rank: int | None = None,
    peer_symptom: bool = False,
    attempt: int | None = None,
    before_start: bool = False,
) -> Finding:
    return Finding(
        file=file,
        line=line,
        rank=rank,
        timestamp=ts,
        signature=sig,
        cls=cls,
        role=role,
        action=action,
        text=sig,
        peer_symptom=peer_symptom,
        attempt=attempt,
        before_start=before_start,
    )


def test_cascade_first_in_one_file_is_not_the_root() -> None:
    cascade = f("nccl.watchdog_timeout", Role.CASCADE, SignatureClass.CASCADE, file="rank0.log", ts=100.0)
    root = f("nvidia.xid.79", file="rank3.log", ts=50.0, action=CatalogAction.EXCLUDE_NODE, rank=3)
    cat = catalog_verdict([cascade, root], [], POLICY, None)
    assert cat.root == root and cat.verdict.action is Action.RESTART and cat.ordering == "timestamp"
    assert cat.advice and "rank 3" in cat.advice[0]


def test_earliest_root_by_timestamp_else_log_order() -> None:
    late = f(
        "cuda.oom", cls=SignatureClass.SOFTWARE, action=CatalogAction.STOP, file="a.log", line=1, ts=20.0
    )
    early = f("nvidia.xid.48", cls=SignatureClass.GPU_MEMORY, file="b.log", line=9, ts=10.0)
    assert choose_root([late, early]) == (early, "timestamp")
    no_ts = f("nvidia.xid.48", file="b.log", line=9)
    assert choose_root([late, no_ts]) == (late, "log order")


def test_an_ambiguous_root_yields_to_a_hardware_fault_in_another_log_without_timestamps() -> None:
    # sleuth attribute rank*.log node7-dmesg.log: the rank's "CUDA error: unspecified launch failure"
    # (no time on torch's lines) was the root over dmesg's Xid 79, and its recurrence a STOP
    launch = f(
        "cuda.launch_failure",
        cls=SignatureClass.AMBIGUOUS,
        action=CatalogAction.RESTART_ONCE,
        file="rank5.log",
        line=2,
        rank=5,
    )
    xid = f("nvidia.xid.79", action=CatalogAction.EXCLUDE_NODE, file="node7-dmesg.log", line=1)
    assert choose_root([launch, xid]) == (xid, "hardware over ambiguous")
    again = [CycleRecord(cycle=0, root="nvidia.xid.79", progress=None, action=Action.RESTART)]
    cat = catalog_verdict([launch, xid], again, POLICY, None)
    assert cat.verdict.action is Action.RESTART and cat.advice
    # within one log, line order is time order; with every time known, time decides
    same_file = f("nvidia.xid.79", action=CatalogAction.EXCLUDE_NODE, file="rank5.log", line=9)
    assert choose_root([launch, same_file]) == (launch, "log order")
    timed = [f("x.amb", cls=SignatureClass.AMBIGUOUS, ts=1.0), f("x.hw", file="b.log", ts=2.0)]
    assert choose_root(timed)[0] == timed[0]


def test_a_peer_symptom_yields_to_a_local_root_in_another_log_without_timestamps() -> None:
    # rank 0's "NET/IB : Got completion ... error 12" is what rank 3's death looks like from the
    # other end of the link: given first, it was the root (RESTART) over rank 3's CUDA OOM (STOP)
    ib = f("nccl.ib_completion_error", cls=SignatureClass.FABRIC, file="rank0.log", line=2, peer_symptom=True)
    oom = f("cuda.oom", cls=SignatureClass.SOFTWARE, action=CatalogAction.STOP, file="rank3.log", rank=3)
    assert choose_root([ib, oom]) == (oom, "local over network symptom")
    assert catalog_verdict([ib, oom], [], POLICY, None).verdict.action is Action.STOP
    # nor does it win over an ambiguous root as a hardware fault would
    iam = f("cuda.illegal_address", cls=SignatureClass.AMBIGUOUS, file="rank3.log")
    assert choose_root([iam, ib]) == (iam, "log order")
    # alone, or with every time known, or later in the same log, it stays what it was
    assert choose_root([ib]) == (ib, "log order")
    same = f("cuda.oom", cls=SignatureClass.SOFTWARE, action=CatalogAction.STOP, file="rank0.log", line=9)
    assert choose_root([ib, same]) == (ib, "log order")
    timed_ib, timed_oom = replace(ib, timestamp=1.0), replace(oom, timestamp=2.0)
    assert choose_root([timed_ib, timed_oom]) == (timed_ib, "timestamp")


def test_deterministic_class_stops_at_once() -> None:
    oom = f("cuda.oom", cls=SignatureClass.SOFTWARE, action=CatalogAction.STOP)
    cat = catalog_verdict([oom], [], POLICY, None)
    assert cat.verdict.action is Action.STOP and cat.rule == "deterministic-class"


def test_stop_action_of_a_non_deterministic_class_is_bounded_not_immediate() -> None:
    weird = f("site.x", cls=SignatureClass.INFRASTRUCTURE, action=CatalogAction.STOP)
    assert catalog_verdict([weird], [], POLICY, None).verdict.action is Action.RESTART
    again = [CycleRecord(cycle=0, root="site.x", progress=None, action=Action.RESTART)]
    assert catalog_verdict([weird], again, POLICY, None).rule == "retry-budget"


def test_restart_once_then_stop_on_recurrence_unless_progress() -> None:
    iam = f("cuda.illegal_address", cls=SignatureClass.AMBIGUOUS, action=CatalogAction.RESTART_ONCE)
    assert catalog_verdict([iam], [], POLICY, None).verdict.action is Action.RESTART
    hist = [CycleRecord(cycle=0, root="cuda.illegal_address", progress=None, action=Action.RESTART)]
    cat = catalog_verdict([iam], hist, POLICY, None)
    assert cat.verdict.action is Action.STOP and cat.rule == "retry-budget"
    # the job advanced in this cycle before failing again: the streak starts over
    assert catalog_verdict([iam], hist, POLICY, True).verdict.action is Action.RESTART
    # a different root in between breaks the streak
    mixed = [*hist, CycleRecord(cycle=1, root="nvidia.xid.79", progress=None, action=Action.RESTART)]
    assert catalog_verdict([iam], mixed, POLICY, None).verdict.action is Action.RESTART


def test_no_progress_cycles_stop() -> None:
    hw = f("nvidia.xid.79", action=CatalogAction.EXCLUDE_NODE)
    other = f("nvidia.xid.74", cls=SignatureClass.FABRIC)
    hist = [
        CycleRecord(cycle=i, root=["a", "b"][i % 2], progress=False, action=Action.RESTART) for i in range(2)
    ]
    cat = catalog_verdict([hw, other], hist, POLICY, False)
    assert cat.verdict.action is Action.STOP and cat.rule == "no-progress"
    assert catalog_verdict([hw], hist, POLICY, None).verdict.action is Action.RESTART  # unknown progress


def test_a_root_from_before_the_inferred_start_is_inconclusive_never_a_stop_by_itself() -> None:
    # an earlier job's OOM (or Xid) kept because this job's own root is ambiguous: not blamed
    old_oom = replace(
        f("cuda.oom", cls=SignatureClass.SOFTWARE, action=CatalogAction.STOP, file="n.log", ts=1.0),
        before_start=True,
    )
    iam = f("cuda.illegal_address", cls=SignatureClass.AMBIGUOUS, file="rank0.log", line=2, ts=9.0, rank=0)
    cat = catalog_verdict([iam, old_oom], [], POLICY, None)
    assert cat.root == old_oom and cat.verdict.action is Action.UNKNOWN and cat.rule == "before-start"
    assert cat.verdict.reason.startswith(
        "inconclusive: the root cuda.oom [software] at n.log:1 is from before"
    )
    assert "this job's own root would be cuda.illegal_address [ambiguous] at rank0.log:2 (rank 0)" in (
        cat.verdict.reason
    )
    same = [CycleRecord(cycle=i, root="cuda.oom", progress=None, action=Action.UNKNOWN) for i in range(5)]
    assert catalog_verdict([iam, old_oom], same, POLICY, None).rule == "before-start"  # no retry budget
    stalled = [CycleRecord(cycle=i, root=None, progress=False, action=Action.RESTART) for i in range(2)]
    assert catalog_verdict([iam, old_oom], stalled, POLICY, False).rule == "no-progress"
    xid = replace(f("nvidia.xid.79", action=CatalogAction.EXCLUDE_NODE, file="n.log"), before_start=True)
    cat = catalog_verdict([xid], [], POLICY, None)
    assert "this job's logs hold no root" in cat.verdict.reason
    assert cat.advice == (
        "check the node of n.log: exclude it (or reset its GPU) if the fault is still there",
    )
    d, _ = decide([xid], [], POLICY, external=[SourceVerdict(name="llm", action=Action.RESTART, reason="r")])
    assert d.action is Action.RESTART and d.decided_by == "llm"  # the catalog abstains; a source may decide


def test_only_cascades_and_nothing() -> None:
    c = f("nccl.remote_error", Role.CASCADE, SignatureClass.CASCADE)
    cat = catalog_verdict([c], [], POLICY, None)
    assert cat.root is None and cat.verdict.action is Action.RESTART and cat.rule == "cascade-only"
    cat = catalog_verdict([f("py.traceback", Role.DIAGNOSTIC, SignatureClass.SOFTWARE)], [], POLICY, None)
    assert cat.verdict.action is Action.UNKNOWN and cat.rule == "no-match"


def test_nothing_matched_says_so_in_the_decision() -> None:
    # it once said "no source gave a verdict" under rule "source", with no source configured
    d, _ = decide([f("py.traceback", Role.DIAGNOSTIC, SignatureClass.SOFTWARE)], [], POLICY)
    assert d.action is Action.UNKNOWN and d.rule == "no-match"
    assert d.reason == "no known failure signature in the logs"


def test_confirmation_stands_in_only_without_a_root() -> None:
    conf = f(
        "linux.oom_kill", Role.CONFIRMATION, SignatureClass.INFRASTRUCTURE, CatalogAction.RESTART_ONCE, line=1
    )
    root = f("nvidia.xid.79", line=5)
    assert choose_root([conf, root])[0] == root
    assert choose_root([conf])[0] == conf


def v(name: str, action: Action, status: SourceStatus = SourceStatus.OK) -> SourceVerdict:
    return SourceVerdict(name=name, action=action, reason=f"{name} says {action.value}", status=status)


def test_aggregations() -> None:
    votes = [v("llm", Action.STOP), v("http", Action.RESTART), v("catalog", Action.RESTART)]
    assert aggregate(votes, Aggregation.parse("any"))[:2] == (Action.STOP, "llm")
    assert aggregate(votes, Aggregation.parse("all"))[0] is Action.RESTART
    assert aggregate(votes, Aggregation.parse("quorum:2"))[0] is Action.RESTART
    assert aggregate([*votes, v("x", Action.STOP)], Aggregation.parse("quorum:2"))[0] is Action.STOP
    assert aggregate(votes, Aggregation.parse("priority"))[:2] == (Action.STOP, "llm")
    timed_out = [v("llm", Action.STOP, SourceStatus.TIMEOUT), v("catalog", Action.RESTART)]
    assert aggregate(timed_out, Aggregation.parse("any"))[:2] == (Action.RESTART, "catalog")
    assert aggregate(timed_out, Aggregation.parse("priority"))[:2] == (Action.RESTART, "catalog")
    assert aggregate([v("a", Action.UNKNOWN)], Aggregation.parse("any"))[0] is Action.UNKNOWN


# --- properties ----------------------------------------------------------------------------------

ROLES = st.sampled_from(list(Role))
CLASSES = st.sampled_from(list(SignatureClass))
ACTIONS = st.sampled_from(list(CatalogAction))
finding = st.builds(
    f,
    st.sampled_from(["s.a", "s.b", "s.c", "s.d"]),
    ROLES,
    CLASSES,
    ACTIONS,
    file=st.sampled_from(["r0.log", "r1.log", "r2.log"]),
    line=st.integers(1, 500),
    ts=st.one_of(st.none(), st.floats(0, 1e6)),
    rank=st.one_of(st.none(), st.integers(0, 7)),
    peer_symptom=st.booleans(),
    attempt=st.one_of(st.none(), st.integers(0, 3)),
    before_start=st.booleans(),
)
record = st.builds(
    CycleRecord,
    cycle=st.integers(0, 50),
    root=st.one_of(st.none(), st.sampled_from(["s.a", "s.b", "s.c", "s.d"])),
    progress=st.one_of(st.none(), st.booleans()),
    action=st.sampled_from(list(Action)),
)
verdict = st.builds(
    SourceVerdict,
    name=st.sampled_from(["h1", "h2", "c1", "m1"]),
    action=st.sampled_from(list(Action)),
    reason=st.just("r"),
    status=st.sampled_from(list(SourceStatus)),
)
aggregation = st.sampled_from(["any", "all", "priority", "quorum:1", "quorum:2", "quorum:3"]).map(
    Aggregation.parse
)


@settings(max_examples=400, deadline=None)
@given(st.lists(finding, max_size=12), st.lists(record, max_size=6), st.one_of(st.none(), st.booleans()))
def test_root_is_never_a_cascade_or_diagnostic(
    findings: list[Finding], history: list[CycleRecord], progress: bool | None
) -> None:
    cat = catalog_verdict(findings, history, POLICY, progress)
    if cat.root is not None:
        assert cat.root.role in (Role.ROOT, Role.CONFIRMATION)
        if any(x.role is Role.ROOT for x in findings):
            assert cat.root.role is Role.ROOT
        assert cat.root in findings


@settings(max_examples=400, deadline=None)
@given(st.lists(finding, max_size=12), st.lists(record, max_size=6), st.one_of(st.none(), st.booleans()))
def test_stop_only_for_the_listed_reasons(
    findings: list[Finding], history: list[CycleRecord], progress: bool | None
) -> None:
    cat = catalog_verdict(findings, history, POLICY, progress)
    if cat.verdict.action is Action.STOP:
        assert cat.rule in ("deterministic-class", "retry-budget", "no-progress")
        if cat.rule == "deterministic-class":
            assert cat.root is not None and cat.root.action is CatalogAction.STOP
            assert cat.root.cls in POLICY.deterministic_classes
        if cat.rule == "no-progress":
            assert progress is False
        if cat.root is not None and cat.root.before_start:  # never blamed: only no progress stops
            assert cat.rule == "no-progress"
    else:
        assert cat.rule in ("restart", "cascade-only", "no-match", "before-start")
        assert (cat.rule == "before-start") == (cat.root is not None and cat.root.before_start)
        if cat.rule == "before-start":
            assert cat.verdict.action is Action.UNKNOWN and cat.verdict.reason.startswith("inconclusive: ")


@settings(max_examples=400, deadline=None)
@given(
    st.lists(finding, max_size=8),
    st.lists(record, max_size=4),
    st.lists(verdict, max_size=4),
    aggregation,
    st.one_of(st.none(), st.booleans()),
)
def test_mode_changes_only_the_effective_action(
    findings: list[Finding],
    history: list[CycleRecord],
    external: list[SourceVerdict],
    agg: Aggregation,
    progress: bool | None,
) -> None:
    shadow, _ = decide(
        findings, history, POLICY, progress=progress, external=external, aggregation=agg, mode=Mode.SHADOW
    )
    enforce, _ = decide(
        findings, history, POLICY, progress=progress, external=external, aggregation=agg, mode=Mode.ENFORCE
    )
    assert shadow.action is enforce.action and shadow.decided_by == enforce.decided_by
    assert shadow.effective_action is Action.RESTART
    assert (enforce.effective_action is Action.STOP) == (enforce.action is Action.STOP)


@settings(max_examples=300, deadline=None)
@given(st.lists(verdict, max_size=6), aggregation)
def test_abstentions_never_decide(verdicts: list[SourceVerdict], agg: Aggregation) -> None:
    action, by, _ = aggregate(verdicts, agg)
    voters = [x for x in verdicts if x.status is SourceStatus.OK and x.action is not Action.UNKNOWN]
    if not voters:
        assert action is Action.UNKNOWN
    else:
        assert action in (Action.RESTART, Action.STOP)
        assert all(name in {x.name for x in voters} for name in by.split(", "))
        if agg.kind == "any":
            assert (action is Action.STOP) == any(x.action is Action.STOP for x in voters)
