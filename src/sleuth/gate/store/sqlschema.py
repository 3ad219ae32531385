"""A SQL history's engine and schema: how :class:`~sleuth.gate.store.sql.SqlStore` connects, which
tables it keeps, and how a write makes or updates them.

Tables: ``gate_runs`` (one row per run; unique per suite and run id; provenance and source as JSON
text), ``gate_samples`` (one row per sample value), ``gate_state`` (small JSON documents), and
``gate_meta`` (the schema version).  :func:`prepare` makes the missing ones in the transaction of the
write that needs them, so that a first write that fails leaves the database as it was: PostgreSQL's
DDL is transactional, and SQLite's is too once the transactions are sleuth's (:func:`connect`:
Python's ``sqlite3`` began one only before an INSERT, UPDATE or DELETE, so a ``CREATE TABLE``
committed at once and an empty file kept the tables of a first write that failed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sleuth.errors import UsageError
from sleuth.gate.model import BRANCH_MAX, COMMIT_MAX, METRIC_MAX, UNIT_MAX
from sleuth.gate.store.base import StoreURL
from sleuth.gate.store.sqlerrors import quiet_driver

__all__ = ["KEY_MAX", "SCHEMA_VERSION", "WRITE", "Tables", "connect", "prepare", "tables"]

SCHEMA_VERSION = 1
#: the longest state key (a longer one is fitted: its start and a hash of the whole)
KEY_MAX = 500
#: the execution option of a connection that writes: on SQLite its transaction takes the write lock
#: when it begins (``BEGIN IMMEDIATE``, waiting out another writer), not at its first INSERT after
#: reads (two jobs that had both read could not both upgrade: one failed at once, "database is locked")
WRITE = "sleuth_write"

_SAMPLES_INDEX = "ix_gate_samples_run_metric"


@dataclass(frozen=True, slots=True)
class Tables:
    """The history's tables (SQLAlchemy Core) and the metadata that makes them."""

    md: Any
    runs: Any
    samples: Any
    state: Any
    meta: Any


def tables() -> Tables:
    """The tables of a history (see the module doc)."""
    import sqlalchemy as sa

    md = sa.MetaData()
    runs = sa.Table(
        "gate_runs",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("commit_sha", sa.String(COMMIT_MAX)),
        sa.Column("branch", sa.String(BRANCH_MAX)),
        sa.Column("provenance", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.UniqueConstraint("suite", "run_id", name="uq_gate_runs_suite_run"),
        sa.Index("ix_gate_runs_suite_created", "suite", "created_at"),
    )
    samples = sa.Table(
        "gate_samples",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_pk", sa.Integer, sa.ForeignKey("gate_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("metric", sa.String(METRIC_MAX), nullable=False),
        sa.Column("unit", sa.String(UNIT_MAX), nullable=False),
        sa.Column("metric_order", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        # one run's samples, and one metric's in each run (changepoints): ix_gate_samples_run (run_pk
        # alone) before; prepare() replaces it in a history made by an older sleuth
        sa.Index(_SAMPLES_INDEX, "run_pk", "metric"),
    )
    state = sa.Table(
        "gate_state",
        md,
        sa.Column("suite", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(KEY_MAX), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    meta = sa.Table(
        "gate_meta",
        md,
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )
    return Tables(md, runs, samples, state, meta)


def connect(url: StoreURL, *, create: bool) -> Any:
    """The SQLAlchemy engine of ``url`` (``create``: a SQLite file's folder is made); a URL that is
    no database, or a driver that is missing, is a usage error.  On SQLite the transactions are
    sleuth's: each ``begin()`` is a ``BEGIN`` (``BEGIN IMMEDIATE`` with :data:`WRITE`), so that what
    one holds, tables made included, commits or rolls back whole."""
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError

    if url.kind == "postgresql":
        quiet_driver()
    if url.kind == "sqlite" and create:
        try:
            url.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--db {url.display}: cannot create {url.path.parent}: {exc.strerror}") from None
    try:
        engine = sa.create_engine(url.url, future=True, pool_pre_ping=url.kind == "postgresql")
    except ArgumentError as exc:
        raise UsageError(f"--db {url.display}: {exc}") from None
    except ValueError as exc:  # a malformed URL: a port that is not a number, an unclosed [host
        from sleuth.secrets import scrub_text

        raise UsageError(
            f"--db {url.display}: not a valid URL ({scrub_text(str(exc))})",
            hint="e.g. postgresql://USER:PASSWORD@HOST:5432/DB",
        ) from None
    except ImportError as exc:  # a driver that is not installed
        raise UsageError(f"--db {url.display}: the database driver is missing ({exc.name})") from None
    if url.kind == "sqlite":
        _own_transactions(engine)
    return engine


def _own_transactions(engine: Any) -> None:
    """SQLAlchemy's recipe for SQLite's transactional DDL: the driver begins nothing by itself, each
    ``Connection.begin`` (and a connection's first statement) emits the ``BEGIN``."""
    from sqlalchemy import event

    def no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    def begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

    event.listen(engine, "connect", no_driver_transactions)
    event.listen(engine, "begin", begin)


def prepare(conn: Any, t: Tables, display: str) -> None:
    """The tables (those missing), the schema version and the samples index, in ``conn``'s
    transaction (see the module doc); a history of another schema version is a usage error."""
    import sqlalchemy as sa

    t.md.create_all(conn)
    found = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == "schema")).scalar()
    if found is None:
        conn.execute(sa.insert(t.meta).values(key="schema", value=str(SCHEMA_VERSION)))
    elif found != str(SCHEMA_VERSION):
        raise UsageError(
            f"--db {display}: history schema {found}, this sleuth reads {SCHEMA_VERSION}",
            hint="use the sleuth version that wrote it, or a new --db",
        )
    if _SAMPLES_INDEX not in {i["name"] for i in sa.inspect(conn).get_indexes("gate_samples")}:
        # once, on the first record into an older history (IF NOT EXISTS: two jobs at once)
        conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {_SAMPLES_INDEX} ON gate_samples (run_pk, metric)"))
        conn.execute(sa.text("DROP INDEX IF EXISTS ix_gate_samples_run"))
