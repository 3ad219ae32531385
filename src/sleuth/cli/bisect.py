"""``sleuth bisect git|pypi|images|list ... -- CMD`` and ``sleuth bisect resume RUN_DIR``."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from sleuth.cli._common import OUTCOME_STYLE, console, err_console, output_option, print_json
from sleuth.cli._options import oracle_options, workload_options
from sleuth.errors import ExitCode, Interrupted, UsageError

__all__ = ["command"]

_CTX: dict[str, Any] = {}


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
            click.option("--max-tests", type=int, default=None, help="Test budget of the flaky search."),
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
                help="Performance mode: regression = worse than the good end by > PCT %% [default: 5].",
            ),
            click.option("--name", help="Run name (default: the source kind)."),
            output_option,
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
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_search_options
@_cmd_arg
def list_cmd(file: Path, **kw: Any) -> int:
    """Bisect the lines of FILE (oldest first); the line is in $SLEUTH_CANDIDATE."""
    from sleuth.bisect.candidates import ListSource

    if not file.is_file():
        raise UsageError(f"sleuth bisect list {file}: no such file")
    return _start(ListSource(str(file.resolve())), kw)


@command.command(name="git", context_settings=_CTX)
@click.option(
    "--repo",
    "repos",
    multiple=True,
    required=True,
    metavar="[NAME=]PATH",
    help="The repository (never touched); NAME=PATH repeated for co-varying repositories.",
)
@click.option(
    "--good", "goods", multiple=True, required=True, metavar="[NAME=]REF", help="A commit that passes."
)
@click.option(
    "--bad", "bads", multiple=True, required=True, metavar="[NAME=]REF", help="A later commit that fails."
)
@click.option("--build", metavar="CMD", help="Shell command run in each checkout first; failure = SKIP.")
@click.option("--first-parent", is_flag=True, help="Follow only the first parent of merges.")
@_search_options
@_cmd_arg
def git_cmd(repos: tuple[str, ...], goods: tuple[str, ...], bads: tuple[str, ...], build: str | None,
            first_parent: bool, **kw: Any) -> int:  # fmt: skip
    """Bisect commits GOOD..BAD; the test runs in a worktree of each commit (exit 125 = skip).

    Several repositories: --repo NAME=PATH --good NAME=REF --bad NAME=REF for each; candidates follow
    the first one, the others aligned by commit time; each checkout is in $SLEUTH_REPO_<NAME>.
    """
    from sleuth.cli._bisect_flags import git_source

    src = git_source(repos, goods, bads, build=build, first_parent=first_parent)
    return _start(src, kw, default_skip=(125,))


@command.command(name="pypi", context_settings=_CTX)
@click.argument("package")
@click.option("--good", metavar="VER", help="A release that passes (default: the oldest).")
@click.option("--bad", metavar="VER", help="A later release that fails (default: the newest).")
@click.option("--python", metavar="X.Y", help="Interpreter of the venvs (default: this one).")
@click.option("--with", "pins", multiple=True, metavar="REQ", help="Extra requirement in every venv.")
@click.option("--pre", is_flag=True, help="Include pre-releases.")
@_search_options
@_cmd_arg
def pypi_cmd(package: str, *, good: str | None, bad: str | None, python: str | None, pins: tuple[str, ...],
             pre: bool, **kw: Any) -> int:  # fmt: skip
    """Bisect the released versions of PACKAGE, each in a cached uv venv ($SLEUTH_CANDIDATE=VER)."""
    from sleuth.bisect.packaged import PypiSource

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", package):
        raise UsageError(f"sleuth bisect pypi {package!r}: not a package name")
    return _start(PypiSource(package, good, bad, python=python, pins=pins, pre=pre), kw)


@command.command(name="images", context_settings=_CTX)
@click.option(
    "--template", required=True, help="Image name with {date}, e.g. 'ghcr.io/x/jax:nightly-{date}'."
)
@click.option("--end-date", required=True, metavar="YYYY-MM-DD", help="A date whose image fails.")
@click.option("--start-date", metavar="YYYY-MM-DD", help="A date whose image passes (default: search back).")
@click.option(
    "--runtime", type=click.Choice(["docker", "podman", "pyxis"]), default="docker", show_default=True
)
@click.option("--mount", "mounts", multiple=True, metavar="SRC:DST", help="Bind mount. Repeatable.")
@click.option("--date-format", default="%Y-%m-%d", show_default=True, help="strftime format of {date}.")
@_search_options
@_cmd_arg
def images_cmd(*, template: str, end_date: str, start_date: str | None, runtime: str, mounts: tuple[str, ...],
               date_format: str, **kw: Any) -> int:  # fmt: skip
    """Bisect dated images; the command runs inside each (output dir at /sleuth-output)."""
    from sleuth.bisect.candidates import parse_date
    from sleuth.bisect.packaged import ImageSource
    from sleuth.environments.container import Mount

    parse_date(end_date, "--end-date")
    if start_date:
        parse_date(start_date, "--start-date")
    for m in mounts:
        Mount.parse(m)
    if not start_date and any("=" not in m for m in kw["metric"]):
        raise UsageError("--metric NAME (performance mode) needs --start-date with sleuth bisect images")
    src = ImageSource(
        template, start_date or "", end_date, runtime=runtime, mounts=mounts, date_format=date_format
    )
    return _start(src, kw)


@command.command(name="resume")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--jobs", "-j", type=int, default=None, help="Tests run at once (default: as the run started).")
@click.option("--gpus", metavar="IDS", help="Comma-separated devices (default: as the run started).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON document.")
def resume_cmd(run_dir: Path, jobs: int | None, gpus: str | None, as_json: bool) -> int:
    """Continue an interrupted bisection: journaled tests are replayed, never re-run.

    The remaining tests may run with other --jobs/--gpus (a different machine); the answer does not
    depend on them for a deterministic test.  A finished run is not touched: its answer is printed
    again with its exit code.
    """
    from sleuth.backends.local import check_slots
    from sleuth.bisect.candidates import source_from_config
    from sleuth.cli._options import parse_gpus
    from sleuth.journal import RunDir
    from sleuth.runner import reap_orphans

    if jobs is not None or gpus is not None:  # bad flags fail before the run dir is touched
        ids = parse_gpus(gpus)
        check_slots(jobs if jobs is not None else max(1, len(ids)), ids)
    path = run_dir.resolve()
    events = _journal_of(path)  # read before anything is written: a wrong dir stays as it was
    start = _bisect_start(path, events)
    end = next((e for e in reversed(events) if e["event"] == "end"), None)
    if end is not None and isinstance(end.get("summary"), dict):
        return _finished(end["summary"], as_json)
    rd = RunDir.open(path)
    reaped = reap_orphans(rd.path)  # tests a killed sleuth left running would run twice
    if reaped:
        rd.journal.append("reaped", process_groups=reaped)
    labels = next((e["labels"] for e in events if e["event"] == "candidates"), None)
    tests = [e for e in events if e["event"] == "test"]
    kw = _restore_env(path, start, dict(start["flags"]))
    kw["as_json"] = as_json
    if gpus is not None:
        kw["gpus"] = gpus
        kw["jobs"] = None  # one per device unless --jobs says otherwise
    if jobs is not None:
        kw["jobs"] = jobs
    rd.journal.append("resume", replayed=len(tests))
    return _execute(source_from_config(start["source"]), kw, rd, replay=tests, labels=labels,
                    default_skip=tuple(start.get("default_skip", ())))  # fmt: skip


def _journal_of(path: Path) -> list[dict[str, Any]]:
    """The events of ``path/journal.jsonl``, read without creating anything."""
    from sleuth.journal import read_journal

    journal = path / "journal.jsonl"
    if not journal.is_file():
        raise UsageError(
            f"{path}: not a sleuth run dir (no journal.jsonl)", hint="pass the run dir printed by the run"
        )
    try:
        return read_journal(journal)
    except UnicodeDecodeError:
        raise UsageError(f"{journal}: not UTF-8 text, so not a sleuth journal") from None


def _bisect_start(path: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``start`` event of a bisection, or a usage error naming the verb that resumes this dir."""
    start = next((e for e in events if e["event"] == "start"), None)
    if start is None:
        raise UsageError(f"{path}: no start event in the journal", hint="is this a sleuth bisect run dir?")
    if "flags" in start and "source" in start:
        return start
    if start.get("verb") == "matrix":
        raise UsageError(f"{path}: a sleuth matrix run dir; resume it with: sleuth matrix resume {path}")
    if "config" in start:
        raise UsageError(f"{path}: a sleuth run run dir; resume it with: sleuth run --resume {path}")
    raise UsageError(f"{path}: not a sleuth bisect run dir (its start event has no flags)")


