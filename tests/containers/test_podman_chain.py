"""The whole chain with a real podman: dated images, then the commits inside the first bad one.

The images are the example's (``examples/bisect-images/build_images.py``: a dependency ``dep``
and a library ``lib`` baked into nightly images; dep renames ``encode`` on 2025-03-09), built here
for five days only, on the test run's Python image.  The answer must name dep's API change with
lib's reference commit, as ``bisect git`` does with several repositories.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.containers.conftest import PYTHON, Podman, needs_podman

pytestmark = needs_podman

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bisect-images" / "build_images.py"
DAYS = ["2025-03-05", "2025-03-07", "2025-03-08", "2025-03-09", "2025-03-10"]  # 03-06 is missing


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_images", EXAMPLE)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def nightlies(tmp_path_factory: pytest.TempPathFactory, podman_store: Podman) -> dict[str, Any]:
    """The example's repositories and five nightly images in the test run's store."""
    ex = example()
    work = tmp_path_factory.mktemp("chain")
    podman_store.run("tag", PYTHON, ex.BASE)
    hist = ex.make_repos(work / "repos")
    os.environ.update(podman_store.env)  # the module fixture runs before the per-test one
    for day in DAYS:
        ex.nightly(work / "repos", hist, day, podman_store.env)
    culprit = next(s for _, s, subj in hist["dep"] if "API change" in subj)
    # lib's newest commit not after the culprit (13:00 that day): the 10:00 one, its reference
    lib_ref = next(s for _, s, subj in hist["lib"] if subj.endswith(f"({ex.BREAKS} 10:00)"))
    return {"app": ex.APP, "culprit": culprit, "lib_ref": lib_ref, "hist": hist}


def sleuth(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "sleuth", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip


CHAIN = ("--source", "dep=/opt/dep", "--source", "lib=/opt/lib", "--build", "python3 /opt/build.py",
         "--env", "BUILD_CACHE=/cache", "--flaky", "off", "--json", "--output", "o")  # fmt: skip


def test_dates_then_commits_names_the_dependencys_commit(podman: Podman, tmp_path: Path,
                                                          nightlies: dict[str, Any]) -> None:  # fmt: skip
    app = nightlies["app"]
    res = sleuth(tmp_path, "bisect", "images", "--runtime", "podman", "--template", f"{app}:{{date}}",
                 "--start-date", DAYS[0], *CHAIN, "--cache-mount", f"{tmp_path}/bazel-like-cache:/cache",
                 "--", "sh", "/opt/test.sh")  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert (d["last_good"]["label"], d["first_bad"]["label"]) == (f"{app}:2025-03-08", f"{app}:2025-03-09")
    c = d["commits"]
    assert c["status"] == "found", c
    assert c["culprit_repo"] == "dep"
    assert c["first_bad"]["label"] == nightlies["culprit"]
    assert c["first_bad"]["title"].startswith("codec: rename encode() to dumps()")  # not a SHA alone
    assert c["components"] == {"dep": nightlies["culprit"], "lib": nightlies["lib_ref"]}
    assert c["images"] == {"passing": f"{app}:2025-03-08", "failing": f"{app}:2025-03-09"}
    run = tmp_path / d["run_dir"]
    # symlinks at each stage point at the logs; the second stage has its own run dir
    for stage in (run, run / "commits"):
        for link in ("first-bad", "last-good"):
            assert any((stage / link).glob("run-*/stdout")), f"{stage / link} holds no logs"
    assert json.loads((run / "commits" / "summary.json").read_text())["culprit_repo"] == "dep"
    # every test built in the container, and the journal keeps each build's time
    builds = [json.loads(x) for x in (run / "commits" / "journal.jsonl").read_text().splitlines()]
    builds = [e for e in builds if e["event"] == "build"]
    assert len(builds) == len(c["builds"]) == c["tests"] and all(b["rc"] == 0 for b in builds)
    assert all(b["seconds"] > 0 for b in c["builds"])
    # the cache mount keeps what earlier builds made: only the first build compiled everything
    hits = []
    for log in sorted((run / "commits").glob("candidates/*/run-*/build.log")):
        m = re.search(r"built (\d+) modules \((\d+) from the cache\)", log.read_text())
        assert m, f"{log}: no build line"
        hits.append(int(m.group(2)))
    assert len(hits) == len(builds) and hits.count(0) == 1 and all(h > 0 for h in hits if h)
    assert podman.containers(run) == [] and podman.containers(run / "commits") == []
    log = (run / "sleuth.log").read_text()
    assert f"dep={nightlies['culprit']},lib={nightlies['lib_ref']}" in log  # whole labels, never cut
    assert "commits stage: dep, lib between" in log
    # resuming a finished chain runs nothing and answers the same
    again = sleuth(tmp_path, "bisect", "resume", str(run), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["commits"]["first_bad"] == c["first_bad"]


def test_image_commits_alone_and_a_failed_build_is_a_skip(podman: Podman, tmp_path: Path,
                                                          nightlies: dict[str, Any]) -> None:  # fmt: skip
    app = nightlies["app"]
    pair = ("--passing", f"{app}:2025-03-07", "--failing", f"{app}:2025-03-10")
    res = sleuth(
        tmp_path, "bisect", "image-commits", "--runtime", "podman", *pair, *CHAIN, "--", "sh", "/opt/test.sh"
    )
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["culprit_repo"] == "dep" and d["first_bad"]["label"] == nightlies["culprit"]
    assert d["components"]["lib"] == nightlies["lib_ref"]
    assert len(d["builds"]) == d["tests"]
    assert "reference commits: lib" in sleuth_render(tmp_path, d)
    broken = sleuth(tmp_path, "bisect", "image-commits", "--runtime", "podman", *pair, "--source", "dep=/opt/dep",
                    "--source", "lib=/opt/lib", "--build", "exit 3", "--flaky", "off", "--json", "--output", "o2",
                    "--", "sh", "/opt/test.sh")  # fmt: skip
    b = json.loads(broken.stdout)
    assert broken.returncode == 3 and b["status"] == "not_found"
    assert "skip" in b["note"] and all(x["rc"] == 3 for x in b["builds"])
    logs = list((tmp_path / b["run_dir"]).glob("candidates/*/run-*/build.log"))
    assert logs, "the failed build left no log"


def sleuth_render(tmp_path: Path, summary: dict[str, Any]) -> str:
    """What ``bisect resume`` of the finished run prints (the console's rendering of the answer)."""
    res = sleuth(tmp_path, "bisect", "resume", str(tmp_path / summary["run_dir"]))
    return res.stdout + res.stderr


def test_sources_that_are_not_repositories_are_usage_errors(podman: Podman, tmp_path: Path,
                                                            nightlies: dict[str, Any]) -> None:  # fmt: skip
    app = nightlies["app"]
    res = sleuth(tmp_path, "bisect", "image-commits", "--runtime", "podman", "--passing", f"{app}:2025-03-07",
                 "--failing", f"{app}:2025-03-10", "--source", "x=/opt", "--output", "o", "--", "true")  # fmt: skip
    assert res.returncode == 2 and "no git repository there" in res.stderr
    assert not (tmp_path / "o").exists()
    res = sleuth(tmp_path, "bisect", "image-commits", "--runtime", "podman", "--passing", f"{app}:2025-03-07",
                 "--failing", f"{app}:2025-03-10", "--source", "lib", "--output", "o", "--", "true")  # fmt: skip
    assert res.returncode == 2 and "--source 'lib': expected NAME=PATH" in res.stderr


def test_kill_9_in_the_commits_stage_then_resume(
    podman: Podman, tmp_path: Path, nightlies: dict[str, Any]
) -> None:
    app = nightlies["app"]
    marker = tmp_path / "m"
    marker.mkdir()
    # the first build of the commits stage hangs; resumed, the stage goes on from its journal
    build = "python3 /opt/build.py && { [ -e /m/once ] || { touch /m/once; sleep 600; }; }"
    argv = [sys.executable, "-m", "sleuth", "bisect", "images", "--runtime", "podman", "--template", f"{app}:{{date}}",
            "--start-date", "2025-03-07", "--end-date", "2025-03-10", "--source", "dep=/opt/dep", "--source",
            "lib=/opt/lib", "--build", build, "--mount", f"{marker}:/m", "--flaky", "off", "--output", "o", "--",
            "sh", "/opt/test.sh"]  # fmt: skip
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (marker / "once").exists():
            time.sleep(0.2)
        assert (marker / "once").exists(), "the commits stage never started its first build"
        time.sleep(1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    run = next((tmp_path / "o" / "bisect" / "images").iterdir())
    assert [c["state"] for c in podman.containers(run / "commits")] == ["running"]
    assert (run / "commits" / "journal.jsonl").is_file() and not (run / "commits" / "summary.json").exists()
    res = sleuth(tmp_path, "bisect", "resume", str(run), "--json")
    assert res.returncode == 0, res.stderr
    c = json.loads(res.stdout)["commits"]
    assert c["first_bad"]["label"] == nightlies["culprit"] and c["components"]["lib"] == nightlies["lib_ref"]
    assert podman.containers(run / "commits") == []
    # the date stage was served from the journal: no date was tested twice
    dates = [json.loads(x) for x in (run / "journal.jsonl").read_text().splitlines()]
    tested = [e["trial_dir"] for e in dates if e["event"] == "test"]
    assert len(tested) == len(set(tested))
