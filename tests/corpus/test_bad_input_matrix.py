"""Malformed input to ``sleuth matrix``: exit 2, one line naming the file, key path or flag, no
traceback, nothing created or changed.

Recipes, sidecar files, shim flags and ``matrix resume`` on wrong directories.  Cases run in-process
through ``sleuth.cli.main`` (an unexpected exception escapes it and fails the test); a few also
through a real ``python -m sleuth``.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sleuth.cli import main
from sleuth.model import MAX_TRIALS
from tests.badinput import assert_usage_error, tree_state

HUGE = str(10**22)
BASE: dict[str, Any] = {
    "schema_version": 1,
    "seed": 1,
    "workload": {"name": "w", "command": ["true"], "oracle": {"kind": "exit_code"}},
    "trials": 2,
    "cells": [{"name": "baseline"}, {"name": "p2p", "mitigations": ["nccl_p2p_off"]}],
}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting ``a.b[1].c`` in the recipe data (``None`` deletes the key)."""

    def apply(data: dict[str, Any]) -> None:
        parts = path.replace("[", ".[").split(".")
        obj: Any = data
        for part in parts[:-1]:
            obj = obj[int(part[1:-1])] if part.startswith("[") else obj.setdefault(part, {})
        last = parts[-1]
        if last.startswith("["):
            obj[int(last[1:-1])] = value
        elif value is None:
            del obj[last]
        else:
            obj[last] = value

    return apply


def _inline_collision(data: dict[str, Any]) -> None:
    """A registered environment named like the key an inline one gets (``docker-<hash>``)."""
    import hashlib

    digest = hashlib.blake2b(json.dumps({"docker": "img:1"}, sort_keys=True).encode(), digest_size=4)
    data["environments"] = {f"docker-{digest.hexdigest()}": {"docker": "other:2"}}
    data["cells"][1]["environment"] = {"docker": "img:1"}


def _plugin_steps_twice(data: dict[str, Any]) -> None:
    data["workload"] = {"plugin": "numpy_nan", "steps": 5}
    data["steps"] = 6


