"""``sleuth bisect git|pypi|images|list ... -- CMD`` and ``sleuth bisect resume RUN_DIR``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sleuth.bisect.session import bisect_start, journal_of, reopen
from sleuth.cli._bisect_render import finished
from sleuth.cli._bisect_run import execute, start
from sleuth.cli._common import err_console, escape, output_option
from sleuth.cli._options import backend_options, oracle_options, workload_options
from sleuth.errors import UsageError

__all__ = ["command"]

_CTX: dict[str, Any] = {}


class _Folder(click.ParamType):  # type: ignore[type-arg]
    """A folder path without a NUL byte (an empty one is refused by ``output_option``'s callback,
    naming where it came from: ``--output ''`` or an empty ``$SLEUTH_OUTPUT``)."""

    name = "directory"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Path):
            return value
        text = str(value)
        if "\0" in text:
            self.fail(f"{text!r} is not a folder; give one such as ./sleuth-runs", param, ctx)
        return text  # a str: Path('') would be '.', and the callback must still see it empty


def _output_option(func: Callable[..., Any]) -> Callable[..., Any]:
    func = output_option(func)
    getattr(func, "__click_params__")[-1].type = _Folder()  # noqa: B009 - click's own attribute
    return func


def _search_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for deco in reversed(
        [
            click.option(
                "--jobs",
                "-j",
                type=int,
                default=None,
                help="Tests run at once (default 1, or one per --gpus device).",
            ),
            click.option(
                "--gpus", metavar="IDS", help="Comma-separated devices; each running test gets its own."
            ),
            backend_options,
            click.option(
                "--flaky",
                default="auto",
                show_default=True,
                metavar="auto|off|P",
                help="auto: rerun the bad end and switch to the Bayesian search if it ever passes; "
                "off: one run per candidate; P: bad candidates fail with probability P.",
            ),
            click.option(
                "--confidence", type=float, default=0.95, show_default=True, help="Flaky search stop."
            ),
            click.option("--any-failure", is_flag=True, help="Count a FAIL with another signature as bad."),
            click.option("--skip-precondition-checks", is_flag=True, help="Do not test the two ends first."),
            click.option("--max-tests", type=int, default=None, help="At most N tests, end checks included."),
            click.option(
                "--skip",
                "skip",
                multiple=True,
                metavar="REV",
                help="A candidate known to be untestable (a commit, release, date or line): never "
                "tested, counted as a skip. Repeatable.",
            ),
            click.option(
                "--find-fix",
                is_flag=True,
                help="Search for the first candidate where the failure goes away: the failing --bad end "
                "is the older one (the first line of a list fails, the last passes).",
            ),
            click.option(
                "--direction",
                type=click.Choice(["lower", "higher"]),
                default=None,
                help="Performance mode (--metric NAME): which way is better [default: lower].",
            ),
            click.option(
                "--threshold",
                type=float,
                default=None,
                metavar="PCT",
                help="Performance mode: regression = worse than the good end by > PCT % [default: 5].",
            ),
            click.option("--name", help="Run name (default: the source kind)."),
            _output_option,
            click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON document."),
            oracle_options,
            workload_options,
        ]
    ):
        func = deco(func)  # type: ignore[operator]
    return func


def _cmd_arg(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("cmd", nargs=-1, type=click.UNPROCESSED)(func)


@click.group(name="bisect")
def command() -> None:
    """Find the first bad commit, release, image or list entry.

    Exit codes: 0 found, 3 ambiguous / inconclusive / not found, 2 usage, 4 infrastructure.
    """


@command.command(name="list", context_settings=_CTX)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@_search_options
@_cmd_arg
def list_cmd(file: Path, **kw: Any) -> int:
    """Bisect the lines of FILE (oldest first; a pipe, or - for stdin); the line is in $SLEUTH_CANDIDATE."""
    from sleuth.bisect.candidates import ListSource

    if str(file) != "-" and not (file.exists() or file.is_symlink()):
        raise UsageError(f"sleuth bisect list {file}: no such file")
    return start(ListSource(str(file.resolve()) if file.is_file() else str(file)), kw)


@command.command(name="git", context_settings=_CTX)
@click.option(
    "--repo",
    "repos",
    multiple=True,
    required=True,
    metavar="[NAME=]PATH",
    help="The repository (only read: checkouts live in the cache); NAME=PATH repeated for "
    "co-varying repositories.",
)
@click.option(
    "--good", "goods", multiple=True, required=True, metavar="[NAME=]REF", help="A commit that passes."
)
@click.option(
    "--bad",
    "bads",
    multiple=True,
    required=True,
    metavar="[NAME=]REF",
    help="A later commit that fails (an older one with --find-fix).",
)
@click.option("--build", metavar="CMD", help="Shell command run in each checkout first; failure = SKIP.")
@click.option("--first-parent", is_flag=True, help="Follow only the first parent of merges.")
@click.option(
    "--path",
    "paths",
    multiple=True,
    metavar="PATH",
    help="Consider only commits that change PATH (like git bisect start -- PATH). Repeatable.",
)
@_search_options
@_cmd_arg
def git_cmd(repos: tuple[str, ...], goods: tuple[str, ...], bads: tuple[str, ...], *, build: str | None,
            first_parent: bool, paths: tuple[str, ...], **kw: Any) -> int:  # fmt: skip
    """Bisect commits GOOD..BAD; the test runs in a checkout of each commit (exit 125 = skip).

    Each checkout is made in the cache (a clone that borrows the repository's objects), never in
    the repository itself.  Several repositories: --repo NAME=PATH --good NAME=REF --bad NAME=REF
    for each; candidates follow the first one, the others aligned by commit time; each checkout is
    in $SLEUTH_REPO_<NAME>.
    """
    from sleuth.cli._bisect_flags import git_source

    src = git_source(repos, goods, bads, build=build, first_parent=first_parent, paths=paths,
                     find_fix=kw["find_fix"], skip=kw["skip"])  # fmt: skip
    for note in src.notes:
        err_console().print(f"note: {escape(note)}", soft_wrap=True, highlight=False)
    return start(src, kw, default_skip=(125,))


@command.command(name="pypi", context_settings=_CTX)
@click.argument("package")
@click.option("--good", metavar="VER", help="A release that passes (default: the oldest that installs).")
@click.option("--bad", metavar="VER", help="A later release that fails (default: the newest).")
@click.option("--python", metavar="X.Y|PATH", help="Interpreter of the venvs (default: this one).")
@click.option("--with", "pins", multiple=True, metavar="REQ", help="Extra requirement in every venv.")
@click.option(
    "--constraint",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Resolve every venv within these requirements (e.g. pip freeze of the environment that "
    "worked; lines naming PACKAGE are left out).",
)
@click.option("--pre", is_flag=True, help="Include pre-releases.")
@click.option(
    "--index-url",
    metavar="URL",
    help="The package index (default: $UV_DEFAULT_INDEX, $UV_INDEX_URL, $PIP_INDEX_URL, uv.toml's, "
    "else PyPI).",
)
@click.option(
    "--extra-index-url",
    "extra_index_urls",
    multiple=True,
    metavar="URL",
    help="Another index, listed and installed from before --index-url, as uv does (repeatable; "
    "default: $UV_INDEX, $UV_EXTRA_INDEX_URL, else $PIP_EXTRA_INDEX_URL; uv.toml's indexes follow).",
)
@_search_options
@_cmd_arg
def pypi_cmd(package: str, *, good: str | None, bad: str | None, python: str | None, pins: tuple[str, ...],
             constraint: Path | None, pre: bool, index_url: str | None, extra_index_urls: tuple[str, ...],
             **kw: Any) -> int:  # fmt: skip
    """Bisect the released versions of PACKAGE, each in a cached uv venv ($SLEUTH_CANDIDATE=VER).

    PACKAGE may name extras (transformers[torch]); each venv installs PACKAGE==VER.
    """
    from sleuth.bisect.packaged import PypiSource
    from sleuth.bisect.pypifiles import read_constraints
    from sleuth.bisect.uvconfig import pypi_indexes

    name = r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?"
    if len(package) > 200 or not re.fullmatch(rf"{name}(\[\s*{name}(\s*,\s*{name})*\s*\])?", package):
        raise UsageError(f"sleuth bisect pypi {package[:60]!r}: not a package name",
                         hint="e.g. numpy, or transformers[torch] with extras")  # fmt: skip

    def note(text: str) -> None:
        err_console().print(escape(text), soft_wrap=True, highlight=False)

    ix = pypi_indexes(index_url, extra_index_urls, Path.cwd())
    for text in ix.notes:
        note(text)
    held: list[str] = []
    if constraint is not None:
        held, dropped = read_constraints(constraint, package)
        if dropped:
            note(f"note: --constraint {constraint}: left out {', '.join(dropped)} (the package bisected)")
    src = PypiSource(package, good, bad, python=python, pins=pins, constraints=tuple(held), pre=pre,
                     index_url=ix.index, extra_index_urls=ix.extras, fixed_extras=ix.fixed,
                     origins=dict(ix.origins), pypi_over_config=ix.pypi_over_config,
                     find_fix=kw["find_fix"])  # fmt: skip
    return start(src, kw)


@command.command(name="resume")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--jobs", "-j", type=int, default=None, help="Tests run at once (default: as the run started).")
@click.option("--gpus", metavar="IDS", help="Comma-separated devices (default: as the run started).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON document.")
def resume_cmd(run_dir: Path, jobs: int | None, gpus: str | None, as_json: bool) -> int:
    """Continue an interrupted bisection: journaled tests are replayed, never re-run (an ERROR is).

    The remaining tests may run with other --jobs/--gpus (a different machine); the answer does not
    depend on them for a deterministic test.  A finished run is not touched: its answer is printed
    again with its exit code.
    """
    from sleuth.cli._options import check_jobs, parse_backend, parse_gpus

    ids = parse_gpus(gpus)
    path = run_dir.resolve()
    events = journal_of(path)  # read before anything is written: a wrong dir stays as it was
    start = bisect_start(path, events)
    if jobs is not None or gpus is not None:  # bad flags fail before the run dir is touched, checked
        recorded = parse_backend(start["flags"].get("backend"), ())  # against the run's backend
        check_jobs(jobs if jobs is not None else max(1, len(ids)), gpus, recorded)
    end = next((e for e in reversed(events) if e["event"] == "end"), None)
    if end is not None and isinstance(end.get("summary"), dict):
        return finished(end["summary"], as_json)
    r = reopen(path, events, start, jobs=jobs, gpus=gpus)
    r.kw["as_json"] = as_json
    return execute(r.source, r.kw, r.rd, replay=r.tests, labels=r.labels, default_skip=r.default_skip)


# the images and image-commits subcommands live beside this module (they register on ``command``)
from sleuth.cli import _bisect_images  # noqa: E402, F401
