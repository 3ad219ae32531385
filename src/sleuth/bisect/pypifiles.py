"""What PyPI candidates read besides the index: a ``--constraint`` file, a candidate's
``packages.txt``, and which release files an interpreter can install (the default older end).

Pure reads of local files and of the index's file listings, for
:class:`~sleuth.bisect.packaged.PypiSource`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sleuth.bisect.index import normalize
from sleuth.datafile import read_capped
from sleuth.errors import UsageError
from sleuth.secrets import scrub_text

__all__ = ["CONSTRAINTS_MAX_BYTES", "installed", "oldest_installable", "read_constraints"]


#: the largest ``--constraint`` file read (a ``pip freeze`` of a big environment is a few KiB)
CONSTRAINTS_MAX_BYTES = 1024 * 1024


def read_constraints(path: Path, package: str) -> tuple[list[str], list[str]]:
    """``(constraints, left out)`` of a ``--constraint`` file (``pip freeze`` or ``uv pip freeze``
    output, a constraints.txt): one requirement a line, ``#`` comments and blank lines skipped; the
    lines naming ``package`` are left out (they would hold it at one version).  A line that is not a
    requirement (``-e``, ``-r``, an option) is a UsageError naming the file and the line."""
    from packaging.requirements import InvalidRequirement, Requirement

    raw = read_capped(
        path,
        CONSTRAINTS_MAX_BYTES,
        what=f"--constraint {path}",
        error=UsageError,
        hint="give a requirements file",
    )
    me = normalize(package.partition("[")[0])
    keep: list[str] = []
    dropped: list[str] = []
    for n, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        text = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not text:
            continue
        try:
            req = Requirement(text)
        except InvalidRequirement:
            raise UsageError(
                f"--constraint {path}:{n}: {scrub_text(text)[:80]!r} is not a requirement",
                hint="one requirement a line, e.g. numpy==1.26.4 (no -e, -r or options)",
            ) from None
        (dropped if normalize(req.name) == me else keep).append(text)
    return keep, dropped


def installed(path: Path) -> dict[str, str] | None:
    """``{normalized name: version or direct reference}`` of a ``packages.txt``; None if absent."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    out: dict[str, str] = {}
    for line in lines:
        name, sep, ver = line.partition("==")
        if not sep:
            name, sep, ver = line.partition(" @ ")
        if sep and name.strip():
            out[normalize(name.strip())] = ver.strip()
    return out


def _admits(requires_python: str | None, version: str) -> bool:
    """Whether a file's ``Requires-Python`` admits ``version`` (no or an unparsable one does)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if not requires_python:
        return True
    try:
        return SpecifierSet(requires_python).contains(version, prereleases=True)
    except InvalidSpecifier:
        return True


def oldest_installable(
    labels: list[str], files_of: dict[str, list[dict[str, Any]]], python: str | None
) -> int:
    """The default older end: the oldest release with a wheel for the venvs' Python (``--python``).

    A package that ships no wheel at all: the oldest whose ``Requires-Python`` admits it.  An
    interpreter that cannot be asked its version: the oldest release.
    """
    import re
    import sys

    from packaging.tags import compatible_tags, cpython_tags, sys_tags
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    if python is None:
        version, tags = ".".join(map(str, sys.version_info[:3])), set(sys_tags())
    else:
        m = re.fullmatch(r"(?:python)?(\d+)\.(\d+)(\.\d+)?", python)
        if m is None:
            from sleuth.environments.venv import find_python, python_version

            got = python_version(find_python(python))
            if got is None:
                return 0
            m = re.fullmatch(r"(\d+)\.(\d+)", f"{got[0]}.{got[1]}")
            assert m is not None
        pv = (int(m[1]), int(m[2]))
        version, tags = f"{pv[0]}.{pv[1]}", {*cpython_tags(pv), *compatible_tags(pv)}

    def wheel_fits(f: dict[str, Any]) -> bool:
        try:
            return bool(parse_wheel_filename(f.get("filename", ""))[3] & tags)
        except InvalidWheelFilename:
            return False

    def ok(lab: str, need_wheel: bool) -> bool:
        fs = [f for f in files_of[lab] if _admits(f.get("requires_python"), version)]
        return any(wheel_fits(f) for f in fs) if need_wheel else bool(fs)

    wheels = any(f.get("packagetype") == "bdist_wheel" for fs in files_of.values() for f in fs)
    return next((i for i, lab in enumerate(labels) if ok(lab, wheels)), 0)
