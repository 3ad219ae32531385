"""The end of a ``sleuth run``: ``summary.json``, ``report.md`` and the ``end`` event.

Trial records are never held together in memory: ``summary.json`` (and ``--json``) copy each
trial's journaled record, in trial-id order, straight from the journal into the document.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sleuth.journal import RunDir
from sleuth.model import printable
from sleuth.run_state import RunState, TrialIndex
from sleuth.run_tally import Tally, basis, exit_code_of

if TYPE_CHECKING:
    from sleuth.batch import RunConfig
    from sleuth.run_secrets import RunSecrets

__all__ = ["finish", "render_report", "until_fail_bound", "write_document"]

#: with more trials than this, report.md lists only the failing ones
ALL_ROWS_MAX = 50
#: and at most this many of them
FAIL_ROWS_MAX = 100


def until_fail_bound(passed: int, conf: float = 0.95) -> float | None:
    """Exact one-sided upper bound of a failure rate when ``passed`` trials all passed (0 failures)."""
    return 1.0 - (1.0 - conf) ** (1.0 / passed) if passed > 0 else None


def _outcome_counts(t: Tally) -> dict[str, Any]:
    return {"trials": sum(t.counts.values()), **t.counts}


def summary_data(
    config: RunConfig, run_dir: Path, state: RunState, *, interrupted: bool, stopped: str | None
) -> dict[str, Any]:
    """The ``summary`` of ``summary.json``: counts, interval, statistics, and how the run ended."""
    data = state.tally.summary(config.width)
    data["planned"] = config.trials
    if not config.backend.is_local:
        data["backend"] = config.backend.name
    if config.warmup:
        data["warmup"] = _outcome_counts(state.warmup) | {"planned": config.warmup}
    first = state.tally.first_fail
    if config.until_fail:
        block: dict[str, Any] = {"max_trials": config.trials, "reproduced": first is not None}
        if first is not None:
            tid = config.trial_id(first)
            block["first_fail"] = tid
            block["logs"] = [str(run_dir / "trials" / tid / name) for name in ("stdout", "stderr")]
        else:
            block["upper_bound"] = until_fail_bound(data["pass"])
        data["until_fail"] = block
    complete = data["trials"] >= config.trials or (config.until_fail and first is not None)
    if interrupted and not complete:
        data["interrupted"] = True
    if stopped is not None:
        data["stopped"] = stopped
    return data


def finish(
    config: RunConfig,
    run_dir: RunDir,
    state: RunState,
    secrets: RunSecrets,
    *,
    interrupted: bool,
    stopped: str | None,
) -> dict[str, Any]:
    """Write ``summary.json`` and ``report.md``, journal ``end``; return the summary data."""
    journal = run_dir.journal.path
    state.index.scan(journal)  # the loop counted each trial as it was journaled (batch._Loop)
    data = summary_data(config, run_dir.path, state, interrupted=interrupted, stopped=stopped)
    _write_atomic(
        run_dir.path / "summary.json", lambda fh: write_document(fh, run_dir.path, data, state.index, journal)
    )
    report = render_report(
        state.config, data, run_dir.path, _report_rows(config, state, journal), _host(run_dir.path)
    )
    run_dir.write_text("report.md", secrets.scrub(report) if secrets else report)
    run_dir.journal.append("end", summary=data, exit_code=exit_code_of(data))
    return data


def _write_atomic(path: Path, write: Any) -> None:
    """Stream a file into place: readers see the old one or the whole new one (never a part)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:  # mode from the umask, like any file the user creates
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_document(
    out: IO[bytes], run_dir: Path, data: Mapping[str, Any], index: TrialIndex, journal: Path
) -> None:
    """``{"run_dir", "summary", "trials": [...], "warmup_trials": [...]}``, trials in id order."""
    summary = json.dumps(data, indent=2).replace("\n", "\n  ")
    out.write(
        b'{\n  "run_dir": ' + json.dumps(str(run_dir)).encode() + b',\n  "summary": ' + summary.encode()
    )
    for key, sub in (("trials", "trials"), ("warmup_trials", "warmup")):
        if sub == "warmup" and not len(index.offsets.get(sub, ())):
            continue
        out.write(b',\n  "' + key.encode() + b'": [')
        sep = b"\n    "
        for text in index.records(journal, sub):
            out.write(sep + text)
            sep = b",\n    "
        out.write(b"\n  ]" if sep != b"\n    " else b"]")
    out.write(b"\n}\n")


