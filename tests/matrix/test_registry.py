"""The mitigation/environment registry: built-ins, entry points and sidecar files share one path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sleuth.errors import ConfigError
from sleuth.registry import BUILTIN, load_registry

PLUGIN = '''
MITIGATIONS = {"vendor_fix": {"env": {"VENDOR_FIX": "1"}, "description": "vendor knob", "docs": "https://x"}}
CLASHING = {"tf32_off": {"env": {"NVIDIA_TF32_OVERRIDE": "0"}}}

def environments():
    def cluster():
        """The vendor's cluster."""
        from sleuth.environments.host import HostEnvironment
        return HostEnvironment(name="vendor-cluster")
    return {"vendor-cluster": cluster, "vendor-img": {"docker": "vendor/img:1"}}
'''


def make_plugin(root: Path, mitigations: str = "MITIGATIONS") -> Path:
    """A minimal installed distribution with sleuth entry points, importable from ``root``."""
    (root / "fakeplug.py").write_text(PLUGIN)
    info = root / "fakeplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[sleuth.mitigations]\nvendor = fakeplug:{mitigations}\n\n"
        "[sleuth.environments]\nvendor = fakeplug:environments\n"
    )
    return root


def test_builtins_are_many_and_documented() -> None:
    reg = load_registry(entry_points=False)
    assert len(reg.mitigations) >= 25
    assert reg.mitigations["none"].env == {}
    for m in reg.mitigations.values():
        assert m.description, m.name
        assert m.docs, m.name
        assert m.source == BUILTIN
        assert m.env or m.append or m.name == "none"
        for var in [*m.env, *m.append]:
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", var), var
    for knob in [
        "NCCL_P2P_DISABLE", "NCCL_IB_DISABLE", "NCCL_NVLS_ENABLE", "NCCL_ALGO", "NCCL_PROTO",
        "TORCH_NCCL_ASYNC_ERROR_HANDLING", "TORCH_NCCL_BLOCKING_WAIT", "CUDA_LAUNCH_BLOCKING",
        "NVIDIA_TF32_OVERRIDE", "PYTORCH_CUDA_ALLOC_CONF", "CUDA_MODULE_LOADING", "CUBLAS_WORKSPACE_CONFIG",
        "TORCH_COMPILE_DISABLE", "XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE", "HIP_LAUNCH_BLOCKING",
        "AMD_SERIALIZE_KERNEL", "HSA_ENABLE_SDMA", "HSA_XNACK", "RCCL_MSCCL_ENABLE",
        "TORCH_BLAS_PREFER_HIPBLASLT",
    ]:  # fmt: skip
        assert any(knob in m.env or knob in m.append for m in reg.mitigations.values()), knob
    assert reg.mitigations["nccl_nvls_off"].env == {"NCCL_NVLS_ENABLE": "0"}
    assert reg.mitigations["alloc_expandable_segments"].env == {
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"
    }


def test_builtin_environments() -> None:
    reg = load_registry(entry_points=False)
    assert {"host", "venv", "docker", "podman", "pyxis"} <= set(reg.environments)
    assert not reg.environments["host"].takes_value
    assert reg.environments["docker"].takes_value


def test_sidecar_file_registers_mitigations_and_environments(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text(
        "version: 1\nmitigations:\n  my_fix: {env: {MY_FIX: '1'}, description: mine}\n"
        "environments:\n  rocm64: {docker: 'rocm/pytorch:6.4'}\n"
    )
    reg = load_registry([f], entry_points=False)
    assert reg.mitigations["my_fix"].env == {"MY_FIX": "1"}
    assert reg.mitigations["my_fix"].source == f"file {f}"
    assert reg.environments["rocm64"].spec is not None
    assert reg.environments["rocm64"].spec.plain() == {"docker": "rocm/pytorch:6.4"}


def test_sidecar_json(tmp_path: Path) -> None:
    f = tmp_path / "mine.json"
    f.write_text('{"version": 1, "mitigations": {"j": {"env": {"J": "1"}}}}')
    assert load_registry([f], entry_points=False).mitigations["j"].env == {"J": "1"}


def test_sidecar_clashing_with_a_builtin_names_both_sources(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("version: 1\nmitigations:\n  tf32_off: {env: {NVIDIA_TF32_OVERRIDE: '0'}}\n")
    with pytest.raises(ConfigError) as info:
        load_registry([f], entry_points=False)
    assert str(info.value).startswith(f"mitigation 'tf32_off' is defined twice: by built-in and by file {f}")


def test_two_sidecars_clashing(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    for f in (a, b):
        f.write_text("version: 1\nenvironments:\n  gpu: {podman: 'img:1'}\n")
    with pytest.raises(
        ConfigError, match=rf"environment 'gpu' is defined twice: by file {a} and by file {b}"
    ):
        load_registry([a, b], entry_points=False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2\n", "version: unsupported version 2"),
        ("mitigations: {}\n", "version: required key is missing"),
        ("version: 1\nmitigation: {}\n", "mitigation: unknown key"),
        (
            "version: 1\nmitigations:\n  x: {env: {A: 1}}\n",
            "mitigations.x.env.A: Input should be a valid string",
        ),
        ("version: 1\nmitigations:\n  x: {envs: {}}\n", "mitigations.x.envs: unknown key"),
        (
            "version: 1\nmitigations:\n  x: {env: {A B: '1'}}\n",
            "mitigations.x.env.A B: 'A B' is not a valid variable",
        ),
        (
            "version: 1\nmitigations:\n  x: {append: {'X=1': a}}\n",
            "mitigations.x.append.X=1: 'X=1' is not a valid",
        ),
        ("version: 1\nmitigations: {x: {}}\nmitigations: {y: {}}\n", "duplicate key 'mitigations' (line 3)"),
        (
            "version: 1\nmitigations:\n  'bad name': {}\n",
            "mitigations: 'bad name' is not a valid mitigation name; use letters, digits",
        ),
        (
            "version: 1\nenvironments:\n  '../e': {docker: img}\n",
            "environments: '../e' is not a valid environment name; use letters, digits",
        ),
        (
            "version: 1\nenvironments:\n  e: {docker: ''}\n",
            "environments.e: docker: the image reference is empty",
        ),
    ],
)
def test_bad_sidecar_files(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "side.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_registry([f], entry_points=False)
    assert message in str(info.value)
    assert str(f) in str(info.value)


def test_entry_points_register_through_the_same_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(make_plugin(tmp_path)))
    reg = load_registry()
    vendor = reg.mitigations["vendor_fix"]
    assert vendor.env == {"VENDOR_FIX": "1"}
    assert vendor.source.startswith("entry point vendor = fakeplug:MITIGATIONS")
    assert reg.environments["vendor-cluster"].kind == "plugin"
    assert reg.environments["vendor-cluster"].description == "The vendor's cluster."
    assert reg.environments["vendor-img"].kind == "alias"


def test_entry_point_clash_names_both_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(make_plugin(tmp_path, "CLASHING")))
    with pytest.raises(
        ConfigError, match=r"'tf32_off' is defined twice: by built-in and by entry point vendor"
    ):
        load_registry()


def test_broken_entry_point_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(make_plugin(tmp_path, "NOT_THERE")))
    with pytest.raises(ConfigError, match=r"entry point vendor = fakeplug:NOT_THERE .*cannot load"):
        load_registry()
