"""What the gate keeps or quotes cut to a length (a metric name at 500 characters, a unit and a
commit at 100, a state key, a quote in an error) is hidden first and cut after: cut first, the start
of the value of a secret variable of the shell that straddled the cut stayed, the whole value no
longer there to be found.  No 8-character piece of the value reaches the store or any output.  Real
``sleuth`` processes on each store (SQLite, a directory, PostgreSQL when a server is given)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sleuth.gate.model import COMMIT_MAX, METRIC_MAX, UNIT_MAX
from tests.conftest import CliResult

#: the value of $DEPLOY_TOKEN in the shell of every command (no token shape: only its variable's
#: name makes it secret)
SECRET = "Zq7deploySecretValue4242xxAB"
ENV = {"DEPLOY_TOKEN": SECRET, "SLEUTH_GATE_DB": ""}
#: fit() keeps this many characters of a longer text, then "…" and a hash
KEPT = {METRIC_MAX: METRIC_MAX - 13, UNIT_MAX: UNIT_MAX - 13, COMMIT_MAX: COMMIT_MAX - 13}


def _pieces(value: str) -> list[str]:
    return [value[i : i + 8] for i in range(len(value) - 7)]


def _across(cut: int, filler: str = "bench case ") -> str:
    """Words, then SECRET as a word of its own from 12 characters before ``cut`` on (more than a
    piece of 8 before the cut), then more words past the cut."""
    head = (filler * (cut // len(filler) + 1))[: cut - 13] + " "
    text = f"{head}{SECRET} tail"
    assert text.index(SECRET) < cut < text.index(SECRET) + len(SECRET)
    return text + " more" * 30


def _store_text(url: str) -> str:
    """Everything the history holds, as text: the files of a SQLite or directory history (names
    too), or every row of every table of a PostgreSQL one."""
    if url.startswith("postgresql"):
        import sqlalchemy as sa

        from sleuth.gate.store import parse_url

        engine = sa.create_engine(parse_url(url).url)
        try:
            with engine.connect() as conn:
                tables = ("gate_runs", "gate_samples", "gate_state", "gate_meta")
                return "\n".join(repr(list(conn.execute(sa.text(f"SELECT * FROM {t}")))) for t in tables)
        finally:
            engine.dispose()
    root = Path(url[len("dir://") :]) if url.startswith("dir://") else Path(url[len("sqlite:///") :]).parent
    parts = []
    for p in sorted(root.rglob("*")):
        parts.append(str(p))
        if p.is_file():
            parts.append(p.read_bytes().decode("utf-8", "replace"))
    assert len(parts) > 1, f"nothing under {root}"
    return "\n".join(parts)


def _assert_hidden(*texts: str) -> None:
    for i, text in enumerate(texts):
        for piece in _pieces(SECRET):
            assert piece not in text, f"{piece!r} of the secret in text #{i}: ...{text[-200:]}"


def test_a_metric_name_unit_and_commit_hide_a_secret_that_straddles_their_cut(
    sleuth: Callable[..., CliResult], store_url: str, tmp_path: Path
) -> None:
    long_name, short_name = _across(KEPT[METRIC_MAX]), f"latency {SECRET} p50"
    (tmp_path / "r.json").write_text(
        json.dumps({"metrics": [
            {"metric": long_name, "value": [1.0, 2.0], "unit": _across(KEPT[UNIT_MAX], "ms ")},
            {"metric": short_name, "value": [3.0]},
        ]})
    )  # fmt: skip
    commit = _across(KEPT[COMMIT_MAX], "v1 ")
    rec = sleuth("gate", "record", "--suite", "s", "--run-id", "1", "--commit", commit, "--no-provenance",
                 "--json", "--db", store_url, "r.json", env=ENV)  # fmt: skip
    assert rec.rc == 0, rec.stderr
    runs = sleuth("gate", "runs", "--suite", "s", "--json", "--db", store_url, env=ENV)
    assert runs.rc == 0, runs.stderr
    (run,) = runs.json()["runs"]
    names = [s["metric"] for s in run["samples"]]
    assert names[1] == "latency <redacted> p50"
    # hidden, then cut: the name is its words up to the marker (cut itself), then the fitted end
    assert len(names[0]) == METRIC_MAX and names[0].startswith(
        long_name[: long_name.index(SECRET)] + "<redac"
    )
    assert run["samples"][0]["unit"].startswith("ms ms") and "<redac" in run["samples"][0]["unit"]
    assert run["commit"].startswith("v1 v1") and "<redac" in run["commit"]
    assert len(run["samples"][0]["unit"]) == UNIT_MAX and len(run["commit"]) == COMMIT_MAX
    shown = sleuth("gate", "runs", "--suite", "s", "--db", store_url, env=ENV)
    _assert_hidden(_store_text(store_url), rec.stdout, rec.stderr, runs.stdout, runs.stderr, shown.stdout)


def test_the_same_name_recorded_twice_is_one_series(sleuth: Callable[..., CliResult], tmp_path: Path) -> None:
    """The name kept is the same for every run that holds it (the hash is of the hidden name)."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    name = _across(KEPT[METRIC_MAX])
    for i in range(3):
        (tmp_path / f"r{i}.json").write_text(json.dumps({name: [1.0 + i]}))
        r = sleuth("gate", "record", "--suite", "s", "--run-id", str(i), "--no-provenance", "--db", db,
                   f"r{i}.json", env=ENV)  # fmt: skip
        assert r.rc == 0, r.stderr
    runs = sleuth("gate", "runs", "--suite", "s", "--json", "--db", db, env=ENV).json()["runs"]
    assert len({s["metric"] for r in runs for s in r["samples"]}) == 1


