"""``sleuth bisect git|pypi|images|list ... -- CMD`` and ``sleuth bisect resume RUN_DIR``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sleuth.bisect.session import (
    bisect_start,
    create_run,
    describe_command,
    journal_flags,
    journal_of,
    place_tests,
    reopen,
    resolve_candidates,
    resumed,
    resumed_secrets,
)
from sleuth.cli._common import (
    OUTCOME_STYLE,
    console,
    err_console,
    escape,
    output_option,
    print_json,
    sigterm_as_interrupt,
)
from sleuth.cli._options import backend_options, oracle_options, workload_options
from sleuth.errors import ExitCode, Interrupted, UsageError

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
    return _start(ListSource(str(file.resolve()) if file.is_file() else str(file)), kw)


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
    return _start(src, kw, default_skip=(125,))


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
    from sleuth.bisect.packaged import PypiSource, read_constraints
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
    return _start(src, kw)


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
        return _finished(end["summary"], as_json)
    r = reopen(path, events, start, jobs=jobs, gpus=gpus)
    r.kw["as_json"] = as_json
    return _execute(r.source, r.kw, r.rd, replay=r.tests, labels=r.labels, default_skip=r.default_skip)


def _finished(summary: dict[str, Any], as_json: bool) -> int:
    """A finished run resumed: its answer again, nothing run or written (not even a journal event)."""
    from sleuth.bisect.report import exit_code

    if as_json:
        print_json(summary)
    else:
        where = escape(str(summary.get("run_dir", "")))
        err_console().print(f"[bold]sleuth bisect[/]: {where} is finished; nothing to resume", soft_wrap=True)
        _render(summary)
    code = int(exit_code(str(summary.get("status", ""))))
    if isinstance(summary.get("commits"), dict):  # bisect images --source: both stages count
        code = max(code, int(exit_code(str(summary["commits"].get("status")))))
    return code


def _start(source: Any, kw: dict[str, Any], default_skip: tuple[int, ...] = ()) -> int:
    from sleuth.cli._bisect_flags import check_program, spec_and_options

    kw.pop("default_skip", None)
    cmd = tuple(kw["cmd"])
    if not cmd:
        raise UsageError("no test command given", hint=f"put it after --, e.g. {_example(source)}")
    _, _, opts = spec_and_options(kw, default_skip)  # validate every flag before a run dir exists
    check_program(source, kw)
    from sleuth.backends.choice import make_backend

    backend = make_backend(opts.backend, max(1, opts.jobs), opts.gpus)  # so does a bad --backend-opt
    try:
        labels, rd = _prepare_run(source, kw, default_skip)
    except BaseException:  # a source that began work on resolving (a clone) undoes it
        backend.close()
        if hasattr(source, "close"):
            source.close()
        raise
    return _execute(source, kw, rd, labels=labels, default_skip=default_skip, backend=backend)


def _prepare_run(
    source: Any, kw: dict[str, Any], default_skip: tuple[int, ...]
) -> tuple[list[str] | None, Any]:
    """The candidates and the run dir, once every input checked out."""
    from sleuth.cli._bisect_flags import resolve_skip

    labels = resolve_candidates(source)  # so do the refs, the file, the versions
    implicit = place_tests(source, kw)
    kw["skip"] = list(resolve_skip(source, labels, tuple(kw.get("skip") or ())))
    return labels, create_run(source, kw, labels, default_skip, implicit_cwd=implicit)


def _example(source: Any) -> str:
    """A whole command line for the subcommand in use (the hint of a missing test command)."""
    cfg = source.config()
    kind = cfg["kind"]
    if kind == "list":
        return f"sleuth bisect list {cfg['path']} -- ./test.sh"
    if kind == "git":
        return f"sleuth bisect git --repo {cfg['repo']} --good {cfg['good']} --bad {cfg['bad']} -- ./test.sh"
    if kind == "multigit":
        return "sleuth bisect git --repo jax=../jax --repo xla=../xla --good ... --bad ... -- ./test.sh"
    if kind == "pypi":
        pkg = cfg["package"].partition("[")[0]
        return f"sleuth bisect pypi {pkg} -- python -c 'import {re.sub(r'[^A-Za-z0-9_]', '_', pkg)}'"
    return f"sleuth bisect images --template '{cfg['template']}' --end-date {cfg['end']} -- ./test.sh"


def _execute(source: Any, kw: dict[str, Any], rd: Any, *, replay: list[dict[str, Any]] | None = None,
             labels: list[str] | None = None, default_skip: tuple[int, ...] = (),
             backend: Any = None) -> int:  # fmt: skip
    """The bisection in ``rd``: a Ctrl-C (or SIGTERM) anywhere in it, from the first line printed to the
    report, stops the tests, journals ``interrupted`` and names the command that resumes the run.

    ``backend``: made before a new run's dir existed; a resume makes the one its start names.
    An interrupt during the tests also writes ``summary.json`` and ``report.md`` with status
    ``interrupted`` (:func:`sleuth.bisect.report.interrupted_summary`), once the tests are stopped."""
    # (driver, summary, the --json document or None): made before the source closes
    so_far: list[tuple[Any, dict[str, Any], dict[str, Any] | None]] = []
    try:
        with sigterm_as_interrupt():
            return _bisect(source, kw, rd, replay=replay, labels=labels, default_skip=default_skip,
                           backend=backend, so_far=so_far)  # fmt: skip
    except KeyboardInterrupt:
        import contextlib
        import signal

        from sleuth.runner import kill_all

        # a second Ctrl-C (people press it twice) would cut the stopping of the tests short
        stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in stops}
        try:
            kill_all()
            with contextlib.suppress(ValueError):  # closed: the run ended, resume prints its answer
                rd.journal.append("interrupted")
                if so_far:
                    _write_interrupted(*so_far[0][:2])
        finally:
            for sig, old in held.items():
                signal.signal(sig, old)
        if so_far and so_far[0][2] is not None:  # --json: stdout gets the document, as `run --json`'s does
            print_json(so_far[0][2])
        raise Interrupted(f"interrupted; resume with: sleuth bisect resume {rd.path}") from None


def _write_interrupted(driver: Any, summary: dict[str, Any]) -> None:
    """The interrupted summary's files; a failure to write them is said, the exit code stays 130."""
    from sleuth.bisect.report import write_interrupted

    try:
        _notes(write_interrupted(driver, summary))
    except OSError as exc:
        _notes([f"no summary.json written: {exc}"])


