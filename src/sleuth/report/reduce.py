"""The page of a ``sleuth reduce`` run dir: what shrank from what to what with the confidence the run
states, the best point over the oracle calls, the axes, the search steps, the final reproduction's
log and the commands that run and pack the reproducer.

Built from ``summary.json`` and ``reduction_trace.jsonl`` when the reduction ended (reduced, budget
spent, Ctrl-C).  A run killed or still going has neither: its page comes from the journal, whose
baseline and candidate events carry the values tried (strings cut short,
:mod:`sleuth.reduce.journaled`), so the best point so far is each axis at its last accepted value,
with the command line of that candidate; a journal from before the events carried values shows
each candidate by its hash.  Axis kinds and the budget come from ``spec.yaml``.
Here: the headline, the facts, the tables and the page's order; the run dir is read by
:mod:`~sleuth.report.reduce_steps` and drawn by :mod:`~sleuth.report.reduce_figures`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from sleuth.report.common import MAX_ROWS, fmt_seconds, fmt_time
from sleuth.report.page import Block, Note, Page, Section, Status, Table
from sleuth.report.reduce_figures import progress_figure
from sleuth.report.reduce_steps import (
    as_dict,
    as_list,
    axis_kinds,
    best_so_far,
    read_spec,
    read_steps,
    show_value,
    taken,
)
from sleuth.report.source import RunDirView

__all__ = ["page"]

#: moved axes the headline names (the table lists all)
HEADLINE_AXES = 4


def _step_table(
    steps: Sequence[Mapping[str, Any]], kinds: Mapping[str, str], valued: bool, *, traced: bool
) -> Table:
    shown = list(enumerate(steps, start=1))
    if len(shown) > MAX_ROWS:  # the baseline and the accepted steps first: they are the path taken
        order = sorted(shown, key=lambda p: (p[1].get("phase") != "baseline" and not taken(p[1]), p[0]))
        shown = sorted(order[:MAX_ROWS], key=lambda p: p[0])

    def tried(s: Mapping[str, Any]) -> str:
        if s.get("phase") == "baseline":
            return "the original"
        axis = str(s.get("axis"))
        if valued and axis in as_dict(s.get("values")):
            return show_value(kinds.get(axis, ""), s["values"][axis])
        return f"candidate {str(s.get('hash', ''))[:12]}"

    def verdict(s: Mapping[str, Any]) -> str:
        v = str(s.get("verdict", "")).replace("_", " ")
        v += " (too late: not used)" if s.get("speculative_wasted") else ""
        return v + (" (cache hit)" if s.get("cache_hit") else "")

    def where(s: Mapping[str, Any]) -> tuple[str, str]:
        return (
            ("baseline", "")
            if s.get("phase") == "baseline"
            else (str(s.get("round", "")), str(s.get("axis")))
        )

    rows = tuple(
        (str(i), *where(s), tried(s), verdict(s), " ".join(map(str, as_list(s.get("outcomes")))),
         fmt_seconds(s.get("seconds")), str(s.get("signature") or ""))
        for i, s in shown
    )  # fmt: skip
    return Table(
        ("step", "round", "axis", "tried", "verdict", "trial outcomes", "seconds", "signature"),
        rows,
        numeric=frozenset({0, 6}),
        cut=(len(rows), len(steps)) if len(rows) < len(steps) else None,
        caption=(
            "Every step is in reduction_trace.jsonl (and the journal)"
            if traced
            else "Every step is in journal.jsonl (reduction_trace.jsonl is written when the run ends)"
        )
        + "; each candidate's trials are under candidates/HASH/.",
    )


def _log_blocks(view: RunDirView, key: str, target: Any) -> list[Block]:
    """The logs of candidate ``key``'s reproducing trial (failed with the target signature, else any)."""
    trials = [
        e
        for e in view.events
        if e.get("event") == "trial" and e.get("candidate") == key and isinstance(e.get("trial"), dict)
    ]
    trials.sort(key=lambda e: (e["trial"].get("signature") != target, e["trial"].get("outcome") != "fail"))
    if not trials or not isinstance(trials[0]["trial"].get("id"), str):
        return [Note(f"No trial of candidate {key[:12]} was journaled.")]
    t, base = trials[0]["trial"], f"{trials[0].get('subdir')}/{trials[0]['trial']['id']}"
    if not re.fullmatch(r"candidates/[0-9a-f]+/t\d+", base):  # only a log the run wrote, never ../
        return [Note(f"No log of candidate {key[:12]} in the run dir.")]
    argv = as_list(t.get("argv"))
    ran = f"; it ran: {shlex.join(str(a) for a in argv)}" if argv else ""
    sig = f", {t['signature']}" if t.get("signature") else ""
    logs = [log for log in (view.tail(f"{base}/stderr"), view.tail(f"{base}/stdout")) if log is not None]
    note = Note(f"Candidate {key[:12]}, trial {t['id']}: {t.get('outcome', '?')}{sig}{ran}")
    return [note, *logs] if logs else [note, Note("Its stdout and stderr are empty.")]


