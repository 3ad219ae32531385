"""Flags and output plumbing the ``sleuth gate`` subcommands share (parsing only; no decisions)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sleuth.errors import UsageError

__all__ = [
    "CTX",
    "Outputs",
    "branch_filter",
    "check_db",
    "check_name_flag",
    "db_option",
    "html_option",
    "metric_filter",
    "open_store",
    "outputs_options",
    "parse_fraction",
    "parse_percent",
    "refuse_secret",
    "selected_runs",
    "statuses",
    "warn",
]

CTX = {"help_option_names": ["-h", "--help"]}


def db_option(func: Any) -> Any:
    """``--db URL``: the history (default ``$SLEUTH_GATE_DB`` or ``sqlite:///.sleuth/history.db``)."""
    return click.option(
        "--db",
        metavar="URL",
        default=None,
        help="History store: sqlite:///PATH, postgresql://USER@HOST/DB or dir://PATH "
        "[default: $SLEUTH_GATE_DB or sqlite:///.sleuth/history.db].",
    )(func)


def outputs_options(func: Any) -> Any:
    """``--json``, ``--markdown FILE`` and ``--junit FILE``."""
    func = click.option(
        "--junit", type=click.Path(path_type=Path), default=None, help="Write JUnit XML here."
    )(func)
    func = click.option(
        "--markdown",
        type=click.Path(path_type=Path),
        default=None,
        help="Write a markdown summary here (also appended to $GITHUB_STEP_SUMMARY when that is set).",
    )(func)
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")(
        func
    )


def html_option(func: Any) -> Any:
    """``--html FILE``: the verbs whose results have a page (``check``, ``changepoints``)."""
    return click.option(
        "--html",
        type=click.Path(path_type=Path),
        default=None,
        help="Write a self-contained HTML page here (verdicts, each metric's history drawn).",
    )(func)


def check_name_flag(flag: str, value: str, *, stored: bool = False) -> str:
    """A suite or run id that can be a file name in every store; ``stored`` (a verb that writes it:
    ``record``, ``--emit-metadata``, ``baseline capture``), one that also comes back as given
    (:func:`refuse_secret`)."""
    from sleuth.model import check_name

    if not check_name(value):
        raise UsageError(
            f"{flag} {value!r}: not a valid name",
            hint="use letters, digits, '_', '.', '-' (not starting with '.' or '-'), at most 100 characters",
        )
    if stored:
        refuse_secret(flag, value)
    return value


def branch_filter(value: str | None) -> str | None:
    """A reading verb's ``--branch`` (or a baseline file's) as ``record`` stored it
    (:func:`sleuth.gate.model.stored_branch`), so that a branch CI gave, scrubbed when recorded, is found."""
    from sleuth.gate.model import stored_branch

    return stored_branch(value) if value else None


def metric_filter(values: tuple[str, ...]) -> tuple[str, ...]:
    """A reading verb's ``--metric`` names (or globs) as ``record`` stored them
    (:func:`sleuth.gate.ingest.stored_metric`: secrets hidden, a name over 500 characters fitted), so
    that the name a user recorded finds its runs, as :func:`branch_filter` does for ``--branch``."""
    from sleuth.gate.ingest import stored_metric

    return tuple(dict.fromkeys(stored_metric(v) for v in values))


def refuse_secret(flag: str, value: str | None) -> None:
    """A usage error, before anything is written, when ``value`` (a suite, run id or branch a verb
    stores) looks like a credential (:func:`sleuth.gate.model.looks_secret`); the value is not repeated."""
    from sleuth.gate.model import looks_secret

    if value and looks_secret(value):
        raise UsageError(
            f"{flag}: the value looks like a credential (a token, or the value of a secret variable "
            "of this shell) and would be stored and shown as <redacted>",
            hint=f"pass a non-secret {flag.removeprefix('--').replace('-', ' ')}",
        )


def warn(text: str) -> None:
    """A line on stderr that is not an error (``INSUFFICIENT: ...``), through the rule an error line
    goes through (:func:`sleuth.gate.model.clean`: printable; URL credentials, token-shaped words and
    the values of this shell's secret variables hidden), whatever it quotes: a suite, a path, a URL."""
    from sleuth.gate.model import clean

    click.echo(clean(text), err=True)


def parse_percent(flag: str, text: str) -> float:
    """``1%`` or ``1`` (percent) -> 0.01; must lie in (0, 100) percent."""
    raw = text.strip().removesuffix("%")
    try:
        v = float(raw)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: not a percentage", hint="e.g. 1% or 0.5%") from None
    if not math.isfinite(v) or not 0 < v < 100:
        raise UsageError(f"{flag} {text!r}: must be between 0% and 100% (exclusive)")
    return v / 100.0


def parse_fraction(flag: str, value: float, lo: float = 0.0, hi: float = 1.0) -> float:
    """A probability-like flag strictly inside (lo, hi)."""
    if not math.isfinite(value) or not lo < value < hi:
        raise UsageError(f"{flag} {value}: must lie strictly between {lo:g} and {hi:g}")
    return value


