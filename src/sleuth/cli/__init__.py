"""The ``sleuth`` command line: a thin click group whose verbs load lazily.

``main(argv) -> int`` is the console script.  Errors sleuth raises on purpose (``SleuthError``)
and click's usage errors print one line (secrets hidden: :func:`_error`) and return their exit
code; anything else is our bug and keeps its traceback.  Verbs live in ``sleuth.cli.<verb>``
modules exposing ``command``.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import resource  # here, not when EMFILE is reported: loading its .so then needs a free descriptor
import signal
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

import click

from sleuth import __version__, hangup
from sleuth.errors import ExitCode, SleuthError

__all__ = ["main", "raise_interrupt"]

#: verb -> (module, one-line help); modules are imported only when the verb is used
VERBS: dict[str, tuple[str, str]] = {
    "run": ("sleuth.cli.run", "Run a command k times, judge each trial, keep every log."),
    "bisect": ("sleuth.cli.bisect", "Find the first bad commit, release, image or list entry."),
    "matrix": ("sleuth.cli.matrix", "Mitigations x environments x trials, with honest statistics."),
    "reduce": ("sleuth.cli.reduce", "Shrink a failing workload to a minimal, shippable reproducer."),
    "bundle": ("sleuth.cli.bundle", "Pack a reduction's reproducer into one .tar.gz."),
    "report": ("sleuth.cli.report", "Write a run dir's self-contained HTML report (report.html)."),
    "env": ("sleuth.cli.env", "Snapshot the environment, or diff two snapshots."),
    "schema": ("sleuth.cli.schema", "Print the JSON Schema of a config file."),
    "mitigations": ("sleuth.cli.mitigations", "List the known mitigations and where they come from."),
    "environments": ("sleuth.cli.environments", "List the known environment kinds."),
    "attribute": ("sleuth.cli.attribute", "Which failure ended a job, and should it restart (RESTART/STOP)."),
    "serve": ("sleuth.cli.serve", "Run the HTTP attribution service for launchers on many nodes."),
    "supervise": ("sleuth.cli.supervise", "Run a workload, attribute each failure, restart or stop."),
    "gate": ("sleuth.cli.gate", "Benchmark history: graduation, budgets, regressions, change points."),
}


class LazyGroup(click.Group):
    """A group that imports a verb's module only when that verb runs.

    A Ctrl-C that reaches click (while it parses, imports the verb, or the verb did not catch it)
    becomes its ``Abort`` here: click's own turned it into one after printing an empty line."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt as exc:
            raise click.exceptions.Abort from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise click.exceptions.Abort from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [v for v, (mod, _) in VERBS.items() if _available(mod)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = VERBS.get(cmd_name)
        if entry is None:
            return None
        try:
            module = import_module(entry[0])
        except ModuleNotFoundError as exc:
            if exc.name == entry[0]:
                return None
            raise
        cmd: click.Command = module.command
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(v, VERBS[v][1]) for v in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _available(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"sleuth {__version__}")
        ctx.exit(0)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the version and exit.",
)
def cli() -> None:
    """sleuth finds out why an ML/GPU workload fails or got slower.

    Exit codes: 0 answer found / all passed, 1 failed or regressed, 2 usage or config error
    (also: a command group without its subcommand prints its help and exits 2, as git and
    click do), 3 inconclusive, 4 infrastructure error, 130 interrupted.
    """


def _usage_line(exc: click.UsageError) -> str:
    path = exc.ctx.command_path if exc.ctx is not None else "sleuth"
    msg = exc.format_message().strip().replace("\n", " ")
    if msg and msg[0].isupper() and not msg[:2].isupper():
        msg = msg[0].lower() + msg[1:]
    return f"{path}: {msg} (see '{path} --help')"


#: OSErrors that say what is wrong with the machine, with what to do (``{resume}``: the verb's own
#: resume command for the run dir it opened, :func:`sleuth.resuming.resume_hint`); any other is a bug
_OS_HINTS = {
    errno.ENOSPC: "free some space, {resume}",
    errno.EDQUOT: "free some space or raise the quota, {resume}",
    errno.EROFS: "the file system is read-only; give --output (or $SLEUTH_OUTPUT) a writable folder",
    errno.EACCES: "check its permissions (a run dir goes under --output or $SLEUTH_OUTPUT)",
    errno.EMFILE: "{limit}, {resume}",
    errno.EAGAIN: "end some processes or raise the limit (ulimit -u; a container's pids limit), {resume}",
    errno.ENFILE: "the system ran out of file handles (not sleuth's limit): close some programs, {resume}",
    errno.EIO: "an I/O error: check the disk",
}


