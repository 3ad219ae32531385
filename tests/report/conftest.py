"""Fixtures for report pages: a real headless Chromium that loads a page and returns its DOM.

Chromium is skipped where it is absent unless ``SLEUTH_REQUIRE_CHROMIUM=1`` (CI installs it).
"""

from __future__ import annotations

import html.parser
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REQUIRED = os.environ.get("SLEUTH_REQUIRE_CHROMIUM") == "1"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Callable[[Path], str]:
    """Load an HTML file in headless Chromium (no network) and return the DOM it built."""
    exe = _chromium()
    if exe is None:
        if REQUIRED:
            pytest.fail("SLEUTH_REQUIRE_CHROMIUM=1 but no chromium on PATH: apt-get install chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")

    def load(page: Path) -> str:
        proc = subprocess.run(
            [
                exe,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'chromium-profile'}",
                "--proxy-server=127.0.0.1:9",
                "--proxy-bypass-list=<-loopback>",  # nothing is fetched
                "--dump-dom",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    return load


class _Text(html.parser.HTMLParser):
    """Text of an HTML document by element id, and every tag's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.by_id: dict[str, list[str]] = {}
        self._open: list[tuple[str, str | None]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in {"meta", "br", "img", "link", "input", "path", "use", "rect", "circle", "line"}:
            self._open.append((tag, dict(attrs).get("id")))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            t, _ = self._open.pop()
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for _, ident in self._open:
            if ident:
                self.by_id.setdefault(ident, []).append(data)


def parse(doc: str) -> _Text:
    """The document's text (``.text``), text by id (``.by_id``) and tags (``.tags``)."""
    p = _Text()
    p.feed(doc)
    return p


def visible_text(doc: str) -> str:
    """All text of the document's body, whitespace collapsed (SVG comments are not text)."""
    return " ".join(" ".join(parse(doc).text).split())


def external_refs(doc: str) -> list[str]:
    """Every src/href that would fetch something (a self-contained page has none)."""
    refs = []
    for _tag, attrs in parse(doc).tags:
        for key in ("src", "href", "xlink:href", "data"):
            v = attrs.get(key)
            if v and not v.startswith("#"):
                refs.append(v)
    return refs