def _check_out_path(flag: str, path: Path | None) -> None:
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory", hint="give a file path")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is not a directory")


class Outputs:
    """Where a subcommand's results go: stdout (JSON or tables), a markdown file, a JUnit file, an
    HTML page."""

    def __init__(
        self, as_json: bool, markdown: Path | None, junit: Path | None, html: Path | None = None
    ) -> None:
        _check_out_path("--markdown", markdown)
        _check_out_path("--junit", junit)
        _check_out_path("--html", html)
        files = [
            (flag, p) for flag, p in (("--markdown", markdown), ("--junit", junit), ("--html", html)) if p
        ]
        for i, (flag, p) in enumerate(files):
            for other, q in files[:i]:
                if p.resolve() == q.resolve():
                    raise UsageError(f"{flag} {p}: the same file as {other}", hint="give each its own file")
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if (
            html is not None
            and markdown is not None
            and summary
            and html.resolve() == Path(summary).resolve()
        ):
            raise UsageError(f"--html {html}: the job summary ($GITHUB_STEP_SUMMARY) gets the markdown")
        if markdown is not None and summary:  # appended to, never created with its folder: check first
            where = Path(summary)
            if where.is_dir() or not where.parent.is_dir():
                raise UsageError(
                    f"$GITHUB_STEP_SUMMARY {summary}: "
                    + ("is a directory" if where.is_dir() else f"no such directory {where.parent}"),
                    hint="unset it, or point it at a file",
                )
        self.as_json = as_json
        self.markdown = markdown
        self.junit = junit
        self.html = html

    def write(
        self,
        *,
        data: dict[str, Any],
        table: Callable[[], None],
        md: str,
        junit: Callable[[], str] | None,
        html: Callable[[], str] | None = None,
    ) -> None:
        """JSON or the table on stdout; the HTML, markdown and JUnit files when asked for.  The page is
        made first (matplotlib and Jinja2 load only then); each file is written whole or not at all.
        Each output hides the secrets :func:`sleuth.gate.render.clean` hides (the JSON here, the
        others as they are rendered)."""
        from sleuth.cli._common import print_json
        from sleuth.journal import atomic_write_text

        if self.html is not None and html is not None:
            page = html()
            try:
                atomic_write_text(self.html, page)
            except OSError as exc:
                raise UsageError(
                    f"--html {self.html}: cannot write the page: {exc.strerror or exc}",
                    hint="give a writable file path",
                ) from None
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if self.markdown is not None:
            if summary and Path(summary).resolve() == self.markdown.resolve():
                pass  # written once below, appended like any other step's summary
            else:
                atomic_write_text(self.markdown, md)
            if summary:
                with open(summary, "a", encoding="utf-8") as fh:
                    fh.write(md + "\n")
        if self.junit is not None and junit is not None:
            atomic_write_text(self.junit, junit())
        if self.as_json:
            from sleuth.gate.model import clean_doc

            print_json(clean_doc(data))
        else:
            table()


def open_store(db: str | None, *, create: bool) -> Any:
    """The store ``--db`` names (default: ``$SLEUTH_GATE_DB`` or the SQLite file); ``create``
    (``record``): a history that does not exist yet is made by its first run, so a record that writes
    nothing leaves no empty database behind (:func:`sleuth.gate.store.open_to_record`)."""
    from sleuth.gate.store import default_url, open_to_record
    from sleuth.gate.store import open_store as _open_store

    url = db or default_url()
    return open_to_record(url) if create else _open_store(url, create=False)


def check_db(db: str | None, *, write: bool = False) -> None:
    """Parse ``--db`` early: a bad URL, or a path that cannot hold a history (``write``: one that
    ``record`` cannot write), is a usage error before anything is read or written."""
    from sleuth.gate.store import default_url, parse_url
    from sleuth.gate.store.paths import check_path

    check_path(parse_url(db or default_url()), write=write)


def statuses(include_failed: bool) -> Any:
    """``--successful-only`` / ``include_failed: false`` as a store filter (None: every status)."""
    from sleuth.gate.model import RunStatus

    return None if include_failed else [RunStatus.SUCCESS]


def selected_runs(kw: dict[str, Any], suite: str, *, include_failed: bool = True) -> Any:
    """The runs ``graduate`` and ``baseline capture`` read: each ``--metric`` selected metric's last
    ``--last`` runs (``--db``, ``--branch``), read back as far as each needs."""
    from sleuth.gate.graduate import selected
    from sleuth.gate.service import recent_runs

    check_db(kw["db"])
    store = open_store(kw["db"], create=False)
    try:
        return recent_runs(
            store,
            suite,
            lambda m: kw["last"] if selected(m, kw["metrics"]) else None,
            last=kw["last"],
            branch=branch_filter(kw["branch"]),
            statuses=statuses(include_failed),
        )
    finally:
        store.close()
