"""Where ``--db`` puts a history, and what a failed write leaves.

A path that cannot hold a history (a location that cannot be written, a history that cannot be
read; the names too long and folders that are files are in test_badinput.py's corpus) is the user's
input: exit 2, one line naming ``--db``, nothing made.  A database that stays locked is the machine's:
exit 4.  A first write that fails takes back what it made: the SQLite file and its folders, and the
tables of an existing empty SQLite file or PostgreSQL database (they are made in the run's transaction).  Real ``sleuth`` processes, real
SQLite files and a real PostgreSQL server (``SLEUTH_TEST_POSTGRES_URL``).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.badinput import assert_usage_error, tree_state
from tests.conftest import CliResult

from .conftest import DATA

GO = str(DATA / "go-bench.txt")
REC = ("gate", "record", "--suite", "s", "--run-id", "1", "--no-provenance")
ENV = {"SLEUTH_GATE_DB": ""}

not_root = pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes and reads every file: a closed one takes a non-root user"
)


@pytest.fixture
def closed(tmp_path: Path) -> Iterator[Path]:
    """A folder no one but root may write in (put back afterwards, so that pytest can remove it)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    yield folder
    folder.chmod(0o755)


def _one_error(r: CliResult, before: dict[str, str], after: dict[str, str], *mentions: str) -> None:
    assert_usage_error(r.rc, r.stdout, r.stderr, ["--db", *mentions], before=before, after=after)


@not_root
@pytest.mark.parametrize("db", ["ro/h.db", "ro/new/deeper/h.db"])
def test_record_into_a_folder_it_cannot_write_is_a_usage_error(
    sleuth: Callable[..., CliResult], tmp_path: Path, closed: Path, db: str
) -> None:
    closed.chmod(0o555)
    before = tree_state(tmp_path)
    r = sleuth(*REC, "--db", f"sqlite:///{db}", GO, env=ENV)
    _one_error(r, before, tree_state(tmp_path), "ro", "cannot be written in (permission denied)")
    dirs = sleuth(*REC, "--db", f"dir://{db}", GO, env=ENV)
    _one_error(dirs, before, tree_state(tmp_path), "ro", "cannot be written in")


#: run "$@" with the folder "$1" read-only: a read-only bind mount of it, in a mount namespace of its
#: own (root writes past a chmod; a read-only file system stops root too, and this one ends with it)
_READ_ONLY_MOUNT = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


