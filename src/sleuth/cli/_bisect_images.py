"""``sleuth bisect images`` and ``sleuth bisect image-commits``: dated images, and the commits
of the sources inside them (registered on the ``bisect`` group by :mod:`sleuth.cli.bisect`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from sleuth.cli._bisect_run import start
from sleuth.cli._common import err_console, escape
from sleuth.cli.bisect import _CTX, _cmd_arg, _search_options, command

__all__ = ["image_commits_cmd", "images_cmd"]


def _image_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The container flags of ``images`` and ``image-commits``."""
    for deco in reversed(
        [
            click.option(
                "--runtime",
                type=click.Choice(["docker", "podman", "pyxis"]),
                default="docker",
                show_default=True,
            ),
            click.option(
                "--mount", "mounts", multiple=True, metavar="SRC:DST[:ro]", help="Bind mount. Repeatable."
            ),
        ]
    ):
        func = deco(func)
    return func


def _chain_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The commits stage's flags (``images --source`` and ``image-commits``)."""
    for deco in reversed(
        [
            click.option(
                "--source",
                "sources",
                multiple=True,
                metavar="NAME=PATH",
                help="A git repository inside the images (e.g. jax=/opt/jax-source): its commits "
                "are bisected inside the failing image (images: the first bad date's). Repeatable.",
            ),
            click.option(
                "--build",
                metavar="CMD",
                help="Shell command run in the container before each "
                "test of the commits stage; failure = SKIP.",
            ),
            click.option(
                "--cache-mount",
                metavar="HOST:CONTAINER",
                help="A persistent build cache mounted into every build (e.g. a Bazel disk cache).",
            ),
        ]
    ):
        func = deco(func)
    return func


@command.command(name="images", context_settings=_CTX)
@click.option(
    "--template", required=True, help="Image name with {date}, e.g. 'ghcr.io/x/jax:nightly-{date}'."
)
@click.option(
    "--end-date",
    metavar="YYYY-MM-DD",
    help="A date whose image fails (passes with --find-fix; default: the newest tag).",
)
@click.option(
    "--start-date",
    metavar="YYYY-MM-DD",
    help="A date whose image passes (fails with --find-fix; default: search back).",
)
@_image_options
@click.option("--date-format", default="%Y-%m-%d", show_default=True, help="strftime format of {date}.")
@click.option(
    "--threshold-days",
    type=int,
    default=1,
    show_default=True,
    metavar="N",
    help="End the date search once last good and first bad are at most N days apart.",
)
@click.option(
    "--step-back",
    is_flag=True,
    help="When --start-date fails, step back (1, 2, 4 ... days) until an image passes.",
)
@click.option(
    "--no-tag-listing",
    is_flag=True,
    help="Do not list the repository's tags: try every day (a missing tag is a skip).",
)
@_chain_options
@_search_options
@_cmd_arg
def images_cmd(
    *,
    template: str,
    end_date: str | None,
    start_date: str | None,
    runtime: str,
    mounts: tuple[str, ...],
    date_format: str,
    threshold_days: int,
    step_back: bool,
    no_tag_listing: bool,
    sources: tuple[str, ...],
    build: str | None,
    cache_mount: str | None,
    **kw: Any,
) -> int:
    """Bisect dated images; the command runs inside each (its output dir at /sleuth-output).

    With the repository's tags listed, only existing dates are tried and the ends step to the
    nearest existing date.  --source NAME=PATH continues with the commits of those repositories
    inside the first bad image (see image-commits).  Exit 125 = skip.
    """
    from sleuth.cli._bisect_flags import image_source

    src = image_source(
        kw,
        template=template,
        end_date=end_date,
        start_date=start_date,
        runtime=runtime,
        mounts=mounts,
        date_format=date_format,
        threshold_days=threshold_days,
        step_back=step_back,
        list_tags=not no_tag_listing,
        sources=sources,
        build=build,
        cache_mount=cache_mount,
    )
    if src.start:
        src.resolve()  # a bad date is named before the run dir exists
    for note in src.notes:
        err_console().print(f"note: {escape(note)}", soft_wrap=True, highlight=False)
    return start(src, kw, default_skip=(125,))


@command.command(name="image-commits", context_settings=_CTX)
@click.option("--passing", required=True, metavar="IMAGE", help="An image whose test passes.")
@click.option(
    "--failing", required=True, metavar="IMAGE", help="An image whose test fails (the test runs in it)."
)
@_image_options
@_chain_options
@_search_options
@_cmd_arg
def image_commits_cmd(
    *,
    passing: str,
    failing: str,
    runtime: str,
    mounts: tuple[str, ...],
    sources: tuple[str, ...],
    build: str | None,
    cache_mount: str | None,
    **kw: Any,
) -> int:
    """Bisect the commits of git repositories baked into two images, inside the failing one.

    Each --source NAME=PATH is a repository inside the images; the failing image must hold the
    passing one's commit.  Every test checks the candidate commits out over PATH, runs --build
    (failure = skip) and the command in the failing image.  The answer blames one source's commit
    and gives the others' reference commits.  Exit 125 = skip.
    """
    from sleuth.cli._bisect_flags import chain_source

    src = chain_source(
        kw,
        passing=passing,
        failing=failing,
        sources=sources,
        runtime=runtime,
        mounts=mounts,
        build=build,
        cache_mount=cache_mount,
    )
    return start(src, kw, default_skip=(125,))
