"""``sleuth gate check --html``: real histories recorded with the real CLI, a real headless Chromium."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult
from tests.report.conftest import external_refs, parse, visible_text

EVIL = "<img src=x onerror=alert(1)>"
TOKEN = "ghp_" + "Qw7" * 10
POLICY = f"""metrics:
  load_s: {{regression: {{baseline_runs: 10, recent_runs: 2, min_effect: "5%"}}}}
  save_s: {{regression: {{baseline_runs: 10, recent_runs: 2}}, mode: soft}}
  allocs: {{kind: counter}}
  budget_s: {{budget: {{max: 300, runs: 10}}, regression: null}}
  gone_s: {{}}
  "{EVIL}": {{kind: counter}}
"""


def _record(
    sleuth: Callable[..., CliResult], tmp: Path, runs: list[dict[str, float]], prefix: str = "r", **meta: Any
) -> str:
    """Record one run per dict of metric values (``r00``, ``r01`` ...) with ``gate record --from-dir``."""
    db = f"sqlite:///{tmp / 'history.db'}"
    for i, values in enumerate(runs):
        folder = tmp / "artifacts" / f"bench-{i:02d}"
        folder.mkdir(parents=True)
        rows = "".join(f"{m},{v},{'count' if m in ('allocs', EVIL) else 's'}\n" for m, v in values.items())
        (folder / "r.csv").write_text("metric,value,unit\n" + rows)
        doc = {"suite": "s", "run_id": f"{prefix}{i:02d}", "created_at": f"2025-01-01T00:00:{i:02d}Z",
               "status": "success", "branch": "main", "files": ["r.csv"], **meta}  # fmt: skip
        (folder / "sleuth-gate.json").write_text(json.dumps(doc))
    made = sleuth("gate", "record", "--from-dir", tmp / "artifacts", "--json", "--db", db)
    assert made.rc == 0, made.stderr
    return db


def _history(rng: random.Random, n: int = 14) -> list[dict[str, float]]:
    """load_s 12% slower in the last two runs, allocs up by one in the last, the rest steady."""
    return [
        {
            "load_s": round(100 + rng.gauss(0, 1) + (12 if i >= n - 2 else 0), 3),
            "save_s": round(50 + rng.gauss(0, 1), 3),
            "allocs": 3 + (i == n - 1),
            "budget_s": round(290 + rng.gauss(0, 3), 2),
            EVIL: 7,
        }
        for i in range(n)
    ]


@pytest.fixture
def history(sleuth: Callable[..., CliResult], tmp_path: Path) -> tuple[str, Path]:
    db = _record(sleuth, tmp_path, _history(random.Random(3)))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return db, policy


def _check(sleuth: Callable[..., CliResult], db: str, policy: Path, *extra: str | Path) -> CliResult:
    return sleuth("gate", "check", "--suite", "s", "--policy", policy, "--db", db, *extra)


def test_the_page_says_what_the_check_says_and_draws_each_metric(
    sleuth: Callable[..., CliResult],
    history: tuple[str, Path],
    tmp_path: Path,
    browser: Callable[[Path], str],
) -> None:
    db, policy = history
    page, md = tmp_path / "out" / "check.html", tmp_path / "check.md"
    made = _check(sleuth, db, policy, "--json", "--html", page, "--markdown", md)
    doc = made.json()  # stdout stays one JSON document
    assert made.rc == doc["exit_code"] == 1, made.stderr
    assert md.is_file() and "sleuth gate check" in md.read_text()
    dom = browser(page)
    text = visible_text(dom)
    head = " ".join(" ".join(parse(dom).by_id["headline"]).split())
    counts = ", ".join(f"{v} {k}" for k, v in doc["counts"].items() if v)
    failed = [m["metric"] for m in doc["metrics"] if m["verdict"] == "FAIL" and m["mode"] == "hard"]
    assert head == f"{counts} (exit {doc['exit_code']}); hard FAIL: {', '.join(failed)}"
    assert 'class="headline bad"' in dom
    for m in doc["metrics"]:
        assert f"{m['metric']}: {m['verdict']}" in text  # each drawn metric's section
        for f in m["findings"]:
            assert " ".join(f["summary"].split()) in text
    # one figure per metric with runs, inline SVG; the failing ones come first
    with_runs = [m for m in doc["metrics"] if m["runs"]]
    assert [t for t, _ in parse(dom).tags].count("svg") == len(with_runs) == 5
    order = [text.index(f"{m['metric']}: {m['verdict']}") for m in doc["metrics"]]
    ranks = {"FAIL": 0, "INCONCLUSIVE": 1, "INSUFFICIENT": 2, "PASS": 3}
    by_rank = sorted(
        range(len(order)), key=lambda i: (ranks[doc["metrics"][i]["verdict"]], doc["metrics"][i]["mode"], i)
    )  # hard before soft
    assert sorted(range(len(order)), key=lambda i: order[i]) == by_rank
    # the regression's change with its interval, in the table
    load = next(m for m in doc["metrics"] if m["metric"] == "load_s")
    reg = load["findings"][0]
    assert f"{reg['relative_shift']:+.2%} [" in text
    assert "needs 11 runs with this metric" in text and "No recorded run has this metric" in text
    # markup in a metric name is text, never an element; nothing is fetched
    assert EVIL in text
    assert not any(tag == "img" for tag, _ in parse(dom).tags)
    assert external_refs(dom) == []


def test_the_same_history_gives_the_same_bytes(
    sleuth: Callable[..., CliResult], history: tuple[str, Path], tmp_path: Path
) -> None:
    db, policy = history
    one, two = tmp_path / "one.html", tmp_path / "two.html"
    assert _check(sleuth, db, policy, "--html", one).rc == 1
    assert _check(sleuth, db, policy, "--html", two, "--junit", tmp_path / "j.xml").rc == 1
    assert one.read_bytes() == two.read_bytes()


def test_a_bad_html_path_is_one_line_exit_2_and_writes_nothing(
    sleuth: Callable[..., CliResult], history: tuple[str, Path], tmp_path: Path
) -> None:
    db, policy = history
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for where, said in [
        ("adir", "--html adir: is a directory"),
        ("afile/page.html", "--html afile/page.html: afile is not a directory"),
        ("check.md", "--html check.md: the same file as --markdown"),
    ]:
        bad = _check(sleuth, db, policy, "--html", where, "--markdown", "check.md", "--json")
        assert bad.rc == 2 and bad.stdout == ""
        assert bad.stderr.startswith(f"error: {said}"), bad.stderr
        assert len(bad.stderr.strip().splitlines()) <= 2 and "Traceback" not in bad.stderr
        assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no page, no markdown, no temp file
    # a bad --markdown leaves no page either: every path is checked before anything is read
    worse = _check(sleuth, db, policy, "--html", "ok.html", "--markdown", "adir")
    assert worse.rc == 2 and not (tmp_path / "ok.html").exists()


def test_secrets_in_run_ids_names_and_provenance_stay_hidden(
    sleuth: Callable[..., CliResult], tmp_path: Path, browser: Callable[[Path], str]
) -> None:
    runs = [{"load_s": 100.0 + i % 3, f"fetch {TOKEN}": 5.0} for i in range(12)]
    prov = {
        "host": {"hostname": f"box-{TOKEN}"},
        "runner": {"RUNNER_NAME": TOKEN},
        "api_key": "plain-value-1",
    }
    db = _record(sleuth, tmp_path, runs, provenance=prov)
    # the latest run's id is a token: record refuses one now, an older sleuth stored it as given
    from sleuth.gate.model import Run, Sample
    from sleuth.gate.store import open_store

    store = open_store(db, create=True)
    try:
        samples = (Sample("load_s", (101.0,), "s"), Sample(f"fetch {TOKEN}", (5.0,), "s"))
        assert store.add_run(Run(suite="s", run_id=f"{TOKEN}99", created_at="2025-01-01T00:01:00.000000Z",
                                 samples=samples, provenance=prov))  # fmt: skip
    finally:
        store.close()
    policy = tmp_path / "policy.yaml"
    policy.write_text("metrics:\n  '*': {budget: {max: 500, runs: 10}}\n")
    page, md = tmp_path / "p.html", tmp_path / "p.md"
    made = _check(sleuth, db, policy, "--html", page, "--markdown", md, "--json")
    assert made.rc == 0, made.stderr
    assert TOKEN not in md.read_text()  # the markdown hides it: so must the page
    html = page.read_text()
    assert TOKEN not in html and "plain-value-1" not in html
    text = visible_text(browser(page))
    assert "fetch <redacted>: PASS" in text and "measured on box-<redacted>; runner <redacted>" in text
    assert "latest run <redacted> at" in text


def test_a_many_metric_check_draws_thirty_and_keeps_the_failures_in_the_table(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    n = 12
    runs = [{f"m{k:03d}": 3 + (k < 4 and i == n - 1) for k in range(240)} for i in range(n)]
    db = _record(sleuth, tmp_path, runs)
    policy = tmp_path / "policy.yaml"
    policy.write_text("metrics:\n  '*': {kind: counter}\n")
    page = tmp_path / "big.html"
    made = _check(sleuth, db, policy, "--html", page, "--json")
    doc = made.json()
    assert made.rc == 1 and doc["counts"] == {"PASS": 236, "FAIL": 4, "INCONCLUSIVE": 0, "INSUFFICIENT": 0}
    html = page.read_text()
    tags = [t for t, _ in parse(html).tags]
    assert tags.count("svg") == 30
    text = visible_text(html)
    assert "210 more metric(s) not drawn" in text
    for k in range(4):  # the failing ones are drawn and are the table's rows
        assert f"m{k:03d}: FAIL" in text
    assert (
        tags.count("tr") == 30 * 2 + 1 + 4
    )  # each figure's findings (header + row), the table's header, 4 rows
    assert "4 of 240 rows shown." in text


def test_a_check_with_nothing_recorded_still_has_a_page(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("metrics:\n  '*': {kind: counter}\n")
    page = tmp_path / "empty.html"
    made = _check(sleuth, f"sqlite:///{tmp_path / 'none.db'}", policy, "--html", page, "--json")
    assert made.rc == made.json()["exit_code"] == 3
    text = visible_text(page.read_text())
    assert "INSUFFICIENT: no recorded runs match the policy yet." in text


def test_changepoints_page_draws_the_series_with_the_change_points_the_command_found(
    sleuth: Callable[..., CliResult], tmp_path: Path, browser: Callable[[Path], str]
) -> None:
    rng = random.Random(5)
    db = _record(
        sleuth, tmp_path, [{"load_s": round(100 + rng.gauss(0, 1) + 10 * (i >= 15), 3)} for i in range(30)]
    )
    page, md = tmp_path / "cp.html", tmp_path / "cp.md"
    made = sleuth("gate", "changepoints", "--suite", "s", "--metric", "load_s", "--db", db, "--json",
                  "--html", page, "--markdown", md)  # fmt: skip
    doc = made.json()
    assert made.rc == 0 and doc["change_points"], made.stderr
    dom = browser(page)
    text = visible_text(dom)
    head = " ".join(" ".join(parse(dom).by_id["headline"]).split())
    assert head.startswith(f"{len(doc['change_points'])} change point(s) in {doc['n']} points: ")
    for cp in doc["change_points"]:
        assert f"{cp['after'] / cp['before'] - 1:+.2%} at {cp['index']}" in head
        assert f"{cp['index']} {cp['run_id']} {cp['before']:g} {cp['after']:g}" in text  # the table's row
    assert [t for t, _ in parse(dom).tags].count("svg") == 1 and external_refs(dom) == []
    # a series too short: the page says INSUFFICIENT, as the command does
    (tmp_path / "short.csv").write_text("x\n1\n2\n3\n")
    short = sleuth("gate", "changepoints", "--csv", "short.csv", "--html", "short.html", "--json")
    assert short.rc == 3 and short.json()["verdict"] == "INSUFFICIENT"
    assert "INSUFFICIENT: 3 point(s); a change point needs 10." in visible_text(
        (tmp_path / "short.html").read_text()
    )


def test_values_near_the_float_limit_are_drawn_scaled_not_a_traceback(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    """matplotlib cannot lay out a range of 1.7e308 - -1e308 (inf): the page draws in units of 1e308."""
    db = _record(
        sleuth, tmp_path, [{"huge": 1.7e308 if i >= 12 else -1e308 * (1 + i % 2 / 2)} for i in range(14)]
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text("metrics:\n  huge: {budget: {max: 1e308, runs: 10}}\n")
    made = _check(sleuth, db, policy, "--html", "huge.html", "--json")
    assert made.rc == made.json()["exit_code"] == 1, made.stderr
    cp = sleuth("gate", "changepoints", "--suite", "s", "--metric", "huge", "--db", db, "--html", "cp.html")
    assert cp.rc == 0, cp.stderr
    for page in ("huge.html", "cp.html"):
        assert [t for t, _ in parse((tmp_path / page).read_text()).tags].count("svg") == 1
