"""Dated tags: parsing listed tags, stepping to the nearest date, thinning by --threshold-days;
and the image flags' usage errors (no runtime needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sleuth.bisect.images import dated_tags, nearest, older_than, split_template, thin
from tests.fakebin import isolated_path

DAY0 = date(2025, 1, 1)
days_lists = st.lists(st.integers(0, 200), min_size=1, max_size=60, unique=True).map(
    lambda xs: sorted(DAY0 + timedelta(days=x) for x in xs)
)


def test_dated_tags_round_trip_only() -> None:
    tags = ["reg/jax:nightly-2025-01-02", "reg/jax:nightly-2025-1-3", "reg/jax:nightly-2025-01-04-rc",
            "reg/jax:latest", "reg/jax:nightly-2025-13-01", "reg/jax:nightly-2025-01-05"]  # fmt: skip
    got = dated_tags("reg/jax:nightly-{date}", "%Y-%m-%d", tags)
    assert got == {
        date(2025, 1, 2): "reg/jax:nightly-2025-01-02",
        date(2025, 1, 5): "reg/jax:nightly-2025-01-05",
    }
    assert dated_tags("reg/{date}/jax:latest", "%Y-%m-%d", tags) == {}  # not in the tag: cannot be listed
    assert split_template("reg/jax:{date}-cuda12") == ("reg/jax:", "-cuda12")
    assert split_template("localhost:5000/jax:{date}") == ("localhost:5000/jax:", "")
    assert split_template("reg/{date}:x") is None


@given(days_lists, st.integers(0, 200))
def test_nearest_prefers_the_day_then_older_then_newer(days: list[date], offset: int) -> None:
    want = DAY0 + timedelta(days=offset)
    got = nearest(days, want)
    assert got is not None and got in days
    older = [d for d in days if d <= want]
    assert got == (max(older) if older else min(days))


@given(days_lists, st.integers(0, 200))
def test_nearest_newer_first_prefers_the_day_then_newer_then_older(days: list[date], offset: int) -> None:
    """How the end of a search steps: a date after a failing image fails too."""
    want = DAY0 + timedelta(days=offset)
    got = nearest(days, want, newer_first=True)
    newer = [d for d in days if d >= want]
    assert got == (min(newer) if newer else max(days))


@given(days_lists, st.integers(0, 200), st.integers(0, 200))
def test_older_than_is_the_newest_before(days: list[date], a: int, b: int) -> None:
    day, before = DAY0 + timedelta(days=a), DAY0 + timedelta(days=b)
    got = older_than(days, day, before)
    ok = [d for d in days if d <= day and d < before]
    assert got == (max(ok) if ok else None)


@given(days_lists, st.integers(1, 30))
def test_thin_keeps_the_ends_and_bounds_the_gaps(days: list[date], n: int) -> None:
    kept = thin(days, n)
    assert kept[0] == days[0] and kept[-1] == days[-1]
    assert kept == sorted(set(kept)) and set(kept) <= set(days)
    for a, b in pairwise(kept):
        i, j = days.index(a), days.index(b)
        # neighbours are at most n days apart unless the list itself has no day in between
        assert (b - a).days <= n or j == i + 1
        # and none could be dropped: the next one after ``a`` beyond b is more than n days away
        if j + 1 < len(days) and b != days[-1]:
            assert (days[j + 1] - a).days > n
    if n == 1:
        assert kept == days


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--end-date", "2025-01-09", "--build", "make"], "--build needs --source NAME=PATH"),
        (["--end-date", "2025-01-09", "--cache-mount", "/c:/cache"], "--cache-mount needs --source"),
        (["--end-date", "2025-01-09", "--source", "jax"], "--source 'jax': expected NAME=PATH"),
        (
            ["--end-date", "2025-01-09", "--source", "jax=rel/path"],
            "expected NAME=PATH with an absolute path",
        ),
        (["--end-date", "2025-01-09", "--step-back"], "--step-back needs --start-date"),
        (
            ["--end-date", "2025-01-09", "--start-date", "2025-01-01", "--threshold-days", "0"],
            "--threshold-days 0: must be at least 1",
        ),
        (["--end-date", "2025-01-09", "--cache-mount", "nocolon"], "--cache-mount 'nocolon'"),
        (["--runtime", "podman"], "--runtime podman: podman is not on PATH; install podman, or choose"),
        (["--no-tag-listing"], "--no-tag-listing needs --end-date YYYY-MM-DD"),
        (
            ["--start-date", "2025-01-01", "--end-date", "2025-01-09"],
            "--runtime docker: docker is not on PATH",
        ),
        (
            ["--end-date", "2025-01-09", "--start-date", "2025-01-01", "--mount", "/nonexistent/d:/d"],
            "--mount '/nonexistent/d:/d': /nonexistent/d does not exist on this host",
        ),
    ],
)
def test_image_flags_are_one_line_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    bin_path = isolated_path(tmp_path / "bin")  # no container runtime: nothing can list the tags
    res = subprocess.run(
        [sys.executable, "-m", "sleuth", "bisect", "images", "--template", "reg.io/x:{date}", *args, "--output", "o",
         "--", "true"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PATH": bin_path, "SLEUTH_CACHE": str(tmp_path)},
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("template", "fmt", "message"),
    [
        ("localhost/JAX:nightly-{date}", "%Y-%m-%d", "a repository name must be lower case"),
        ("localhost/jax:nightly {date}", "%Y-%m-%d", "--template 'localhost/jax:nightly {date}' makes"),
        ("localhost/jax:nightly-{date}", "%Y/%m/%d", "--date-format '%Y/%m/%d' makes '2024/02/28'"),
        ("localhost/jax:nightly-{date}", "%d %b", "--date-format '%d %b' makes '28 Feb'"),
    ],
)
def test_a_template_no_runtime_accepts_is_a_usage_error(tmp_path: Path, template: str, fmt: str,
                                                         message: str) -> None:  # fmt: skip
    """podman and docker refuse every such tag: it was exit 4 at the first test, a run dir left."""
    res = subprocess.run(
        [sys.executable, "-m", "sleuth", "bisect", "images", "--runtime", "podman", "--template", template,
         "--date-format", fmt, "--start-date", "2025-01-01", "--end-date", "2025-01-09", "--no-tag-listing",
         "--output", "o", "--", "true"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PATH": isolated_path(tmp_path / "bin"), "SLEUTH_CACHE": str(tmp_path)},
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@given(st.sampled_from(["localhost/jax:nightly-{}", "ghcr.io/nvidia/jax:{}-cuda12", "localhost:5000/a/b:{}",
                        "127.0.0.1:9/x/app:{}", "nvcr.io/nvidia/jax:25.01-py3-{}", "app:{}"]),
       st.dates())  # fmt: skip
def test_ordinary_templates_are_references(template: str, day: date) -> None:
    from sleuth.bisect.images import bad_reference

    assert bad_reference(template.format(day.strftime("%Y-%m-%d"))) is None
    assert bad_reference(template.format(day.strftime("%Y%m%d"))) is None


def test_image_commits_names_a_runtime_that_is_not_installed(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "sleuth", "bisect", "image-commits", "--runtime", "podman", "--passing", "reg.io/x:1",
         "--failing", "reg.io/x:2", "--source", "jax=/opt/jax", "--output", "o", "--", "true"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PATH": isolated_path(tmp_path / "bin"), "SLEUTH_CACHE": str(tmp_path)},
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "--runtime podman: podman is not on PATH" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()


def test_image_commits_names_a_mount_that_does_not_exist(tmp_path: Path) -> None:
    """Before any image is looked at (it was an ERROR in every test, exit 4, a run dir left)."""
    res = subprocess.run(
        [sys.executable, "-m", "sleuth", "bisect", "image-commits", "--passing", "reg.io/x:1", "--failing",
         "reg.io/x:2", "--source", "jax=/opt/jax", "--mount", "data:/data", "--output", "o", "--", "true"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PATH": isolated_path(tmp_path / "bin"), "SLEUTH_CACHE": str(tmp_path)},
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert f"--mount 'data:/data': {tmp_path}/data does not exist on this host" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
