"""The same store contract against SQLite, a directory and a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest

from sleuth.errors import UsageError
from sleuth.gate.model import Run, RunStatus, Sample
from sleuth.gate.store import open_store, parse_url
from sleuth.gate.store.base import EmptyStore

from .helpers import run


def test_round_trip_order_and_filters(store_url: str) -> None:
    store = open_store(store_url, create=True)
    try:
        # recorded out of order: history is ordered by creation time
        for i in (3, 1, 2, 0):
            status = "failure" if i == 2 else "success"
            branch = "dev" if i == 1 else "main"
            assert store.add_run(run(i, {"m": [1.0 + i, 2.0 + i], "n": 5.0}, status=status, branch=branch))
        got = store.runs("s")
        assert [r.run_id for r in got] == ["r000", "r001", "r002", "r003"]
        assert got[3].sample("m") == Sample("m", (4.0, 5.0), "u")
        assert got[3].metrics() == ["m", "n"] and got[3].commit == "c3"
        assert [r.run_id for r in store.runs("s", last=2)] == ["r002", "r003"]
        assert [r.run_id for r in store.runs("s", branch="main")] == ["r000", "r002", "r003"]
        ok = store.runs("s", statuses=[RunStatus.SUCCESS])
        assert [r.run_id for r in ok] == ["r000", "r001", "r003"]
        assert got[2].status is RunStatus.FAILURE
        assert store.suites() == ["s"]
        assert store.runs("other") == []
    finally:
        store.close()


def test_duplicate_run_id_is_kept_once_unless_replaced(store_url: str) -> None:
    store = open_store(store_url, create=True)
    try:
        assert store.add_run(run(0, {"m": 1.0}))
        assert store.has_run("s", "r000")
        assert not store.add_run(run(0, {"m": 2.0}))
        assert store.runs("s")[0].value("m") == 1.0
        assert store.add_run(run(0, {"m": 2.0}), replace=True)
        (only,) = store.runs("s")
        assert only.value("m") == 2.0
    finally:
        store.close()


def test_run_without_samples_and_provenance_survive(store_url: str) -> None:
    store = open_store(store_url, create=True)
    prov = {
        "host": {"hostname": "h"},
        "gpu": {"nvidia_smi": {"driver_version": "550.1", "cuda_version": "12.4"}},
    }
    r = Run(
        suite="s",
        run_id="failed1",
        created_at="2025-01-01T00:00:00.000000Z",
        status=RunStatus.FAILURE,
        provenance=prov,
        source={"files": [], "skipped": 3},
    )
    try:
        store.add_run(r)
        (got,) = store.runs("s")
        assert got.samples == () and got.provenance == prov and got.source["skipped"] == 3
    finally:
        store.close()


def test_many_samples_keep_their_order(store_url: str) -> None:
    values = [float(v) for v in range(300, 0, -1)]
    store = open_store(store_url, create=True)
    try:
        store.add_run(run(0, {"m": values}))
        assert list(store.runs("s")[0].sample("m").values) == values  # type: ignore[union-attr]
    finally:
        store.close()


def test_state_documents(store_url: str) -> None:
    store = open_store(store_url, create=True)
    try:
        assert store.get_state("s", "changepoints:m:*") is None
        store.put_state("s", "changepoints:m:*", {"seen": 3})
        store.put_state("s", "changepoints:m:*", {"seen": 4})
        assert store.get_state("s", "changepoints:m:*") == {"seen": 4}
    finally:
        store.close()


def test_an_unreadable_state_document_reads_as_absent(store_url: str) -> None:
    # the directory store said so; the SQL store raised JSONDecodeError out of 'changepoints --incremental'
    store = open_store(store_url, create=True)
    try:
        store.put_state("s", "k", {"seen": 1})
        if store_url.startswith("dir://"):
            next((Path(store_url[len("dir://") :]) / "s" / ".state").glob("*.json")).write_text("{bad")
        else:
            import sqlalchemy as sa

            with store.engine.begin() as conn:
                conn.execute(sa.text("UPDATE gate_state SET value = '{bad'"))
        assert store.get_state("s", "k") is None
        store.put_state("s", "k", {"seen": 2})  # rebuilt
        assert store.get_state("s", "k") == {"seen": 2}
    finally:
        store.close()


def _five_packages(store_url: str, step: float) -> None:
    """100 runs of a suite that benchmarks five packages by turns: each metric in one run of five."""
    store = open_store(store_url, create=True)
    try:
        for i in range(100):
            store.add_run(run(i, {f"pkg{i % 5}": 100.0 + (i * 7) % 3 * step}))
    finally:
        store.close()


def test_check_reads_enough_runs_for_a_metric_that_few_runs_record(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # five packages benchmarked by turns into one suite: each metric is in one run of five; the
    # check read the last 53 runs (10 with pkg0) and said "needs 11 runs" of a history holding 20
    import json

    from sleuth.cli import main

    _five_packages(store_url, 1.0)
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics:\n  pkg0: {budget: {max: 200}}\n")
    rc = main(["gate", "check", "--suite", "s", "--policy", str(policy), "--json", "--db", store_url])
    (res,) = json.loads(capsys.readouterr().out)["metrics"]
    assert (rc, res["runs"], res["verdict"]) == (0, 20, "PASS"), res["findings"]


def test_graduate_and_baseline_use_each_metric_s_last_runs(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the same five-package suite: graduate judged 2 of the last 10 runs per metric and promised
    # "8 more runs" that never came; capture took the median of 2 runs
    import json

    from sleuth.cli import main

    _five_packages(store_url, 0.1)
    rc = main(
        [
            "gate",
            "graduate",
            "--suite",
            "s",
            "--target-cv",
            "5%",
            "--mode",
            "hard",
            "--json",
            "--db",
            store_url,
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and [(m["runs"], m["verdict"]) for m in doc["metrics"]] == [(10, "OK")] * 5
    out = tmp_path / "b.json"
    assert main(["gate", "baseline", "capture", "--suite", "s", "-o", str(out), "--db", store_url]) == 0
    assert {m["runs"] for m in json.loads(out.read_text())["metrics"].values()} == {10}


def test_a_replaced_run_keeps_its_place(store_url: str, tmp_path: Path) -> None:
    # --replace without --created-at took "now": last week's run became the newest one, the run
    # every check judges
    from sleuth.cli import main

    f = tmp_path / "r.csv"
    for i in (1, 2, 3):
        f.write_text(f"m,{i}\n")
        argv = ["gate", "record", "--suite", "s", "--run-id", f"r{i}", "--no-provenance", "--db", store_url]
        assert main([*argv, "--created-at", f"2025-01-0{i}T00:00:00Z", str(f)]) == 0
    f.write_text("m,9\n")
    argv = ["gate", "record", "--suite", "s", "--run-id", "r1", "--replace", "--no-provenance"]
    assert main([*argv, "--db", store_url, str(f)]) == 0
    store = open_store(store_url, create=False)
    try:
        runs = store.runs("s")
    finally:
        store.close()
    assert [(r.run_id, r.value("m")) for r in runs] == [("r1", 9.0), ("r2", 2.0), ("r3", 3.0)]


def test_long_names_fit_every_store(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # PostgreSQL's columns hold 500 characters of a metric name (a hyperfine command line, a C++
    # template), 100 of a unit or commit, 300 of a branch: the whole run was refused there (exit 4)
    import json

    from sleuth.cli import main

    long_a, long_b = "a" * 600 + "-1", "a" * 600 + "-2"  # alike for 600 characters: still two metrics
    (tmp_path / "r.csv").write_text(f"{long_a},1,{'u' * 150}\n{long_b},2\n")
    argv = ["gate", "record", "--suite", "s", "--run-id", "1", "--no-provenance", "--db", store_url]
    assert main([*argv, "--branch", "b" * 400, "--commit", "c" * 200, str(tmp_path / "r.csv")]) == 0
    capsys.readouterr()
    assert main(["gate", "runs", "--suite", "s", "--json", "--db", store_url]) == 0
    (run_doc,) = json.loads(capsys.readouterr().out)["runs"]
    names = [s["metric"] for s in run_doc["samples"]]
    assert len(set(names)) == 2 and all(len(n) == 500 and n.startswith("a" * 480) for n in names)
    assert len(run_doc["samples"][0]["unit"]) == 100
    assert (len(run_doc["branch"]), len(run_doc["commit"])) == (300, 100)
    # the incremental state of each long metric is its own ("changepoints:<metric>:*" is longer still)
    store = open_store(store_url, create=False)
    try:
        store.put_state("s", f"changepoints:{names[0]}:*", {"seen": 1})
        store.put_state("s", f"changepoints:{names[1]}:*", {"seen": 2})
        assert store.get_state("s", f"changepoints:{names[0]}:*") == {"seen": 1}
    finally:
        store.close()


def test_a_locked_sqlite_history_is_an_infrastructure_error_in_every_call(tmp_path: Path) -> None:
    """Another job holds the file past SQLite's busy timeout (5 s): one line and exit 4, never a
    traceback, whichever call meets the lock (the state of 'changepoints --incremental' did)."""
    import sqlite3

    from sleuth.errors import InfrastructureError

    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = open_store(url, create=True)
    holder = sqlite3.connect(tmp_path / "h.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(InfrastructureError, match="locked"):
            store.put_state("s", "k", {"seen": 1})
    finally:
        holder.close()
        store.close()


def test_reading_a_history_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path / 'nope' / 'h.db'}", f"dir://{tmp_path / 'nodir'}"):
        store = open_store(url, create=False)
        assert isinstance(store, EmptyStore)
        assert store.runs("s") == [] and store.suites() == [] and store.get_state("s", "k") is None
    assert list(tmp_path.iterdir()) == []


def test_sqlite_file_without_tables_reads_empty(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "h.db"
    sqlite3.connect(db).close()
    store = open_store(f"sqlite:///{db}", create=False)
    try:
        assert store.runs("s") == [] and not store.has_run("s", "x")
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_empty_database_reads_empty_without_creating_tables(pg_url: str) -> None:
    import sqlalchemy as sa

    store = open_store(pg_url, create=False)
    try:
        assert store.runs("s") == []
    finally:
        store.close()
    eng = sa.create_engine(parse_url(pg_url).url)
    try:
        assert not sa.inspect(eng).has_table("gate_runs")
    finally:
        eng.dispose()


def test_parse_url_forms() -> None:
    assert parse_url("sqlite:///rel/h.db").path == Path("rel/h.db")
    assert parse_url("sqlite:////abs/h.db").path == Path("/abs/h.db")
    assert parse_url("dir://some/where").path == Path("some/where")
    pg = parse_url("postgresql://u:secretpw@localhost:5432/db")
    assert pg.url.startswith("postgresql+psycopg://") and "secretpw" not in pg.display
    assert parse_url("postgres://u@h/db").url.startswith("postgresql+psycopg://")
    for bad in ("history.db", "mysql://x/y", "sqlite://h.db", "sqlite:///", "dir://"):
        with pytest.raises(UsageError, match="--db"):
            parse_url(bad)


def test_a_password_without_a_user_is_hidden_too(capsys: pytest.CaptureFixture[str]) -> None:
    # an empty user (libpq takes $PGUSER) or a stray space: the rule did not read these as URLs
    for url in ("postgresql://:secretpw@127.0.0.1:1/db", "postgresql:// u:secretpw@127.0.0.1:1/db"):
        assert "secretpw" not in parse_url(url).display
        from sleuth.cli import main

        assert main(["gate", "runs", "--db", url]) != 0  # nothing listens on port 1
        err = capsys.readouterr().err
        assert "127.0.0.1" in err and "secretpw" not in err


def test_dir_store_rejects_a_corrupt_run_file(tmp_path: Path) -> None:
    from sleuth.errors import InfrastructureError

    url = f"dir://{tmp_path / 'd'}"
    store = open_store(url, create=True)
    store.add_run(run(0, {"m": 1.0}))
    (tmp_path / "d" / "s" / "r001.json").write_text("{not json")
    with pytest.raises(InfrastructureError, match=r"r001\.json"):
        store.runs("s")
    assert store.add_run(run(2, {"m": 1.0}))  # recording is not stopped by it (the index leaves it out)
    for last in (None, 1):  # and reads still are, even of the last run only
        with pytest.raises(InfrastructureError, match=r"r001\.json"):
            store.runs("s", last=last)


def _as_an_older_sleuth_recorded(i: int, metric: str, value: float) -> Run:
    """Run r{i} one hour after r{i-1} (UTC), written as sleuth recorded before times were stored in
    UTC and CSV fields were unquoted: a time with its zone offset or without microseconds, a quoted
    CSV name kept with its quotes, no ``source["reader"]``."""
    from datetime import UTC, datetime, timedelta, timezone

    t = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=i)
    created = [
        t.astimezone(timezone(timedelta(hours=5))).isoformat(),  # 2025-01-01T05:00:00+05:00
        t.strftime("%Y-%m-%dT%H:%M:%SZ"),
        t.astimezone(timezone(timedelta(hours=-8))).isoformat(),
    ][i % 3]
    return Run(
        suite="s",
        run_id=f"r{i:02d}",
        created_at=created,
        samples=(Sample(metric, (value,), "s"),),
        source={"files": [{"file": "r.csv", "format": "csv", "metrics": 1, "skipped": 0}], "skipped": 0},
    )


def test_a_history_recorded_by_an_older_sleuth_reads_as_recorded_now(store_url: str) -> None:
    """Times with a zone offset sorted as text (+05:00 read as the newest run, -08:00 as the oldest:
    `check` judged the wrong runs as the latest), and a quoted CSV name kept its quotes (the series
    of test_x[a] broke in two at the upgrade: INSUFFICIENT, exit 3, for the next ten runs)."""
    from sleuth.gate.service import metric_series

    store = open_store(store_url, create=True)
    try:
        for i in range(9):
            assert store.add_run(_as_an_older_sleuth_recorded(i, '"test_x[a]"', float(i)))
        for i in range(9, 12):  # recorded since: UTC, unquoted, and marked
            new = Run(
                suite="s",
                run_id=f"r{i:02d}",
                created_at=f"2025-01-01T{i:02d}:00:00.000000Z",
                samples=(Sample("test_x[a]", (float(i),), "s"),),
                source={"files": [{"file": "r.csv", "format": "csv"}], "reader": 2},
            )
            assert store.add_run(new)
        got = store.runs("s")
        assert [r.run_id for r in got] == [f"r{i:02d}" for i in range(12)]
        assert all(r.created_at.endswith(".000000Z") for r in got)
        assert got[5].created_at == "2025-01-01T05:00:00.000000Z"
        assert [r.run_id for r in store.runs("s", last=4)] == ["r08", "r09", "r10", "r11"]
        assert metric_series(got, "test_x[a]").values == tuple(float(i) for i in range(12))
        one = store.runs("s", metrics=["test_x[a]"])  # changepoints reads one metric
        assert metric_series(one, "test_x[a]").values == tuple(float(i) for i in range(12))
        assert store.created_at("s", "r00") == "2025-01-01T00:00:00.000000Z"  # record --replace keeps it
    finally:
        store.close()


def test_recording_into_an_older_sqlite_history_adds_the_per_metric_index(tmp_path: Path) -> None:
    """An older sleuth indexed samples by run only: reading one metric of every run (changepoints)
    read every sample of the history."""
    import sqlite3

    db = tmp_path / "h.db"
    first = open_store(f"sqlite:///{db}", create=True)
    first.add_run(run(1, {"m": 1.0}))  # the first run makes the tables
    first.close()
    with sqlite3.connect(db) as conn:  # the index as an older sleuth made it
        conn.execute("DROP INDEX ix_gate_samples_run_metric")
        conn.execute("CREATE INDEX ix_gate_samples_run ON gate_samples (run_pk)")
    store = open_store(f"sqlite:///{db}", create=True)  # what record opens
    store.add_run(run(0, {"m": 1.0}))
    store.close()
    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        plan = " ".join(
            str(r[-1])
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT value FROM gate_samples WHERE run_pk IN (1, 2) AND metric = 'm'"
            )
        )
    assert "ix_gate_samples_run_metric" in names and "ix_gate_samples_run" not in names
    assert "ix_gate_samples_run_metric (run_pk=? AND metric=?)" in plan, plan


def test_the_last_runs_of_a_long_history_recorded_out_of_order(store_url: str) -> None:
    """The directory store keeps only the newest runs while it reads (bounded memory); the answer
    is the same as sorting the whole history."""
    import random

    store = open_store(store_url, create=True)
    try:
        order = list(range(100))
        random.Random(5).shuffle(order)
        for i in order:
            store.add_run(run(i, {"m": float(i), "n": 1.0}, branch="main" if i % 3 else "dev"))
        assert [r.run_id for r in store.runs("s", last=3)] == ["r097", "r098", "r099"]
        assert [r.run_id for r in store.runs("s", last=3, branch="dev")] == ["r093", "r096", "r099"]
        one = store.runs("s", metrics=["m"])
        assert [r.value("m") for r in one] == [float(i) for i in range(100)]
        assert all(r.metrics() == ["m"] for r in one)
    finally:
        store.close()


def _loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run files the directory store reads from now on (its one loader, wrapped)."""
    from sleuth.gate.store.dirstore import DirStore

    loaded: list[str] = []
    real = DirStore._load

    def counted(self: DirStore, path: Path) -> Run:
        loaded.append(path.name)
        return real(self, path)

    monkeypatch.setattr(DirStore, "_load", counted)
    return loaded