#: (id, mutation of BASE, words the error line must name)
RECIPE_CASES: list[tuple[str, Callable[[dict[str, Any]], None], list[str]]] = [
    ("no-schema-version", _set("schema_version", None), ["schema_version", "required"]),
    ("schema-version-2", _set("schema_version", 2), ["schema_version", "unsupported version 2"]),
    ("schema-version-str", _set("schema_version", "1"), ["schema_version"]),
    ("unknown-top-key", _set("colour", "red"), ["colour", "unknown key"]),
    ("unknown-workload-key", _set("workload.colour", 1), ["workload.colour", "unknown key"]),
    ("unknown-cell-key", _set("cells[1].colour", 1), ["cells[1].colour", "unknown key"]),
    ("no-workload", _set("workload", None), ["workload", "required"]),
    ("no-command", _set("workload.command", None), ["workload", "exactly one of command", "plugin"]),
    ("command-empty-list", _set("workload.command", []), ["workload.command"]),
    ("command-empty-str", _set("workload.command", "  "), ["workload.command"]),
    ("command-blank-argv0", _set("workload.command", [""]), ["workload.command"]),
    ("command-int", _set("workload.command", 42), ["workload.command"]),
    ("command-ints", _set("workload.command", [1, 2]), ["workload.command"]),
    ("no-cells", _set("cells", None), ["cells", "required"]),
    ("cells-empty", _set("cells", []), ["cells"]),
    ("cells-mapping", _set("cells", {"a": 1}), ["cells"]),
    ("cell-no-name", _set("cells[1]", {"mitigations": ["none"]}), ["cells[1].name", "required"]),
    ("cell-name-int", _set("cells[1].name", 7), ["cells[1].name"]),
    ("trials-0", _set("trials", 0), ["trials", "greater than 0"]),
    ("trials-negative", _set("trials", -3), ["trials"]),
    ("trials-str", _set("trials", "10"), ["trials"]),
    ("trials-float", _set("trials", 1.5), ["trials"]),
    ("trials-bool", _set("trials", True), ["trials"]),
    ("trials-absurd", _set("trials", 10**22), ["trials", "less than or equal to 1000000"]),
    ("trials-max-plus-1", _set("trials", MAX_TRIALS + 1), ["trials", "1000000"]),
    ("cell-trials-absurd", _set("cells[1].trials", 10**12), ["cells[1].trials", "1000000"]),
    ("cell-trials-0", _set("cells[0].trials", 0), ["cells[0].trials"]),
    ("timeout-0", _set("workload.timeout", 0), ["workload.timeout"]),
    ("timeout-negative", _set("workload.timeout", -1), ["workload.timeout"]),
    ("timeout-inf", _set("workload.timeout", float("inf")), ["workload.timeout"]),
    ("timeout-nan", _set("workload.timeout", float("nan")), ["workload.timeout"]),
    ("timeout-absurd", _set("workload.timeout", 1e300), ["workload.timeout"]),
    # the cap of every verb's --timeout (it was a year here)
    ("timeout-31-days", _set("workload.timeout", 31 * 86400.0),
     ["workload.timeout: 2.6784e+06: at most 2.592e+06 seconds"]),
    ("timeout-str", _set("workload.timeout", "soon"), ["workload.timeout"]),
    ("seed-negative", _set("seed", -1), ["seed"]),
    ("seed-absurd", _set("seed", 2**80), ["seed"]),
    ("seed-str", _set("seed", "abc"), ["seed"]),
    ("seed-float", _set("seed", 1.5), ["seed"]),
    ("threshold-0", _set("confound.threshold", 0), ["confound.threshold"]),
    ("threshold-inf", _set("confound.threshold", float("inf")), ["confound.threshold"]),
    ("baseline-cell-missing", _set("confound.baseline_cell", "nope"), ["confound.baseline_cell", "nope"]),
    ("alpha-0", _set("statistics.alpha", 0), ["statistics.alpha"]),
    ("alpha-above-1", _set("statistics.alpha", 1.5), ["statistics.alpha"]),
    ("min-effect-2", _set("statistics.min_effect", 2), ["statistics.min_effect"]),
    ("until-decided-3", _set("until_decided", 3), ["until_decided"]),
    ("oracle-kind", _set("workload.oracle", {"kind": "magic"}), ["workload.oracle.kind"]),
    ("oracle-regex-no-pattern", _set("workload.oracle", {"kind": "regex"}), ["workload.oracle", "pattern"]),
    ("oracle-bad-regex", _set("workload.oracle", {"kind": "regex", "pattern": "("}), ["workload.oracle"]),
    ("oracle-exit-with-pattern", _set("workload.oracle.pattern", "x"), ["workload.oracle"]),
    ("oracle-stream", _set("workload.oracle.stream", "nowhere"), ["workload.oracle.stream"]),
    ("oracle-skip-0", _set("workload.oracle.skip_exit", [0]), ["workload.oracle.skip_exit[0]"]),
    ("oracle-skip-300", _set("workload.oracle.skip_exit", [300]), ["workload.oracle.skip_exit[0]"]),
    ("oracle-callable", _set("workload.oracle.callable", "nosuchmod_xyz:judge"), ["workload.oracle.callable"]),
    ("step-both", _set("workload.step_time", {"regex": "x=(1)", "metric": "m"}), ["workload.step_time"]),
    ("step-neither", _set("workload.step_time", {}), ["workload.step_time"]),
    ("step-two-groups", _set("workload.step_time", {"regex": "(a)(b)"}), ["workload.step_time"]),
    ("env-name-digit", _set("workload.env", {"1A": "x"}), ["workload.env", "1A"]),
    ("env-name-space", _set("workload.env", {"A B": "x"}), ["workload.env", "A B"]),
    ("env-value-nul", _set("workload.env", {"A": "x\x00y"}), ["workload.env", "NUL"]),
    ("env-value-int", _set("workload.env", {"A": 42}), ["workload.env"]),
    ("extra-env-list", _set("extra_env", ["A=1"]), ["extra_env"]),
    ("cell-extra-env-name", _set("cells[1].extra_env", {"X=1": "y"}), ["cells[1].extra_env"]),
    ("mitigation-unknown", _set("cells[1].mitigations", ["warp_drive"]), ["cells[1].mitigations", "warp_drive"]),
    ("mitigation-twice", _set("cells[1].mitigations", ["tf32_off", "tf32_off"]), ["cells[1].mitigations"]),
    ("mitigation-conflict", _set("cells[1].mitigations", ["nccl_algo_ring", "nccl_algo_tree"]),
     ["cells[1].mitigations", "NCCL_ALGO"]),
    ("mitigations-str", _set("cells[1].mitigations", "tf32_off"), ["cells[1].mitigations"]),
    ("environment-unknown", _set("cells[1].environment", "mars"), ["cells[1].environment", "mars"]),
    ("environment-kind-no-value", _set("cells[1].environment", "docker"), ["cells[1].environment", "docker"]),
    ("environment-empty-image", _set("cells[1].environment", {"docker": ""}), ["cells[1].environment"]),
    ("environment-two-kinds", _set("cells[1].environment", {"docker": "a", "podman": "b"}),
     ["cells[1].environment"]),
    ("environment-empty-pin", _set("cells[1].environment", {"venv": [""]}), ["cells[1].environment"]),
    ("cell-name-300", _set("cells[1].name", "c" * 300), ["cells[1].name", "300 characters"]),
    ("cell-name-space", _set("cells[1].name", "bad name"), ["cells[1].name"]),
    ("cell-name-dotdot", _set("cells[1].name", "../x"), ["cells[1].name"]),
    ("cell-name-hidden", _set("cells[1].name", ".hidden"), ["cells[1].name"]),
    ("cell-name-reserved", _set("cells[1].name", "all"), ["cells[1].name", "reserved"]),
    ("cell-name-underscore", _set("cells[1].name", "_x"), ["cells[1].name", "reserved"]),
    ("cell-name-duplicate", _set("cells[1].name", "baseline"), ["cells[1].name", "duplicate"]),
    # cells/Baseline/ and cells/baseline/ are one directory on macOS: the trials overwrote each other
    ("cell-name-case", _set("cells[1].name", "Baseline"), ["cells[1].name", "differ only in case", "cells[0]"]),
    ("ticket-slash", _set("ticket", "a/b"), ["ticket"]),
    ("ticket-300", _set("ticket", "t" * 300), ["ticket", "300 characters"]),
    ("workload-name-300", _set("workload.name", "w" * 300), ["workload.name", "300 characters"]),
    ("workload-name-up", _set("workload.name", "../up"), ["workload.name"]),
    ("cwd-missing", _set("workload.cwd", "/nonexistent/dir"), ["workload.cwd", "/nonexistent/dir"]),
    ("cwd-file", _set("workload.cwd", "/etc/hostname"), ["workload.cwd", "not a directory"]),
    ("recipe-mitigation-key", _set("mitigations", {"mine": {"env": {}, "colour": 1}}), ["mitigations.mine"]),
    ("recipe-mitigation-clash", _set("mitigations", {"tf32_off": {"env": {"A": "1"}}}), ["tf32_off", "twice"]),
    ("recipe-mitigation-name-300", _set("mitigations", {"m" * 300: {"env": {"A": "1"}}}), ["mitigation"]),
    ("recipe-environment-two", _set("environments", {"e": {"docker": "a", "venv": ["b"]}}), ["environments.e"]),
    ("recipe-environment-clash", _set("environments", {"host": {"docker": "a"}}), ["host", "twice"]),
    ("no-baseline", _set("cells", [{"name": "a", "mitigations": ["tf32_off"]},
                                   {"name": "b", "mitigations": ["nccl_p2p_off"]}]), ["baseline"]),
    # issue 11: names end at the end (a final newline named a directory), strict numbers, plugins
    ("ticket-newline", _set("ticket", "T\n"), ["ticket", "'T\\n'"]),
    ("cell-name-newline", _set("cells[1].name", "evil\n"), ["cells[1].name", "'evil\\n'"]),
    ("workload-name-newline", _set("workload.name", "w\n"), ["workload.name"]),
    ("recipe-mitigation-newline", _set("mitigations", {"m\n": {"env": {"A": "1"}}}), ["mitigation", "name"]),
    ("recipe-environment-newline", _set("environments", {"e\n": {"docker": "a"}}), ["environment", "name"]),
    ("schema-version-true", _set("schema_version", True), ["schema_version", "True"]),
    ("schema-version-float", _set("schema_version", 1.0), ["schema_version", "1.0"]),
    ("threshold-true", _set("confound.threshold", True), ["confound.threshold", "valid number"]),
    ("threshold-str", _set("confound.threshold", "1.2"), ["confound.threshold", "valid number"]),
    ("alpha-true", _set("statistics.alpha", True), ["statistics.alpha"]),
    ("alpha-str", _set("statistics.alpha", "0.05"), ["statistics.alpha"]),
    ("min-effect-str", _set("statistics.min_effect", "0.5"), ["statistics.min_effect"]),
    ("unreliable-true", _set("statistics.unreliable_error_rate", True), ["statistics.unreliable_error_rate"]),
    ("timeout-str", _set("workload.timeout", "10"), ["workload.timeout"]),
    ("timeout-true", _set("workload.timeout", True), ["workload.timeout"]),
    ("until-decided-str", _set("until_decided", "yes"), ["until_decided", "boolean"]),
    ("until-decided-int", _set("until_decided", 1), ["until_decided", "boolean"]),
    ("nonzero-fails-str", _set("workload.oracle.nonzero_fails", "no"), ["workload.oracle.nonzero_fails"]),
    ("steps-0", _set("steps", 0), ["steps"]),
    ("steps-true", _set("steps", True), ["steps"]),
    ("steps-float", _set("steps", 5.0), ["steps"]),
    ("cell-steps-str", _set("cells[1].steps", "5"), ["cells[1].steps"]),
    ("steps-token-without-steps", _set("workload.command", ["echo", "{STEPS}"]), ["workload.command", "{STEPS}"]),
    ("inline-key-collision", _inline_collision, ["cells[1].environment", "docker-", "registered environment"]),
    ("plugin-unknown", _set("workload", {"plugin": "nope"}), ["workload.plugin", "nope"]),
    ("plugin-and-command", _set("workload.plugin", "numpy_nan"), ["workload", "exactly one of"]),
    ("plugin-param-bool", _set("workload", {"plugin": "numpy_nan", "steps": True}), ["workload.steps", "bool"]),
    ("plugin-param-str", _set("workload", {"plugin": "numpy_nan", "lr": "0.1"}), ["workload.lr", "number"]),
    ("plugin-param-unknown", _set("workload", {"plugin": "numpy_nan", "colour": 1}), ["workload.colour"]),
    ("params-without-plugin", _set("workload.params", {"a": 1}), ["workload", "params need a plugin"]),
    ("plugin-steps-twice", _plugin_steps_twice, ["workload.steps", "given twice"]),
]  # fmt: skip

BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)
)

#: (id, file name, raw bytes, words the error line must name)
FILE_CASES: list[tuple[str, str, bytes, list[str]]] = [
    ("latin1", "r.yaml", "schema_version: 1\nticket: caf\xe9\n".encode("latin-1"), ["r.yaml", "UTF-8"]),
    ("binary", "r.yaml", bytes(range(256)) * 4, ["r.yaml"]),
    ("utf16", "r.yaml", "schema_version: 1\n".encode("utf-16"), ["r.yaml", "UTF-8"]),
    ("empty", "r.yaml", b"", ["r.yaml", "empty"]),
    ("comments-only", "r.yaml", b"# nothing here\n", ["r.yaml", "empty"]),
    ("list-top", "r.yaml", b"- a\n- b\n", ["r.yaml", "mapping"]),
    ("scalar-top", "r.yaml", b"hello\n", ["r.yaml", "mapping"]),
    ("bad-yaml", "r.yaml", b"a: [\n", ["r.yaml", "YAML"]),
    ("bad-json", "r.json", b"{", ["r.json", "JSON"]),
    ("json-duplicate", "r.json", b'{"schema_version": 1, "schema_version": 1}', ["r.json", "duplicate key"]),
    ("yaml-duplicate", "r.yaml", b"schema_version: 1\nschema_version: 1\n", ["r.yaml", "duplicate key"]),
    ("yaml-bomb", "r.yaml", BOMB.encode(), ["r.yaml", "values"]),
    ("deep", "r.yaml", b"[" * 5000 + b"]" * 5000, ["r.yaml", "nested"]),
    ("deep-json", "r.json", b"[" * 100000 + b"]" * 100000, ["r.json", "nested"]),
    ("huge", "r.yaml", b"# x\n" * (5 * 1024 * 1024 // 4 + 1), ["r.yaml", "MiB"]),
    ("python-tag", "r.yaml", b"a: !!python/object/apply:os.system ['true']\n", ["r.yaml", "YAML"]),
    ("bad-date", "r.yaml", b"schema_version: 1\nseed: 2024-13-45\n", ["r.yaml", "YAML"]),
    ("long-int", "r.yaml", b"trials: 1" + b"0" * 5000 + b"\n", ["r.yaml"]),
    ("nul-char", "r.yaml", b"schema_version: 1\x00\n", ["r.yaml"]),
    ("tab-indent", "r.yaml", b"workload:\n\tcommand: x\n", ["r.yaml", "YAML"]),
]

SIDECAR_CASES: list[tuple[str, bytes, list[str]]] = [
    ("latin1", "version: 1\n# caf\xe9\n".encode("latin-1"), ["side.yaml", "UTF-8"]),
    ("binary", bytes(range(256)), ["side.yaml"]),
    ("empty", b"", ["side.yaml", "version"]),
    ("version-2", b"version: 2\n", ["side.yaml", "version"]),
    ("unknown-key", b"version: 1\ncolour: red\n", ["side.yaml", "colour"]),
    ("builtin-clash", b"version: 1\nmitigations:\n  tf32_off: {env: {A: '1'}}\n", ["tf32_off", "twice"]),
    ("bad-var", b"version: 1\nmitigations:\n  mine: {env: {'1A': 'x'}}\n", ["side.yaml", "mitigations.mine"]),
    ("bomb", ("version: 1\n" + BOMB).encode(), ["side.yaml", "values"]),
    ("list", b"- 1\n", ["side.yaml"]),
    ("version-true", b"version: true\n", ["side.yaml", "version"]),
    ("name-newline", b'version: 1\nmitigations:\n  "m\\n": {env: {A: "1"}}\n', ["side.yaml", "mitigation"]),
]

SHIM = ["--mitigation-axis", "nccl_p2p_off", "--trials", "2"]

#: (id, argv after `matrix`, words the error line must name)
FLAG_CASES: list[tuple[str, list[str], list[str]]] = [
    ("axis-empty", ["--mitigation-axis", "", "--", "true"], ["--mitigation-axis"]),
    ("axis-blank", ["--mitigation-axis", "  ", "--", "true"], ["--mitigation-axis"]),
    ("axis-trailing-plus", ["--mitigation-axis", "tf32_off+", "--", "true"], ["--mitigation-axis", "tf32_off+"]),
    ("axis-leading-plus", ["--mitigation-axis", "+tf32_off", "--", "true"], ["--mitigation-axis"]),
    ("axis-empty-item", ["--mitigation-axis", "tf32_off,,nccl_p2p_off", "--", "true"], ["--mitigation-axis"]),
    ("axis-trailing-comma", ["--mitigation-axis", "tf32_off,", "--", "true"], ["--mitigation-axis"]),
    ("axis-unknown", ["--mitigation-axis", "warp", "--", "true"], ["--mitigation-axis", "warp"]),
    ("axis-stacked-twice", ["--mitigation-axis", "tf32_off+tf32_off", "--", "true"], ["--mitigation-axis"]),
    ("axis-stack-repeated", ["--mitigation-axis", "tf32_off,tf32_off", "--", "true"], ["--mitigation-axis"]),
    ("axis-conflict", ["--mitigation-axis", "nccl_algo_ring+nccl_algo_tree", "--", "true"],
     ["--mitigation-axis", "NCCL_ALGO"]),
    ("env-axis-empty", [*SHIM, "--environment-axis", "", "--", "true"], ["--environment-axis"]),
    ("env-axis-unknown", [*SHIM, "--environment-axis", "mars", "--", "true"], ["--environment-axis", "mars"]),
    ("env-axis-no-value", [*SHIM, "--environment-axis", "docker", "--", "true"], ["--environment-axis"]),
    ("env-axis-colon", [*SHIM, "--environment-axis", "docker:", "--", "true"], ["--environment-axis"]),
    ("env-axis-kind", [*SHIM, "--environment-axis", "kube:img", "--", "true"], ["--environment-axis", "kube"]),
    ("env-axis-twice", [*SHIM, "--environment-axis", "host,host", "--", "true"], ["--environment-axis"]),
    ("env-axis-empty-item", [*SHIM, "--environment-axis", "host,,docker:x", "--", "true"],
     ["--environment-axis"]),
    ("trials-0", ["--trials", "0", "--", "true"], ["--trials 0"]),
    ("trials-negative", ["--trials", "-1", "--", "true"], ["--trials -1"]),
    ("trials-absurd", ["--trials", HUGE, "--", "true"], ["--trials", "1000000"]),
    ("trials-max-plus-1", ["--trials", str(MAX_TRIALS + 1), "--", "true"], ["--trials"]),
    ("trials-word", ["--trials", "abc", "--", "true"], ["--trials"]),
    ("timeout-0", ["--timeout", "0", "--", "true"], ["--timeout"]),
    ("timeout-nan", ["--timeout", "nan", "--", "true"], ["--timeout"]),
    ("timeout-inf", ["--timeout", "inf", "--", "true"], ["--timeout"]),
    ("timeout-absurd", ["--timeout", "1e300", "--", "true"], ["--timeout"]),
    ("timeout-31-days", ["--timeout", "2678400", "--", "true"], ["--timeout 2.6784e+06: at most 2.592e+06 seconds"]),
    ("threshold-0", ["--confound-threshold", "0", "--", "true"], ["--confound-threshold"]),
    ("fail-regex", ["--fail-regex", "(", "--", "true"], ["--fail-regex"]),
    ("step-regex", ["--step-time-regex", "(a)(b)", "--", "true"], ["--step-time-regex"]),
    ("stream-alone", ["--stream", "stdout", "--", "true"], ["--stream"]),
    ("stream-bad", ["--stream", "nowhere", "--", "true"], ["--stream"]),
    ("ticket-slash", ["--ticket", "a/b", "--", "true"], ["--ticket"]),
    ("ticket-300", ["--ticket", "t" * 300, "--", "true"], ["--ticket", "300 characters"]),
    ("name-300", ["--name", "n" * 300, "--", "true"], ["--name", "300 characters"]),
    ("env-no-equals", ["--env", "NOEQ", "--", "true"], ["--env"]),
    ("env-bad-name", ["--env", "1A=x", "--", "true"], ["--env"]),
    ("seed-negative", ["--seed", "-1", "--", "true"], ["--seed -1"]),
    ("seed-absurd", ["--seed", HUGE, "--", "true"], ["--seed"]),
    ("jobs-0", ["--jobs", "0", "--", "true"], ["--jobs 0"]),
    ("jobs-negative", ["--jobs", "-2", "--", "true"], ["--jobs -2"]),
    ("gpus-bad", ["--gpus", "x", "--", "true"], ["--gpus"]),
    ("gpus-fewer-than-jobs", ["--gpus", "0", "--jobs", "2", "--", "true"], ["--jobs 2", "--gpus"]),
    ("two-commands", ["--workload-cmd", "true", "--", "true"], ["--workload-cmd"]),
    ("nothing-after", ["--trials", "2", "--"], ["--"]),
    ("no-command", ["--trials", "2"], ["--recipe", "--"]),
    ("command-without-dashes", ["--trials", "2", "python", "train.py"], ["--"]),
    ("empty-command", ["--", ""], ["--"]),
    ("workload-cmd-quote", ["--workload-cmd", "'unclosed"], ["--workload-cmd"]),
    ("workload-cmd-empty", ["--workload-cmd", ""], ["--workload-cmd"]),
    ("unknown-flag", ["--colour", "red", "--", "true"], ["--colour"]),
    ("ticket-newline", ["--ticket", "T\n", "--", "true"], ["--ticket"]),
    ("name-newline", ["--name", "w\n", "--", "true"], ["--name"]),
    ("steps-0", ["--steps", "0", "--", "true"], ["--steps 0"]),
    ("steps-word", ["--steps", "many", "--", "true"], ["--steps"]),
    ("baseline-cell-unknown", [*SHIM, "--baseline-cell", "nope", "--", "true"], ["--baseline-cell", "nope"]),
    ("workload-plugin-and-cmd", ["--workload", "numpy_nan", "--", "true"], ["--workload"]),
    ("workload-and-workload-cmd", ["--workload", "true", "--workload-cmd", "true"], ["--workload"]),
    ("workload-empty", ["--workload", ""], ["--workload"]),
    ("workload-ref-missing", ["--workload", "nomod:Nope"], ["--workload", "nomod"]),
    ("workload-typo", ["--workload", "numpy_nam"], ["--workload 'numpy_nam'", "numpy_nan"]),
    ("output-and-output-dir", ["--output", "a", "--output-dir", "b", "--", "true"], ["--output-dir"]),
    ("output-dir-empty", ["--output-dir", "", "--", "true"], ["--output-dir ''", "an empty path"]),
    ("steps-token-no-steps", ["--", "echo", "{STEPS}"], ["{STEPS}", "--steps"]),
]  # fmt: skip


@pytest.fixture
def inproc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Any]:
    """``sleuth ARGS`` in this process, in tmp_path; returns (rc, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLEUTH_OUTPUT", str(tmp_path / "runs"))
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        out = capsys.readouterr()
        return rc, out.out, out.err

    return run


def _check(inproc: Callable[..., Any], tmp_path: Path, args: list[str | Path], mentions: list[str]) -> None:
    before = tree_state(tmp_path)
    rc, out, err = inproc(*args)
    assert_usage_error(rc, out, err, mentions, before=before, after=tree_state(tmp_path))


@pytest.mark.parametrize(
    ("mutate", "mentions"), [c[1:] for c in RECIPE_CASES], ids=[c[0] for c in RECIPE_CASES]
)
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_bad_recipe(inproc: Callable[..., Any], tmp_path: Path, mutate: Callable[[dict[str, Any]], None],
                    mentions: list[str], dry_run: bool) -> None:  # fmt: skip
    data = copy.deepcopy(BASE)
    mutate(data)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    args: list[str | Path] = ["matrix", "--recipe", path, *(["--dry-run"] if dry_run else [])]
    _check(inproc, tmp_path, args, ["r.yaml", *mentions])


@pytest.mark.parametrize(
    ("name", "raw", "mentions"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES]
)
def test_bad_recipe_file(inproc: Callable[..., Any], tmp_path: Path, name: str, raw: bytes,
                         mentions: list[str]) -> None:  # fmt: skip
    path = tmp_path / name
    path.write_bytes(raw)
    _check(inproc, tmp_path, ["matrix", "--recipe", path], mentions)


@pytest.mark.parametrize(
    ("raw", "mentions"), [c[1:] for c in SIDECAR_CASES], ids=[c[0] for c in SIDECAR_CASES]
)
@pytest.mark.parametrize("mode", ["recipe", "shim"])
def test_bad_mitigations_file(inproc: Callable[..., Any], tmp_path: Path, raw: bytes, mentions: list[str],
                              mode: str) -> None:  # fmt: skip
    side = tmp_path / "side.yaml"
    side.write_bytes(raw)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(BASE))
    head: list[str | Path] = ["--recipe", recipe] if mode == "recipe" else [*SHIM]
    tail: list[str | Path] = [] if mode == "recipe" else ["--", "true"]
    _check(inproc, tmp_path, ["matrix", *head, "--mitigations-file", side, *tail], mentions)


def test_missing_files_and_directories(inproc: Callable[..., Any], tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(BASE))
    (tmp_path / "adir").mkdir()
    for args, mentions in [
        (["--recipe", tmp_path / "missing.yaml"], ["missing.yaml", "not found"]),
        (["--recipe", tmp_path / "adir"], ["--recipe", "adir"]),
        (["--recipe", recipe, "--mitigations-file", tmp_path / "nope.yaml"], ["nope.yaml"]),
        (["--recipe", recipe, "--mitigations-file", tmp_path / "adir"], ["--mitigations-file"]),
        (["--recipe", recipe, "--trials", "3"], ["--recipe", "--trials"]),
        (["--recipe", recipe, "--", "true"], ["--recipe", "--"]),
        (["--recipe", recipe, "--env", "A=1"], ["--recipe", "--env"]),
        (["--recipe", recipe, "--seed", "-4"], ["--seed"]),
    ]:
        _check(inproc, tmp_path, ["matrix", *args], mentions)


@pytest.mark.parametrize(("argv", "mentions"), [c[1:] for c in FLAG_CASES], ids=[c[0] for c in FLAG_CASES])
def test_bad_flags(inproc: Callable[..., Any], tmp_path: Path, argv: list[str], mentions: list[str]) -> None:
    _check(inproc, tmp_path, ["matrix", *argv], mentions)


@pytest.mark.parametrize("seconds", ["2678400", "1e12"])
def test_a_timeout_over_30_days_is_refused_in_the_words_of_sleuth_run(
    inproc: Callable[..., Any], tmp_path: Path, seconds: str
) -> None:
    """One cap, one wording for every verb's trial timeout: matrix took up to a year."""
    rc, _, said_by_run = inproc("run", "--timeout", seconds, "--", "true")
    assert rc == 2 and said_by_run.startswith(f"error: --timeout {float(seconds):g}: at most "), said_by_run
    rc, _, said_by_matrix = inproc("matrix", "--timeout", seconds, "--", "true")
    assert (rc, said_by_matrix) == (2, said_by_run)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({**BASE, "workload": {**BASE["workload"], "timeout": float(seconds)}}))
    rc, _, said_by_recipe = inproc("matrix", "--recipe", recipe, "--dry-run")
    line = said_by_run.removeprefix("error: --timeout ")
    assert (rc, said_by_recipe) == (2, f"error: {recipe}: workload.timeout: {line}")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("value", ["afile", ""])