def _open_files_limit() -> str:
    """EMFILE's fix: sleuth's own limit of open files, by its value, and one to raise it to."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:  # the system's own cap (fs.nr_open) was reached
        return "sleuth's limit of open files (ulimit -n) is unlimited: the system's cap was reached"
    at = f"sleuth reached its limit of {soft} open files (ulimit -n {soft}"
    more = max(4096, 2 * soft) if hard == resource.RLIM_INFINITY else min(max(4096, 2 * soft), hard)
    if more <= soft:
        return f"{at}, the hard limit too): raise both"
    return f"{at}): raise it, e.g. ulimit -n {more}"


def _error(message: str, args: Sequence[str] = ()) -> None:
    """Print ``error: message`` through the one redaction rule, as every file sleuth writes: URL
    credentials and token-shaped words (a flag's value, a tool's output quoted in the error), the
    values of this shell's secret variables, and the secrets sleuth's own command line ``args``
    names (``--env DB_PASSWORD=...``, ``--password ...``: :meth:`sleuth.secrets.Secrets.of_command_line`)
    are hidden: ``--timeout "$MY_TOKEN"`` gave click's "'<the token>' is not a valid float".  Every
    error of every verb reaches the user here."""
    from sleuth.secrets import Secrets

    click.echo(f"error: {Secrets.of_command_line(args).scrub(message)}", err=True)


def raise_interrupt(_signum: int, _frame: object) -> None:
    """A signal handler: the signal stops sleuth as a Ctrl-C does."""
    raise KeyboardInterrupt


def hang_up(_signum: int, _frame: object) -> None:
    """SIGHUP's handler: the terminal is gone (see :mod:`sleuth.hangup`); stop as a Ctrl-C does."""
    hangup.detach()
    raise KeyboardInterrupt


def _leave_with(code: int) -> Callable[[int, object], None]:
    """A signal handler for after the verb returned: exit at once with the code it chose."""

    def leave(_signum: int, _frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)

    return leave


#: the signals that stop a verb as Ctrl-C does (SIGHUP: the terminal or the ssh session closed)
_STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _ignore_signals() -> None:
    for sig in _STOPS:
        signal.signal(sig, signal.SIG_IGN)


def _fill_closed_std_fds() -> None:
    """A standard descriptor sleuth was started without (``>&-``, a bare daemon) becomes /dev/null:
    Python left ``sys.stdout`` None (the first print raised AttributeError mid-run), and the next
    file sleuth opened would have taken fd 1 or 2."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False))  # noqa: SIM115


def _undo_inherited_signals() -> None:
    """What a parent left for itself in the signal state: SIGCHLD ignored (the kernel then reaps each
    child at once and ``waitpid`` reads its exit as 0: every failing trial passed) and the stopping
    signals or SIGCHLD blocked (neither Ctrl-C nor SIGTERM reached sleuth, and each trial inherited
    the mask: a timeout always waited the whole grace for SIGKILL).  Ignored SIGINT/SIGHUP (``&``,
    nohup) are left as they are: they are meant for sleuth and its trials."""
    if signal.getsignal(signal.SIGCHLD) is signal.SIG_IGN:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (*_STOPS, signal.SIGCHLD))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code.

    Without ``argv`` this is the program (the console script, ``python -m sleuth``): it undoes the
    signal state a parent left for itself (:func:`_undo_inherited_signals`), takes SIGTERM
    and SIGHUP as an interrupt, and once the verb has returned, those and SIGINT leave with its code.
    A reader of its output that goes away (``| head -2``) stops the verb as a Ctrl-C does
    (:mod:`sleuth.hangup`).  A Ctrl-C while it starts, before the verb runs, is an interrupt as any
    later one: ``interrupted``, exit 130 (as one in the CLI's imports is: :mod:`sleuth._entry`).  A
    caller that goes on running passes ``argv`` and keeps its own signal handlers and streams.
    """
    if argv is not None:
        return _main(list(argv))
    try:
        _start()
    except KeyboardInterrupt:  # a Ctrl-C while sleuth starts (a parent's blocked one lands here): nothing ran
        code = _interrupted()
    else:
        code = _main(sys.argv[1:])
    # The verb is done and its files are whole, but Python still joins the worker threads that are
    # stopping the last trials, then finalizes, and near its end it puts back the default SIGINT
    # action: a Ctrl-C (or SIGTERM) then ended the process by the signal itself (-2), not with the
    # code chosen.  While the threads are joined, a signal now leaves at once with that code; from
    # the first atexit function on (the threads are gone), signals are ignored to the end.
    for sig in _STOPS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _leave_with(code))
    atexit.register(_ignore_signals)
    return code


