"""The end of every reduction (done, budget spent, interrupted): trace, bundle, summary, scrub pass."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from typing import TYPE_CHECKING, Any

from sleuth.errors import ExitCode
from sleuth.journal import RunDir, atomic_write_text
from sleuth.reduce.bundle import write_shrunken
from sleuth.reduce.driver import Driver
from sleuth.reduce.plan import materialize
from sleuth.reduce.scratch import PRIVATE_DIR
from sleuth.reduce.ship import scrub_tree, ship_md, unscrubbed

if TYPE_CHECKING:
    from sleuth.reduce.loading import Loaded
    from sleuth.reduce.session import Result

__all__ = ["FINISHED", "exit_code", "finish"]

_EXIT = {
    "reduced": ExitCode.OK,
    "not_reduced": ExitCode.OK,
    "budget_exhausted": ExitCode.OK,
    "not_reproducible": ExitCode.INCONCLUSIVE,
    "interrupted": ExitCode.INTERRUPTED,
}

#: the statuses of a reduction that ended by itself: a resume runs nothing and writes nothing
#: (``budget_exhausted`` and ``interrupted`` go on: a resume starts a new clock)
FINISHED = frozenset({"reduced", "not_reduced", "not_reproducible"})


def exit_code(status: str) -> ExitCode:
    """The exit code of a reduction that ended with ``status``."""
    return _EXIT.get(status, ExitCode.OK)


#: why an axis no candidate was tried on did not move, by the status the run ended with
_UNTRIED = {
    "not_reproducible": "not searched: the original did not reproduce",
    "interrupted": "not searched: interrupted",
}


def _why(driver: Driver, name: str, pinned: bool, stopped: str | None, status: str) -> str:
    if pinned:
        return "pinned in the spec"
    tried = [r for r in driver.trace if r.get("axis") == name]
    if not tried:
        if stopped:
            return f"not searched: {stopped}"
        return _UNTRIED.get(status, "already at its smallest value")
    outcomes = Counter(o for r in tried for o in r["outcomes"])
    others = sorted(
        {str(r["signature"]) for r in tried if "other_failure" in r["outcomes"] and r["signature"]}
    )
    counts = ", ".join(f"{k} x{v}" for k, v in outcomes.items())
    text = f"{len(tried)} candidate(s) tried, none reproduced ({counts})"
    if others:
        text += f"; other failures: {'; '.join(others[:3])}"
    return text


def finish(
    loaded: Loaded, run_dir: RunDir, driver: Driver | None, status: str, *, output: Any, prepared: Any
) -> Result:
    """Write the trace, the bundle and ``summary.json``; scrub the run dir; the ``--json`` document."""
    from sleuth.reduce.rundir import save_summary
    from sleuth.reduce.session import Result

    plan, sc = loaded.plan, loaded.scrubber
    path = run_dir.path
    doc: dict[str, Any] = {"status": status, "name": plan.name, "run_dir": str(path), "bundle_dir": str(path)}
    try:
        if driver is not None and driver.rate is not None:
            initial, final = plan.initial_point(), driver.reduction.result()
            moved = {a.name for a in plan.axes if final[a.name] != initial[a.name]}
            if status == "done":
                status = "reduced" if moved else "not_reduced"
            axes = {
                a.name: {
                    "initial": a.render(initial[a.name]),
                    "final": a.render(final[a.name]),
                    "moved": a.name in moved,
                }
                for a in plan.axes
            }
            free = [a.search() for a in plan.axes if not a.search().pinned]
            floored = all(x.strategy(final[x.name], one_minimal=False) is None for x in free)
            if status == "reduced" and floored:
                doc["note"] = (
                    "every axis reached its smallest value: the failure may not depend on these inputs "
                    "at all (check that the oracle tells this failure from a pass)"
                )
            for a in plan.axes:
                if a.name not in moved:
                    axes[a.name]["why"] = _why(driver, a.name, a.search().pinned, driver.stopped, status)
            calls = sum(1 for r in driver.trace if not r.get("cache_hit"))
            doc.update(
                status=status,
                final={"axes": {n: r["final"] for n, r in axes.items()}},
                reproduction_rate=driver.rate.describe()["reproduction_rate"],
                oracle_calls=calls,
                trials=driver.trials_used,
                signature=driver.target
                or (
                    f"output matches {plan.spec.oracle.pattern!r}"
                    if plan.spec.oracle.kind == "regex"
                    else "none (the original never failed)"
                ),
                axes=axes,
                flaky=driver.rate.describe(),
                timeout_s=driver.timeout,
                rounds=driver.reduction.round,
                cache_hits=sum(1 for r in driver.trace if r.get("cache_hit")),
                wasted_trials=driver.wasted,
                stopped=driver.stopped,
            )
            trace = "".join(json.dumps(sc.obj(r)) + "\n" for r in driver.trace)
            atomic_write_text(path / "reduction_trace.jsonl", trace)
            if status != "not_reproducible":
                cand = materialize(plan, final)
                snap: dict[str, Any]
                try:
                    snap = prepared.snapshot() if prepared is not None else {}
                except Exception as exc:  # a snapshot is evidence, never a reason to lose the bundle
                    snap = {"placeholder": True, "reason": f"snapshot failed: {type(exc).__name__}: {exc}"}
                rate = driver.rate.describe()
                level, original = f"{float(rate['confidence']) * 100:g}% CI", rate["original"]
                header = [
                    f"Failure: {doc['signature']}",
                    f"Reproduction rate of the original: {original['reproduced']}/{original['trials']} "
                    f"({level} {original['reproduction_rate_ci']})",
                    f"Reproduction rate while reducing: {rate['reproduction_rate']} "
                    f"({level} {rate['reproduction_rate_ci']}); status {status}",
                ]
                notes = write_shrunken(
                    plan,
                    cand,
                    final,
                    path,
                    output_root=output,
                    scrubber=sc,
                    target=driver.target,
                    timeout=driver.timeout,
                    snapshot=snap,
                    header=header,
                )
                doc["inputs"] = notes["inputs"]
            else:
                doc["note"] = (
                    f"the original did not reproduce in {driver.trials_used} trial(s); nothing was "
                    "reduced (raise budget.baseline_trials if the failure is rare)"
                )
        doc = sc.obj(doc)
        save_summary(path, doc)
        run_dir.journal.append("done", status=doc["status"])
    finally:
        run_dir.close()
    for work in path.glob("candidates/*/work"):  # an interrupted candidate's scratch copy
        shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(path / PRIVATE_DIR, ignore_errors=True)  # large files' private copies, file_sets' symlinks
    changed: list[str] = []
    large = scrub_tree(path, sc, changed=changed)
    hidden = sorted(p for p in changed if p.startswith("shrunken/inputs/"))
    if hidden:  # the reproducer may need them back: SHIP.md (and the archive's) names them
        doc["hidden_in_inputs"] = sc.obj(hidden)
        save_summary(path, doc)
    inputs = [f"inputs/: {doc['inputs']}"] if doc.get("inputs") else []
    if (path / "shrunken").is_dir():
        ship_notes = [*inputs, *unscrubbed(large, "shrunken/")]
        atomic_write_text(path / "SHIP.md", ship_md(path, sc, doc, notes=ship_notes))
    return Result(doc=doc, exit_code=exit_code(doc["status"]), run_dir=path)