def _notes(notes: list[str]) -> None:
    for text in notes:
        err_console().print(f"note: {escape(text)}", soft_wrap=True, highlight=False)


def _bisect(source: Any, kw: dict[str, Any], rd: Any, *, replay: list[dict[str, Any]] | None,
            labels: list[str] | None, default_skip: tuple[int, ...], backend: Any,
            so_far: list[tuple[Any, dict[str, Any], dict[str, Any] | None]]) -> int:  # fmt: skip
    from sleuth.bisect.driver import Driver
    from sleuth.bisect.secrecy import hidden, hidden_labels, public, scrubbed
    from sleuth.cli._bisect_flags import spec_and_options

    if replay is not None:
        source = resumed_secrets(source, kw, rd)
    flags = journal_flags(kw)
    secrets, originals, _ = hidden(flags, source.config())
    # a new run's labels were scanned when its run dir was made (hidden then if they hold a secret)
    hide = bool(hidden_labels(labels)) if replay is not None else rd.scrub is not None
    rd = scrubbed(rd, secrets, bool(originals) or hide)
    spec, oracle, opts = spec_and_options(kw, default_skip)
    quiet = kw.get("as_json", False)

    def header(con: Any) -> None:
        on = "" if opts.backend.is_local else f" on {escape(public(opts.backend.describe(), secrets))}"
        con.print(f"[bold]sleuth bisect {source.kind}[/]{on} -> {escape(str(rd.path))}", soft_wrap=True)
        for step in getattr(source, "stepped", None) or []:
            why = escape(public(step["reason"], secrets))
            con.print(f"note: {escape(step['version'])} does not install, the older end moves on: {why}",
                      soft_wrap=True, highlight=False)  # fmt: skip

    from sleuth.cli._bisect_log import HeldConsole, debug_log

    out = None if quiet else HeldConsole(header)
    metric = opts.perf.name if opts.perf is not None else None

    debug = debug_log(rd.path, lambda x: public(x, secrets))
    record = debug.__enter__()  # sleuth.log: the whole of every test line, sleuth's debug messages
    for note in getattr(source, "notes", None) or []:  # images: the ends stepped to existing tags
        record(f"note: {note}")

    def show(ev: Any) -> None:
        counted = f"(counted {ev.counted.value})" + (" (replayed)" if ev.replayed else "")
        record(public(f"test {ev.seq} {ev.phase} {ev.label} {ev.outcome.name} {counted} "
                      f"{ev.trial_dir}: {ev.signature or ev.reason or ''}", secrets))  # fmt: skip
        if out is not None:
            con = out()
            width = con.width if con.is_terminal else None
            line = _test_line(ev, public(ev.signature or ev.reason or "", secrets), metric, width,
                              label=public(ev.label, secrets))  # fmt: skip
            con.print(line, markup=True, highlight=False, soft_wrap=True)

    driver = None
    try:
        driver = Driver(source, spec, oracle, rd, opts, replay=replay, on_test=show, labels=labels,
                        backend=backend)  # fmt: skip
        if out is not None:
            driver.on_stage = lambda text: out().print(f"[bold]{escape(text)}[/]", soft_wrap=True,
                                                       highlight=False)  # fmt: skip
        driver.on_first_wait = lambda: _while_the_first_tests_run(out)
        result, _ = driver.run()
    except KeyboardInterrupt:
        if driver is not None:  # what is known so far, while the source can still name commits
            from sleuth.bisect.report import interrupted_summary

            try:
                summary = interrupted_summary(driver)
                summary = _told(summary, driver, kw, source, secrets=secrets, replay=replay)
                so_far.append((driver, summary, public(summary, secrets) if quiet else None))
            except Exception as exc:  # whatever the summary met, an interrupt stays one (exit 130)
                _notes([f"no summary.json written: {exc}"])
        raise
    finally:
        if out is not None:
            out()  # the header, when no test made the console (an error, an interrupt before the first)
        if hasattr(source, "close"):
            source.close()
        debug.__exit__(None, None, None)
    from sleuth.bisect.report import exit_code, summarize, write_outputs  # after the tests: start-up

    summary = _told(summarize(driver, result), driver, kw, source, secrets=secrets, replay=replay)
    code = int(exit_code(summary["status"]))
    if hasattr(source, "summary_extra"):  # image-commits: images, sources, build times
        summary.update(source.summary_extra(driver))
    if driver.chain is not None:  # bisect images --source: the commits stage (in commits/)
        summary["commits"] = driver.chain
        code = max(code, int(exit_code(str(driver.chain.get("status")))))
    _notes(write_outputs(driver, summary))
    rd.close()
    summary = public(summary, secrets)
    if quiet:
        print_json(summary)
    else:
        _render(summary)
    return code


