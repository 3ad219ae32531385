"""The attribution service's records, in SQLite through SQLAlchemy Core.

One row per (job_id, cycle_id) in ``attributions``; the logs each node posted in ``logs`` until the
analysis has read them (then they are deleted: the result keeps the matched lines only).  A
request is answered 202 only after its transaction committed (WAL, ``synchronous=FULL``), so a
service killed with ``kill -9`` and restarted loses no accepted request: :meth:`Store.unfinished`
gives the records to analyse again.  Log texts are scrubbed of secrets before they are stored.
Writes are serialized by one lock (SQLite has one writer anyway).

Each committed write to a record bumps its *change counter* (:meth:`Store.version`: memory only,
no I/O, a slot per hash of the key, so it stays bounded however many records there are; two keys
sharing a slot cost a waiting request a read it did not need).  A request waiting for a record to
change reads the counter, not the database, until it moves: only this process writes the
database (``hold_db``), so nothing changes the record without moving it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from sleuth.errors import ConfigError

__all__ = ["PENDING", "Store"]

PENDING, RUNNING, DONE, ERROR = "pending", "running", "done", "error"
#: slots of the change counters (:meth:`Store.version`)
_CHANGE_SLOTS = 4096

_meta = MetaData()
attributions = Table(
    "attributions",
    _meta,
    Column("job_id", String(128), primary_key=True),
    Column("cycle_id", String(128), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Column("nodes", Integer, nullable=False),
    Column("progress", Integer),  # 1, 0 or NULL (unknown)
    Column("posted_nodes", Text, nullable=False),  # JSON list of node names, in posting order
    Column("late_nodes", Text, nullable=False),  # JSON list: posted after the analysis started
    Column("result", Text),  # JSON report
    Column("error", Text),
    Column("outcome", Text),  # JSON: the leader's recorded outcome
    #: the cycle's start (seconds since the epoch), the earliest a node posted; NULL: not known
    Column("job_start", Float),
)
logs = Table(
    "logs",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(128), nullable=False, index=True),
    Column("cycle_id", String(128), nullable=False),
    Column("node", String(128), nullable=False),
    Column("name", String(256), nullable=False),
    Column("text", Text, nullable=False),
    Column("cut", Integer),  # a gzip path cut short: the compressed file's size (NULL: whole)
)


_OURS = {"attributions", "logs"}
#: columns added since the first release: (table, column, SQL type), added to an older database
_ADDED = {"cut": ("logs", "INTEGER"), "job_start": ("attributions", "REAL")}


def _row(r: Any) -> dict[str, Any]:
    d = dict(r._mapping)
    for key in ("posted_nodes", "late_nodes"):
        d[key] = json.loads(d[key])
    for key in ("result", "outcome"):
        d[key] = json.loads(d[key]) if d[key] else None
    d["progress"] = None if d["progress"] is None else bool(d["progress"])
    return d


def _check_foreign(path: Path) -> None:
    """A ``ConfigError`` for a SQLite database another program made (its tables are not ours, or
    ours lack columns): it is refused before anything in it changes (it once got our tables and
    WAL mode, and the service died at startup with a traceback).  Read only; a file that is not
    SQLite is left to the engine, whose error the CLI words."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as c:
            tables = {name for (name,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            columns = {t: {row[1] for row in c.execute(f"PRAGMA table_info({t})")} for t in tables & _OURS}
    except sqlite3.DatabaseError:
        return
    hint = "give a new path or a database sleuth serve wrote"
    if tables and not tables & _OURS:
        shown = ", ".join(sorted(tables)[:5])
        raise ConfigError(f"database {path}: made by another program (tables {shown})", hint=hint)
    for table in (attributions, logs):
        if table.name in columns:
            # the columns an older sleuth's database may lack (they are added)
            missing = sorted({col.name for col in table.columns} - columns[table.name] - set(_ADDED))
            if missing:
                raise ConfigError(
                    f"database {path}: table {table.name} has no column {', '.join(missing)}"
                    " (not a database sleuth serve wrote)",
                    hint=hint,
                )


class Store:
    """Records of one service; safe to use from several threads."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_foreign(path)
        self.path = path
        self.engine: Engine = create_engine(
            f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": busy_timeout_s}
        )

        @event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        _meta.create_all(self.engine)
        with self.engine.begin() as c:  # a database made before these columns were added
            for column, (table, sql_type) in _ADDED.items():
                if column not in {col["name"] for col in inspect(c).get_columns(table)}:
                    c.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
        self._lock = threading.Lock()
        self._changes = [0] * _CHANGE_SLOTS

    def version(self, job_id: str, cycle_id: str) -> int:
        """The change counter of (job, cycle): it moves after each committed write to the record.
        Memory only (no I/O, no lock): cheap enough to read on the event loop."""
        return self._changes[hash((job_id, cycle_id)) % _CHANGE_SLOTS]

    @contextlib.contextmanager
    def _writing(self, job_id: str, cycle_id: str) -> Iterator[Connection]:
        """One write transaction on (job, cycle), serialized; its change counter moves once it committed."""
        with self._lock:
            with self.engine.begin() as c:
                yield c
            self._changes[hash((job_id, cycle_id)) % _CHANGE_SLOTS] += 1

    def close(self) -> None:
        """Release the database."""
        self.engine.dispose()

    def get(self, job_id: str, cycle_id: str) -> dict[str, Any] | None:
        """One record, or None."""
        with self.engine.connect() as c:
            r = c.execute(
                select(attributions).where(
                    attributions.c.job_id == job_id, attributions.c.cycle_id == cycle_id
                )
            ).first()
        return _row(r) if r is not None else None

    def submit(
        self,
        job_id: str,
        cycle_id: str,
        *,
        node: str,
        nodes: int,
        progress: bool | None,
        texts: Sequence[tuple[str, str, int | None]],
        job_start: float | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Add one node's logs ``(name, text, cut)`` to (job, cycle), creating the record;
        ``(record, created)``.  ``cut``: where a gzip log read from a path was cut short, or None.
        ``job_start``: when the cycle started on that node; the record keeps the earliest.

        A node that already posted is not stored again (dedupe); a node posting after the analysis
        started is recorded in ``late_nodes`` without its logs.
        """
        now = time.time()
        with self._writing(job_id, cycle_id) as c:
            r = c.execute(
                select(attributions).where(
                    attributions.c.job_id == job_id, attributions.c.cycle_id == cycle_id
                )
            ).first()
            created = r is None
            if created:
                c.execute(
                    insert(attributions).values(
                        job_id=job_id,
                        cycle_id=cycle_id,
                        status=PENDING,
                        created=now,
                        updated=now,
                        nodes=nodes,
                        progress=None if progress is None else int(progress),
                        posted_nodes="[]",
                        late_nodes="[]",
                    )
                )
                rec: dict[str, Any] = {
                    "status": PENDING,
                    "posted_nodes": [],
                    "late_nodes": [],
                    "progress": progress,
                }
            else:
                rec = _row(r)
            if node in rec["posted_nodes"] or node in rec["late_nodes"]:
                pass
            elif rec["status"] == PENDING:
                if texts:
                    c.execute(
                        insert(logs),
                        [
                            {
                                "job_id": job_id,
                                "cycle_id": cycle_id,
                                "node": node,
                                "name": n,
                                "text": t,
                                "cut": cut,
                            }
                            for n, t, cut in texts
                        ],
                    )
                values: dict[str, Any] = {
                    "posted_nodes": json.dumps([*rec["posted_nodes"], node]),
                    "updated": now,
                }
                if job_start is not None and (rec.get("job_start") is None or job_start < rec["job_start"]):
                    values["job_start"] = job_start
                if rec["progress"] is None and progress is not None:
                    values["progress"] = int(progress)
                elif progress is True:  # any node that advanced means the job advanced
                    values["progress"] = 1
                c.execute(
                    update(attributions)
                    .where(attributions.c.job_id == job_id, attributions.c.cycle_id == cycle_id)
                    .values(**values)
                )
            else:
                c.execute(
                    update(attributions)
                    .where(attributions.c.job_id == job_id, attributions.c.cycle_id == cycle_id)
                    .values(late_nodes=json.dumps([*rec["late_nodes"], node]), updated=now)
                )
        got = self.get(job_id, cycle_id)
        assert got is not None
        return got, created

    def claim(self, job_id: str, cycle_id: str) -> list[tuple[str, str, str, int | None]] | None:
        """Mark a pending record running and return its logs ``(node, name, text, cut)``; None if
        not pending."""
        with self._writing(job_id, cycle_id) as c:
            res = c.execute(
                update(attributions)
                .where(
                    attributions.c.job_id == job_id,
                    attributions.c.cycle_id == cycle_id,
                    attributions.c.status.in_([PENDING, RUNNING]),
                )
                .values(status=RUNNING, updated=time.time())
            )
            if res.rowcount == 0:
                return None
            rows = c.execute(
                select(logs.c.node, logs.c.name, logs.c.text, logs.c.cut)
                .where(logs.c.job_id == job_id, logs.c.cycle_id == cycle_id)
                .order_by(logs.c.id)
            ).all()
        return [(r.node, r.name, r.text, r.cut) for r in rows]

    def finish(self, job_id: str, cycle_id: str, result: dict[str, Any] | None, error: str | None) -> None:
        """Store the report (or the error) and drop the logs it was made from."""
        with self._writing(job_id, cycle_id) as c:
            c.execute(
                update(attributions)
                .where(attributions.c.job_id == job_id, attributions.c.cycle_id == cycle_id)
                .values(
                    status=DONE if error is None else ERROR,
                    result=json.dumps(result) if result is not None else None,
                    error=error,
                    updated=time.time(),
                )
            )
            c.execute(delete(logs).where(logs.c.job_id == job_id, logs.c.cycle_id == cycle_id))

    def set_outcome(
        self, job_id: str, cycle_id: str, outcome: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, bool]:
        """Record the leader's outcome once: ``(stored outcome, stored now)``, (None, False) if no record."""
        with self._writing(job_id, cycle_id) as c:
            r = c.execute(
                select(attributions.c.outcome).where(
                    attributions.c.job_id == job_id, attributions.c.cycle_id == cycle_id
                )
            ).first()
            if r is None:
                return None, False
            if r.outcome:
                return json.loads(r.outcome), False
            c.execute(
                update(attributions)
                .where(attributions.c.job_id == job_id, attributions.c.cycle_id == cycle_id)
                .values(outcome=json.dumps(outcome), updated=time.time())
            )
        return outcome, True

    def unfinished(self) -> list[tuple[str, str]]:
        """Records accepted but not analysed (after a restart), oldest first."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(attributions.c.job_id, attributions.c.cycle_id)
                .where(attributions.c.status.in_([PENDING, RUNNING]))
                .order_by(attributions.c.created)
            ).all()
        return [(r.job_id, r.cycle_id) for r in rows]

    def history(self, job_id: str, before_created: float) -> list[dict[str, Any]]:
        """The job's analysed records created before ``before_created``, oldest first."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(attributions)
                .where(
                    attributions.c.job_id == job_id,
                    attributions.c.created < before_created,
                    attributions.c.status == DONE,
                )
                .order_by(attributions.c.created)
            ).all()
        return [_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Records by status."""
        from sqlalchemy import func

        with self.engine.connect() as c:
            rows = c.execute(
                select(attributions.c.status, func.count()).group_by(attributions.c.status)
            ).all()
        return {r[0]: int(r[1]) for r in rows}