def _rates(fl: Mapping[str, Any]) -> tuple[str, str]:
    """The original's reproduction and the rate with the accepted candidates, as the CLI says them."""
    orig, conf = as_dict(fl.get("original")), fl.get("confidence")
    level = f"{(conf if isinstance(conf, int | float) else 0.95) * 100:g}% CI"
    ci = orig.get("reproduction_rate_ci")
    original = f"{orig.get('reproduced', '?')}/{orig.get('trials', '?')} ({level} {ci})"
    rate = fl.get("reproduction_rate")
    return original, f"{rate} ({level} {fl.get('reproduction_rate_ci')}) with the accepted candidates"


def _moves(axes: Mapping[str, Any], kinds: Mapping[str, str]) -> str:
    def move(n: str, r: Mapping[str, Any]) -> str:
        was, now = (show_value(kinds.get(n, ""), r.get(k), brief=True) for k in ("initial", "final"))
        return f"{n} {was.removesuffix(' items')} -> {now}"

    moved = [move(n, r) for n, r in axes.items() if isinstance(r, dict) and r.get("moved")]
    more = f" and {len(moved) - HEADLINE_AXES} more axis(es)" if len(moved) > HEADLINE_AXES else ""
    return ", ".join(moved[:HEADLINE_AXES]) + more or "nothing moved"


def _headline(summary: Mapping[str, Any], kinds: Mapping[str, str]) -> tuple[str, Status]:
    status, fl = str(summary.get("status", "?")), as_dict(summary.get("flaky"))
    original, rate = _rates(fl)
    orig = f"; the original reproduced {original}" if fl else ""  # none when stopped before the baseline
    moves = _moves(as_dict(summary.get("axes")), kinds)
    if status == "not_reproducible":
        return f"not reproducible: {orig[2:] or 'no trial'}; nothing was reduced", Status.UNSURE
    if status == "not_reduced":
        return f"not reduced: no axis could move{orig}", Status.NEUTRAL
    if status == "reduced":
        return f"reduced: {moves}{orig}, reproduction rate {rate}", Status.GOOD
    said = {"budget_exhausted": "budget spent", "interrupted": "interrupted"}.get(status, status)
    return f"{said}, best so far: {moves}{orig}", Status.UNSURE


def _unfinished(
    steps: Sequence[Mapping[str, Any]], axes: Mapping[str, Any], kinds: Mapping[str, str], text: str
) -> tuple[str, Mapping[str, Any] | None]:
    """The headline of a run without a summary (``text`` first), and its best point so far (the last
    accepted step); ``axes``: what moved so far, as :func:`~sleuth.report.reduce_steps.best_so_far`
    read it."""
    base = next((s for s in steps if s.get("phase") == "baseline"), None)
    if base is None:
        return f"{text}: the original's trials are not all judged yet", None
    searched = [s for s in steps if s.get("phase") == "search"]
    best = ([s for s in searched if taken(s)] or [base])[-1]
    where = f"the last accepted candidate (axis {best.get('axis')})" if best is not base else "the original"
    moved = any(isinstance(r, dict) and r.get("moved") for r in axes.values())
    where += f": {_moves(axes, kinds)}" if best is not base and moved else ""
    return f"{text}: {len(searched)} candidate(s) tested; best so far: {where}", best


