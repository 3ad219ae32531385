"""The signature catalog: every fixture, coverage, the file format and user/plugin catalogs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sleuth.attribution.logs import LogInput
from sleuth.attribution.match import Matcher
from sleuth.attribution.model import Role, SignatureClass, Vendor
from sleuth.attribution.signatures import catalog_schema, derive_keywords, load_catalog
from sleuth.errors import ConfigError

CATALOG = load_catalog(entry_points=False)
MATCHER = Matcher(CATALOG)
CASES = [(s.id, line, True) for s in CATALOG.signatures for line in s.match] + [
    (s.id, line, False) for s in CATALOG.signatures for line in s.no_match
]


@pytest.mark.parametrize(
    ("sig_id", "line", "must_match"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_every_fixture_through_the_scanner(sig_id: str, line: str, must_match: bool) -> None:
    # end to end: prefilter + full regex, inside a log with noise around the line
    log = LogInput.memory("rank0.log", f"iteration 1 | loss 2.3\n{line}\niteration 2 | loss 2.2\n")
    hits = {f.signature for f in MATCHER.scan([log]).findings}
    assert (sig_id in hits) is must_match, (sig_id, line, hits)


def test_size_and_equal_vendor_depth() -> None:
    assert len(CATALOG) >= 45
    vendors = Counter(s.vendor for s in CATALOG.signatures)
    nvidia, amd = vendors[Vendor.NVIDIA], vendors[Vendor.AMD]
    assert nvidia >= 20 and amd >= 20, vendors
    assert abs(nvidia - amd) <= 0.2 * max(nvidia, amd), vendors


def test_required_coverage() -> None:
    ids = {s.id for s in CATALOG.signatures}
    for code in (13, 31, 43, 48, 63, 64, 74, 79, 92, 94, 95, 119, 120):
        assert f"nvidia.xid.{code}" in ids
    for needed in (
        "cuda.oom",
        "cuda.illegal_address",
        "cuda.device_assert",
        "cuda.ecc_uncorrectable",
        "cuda.launch_failure",
        "nccl.watchdog_timeout",
        "nccl.ib_completion_error",
        "nccl.remote_error",
        "nccl.warn_previous_error",
        "torch.store_timeout",
        "torch.child_failed",
        "torch.address_in_use",
        "py.shape_mismatch",
        "py.state_dict_keys",
        "py.import_error",
        "py.permission_denied",
        "py.file_not_found",
        "num.loss_nonfinite",
        "num.grad_nonfinite",
        "linux.oom_kill",
        "linux.segfault",
        "slurm.preempted",
        "slurm.node_fail",
        "slurm.time_limit",
        "slurm.cancelled_by_user",
        "amd.memory_access_fault",
        "amd.gpu_reset_begin",
        "amd.ring_timeout",
        "amd.ras_uncorrectable",
        "amd.ras_xgmi",
        "amd.vm_page_fault",
    ):
        assert needed in ids, needed


def test_every_entry_is_documented_and_classified() -> None:
    for s in CATALOG.signatures:
        assert s.docs and all(d.startswith("https://") for d in s.docs), s.id
        assert s.description and s.match and s.no_match, s.id
        if s.role is Role.CASCADE:
            assert s.cls is SignatureClass.CASCADE, s.id


def test_the_amd_no_uncorrectable_trap() -> None:
    sig = CATALOG.get("amd.ras_uncorrectable")
    assert sig is not None
    assert not sig.pattern.search("amdgpu: no uncorrectable hardware errors detected in umc block")
    assert not sig.pattern.search("amdgpu: 0 uncorrectable hardware errors detected in total in umc block")
    assert sig.pattern.search("amdgpu: 12 uncorrectable hardware errors detected in umc block")


def test_builtin_files_validate_against_the_published_schema(tmp_path: Path) -> None:
    import jsonschema
    import yaml

    schema = catalog_schema()
    root = Path(__file__).parents[2] / "src/sleuth/attribution/catalog"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 4
    for f in files:
        jsonschema.validate(yaml.safe_load(f.read_text()), schema)


def test_keyword_derivation() -> None:
    assert derive_keywords(r"NVRM: Xid \([^)]*\): 79\b") == ("NVRM: Xid (",)
    assert set(derive_keywords(r"(?:ModuleNotFoundError|ImportError): ")) == {
        "ModuleNotFoundError",
        "ImportError",
    }
    assert derive_keywords(r"\d+ ab") == ()


def _write(tmp: Path, body: str) -> Path:
    p = tmp / "mine.yaml"
    p.write_text(body)
    return p


GOOD = """version: 1
name: site
revision: 1
signatures:
  - id: site.fs_flake
    regex: 'weka: stale handle'
    class: infrastructure
    role: root
    action: RESTART
    description: our file system's flake
    docs: [https://example.org/runbook]
    match: ['weka: stale handle on /data']
    no_match: ['weka mounted']
"""


def test_user_catalog_adds_signatures(tmp_path: Path) -> None:
    cat = load_catalog([_write(tmp_path, GOOD)], entry_points=False)
    assert cat.get("site.fs_flake") is not None and len(cat) == len(CATALOG) + 1


def test_an_inline_ignorecase_flag_makes_the_prefilter_fold_case(tmp_path: Path) -> None:
    # "(?i)" in the regex once left the keyword case-sensitive: a "WEKA: STALE HANDLE" line never
    # reached the regex (and a fixture in another case was refused, "contains none of the keywords")
    from sleuth.attribution.logs import LogInput
    from sleuth.attribution.match import Matcher

    body = GOOD.replace("regex: 'weka: stale handle'", "regex: '(?i)weka: stale handle'").replace(
        "match: ['weka: stale handle on /data']", "match: ['WEKA: Stale Handle on /data']"
    )
    cat = load_catalog([_write(tmp_path, body)], entry_points=False)
    log = LogInput.memory("n.log", "ok\nWEKA: STALE HANDLE on /scratch\n")
    assert [f.signature for f in Matcher(cat).scan([log]).findings] == ["site.fs_flake"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("regex: 'weka: stale handle'", "regex: 'weka: (stale'"), "does not compile"),
        (("match: ['weka: stale handle on /data']", "match: ['nothing here']"), "match[0]"),
        (("no_match: ['weka mounted']", "no_match: ['weka: stale handle']"), "no_match[0]"),
        (("id: site.fs_flake", "id: cuda.oom"), "defined twice"),
        (("class: infrastructure", "class: weather"), "class"),
        (("regex: 'weka: stale handle'", "regex: '\\d+x'"), "keywords"),
        (("version: 1", "version: 7"), "version"),
        (("    docs: [https://example.org/runbook]\n", ""), "docs"),
    ],
)
def test_bad_user_catalogs_are_refused_with_the_key(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    body = GOOD.replace(*edit)
    assert body != GOOD
    with pytest.raises(ConfigError) as info:
        load_catalog([_write(tmp_path, body)], entry_points=False)
    assert message in str(info.value) and "mine.yaml" in str(info.value)


def test_entry_point_plugin_catalog(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "sleuth_site_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "sleuth_site_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sleuth-site-plugin\nVersion: 0.1\n"
    )
    (site / "sleuth_site_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[sleuth.signatures]\nsite = sleuth_site_plugin:catalog\n"
    )
    (site / "sleuth_site_plugin.py").write_text(
        "import yaml\ncatalog = lambda: yaml.safe_load(open(__file__.replace('.py', '.yaml')))\n"
    )
    (site / "sleuth_site_plugin.yaml").write_text(GOOD)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "sleuth", "attribute", "--list-signatures", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = {r["id"]: r for r in json.loads(out.stdout)}
    assert rows["site.fs_flake"]["source"].startswith("entry point site")
