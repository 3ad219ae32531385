"""How many seeds the adversarial property tests draw, and where they report what they did.

The kill -9 / resume, signal and survivor tests run a few seeds in the suite.  ``bench/chaos.py``
runs the same tests with ``SLEUTH_CHAOS_SEEDS`` (more seeds) and ``SLEUTH_CHAOS_LOG`` (a JSON-lines
file each test appends its counts to: kills, resumes, trials, ...) and prints the totals, so the
figures in the docs come from the product's own tests, not from a re-implementation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["marked", "record", "seeds"]


def seeds(default: int) -> range:
    """``range(N)``: N from ``SLEUTH_CHAOS_SEEDS`` when set, else ``default``."""
    value = os.environ.get("SLEUTH_CHAOS_SEEDS", "")
    return range(int(value) if value.isdigit() and int(value) > 0 else default)


def record(test: str, **counts: Any) -> None:
    """Append ``{"test": test, **counts}`` to ``$SLEUTH_CHAOS_LOG`` when it is set."""
    path = os.environ.get("SLEUTH_CHAOS_LOG")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"test": test, **counts}) + "\n")


def marked(path: Path, *, under: bool = False) -> list[int]:
    """The processes whose environment says ``SLEUTH_TRIAL_DIR=path`` (with ``under``: a trial dir
    inside ``path``), as /proc says now: what a trial left running."""
    value = f"SLEUTH_TRIAL_DIR={os.path.abspath(path)}".encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if any(e.startswith(value + b"/") if under else e == value for e in env):
            out.append(int(name))
    return out
