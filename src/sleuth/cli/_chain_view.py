"""The console lines of the commits stage (``bisect images --source``, ``bisect image-commits``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

__all__ = ["render_commits"]


def render_commits(con: Console, s: dict[str, Any], *, stage: bool) -> None:
    """The culprit with the other sources' reference commits, and what the builds cost.

    ``stage``: ``s`` is the second stage of ``bisect images`` (its answer is printed whole here);
    else the answer line was printed already and only the references and builds follow.
    """
    images = s.get("images") or {}
    if stage:
        where = f" inside {escape(images['failing'])}" if images.get("failing") else ""
        head = f"[bold]commits stage[/]{where}: "
        if s.get("status") == "found" and s.get("first_bad") and s.get("last_good"):
            con.print(
                f"{head}[bold green]first bad[/] {escape(str(s.get('culprit_repo', '')))} "
                f"{escape(s['first_bad']['label'])}  (last good {escape(s['last_good']['label'])})",
                soft_wrap=True,
                highlight=False,
            )
            if s["first_bad"].get("title"):
                con.print(f"  {escape(s['first_bad']['title'])}", soft_wrap=True, highlight=False)
        else:
            con.print(f"{head}[bold yellow]{escape(str(s.get('status')))}[/]", soft_wrap=True)
        if s.get("note"):
            con.print(f"  note: {escape(str(s['note']))}", soft_wrap=True, highlight=False)
    comps = s.get("components") or {}
    culprit = s.get("culprit_repo")
    refs = {k: v for k, v in comps.items() if k != culprit}
    if culprit and comps:
        con.print(f"  culprit: {escape(culprit)} {escape(comps[culprit])}", soft_wrap=True, highlight=False)
    if refs:
        shown = ", ".join(f"{escape(k)} {escape(v)}" for k, v in refs.items())
        con.print(f"  reference commits: {shown}", soft_wrap=True, highlight=False)
    builds = s.get("builds") or []
    if builds:
        total = sum(b["seconds"] for b in builds)
        con.print(
            f"  {len(builds)} builds, {total:.1f}s in all (first {builds[0]['seconds']:.1f}s, "
            f"last {builds[-1]['seconds']:.1f}s)",
            soft_wrap=True,
            highlight=False,
        )
    if stage and s.get("run_dir"):
        con.print(
            f"  {s.get('tests', 0)} tests; report: {escape(str(s['run_dir']))}/report.md", soft_wrap=True
        )
