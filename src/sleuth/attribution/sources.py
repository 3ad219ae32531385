"""Sources beside the catalog: an HTTP endpoint, a command, an MCP server.

Each source receives an *excerpt* of the logs (the matched lines and each log's tail, bounded in
size and scrubbed of secrets with :func:`sleuth.secrets.scrub_text`) and answers
``{"action": "RESTART"|"STOP"|"UNKNOWN", "reason": "..."}``.  Sources are consulted concurrently,
each under its own timeout; a source that times out, errs, or answers something else *abstains*
(its status says which) and never blocks the decision.

* ``http``: POST ``{"excerpt", "root", "findings", "catalog"}`` as JSON, the answer is the body;
* ``command``: the excerpt on stdin, the answer as JSON on stdout (run through :mod:`sleuth.runner`):
  how an LLM-based analyzer plugs in;
* ``mcp``: a Model Context Protocol server (stdio command or http URL) whose ``tool`` is called
  with ``{"excerpt": ...}`` and answers the same JSON.
"""

from __future__ import annotations

import json
import queue
import shlex
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sleuth.attribution.config import SourceSpec
from sleuth.attribution.logs import LogInput
from sleuth.attribution.model import Action, Finding, Role, SourceStatus, SourceVerdict
from sleuth.secrets import scrub_text

__all__ = ["Excerpt", "build_excerpt", "consult_all", "consult_one"]

#: the most findings an excerpt lists
EXCERPT_FINDINGS = 50


@dataclass(frozen=True, slots=True)
class Excerpt:
    """What a source is shown: text, plus the catalog's own view as JSON."""

    text: str
    root: dict[str, Any] | None
    findings: list[dict[str, Any]]
    catalog: dict[str, str]

    def payload(self) -> dict[str, Any]:
        """The JSON body an HTTP source receives."""
        return {"excerpt": self.text, "root": self.root, "findings": self.findings, "catalog": self.catalog}


def build_excerpt(
    logs: Sequence[LogInput],
    findings: Sequence[Finding],
    root: Finding | None,
    *,
    catalog: dict[str, str],
    limit: int,
    hide: Callable[[str], str] = scrub_text,
) -> Excerpt:
    """The matched lines, then each log's tail, within ``limit`` bytes; every text scrubbed by ``hide``.

    The lines shown are the root first, then the other findings that could be the root, then the
    rest, in log order within each (a storm of cascades once filled them and the root was not shown).
    """
    shown = _shown(findings, root)
    parts = ["== matched lines =="]
    for f in shown:
        rank = f" rank {f.rank}" if f.rank is not None else ""
        parts.append(f"{f.file}:{f.line}{rank} [{f.signature}] {f.text}")
    budget = max(0, limit - sum(len(p) + 1 for p in parts))
    per_log = budget // max(1, len(logs))
    for log in logs:
        if per_log < 256:
            break
        parts.append(f"== tail of {log.name} ==")
        parts.append(log.tail(per_log - 64))
    # scrubbed before the cut: a secret cut in half would no longer be recognised
    text = hide("\n".join(parts))[:limit]
    scrub_f = [{**f.to_json(), "text": hide(f.text)} for f in shown]
    root_json = {**root.to_json(), "text": hide(root.text)} if root else None
    return Excerpt(text=text, root=root_json, findings=scrub_f, catalog=catalog)


def _shown(findings: Sequence[Finding], root: Finding | None) -> list[Finding]:
    """At most ``EXCERPT_FINDINGS`` findings: the root, those that could be the root, the rest."""
    rank = {Role.ROOT: 1, Role.CONFIRMATION: 1}
    order = sorted(findings, key=lambda f: 0 if f is root else rank.get(f.role, 2))
    return order[:EXCERPT_FINDINGS]


def _parse_answer(raw: Any) -> tuple[Action, str]:
    if isinstance(raw, str | bytes):
        raw = json.loads(raw)
    if not isinstance(raw, dict):
        raise ValueError("the answer is not a JSON object")
    action = str(raw.get("action", "")).strip().upper()
    if action not in ("RESTART", "STOP", "UNKNOWN"):
        raise ValueError(f"action {raw.get('action')!r} is not RESTART, STOP or UNKNOWN")
    return Action(action), str(raw.get("reason", ""))[:1000]


