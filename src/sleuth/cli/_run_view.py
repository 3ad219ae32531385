"""What ``sleuth run`` prints: a row per trial, progress, the summary; or one JSON document.

Lines are never wrapped or cut (piped into a CI log, a long run-dir path stays on its line), and
nothing secret is printed: every text that comes from the command or its output is scrubbed.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from sleuth import hangup
from sleuth.cli._common import OUTCOME_STYLE, console, escape, fmt_rate, fmt_s, lazy_console
from sleuth.model import Outcome, printable
from sleuth.run_tally import basis

__all__ = ["View"]


class View:
    """Live rows and progress while trials run; the summary after."""

    def __init__(
        self,
        config: Any,
        run_dir: Path,
        secrets: Any,
        *,
        as_json: bool,
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.secrets = secrets
        self.as_json = as_json
        self.con: Any = None
        #: stdout is a log, not a terminal: plain lines (rich asks the stream again on every call)
        self.plain = False
        self.progress: Any = None

    def _public(self, text: str) -> str:
        return str(self.secrets.scrub(text)) if self.secrets else text

    def _shown(self, text: str) -> str:
        """Text from the workload (a signature, a metrics.json name), scrubbed and with its control
        characters replaced: an escape sequence in its output must not drive the terminal."""
        return printable(self._public(text))

    def start(self, already: int) -> None:
        """Print the header; start the progress (a bar on a terminal, heartbeat lines in a log)."""
        from sleuth.cli._progress import Progress

        c = self.config
        total = c.trials + c.warmup
        if self.as_json:  # stdout holds only the document: progress goes to stderr
            self.progress = Progress(lazy_console(stderr=True), "trials", total, completed=already).start()
            return
        # piped into a log, the header and the summary are plain text: rich is not even imported
        self.con = lazy_console(stderr=False)
        self.plain = not self.con.is_terminal
        cmd = escape(self._public(shlex.join(c.argv)))
        what = (
            f"until the first failure, at most {c.trials} trial(s)"
            if c.until_fail
            else f"{c.trials} trial(s)"
        )
        warm = f" after {c.warmup} warm-up trial(s)" if c.warmup else ""
        where = escape(str(self.run_dir))
        on = "" if c.backend.is_local else f" on {escape(self._public(c.backend.describe()))}"
        self.con.print(
            f"[bold]sleuth run[/] {what}{warm} of [cyan]{cmd}[/], {c.jobs} at a time{on} -> {where}",
            soft_wrap=True,
        )
        self.con.print(f"[dim]{'trial':>6}  {'outcome':<7} {'rc':>5} {'wall':>9}  metrics / signature[/]")
        self.progress = Progress(self.con, "trials", total, completed=already).start()

    def trial(self, trial: Any, warmup: bool) -> None:
        """One finished trial (a warm-up one is marked ``w``)."""
        if self.progress is not None:
            self.progress.advance()
        if self.as_json:
            return
        r = trial.result
        rc = str(r.rc) if r.rc is not None else (f"sig{r.signal}" if r.signal else "-")
        extra = " ".join(
            f"{printable(k)}={v if not isinstance(v, tuple) else f'[{len(v)} values]'}"
            for k, v in r.metrics.items()
        )
        note = self._shown(trial.signature or trial.reason or "")
        tid = trial.id  # warm-up ids start with "w"
        if self.plain:  # a log: plain text, fast (no markup to render)
            sep = "  " if extra and note else ""
            try:
                sys.stdout.write(
                    f"{tid:>6}  {trial.outcome.name:<7} {rc:>5} {fmt_s(r.wall_s):>9}  {extra}{sep}{note}\n"
                )
            except BrokenPipeError:  # the reader went away (`| head`): stop as a Ctrl-C does
                hangup.reader_gone(1)
            return
        style = OUTCOME_STYLE[trial.outcome]
        self.progress.print(
            f"{tid:>6}  [{style}]{trial.outcome.name:<7}[/] {rc:>5} {fmt_s(r.wall_s):>9}  "
            f"{escape(extra)}{'  ' if extra and note else ''}[dim]{escape(note)}[/]",
            soft_wrap=True,
        )

    def stop(self) -> None:
        """Remove the bar, stop the heartbeat."""
        if self.progress is not None:
            self.progress.stop()
        sys.stdout.flush()

    def json_document(self, summary: Any) -> None:
        """The whole run as one JSON document on stdout (trial records streamed from the journal)."""
        from sleuth.run_report import write_document

        sys.stdout.flush()
        write_document(
            sys.stdout.buffer, summary.run_dir, summary.data, summary.index, summary.run_dir / "journal.jsonl"
        )
        sys.stdout.flush()

    def summary(self, d: dict[str, Any]) -> None:
        """The summary, one fact per line (never wrapped: paths and signatures stay whole)."""
        con = self.con or console()
        rows: list[tuple[str, str]] = []
        counts = "  ".join(f"[{OUTCOME_STYLE[o]}]{d[o.value]} {o.value}[/]" for o in Outcome)
        shown = f"{d['trials']} of {d['planned']}" if d.get("interrupted") else f"{d['trials']}"
        rows.append(
            (
                "trials",
                f"{shown}: {counts}" + ("  [bold yellow](interrupted)[/]" if d.get("interrupted") else ""),
            )
        )
        if "warmup" in d:
            w = d["warmup"]
            rows.append(
                (
                    "warm-up",
                    f"{w['trials']} trial(s), not counted: {w['pass']} pass  {w['fail']} fail"
                    + "".join(f"  {w[k]} {k}" for k in ("skip", "error") if w.get(k)),
                )
            )
        rows.append(("failure rate", fmt_rate(d["failure_rate"], d["failure_rate_ci"])))
        rows.append(("wall time", f"median {fmt_s(d['wall_s']['median'])}  p90 {fmt_s(d['wall_s']['p90'])}"))
        for name, m in d["metrics"].items():
            text = "no finite value"
            if m["n"]:
                text = (
                    f"median {m['median']:g}  p90 {m['p90']:g}  min {m['min']:g}  max {m['max']:g}"
                    f"  (n={basis(m)})"
                )
            if m.get("nonfinite"):
                text += f"  [bold yellow]+{m['nonfinite']} nan/inf[/]"
            rows.append((f"metric {escape(printable(name))}", text))
        first = d.get("signature_first", {})
        for sig, count in d["signatures"].items():
            rows.append(
                (
                    "signature",
                    f"{count} x {escape(printable(sig))}  [dim](first: trial {first.get(sig, '?')})[/]",
                )
            )
        rows.append(("run dir", escape(str(self.run_dir))))
        rows.append(("report", escape(str(self.run_dir / "report.md"))))
        con.print("[bold]summary[/]")
        for key, value in rows:
            con.print(f"  [bold]{key:<13}[/] {value}", soft_wrap=True)
        uf = d.get("until_fail")
        if uf is not None:
            self._until_fail(con, d, uf)

    def _until_fail(self, con: Any, d: dict[str, Any], uf: dict[str, Any]) -> None:
        if uf["reproduced"]:
            sig = next((s for s, t in d.get("signature_first", {}).items() if t == uf["first_fail"]), None)
            con.print(
                f"[bold red]reproduced[/]: trial {uf['first_fail']} failed after {d['trials']} trial(s)"
                + (f": {escape(printable(sig))}" if sig else ""),
                soft_wrap=True,
            )
            con.print(f"  logs: {escape(uf['logs'][0])}", soft_wrap=True)
            con.print(f"        {escape(uf['logs'][1])}", soft_wrap=True)
            return
        bound = uf.get("upper_bound")
        tail = f"; failure rate < {100 * bound:.2g}% (95% upper bound)" if bound is not None else ""
        con.print(
            f"[bold green]not reproduced[/]: {d['pass']} of {d['trials']} trial(s) passed{tail}",
            soft_wrap=True,
        )
