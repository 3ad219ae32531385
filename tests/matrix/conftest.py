"""Helpers for the matrix tests: a recipe writer around tests/matrix/programs/cellwork.py."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

CELLWORK = Path(__file__).parent / "programs" / "cellwork.py"


def recipe_data(**overrides: Any) -> dict[str, Any]:
    """A small regex-oracle recipe over cellwork.py, deterministic given WORK_SEED."""
    data: dict[str, Any] = {
        "schema_version": 1,
        "ticket": "T-1",
        "seed": 3,
        "workload": {
            "name": "cellwork",
            "command": [sys.executable, str(CELLWORK)],
            "oracle": {"kind": "regex", "pattern": "loss is nan", "stream": "stdout"},
            "step_time": {"regex": "step_time_ms=([0-9.]+)"},
            "env": {"WORK_SEED": "7", "WORK_FAIL_P": "1"},
            "timeout": 60,
        },
        "trials": 6,
        "cells": [
            {"name": "baseline", "mitigations": ["none"]},
            {"name": "fix", "extra_env": {"WORK_FAIL_P": "0"}},
            {"name": "slow", "extra_env": {"WORK_FAIL_P": "0", "WORK_SLOW": "4"}},
            {"name": "noop", "mitigations": ["nccl_p2p_off"]},
        ],
    }
    data.update(overrides)
    return data


@pytest.fixture
def write_recipe(tmp_path: Path) -> Callable[..., Path]:
    """Write a recipe (``recipe_data`` with overrides) to tmp_path/recipe.yaml."""

    def write(data: dict[str, Any] | None = None, name: str = "recipe.yaml", **overrides: Any) -> Path:
        path = tmp_path / name
        path.write_text(
            yaml.safe_dump(data if data is not None else recipe_data(**overrides), sort_keys=False)
        )
        return path

    return write


def default_signals(argv: list[str]) -> list[str]:
    """``argv`` started with SIGINT and SIGTERM at their defaults, whatever the suite was started with
    (``nohup``, ``&`` from a script ignore SIGINT, and Python then installs no KeyboardInterrupt
    handler).  A disposition set to default survives ``exec``; no ``preexec_fn`` (unsafe with threads)."""
    code = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "signal.signal(signal.SIGTERM, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", code, *argv]