def _http(spec: SourceSpec, excerpt: Excerpt, timeout_s: float) -> tuple[Action, str]:
    assert spec.http is not None
    from sleuth.attribution.client import split_credentials

    body = json.dumps(excerpt.payload()).encode()
    url, auth = split_credentials(spec.http)
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **auth}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            data = resp.read(1024 * 1024)
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"HTTP {exc.code}") from None
    return _parse_answer(data)


def _command(spec: SourceSpec, excerpt: Excerpt, timeout_s: float) -> tuple[Action, str]:
    from sleuth.runner import run_tool

    argv = spec.command if isinstance(spec.command, list) else shlex.split(str(spec.command))
    res = run_tool(argv, timeout_s=timeout_s, input_text=excerpt.text)
    if res.timed_out:
        raise TimeoutError(f"no answer within {timeout_s:g}s")
    if res.rc != 0:
        raise RuntimeError(f"exit {res.rc}: {res.brief(200)}")
    return _parse_answer(res.stdout.strip())


def _mcp(spec: SourceSpec, excerpt: Excerpt, timeout_s: float) -> tuple[Action, str]:
    from sleuth.attribution._mcp import call_tool

    assert spec.mcp is not None
    return _parse_answer(call_tool(spec.mcp, spec.tool, {"excerpt": excerpt.text}, timeout_s))


_KINDS = {"http": _http, "command": _command, "mcp": _mcp}


def consult_one(spec: SourceSpec, excerpt: Excerpt, default_timeout_s: float) -> SourceVerdict:
    """Ask one source; a failure of any kind becomes an abstaining verdict naming what went wrong."""
    timeout_s = spec.timeout or default_timeout_s
    t0 = time.monotonic()
    status, action, reason = SourceStatus.OK, Action.UNKNOWN, ""
    try:
        action, reason = _KINDS[spec.kind](spec, excerpt, timeout_s)
    except TimeoutError as exc:
        status, reason = SourceStatus.TIMEOUT, str(exc) or f"no answer within {timeout_s:g}s"
    except Exception as exc:  # a source must never break the decision; it abstains and says why
        text = str(exc) or type(exc).__name__
        if "timed out" in text.lower():
            status, reason = SourceStatus.TIMEOUT, f"no answer within {timeout_s:g}s"
        else:
            status, reason = SourceStatus.ERROR, f"{type(exc).__name__}: {text}"[:300]
    return SourceVerdict(
        name=spec.label, action=action, reason=reason, status=status, seconds=time.monotonic() - t0
    )


def consult_all(
    specs: Sequence[SourceSpec], excerpt: Excerpt, default_timeout_s: float
) -> list[SourceVerdict]:
    """Every source at once, in daemon threads; the verdicts in the order of ``specs``.

    A source still running after its timeout (plus a second of grace) is reported as timed out
    and left behind (its thread is a daemon; a command source's process is stopped by the runner).
    """
    if not specs:
        return []
    done: queue.Queue[tuple[int, SourceVerdict]] = queue.Queue()
    for i, spec in enumerate(specs):
        threading.Thread(
            target=lambda i=i, spec=spec: done.put((i, consult_one(spec, excerpt, default_timeout_s))),
            name=f"sleuth-source-{i}",
            daemon=True,
        ).start()
    out: dict[int, SourceVerdict] = {}
    start = time.monotonic()
    limit = max(s.timeout or default_timeout_s for s in specs) + 1.0
    while len(out) < len(specs):
        left = limit - (time.monotonic() - start)
        if left <= 0:
            break
        try:
            i, verdict = done.get(timeout=left)
        except queue.Empty:
            break
        out[i] = verdict
    for i, spec in enumerate(specs):
        if i not in out:
            t = spec.timeout or default_timeout_s
            out[i] = SourceVerdict(
                name=spec.label,
                action=Action.UNKNOWN,
                reason=f"no answer within {t:g}s",
                status=SourceStatus.TIMEOUT,
                seconds=time.monotonic() - start,
            )
    return [out[i] for i in range(len(specs))]
