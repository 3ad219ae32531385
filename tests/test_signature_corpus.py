"""Real error outputs: one failure, one signature; different failures, different signatures.

``tests/data/signatures/corpus.json`` lists outputs captured by running each case for real (numpy,
pydantic, scikit-learn, pytest, torch (CPU) and the interpreter itself, Python 3.9 to 3.13;
``collect.py`` there re-creates them); ``cited.json`` quotes CUDA / NCCL / detectron2 error lines
from public issues for what needs a GPU.  Each output is judged by the built-in oracle from the tail
the runner would read, and every pair is compared with ``same_failure``: within a group it must
hold, across groups it must not.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import pytest

from sleuth.model import TrialResult, TrialSpec
from sleuth.oracle import OracleConfig, build_oracle, group_signatures, same_failure
from sleuth.scan import tail

DATA = Path(__file__).parent / "data" / "signatures"
CAPTURED = json.loads((DATA / "corpus.json").read_text())["captured"]
CITED = json.loads((DATA / "cited.json").read_text())
ORACLE = build_oracle(OracleConfig())


def _judge(rc: int | None, signal: str | None, stdout: str, stderr: str) -> str:
    import signal as sg

    r = TrialResult(
        spec=TrialSpec(argv=("x",)),
        trial_dir=DATA,
        rc=rc,
        signal=sg.Signals[signal].value if signal else None,
        timed_out=False,
        started_at=0.0,
        wall_s=0.0,
        stdout_path=DATA / "none",
        stderr_path=DATA / "none",
        stdout_tail=stdout,
        stderr_tail=stderr,
    )
    j = ORACLE.judge(r)
    assert j.signature is not None
    return j.signature


def _signatures() -> dict[str, tuple[str, str]]:
    """id -> (group, signature)."""
    out: dict[str, tuple[str, str]] = {}
    for c in CAPTURED:
        err, std = (tail(DATA / "captured" / f"{c['id']}.{s}") for s in ("err", "out"))
        out[c["id"]] = (c["group"], _judge(c["rc"], c["signal"], std, err))
    for c in CITED["cited"]:
        rc = int(c["head"].split()[1])
        out[c["id"]] = (c["group"], _judge(rc, None, "", c["stderr"]))
    return out


SIGS = _signatures()
GROUPS: dict[str, list[str]] = defaultdict(list)
for _id, (_group, _sig) in SIGS.items():
    GROUPS[_group].append(_id)


def test_corpus_is_broad() -> None:
    """Several libraries, at least two Python versions per library where it matters, GPU-style lines."""
    pythons = {c["python"].rsplit(".", 1)[0] for c in CAPTURED}
    assert {"3.9", "3.10", "3.11", "3.12", "3.13"} <= pythons
    libs = {p.split("=")[0] for c in CAPTURED for p in c["packages"]}
    assert {"numpy", "pydantic", "scikit-learn", "pytest", "torch"} <= libs
    assert len(SIGS) >= 90 and len(GROUPS) >= 35
    for needed in (
        "cuda-illegal-memory-access",
        "nccl-unhandled-system-error",
        "segv-signal",
        "train-loss-nan",
    ):
        assert needed in GROUPS


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_one_failure_one_signature(group: str) -> None:
    ids = GROUPS[group]
    for a, b in itertools.combinations(ids, 2):
        assert same_failure(SIGS[a][1], SIGS[b][1]), f"{a} vs {b}:\n  {SIGS[a][1]}\n  {SIGS[b][1]}"


def test_different_failures_differ() -> None:
    wrong = [
        f"{a} ~ {b}:\n  {SIGS[a][1]}\n  {SIGS[b][1]}"
        for a, b in itertools.combinations(SIGS, 2)
        if SIGS[a][0] != SIGS[b][0] and same_failure(SIGS[a][1], SIGS[b][1])
    ]
    assert not wrong, "\n".join(wrong)


def test_known_splits_are_documented_and_still_split() -> None:
    """What a person may call one failure and the rule keeps apart (a reworded message, a new type)."""
    for split in CITED["known_splits"]:
        g1, g2 = split["groups"]
        assert not same_failure(SIGS[GROUPS[g1][0]][1], SIGS[GROUPS[g2][0]][1]), split["why"]


def test_group_signatures_finds_the_groups() -> None:
    """Grouping every signature of the corpus gives one group per failure."""
    sigs = [sig for _, sig in SIGS.values()]
    groups = group_signatures(sigs)
    assert sum(len(m) for m in groups.values()) == len(sigs)
    assert len(groups) == len(GROUPS)


def test_issue_7_numpy_float_hint() -> None:
    """numpy 2.0.x appends Python's "Did you mean: 'float16'?" and 2.1.0 does not: one signature."""
    with_hint = SIGS["numpy-2.0.0-py3.11-float_"][1]
    without = SIGS["numpy-2.1.0-py3.11-float_"][1]
    raw = (DATA / "captured" / "numpy-2.0.0-py3.11-float_.err").read_text()
    assert "Did you mean: 'float16'?" in raw
    assert (
        with_hint
        == without
        == (
            "exit 1: AttributeError: `np.float_` was removed in the NumPy <n> release. Use `np.float64` instead"
        )
    )


def test_issue_7_pydantic_docs_link_version() -> None:
    """pydantic 2.0 to 2.0.3 put their own version in the docs link: one signature."""
    sigs = {SIGS[f"pydantic-{v}-py3.11-BaseSettings"][1] for v in ("2.0", "2.0.1", "2.0.2", "2.0.3")}
    assert len(sigs) == 1
    (sig,) = sigs
    assert "2.0" not in sig and "<url>" in sig and "`BaseSettings` has been moved" in sig


def test_issue_7_sklearn_message_on_the_next_line() -> None:
    """scikit-learn's ``ImportError: `` then the text on the next line: the text is the identity."""
    sig = SIGS["sklearn-1.2.0-py3.11-load_boston"][1]
    assert sig == "exit 1: ImportError: `load_boston` has been removed from scikit-learn since version <n>"
    other = SIGS["sklearn-1.2.2-py3.11-load_nope"][1]
    assert not same_failure(sig, other)
    assert not same_failure(sig, "exit 1: ImportError")


def test_signatures_fit_a_table() -> None:
    for group, sig in SIGS.values():
        assert len(sig) <= 300, (group, sig)
        assert "\n" not in sig
