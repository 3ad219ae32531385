"""A Ctrl-C (or SIGTERM) while sleuth is still starting: the interpreter imports the CLI, the program
takes its signals, click imports the verb, the verb imports what it runs with.  Nothing has run yet,
so it is an interrupt like any later one: ``interrupted`` on one line, exit 130, no traceback, no
click "Aborted!" or empty line, and no run dir.  SIGTERM before sleuth takes it as an interrupt
ends it by the signal, as any program (nothing was written either).

The moments are made exact, not raced: the real signal is sent as a given module is first imported
(a finder at the head of ``sys.meta_path``), or it waits blocked in the mask sleuth inherits until
sleuth unblocks it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.signals import sleuth_proc

#: ``python -m sleuth ARGS`` with Python's default dispositions, sending SIG to itself as AT is first
#: imported: the signal lands inside that import
_AT_IMPORT = (
    "import os, runpy, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
    "signal.signal(signal.SIGHUP, signal.SIG_DFL)\n"
    "at, sig = sys.argv[1], signal.Signals[sys.argv[2]]\n"
    "class SignalAt:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == at:\n"
    "            sys.meta_path.remove(self)\n"
    "            os.kill(os.getpid(), sig)\n"
    "        return None\n"
    "sys.meta_path.insert(0, SignalAt())\n"
    "sys.argv = ['sleuth', *sys.argv[3:]]\n"
    "runpy.run_module('sleuth', run_name='__main__', alter_sys=True)\n"
)

#: the moments of start-up, in order: the CLI imported (before sleuth takes SIGTERM: sleuth._entry),
#: its run-dir bookkeeping imported (the program's handlers in place), the verb's module imported by
#: click, the verb's library half imported by the verb (before any run dir exists)
_MOMENTS = ["click", "sleuth.journal", "sleuth.cli.run", "sleuth.batch"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("at", _MOMENTS)
def test_a_signal_while_sleuth_starts_is_an_interrupt(
    tmp_path: Path, sleuth_env: dict[str, str], at: str, sig: signal.Signals
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    res = subprocess.run([sys.executable, "-c", _AT_IMPORT, at, sig.name, "run", "--trials", "1", "--", "true"],
                         env=sleuth_env, cwd=work, capture_output=True, text=True, timeout=120)  # fmt: skip
    if sig == signal.SIGTERM and at == "click":  # sleuth does not take SIGTERM yet: its default action
        assert (res.returncode, res.stderr) == (-signal.SIGTERM, ""), res.stderr
    else:  # was: a KeyboardInterrupt's traceback (journal), an empty line before "interrupted" (click)
        assert (res.returncode, res.stderr) == (130, "interrupted\n"), res.stderr
    assert res.stdout == ""
    assert not Path(sleuth_env["SLEUTH_OUTPUT"]).exists() and not any(work.iterdir())


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_held_blocked_by_the_parent_lands_as_sleuth_starts(
    tmp_path: Path, sleuth_env: dict[str, str], sig: str
) -> None:
    """A parent that blocked the signal and got it (a Ctrl-C, a ``kill``, the terminal closed): it
    waits in sleuth's inherited mask until sleuth unblocks it (:func:`sleuth.cli._undo_inherited_signals`).
    A Ctrl-C there printed the traceback of ``pthread_sigmask``; SIGTERM and SIGHUP, unblocked before
    sleuth's handlers were in place, ended it by the signal (143, 129), not as an interrupt."""
    with sleuth_proc(["run", "--trials", "1", "--", "true"], sleuth_env, tmp_path, block=[sig],
                     pending=[sig], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:  # fmt: skip
        out, err = proc.communicate(timeout=120)
    assert (proc.returncode, err, out) == (130, "interrupted\n", ""), err
    assert not Path(sleuth_env["SLEUTH_OUTPUT"]).exists()