def test_output_dir_wins_over_a_bad_sleuth_output(
    inproc: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """``$SLEUTH_OUTPUT`` naming a file (or empty) stopped ``--output-dir DIR`` with an error about the
    variable: the flag given is what counts, and the variable is not looked at."""
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("SLEUTH_OUTPUT", value)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(BASE))
    rc, out, err = inproc(
        "matrix", "--recipe", recipe, "--output-dir", tmp_path / "out", "--dry-run", "--json"
    )
    assert rc == 0, err
    assert json.loads(out)["run_dir_parent"].startswith(str(tmp_path / "out")), out
    # and a bad --output-dir is named as typed (click said "Directory ... is a file")
    _check(inproc, tmp_path, ["matrix", "--recipe", recipe, "--output-dir", "afile"],
           ["--output-dir 'afile': exists and is not a directory"])  # fmt: skip


# --- matrix resume on what is not an unfinished matrix run dir ---------------------------------


@pytest.fixture(scope="module")
def made_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real run dirs of each verb (made once), to be copied into each case."""
    root = tmp_path_factory.mktemp("made")
    lst = root / "list.txt"
    lst.write_text("a\nb\nc\nd\n")
    py = [sys.executable, "-m", "sleuth"]
    recipe = root / "r.yaml"
    recipe.write_text(yaml.safe_dump(BASE))
    for argv in (
        [*py, "run", "--trials", "1", "--output", str(root / "run"), "--", "true"],
        [*py, "bisect", "list", str(lst), "--flaky", "off", "--output", str(root / "bisect"), "--",
         "sh", "-c", 'test "$SLEUTH_CANDIDATE" \\< c'],
        [*py, "matrix", "--recipe", str(recipe), "--output", str(root / "matrix")],
    ):  # fmt: skip
        done = subprocess.run(argv, cwd=root, check=False, capture_output=True, timeout=120)
        assert done.returncode in (0, 3), done.stderr  # matrix: 2 trials a cell decide nothing (3)
    return {
        verb: next(p.parent for p in (root / verb).rglob("journal.jsonl"))
        for verb in ("run", "bisect", "matrix")
    }


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _unfinished(path: Path) -> None:
    journal = path / "journal.jsonl"
    lines = [ln for ln in journal.read_text().splitlines() if json.loads(ln)["event"] != "end"]
    journal.write_text("\n".join(lines) + "\n")


def _unfinished_copy(made: dict[str, Path], tmp_path: Path) -> Path:
    path = _copy(made["matrix"], tmp_path / "md")
    _unfinished(path)
    return path


def _with(made: dict[str, Path], tmp_path: Path, name: str, raw: bytes) -> Path:
    path = _unfinished_copy(made, tmp_path)
    (path / name).write_bytes(raw)
    return path


def _without(made: dict[str, Path], tmp_path: Path, name: str) -> Path:
    path = _unfinished_copy(made, tmp_path)
    (path / name).unlink()
    return path


#: (id, how to make the directory from the made ones, extra args, words the error must name)
RESUME_CASES: list[tuple[str, Callable[[dict[str, Path], Path], Path], list[str], list[str]]] = [
    ("missing", lambda m, t: t / "nowhere", [], ["nowhere", "no such run dir"]),
    ("plain-dir", lambda m, t: (t / "plain").mkdir() or t / "plain", [], ["plain", "no journal.jsonl"]),
    ("a-file", lambda m, t: (t / "f").write_text("x") and t / "f", [], ["no such run dir"]),
    ("run-dir", lambda m, t: _copy(m["run"], t / "rd"), [], ["a run dir of sleuth run, not of sleuth matrix", "sleuth run --resume"]),
    ("bisect-dir", lambda m, t: _copy(m["bisect"], t / "bd"), [], ["a run dir of sleuth bisect, not of sleuth matrix", "sleuth bisect resume"]),
    ("journal-latin1", lambda m, t: _with(m, t, "journal.jsonl", "caf\xe9".encode("latin-1")), [],
     ["journal.jsonl", "UTF-8"]),
    ("journal-no-start", lambda m, t: _with(m, t, "journal.jsonl", b'{"event": "trial"}\n'), [],
     ["not a sleuth matrix run dir"]),
    ("journal-empty", lambda m, t: _with(m, t, "journal.jsonl", b""), [], ["not a sleuth matrix run dir"]),
    ("resolved-missing", lambda m, t: _without(m, t, "recipe.resolved.yaml"), [], ["not a sleuth matrix run dir"]),
    ("resolved-binary", lambda m, t: _with(m, t, "recipe.resolved.yaml", bytes(range(256))), [],
     ["recipe.resolved.yaml"]),
    ("resolved-bad-key", lambda m, t: _with(m, t, "recipe.resolved.yaml", b"schema_version: 1\ncolour: 1\n"), [],
     ["recipe.resolved.yaml", "workload", "required"]),
    ("resolved-empty", lambda m, t: _with(m, t, "recipe.resolved.yaml", b""), [], ["recipe.resolved.yaml", "empty"]),
    ("jobs-0", _unfinished_copy, ["--jobs", "0"], ["--jobs 0"]),
    ("gpus-bad", _unfinished_copy, ["--gpus", "zz"], ["--gpus"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "extra", "mentions"), [c[1:] for c in RESUME_CASES], ids=[c[0] for c in RESUME_CASES]
)
def test_resume_of_what_is_not_an_unfinished_matrix(  # noqa: PLR0917
    inproc: Callable[..., Any], tmp_path: Path, made_dirs: dict[str, Path],
    make: Callable[[dict[str, Path], Path], Path], extra: list[str], mentions: list[str],
) -> None:  # fmt: skip
    target = make(made_dirs, tmp_path)
    _check(inproc, tmp_path, ["matrix", "resume", target, *extra], mentions)


def test_group_options_before_resume(
    inproc: Callable[..., Any], tmp_path: Path, made_dirs: dict[str, Path]
) -> None:
    target = _unfinished_copy(made_dirs, tmp_path)
    _check(inproc, tmp_path, ["matrix", "--dry-run", "resume", target], ["resume", "its own options"])


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["matrix", "--mitigation-axis", "", "--", "true"], ["--mitigation-axis"]),
        (["matrix", "--mitigation-axis", "tf32_off+", "--", "true"], ["--mitigation-axis"]),
        (["matrix", "--trials", HUGE, "--", "true"], ["--trials"]),
    ],
)
def test_the_installed_command_says_the_same(tmp_path: Path, sleuth_env: dict[str, str], args: list[str],
                                             mentions: list[str]) -> None:  # fmt: skip
    before = tree_state(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "sleuth", *args], cwd=tmp_path, env=sleuth_env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert_usage_error(
        proc.returncode, proc.stdout, proc.stderr, mentions, before=before, after=tree_state(tmp_path)
    )


def test_a_recipe_cwd_that_does_not_exist_leaves_no_run_dir(
    tmp_path: Path, sleuth_env: dict[str, str]
) -> None:
    data = copy.deepcopy(BASE)
    data["workload"]["cwd"] = "/nonexistent"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(data))
    before = tree_state(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "sleuth", "matrix", "--recipe", str(recipe)], cwd=tmp_path,
                          env=sleuth_env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert_usage_error(proc.returncode, proc.stdout, proc.stderr, ["workload.cwd", "/nonexistent"], before=before,
                       after=tree_state(tmp_path))  # fmt: skip
