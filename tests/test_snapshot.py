"""sleuth.snapshot: real interpreters (this one and a fresh venv), fake GPU tools on PATH, redaction, diff."""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sleuth import _probe
from sleuth.snapshot import SCHEMA, Change, ChangeKind, collect, diff, flatten, workload_python


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, empty virtual environment (no pip, no network)."""
    root = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    return root / "bin" / "python"


def _tool(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\nimport sys\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory put first on PATH for fake GPU tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return bin_dir


def test_in_process_snapshot_has_every_section() -> None:
    snap = collect(packages=["click"])
    assert snap["schema"] == SCHEMA
    assert snap["taken_at"].endswith("Z")
    assert {"os", "cpu", "memory", "python", "packages", "env", "gpu"} <= snap.keys()
    assert snap["python"]["executable"] == sys.executable
    assert snap["python"]["prefix"] == sys.prefix
    assert snap["cpu"]["count"] == os.cpu_count()
    assert snap["packages"]["click"]
    assert snap["packages"]["numpy"]
    assert "torch" in snap["packages"]
    assert "nvidia-nccl-cu12" in snap["packages"]
    assert "torch" not in snap  # shallow: build info only when asked
    json.dumps(snap)  # JSON-able


def test_other_interpreter_sees_its_own_prefix(venv_python: Path) -> None:
    snap = collect(python=str(venv_python), packages=["click", "no-such-package-xyz"])
    venv_root = venv_python.parent.parent
    assert Path(snap["python"]["prefix"]).resolve() == venv_root.resolve()
    assert snap["python"]["in_venv"] is True
    assert snap["python"]["executable"] == str(venv_python)
    # the empty venv has none of this interpreter's packages
    assert snap["packages"]["numpy"] is None
    assert snap["packages"]["click"] is None
    assert snap["packages"]["no-such-package-xyz"] is None


def test_deep_probe_records_absent_frameworks(venv_python: Path) -> None:
    snap = collect(python=str(venv_python), deep=True)
    assert snap["torch"] == {"importable": False}
    assert snap["jax"] == {"importable": False}


def test_missing_gpu_tools_are_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    snap = collect()
    assert snap["gpu"] == {"nvidia_smi": {"present": False}, "rocm_smi": {"present": False}}


def test_nvidia_smi_output_is_parsed(fake_bin: Path) -> None:
    _tool(
        fake_bin,
        "nvidia-smi",
        "if any(a.startswith('--query-gpu') for a in sys.argv):\n"
        "    print('NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB')\n"
        "    print('NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB')\n"
        "else:\n"
        "    print('| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4     |')\n",
    )
    nv = collect()["gpu"]["nvidia_smi"]
    assert nv == {
        "present": True,
        "driver_version": "550.54.15",
        "cuda_version": "12.4",
        "gpus": [{"name": "NVIDIA H100 80GB HBM3", "memory_total": "81559 MiB"}] * 2,
    }


def test_failing_nvidia_smi_is_recorded_not_raised(fake_bin: Path) -> None:
    _tool(fake_bin, "nvidia-smi", "print('NVIDIA-SMI has failed', file=sys.stderr)\nsys.exit(9)")
    nv = collect()["gpu"]["nvidia_smi"]
    assert nv == {"present": True, "error": "nvidia-smi --query-gpu: NVIDIA-SMI has failed"}


def test_a_hung_gpu_tool_is_recorded_as_timed_out(fake_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wedged GPU makes nvidia-smi hang: the snapshot says so (it said "failed", and rocm-smi's
    "gave no JSON"), after a bound short enough for a run dir's snapshot to be kept."""
    from sleuth import snapshot

    monkeypatch.setattr(snapshot, "_TOOL_TIMEOUT_S", 0.5)
    for name in ("nvidia-smi", "rocm-smi"):
        _tool(fake_bin, name, "import time\ntime.sleep(600)")
    gpu = collect()["gpu"]
    assert gpu == {
        "nvidia_smi": {"present": True, "error": "nvidia-smi --query-gpu: timed out after 0.5 s"},
        "rocm_smi": {"present": True, "error": "rocm-smi --json: timed out after 0.5 s"},
    }


