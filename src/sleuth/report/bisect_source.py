"""What the ``sleuth bisect`` page (:mod:`sleuth.report.bisect`) reads from a run dir: the summary
(``summary.json``, else the ``end`` event's copy) with every key of the wrong shape left out, the
journal's tests in order with their stage, session and wall time, and the view hiding what the
bisection itself hid (its ``secrets.json``).

Nothing here words or draws anything; a run dir's odd value is dropped, never a crash.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sleuth.report.source import RunDirView

__all__ = ["journaled_tests", "run_summary", "with_run_secrets"]


def with_run_secrets(view: RunDirView) -> RunDirView:
    """``view`` hiding what the bisection itself hid.  Its ``secrets.json`` keeps each hidden flag
    whole (``API_KEY=value``, ``--password=value``) for resume, so the values inside them are found
    as the run found them (:func:`sleuth.bisect.secrecy.hidden`): a test's log holds the bare value."""
    from sleuth.bisect.secrecy import hidden, restore_start
    from sleuth.errors import SleuthError

    if not isinstance(view.start.get("redacted"), dict):
        return view
    try:
        full = restore_start(view.path, view.start, environ={})
    except (SleuthError, ValueError, TypeError, KeyError):  # secrets.json gone or short, or mangled
        return view
    secrets, _, _ = hidden(full.get("flags") or {}, full.get("source") or {})
    return replace(view, secrets=view.secrets.merged(secrets))


#: the summary's keys that hold a mapping, and those that hold a list (anything else there is dropped)
_MAPS = ("first_bad", "last_good", "command", "perf", "resumed", "components", "evidence")
_LISTS = ("suspects", "skipped", "other_failures", "skip_requested", "commits_between", "packages_changed",
          "release_notes")  # fmt: skip


def _shaped(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with every mapping or list key of the wrong type left out: the page shows what exists."""
    out = {k: v for k, v in doc.items() if not (k in _MAPS and not isinstance(v, dict))}
    out = {k: v for k, v in out.items() if not (k in _LISTS and not isinstance(v, list))}
    if "perf" in out:
        perf = out["perf"]
        out["perf"] = {k: v for k, v in perf.items() if not (k == "verdicts" and not isinstance(v, dict))}
        for key in ("candidates", "comparisons", "steps"):
            got = perf.get(key)
            out["perf"][key] = [x for x in got if isinstance(x, dict)] if isinstance(got, list) else []
    return out


def run_summary(view: RunDirView) -> dict[str, Any] | None:
    doc = view.json("summary.json")
    if not isinstance(doc, dict):
        end = next((e for e in reversed(view.events) if e.get("event") == "end"), None)
        doc = (end or {}).get("summary")
    return _shaped(doc) if isinstance(doc, dict) else None


def journaled_tests(view: RunDirView) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """The ``test`` events in journal order, each with ``_stage`` (its candidate list), ``_session``
    (1 + the resumes before it), ``_wall`` and ``_retried``; and every stage's candidate list."""
    walls: dict[str, Any] = {}
    stages: list[list[str]] = []
    tests: list[dict[str, Any]] = []
    session = 1
    errors: set[str] = set()
    for e in view.events:
        kind = e.get("event")
        if kind == "candidates" and isinstance(e.get("labels"), list):
            stages.append([str(x) for x in e["labels"]])
        elif kind == "resume":
            session += 1
        elif kind == "trial" and isinstance(e.get("trial"), dict):
            walls[f"{e.get('subdir')}/{e['trial'].get('id')}"] = e["trial"].get("wall_s")
        elif kind == "test" and isinstance(e.get("seq"), int):
            where, _, run = str(e.get("trial_dir", "")).rpartition("/run-")
            retried = session > 1 and f"{where}/run-{int(run) - 1 if run.isdigit() else ''}" in errors
            index = e.get("index")
            tests.append(
                {
                    **e,
                    **{k: str(e.get(k) or "") for k in ("label", "phase", "outcome", "counted", "trial_dir")},
                    "index": index if isinstance(index, int) and not isinstance(index, bool) else None,
                    "_stage": max(0, len(stages) - 1),
                    "_session": session,
                    "_wall": walls.get(str(e.get("trial_dir"))),
                    "_retried": retried,
                }
            )
            if e.get("outcome") == "error":
                errors.add(str(e.get("trial_dir")))
    for t in tests:  # a trial event is journaled before its test event, but a recovered test has none
        t["_wall"] = t["_wall"] if t["_wall"] is not None else walls.get(str(t.get("trial_dir")))
    return tests, stages
