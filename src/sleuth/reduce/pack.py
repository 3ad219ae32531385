"""``sleuth bundle RUN_DIR``: the run's reproducer as one scrubbed ``.tar.gz`` (see :mod:`.ship`)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from sleuth.errors import UsageError
from sleuth.reduce.rundir import SCRUB_KEY, kept_secrets, summary_of
from sleuth.reduce.scrub import Scrubber, compile_patterns
from sleuth.reduce.ship import pack
from sleuth.secrets import Secrets

__all__ = ["pack_run"]


def run_scrubber(run_dir: Path, extra: tuple[str, ...] = ()) -> Scrubber:
    """The run's own scrub rule (its secrets and ``--scrub`` patterns), plus ``extra`` patterns."""
    try:
        config = json.loads((run_dir / "reduce.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"{run_dir}: not a sleuth reduce run dir (no reduce.json)") from None
    names = list(config.get("redacted_env") or [])
    want = names + ([SCRUB_KEY] if config.get("scrub_patterns") else [])
    found = kept_secrets(run_dir, want) if want else Secrets({})
    patterns = json.loads(found.values[SCRUB_KEY]) if SCRUB_KEY in found.values else []
    secrets = Secrets({k: v for k, v in found.values.items() if k != SCRUB_KEY})
    return Scrubber(secrets, compile_patterns([*patterns, *extra]))


def _check_out(run_dir: Path, dest: Path) -> None:
    """``--out`` names an archive: a file that is not one (the run's ``summary.json``, the workload's
    input, its spec) is never overwritten, and none lands in ``shrunken/`` (the next bundle packs it)."""
    if not dest.name.endswith((".tar.gz", ".tgz")):
        raise UsageError(f"--out {dest}: not a .tar.gz name", hint="name the archive NAME.tar.gz")
    if dest.resolve().is_relative_to((run_dir / "shrunken").resolve()):
        raise UsageError(f"--out {dest}: inside the run's shrunken/, which the archive packs",
                         hint="write it outside shrunken/ (by default it goes into the run dir)")  # fmt: skip
    if dest.exists() and not _a_bundle(dest):
        raise UsageError(f"--out {dest}: exists and is not an archive sleuth bundle wrote",
                         hint="choose another path, or remove the file first")  # fmt: skip


def _a_bundle(path: Path) -> bool:
    """True for a ``.tar.gz`` whose first member lies under a ``<name>-repro/`` folder."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            first = tar.next()
    except (OSError, EOFError, tarfile.TarError):
        return False
    return first is not None and first.name.split("/")[0].endswith("-repro")


def pack_run(
    run_dir: Path, *, extra_scrub: tuple[str, ...] = (), dest: Path | None = None
) -> tuple[Path, list[tuple[str, int, str]]]:
    """Write the archive; returns its path and its members (path, bytes, sha256)."""
    summary = dict(summary_of(run_dir))
    if not (run_dir / "shrunken").is_dir():
        raise UsageError(f"{run_dir}: no shrunken/ to pack (status {summary.get('status')})")
    scrubber = run_scrubber(run_dir, extra_scrub)
    target = dest if dest is not None else run_dir / f"{summary.get('name', 'reproducer')}-repro.tar.gz"
    if not target.parent.is_dir():
        raise UsageError(f"--out {target}: no such directory {target.parent}")
    if dest is not None:
        _check_out(run_dir, dest)
    members = pack(run_dir, scrubber, target, summary)
    return target, members