def test_rocm_smi_json_is_parsed(fake_bin: Path) -> None:
    doc = {
        "card0": {"Card Series": "AMD Instinct MI300X", "VRAM Total Memory (B)": "205822885888"},
        "system": {"Driver version": "6.7.0"},
    }
    _tool(fake_bin, "rocm-smi", f"print({json.dumps(json.dumps(doc))})")
    rocm = collect()["gpu"]["rocm_smi"]
    assert rocm == {
        "present": True,
        "driver_version": "6.7.0",
        "gpus": [{"name": "AMD Instinct MI300X", "memory_total": "205822885888"}],
    }


SECRET_ENV = {
    "NCCL_SOCKET_IFNAME": "eth0",
    "XLA_FLAGS": "--xla_gpu_enable_triton_gemm=false --xla_dump_to=/tmp/x",
    "CUDA_VISIBLE_DEVICES": "GPU-8f3a2c1e-4b5d-6e7f-8a9b-0c1d2e3f4a5b",
    "CUDA_API_KEY": "hunter2",
    "TORCH_HUB_TOKEN": "abc",
    "HF_TOKEN": "hf_never_recorded_at_all",
    "TORCH_HOME_URL": "https://alice:s3cret@mirror.example.com/torch",
    "JAX_REMOTE": "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "OMP_OPAQUE": "Zx8Q2mVb7LkP4nRt9WcY3hJs6GdF1aEu",
}


