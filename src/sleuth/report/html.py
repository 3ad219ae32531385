"""Render a :class:`~sleuth.report.page.Page` to one self-contained HTML document (Jinja2).

Autoescape is on for every value; only a :class:`~sleuth.report.page.Figure`'s SVG, which
matplotlib wrote, goes in as markup.  The template is package data
(``sleuth/report/templates/page.html.j2``).
"""

from __future__ import annotations

from sleuth import __version__
from sleuth.report.page import Figure, Log, Note, Page, Table

__all__ = ["render"]


def render(page: Page) -> str:
    """The HTML text of ``page``."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sleuth.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["svg"] = Markup  # matplotlib's own SVG output: the one thing not escaped
    template = env.get_template("page.html.j2")
    kinds = {Table: "table", Figure: "figure", Log: "log", Note: "note"}
    return template.render(page=page, kind=lambda block: kinds[type(block)], version=__version__)