def _command(config: Mapping[str, Any]) -> str:
    """The command that started the reduction, as reduce.json records it."""
    backend = config.get("backend")
    flags = (("--spec", config.get("spec")), ("--workload", config.get("workload")),
             ("--jobs", config.get("jobs") if config.get("jobs") != 1 else None),
             ("--gpus", ",".join(map(str, as_list(config.get("gpus")))) or None),
             ("--backend", backend.get("name") if isinstance(backend, dict) else None))  # fmt: skip
    argv = ["sleuth", "reduce", *(x for f, v in flags if v and v != "local" for x in (f, str(v)))]
    return shlex.join(argv + (["--one-minimal"] if config.get("one_minimal") else []))


def _facts(
    view: RunDirView, s: Mapping[str, Any], spec: Mapping[str, Any], steps: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """The facts under the headline; ``steps`` as :func:`~sleuth.report.reduce_steps.read_steps` reads."""
    events = view.events
    trials = [e["trial"] for e in events if e.get("event") == "trial" and isinstance(e.get("trial"), dict)]
    base = next((e for e in events if e.get("event") == "baseline"), {})
    fl = as_dict(s.get("flaky")) or base
    facts = [("failure", str(s.get("signature") or base.get("signature") or "?"))]
    if fl:
        original, rate = _rates(fl)
        facts.append(("original reproduced", original))
        least, per = fl.get("fewest_trials_rejected"), fl.get("trials_per_candidate")
        few = f" (one got {least})" if isinstance(least, int) and isinstance(per, int) and least < per else ""
        low = fl.get("miss_probability_at_low_rate")
        miss = f"miss probability {fl.get('miss_probability')} (at the rate's lower bound: {low})"
        if s.get("status") != "not_reproducible" and fl.get("reproduction_rate") is not None:
            facts.append(("reproduction rate", f"{rate}, {per} trial(s) per rejected candidate{few}, {miss}"))
    if s.get("note"):
        facts.append(("note", str(s["note"])))
    if "oracle_calls" in s:
        calls = f"{s.get('oracle_calls')} candidates tested, {s.get('trials')} trials, {s.get('cache_hits')} "
        calls += f"cache hits, {s.get('wasted_trials')} speculative trials wasted, {s.get('rounds')} round(s)"
    else:
        n = sum(1 for x in steps if x.get("phase") != "baseline" and not x.get("cache_hit")) + bool(base)
        calls = f"{n} candidates tested, {len(trials)} trials (from the journal)"
    facts.append(("oracle calls", calls))
    walls = [t["wall_s"] for t in trials if isinstance(t.get("wall_s"), int | float)]
    facts.append(("oracle seconds", f"{fmt_seconds(sum(walls)) or '0'} in {len(walls)} trial(s)"))
    times = [e["t"] for e in events if isinstance(e.get("t"), int | float)]
    resumes = sum(1 for e in events if e.get("event") == "resume")
    if times:
        across = f" (first to last event, across {resumes} resume(s))" if resumes else ""
        facts.append(("wall time", fmt_seconds(max(times) - min(times)) + across))
    budget: Mapping[str, Any] = spec["budget"] if isinstance(spec.get("budget"), dict) else {}
    limit = f"{s.get('trials', len(trials))} of {budget.get('max_trials', 2000)} trials"
    limit += f", max wall clock {budget['max_wall_clock']}" if budget.get("max_wall_clock") else ""
    facts.append(("budget", limit + (f"; stopped: {s['stopped']}" if s.get("stopped") else "")))
    return [*facts, ("started", fmt_time(view.start.get("t")))]


def _axes_table(axes: Mapping[str, Any], kinds: Mapping[str, str], *, finished: bool = True) -> Table:
    rows = tuple(
        (n, kinds.get(n, ""), *(show_value(kinds.get(n, ""), r.get(k)) for k in ("initial", "final")),
         "" if r.get("moved") else str(r.get("why", "did not move")))
        for n, r in axes.items() if isinstance(r, dict)
    )  # fmt: skip
    if not finished:
        return Table(("axis", "kind", "initial", "best so far", "why it did not move"), rows,
                     caption="From the journal: each axis at its last accepted value (the run has not "
                     "written shrunken/spec.yaml yet).")  # fmt: skip
    return Table(("axis", "kind", "initial", "final", "why it did not move"), rows,
                 caption="The final values are those of shrunken/spec.yaml.")  # fmt: skip


def page(view: RunDirView) -> Page:
    """The report of a ``sleuth reduce`` run dir."""
    config = view.json("reduce.json")
    config = config if isinstance(config, dict) else view.start
    summary = view.json("summary.json")
    s: Mapping[str, Any] = summary if isinstance(summary, dict) else {}
    spec = read_spec(view)
    kinds = axis_kinds(spec)
    steps, valued = read_steps(view)
    if s:
        headline, status = _headline(s, kinds)
        best = next((x for x in reversed(steps) if taken(x) or x.get("phase") == "baseline"), None)
        so_far: Mapping[str, Any] = {}
    else:
        so_far = best_so_far(steps)
        broken = view.unreadable("summary.json")  # cut short, not JSON: the journal has the steps
        lead = f"{broken}; from the journal" if broken else "Not finished (interrupted or still running)"
        (headline, best), status = _unfinished(steps, so_far, kinds, lead), Status.UNSURE
    fig = progress_figure(steps, kinds, valued)
    blocks = ([fig] if fig else []) + (
        [_axes_table(s["axes"], kinds)] if isinstance(s.get("axes"), dict) else []
    )
    blocks += [_axes_table(so_far, kinds, finished=False)] if so_far else []
    sections = [Section("Reduction", tuple(blocks))] if blocks else []
    target = s.get("signature") or next(
        (e.get("signature") for e in view.events if e.get("event") == "baseline"), None
    )
    if best is not None and isinstance(best.get("hash"), str):
        done = {"reduced": "The final reproduction", "not_reduced": "The final reproduction"}
        title = done.get(str(s.get("status")), "The best point so far")
        title = "A trial of the original" if s.get("status") == "not_reproducible" else title
        sections.append(Section(title, tuple(_log_blocks(view, best["hash"], target))))
    repro, run_dir = view.tail("shrunken/run_repro.sh"), shlex.quote(str(view.path))
    said: list[Block] = []
    if repro is not None:
        said += [
            Note(f"Run it: sh {run_dir}/shrunken/run_repro.sh (its rate over 10 runs: sh {run_dir}/shrunken/"
                 f"verify.sh 10).  Pack it for a ticket: sleuth bundle {run_dir} (SHIP.md lists every file "
                 "it would share, with its sha256, and what was scrubbed)."),
            repro,
        ]  # fmt: skip
    if str(s.get("status")) in ("None", "interrupted", "budget_exhausted"):  # a resume goes on
        said.append(
            Note(f"{'No bundle yet: ' if repro is None else ''}sleuth reduce resume {run_dir} continues.")
        )
    if said:
        sections.append(Section("Reproducer", tuple(said)))
    traced = (view.path / "reduction_trace.jsonl").is_file()
    table: Block = (
        _step_table(steps, kinds, valued, traced=traced) if steps else Note("No candidate was journaled yet.")
    )
    sections.append(Section("Search steps", (table,)))
    return Page(
        verb="reduce",
        title=f"sleuth reduce: {config.get('name') or s.get('name') or view.path.name}",
        headline=headline,
        status=status,
        run_dir=str(view.path),
        facts=tuple(_facts(view, s, spec, steps)),
        sections=tuple(sections),
        command=_command(config),
    )