def _told(summary: dict[str, Any], driver: Any, kw: dict[str, Any], source: Any, *, secrets: Any,
          replay: list[dict[str, Any]] | None) -> dict[str, Any]:  # fmt: skip
    """``summary`` with the command tested and, on a resume, what was replayed."""
    from sleuth.bisect.secrecy import public

    summary["command"] = public(describe_command(kw, source), secrets)
    if replay is not None:
        summary["resumed"] = resumed(replay, driver.events)
    return summary


def _while_the_first_tests_run(out: Any) -> None:
    """Load what the rest of a bisection needs while its first tests run, not before them: the
    console (with the header), the failures' signatures and the summary (issue 9's start-up)."""
    if out is not None:
        out()
    import sleuth.bisect.report
    import sleuth.signature  # noqa: F401 - its rules are compiled when it is imported


def _test_line(ev: Any, note: str, metric: str | None, width: int | None, *, label: str) -> str:
    """One line per test: whole in a log (greppable), fitted to ``width`` on a terminal; ``label`` is
    the candidate's, its secrets hidden."""
    note = " ".join(note.split())  # a multi-line reason stays on the test's line
    if ev.value is not None:
        note = f"{metric or 'value'}={ev.value:g}" + (f"; {note}" if note else "")
    if width is not None:  # a terminal: labels up to 48 columns, the note takes what is left
        label = label if len(label) <= 48 else label[:47] + "…"
        room = max(20, width - 4 - 1 - 16 - 1 - max(len(label), 24) - 1 - 6 - 2 - 11 * ev.replayed)
        note = note if len(note) <= room else note[: room - 1] + "…"
    counted = "" if ev.counted is ev.outcome else f" (counted {ev.counted.value})"
    if ev.replayed:  # a resume's history, shown before the tests it runs
        counted += " [dim](replayed)[/]"
    outcome = f"[{OUTCOME_STYLE[ev.outcome]}]{ev.outcome.name}[/]"
    if metric is not None and ev.value is not None and ev.outcome.name == "PASS":
        outcome = "[cyan]SAMPLE[/]"  # performance mode: the metric, not the exit code, decides
    tail = f" [dim]{escape(note)}[/]" if note else ""  # no trailing blank after a bare outcome
    return f"{ev.seq:>4} {ev.phase:<16} {escape(label):<24} {outcome}{counted}{tail}"