@pytest.mark.parametrize("where", ["in-process", "venv"])
def test_env_vars_are_filtered_and_redacted(
    where: str, venv_python: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in SECRET_ENV.items():
        monkeypatch.setenv(key, value)
    env = collect(python=None if where == "in-process" else str(venv_python))["env"]
    assert env["NCCL_SOCKET_IFNAME"] == "eth0"
    assert env["XLA_FLAGS"] == SECRET_ENV["XLA_FLAGS"]
    assert env["CUDA_VISIBLE_DEVICES"] == SECRET_ENV["CUDA_VISIBLE_DEVICES"]
    assert env["CUDA_API_KEY"] == _probe.REDACTED
    assert env["TORCH_HUB_TOKEN"] == _probe.REDACTED
    assert "HF_TOKEN" not in env  # not one of the recorded prefixes
    assert env["TORCH_HOME_URL"] == "https://<redacted>@mirror.example.com/torch"
    assert env["JAX_REMOTE"] == _probe.REDACTED
    assert env["OMP_OPAQUE"] == _probe.REDACTED
    text = json.dumps(env)
    assert "hunter2" not in text
    assert "s3cret" not in text


def test_probe_script_prints_one_json_line(venv_python: Path) -> None:
    out = subprocess.run(
        [str(venv_python), _probe.__file__, "--package", "foo"], capture_output=True, text=True, check=True
    ).stdout
    assert len(out.splitlines()) == 1
    assert json.loads(out)["packages"]["foo"] is None


def test_flatten_paths() -> None:
    data = {"a": {"b": 1, "c": [{"d": 2}, 3]}, "e": {}, "f": None}
    assert dict(flatten(data)) == {"a.b": 1, "a.c[0].d": 2, "a.c[1]": 3, "e": {}, "f": None}


def test_diff_reports_changed_added_removed_and_ignores_volatile() -> None:
    a: dict[str, Any] = collect(packages=["click"])
    a["gpu"]["nvidia_smi"] = {"present": False}  # not what this host has (a GPU, a fake on PATH)
    assert diff(a, copy.deepcopy(a)) == []
    b = copy.deepcopy(a)
    b["taken_at"] = "1999-01-01T00:00:00Z"
    assert diff(a, b) == []
    b["packages"]["numpy"] = "0.0.1"
    b["env"]["NCCL_P2P_DISABLE"] = "1"
    del b["packages"]["click"]
    b["gpu"]["nvidia_smi"] = {"present": True, "gpus": [{"name": "X"}]}
    changes = {c.path: c for c in diff(a, b)}
    assert changes["packages.numpy"] == Change(
        "packages.numpy", ChangeKind.CHANGED, old=a["packages"]["numpy"], new="0.0.1"
    )
    assert changes["env.NCCL_P2P_DISABLE"].kind is ChangeKind.ADDED
    assert changes["packages.click"].kind is ChangeKind.REMOVED
    assert changes["packages.click"].old == a["packages"]["click"]
    assert changes["gpu.nvidia_smi.present"].kind is ChangeKind.CHANGED
    assert changes["gpu.nvidia_smi.gpus[0].name"].new == "X"
    assert "taken_at" not in changes
    assert changes["packages.numpy"].to_dict()["kind"] == "changed"


def test_diff_of_an_empty_section_against_a_full_one_lists_only_its_keys() -> None:
    """A machine with no NCCL_/CUDA_ variables has ``"env": {}``: the diff against one that has
    some said "- env: {}" (the section removed, one difference too many) beside each added key."""
    a: dict[str, Any] = {"env": {}, "gpu": {"list": []}}
    b: dict[str, Any] = {"env": {"NCCL_DEBUG": "INFO"}, "gpu": {"list": [{"name": "X"}]}}
    added = [(c.path, c.kind) for c in diff(a, b)]
    assert added == [("env.NCCL_DEBUG", ChangeKind.ADDED), ("gpu.list[0].name", ChangeKind.ADDED)]
    assert [(c.path, c.kind) for c in diff(b, a)] == [
        ("env.NCCL_DEBUG", ChangeKind.REMOVED),
        ("gpu.list[0].name", ChangeKind.REMOVED),
    ]
    assert [c.path for c in diff({"env": {}}, {"env": None})] == ["env"]


#: TensorFlow's documented variables: recorded
TENSORFLOW_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_CPP_MAX_VLOG_LEVEL": "1",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    "TF_GPU_ALLOCATOR": "cuda_malloc_async",
    "TF_GPU_THREAD_MODE": "gpu_private",
    "TF_XLA_FLAGS": "--tf_xla_auto_jit=2",
    "TF_CUDNN_DETERMINISTIC": "1",
    "TF_NUM_INTEROP_THREADS": "4",
    "TF_NUM_INTRAOP_THREADS": "8",
    "TF_DETERMINISTIC_OPS": "1",
    "TF_USE_LEGACY_KERAS": "1",
    "TF2_BEHAVIOR": "1",
}
#: Terraform's: not recorded (another tool's settings; TF_TOKEN_* and TF_VAR_* may hold secrets)
TERRAFORM_ENV = {
    "TF_VAR_region": "eu-west-1",
    "TF_VAR_db_password": "hunter2",
    "TF_LOG": "DEBUG",
    "TF_LOG_PATH": "/tmp/tf.log",
    "TF_CLI_ARGS": "-no-color",
    "TF_CLI_ARGS_plan": "-refresh=false",
    "TF_TOKEN_app_terraform_io": "abc.atlasv1.secret",
    "TF_DATA_DIR": "/tmp/.terraform",
    "TF_WORKSPACE": "prod",
    "TF_IN_AUTOMATION": "1",
    "TF_INPUT": "0",
    "TF_PLUGIN_CACHE_DIR": "/tmp/plugins",
}


