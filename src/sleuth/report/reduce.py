"""The page of a ``sleuth reduce`` run dir: what shrank from what to what with the confidence the run
states, the best point over the oracle calls, the axes, the search steps, the final reproduction's
log and the commands that run and pack the reproducer.

Built from ``summary.json`` and ``reduction_trace.jsonl`` when the reduction ended (reduced, budget
spent, Ctrl-C).  A run killed or still going has neither: its page comes from the journal, whose
candidate events carry verdicts but not the values tried, so the best point so far is shown as the
command line of the last accepted candidate.  Axis kinds and the budget come from ``spec.yaml``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from sleuth.report import figures
from sleuth.report.common import MAX_ROWS, fmt_seconds, fmt_time
from sleuth.report.page import Block, Figure, Note, Page, Section, Status, Table
from sleuth.report.source import RunDirView

__all__ = ["page"]

_LISTS = ("file_lines", "file_set", "env_set", "arg_set")
#: moved axes the headline names (the table lists all)
HEADLINE_AXES = 4


def _d(x: Any) -> dict[str, Any]:
    """``x`` when it is an object, else {} (a run dir's odd value never crashes the page)."""
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _spec(view: RunDirView) -> dict[str, Any]:
    """The run's spec (``spec.yaml``, scrubbed), or {} when it is gone or unreadable."""
    import yaml

    try:
        data = yaml.safe_load((view.path / "spec.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return view.scrub(data) if isinstance(data, dict) else {}


def _kinds(spec: Mapping[str, Any]) -> dict[str, str]:
    """Axis name -> kind (``choice`` for a ``type: choice`` axis: it has no size)."""
    axes = spec.get("axes")
    out: dict[str, str] = {}
    for a in axes if isinstance(axes, list) else []:
        if isinstance(a, dict) and isinstance(a.get("name"), str):
            out[a["name"]] = "choice" if a.get("type") == "choice" else str(a.get("kind", ""))
    return out


def _size(kind: str, value: Any) -> float | None:
    """A value's size: the number, the items kept, the window's length; None when it has none."""
    if kind == "choice":
        return None
    if kind == "window" and isinstance(value, list) and len(value) == 2:
        return float(value[1] - value[0]) if all(isinstance(v, int) for v in value) else None
    if isinstance(value, list):
        return float(len(value))
    if isinstance(value, dict) and isinstance(value.get("kept"), int):
        return float(value["kept"])
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _show(kind: str, value: Any, *, brief: bool = False) -> str:
    """A value as a cell (``brief``: a list as its count, for the headline)."""
    if kind == "window" and isinstance(value, list) and len(value) == 2:
        return f"[{value[0]}, {value[1]})"
    if isinstance(value, dict) and "kept" in value:
        return f"{value['kept']} of {value.get('of', '?')} items ({str(value.get('ranges', ''))[:60]})"
    long = isinstance(value, list) and (len(value) > 6 or len(str(value)) > 80)
    return (
        f"{len(value)} items"
        if isinstance(value, list) and (brief or (kind in _LISTS and long))
        else str(value)
    )


def _steps(view: RunDirView) -> tuple[list[dict[str, Any]], bool]:
    """The search's steps and whether they carry values: the trace, else the journal's candidates."""
    from sleuth.errors import SleuthError
    from sleuth.journal import read_journal

    try:
        trace = read_journal(view.path / "reduction_trace.jsonl")
    except SleuthError:  # damaged: the journal has the steps too
        trace = []
    if trace:
        return [view.scrub(r) for r in trace if isinstance(r, dict)], True
    steps: list[dict[str, Any]] = []
    for e in view.events:
        if e.get("event") == "baseline":
            verdict = "reproduces" if e.get("reproduced") else "does_not_reproduce"
            kept: dict[str, Any] = {k: e[k] for k in ("trials", "outcomes", "signature") if k in e}
            steps.append({"phase": "baseline", "hash": e.get("candidate"), "verdict": verdict, **kept})
        elif e.get("event") == "candidate":
            steps.append(dict(e))
    return steps, False


def _used(step: Mapping[str, Any]) -> bool:
    """An accepted step the search moved to (one that came too late was not used)."""
    return step.get("verdict") == "reproduces" and not step.get("speculative_wasted")


def _figure(steps: Sequence[Mapping[str, Any]], kinds: Mapping[str, str], valued: bool) -> Figure | None:
    """Each axis's best size over the oracle calls as a percentage of its initial size, every
    candidate a dot; without values (a killed run's journal), each candidate's verdict by axis."""
    values = next((s.get("values") for s in steps if s.get("phase") == "baseline"), None) if valued else None
    sizes = {n: _size(kinds.get(n, ""), v) for n, v in values.items()} if isinstance(values, dict) else {}
    first = {n: x for n, x in sizes.items() if x}
    names = list(first) or list(
        dict.fromkeys(str(s.get("axis")) for s in steps if s.get("phase") == "search")
    )
    if not names or not any(s.get("phase") == "search" for s in steps):
        return None
    points: dict[str, list[tuple[int, float, bool]]] = {n: [] for n in names}
    call = 1  # the original's
    for s in steps:
        axis = str(s.get("axis"))
        call += s.get("phase") == "search" and not s.get("cache_hit")
        size = _size(kinds.get(axis, ""), _d(s.get("values")).get(axis)) if first else 0.0
        if s.get("phase") == "search" and axis in points and size is not None:
            y = 100.0 * size / first[axis] if first else float(names.index(axis))
            points[axis].append((call, y, _used(s)))
    from matplotlib.ticker import MaxNLocator

    with figures.figure(7.0, 3.0 if first else 1.0 + 0.35 * len(names)) as (fig, ax):
        for i, name in enumerate(names):
            colour = f"C{i % 10}" if first else figures.GOOD
            ok = [(c, y) for c, y, used in points[name] if used]
            no = [(c, y) for c, y, used in points[name] if not used]
            if first:
                best = [(1, 100.0), *ok, (call, ok[-1][1] if ok else 100.0)]
                ax.step([c for c, _ in best], [y for _, y in best], where="post", color=colour, label=name)
            ax.scatter([c for c, _ in no], [y for _, y in no], s=10, color=figures.MUTED, marker="x")
            ax.scatter([c for c, _ in ok], [y for _, y in ok], s=18, color=colour, zorder=3)
        ax.set_xlim(0.5, call + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("oracle call (the original is call 1; cache hits call no oracle)")
        if not first:
            ax.set_yticks(range(len(names)), names)
            ax.set_ylim(-0.6, len(names) - 0.4)
            why = "" if valued else "  The journal keeps no values: the trace written at the end has them."
            return Figure(
                figures.svg(fig),
                "Each candidate, on the axis it changed, by oracle call: green accepted (the search moved "
                "there), grey rejected." + why,
            )
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_yticks([0, 1, 10, 100], ["0", "1%", "10%", "100%"])
        ax.set_ylim(-0.1, 200)
        ax.set_ylabel("size, % of the original's")
        figures.legend_above(ax, 6)
        return Figure(
            figures.svg(fig),
            "The best point's size on each axis (its value, the items kept, the window's length) as a "
            "percentage of the original's, by oracle call: coloured dots are accepted steps, grey "
            "crosses candidates that did not reproduce or came too late to be used.  Log scale above 1%.",
        )


def _step_table(steps: Sequence[Mapping[str, Any]], kinds: Mapping[str, str], valued: bool) -> Table:
    shown = list(enumerate(steps, start=1))
    if len(shown) > MAX_ROWS:  # the baseline and the accepted steps first: they are the path taken
        order = sorted(shown, key=lambda p: (p[1].get("phase") != "baseline" and not _used(p[1]), p[0]))
        shown = sorted(order[:MAX_ROWS], key=lambda p: p[0])

    def tried(s: Mapping[str, Any]) -> str:
        if s.get("phase") == "baseline":
            return "the original"
        axis = str(s.get("axis"))
        if valued and axis in _d(s.get("values")):
            return _show(kinds.get(axis, ""), s["values"][axis])
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
        (str(i), *where(s), tried(s), verdict(s), " ".join(map(str, _l(s.get("outcomes")))),
         fmt_seconds(s.get("seconds")), str(s.get("signature") or ""))
        for i, s in shown
    )  # fmt: skip
    return Table(
        ("step", "round", "axis", "tried", "verdict", "trial outcomes", "seconds", "signature"),
        rows,
        numeric=frozenset({0, 6}),
        cut=(len(rows), len(steps)) if len(rows) < len(steps) else None,
        caption="Every step is in reduction_trace.jsonl (and the journal); each candidate's trials "
        "are under candidates/HASH/.",
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
    argv = _l(t.get("argv"))
    ran = f"; it ran: {shlex.join(str(a) for a in argv)}" if argv else ""
    sig = f", {t['signature']}" if t.get("signature") else ""
    logs = [log for log in (view.tail(f"{base}/stderr"), view.tail(f"{base}/stdout")) if log is not None]
    note = Note(f"Candidate {key[:12]}, trial {t['id']}: {t.get('outcome', '?')}{sig}{ran}")
    return [note, *logs] if logs else [note, Note("Its stdout and stderr are empty.")]


def _rates(fl: Mapping[str, Any]) -> tuple[str, str]:
    """The original's reproduction and the rate with the accepted candidates, as the CLI says them."""
    orig, conf = _d(fl.get("original")), fl.get("confidence")
    level = f"{(conf if isinstance(conf, int | float) else 0.95) * 100:g}% CI"
    ci = orig.get("reproduction_rate_ci")
    original = f"{orig.get('reproduced', '?')}/{orig.get('trials', '?')} ({level} {ci})"
    rate = fl.get("reproduction_rate")
    return original, f"{rate} ({level} {fl.get('reproduction_rate_ci')}) with the accepted candidates"


def _moves(axes: Mapping[str, Any], kinds: Mapping[str, str]) -> str:
    def move(n: str, r: Mapping[str, Any]) -> str:
        was, now = (_show(kinds.get(n, ""), r.get(k), brief=True) for k in ("initial", "final"))
        return f"{n} {was.removesuffix(' items')} -> {now}"

    moved = [move(n, r) for n, r in axes.items() if isinstance(r, dict) and r.get("moved")]
    more = f" and {len(moved) - HEADLINE_AXES} more axis(es)" if len(moved) > HEADLINE_AXES else ""
    return ", ".join(moved[:HEADLINE_AXES]) + more or "nothing moved"


def _headline(summary: Mapping[str, Any], kinds: Mapping[str, str]) -> tuple[str, Status]:
    status, fl = str(summary.get("status", "?")), _d(summary.get("flaky"))
    original, rate = _rates(fl)
    orig = f"; the original reproduced {original}" if fl else ""  # none when stopped before the baseline
    moves = _moves(_d(summary.get("axes")), kinds)
    if status == "not_reproducible":
        return f"not reproducible: {orig[2:] or 'no trial'}; nothing was reduced", Status.UNSURE
    if status == "not_reduced":
        return f"not reduced: no axis could move{orig}", Status.NEUTRAL
    if status == "reduced":
        return f"reduced: {moves}{orig}, reproduction rate {rate}", Status.GOOD
    said = {"budget_exhausted": "budget spent", "interrupted": "interrupted"}.get(status, status)
    return f"{said}, best so far: {moves}{orig}", Status.UNSURE


def _unfinished(steps: Sequence[Mapping[str, Any]], text: str) -> tuple[str, Mapping[str, Any] | None]:
    """The headline of a run without a summary (``text`` first), and its best point so far (the last
    accepted step)."""
    base = next((s for s in steps if s.get("phase") == "baseline"), None)
    if base is None:
        return f"{text}: the original's trials are not all judged yet", None
    searched = [s for s in steps if s.get("phase") == "search"]
    best = ([s for s in searched if _used(s)] or [base])[-1]
    where = f"the last accepted candidate (axis {best.get('axis')})" if best is not base else "the original"
    return f"{text}: {len(searched)} candidate(s) tested; best so far: {where}", best


def _command(config: Mapping[str, Any]) -> str:
    """The command that started the reduction, as reduce.json records it."""
    backend = config.get("backend")
    flags = (("--spec", config.get("spec")), ("--workload", config.get("workload")),
             ("--jobs", config.get("jobs") if config.get("jobs") != 1 else None),
             ("--gpus", ",".join(map(str, _l(config.get("gpus")))) or None),
             ("--backend", backend.get("name") if isinstance(backend, dict) else None))  # fmt: skip
    argv = ["sleuth", "reduce", *(x for f, v in flags if v and v != "local" for x in (f, str(v)))]
    return shlex.join(argv + (["--one-minimal"] if config.get("one_minimal") else []))


def _facts(view: RunDirView, s: Mapping[str, Any], spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    events = view.events
    trials = [e["trial"] for e in events if e.get("event") == "trial" and isinstance(e.get("trial"), dict)]
    base = next((e for e in events if e.get("event") == "baseline"), {})
    fl = _d(s.get("flaky")) or base
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
        n = sum(1 for e in events if e.get("event") == "candidate" and not e.get("cache_hit")) + bool(base)
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


def _axes_table(axes: Mapping[str, Any], kinds: Mapping[str, str]) -> Table:
    rows = tuple(
        (n, kinds.get(n, ""), *(_show(kinds.get(n, ""), r.get(k)) for k in ("initial", "final")),
         "" if r.get("moved") else str(r.get("why", "did not move")))
        for n, r in axes.items() if isinstance(r, dict)
    )  # fmt: skip
    return Table(("axis", "kind", "initial", "final", "why it did not move"), rows,
                 caption="The final values are those of shrunken/spec.yaml.")  # fmt: skip


def page(view: RunDirView) -> Page:
    """The report of a ``sleuth reduce`` run dir."""
    config = view.json("reduce.json")
    config = config if isinstance(config, dict) else view.start
    summary = view.json("summary.json")
    s: Mapping[str, Any] = summary if isinstance(summary, dict) else {}
    spec = _spec(view)
    kinds = _kinds(spec)
    steps, valued = _steps(view)
    if s:
        headline, status = _headline(s, kinds)
        best = next((x for x in reversed(steps) if _used(x) or x.get("phase") == "baseline"), None)
    else:
        broken = view.unreadable("summary.json")  # cut short, not JSON: the journal has the steps
        lead = f"{broken}; from the journal" if broken else "Not finished (interrupted or still running)"
        (headline, best), status = _unfinished(steps, lead), Status.UNSURE
    fig = _figure(steps, kinds, valued)
    blocks = ([fig] if fig else []) + (
        [_axes_table(s["axes"], kinds)] if isinstance(s.get("axes"), dict) else []
    )
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
    table: Block = _step_table(steps, kinds, valued) if steps else Note("No candidate was journaled yet.")
    sections.append(Section("Search steps", (table,)))
    return Page(
        verb="reduce",
        title=f"sleuth reduce: {config.get('name') or s.get('name') or view.path.name}",
        headline=headline,
        status=status,
        run_dir=str(view.path),
        facts=tuple(_facts(view, s, spec)),
        sections=tuple(sections),
        command=_command(config),
    )