def _start() -> None:
    """The program's own state, before the verb: its standard streams, the signal state it inherited,
    its output readers watched, SIGTERM and SIGHUP taken as an interrupt."""
    _fill_closed_std_fds()
    hangup.remember()  # before SIGHUP's handler, which reads it
    for sig, handler in ((signal.SIGTERM, raise_interrupt), (signal.SIGHUP, hang_up)):
        if signal.getsignal(sig) is signal.SIG_DFL:
            # SIGTERM (a CI cancel, `timeout`, a scheduler) and SIGHUP (the terminal closed) stop every
            # verb as Ctrl-C does: its children (tools, trials, probes) are stopped and files are
            # whole; by default Python would just die, leaving them running in their own sessions.
            # Ignored (nohup) stays ignored.  A verb may install its own handler inside.  Before the
            # unblock: one the parent held blocked lands there, and is an interrupt too (was: 143)
            signal.signal(sig, handler)
    _undo_inherited_signals()
    # a reader of stdout or stderr that goes away (`| head -2`) stops every verb as a Ctrl-C does
    hangup.guard()
    hangup.watch()


def _main(args: list[str]) -> int:
    """The CLI on ``args``; every error becomes a line and an exit code."""
    try:
        from sleuth.journal import watch_run_dirs
    except KeyboardInterrupt:  # a Ctrl-C while it is imported: nothing has run
        return _interrupted()
    with watch_run_dirs() as opened:
        return _run_verb(args, opened)


def _interrupted() -> int:
    """A Ctrl-C (or SIGTERM, SIGHUP, a reader gone) that stopped the verb, or sleuth as it started:
    one line, exit 130."""
    why = ": the reader of the output went away" if hangup.stopped_it() else ""
    click.echo(f"interrupted{why}", err=True)
    return int(ExitCode.INTERRUPTED)


def _run_verb(args: list[str], opened: list[Path]) -> int:
    try:
        try:
            hangup.arm()  # a reader that goes away from here on is a Ctrl-C (caught below)
            rv = cli.main(args=args, prog_name="sleuth", standalone_mode=False)
        finally:
            hangup.done()
    except click.exceptions.NoArgsIsHelpError as exc:
        # `sleuth` or `sleuth bisect` alone: the person wants the help, whole and readable (on
        # stdout, so it pages); still exit 2, since no command ran (git exits 1, click 2)
        click.echo(exc.ctx.get_help())
        return int(ExitCode.USAGE)
    except click.UsageError as exc:
        _error(_usage_line(exc), args)
        return int(ExitCode.USAGE)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):  # LazyGroup turns a Ctrl-C inside click into Abort
        return _interrupted()
    except click.ClickException as exc:
        _error(exc.format_message(), args)
        return int(ExitCode.USAGE)
    except SleuthError as exc:
        _error(str(exc), args)
        return int(exc.exit_code)
    except BrokenPipeError:  # a caller's own stream (not the program's: sleuth.hangup guards those)
        hangup.reader_gone()
        return int(ExitCode.INTERRUPTED)
    except OSError as exc:  # the machine, not sleuth: a full disk, a read-only --output, no file handles
        hint = _OS_HINTS.get(exc.errno or 0)
        if hint is None:
            raise
        from sleuth.resuming import resume_hint

        limit = _open_files_limit() if exc.errno == errno.EMFILE else ""
        hint = hint.format(resume=resume_hint(args[0] if args else "", opened), limit=limit)
        # out of file handles, the file being opened (a trial's stderr) is fine: sleuth is not
        where = exc.filename if exc.filename and exc.errno not in (errno.EMFILE, errno.ENFILE) else None
        _error(f"{where}: {exc.strerror}; {hint}" if where else f"{exc.strerror}; {hint}", args)
        return int(ExitCode.INFRASTRUCTURE)
    return rv if isinstance(rv, int) else 0