def _render(s: dict[str, Any]) -> None:
    _render_answer(s)
    if "commits" in s or "builds" in s:  # the commits stage of images --source, or image-commits
        from sleuth.cli._chain_view import render_commits

        render_commits(console(), s.get("commits") or s, stage="commits" in s)


def _render_answer(s: dict[str, Any]) -> None:
    con = console()
    fix = bool(s.get("find_fix"))
    first, last = ("first fixed", "last failing") if fix else ("first bad", "last good")
    if s["status"] == "found":
        con.print(f"[bold green]{first}[/] {escape(s['first_bad']['label'])}  "
                  f"({last} {escape(s['last_good']['label'])})", soft_wrap=True)  # fmt: skip
        if s["first_bad"].get("title"):
            con.print(f"  {escape(s['first_bad']['title'])}", soft_wrap=True, highlight=False)
        if s.get("culprit_repo"):  # several repositories: a SHA alone does not say which one
            refs = ", ".join(f"{k}={v[:12]}" for k, v in (s.get("components") or {}).items())
            where = f"  in repository {s['culprit_repo']}; the first bad combination: {refs}"
            con.print(escape(where), soft_wrap=True, highlight=False)
        between = s.get("commits_between") or []
        if len(between) > 1:
            con.print(f"  {len(between)} commits between them (see the report)", soft_wrap=True)
        if s.get("release_notes"):
            con.print(
                f"  what it changed: {escape(' '.join(s['release_notes']))}", soft_wrap=True, highlight=False
            )
        changed = s.get("packages_changed") or []
        if changed:  # the answer's venvs differ in more than the package bisected
            shown = ", ".join(
                f"{c['name']} {c['last_good'] or '-'} -> {c['first_bad'] or '-'}" for c in changed[:3]
            )
            more = f" and {len(changed) - 3} more (see the report)" if len(changed) > 3 else ""
            con.print(f"  also changed between them: {escape(shown)}{more}", soft_wrap=True, highlight=False)
    elif s["suspects"]:
        from sleuth.bisect.report import name_suspects

        one_of = escape(name_suspects(s["suspects"]))
        if s["status"] == "inconclusive":  # below --confidence: a guess, not an answer
            guess = one_of if len(s["suspects"]) == 1 else f"one of {one_of}"
            con.print(f"[bold yellow]inconclusive[/]: not settled; the best guess for the {first}: {guess}",
                      soft_wrap=True)  # fmt: skip
        else:
            con.print(f"[bold yellow]{s['status']}[/]: the {first} is one of: {one_of}", soft_wrap=True)
    else:
        con.print(f"[bold yellow]{s['status']}[/]")
    if s["note"]:
        con.print(f"note: {escape(s['note'])}", soft_wrap=True)
    conf = "no answer, so no confidence" if s["confidence"] is None else f"confidence {s['confidence']:.3f}"
    con.print(f"{s['tests']} tests over {s['candidates']} candidates, {conf}; "
              f"report: {escape(s['run_dir'])}/report.md", soft_wrap=True)  # fmt: skip
    if s.get("resumed"):
        got = s["resumed"]
        again = f", {got['retried']} run again in place of an ERROR" if got["retried"] else ""
        con.print(f"resumed: {got['replayed']} test(s) replayed from the journal{again}", soft_wrap=True)
    _ = ExitCode


# the images and image-commits subcommands live beside this module (they register on ``command``)
from sleuth.cli import _bisect_images  # noqa: E402, F401
