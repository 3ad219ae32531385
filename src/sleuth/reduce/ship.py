"""What leaves the machine: the scrub pass, ``SHIP.md``, and the ``.tar.gz`` of ``sleuth bundle``.

:func:`scrub_tree` rewrites every file of a directory with the run's :class:`Scrubber`
(the run dir's ``secrets.json`` and lock excepted), binary ones included.  :func:`ship_md` lists what
would be shared, file by file with size and sha256, the scrub rules (patterns, never matches) and
the commands.  :func:`pack` copies ``shrunken/`` and ``SHIP.md`` into one archive after scrubbing
them again (with any extra patterns), the archive's own ``SHIP.md`` listing every member.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sleuth import reaper
from sleuth.errors import UsageError
from sleuth.journal import atomic_write_text
from sleuth.reduce.scrub import Scrubber
from sleuth.reduce.tree import copy_tree, paths, walk
from sleuth.secrets import SECRETS_FILE

__all__ = ["file_rows", "pack", "scrub_tree", "ship_md", "unscrubbed"]

_KEEP = {SECRETS_FILE, ".lock"}
#: text files larger than this are not rewritten (they are named in SHIP.md as unscrubbed)
_TEXT_LIMIT = 64 * 1024 * 1024


def _write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically, keeping its mode."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def scrub_tree(
    root: Path, scrubber: Scrubber, *, skip: Iterable[Path] = (), changed: list[str] | None = None
) -> list[str]:
    """Scrub every file under ``root`` in place (atomically); returns files too large to scrub, and
    appends to ``changed`` the files it rewrote (relative to ``root``).

    Files that are not UTF-8 (a Latin-1 config, a binary blob) are scrubbed too: their bytes are
    read with ``surrogateescape``, so a token among them is hidden and every other byte is kept.
    Only the run dir's own ``secrets.json`` and lock are left alone, not a file of that name deeper
    down (the workload's, copied into ``inputs/``).
    """
    skipped = {p.resolve() for p in skip}
    large: list[str] = []
    top = root.resolve()
    # walked from the resolved root, entering no symlink: every path is resolved already (a
    # resolve() per entry was quadratic in the depth: 200 s for a tree 1,000 deep in a trial dir)
    for dirpath, dirnames, filenames in walk(top):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skipped]
        for name in filenames:
            p = Path(dirpath, name)
            if (name in _KEEP and dirpath == str(top)) or p.is_symlink() or p in skipped:
                continue
            if p.stat().st_size > _TEXT_LIMIT:
                large.append(str(p.relative_to(top)))
                continue
            data = p.read_bytes()
            text = data.decode("utf-8", "surrogateescape")
            clean = scrubber.text(text)
            if clean != text:
                _write_bytes(p, clean.encode("utf-8", "surrogateescape"))
                if changed is not None:
                    changed.append(str(p.relative_to(top)))
    return large


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_rows(root: Path, top: str) -> list[tuple[str, int, str]]:
    """(path, bytes, sha256) of every file under ``root/top``, sorted."""
    rows = []
    for p in paths(root / top):
        if p.is_file() and not p.is_symlink():
            rows.append((str(p.relative_to(root)), p.stat().st_size, _sha256(p)))
    return rows


def _redacted_inputs(changed: Iterable[str]) -> list[str]:
    """SHIP.md's notes for the workload's files that held something hidden: the reproducer may
    need those values back (``verify.sh`` then says "reproduced 0/N")."""
    files = sorted(p for p in changed if p.startswith("shrunken/inputs/"))
    if not files:
        return []
    more = f" and {len(files) - 10} more" if len(files) > 10 else ""
    shown = ", ".join(f"`{p}`" for p in files[:10]) + more
    return [f"values hidden in {len(files)} input file(s), put them back if the failure needs them: {shown}"]


def unscrubbed(large: Iterable[str], prefix: str = "") -> list[str]:
    """SHIP.md's notes for the files :func:`scrub_tree` left as they were (too large to rewrite)."""
    return [
        f"NOT scrubbed (over {_TEXT_LIMIT >> 20} MiB; check it before sharing): `{p}`"
        for p in large
        if p.startswith(prefix)
    ]


def ship_md(root: Path, scrubber: Scrubber, summary: dict[str, Any], *, notes: Iterable[str] = ()) -> str:
    """The text of SHIP.md for the files under ``root/shrunken``."""
    rows = file_rows(root, "shrunken")
    total = sum(r[1] for r in rows)
    lines = [
        f"# Reproducer: {summary.get('name', '')}",
        "",
        f"Status: **{summary.get('status')}**. {summary.get('note', '')}".rstrip(),
        "",
        "## Final point",
        "",
        "| axis | initial | final |",
        "|---|---|---|",
    ]
    for name, row in summary.get("axes", {}).items():
        lines.append(f"| {name} | {_short(row.get('initial'))} | {_short(row.get('final'))} |")
    stuck = [(n, r) for n, r in summary.get("axes", {}).items() if not r.get("moved")]
    if stuck:
        lines += ["", "## Axes that did not move", ""]
        lines += [f"- {n}: {r.get('why', '')}" for n, r in stuck]
    lines += [
        "",
        f"## Files ({len(rows)} files, {total} bytes): `sleuth bundle RUN_DIR` packs them",
        "",
        "| file | bytes | sha256 |",
        "|---|---|---|",
    ]
    lines += [f"| {_cell(p)} | {n} | {h} |" for p, n, h in rows]
    names = [n for n in scrubber.secrets.names if "[" not in n]
    args = [n for n in scrubber.secrets.names if "[" in n]  # key paths: workload.command[4]
    lines += [
        "",
        "## Scrubbed",
        "",
        f"- secret variables (values never written; `run_repro.sh` takes them from your shell): "
        f"{', '.join(names) if names else 'none'}",
    ]
    if args:
        lines.append(
            f"- secret arguments (values never written; `run_repro.sh` reads each from a variable its "
            f"comments name, REPRO_SECRET_<n> or the workload's own): {', '.join(args)}"
        )
    lines += [
        "- token-shaped words (hf_..., ghp_..., sk-..., AKIA...) and URL credentials, everywhere",
        f"- `--scrub` patterns: {', '.join(f'`{p.pattern}`' for p in scrubber.patterns) or 'none'}",
    ]
    lines += [f"- {n}" for n in [*notes, *_redacted_inputs(summary.get("hidden_in_inputs", []))]]
    lines += [
        "",
        "## Commands",
        "",
        "```sh",
        "sh shrunken/run_repro.sh            # reproduce once",
        "sh shrunken/verify.sh 10            # the reproduction rate over 10 runs",
        "sleuth matrix --recipe shrunken/recipe.yaml   # try mitigations on the reproducer",
        "sleuth reduce --spec shrunken/spec.yaml       # reduce further",
        "```",
        "",
    ]
    return scrubber.text("\n".join(lines))


def _short(value: Any) -> str:
    text = str(value)
    if isinstance(value, list) and len(text) > 80:
        text = f"{len(value)} items"
    return _cell(text)


def _cell(text: str) -> str:
    """``text`` as one cell of a Markdown table row (a file named ``a|b`` or ``new\\nline`` split it)."""
    return text.replace("|", "\\|").replace("\r", "\\r").replace("\n", "\\n")


def _sweep(folder: Path, prefix: str) -> None:
    """Remove what a killed pack left in ``folder``: ``<prefix><pid>-...`` of a pid no longer running
    (a kill -9 skips the cleanup of a staging copy and of a partial archive)."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix) :].partition("-")[0]
        if pid.isdigit() and not reaper.alive(int(pid)):
            path = folder / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def pack(
    run_dir: Path, scrubber: Scrubber, dest: Path, summary: dict[str, Any]
) -> list[tuple[str, int, str]]:
    """``shrunken/`` + ``SHIP.md`` into ``dest`` (.tar.gz), scrubbed again; returns the members."""
    top = f"{summary.get('name', 'reproducer')}-repro"
    stage_prefix, part_prefix = ".sleuth-pack-", f".{dest.name}."
    _sweep(run_dir, stage_prefix)
    _sweep(dest.parent, part_prefix)
    with tempfile.TemporaryDirectory(prefix=f"{stage_prefix}{os.getpid()}-", dir=run_dir) as tmp:
        stage = Path(tmp) / top
        copy_tree(run_dir / "shrunken", stage / "shrunken")
        changed: list[str] = [*summary.get("hidden_in_inputs", [])]
        large = scrub_tree(stage, scrubber, changed=changed)
        summary = {**summary, "hidden_in_inputs": sorted(set(changed))}
        atomic_write_text(stage / "SHIP.md", ship_md(stage, scrubber, summary, notes=unscrubbed(large)))
        members = file_rows(Path(tmp), top)
        try:
            fd, part = tempfile.mkstemp(prefix=f"{part_prefix}{os.getpid()}-", dir=dest.parent)
        except OSError as exc:  # /proc, a read-only mount
            raise UsageError(
                f"--out {dest}: cannot write there: {exc.strerror or exc}", hint="give a writable directory"
            ) from None
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                for path in paths(Path(tmp, top)):
                    info = tar.gettarinfo(str(path), arcname=str(path.relative_to(tmp)))
                    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                    if info.isfile():
                        with open(path, "rb") as fh:  # streamed: a named checkpoint may not fit in memory
                            tar.addfile(info, fh)
                    else:
                        tar.addfile(info)
            os.replace(part, dest)
        except BaseException:
            Path(part).unlink(missing_ok=True)
            raise
    return members