def _report_rows(config: RunConfig, state: RunState, journal: Path) -> tuple[list[dict[str, Any]], bool]:
    """(rows for report.md's trial table, whether they are only the failing trials)."""
    done = sum(state.tally.counts.values())
    if done <= ALL_ROWS_MAX:
        return [json.loads(t) for t in state.index.records(journal, "trials")], False
    fails = (n for n in range(1, config.trials + 1) if state.tally.outcome_of(n) == "fail")
    rows: list[dict[str, Any]] = []
    for text in state.index.records(journal, "trials", fails):
        rows.append(json.loads(text))
        if len(rows) >= FAIL_ROWS_MAX:
            break
    return rows, True


def _host(run_dir: Path) -> str:
    try:
        snap = json.loads((run_dir / "host_env.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "not recorded"
    os_ = snap.get("os", {})
    py = snap.get("python", {})
    cpu = snap.get("cpu", {})
    gpu = snap.get("gpu", {})
    gpus = [k for k, v in gpu.items() if isinstance(v, dict) and v.get("present")]
    return (
        f"{os_.get('hostname', '?')}, {os_.get('distro') or os_.get('system', '?')}, "
        f"Python {py.get('version', '?')}, {cpu.get('count', '?')} x {cpu.get('model', '?')} CPU, "
        + (f"GPU via {', '.join(gpus)}" if gpus else "no GPU seen")
    )


def _cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _data_cell(x: Any) -> str:
    """A cell of the workload's text (a signature, a metrics.json name): its control characters (an
    escape sequence it printed) replaced too, so `cat report.md` shows text."""
    return _cell(printable(str(x)))


def _num(x: Any) -> str:
    return "-" if x is None else f"{x:.4g}"


def _secs(x: Any) -> str:
    return "-" if x is None else (f"{x:.3f}s" if x < 10 else f"{x:.1f}s")


def _rate(d: Mapping[str, Any]) -> str:
    rate, (lo, hi) = d["failure_rate"], d["failure_rate_ci"]
    if rate is None:
        return "n/a (no trial passed or failed)"
    return f"{100 * rate:.1f}% [95% CI {100 * lo:.1f}-{100 * hi:.1f}%]"


def _verdict(d: Mapping[str, Any]) -> str:
    uf = d.get("until_fail")
    if d.get("stopped"):
        return f"**stopped after {d['trials']} trial(s)**: {d['stopped']}"
    if uf is not None:
        if uf["reproduced"]:
            return f"**reproduced**: trial {uf['first_fail']} failed, after {d['trials']} trial(s)"
        bound = uf.get("upper_bound")
        ub = f"; failure rate < {100 * bound:.2g}% (95% upper bound)" if bound is not None else ""
        return f"**not reproduced** in {d['trials']} trial(s){ub}"
    if d.get("interrupted"):
        return f"**interrupted** after {d['trials']} of {d['planned']} trials"
    return f"**{d['fail']} of {d['trials']} trial(s) failed**"


def render_report(
    config: Mapping[str, Any],
    d: Mapping[str, Any],
    run_dir: Path,
    rows: tuple[list[dict[str, Any]], bool],
    host: str,
) -> str:
    """``report.md`` of a run, from its journaled (public) config and summary data."""
    env = config.get("environment") or {}
    where = env.get("kind", "host") + (f" ({', '.join(env.get('pins', []))})" if env.get("pins") else "")
    shape = f"{d['planned']} planned" + (", until the first failure" if config.get("until_fail") else "")
    shape += f", {config.get('jobs', 1)} at a time"
    backend = config.get("backend")  # journaled (secrets hidden); absent before backends
    if isinstance(backend, Mapping) and backend.get("name", "local") != "local":
        from sleuth.backends.choice import BackendChoice

        shape += f", on {BackendChoice.from_dict(backend).describe()}"
    if config.get("timeout_s"):
        shape += f", timeout {config['timeout_s']:g}s"
    if "warmup" in d:
        w = d["warmup"]
        more = "".join(f", {w[k]} {k}" for k in ("skip", "error") if w.get(k))
        shape += (
            f"; {w['trials']} warm-up trial(s) first, not counted ({w['pass']} pass, {w['fail']} fail{more})"
        )
    lines = [
        f"# sleuth run: {config.get('name', 'run')}",
        "",
        "| | |",
        "|---|---|",
        f"| command | `{_cell(shlex.join(config.get('argv', [])))}` |",
        f"| working directory | `{_cell(config.get('cwd'))}` |",
        f"| environment | {_cell(where)} |",
        f"| host | {_cell(host)} |",
        f"| trials | {_cell(shape)} |",
        f"| run dir | `{_cell(run_dir)}` |",
        "",
        "## Result",
        "",
        _verdict(d),
        "",
        f"- outcomes: {d['pass']} pass, {d['fail']} fail, {d['skip']} skip, {d['error']} error",
        f"- failure rate: {_rate(d)}",
    ]
    if d.get("until_fail", {}).get("logs"):
        lines.append(f"- logs of the failure: `{d['until_fail']['logs'][0]}`, `{d['until_fail']['logs'][1]}`")
    lines += [
        "",
        "## Timing and metrics",
        "",
        "| | n | median | p90 | min | max | nan/inf |",
        "|---|---|---|---|---|---|---|",
    ]
    w = d["wall_s"]
    n_wall = d["trials"] - d["error"]
    lines.append(f"| wall time | {n_wall} | {_secs(w['median'])} | {_secs(w['p90'])} | "
                 f"{_secs(w.get('min'))} | {_secs(w.get('max'))} | |")  # fmt: skip
    for name, m in d["metrics"].items():
        stat = " | ".join(_num(m[k]) for k in ("median", "p90", "min", "max"))
        lines.append(f"| {_data_cell(name)} | {basis(m)} | {stat} | {m.get('nonfinite', '')} |")
    if d["signatures"]:
        lines += ["", "## Failure signatures", "", "| trials | first trial | signature |", "|---|---|---|"]
        for sig, count in d["signatures"].items():
            lines.append(f"| {count} | {d['signature_first'].get(sig, '')} | {_data_cell(sig)} |")
    records, failing_only = rows
    title = f"## Failing trials ({len(records)} of {d['fail']} shown)" if failing_only else "## Trials"
    if records or not failing_only:
        lines += [
            "",
            title,
            "",
            "| trial | outcome | exit | wall | metrics | signature / reason |",
            "|---|---|---|---|---|---|",
        ]
        lines += [_row(r) for r in records]
    return "\n".join(lines) + "\n"


def _row(r: Mapping[str, Any]) -> str:
    rc = r.get("rc") if r.get("rc") is not None else (f"signal {r['signal']}" if r.get("signal") else "-")
    metrics = " ".join(
        f"{k}={v if not isinstance(v, list) else f'[{len(v)} values]'}"
        for k, v in (r.get("metrics") or {}).items()
    )
    note = r.get("signature") or r.get("reason") or r.get("error") or ""
    return (
        f"| {_cell(r.get('id'))} | {_cell(str(r.get('outcome', '')).upper())} | {_cell(rc)} | "
        f"{_secs(r.get('wall_s'))} | {_data_cell(metrics)} | {_data_cell(note)} |"
    )


def iter_trial_records(index: TrialIndex, journal: Path) -> Iterator[dict[str, Any]]:
    """Every counted trial's record, in id order (parsed; for callers that need the fields)."""
    for text in index.records(journal, "trials"):
        yield json.loads(text)