def _restore_env(path: Path, start: dict[str, Any], kw: dict[str, Any]) -> dict[str, Any]:
    """``--env`` values journaled as redacted, put back from ``secrets.json`` (or the caller's shell)."""
    names = start.get("redacted_env") or kw.pop("redacted_env", None)
    if not names:
        return kw
    from sleuth.secrets import Secrets

    secret = Secrets.load(path, list(names))
    pairs = [str(x).partition("=") for x in kw.get("env") or ()]
    restored = secret.restore_env({k: v for k, _, v in pairs})
    kw["env"] = [f"{k}={v}" for k, v in restored.items()]
    return kw


def _finished(summary: dict[str, Any], as_json: bool) -> int:
    """A finished run resumed: its answer again, nothing run or written (not even a journal event)."""
    from sleuth.bisect.report import exit_code

    if as_json:
        print_json(summary)
    else:
        where = escape(str(summary.get("run_dir", "")))
        err_console().print(f"[bold]sleuth bisect[/]: {where} is finished; nothing to resume", soft_wrap=True)
        _render(summary)
    return int(exit_code(str(summary.get("status", ""))))


def _start(source: Any, kw: dict[str, Any], default_skip: tuple[int, ...] = ()) -> int:
    from sleuth.cli._bisect_flags import spec_and_options
    from sleuth.journal import RunDir

    kw.pop("default_skip", None)
    cmd = tuple(kw["cmd"])
    if not cmd:
        raise UsageError(
            "no test command given", hint="put it after --, e.g. sleuth bisect list L -- ./test.sh"
        )
    spec_and_options(kw, default_skip)  # validate every flag before a run dir exists
    labels = _candidates(source)  # so do the refs, the file, the versions
    name = kw["name"] or source.kind
    rd = RunDir.create(Path(kw["output"]).resolve(), "bisect", name)  # summary.json: an absolute run_dir
    flags = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items() if k != "as_json"}
    flags["output"] = str(kw["output"])
    rd.journal.append("start", source=source.config(), flags=flags, default_skip=list(default_skip))
    if labels is not None:
        rd.journal.append("candidates", labels=labels, source=source.config())
    return _execute(source, kw, rd, labels=labels, default_skip=default_skip)


