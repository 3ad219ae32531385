"""``sleuth report RUN_DIR``: one self-contained HTML page for a run dir of any verb.

The page is built from what the run dir already holds (``summary.json``, ``matrix.json``,
``reduce.json``, the journal, the trial logs), so it works for an old run, a finished one, and one
that was interrupted or is still going (the journal is read as it stands).  It has no external
resource: styles are inline and figures are SVG drawn by matplotlib, so the file can be attached
to a ticket or opened offline.

Layers: :mod:`sleuth.report.source` reads the run dir (every string through the run's secrets),
one module per verb (:mod:`~sleuth.report.run`, :mod:`~sleuth.report.matrix`,
:mod:`~sleuth.report.bisect`, :mod:`~sleuth.report.reduce`) turns it into a
:class:`~sleuth.report.page.Page` of plain data, :mod:`sleuth.report.figures` draws, and
:mod:`sleuth.report.html` renders the page with Jinja2.  matplotlib and Jinja2 are imported only
here: no other verb pays for them.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from sleuth.errors import UsageError
from sleuth.report.page import Page
from sleuth.report.source import RunDirView

__all__ = ["PAGE_FILE", "build_page", "write_report"]

#: the page's file name inside the run dir (DESIGN §3: ``report.html`` beside ``report.md``)
PAGE_FILE = "report.html"

#: verb -> the module whose ``page(view) -> Page`` builds its report
_PAGES = {
    "run": "sleuth.report.run",
    "matrix": "sleuth.report.matrix",
    "bisect": "sleuth.report.bisect",
    "reduce": "sleuth.report.reduce",
}


def build_page(view: RunDirView) -> Page:
    """The page of ``view``'s verb."""
    module = _PAGES.get(view.verb)
    if module is None:
        raise UsageError(f"{view.path}: sleuth report has no page for a run dir of sleuth {view.verb}")
    page: Page = import_module(module).page(view)
    return page


def write_report(view: RunDirView, out: Path | None = None) -> Path:
    """Render ``view``'s page to ``out`` (default ``RUN_DIR/report.html``), atomically; return it."""
    from sleuth.journal import atomic_write_text
    from sleuth.report.html import render

    target = out if out is not None else view.path / PAGE_FILE
    text = render(build_page(view))
    try:
        atomic_write_text(target, text)
    except OSError as exc:
        raise UsageError(
            f"{target}: cannot write the report: {exc.strerror or exc}", hint="pass a writable --out FILE"
        ) from None
    return target
