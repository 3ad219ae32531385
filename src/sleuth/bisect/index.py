"""Listing a package's releases from the index the user configured, as pip and uv would.

The index is ``--index-url``, else ``$UV_DEFAULT_INDEX``, ``$UV_INDEX_URL``, ``$PIP_INDEX_URL``, else
PyPI (:func:`index_from_env`).  On pypi.org the JSON API answers (it has every file's
``requires_python``); any other index is asked for the PEP 691 JSON simple page and, when it
serves HTML, read as a PEP 503 page (``data-requires-python``, ``data-yanked``).  ``file://``
indexes work too (``<index>/<name>/index.html``).  Credentials in the URL become a basic-auth
header and never appear in a message.

Extra indexes (``--extra-index-url``, else ``$UV_INDEX``, ``$UV_EXTRA_INDEX_URL``, else
``$PIP_EXTRA_INDEX_URL``: :func:`extra_indexes_from_env`) are listed too, before the default, in
uv's order: :func:`read_projects` merges them, a release from the first index that serves its
public version (torch's ``2.3.0+cu121`` from its CUDA index hides PyPI's ``2.3.0``), each file
noting its ``index``.  The indexes uv's own configuration files add (:mod:`sleuth.bisect.uvconfig`)
follow them; one that has the package is the last read (uv cannot be told to leave it out).  An
extra index that cannot be read stops the listing: uv would fail every install on it too.

Every listing is returned as ``{version text: [file dicts]}`` with the JSON API's keys
(``filename``, ``packagetype``, ``requires_python``, ``yanked``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

from sleuth.errors import InfrastructureError, UsageError
from sleuth.secrets import scrub_text

__all__ = [
    "PYPI",
    "extra_indexes_from_env",
    "index_from_env",
    "list_releases",
    "project_urls",
    "read_project",
    "read_projects",
    "release_notes",
]

PYPI = "https://pypi.org/simple"
#: where the index may come from, in the order uv and then pip read it
INDEX_VARS = ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL")
_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


def index_from_env(flag: str | None, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``(index URL, where it came from)``: ``--index-url``, then the variables, then PyPI."""
    env = os.environ if environ is None else environ
    if flag is not None:
        return check_url(flag, "--index-url"), "--index-url"
    for var in INDEX_VARS:
        if env.get(var, "").strip():
            return check_url(env[var].strip(), f"${var}"), f"${var}"
    return PYPI, "default"


#: where extra indexes may come from: uv reads both of its variables (space-separated lists, a
#: ``$UV_INDEX`` entry may be ``name=URL``); pip's only when uv has none
EXTRA_VARS = ("UV_INDEX", "UV_EXTRA_INDEX_URL")
PIP_EXTRA_VAR = "PIP_EXTRA_INDEX_URL"


def extra_indexes_from_env(
    flags: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> tuple[tuple[str, str], ...]:
    """``((URL, where it came from), ...)`` of the extra indexes, first first: the flags, else the
    variables (see the module docstring)."""
    env = os.environ if environ is None else environ
    if flags:
        return tuple((check_url(u, "--extra-index-url"), "--extra-index-url") for u in flags)
    found: list[tuple[str, str]] = []
    for var in EXTRA_VARS if any(env.get(v, "").strip() for v in EXTRA_VARS) else (PIP_EXTRA_VAR,):
        for word in env.get(var, "").split():
            named = re.match(r"[A-Za-z0-9_.-]+=(?=[a-z]+://)", word)
            url = check_url(word[named.end() :] if named else word, f"${var}")
            if url not in (u for u, _ in found):
                found.append((url, f"${var}"))
    return tuple(found)


def check_url(url: str, flag: str) -> str:
    """An ``http(s)://`` or ``file://`` URL (trailing slash dropped), or a UsageError naming ``flag``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.hostname):
        shown = scrub_text(url)
        raise UsageError(f"{flag} {shown!r}: not an index URL", hint="e.g. https://pypi.org/simple")
    return url.rstrip("/")


def is_pypi(url: str) -> bool:
    """The public PyPI (its JSON API is richer than the simple index)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("pypi.org", "pypi.python.org")


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _open(url: str, accept: str) -> tuple[bytes, str]:
    """GET ``url`` (credentials in it as basic auth); the body and its content type."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Accept": accept, "User-Agent": "sleuth"}
    if parts.username is not None:
        cred = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
        netloc = parts.hostname or ""
        netloc += f":{parts.port}" if parts.port else ""
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    shown = scrub_text(url)
    if parts.scheme == "file":
        path = urllib.request.url2pathname(parts.path)
        if not os.path.exists(path):
            raise UsageError(f"{shown}: no such package on the index")
        if os.path.isdir(path):
            url = urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/index.html"))
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
            return resp.read(), resp.headers.get("Content-Type", "") or ""
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise UsageError(f"{shown}: no such package on the index") from None
        raise InfrastructureError(f"{shown}: HTTP {exc.code}") from None
    except FileNotFoundError:
        raise UsageError(f"{shown}: no such package on the index") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        if isinstance(why, ssl.SSLCertVerificationError):  # a private CA, a proxy that inspects TLS
            raise InfrastructureError(
                f"{shown}: the TLS certificate of {parts.hostname} is not trusted ({why.verify_message})",
                hint="a private CA or a proxy that inspects TLS? export SSL_CERT_FILE=<its CA bundle>",
            ) from None
        raise InfrastructureError(f"{shown}: the package index is unreachable ({why})") from None


class _Links(HTMLParser):
    """The anchors of a PEP 503 page: (text, attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, dict[str, str | None]]] = []
        self._open: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open, self._text = dict(attrs), ""

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.links.append((self._text.strip(), self._open))
            self._open = None