@pytest.mark.parametrize("where", ["in-process", "venv"])
def test_tensorflow_variables_are_recorded_terraforms_are_not(
    where: str, venv_python: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {**TENSORFLOW_ENV, **TERRAFORM_ENV}.items():
        monkeypatch.setenv(key, value)
    env = collect(python=None if where == "in-process" else str(venv_python))["env"]
    assert {k: v for k, v in env.items() if k.startswith(("TF_", "TF2_"))} == TENSORFLOW_ENV
    assert "hunter2" not in json.dumps(env)


def test_workload_python_is_the_first_python_then_python3(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d, names in ((a, ["python3"]), (b, ["python", "python3"])):
        d.mkdir()
        for name in names:
            _tool(d, name, "")
    assert workload_python(f"{a}{os.pathsep}{b}") == (str(b / "python"), "python")
    assert workload_python(str(a)) == (str(a / "python3"), "python3")
    assert workload_python(str(tmp_path / "nowhere")) is None


def test_collect_records_how_the_interpreter_was_chosen(venv_python: Path) -> None:
    snap = collect(python=str(venv_python), chosen_by="--python")
    assert snap["interpreter"] == {
        "path": str(venv_python),
        "version": snap["python"]["version"],
        "chosen_by": "--python",
    }
    assert "interpreter" not in collect()  # run dirs' snapshots are unchanged


def test_package_versions_agree_with_importlib_metadata() -> None:
    # the probe reads directory names and one header instead of importlib.metadata: same answers
    from importlib import metadata

    names = sorted({_probe._normalize(d.metadata["Name"]) for d in metadata.distributions()})
    assert len(names) > 10
    found = _probe._packages(names)
    for name in names:
        assert found[name] == metadata.version(name), name


def _dist(site: Path, dirname: str, name: str, version: str, *, header: str = "METADATA") -> None:
    d = site / dirname
    d.mkdir(parents=True)
    (d / header).write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nVersion: 9.9\n")


def test_package_lookup_follows_the_path_order_and_reads_eggs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(first, "Foo_Bar-1.0.dist-info", "Foo-Bar", "1.0")
    _dist(second, "foo_bar-2.0.dist-info", "foo-bar", "2.0")  # shadowed, as import would shadow it
    # a develop install: no version in the name
    _dist(second, "old.egg-info", "old", "0.3", header="PKG-INFO")
    (second / "flat-0.7-py3.11.egg-info").write_text("Name: flat\nVersion: 0.7\n")  # an egg-info file
    _dist(second, "nvidia_nccl_cu12-2.21.5.dist-info", "nvidia-nccl-cu12", "2.21.5")
    # not asked for: a GPU plugin
    _dist(second, "jax_cuda12_plugin-0.4.30.dist-info", "jax-cuda12-plugin", "0.4.30")
    (second / "broken-1.0.dist-info").mkdir()  # no METADATA: present, version unknown
    monkeypatch.setattr(sys, "path", [str(first), str(tmp_path / "missing"), str(second)])
    found = _probe._packages(["foo.bar", "OLD", "flat", "broken", "absent"])
    assert found["foo-bar"] == "1.0"
    assert found["old"] == "0.3"
    assert found["flat"] == "0.7"
    assert found["broken"] is None and "broken" in found
    assert found["absent"] is None
    assert found["nvidia-nccl-cu12"] == "2.21.5"  # a default package
    assert found["torch"] is None
    assert found["jax-cuda12-plugin"] == "0.4.30"


#: a token or URL password inside a longer value of a recorded variable (the name says nothing)
EMBEDDED_ENV = {
    "TORCH_EXTRA_ARGS": "--hub-token hf_EmbeddedTokenValue0123 --verbose",
    "NCCL_PLUGIN_OPTS": "token=sk-EmbeddedKey0123456789ab",
    "CUDA_MIRROR": "pip install --index-url https://bob:pa55word@mirror.example/simple torch",
}


@pytest.mark.parametrize("where", ["in-process", "venv"])
def test_tokens_inside_a_recorded_value_are_hidden(
    where: str, venv_python: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in EMBEDDED_ENV.items():
        monkeypatch.setenv(key, value)
    env = collect(python=None if where == "in-process" else str(venv_python))["env"]
    text = json.dumps(env)
    for planted in ("hf_EmbeddedTokenValue0123", "sk-EmbeddedKey0123456789ab", "pa55word"):
        assert planted not in text
    assert env["TORCH_EXTRA_ARGS"] == "--hub-token <redacted> --verbose"  # the rest of the value kept
    assert env["CUDA_MIRROR"].endswith("https://<redacted>@mirror.example/simple torch")
