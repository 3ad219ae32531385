"""Bad input to ``sleuth gate``: exit 2, one line naming the flag/file/key, no traceback, nothing written.

Runs the real CLI entry point (``sleuth.cli.main``) in-process for speed; garbage *inside* a
benchmark file is not bad input (it is counted: tests/gate/test_formats.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sleuth.cli import main
from tests.badinput import assert_usage_error, tree_state

from .conftest import DATA

GO = str(DATA / "go-bench.txt")

POLICIES = {
    "bad.yaml": "metrics: [unclosed\n",
    "unknown-key.yaml": "metrics:\n  m:\n    budgt: {max: 3}\n",
    "both-sides.yaml": "metrics:\n  m:\n    budget: {max: 3, min: 1}\n",
    "zero-runs.yaml": "metrics:\n  m:\n    budget: {max: 3, runs: 0}\n",
    "kind.yaml": "metrics:\n  m:\n    kind: gauge\n",
    "tolerance.yaml": "metrics:\n  m:\n    kind: counter\n    tolerance: abc\n",
    "min-effect.yaml": "metrics:\n  m:\n    regression: {min_effect: '-5%'}\n",
    "empty-metrics.yaml": "metrics: {}\n",
    "list.yaml": "- metrics\n",
    "version.yaml": "version: 2\nmetrics:\n  m: {}\n",
    "confidence.yaml": "metrics:\n  m:\n    budget: {max: 3, confidence: 1.5}\n",
    "dup.json": '{"metrics": {"m": {}}, "metrics": {"n": {}}}',
    "ok.yaml": "metrics:\n  m: {}\n",
}
BASELINES = {
    "base-bad.json": "{not json",
    "base-nometrics.json": '{"suite": "s"}',
    "base-value.json": '{"suite": "s", "metrics": {"m": {"value": "three"}}}',
    "base-tol.json": '{"suite": "s", "metrics": {"m": {"value": 3, "tolerance": "x%"}}}',
    "base-nosuite.json": '{"metrics": {"m": {"value": 3}}}',
    # a committed file edited by hand: 'baseline diff' reads suite, last and branch from it
    "base-last.json": '{"suite": "s", "last": "ten", "metrics": {"m": {"value": 3}}}',
    "base-last-list.json": '{"suite": "s", "last": [10], "metrics": {"m": {"value": 3}}}',
    "base-branch.json": '{"suite": "s", "branch": ["main"], "metrics": {"m": {"value": 3}}}',
}

#: ``record`` of one file, up to its --db
REC = ["record", "--suite", "s", "--run-id", "1", "--no-provenance"]
#: a file name longer than any file system takes; a path of short names longer than SQLite opens (512)
LONG, DEEP = "h" * 300, "/".join(["d" * 100] * 5)

CASES: list[tuple[str, list[str], list[str]]] = [
    # record
    ("missing file", ["record", "--suite", "s", "--run-id", "1", "nope.txt"], ["nope.txt"]),
    ("file is a dir", ["record", "--suite", "s", "--run-id", "1", "adir"], ["adir", "directory"]),
    ("no files", ["record", "--suite", "s", "--run-id", "1"], ["FILE"]),
    ("no suite", ["record", "--run-id", "1", GO], ["--suite"]),
    ("bad suite", ["record", "--suite", "../x", "--run-id", "1", GO], ["--suite"]),
    ("bad run id", ["record", "--suite", "s", "--run-id", "a/b", GO], ["--run-id"]),
    ("no run id outside CI", ["record", "--suite", "s", GO], ["--run-id"]),
    ("bad status", ["record", "--suite", "s", "--run-id", "1", "--status", "maybe", GO], ["--status"]),
    (
        "bad created-at",
        ["record", "--suite", "s", "--run-id", "1", "--created-at", "yesterday", GO],
        ["--created-at"],
    ),
    (
        "created-at without zone",
        ["record", "--suite", "s", "--run-id", "1", "--created-at", "2025-01-01T00:00:00", GO],
        ["--created-at", "zone"],
    ),
    (
        "created-at out of range in UTC",
        ["record", "--suite", "s", "--run-id", "1", "--created-at", "0001-01-01T00:00:00+14:00", GO],
        ["--created-at"],
    ),
    ("bad format", ["record", "--suite", "s", "--run-id", "1", "--format", "xml", GO], ["--format"]),
    ("db scheme", ["record", "--suite", "s", "--run-id", "1", "--db", "mysql://x/y", GO], ["--db", "mysql"]),
    ("db bare path", ["record", "--suite", "s", "--run-id", "1", "--db", "history.db", GO], ["--db"]),
    (
        "db two slashes",
        ["record", "--suite", "s", "--run-id", "1", "--db", "sqlite://h.db", GO],
        ["--db", "three slashes"],
    ),
    ("from-dir missing", ["record", "--from-dir", "nodir"], ["--from-dir", "nodir"]),
    ("from-dir a file", ["record", "--from-dir", "ok.yaml"], ["--from-dir", "ok.yaml", "not a directory"]),
    ("from-dir with files", ["record", "--from-dir", "adir", GO], ["--from-dir"]),
    ("from-dir with run id", ["record", "--from-dir", "adir", "--run-id", "1"], ["--run-id"]),
    ("from-dir and emit", ["record", "--from-dir", "adir", "--emit-metadata", "out"], ["--emit-metadata"]),
    ("from-dir bad suite", ["record", "--from-dir", "adir", "--suite", "a b"], ["--suite"]),
    (
        "emit into a file",
        ["record", "--suite", "s", "--run-id", "1", "--emit-metadata", "ok.yaml", GO],
        ["--emit-metadata"],
    ),
    (
        "emit missing file",
        ["record", "--suite", "s", "--run-id", "1", "--emit-metadata", "out", "gone.txt"],
        ["gone.txt"],
    ),
    ("unknown flag", ["record", "--bogus"], ["--bogus"]),
    # graduate
    ("graduate no suite", ["graduate"], ["--suite"]),
    ("target-cv text", ["graduate", "--suite", "s", "--target-cv", "abc"], ["--target-cv"]),
    ("target-cv zero", ["graduate", "--suite", "s", "--target-cv", "0%"], ["--target-cv"]),
    ("target-cv over 100", ["graduate", "--suite", "s", "--target-cv", "150%"], ["--target-cv"]),
    ("last one", ["graduate", "--suite", "s", "--last", "1"], ["--last"]),
    ("last text", ["graduate", "--suite", "s", "--last", "ten"], ["--last"]),
    ("confidence", ["graduate", "--suite", "s", "--confidence", "1.5"], ["--confidence"]),
    ("mode", ["graduate", "--suite", "s", "--mode", "medium"], ["--mode"]),
    ("markdown is a dir", ["graduate", "--suite", "s", "--markdown", "adir"], ["--markdown"]),
    ("junit is a dir", ["graduate", "--suite", "s", "--junit", "adir"], ["--junit"]),
    ("graduate db", ["graduate", "--suite", "s", "--db", "ftp://x"], ["--db"]),
    # check
    ("no policy", ["check", "--suite", "s"], ["--policy"]),
    ("policy missing", ["check", "--suite", "s", "--policy", "gone.yaml"], ["gone.yaml"]),
    ("policy is a dir", ["check", "--suite", "s", "--policy", "adir"], ["adir", "a directory"]),
    ("policy yaml", ["check", "--suite", "s", "--policy", "bad.yaml"], ["bad.yaml", "YAML"]),
    (
        "policy unknown key",
        ["check", "--suite", "s", "--policy", "unknown-key.yaml"],
        ["unknown-key.yaml", "metrics.m.budgt"],
    ),
    (
        "policy both sides",
        ["check", "--suite", "s", "--policy", "both-sides.yaml"],
        ["both-sides.yaml", "budget"],
    ),
    ("policy zero runs", ["check", "--suite", "s", "--policy", "zero-runs.yaml"], ["budget.runs"]),
    ("policy kind", ["check", "--suite", "s", "--policy", "kind.yaml"], ["metrics.m.kind"]),
    ("policy tolerance", ["check", "--suite", "s", "--policy", "tolerance.yaml"], ["metrics.m.tolerance"]),
    ("policy min effect", ["check", "--suite", "s", "--policy", "min-effect.yaml"], ["min_effect"]),
    (
        "policy empty metrics",
        ["check", "--suite", "s", "--policy", "empty-metrics.yaml"],
        ["empty-metrics.yaml", "metrics"],
    ),
    ("policy a list", ["check", "--suite", "s", "--policy", "list.yaml"], ["list.yaml", "mapping"]),
    ("policy version", ["check", "--suite", "s", "--policy", "version.yaml"], ["version"]),
    ("policy confidence", ["check", "--suite", "s", "--policy", "confidence.yaml"], ["confidence"]),
    ("policy duplicate key", ["check", "--suite", "s", "--policy", "dup.json"], ["dup.json", "duplicate"]),
    (
        "baseline missing",
        ["check", "--suite", "s", "--policy", "ok.yaml", "--baseline", "gone.json"],
        ["--baseline", "gone.json"],
    ),
    (
        "baseline json",
        ["check", "--suite", "s", "--policy", "ok.yaml", "--baseline", "base-bad.json"],
        ["base-bad.json", "JSON"],
    ),
    (
        "baseline no metrics",
        ["check", "--suite", "s", "--policy", "ok.yaml", "--baseline", "base-nometrics.json"],
        ["metrics"],
    ),
    (
        "baseline value",
        ["check", "--suite", "s", "--policy", "ok.yaml", "--baseline", "base-value.json"],
        ["metrics.m.value"],
    ),
    (
        "baseline tolerance",
        ["check", "--suite", "s", "--policy", "ok.yaml", "--baseline", "base-tol.json"],
        ["metrics.m.tolerance"],
    ),
    ("check mode", ["check", "--suite", "s", "--policy", "ok.yaml", "--mode", "loud"], ["--mode"]),
    # changepoints
    ("no series", ["changepoints"], ["--suite", "--csv"]),
    ("both series", ["changepoints", "--csv", "s.csv", "--suite", "s", "--metric", "m"], ["--csv"]),
    ("csv missing", ["changepoints", "--csv", "gone.csv"], ["gone.csv"]),
    ("csv huge field", ["changepoints", "--csv", "bigfield.csv"], ["--csv", "bigfield.csv"]),
    ("csv column", ["changepoints", "--csv", "s.csv", "--column", "latency"], ["--column", "latency"]),
    ("column without csv", ["changepoints", "--suite", "s", "--metric", "m", "--column", "x"], ["--column"]),
    ("alpha", ["changepoints", "--csv", "s.csv", "--alpha", "0"], ["--alpha"]),
    ("min segment", ["changepoints", "--csv", "s.csv", "--min-segment", "1"], ["--min-segment"]),
    (
        "min segment huge",
        ["changepoints", "--csv", "s.csv", "--min-segment", "99999999999999999999"],
        ["--min-segment"],
    ),
    ("incremental csv without state", ["changepoints", "--csv", "s.csv", "--incremental"], ["--state"]),
    (
        "corrupt state",
        ["changepoints", "--csv", "s.csv", "--incremental", "--state", "bad-state.json"],
        ["--state", "bad-state.json"],
    ),
    ("metric without suite", ["changepoints", "--metric", "m"], ["--suite"]),
    # baseline
    ("capture no output", ["baseline", "capture", "--suite", "s"], ["--output"]),
    ("capture last", ["baseline", "capture", "--suite", "s", "-o", "b.json", "--last", "0"], ["--last"]),
    (
        "capture over a bad file",
        ["baseline", "capture", "--suite", "s", "-o", "base-bad.json"],
        ["-o", "base-bad.json"],
    ),
    ("diff missing", ["baseline", "diff", "gone.json"], ["gone.json"]),
    ("diff tolerance", ["baseline", "diff", "base-value.json", "--tolerance", "lots"], ["base-value.json"]),
    ("diff no suite", ["baseline", "diff", "base-nosuite.json"], ["--suite", "base-nosuite.json"]),
    ("diff last text", ["baseline", "diff", "base-last.json"], ["base-last.json", "last"]),
    ("diff last list", ["baseline", "diff", "base-last-list.json"], ["base-last-list.json", "last"]),
    ("diff branch list", ["baseline", "diff", "base-branch.json"], ["base-branch.json", "branch"]),
    (
        "diff bad tolerance flag",
        ["baseline", "diff", "base-nosuite.json", "--suite", "s", "--tolerance", "lots"],
        ["--tolerance"],
    ),
    # runs, group
    ("runs last", ["runs", "--suite", "s", "--last", "0"], ["--last"]),
    ("runs suite", ["runs", "--suite", "a b"], ["--suite"]),
    ("unknown subcommand", ["grade"], ["grade"]),
    (
        "db bad port",
        ["runs", "--suite", "s", "--db", "postgresql://u:pw@h:notaport/db"],
        ["--db", "valid URL"],
    ),
    ("db bad host", ["graduate", "--suite", "s", "--db", "postgresql://u:pw@[::1/db"], ["--db", "valid URL"]),
    ("sqlite db is a dir", ["runs", "--suite", "s", "--db", "sqlite:///adir"], ["--db", "adir", "directory"]),
    (
        "dir db is a file",
        ["record", "--suite", "s", "--run-id", "1", "--no-provenance", "--db", "dir://ok.yaml", GO],
        ["--db", "ok.yaml", "not a directory"],
    ),
    # a --db path that cannot hold a history: the user's input (exit 2), checked before anything is made
    ("db name too long", [*REC, "--db", f"sqlite:///new/deeper/{LONG}.db", GO], ["--db", "longer than the"]),
    ("db journal name too long", [*REC, "--db", f"sqlite:///{'h' * 250}.db", GO], ["--db", "-journal"]),
    ("db path too long for sqlite", [*REC, "--db", f"sqlite:///{DEEP}/h.db", GO], ["--db", "SQLite opens"]),
    ("dir db name too long", [*REC, "--db", f"dir://new/{LONG}", GO], ["--db", "longer than the"]),
    (
        "db folder is a file",
        [*REC, "--db", "sqlite:///ok.yaml/h.db", GO],
        ["--db", "ok.yaml", "not a folder"],
    ),
    (
        "dir db folder is a file",
        [*REC, "--db", "dir://ok.yaml/hist", GO],
        ["--db", "ok.yaml", "not a folder"],
    ),
    (
        "db not a database",
        [*REC, "--db", "sqlite:///ok.yaml", GO],
        ["--db", "ok.yaml", "not a SQLite database"],
    ),
    (
        "from-dir db folder is a file",
        ["record", "--from-dir", "adir", "--db", "sqlite:///ok.yaml/h.db"],
        ["--db"],
    ),
    ("runs db name too long", ["runs", "--db", f"sqlite:///{LONG}.db"], ["--db", "longer than the"]),
    (
        "runs db not a database",
        ["runs", "--suite", "s", "--db", "sqlite:///ok.yaml"],
        ["--db", "not a SQLite"],
    ),
    (
        "graduate db folder is a file",
        ["graduate", "--suite", "s", "--db", "dir://ok.yaml/h"],
        ["--db", "not a folder"],
    ),
    (
        "check db name too long",
        ["check", "--suite", "s", "--policy", "ok.yaml", "--db", f"dir://{LONG}"],
        ["--db", "longer than the"],
    ),
    (
        "changepoints db folder is a file",
        ["changepoints", "--suite", "s", "--metric", "m", "--db", "sqlite:///ok.yaml/h.db"],
        ["--db", "not a folder"],
    ),
    (
        "capture db not a database",
        ["baseline", "capture", "--suite", "s", "-o", "b.json", "--db", "sqlite:///ok.yaml"],
        ["--db", "not a SQLite database"],
    ),
    (
        "diff db name too long",
        ["baseline", "diff", "base-nosuite.json", "--suite", "s", "--db", f"sqlite:///{LONG}/h.db"],
        ["--db", "longer than the"],
    ),
    (
        "db host label too long",
        ["runs", "--db", f"postgresql://u@{'h' * 70}.example/db"],
        ["--db", "not a valid host name"],
    ),
    # JSON nested deeper than the parser's recursion limit
    (
        "baseline too deep",
        ["check", "--suite", "s", "--policy", "ok.yaml", "--baseline", "deep.json"],
        ["--baseline", "deep.json", "deep"],
    ),
    ("diff too deep", ["baseline", "diff", "deep.json"], ["deep.json", "deep"]),
    (
        "state too deep",
        ["changepoints", "--csv", "s.csv", "--incremental", "--state", "deep.json"],
        ["--state", "deep.json"],
    ),
    # an integer of 5000 digits: past Python's int/str conversion limit (a ValueError, not a JSONDecodeError)
    (
        "baseline huge int",
        ["check", "--suite", "s", "--policy", "ok.yaml", "--baseline", "bigint.json"],
        ["--baseline", "bigint.json"],
    ),
    ("diff huge int", ["baseline", "diff", "bigint.json"], ["bigint.json"]),
    # files that are not UTF-8 (a baseline saved as Latin-1 or UTF-16)
    (
        "baseline not utf-8",
        ["check", "--suite", "s", "--policy", "ok.yaml", "--baseline", "base-latin1.json"],
        ["--baseline", "base-latin1.json", "UTF-8"],
    ),
    ("diff not utf-8", ["baseline", "diff", "base-latin1.json"], ["base-latin1.json", "UTF-8"]),
    (
        "capture over a file not utf-8",
        ["baseline", "capture", "--suite", "s", "-o", "base-latin1.json"],
        ["-o", "base-latin1.json", "UTF-8"],
    ),
    ("policy not utf-8", ["check", "--suite", "s", "--policy", "base-latin1.json"], ["base-latin1.json"]),
    (
        "state not utf-8",
        ["changepoints", "--csv", "s.csv", "--incremental", "--state", "base-latin1.json"],
        ["--state", "base-latin1.json"],
    ),
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in (
        "SLEUTH_GATE_DB",
        "GITHUB_RUN_ID",
        "CI_PIPELINE_ID",
        "BUILDKITE_BUILD_NUMBER",
        "GITHUB_STEP_SUMMARY",
    ):
        monkeypatch.delenv(var, raising=False)
    for name, text in {**POLICIES, **BASELINES}.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "adir").mkdir()
    (tmp_path / "s.csv").write_text("run,value\n" + "".join(f"r{i},{i}\n" for i in range(20)))
    (tmp_path / "bad-state.json").write_text("[1, 2")
    (tmp_path / "bigfield.csv").write_text("run,value\nr1," + "x" * 200_000 + "\nr2,3\n")  # past csv's limit
    (tmp_path / "bigint.json").write_text('{"suite": "s", "metrics": {"m": {"value": ' + "1" * 5000 + "}}}")
    (tmp_path / "deep.json").write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)
    (tmp_path / "base-latin1.json").write_bytes(b'{"suite": "s", "metrics": {"caf\xe9": {"value": 3}}}')
    return tmp_path


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("argv", "mentions"), [pytest.param(a, m, id=n) for n, a, m in CASES])
def test_bad_input(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], mentions: list[str]
) -> None:
    before = tree_state(workdir)
    rc = main(["gate", *argv])
    out, err = capsys.readouterr()
    assert_usage_error(rc, out, err, mentions, before=before, after=tree_state(workdir))


def test_a_bad_input_after_history_exists_changes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gate", "record", "--suite", "s", "--run-id", "1", "--no-provenance", GO]) == 0
    capsys.readouterr()
    before = tree_state(workdir)
    rc = main(["gate", "record", "--suite", "s", "--run-id", "2", "--no-provenance", GO, "missing.txt"])
    out, err = capsys.readouterr()
    assert_usage_error(rc, out, err, ["missing.txt"], before=before, after=tree_state(workdir))
    runs = json.loads(_json(capsys, ["gate", "runs", "--suite", "s", "--json"]))["runs"]
    assert [r["run_id"] for r in runs] == ["1"]


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


#: histories ``record`` would make: the default SQLite file, one in new folders, a new store folder
NEW_STORES = {
    "default": [],
    "sqlite": ["--db", "sqlite:///new/deeper/h.db"],
    "dir": ["--db", "dir://new/deeper/hist"],
}


@pytest.mark.parametrize("tree", ["empty", "nothing-usable"])
@pytest.mark.parametrize("db", list(NEW_STORES))
def test_a_record_that_records_nothing_makes_no_history(
    workdir: Path, capsys: pytest.CaptureFixture[str], db: str, tree: str
) -> None:
    """``--from-dir`` of a tree with nothing to record is INSUFFICIENT (exit 3, every folder skipped and
    counted), and leaves no history behind: an empty SQLite file (and its folder) was made first."""
    (workdir / "dl").mkdir()
    if tree == "nothing-usable":
        (workdir / "dl" / "a").mkdir()
        (workdir / "dl" / "a" / "sleuth-gate.json").write_text("{not json")
        (workdir / "dl" / "b").mkdir()
    before = tree_state(workdir)
    rc = main(["gate", "record", "--from-dir", "dl", *NEW_STORES[db]])
    out, err = capsys.readouterr()
    assert rc == 3 and "0 recorded" in out and not err, (rc, out, err)
    assert tree_state(workdir) == before


def test_a_record_that_records_nothing_leaves_an_existing_history_as_it_was(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gate", "record", "--suite", "s", "--run-id", "1", "--no-provenance", GO]) == 0
    (workdir / "dl").mkdir()
    capsys.readouterr()
    before = tree_state(workdir)
    assert main(["gate", "record", "--from-dir", "dl"]) == 3
    assert tree_state(workdir) == before
    capsys.readouterr()
    runs = json.loads(_json(capsys, ["gate", "runs", "--suite", "s", "--json"]))["runs"]
    assert [r["run_id"] for r in runs] == ["1"]


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root reads every file: an unreadable one takes a non-root user"
)
def test_an_artifact_with_an_unreadable_file_is_skipped_and_the_others_recorded(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, run_id in (("a", "1"), ("b", "2")):
        (workdir / "dl" / name).mkdir(parents=True)
        (workdir / "dl" / name / "go.txt").write_bytes(Path(GO).read_bytes())
        meta = {"schema": 1, "suite": "s", "run_id": run_id, "files": ["go.txt"]}
        (workdir / "dl" / name / "sleuth-gate.json").write_text(json.dumps(meta))
    (workdir / "dl" / "a" / "go.txt").chmod(0)
    rc = main(["gate", "record", "--from-dir", "dl", "--no-provenance", "--json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert rc == 0, err
    assert [r["run_id"] for r in doc["recorded"]] == ["2"]
    ((where, why),) = [(s["path"], s["reason"]) for s in doc["skipped"]]
    assert where == "dl/a" and "go.txt" in why and "cannot read" in why, doc["skipped"]
