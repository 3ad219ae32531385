"""A third-party backend installed the way a user's package would be: a dist-info directory with an
``entry_points.txt`` registering ``sleuth.backends`` names, importable through ``PYTHONPATH``.

``fake`` wraps the local backend and marks every trial it dispatches: the trial gets
``FAKE_BACKEND_MARK`` (its ``--backend-opt mark=``) in its environment and a ``fake-backend`` file
in its trial dir, so a test can tell the verb really went through it.  Its ``token`` option must
look like one (``ghp_...``): a resume given ``<redacted>`` instead of the kept value fails.  ``broken`` names a module
that does not exist (an entry point whose import fails).
"""

from __future__ import annotations

import os
from pathlib import Path

PLUGIN = """
from dataclasses import replace
from typing import ClassVar

from sleuth.backends.local import LocalBackend
from sleuth.errors import UsageError


class FakeBackend:
    OPTIONS: ClassVar[dict[str, str]] = {"mark": "a word every trial gets", "token": "a secret"}

    def __init__(self, jobs, options):
        mark = options.get("mark", "fake")
        if not mark.isalnum():
            raise UsageError(f"--backend-opt mark={mark}: must be letters and digits")
        if not options.get("token", "ghp_").startswith("ghp_"):  # a resume must get the real one back
            raise UsageError("--backend-opt token: not a token")
        self.mark = mark
        self.local = LocalBackend(jobs)

    def slots(self):
        return self.local.slots()

    def submit(self, spec, trial_dir, *, prepare=None):
        def marked(d):
            s = prepare(d) if prepare is not None else spec
            d.mkdir(parents=True, exist_ok=True)
            (d / "fake-backend").write_text(self.mark)
            return replace(s, env={**s.env, "FAKE_BACKEND_MARK": self.mark})

        return self.local.submit(spec, trial_dir, prepare=marked)

    def cancel_all(self):
        self.local.cancel_all()

    def close(self):
        self.local.close()
"""


def install(root: Path) -> dict[str, str]:
    """Write the plugin under ``root``; the environment a CLI subprocess needs to find it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "fakebackend.py").write_text(PLUGIN)
    info = root / "fakebackend-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakebackend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[sleuth.backends]\nfake = fakebackend:FakeBackend\nbroken = fakebackend_gone:Backend\n"
    )
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}


def marks(run_dir: Path) -> list[str]:
    """The marks the fake backend left in the trial dirs under ``run_dir``."""
    return sorted(p.read_text() for p in run_dir.rglob("fake-backend"))