def _candidates(source: Any) -> list[str] | None:
    """The candidates, resolved before the run dir exists: a bad ref or file is a usage error.

    None for images without ``--start-date`` (the range is only known after the gallop).
    """
    if source.kind == "images" and not source.start:
        return None
    labels: list[str] = source.resolve()
    if len(labels) < 2:
        cfg = source.config()
        if cfg["kind"] == "list":
            why, hint = (
                f"sleuth bisect list {cfg['path']}: {len(labels)} line(s)",
                "list one candidate per line, oldest first",
            )
        elif cfg["kind"] == "git":
            why, hint = (
                f"--good {cfg['good']} and --bad {cfg['bad']} are the same commit",
                "give a --good older than --bad",
            )
        elif cfg["kind"] == "multigit":
            first = cfg["repos"][0]
            ref = f"{first['name']}={first['good']} and --bad {first['name']}={first['bad']}"
            why = f"--good {ref} are the same commit"
            hint = "give first the --repo that changed"
        else:
            why, hint = f"{len(labels)} candidate(s)", "widen the range"
        raise UsageError(f"{why}: a bisection needs at least two candidates", hint=hint)
    return labels


def _execute(source: Any, kw: dict[str, Any], rd: Any, *, replay: list[dict[str, Any]] | None = None,
             labels: list[str] | None = None, default_skip: tuple[int, ...] = ()) -> int:  # fmt: skip
    from sleuth.bisect.driver import Driver
    from sleuth.bisect.report import exit_code, summarize, write_outputs
    from sleuth.cli._bisect_flags import spec_and_options

    spec, oracle, opts = spec_and_options(kw, default_skip)
    quiet = kw.get("as_json", False)
    con = err_console()
    if not quiet:
        con.print(f"[bold]sleuth bisect {source.kind}[/] -> {rd.path}")

    def show(ev: Any) -> None:
        if not quiet:
            style = OUTCOME_STYLE[ev.outcome]
            note = ev.signature or ev.reason or ""
            if ev.value is not None:
                note = f"{ev.value:g}" + (f"; {note}" if note else "")
            counted = "" if ev.counted is ev.outcome else f" (counted {ev.counted.value})"
            # one line per test however narrow the terminal (a log must stay greppable)
            label, note = escape(ev.label[:48].ljust(48)), escape(note[:80])
            line = f"{ev.seq:>4} {ev.phase:<16} {label} [{style}]{ev.outcome.name}[/]{counted} [dim]{note}[/]"
            con.print(line, markup=True, highlight=False, soft_wrap=True)

    driver = Driver(source, spec, oracle, rd, opts, replay=replay, on_test=show, labels=labels)
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result, _ = driver.run()
    except KeyboardInterrupt:
        from sleuth.runner import kill_all

        kill_all()
        rd.journal.append("interrupted")
        raise Interrupted(f"interrupted; resume with: sleuth bisect resume {rd.path}") from None
    finally:
        signal.signal(signal.SIGTERM, old)
    summary = summarize(driver, result)
    write_outputs(driver, summary)
    rd.close()
    if quiet:
        print_json(summary)
    else:
        _render(summary)
    return int(exit_code(summary["status"]))


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _render(s: dict[str, Any]) -> None:
    con = console()
    if s["status"] == "found":
        con.print(f"[bold green]first bad[/] {escape(s['first_bad']['label'])}  "
                  f"(last good {escape(s['last_good']['label'])})", soft_wrap=True)  # fmt: skip
        if s["first_bad"].get("title"):
            con.print(f"  {escape(s['first_bad']['title'])}", soft_wrap=True, highlight=False)
    elif s["suspects"]:
        one_of = escape(", ".join(s["suspects"]))
        con.print(f"[bold yellow]{s['status']}[/]: the first bad is one of: {one_of}", soft_wrap=True)
    else:
        con.print(f"[bold yellow]{s['status']}[/]")
    if s["note"]:
        con.print(f"note: {escape(s['note'])}", soft_wrap=True)
    con.print(f"{s['tests']} tests over {s['candidates']} candidates, confidence {s['confidence']:.3f}; "
              f"report: {escape(s['run_dir'])}/report.md", soft_wrap=True)  # fmt: skip
    _ = ExitCode