def _with_read_only(folder: Path, cwd: Path, *args: str) -> CliResult:
    """``sleuth ARGS`` in ``cwd`` while ``folder`` cannot be written: by chmod for a user, by a
    read-only bind mount for root (skipped where a mount namespace cannot be had)."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "sleuth", *args]
    env = {**os.environ, **ENV}
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        finally:
            folder.chmod(0o755)
        return CliResult(proc.returncode, proc.stdout, proc.stderr)
    mount = ["unshare", "--mount", "sh", "-c", _READ_ONLY_MOUNT, "sh", str(folder)]
    try:
        probe = subprocess.run([*mount, "true"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("no unshare(1): root writes past a chmod, a read-only mount takes a mount namespace")
    if probe.returncode != 0:
        pytest.skip(f"no read-only bind mount here (root writes past a chmod): {probe.stderr.strip()}")
    proc = subprocess.run([*mount, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def test_a_dir_history_whose_suite_folder_cannot_be_written_is_a_usage_error(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    """The suite's folder inside a ``dir://`` history is read-only (or a file): ``record``, and the
    state ``changepoints --incremental`` keeps there, are exit 2 with one line naming it, as the
    history's own folder is (they were exit 4, the machine's failure); nothing changes."""
    for i in range(4):
        r = sleuth("gate", "record", "--suite", "s", "--run-id", str(i), "--no-provenance", "--db", "dir://hist",
                   GO, env=ENV)  # fmt: skip
        assert r.rc == 0, r.stderr
    before = tree_state(tmp_path)
    rec = ("gate", "record", "--suite", "s", "--run-id", "9", "--no-provenance", "--db", "dir://hist", GO)
    cp = ("gate", "changepoints", "--suite", "s", "--metric", "BenchmarkDetector:ns/op", "--min-segment", "2",
          "--incremental", "--db", "dir://hist")  # fmt: skip
    for args in (rec, cp):
        r = _with_read_only(tmp_path / "hist" / "s", tmp_path, *args)
        _one_error(r, before, tree_state(tmp_path), "dir://hist", "hist/s cannot be written in")
    (tmp_path / "hist" / "t").write_text("")  # a suite's folder that is a file
    before = tree_state(tmp_path)
    r = sleuth(*rec[:3], "t", *rec[4:], env=ENV)
    _one_error(r, before, tree_state(tmp_path), "dir://hist", "hist/t is a file, not a folder")


@not_root
def test_a_read_only_history_is_read_and_not_written(
    sleuth: Callable[..., CliResult], tmp_path: Path, closed: Path
) -> None:
    """A history in a folder that cannot be written (SQLite's journal goes beside it), or a file
    that cannot: ``record`` is a usage error, the reading verbs read it."""
    for db in ("sqlite:///ro/h.db", "sqlite:///h.db"):
        assert sleuth(*REC, "--db", db, GO, env=ENV).rc == 0
    closed.chmod(0o555)
    (tmp_path / "h.db").chmod(0o444)
    before = tree_state(tmp_path)
    for db, what in (("ro/h.db", "cannot be written in"), ("h.db", "is read-only")):
        r = sleuth("gate", "record", "--suite", "s", "--run-id", "2", "--no-provenance", "--db", f"sqlite:///{db}",
                   GO, env=ENV)  # fmt: skip
        _one_error(r, before, tree_state(tmp_path), db, what)
        runs = sleuth("gate", "runs", "--suite", "s", "--json", "--db", f"sqlite:///{db}", env=ENV)
        assert runs.rc == 0 and [x["run_id"] for x in runs.json()["runs"]] == ["1"], runs.stderr


@not_root
def test_a_history_that_cannot_be_read_is_a_usage_error(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    assert sleuth(*REC, "--db", "sqlite:///h.db", GO, env=ENV).rc == 0
    (tmp_path / "h.db").chmod(0o000)
    before = tree_state(tmp_path / "sub")  # tree_state reads every file: not the closed one
    r = sleuth("gate", "runs", "--suite", "s", "--db", "sqlite:///h.db", env=ENV)
    (tmp_path / "h.db").chmod(0o644)
    _one_error(r, before, tree_state(tmp_path / "sub"), "h.db", "cannot be read")


def test_a_locked_history_is_the_machines_failure_and_changes_nothing(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    """Another job holds the database past the busy timeout: exit 4 (try again), not a usage error."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    assert sleuth(*REC, "--db", db, GO, env=ENV).rc == 0
    before = tree_state(tmp_path)
    holder = sqlite3.connect(tmp_path / "h.db")
    try:
        holder.execute("BEGIN EXCLUSIVE")
        r = sleuth(
            "gate", "record", "--suite", "s", "--run-id", "2", "--no-provenance", "--db", db, GO, env=ENV
        )
    finally:
        holder.rollback()
        holder.close()
    lines = r.stderr.strip().splitlines()
    assert r.rc == 4 and len(lines) == 1 and "database is locked" in lines[0], r.stderr
    assert lines[0].startswith(f"error: --db {db}: ") and not r.stdout.strip()
    assert tree_state(tmp_path) == before


def _first_write_fails(db: str) -> None:
    """A first ``record`` into ``db`` whose insert fails (a sample value SQL cannot bind)."""
    from sleuth.errors import InfrastructureError
    from sleuth.gate.model import Run, Sample
    from sleuth.gate.store import open_to_record

    store = open_to_record(db)
    bad = Run(suite="s", run_id="1", created_at="2025-01-01T00:00:00.000000Z",
              samples=(Sample("m", (object(),)),))  # type: ignore[arg-type]  # fmt: skip
    try:
        with pytest.raises(InfrastructureError, match="--db sqlite:///"):
            store.add_run(bad)
    finally:
        store.close()


def test_a_first_write_that_fails_takes_back_the_file_and_folders_it_made(tmp_path: Path) -> None:
    """A SQLite history's first run fails in its insert (a value the driver cannot bind): the file
    and the folders the write made are removed; the folders that were there stay."""

    (tmp_path / "kept").mkdir()
    before = tree_state(tmp_path)
    _first_write_fails(f"sqlite:///{tmp_path / 'kept' / 'new' / 'deeper' / 'h.db'}")
    assert tree_state(tmp_path) == before


def test_a_first_write_that_fails_leaves_an_empty_sqlite_file_as_it_was(tmp_path: Path) -> None:
    """An existing empty file given as ``--db`` (``touch h.db``): the tables are made in the first
    run's transaction, so an insert that fails takes them back too (Python's sqlite3 committed a
    ``CREATE TABLE`` at once: the file kept the tables of a write that failed)."""

    (tmp_path / "h.db").touch()
    before = tree_state(tmp_path)
    _first_write_fails(f"sqlite:///{tmp_path / 'h.db'}")
    assert tree_state(tmp_path) == before
    with sqlite3.connect(tmp_path / "h.db") as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_records_into_a_new_sqlite_history_at_once_all_land(tmp_path: Path) -> None:
    """Four ``record`` processes into one new history at once: each run lands once, none fails
    (a write's transaction takes the write lock as it begins, waiting out another writer)."""
    import subprocess
    import sys

    def argv(i: int) -> list[str]:
        return [sys.executable, "-m", "sleuth", "gate", "record", "--suite", "s", "--run-id", str(i),
                "--no-provenance", "--db", "sqlite:///h.db", GO]  # fmt: skip

    procs = [subprocess.Popen(argv(i), cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, **ENV}) for i in range(4)]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outs]
    with sqlite3.connect(tmp_path / "h.db") as conn:
        assert sorted(r for (r,) in conn.execute("SELECT run_id FROM gate_runs")) == ["0", "1", "2", "3"]


