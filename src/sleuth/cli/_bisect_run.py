"""A ``sleuth bisect`` run: its inputs checked and its run dir made (:func:`start`), then the search
with its console lines (:func:`execute`), the summary, the files and the answer.

A Ctrl-C (or SIGTERM) anywhere in it stops the tests, writes the interrupted summary and names the
command that resumes the run; one while the final files are written waits for them (they agree).
Start-up (issue 9): the console, the signature rules and the report load while the first tests run,
not before them.
"""

from __future__ import annotations

import re
from typing import Any

from sleuth.bisect.session import (
    create_run,
    describe_command,
    journal_flags,
    place_tests,
    resolve_candidates,
    resumed,
    resumed_secrets,
)
from sleuth.cli._bisect_render import render, test_line
from sleuth.cli._common import err_console, escape, interrupts_held, print_json, sigterm_as_interrupt
from sleuth.errors import Interrupted, UsageError

__all__ = ["execute", "start"]


def start(source: Any, kw: dict[str, Any], default_skip: tuple[int, ...] = ()) -> int:
    """A new bisection of ``source``: every flag checked, then the backend, the candidates and the
    run dir made, then :func:`execute`."""
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
    return execute(source, kw, rd, labels=labels, default_skip=default_skip, backend=backend)


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


def execute(source: Any, kw: dict[str, Any], rd: Any, *, replay: list[dict[str, Any]] | None = None,
             labels: list[str] | None = None, default_skip: tuple[int, ...] = (),
             backend: Any = None) -> int:  # fmt: skip
    """The bisection in ``rd``: a Ctrl-C (or SIGTERM) anywhere in it, from the first line printed to the
    report, stops the tests, journals ``interrupted`` and names the command that resumes the run.

    ``backend``: made before a new run's dir existed; a resume makes the one its start names.
    An interrupt before the final files (the driver being built, the tests, the answer being put
    together) also writes ``summary.json`` and ``report.md`` with status ``interrupted``
    (:func:`sleuth.bisect.report.interrupted_summary`; an :class:`~sleuth.bisect.report.Unbuilt`
    stands in for a driver not built yet), once the tests are stopped.  One while the final files
    are written is held until they are (:func:`~sleuth.cli._common.interrupts_held`): the run is
    then finished, its journal closed, and the resume prints its answer."""
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
            line = test_line(ev, public(ev.signature or ev.reason or "", secrets), metric, width,
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
        from sleuth.bisect.report import exit_code, summarize  # after the tests: start-up

        summary = _told(summarize(driver, result), driver, kw, source, secrets=secrets, replay=replay)
        code = int(exit_code(summary["status"]))
        if hasattr(source, "summary_extra"):  # image-commits: images, sources, build times
            summary.update(source.summary_extra(driver))
        if driver.chain is not None:  # bisect images --source: the commits stage (in commits/)
            summary["commits"] = driver.chain
            code = max(code, int(exit_code(str(driver.chain.get("status")))))
    except KeyboardInterrupt:  # what is known so far, while the source can still name commits
        from sleuth.bisect.report import Unbuilt, interrupted_summary
        from sleuth.bisect.trials import TestEvent

        try:  # stopped while the driver was being built: the candidates and the journal's tests
            replayed = [TestEvent.from_journal(e) for e in replay or ()] if driver is None else []
            known = driver if driver is not None else Unbuilt(source, rd, opts, list(labels or ()), replayed)
            summary = interrupted_summary(known)
            resumed = replay if driver is not None else None  # an Unbuilt served none of them
            summary = _told(summary, known, kw, source, secrets=secrets, replay=resumed)
            so_far.append((known, summary, public(summary, secrets) if quiet else None))
        except Exception as exc:  # whatever the summary met, an interrupt stays one (exit 130)
            _notes([f"no summary.json written: {exc}"])
        raise
    finally:
        if out is not None:
            out()  # the header, when no test made the console (an error, an interrupt before the first)
        if hasattr(source, "close"):
            source.close()
        debug.__exit__(None, None, None)
    from sleuth.bisect.report import write_outputs

    with interrupts_held():  # summary.json, report.md, the links and `end` agree: a stop waits for them
        _notes(write_outputs(driver, summary))
        rd.close()
    summary = public(summary, secrets)
    if quiet:
        print_json(summary)
    else:
        render(summary)
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