def test_an_incremental_state_key_hides_the_secret_of_its_metric(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    """A history recorded where the value was no secret (the shell had no $DEPLOY_TOKEN) holds it in
    a name; ``changepoints --incremental`` keys its state by the name, cut at 150 characters in a
    directory store: the key hides it first."""
    db = f"dir://{tmp_path / 'hist'}"
    name = _across(120)
    for i in range(12):
        (tmp_path / f"r{i}.json").write_text(json.dumps({name: [10.0 + 5 * (i >= 6) + 0.01 * i]}))
        r = sleuth("gate", "record", "--suite", "s", "--run-id", str(i), "--no-provenance", "--db", db,
                   f"r{i}.json", env={"SLEUTH_GATE_DB": ""})  # fmt: skip
        assert r.rc == 0, r.stderr
    cp = sleuth("gate", "changepoints", "--suite", "s", "--metric", name, "--incremental", "--json", "--db", db,
                env=ENV)  # fmt: skip
    assert cp.rc in (0, 1), cp.stderr
    states = [p for p in (tmp_path / "hist").rglob("*") if "changepoints" in p.name]
    assert states, sorted(map(str, (tmp_path / "hist").rglob("*")))
    _assert_hidden(*(p.name for p in states), cp.stdout, cp.stderr)


def test_a_baseline_files_quoted_value_is_hidden_before_it_is_cut(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    quoted = "b.json: suite: must be a string, got ['"  # the message is cut at 300 characters
    (tmp_path / "b.json").write_text(json.dumps({"suite": [_across(300 - len(quoted), "x ")], "metrics": {}}))
    r = sleuth("gate", "baseline", "diff", "b.json", "--db", f"dir://{tmp_path / 'h'}", env=ENV)
    assert r.rc == 2, r.stderr
    assert r.stderr.startswith(f"error: {quoted}x x"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    _assert_hidden(r.stdout, r.stderr)


def test_a_database_error_is_hidden_before_it_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver's message (a host name it could not resolve) quoted in one line of 300 characters."""
    from sleuth.gate.store.sqlerrors import one_line

    monkeypatch.setenv("DEPLOY_TOKEN", SECRET)
    line = one_line(Exception(_across(290, "host h.")))
    assert len(line) == 300 and "<redacted> tail" in line, line
    _assert_hidden(line)
