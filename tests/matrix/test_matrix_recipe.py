"""Recipe schema v1: every validation error names the file and the key path, on one line."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from sleuth.errors import ConfigError
from sleuth.matrix.plan import trial_order
from sleuth.matrix.recipe import load_recipe, parse_recipe, recipe_schema
from sleuth.matrix.resolve import resolve
from sleuth.registry import load_registry

BASE: dict[str, Any] = {
    "schema_version": 1,
    "ticket": "PROJ-151",
    "workload": {
        "command": ["python", "train.py"],
        "oracle": {"kind": "regex", "pattern": "loss is nan", "stream": "stdout"},
        "step_time": {"regex": "step_time_ms=([0-9.]+)"},
        "timeout": 900,
    },
    "trials": 20,
    "confound": {"threshold": 1.15, "baseline_cell": "baseline"},
    "cells": [
        {"name": "baseline", "mitigations": ["none"], "environment": "host"},
        {"name": "no-p2p", "mitigations": ["nccl_p2p_off"], "environment": "host"},
        {
            "name": "tf32-off-venv",
            "mitigations": ["tf32_off"],
            "environment": {"venv": ["torch==2.5.1"]},
            "trials": 40,
        },
        {
            "name": "img",
            "mitigations": ["none"],
            "environment": {"docker": "rocm/pytorch:latest"},
            "extra_env": {"FOO": "1"},
        },
    ],
}


def plan_of(data: dict[str, Any], tmp_path: Path | None = None):  # type: ignore[no-untyped-def]
    recipe = parse_recipe(data, "r.yaml")
    return resolve(
        recipe, load_registry(entry_points=False), "r.yaml", base_dir=tmp_path or Path("/tmp"), environ={}
    )


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        plan_of(data)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("r.yaml: ")
    return msg


def mutate(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def with_cell(i: int, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["cells"][i].update(changes)
    return data


def test_issue_example_resolves() -> None:
    plan = plan_of(BASE)
    venv, docker = plan.cell("tf32-off-venv").environment.key, plan.cell("img").environment.key
    # the venv and the image have no baseline of their own: one is added before their first cell
    # (img sets FOO, so it is not the image's baseline)
    added = [f"baseline.{venv}", f"baseline.{docker}"]
    assert [c.name for c in plan.cells] == ["baseline", "no-p2p", added[0], "tf32-off-venv", added[1], "img"]
    assert plan.added == tuple(added)
    assert plan.baselines == {"host": "baseline", venv: added[0], docker: added[1]}
    assert plan.cell(added[0]).mitigations == ("none",)
    assert plan.cell(added[0]).trials == 20
    assert plan.baseline_of("img") == added[1]
    assert plan.baseline_of("no-p2p") == "baseline"
    assert plan.baseline == "baseline"
    assert plan.cell("no-p2p").env == {"NCCL_P2P_DISABLE": "1"}
    assert plan.cell("tf32-off-venv").trials == 40
    assert plan.cell("baseline").trials == 20
    assert plan.cell("img").env == {"FOO": "1"}
    assert plan.cell("img").environment.kind == "docker"
    assert plan.cell("tf32-off-venv").environment.spec == {"venv": ["torch==2.5.1"]}
    assert plan.workload == "train"
    assert plan.argv == ("python", "train.py")


def test_unknown_schema_version() -> None:
    assert "schema_version: unsupported version 2" in error_of(mutate(schema_version=2))


def test_missing_schema_version() -> None:
    data = copy.deepcopy(BASE)
    del data["schema_version"]
    assert "schema_version: required key is missing" in error_of(data)


def test_unknown_top_level_key() -> None:
    assert error_of(mutate(trails=3)) == "r.yaml: trails: unknown key"


def test_unknown_nested_key() -> None:
    assert error_of(with_cell(2, mitigation=["x"])) == "r.yaml: cells[2].mitigation: unknown key"


def test_unknown_key_in_inline_environment() -> None:
    assert (
        error_of(with_cell(3, environment={"dockr": "x"}))
        == "r.yaml: cells[3].environment.dockr: unknown key"
    )


def test_two_environment_kinds() -> None:
    msg = error_of(with_cell(3, environment={"docker": "x", "podman": "y"}))
    assert msg.startswith("r.yaml: cells[3].environment: give exactly one of")


def test_duplicate_cell_names() -> None:
    msg = error_of(with_cell(3, name="no-p2p"))
    assert msg == "r.yaml: cells[3].name: duplicate cell name 'no-p2p' (also cells[1])"


@pytest.mark.parametrize("name", ["a b", ".hidden", "-x", "..", "a/b", ""])
def test_bad_cell_names(name: str) -> None:
    assert f"cells[1].name: {name!r} is not a valid cell name" in error_of(with_cell(1, name=name))


@pytest.mark.parametrize("name", ["all", "none", "_private"])
def test_reserved_cell_names(name: str) -> None:
    assert f"cells[1].name: {name!r} is reserved" in error_of(with_cell(1, name=name))


def test_unknown_mitigation() -> None:
    msg = error_of(with_cell(2, mitigations=["x"]))
    assert msg == "r.yaml: cells[2].mitigations: unknown mitigation 'x' (see sleuth mitigations)"


def test_unknown_environment() -> None:
    msg = error_of(with_cell(1, environment="mars"))
    assert msg == "r.yaml: cells[1].environment: unknown environment 'mars' (see sleuth environments)"


def test_environment_kind_without_value() -> None:
    msg = error_of(with_cell(1, environment="docker"))
    assert "cells[1].environment: environment 'docker' needs a value: write {docker: IMAGE}" in msg


def test_conflicting_stacked_mitigations() -> None:
    msg = error_of(with_cell(1, mitigations=["nccl_algo_ring", "nccl_algo_tree"]))
    assert (
        "cells[1].mitigations: 'nccl_algo_ring' and 'nccl_algo_tree' set NCCL_ALGO to different values" in msg
    )


def test_agreeing_stacked_mitigations_and_appended_flags() -> None:
    data = with_cell(1, mitigations=["nccl_p2p_off", "xla_autotune_off", "xla_triton_gemm_off"])
    data["workload"]["env"] = {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}
    env = plan_of(data).cell("no-p2p").env
    assert env["NCCL_P2P_DISABLE"] == "1"
    assert (
        env["XLA_FLAGS"]
        == "--xla_dump_to=/tmp/x --xla_gpu_autotune_level=0 --xla_gpu_enable_triton_gemm=false"
    )


def test_mitigation_listed_twice() -> None:
    assert "mitigation 'tf32_off' is listed twice" in error_of(
        with_cell(2, mitigations=["tf32_off", "tf32_off"])
    )


@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_trials(value: int) -> None:
    assert error_of(mutate(trials=value)) == "r.yaml: trials: Input should be greater than 0"
    assert error_of(with_cell(2, trials=value)) == "r.yaml: cells[2].trials: Input should be greater than 0"


def test_trials_must_be_an_integer() -> None:
    assert error_of(mutate(trials=True)).startswith("r.yaml: trials: Input should be a valid integer")


@pytest.mark.parametrize("value", [0, -1.5])
def test_non_positive_threshold(value: float) -> None:
    data = mutate(confound={"threshold": value})
    assert error_of(data) == "r.yaml: confound.threshold: Input should be greater than 0"


def test_unknown_baseline_cell() -> None:
    msg = error_of(mutate(confound={"baseline_cell": "nope"}))
    assert msg.startswith("r.yaml: confound.baseline_cell: no cell named 'nope'")


def test_no_cells() -> None:
    assert error_of(mutate(cells=[])).startswith("r.yaml: cells: List should have at least 1 item")


def test_env_values_must_be_strings() -> None:
    msg = error_of(with_cell(3, extra_env={"FOO": 1}))
    assert msg == "r.yaml: cells[3].extra_env.FOO: Input should be a valid string"


def test_regex_oracle_needs_a_valid_pattern() -> None:
    data = copy.deepcopy(BASE)
    data["workload"]["oracle"] = {"kind": "regex"}
    assert error_of(data) == "r.yaml: workload.oracle: kind regex needs a pattern"
    data["workload"]["oracle"] = {"kind": "regex", "pattern": "(unclosed"}
    assert "workload.oracle: pattern '(unclosed' is not a valid regular expression" in error_of(data)


def test_bad_ticket() -> None:
    assert "ticket: 'a/b' cannot name a directory" in error_of(mutate(ticket="a/b"))


def test_baseline_resolution_order() -> None:
    cells = [
        {"name": "p2p", "mitigations": ["nccl_p2p_off"]},
        {"name": "plain", "mitigations": ["none"]},
        {"name": "baseline-rocm", "mitigations": ["hsa_no_sdma"]},
    ]
    data = mutate(cells=cells, confound={})
    plan = plan_of(data)
    assert (plan.baseline, plan.baseline_reason) == (
        "baseline-rocm",
        "the first cell named baseline or baseline-*",
    )
    data["cells"] = cells[:2]
    assert plan_of(data).baseline == "plain"
    data["cells"] = cells[:1]
    assert (plan_of(data).baseline, plan_of(data).baseline_reason) == ("p2p", "the only cell")
    data["cells"] = [cells[0], {"name": "tree", "mitigations": ["nccl_algo_tree"]}]
    assert "cannot tell which cell is the baseline" in error_of(data)
    data["confound"] = {"baseline_cell": "tree"}
    assert plan_of(data).baseline == "tree"


def test_env_precedence(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["workload"]["env"] = {"NCCL_P2P_DISABLE": "0", "A": "w"}
    data["extra_env"] = {"A": "recipe", "B": "recipe"}
    data["cells"][1]["extra_env"] = {"B": "cell"}
    env = plan_of(data, tmp_path).cell("no-p2p").env
    assert env == {"NCCL_P2P_DISABLE": "1", "A": "recipe", "B": "cell"}


def test_cwd_defaults_to_the_recipe_directory(tmp_path: Path) -> None:
    assert plan_of(BASE, tmp_path).cwd == str(tmp_path.resolve())
    data = copy.deepcopy(BASE)
    data["workload"]["cwd"] = "sub"
    (tmp_path / "sub").mkdir()
    assert plan_of(data, tmp_path).cwd == str((tmp_path / "sub").resolve())


def test_shell_string_command() -> None:
    data = copy.deepcopy(BASE)
    data["workload"]["command"] = "python train.py --x 1"
    plan = plan_of(data)
    assert plan.argv == ("/bin/sh", "-c", "python train.py --x 1")
    assert plan.workload == "train"


def test_trial_order_is_seeded_interleaved_round_robin() -> None:
    plan = plan_of(mutate(seed=7))
    order = trial_order(plan.cells, plan.seed)
    assert len(order) == 20 * 5 + 40 == plan.trials_total  # two environment baselines were added
    assert order == trial_order(plan.cells, 7)
    assert order != trial_order(plan.cells, 8)
    # every round holds each cell once, before any cell's next trial
    for r in range(20):
        assert sorted(name for name, i in order[6 * r : 6 * r + 6]) == sorted(c.name for c in plan.cells)
    firsts = {order[6 * r][0] for r in range(20)}
    assert len(firsts) > 1  # the order within rounds is shuffled, not fixed
    assert [i for name, i in order if name == "tf32-off-venv"] == list(range(40))


def test_seed_is_drawn_and_recorded_when_absent() -> None:
    plan = plan_of(BASE)
    assert plan.recipe.seed == plan.seed


def test_load_yaml_and_json_files(tmp_path: Path) -> None:
    import json

    import yaml

    (tmp_path / "r.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "r.json").write_text(json.dumps(BASE))
    assert load_recipe(tmp_path / "r.yaml") == load_recipe(tmp_path / "r.json")
    (tmp_path / "bad.yaml").write_text("cells: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        load_recipe(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match=r"missing.yaml: recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match=r"expected a mapping at the top level"):
        load_recipe(tmp_path / "list.yaml")


def test_schema_names_every_top_level_key() -> None:
    schema = recipe_schema()
    assert set(schema["properties"]) >= {
        "schema_version",
        "ticket",
        "workload",
        "trials",
        "confound",
        "cells",
    }
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("where", ["workload", "recipe", "cell"])
def test_variable_names_are_checked_up_front(where: str) -> None:
    """A bad name used to pass validation and crash the first trial with a traceback."""
    data = copy.deepcopy(BASE)
    if where == "workload":
        data["workload"]["env"] = {"1A=B": "x"}
        path = "workload.env.1A=B"
    elif where == "recipe":
        data["extra_env"] = {"A B": "x"}
        path = "extra_env.A B"
    else:
        data["cells"][1]["extra_env"] = {"": "x"}
        path = "cells[1].extra_env."
    assert error_of(data).startswith(f"r.yaml: {path}: ")
    assert "is not a valid variable name" in error_of(data)


def test_skip_exit_codes_lie_in_1_to_255() -> None:
    data = copy.deepcopy(BASE)
    data["workload"]["oracle"]["skip_exit"] = [300]
    assert error_of(data).startswith("r.yaml: workload.oracle.skip_exit[0]: Input should be less than")


def test_infinite_timeout_and_threshold_are_refused() -> None:
    data = copy.deepcopy(BASE)
    data["workload"]["timeout"] = float("inf")
    assert error_of(data).startswith("r.yaml: workload.timeout: ")
    assert error_of(mutate(confound={"threshold": float("nan")})).startswith("r.yaml: confound.threshold: ")


@pytest.mark.parametrize("command", [[], "", "  ", [""]])
def test_empty_command_names_the_key_not_pydantic_internals(command: Any) -> None:
    data = copy.deepcopy(BASE)
    data["workload"]["command"] = command
    msg = error_of(data)
    assert msg.startswith("r.yaml: workload.command: give a non-empty argv list"), msg
    assert "list[str]" not in msg and "more)" not in msg


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        (
            "r.yaml",
            "schema_version: 1\nworkload: {command: [a]}\nworkload: {command: [b]}\ncells: [{name: a}]\n",
            "line 3",
        ),
        (
            "r.yaml",
            "schema_version: 1\nworkload: {command: [a]}\ncells: [{name: a, trials: 1, trials: 2}]\n",
            "line 3",
        ),
        ("r.json", '{"schema_version": 1, "trials": 1, "trials": 2}', ""),
    ],
)
def test_a_key_given_twice_is_an_error(tmp_path: Path, name: str, text: str, where: str) -> None:
    """YAML and JSON parsers silently keep the last value; a recipe must not."""
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_recipe(f)
    msg = str(info.value)
    assert msg.startswith(f"{f}: duplicate key ") and where in msg and "\n" not in msg


def test_yaml_merge_keys_share_settings_between_cells(tmp_path: Path) -> None:
    """``<<: *anchor`` (YAML's merge key, common in configs) failed with "could not determine a
    constructor for the tag 'tag:yaml.org,2002:merge'": the duplicate-key check built it as a key.
    A key given here overrides the merged one; a key given twice here is still an error."""
    f = tmp_path / "r.yaml"
    f.write_text(
        "schema_version: 1\nworkload: {command: [a]}\ncells:\n"
        "  - &base {name: baseline, extra_env: {A: '1'}, trials: 3}\n"
        "  - <<: *base\n    name: other\n"
    )
    cells = load_recipe(f).cells
    assert [(c.name, dict(c.extra_env), c.trials) for c in cells] == [
        ("baseline", {"A": "1"}, 3),
        ("other", {"A": "1"}, 3),
    ]
    f.write_text(f.read_text() + "    name: again\n")
    with pytest.raises(ConfigError, match="duplicate key 'name' \\(line 7\\)"):
        load_recipe(f)


@pytest.mark.parametrize("name", ["T\n", "evil\n", "a\nb", "\n", "ok\r", "x\x00"])
def test_a_name_with_a_line_break_is_no_name(name: str) -> None:
    """``$`` matched before a final newline: a ticket ``T\\n`` created a directory ending in one."""
    from sleuth.model import NAME_RE, check_name

    assert not check_name(name)
    assert NAME_RE.match(name) is None and NAME_RE.fullmatch(name) is None
    data = copy.deepcopy(BASE)
    data["cells"][1]["name"] = name
    assert "cells[1].name" in error_of(data)
    data = copy.deepcopy(BASE)
    data["ticket"] = name
    assert "ticket" in error_of(data)


def test_registry_names_with_a_line_break_are_refused() -> None:
    reg = load_registry(entry_points=False)
    with pytest.raises(ConfigError, match="not a valid mitigation name"):
        reg.add_mitigations({"fix\n": {"env": {"A": "1"}}}, "file s.yaml")
    with pytest.raises(ConfigError, match="not a valid environment name"):
        reg.add_environments({"img\n": {"docker": "x"}}, "file s.yaml")


def test_an_inline_environment_key_never_merges_with_a_registered_name() -> None:
    """The bug: an inline environment's key ``docker-<hash>`` equal to a registered name merged the
    two, and a cell ran in the wrong image."""
    import hashlib
    import json

    key = "docker-" + hashlib.blake2b(json.dumps({"docker": "a:1"}).encode(), digest_size=4).hexdigest()
    data = copy.deepcopy(BASE)
    data["environments"] = {key: {"docker": "b:2"}}
    data["cells"] = [
        {"name": "baseline"},
        {"name": "inline", "environment": {"docker": "a:1"}},
        {"name": "named", "environment": key},
    ]
    msg = error_of(data)
    assert (
        f"cells[1].environment: the inline environment {{'docker': 'a:1'}} gets the generated key {key!r}"
        in msg
    )
    assert f"registered environment {key!r} (recipe r.yaml)" in msg
    # without the clash both run, each in its own image
    data["environments"] = {"other": {"docker": "b:2"}}
    data["cells"][2]["environment"] = "other"
    plan = plan_of(data)
    assert plan.cell("inline").environment.spec == {"docker": "a:1"}
    assert plan.cell("named").environment.spec == {"docker": "b:2"}
    assert plan.cell("inline").environment.inline and not plan.cell("named").environment.inline


@pytest.mark.parametrize(
    ("where", "value"),
    [("confound.threshold", True), ("confound.threshold", "1.2"), ("statistics.alpha", True),
     ("statistics.min_effect", "0.5"), ("workload.timeout", "30"), ("until_decided", "yes"),
     ("until_decided", 1), ("schema_version", True), ("steps", True), ("trials", 20.0)],
)  # fmt: skip
def test_numbers_and_booleans_are_strict(where: str, value: Any) -> None:
    """``threshold: true`` loaded as 1.0 and ``'1.2'`` as 1.2: a typo read as a number."""
    data = copy.deepcopy(BASE)
    obj = data
    *parents, last = where.split(".")
    for p in parents:
        obj = obj.setdefault(p, {})
    obj[last] = value
    assert f"r.yaml: {where}: " in error_of(data)
    obj[last] = {"confound.threshold": 1, "statistics.alpha": 0.01}.get(where, obj[last])
    if where in ("confound.threshold", "statistics.alpha"):  # an int is a number
        assert plan_of(data).recipe.model_dump()[parents[0]][last] == obj[last]