def _version_of(filename: str, package: str) -> tuple[str, str] | None:
    """``(version, packagetype)`` of a wheel or sdist file name, None for anything else."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    try:
        if filename.endswith(".whl"):
            name, ver, *_ = parse_wheel_filename(filename)
            kind = "bdist_wheel"
        else:
            name, ver = parse_sdist_filename(filename)
            kind = "sdist"
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return (str(ver), kind) if normalize(str(name)) == normalize(package) else None


def _from_files(files: list[dict[str, Any]], package: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for f in files:
        got = _version_of(f["filename"], package)
        if got is not None:
            out.setdefault(got[0], []).append({**f, "packagetype": got[1]})
    return out


def project_urls(index: str, package: str) -> dict[str, str]:
    """The project's links (``Changelog``, ``Source``, ...) from PyPI's JSON API; ``{}`` from any
    other index (the simple API has none) or when PyPI cannot be asked now (they are a hint)."""
    if not is_pypi(index):
        return {}
    try:
        body, _ = _open(f"https://pypi.org/pypi/{normalize(package)}/json", "application/json")
        return _urls_of(json.loads(body))
    except (InfrastructureError, UsageError, ValueError):
        return {}


def _urls_of(doc: Any) -> dict[str, str]:
    info = doc.get("info") if isinstance(doc, dict) else None
    urls = (info or {}).get("project_urls") if isinstance(info, dict) else None
    return (
        {str(k): v for k, v in (urls or {}).items() if isinstance(v, str)} if isinstance(urls, dict) else {}
    )


def release_notes(urls: Mapping[str, str], package: str, version: str, index: str) -> list[str]:
    """Where to read what ``version`` changed: its PyPI page, the project's changelog link (a link
    named like one), else its GitHub releases page.  Nothing for another index."""
    if not is_pypi(index):
        return []
    out = [f"https://pypi.org/project/{normalize(package)}/{version}/"]
    named = [u for k, u in urls.items() if re.search(r"change|release|history|news", k, re.IGNORECASE)]
    hub = [m[0] for u in urls.values() if (m := re.match(r"https://github\.com/[\w.-]+/[\w.-]+", u))]
    if named:
        out.append(named[0])
    elif hub:
        out.append(hub[0].removesuffix(".git") + "/releases")
    return out


def list_releases(index: str, package: str) -> dict[str, list[dict[str, Any]]]:
    """``{version: [files]}`` of ``package`` on ``index`` (see the module docstring)."""
    return read_project(index, package)[0]


def read_project(index: str, package: str) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """``({version: [files]}, project links)`` of ``package`` on ``index``: the links from the same
    answer on PyPI (:func:`project_urls`), ``{}`` elsewhere."""
    if is_pypi(index):
        body, _ = _open(f"https://pypi.org/pypi/{normalize(package)}/json", "application/json")
        doc = json.loads(body)
        releases: dict[str, list[dict[str, Any]]] = doc.get("releases", {})
        return releases, _urls_of(doc)
    return _simple_releases(index, package), {}


def read_projects(
    index: str,
    extras: tuple[str, ...],
    package: str,
    fixed: frozenset[str] = frozenset(),
    origins: Mapping[str, str] | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str], tuple[str, ...]]:
    """:func:`read_project` of every index, the ``extras`` first (uv asks them first): ``(releases,
    project links, the indexes that have the package)``.  A release is taken from the first index
    that serves its public version, each of its files noting that ``index``.  An index without the
    package adds nothing; none with it: the default's error.  An index in ``fixed`` (from uv's own
    configuration: an install cannot leave it out) that has the package is the last one read: uv
    takes the package from the first index that has it.  An extra index that cannot be read stops
    the listing (an InfrastructureError saying so): uv asks it first for every package, so no
    release would install either (``origins``: where each extra came from, for its hint)."""
    merged: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    urls: dict[str, str] = {}
    having: list[str] = []
    missing: UsageError | None = None
    for url in dict.fromkeys((*extras, index)):
        try:
            releases, links = read_project(url, package)
        except UsageError as exc:  # this index has no such package: another may
            missing = exc if url == index else missing
            continue
        except InfrastructureError as exc:
            if url == index:
                raise
            where = (origins or {}).get(url, "--extra-index-url or the variable that set it")
            raise InfrastructureError(
                f"extra index {exc.message}: uv asks it before the default index for every package, so "
                "no release would install either",
                hint=f"fix it, or leave it out of {where}",
            ) from None
        urls, having = urls or links, [*having, url]
        for text, files in releases.items():
            if _public(text) not in seen:  # one index's +cpu and +cu121 both stay
                merged[text] = [{**f, "index": url} for f in files]
        seen |= {_public(t) for t in releases}
        if url in fixed:
            break
    if not merged and missing is not None:
        raise missing
    return merged, urls, tuple(having)


def _public(text: str) -> str:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text).public
    except InvalidVersion:
        return text


def _simple_releases(index: str, package: str) -> dict[str, list[dict[str, Any]]]:
    body, ctype = _open(f"{index}/{normalize(package)}/", _ACCEPT)
    if "json" in ctype:
        page = json.loads(body)
        files = [{"filename": f.get("filename", ""), "requires_python": f.get("requires-python"),
                  "yanked": bool(f.get("yanked"))} for f in page.get("files", [])]  # fmt: skip
        return _from_files(files, package)
    parser = _Links()
    parser.feed(body.decode("utf-8", errors="replace"))
    files = []
    for text, attrs in parser.links:
        href = attrs.get("href") or ""
        name = text or urllib.parse.unquote(href.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1])
        files.append({"filename": name, "requires_python": attrs.get("data-requires-python"),
                      "yanked": "data-yanked" in attrs})  # fmt: skip
    return _from_files(files, package)
