"""Bad specs and flags: one line naming the spec file and key path (or flag), exit 2, nothing written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from sleuth.cli import main
from tests.badinput import assert_usage_error, tree_state

GOOD: dict = {
    "workload": {
        "command": [sys.executable, "w.py", "--steps", "{STEPS}", "{FILE}"],
        "env": {"A": "1", "B": "2"},
    },
    "oracle": {"kind": "regex", "pattern": "boom"},
    "axes": [
        {"name": "STEPS", "kind": "param", "initial": 100, "floor": 1},
        {"name": "FILE", "kind": "file_lines", "path": "lines.txt"},
        {"name": "E", "kind": "env_set"},
    ],
}


def mutate(path: str, value: object) -> dict:
    """A deep copy of GOOD with the dotted ``path`` set to ``value`` (``_del`` removes it)."""
    data = json.loads(json.dumps(GOOD))
    node = data
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for k in keys[:-1]:
        node = node[k]
    if value == "_del":
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return data


CASES: list[tuple[str, object, list[str]]] = [
    ("workload", "_del", ["workload", "required"]),
    ("axes", [], ["axes"]),
    ("axes", "_del", ["axes", "required"]),
    ("bogus", 1, ["bogus", "unknown key"]),
    ("workload.bogus", 1, ["workload.bogus", "unknown key"]),
    ("workload.command", [], ["workload", "argv"]),
    ("workload.command", "python w.py", ["workload", "shell: true"]),
    ("workload.command", 5, ["workload.command"]),
    ("workload.env", {"1BAD": "x"}, ["workload.env", "variable name"]),
    ("workload.env", {"A": 1}, ["workload.env.A"]),
    ("workload.timeout", -1, ["workload.timeout"]),
    ("workload.timeout", "10", ["workload.timeout"]),
    # run and bisect refuse a --timeout over 30 days; the spec's was taken whatever its size
    ("workload.timeout", 30 * 86400 + 1, ["workload.timeout", "at most 2.592e+06 seconds"]),
    ("workload.timeout", 1e300, ["workload.timeout: 1e+300: at most 2.592e+06 seconds"]),
    ("workload.kill_grace", -1, ["workload.kill_grace", "greater than or equal to 0"]),
    ("workload.kill_grace", 1e9, ["workload.kill_grace", "less than or equal to 3600"]),
    ("workload.kill_grace", "5", ["workload.kill_grace"]),
    ("workload.kill_grace", True, ["workload.kill_grace"]),
    ("workload.kill_grace", float("nan"), ["workload.kill_grace", "finite"]),
    ("workload.cwd", "no-such-dir", ["workload.cwd", "not a directory"]),
    ("oracle.kind", "magic", ["oracle.kind"]),
    ("oracle.pattern", "(", ["oracle", "regular expression"]),
    ("oracle.pattern", "_del", ["oracle", "needs a pattern"]),
    ("oracle.stream", "stdlog", ["oracle.stream"]),
    ("oracle.skip_exit", [0], ["oracle.skip_exit[0]"]),
    ("oracle.callable", "x:y", ["oracle", "callable is only used"]),
    ("budget", {"confidence": 1.5}, ["budget.confidence"]),
    ("budget", {"confidence": "high"}, ["budget.confidence"]),
    ("budget", {"max_trials": 0}, ["budget.max_trials"]),
    ("budget", {"max_trials": 10**9}, ["budget.max_trials"]),
    ("budget", {"trials_per_candidate": "many"}, ["budget.trials_per_candidate"]),
    ("budget", {"max_wall_clock": "4x"}, ["budget.max_wall_clock", "duration"]),
    ("budget", {"max_wall_clock": "0s"}, ["budget.max_wall_clock"]),
    ("budget", {"baseline_trials": 0}, ["budget.baseline_trials"]),
    # the original alone spent the budget: 5 trials run, "max_trials (2) reached"
    ("budget", {"max_trials": 2}, ["budget", "max_trials 2 leaves no trial after the 5 baseline_trials"]),
    ("axes.0.kind", "knob", ["axes[0]", "knob"]),
    ("axes.0.kind", "_del", ["axes[0].kind", "required"]),
    ("axes.0.name", "has space", ["axes[0].name"]),
    ("axes.0.initial", "100", ["axes[0]", "integer"]),
    ("axes.0.floor", 500, ["axes[0]", "below floor"]),
    ("axes.0.ceiling", 50, ["axes[0]", "above ceiling"]),
    ("axes.0.monotone", "maybe", ["axes[0].monotone"]),
    ("axes.0.step_regex", "step (", ["axes[0]", "step_regex"]),
    ("axes.0.bogus", True, ["axes[0].bogus", "unknown key"]),
    ("axes.0.type", "choice", ["axes[0]", "values"]),
    ("axes.0.name", "OTHER", ["workload.command[3]", "unknown placeholder {STEPS}"]),
    ("workload.command", [sys.executable, "w.py", "{FILE}"], ["axes[0].name", "no {STEPS} placeholder"]),
    ("axes.1.path", "missing.txt", ["axes[1].path", "no such file"]),
    ("axes.1.path", "../lines.txt", ["axes[1].path", "inside"]),
    ("axes.1.path", "/etc/hostname", ["axes[1].path", "inside"]),
    ("axes.2.keep", ["ZZ"], ["axes[2].keep", "ZZ"]),
    ("axes.2", {"name": "STEPS", "kind": "env_set"}, ["axes[2].name", "STEPS"]),
    ("mitigations", ["no_such_mitigation"], ["mitigations[0]", "no_such_mitigation"]),
    ("environment", "mars", ["environment", "mars"]),
    ("environment", {"venv": [""]}, ["environment", "empty requirement"]),
    ("environment", {"docker": "img", "podman": "img"}, ["environment", "exactly one"]),
    ("name", "../evil", ["name"]),
    # an env axis over a variable workload.env sets to another value: the axis won silently
    ("axes.2", {"name": "A", "kind": "env", "initial": 5}, ["axes[2].initial", "workload.env sets A"]),
    # a bundle's spec.yaml with its secrets left out: it ran and "did not reproduce"
    ("workload.env", {"A": "<redacted>"}, ["workload.env.A", "<redacted>", "put the real value back"]),
    # int-only keys on a choice axis were ignored silently
    (
        "axes.0",
        {"name": "STEPS", "kind": "param", "type": "choice", "values": [1, 2], "initial": 2, "floor": 1},
        ["axes[0]", "floor is only used with type: int"],
    ),
]


@pytest.mark.parametrize(("path", "value", "mentions"), CASES, ids=[f"{p}={v!r}"[:60] for p, v, _ in CASES])
def test_bad_spec_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, capsys, monkeypatch, *, path: str, value: object, mentions: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lines.txt").write_text("a\nb\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(mutate(path, value)))
    before = tree_state(tmp_path)
    rc = main(["reduce", "--spec", str(spec), "--output", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert_usage_error(rc, out, err, ["spec.yaml", *mentions], before=before, after=tree_state(tmp_path))


RAW: list[tuple[str, str, list[str]]] = [
    ("spec.yaml", "workload: [\n", ["spec.yaml", "not valid YAML"]),
    ("spec.yaml", "- a\n- b\n", ["spec.yaml", "mapping"]),
    (
        "spec.yaml",
        "workload: {command: [x]}\nworkload: {command: [y]}\naxes: []\n",
        ["spec.yaml", "duplicate key"],
    ),
    ("spec.json", '{"workload": ', ["spec.json", "not valid JSON"]),
]


@pytest.mark.parametrize(("name", "text", "mentions"), RAW, ids=[r[1][:20] for r in RAW])
def test_unparsable_spec(tmp_path: Path, capsys, name: str, text: str, mentions: list[str]) -> None:
    spec = tmp_path / name
    spec.write_text(text)
    before = tree_state(tmp_path)
    rc = main(["reduce", "--spec", str(spec), "--output", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert_usage_error(rc, out, err, mentions, before=before, after=tree_state(tmp_path))


FLAGS: list[tuple[list[str], str]] = [
    (["--jobs", "0"], "--jobs"),
    (["--gpus", "x"], "--gpus"),
    (["--scrub", "("], "--scrub"),
    (["--scrub", ""], "--scrub"),
    (["--scrub", "a*"], "--scrub"),
    (["--name", ""], "--name"),
    (["--name", "../x"], "--name '../x'"),  # was blamed on the spec file
    (["--spec", "nope.yaml"], "nope.yaml"),
    (["--kill-grace", "-1"], "--kill-grace -1: must be zero or a positive"),
    (["--kill-grace", "nan"], "--kill-grace nan"),
    (["--kill-grace", "1e9"], "--kill-grace 1e+09: at most 3600"),
    (["--kill-grace", "abc"], "--kill-grace"),
]


@pytest.mark.parametrize(("args", "mention"), FLAGS, ids=[" ".join(a) for a, _ in FLAGS])
def test_bad_flags(tmp_path: Path, capsys, monkeypatch, args: list[str], mention: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lines.txt").write_text("a\nb\n")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(GOOD))
    before = tree_state(tmp_path)
    argv = ["reduce", "--output", str(tmp_path / "out")]
    if "--spec" not in args:
        argv += ["--spec", "spec.yaml"]
    rc = main([*argv, *args])
    out, err = capsys.readouterr()
    assert_usage_error(rc, out, err, mention, before=before, after=tree_state(tmp_path))


def test_corpus_is_large_enough() -> None:
    assert len(CASES) + len(RAW) + len(FLAGS) >= 40


def test_dry_run_writes_nothing_and_prints_the_plan(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lines.txt").write_text("a\nb\n")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(GOOD))
    before = tree_state(tmp_path)
    rc = main(["reduce", "--spec", "spec.yaml", "--dry-run", "--json", "--output", str(tmp_path / "out")])
    out, _ = capsys.readouterr()
    assert rc == 0
    doc = json.loads(out)
    assert [a["name"] for a in doc["axes"]] == ["STEPS", "FILE", "E"]
    assert doc["argv"][-3:] == ["--steps", "100", "lines.txt"]
    assert tree_state(tmp_path) == before


def test_a_missing_oracle_callable_names_the_key_not_a_flag(tmp_path: Path, capsys, monkeypatch) -> None:
    """The error named ``--oracle``, a flag ``sleuth reduce`` does not have."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lines.txt").write_text("a\nb\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(mutate("oracle", {"kind": "python", "callable": "nope.py:judge"})))
    before = tree_state(tmp_path)
    rc = main(["reduce", "--spec", str(spec), "--output", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert_usage_error(
        rc, out, err, ["spec.yaml: oracle.callable", "nope.py"], before=before, after=tree_state(tmp_path)
    )
    assert "--oracle" not in err


def test_a_named_workloads_timeout_over_30_days_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    """A named workload's timeout is checked as the spec's: over 30 days (``sleuth run --timeout``'s
    cap) it was taken, and overflowed the clock's arithmetic at the first trial."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plug.py").write_text(
        "import sys\n\nclass W:\n    name = 'w'\n    timeout = 1e9\n    oracle = {'kind': 'exit_code'}\n"
        "    axes = [{'name': 'N', 'kind': 'param', 'initial': 4, 'floor': 1}]\n\n"
        "    def command(self, params):\n        return [sys.executable, '-c', 'pass', '{N}']\n"
    )
    before = tree_state(tmp_path)
    rc = main(["reduce", "--workload", "plug.py:W", "--output", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert_usage_error(
        rc, out, err, ["plug.py:W", "workload.timeout", "at most 2.592e+06 seconds"],
        before=before, after=tree_state(tmp_path),
    )  # fmt: skip