def test_dir_store_reads_only_the_runs_a_window_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``check`` asks for the last runs: with the suite's index, only those files are read (every
    one of 2,000 run files was read for the last 11); branch and status filters come from the index."""
    store = open_store(f"dir://{tmp_path / 'd'}", create=True)
    order = list(range(40))
    order[10], order[39] = order[39], order[10]  # r039 recorded early: the time decides, not the file order
    for i in order:
        store.add_run(
            run(
                i,
                {"m": float(i)},
                branch="main" if i % 2 else "dev",
                status="failure" if i == 37 else "success",
            )
        )
    loaded = _loads(monkeypatch)
    assert [r.run_id for r in store.runs("s", last=3)] == ["r037", "r038", "r039"]
    assert sorted(loaded) == ["r037.json", "r038.json", "r039.json"]
    loaded.clear()
    got = store.runs("s", last=2, branch="main", statuses=[RunStatus.SUCCESS])
    assert [r.run_id for r in got] == ["r035", "r039"] and sorted(loaded) == ["r035.json", "r039.json"]
    assert [r.value("m") for r in got] == [35.0, 39.0]


def test_dir_store_index_is_only_a_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store an older sleuth wrote (no index), a run rewritten by another tool, a run another job
    recorded, an index that is not JSON or comes from another version: each file the index does not
    hold as it is now is read, and the answer is the whole history's; the next record lists them."""
    import json
    import os

    root = tmp_path / "d"
    store = open_store(f"dir://{root}", create=True)
    for i in range(10):
        store.add_run(run(i, {"m": float(i)}))
    folder = root / "s"
    index = folder / ".index"
    assert set(json.loads(index.read_text())["runs"]) == {f"r{i:03d}.json" for i in range(10)}
    # another tool moves r002 to the newest place, keeping the file's size; its time changes
    text = (folder / "r002.json").read_text().replace("2025-01-01T00:00:02", "2025-01-01T00:09:59")
    (folder / "r002.json").write_text(text)
    os.utime(folder / "r002.json", ns=(1, 1))  # even with an older modification time than indexed
    (folder / "r077.json").write_text(json.dumps(run(77, {"m": 77.0}).to_dict()))  # not indexed
    assert [r.run_id for r in store.runs("s", last=2)] == ["r077", "r002"]
    for bad in ("{not json", '{"sleuth": "0.0.0-other", "runs": {}}', '{"sleuth": 1, "runs": [3]}'):
        index.write_text(bad)
        assert [r.run_id for r in store.runs("s", last=3)] == ["r009", "r077", "r002"]
    index.unlink()  # a store an older sleuth wrote
    loaded = _loads(monkeypatch)
    assert len(store.runs("s", last=1)) == 1 and len(loaded) == 12  # read whole, as before
    store.add_run(run(100, {"m": 1.0}))  # lists every run again
    loaded.clear()
    assert [r.run_id for r in store.runs("s", last=2)] == ["r100", "r002"] and len(loaded) == 2