# --- PostgreSQL -----------------------------------------------------------------------------------

#: an event trigger that arms an insert trigger on gate_samples as soon as it is created: the first
#: write fails after the tables are made, as a full disk or a lost server would
_ARM = """
CREATE FUNCTION sleuth_test_fail() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'no space left (a test)'; END $$;
CREATE FUNCTION sleuth_test_arm() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE obj record;
BEGIN
  FOR obj IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' LOOP
    IF obj.object_identity = 'public.gate_samples' THEN
      EXECUTE 'CREATE TRIGGER sleuth_test_fail BEFORE INSERT ON public.gate_samples '
              'FOR EACH ROW EXECUTE FUNCTION sleuth_test_fail()';
    END IF;
  END LOOP;
END $$;
CREATE EVENT TRIGGER sleuth_test_arm ON ddl_command_end EXECUTE FUNCTION sleuth_test_arm();
"""


def _sql(url: str, *statements: str) -> list[str]:
    """Run ``statements`` in one transaction; the names of the tables after them."""
    import sqlalchemy as sa

    from sleuth.gate.store import parse_url

    engine = sa.create_engine(parse_url(url).url)
    try:
        with engine.begin() as conn:
            for st in statements:
                conn.execute(sa.text(st))
        return sorted(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_first_write_that_fails_on_postgresql_leaves_the_database_as_it_was(
    sleuth: Callable[..., CliResult], pg_url: str
) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        _sql(pg_url, _ARM)
    except SQLAlchemyError as exc:  # a server whose user may not make event triggers
        pytest.skip(f"the test server's user cannot make an event trigger: {type(exc).__name__}")
    r = sleuth(*REC, "--db", pg_url, GO, env=ENV)
    lines = r.stderr.strip().splitlines()
    assert r.rc == 4 and len(lines) == 1 and "no space left (a test)" in lines[0], r.stderr
    assert _sql(pg_url) == []  # no table of the failed write stays
    _sql(pg_url, "DROP EVENT TRIGGER sleuth_test_arm")
    again = sleuth(*REC, "--db", pg_url, GO, "--json", env=ENV)
    assert again.rc == 0, again.stderr
    assert [x["run_id"] for x in again.json()["recorded"]] == ["1"]
    assert {"gate_runs", "gate_samples", "gate_state", "gate_meta"} <= set(_sql(pg_url))


@pytest.mark.postgres
def test_a_record_that_records_nothing_makes_no_tables(
    sleuth: Callable[..., CliResult], pg_url: str, tmp_path: Path
) -> None:
    (tmp_path / "dl" / "a").mkdir(parents=True)
    (tmp_path / "dl" / "a" / "sleuth-gate.json").write_text(json.dumps({"suite": "s"}))  # no run id
    r = sleuth("gate", "record", "--from-dir", "dl", "--db", pg_url, env=ENV)
    assert r.rc == 3 and "0 recorded" in r.stdout, r.stderr
    assert _sql(pg_url) == []
