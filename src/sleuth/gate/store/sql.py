"""The history in a SQL database through SQLAlchemy Core: SQLite (embedded default) or PostgreSQL (a team).

Tables: ``gate_runs`` (one row per run; unique per suite and run id; provenance and source as JSON
text), ``gate_samples`` (one row per sample value), ``gate_state`` (small JSON documents), and
``gate_meta`` (the schema version).  One transaction per recorded run, so a killed ``record``
leaves the run whole or absent; two jobs recording the same run id race on the unique key and
the loser reports "already recorded".  A history's first run makes the tables in its transaction:
on PostgreSQL (whose DDL is transactional) a first write that fails leaves the database as it was.
A SQLite path that cannot hold a history, or a file that is no database, is the user's ``--db``
(exit 2); a database locked past the busy timeout or a full disk is the machine's (exit 4):
:mod:`sleuth.gate.store.sqlerrors`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sleuth.errors import SleuthError, UsageError
from sleuth.gate.model import (
    BRANCH_MAX,
    COMMIT_MAX,
    METRIC_MAX,
    UNIT_MAX,
    Run,
    RunStatus,
    Sample,
    fit,
    stored_names,
    stored_time,
    utc_now,
)
from sleuth.gate.store.base import StoreURL
from sleuth.gate.store.sqlerrors import failure, quiet_driver

__all__ = ["SCHEMA_VERSION", "SqlStore"]

SCHEMA_VERSION = 1
#: the longest state key (a longer one is fitted: its start and a hash of the whole)
_KEY_MAX = 500


_SAMPLES_INDEX = "ix_gate_samples_run_metric"


def _tables() -> Any:
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
        # alone) before; _stamp replaces it in a history made by an older sleuth
        sa.Index(_SAMPLES_INDEX, "run_pk", "metric"),
    )
    state = sa.Table(
        "gate_state",
        md,
        sa.Column("suite", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(_KEY_MAX), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    meta = sa.Table(
        "gate_meta",
        md,
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )
    return md, runs, samples, state, meta


class SqlStore:
    """History in SQLite or PostgreSQL (see the module doc)."""

    def __init__(self, url: StoreURL, *, create: bool) -> None:
        import sqlalchemy as sa
        from sqlalchemy.exc import ArgumentError, SQLAlchemyError

        self.display = url.display
        self._url = url
        if url.kind == "postgresql":
            quiet_driver()
        if url.kind == "sqlite" and create:
            try:
                url.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(
                    f"--db {url.display}: cannot create {url.path.parent}: {exc.strerror}"
                ) from None
        try:
            self.engine = sa.create_engine(url.url, future=True, pool_pre_ping=url.kind == "postgresql")
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
        self._md, self._runs, self._samples, self._state, self._meta = _tables()
        try:
            self._ready = sa.inspect(self.engine).has_table("gate_runs")
            if create and self._ready:  # a history to write into: its version checked (and its index)
                with self.engine.begin() as conn:
                    self._prepare(conn)
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise self._failed(exc, write=create) from None
        except UnicodeError as exc:  # a host name the resolver refuses (a label over 63 characters)
            self.engine.dispose()
            raise UsageError(
                f"--db {url.display}: not a valid host name ({exc})", hint="give the database server's name"
            ) from None

    def _failed(self, exc: Exception, *, write: bool) -> SleuthError:
        """A database error as one line, exit 2 or 4 (:func:`~sleuth.gate.store.sqlerrors.failure`)."""
        return failure(exc, self._url, write=write)

    def _prepare(self, conn: Any) -> None:
        """The tables (those missing), the schema version and the samples index, in ``conn``'s
        transaction: a history's first write makes them with its run, so that on PostgreSQL (whose
        DDL is transactional) a first write that fails leaves the database as it was."""
        import sqlalchemy as sa

        self._md.create_all(conn)
        found = conn.execute(sa.select(self._meta.c.value).where(self._meta.c.key == "schema")).scalar()
        if found is None:
            conn.execute(sa.insert(self._meta).values(key="schema", value=str(SCHEMA_VERSION)))
        elif found != str(SCHEMA_VERSION):
            raise UsageError(
                f"--db {self.display}: history schema {found}, this sleuth reads {SCHEMA_VERSION}",
                hint="use the sleuth version that wrote it, or a new --db",
            )
        if _SAMPLES_INDEX not in {i["name"] for i in sa.inspect(conn).get_indexes("gate_samples")}:
            # once, on the first record into an older history (IF NOT EXISTS: two jobs at once)
            conn.execute(
                sa.text(f"CREATE INDEX IF NOT EXISTS {_SAMPLES_INDEX} ON gate_samples (run_pk, metric)")
            )
            conn.execute(sa.text("DROP INDEX IF EXISTS ix_gate_samples_run"))

    def _made_by_another(self) -> bool:
        """Whether the tables exist now: another job's first write made them while ours failed."""
        import sqlalchemy as sa
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return bool(sa.inspect(self.engine).has_table("gate_runs"))
        except SQLAlchemyError:
            return False

    def add_run(self, run: Run, *, replace: bool = False) -> bool:
        """Insert ``run`` and its samples in one transaction (see :class:`~sleuth.gate.store.base.Store`);
        a history's first run makes its tables in that transaction too (:meth:`_prepare`).  Two jobs
        making the tables at once: the one that loses writes its run into the other's tables."""
        from sqlalchemy.exc import IntegrityError, SQLAlchemyError

        while True:
            first = not self._ready
            try:
                with self.engine.begin() as conn:
                    if first:
                        self._prepare(conn)
                    added = self._insert(conn, run, replace=replace)
            except SQLAlchemyError as exc:
                if first and self._made_by_another():
                    self._ready = True
                    continue
                if isinstance(exc, IntegrityError):
                    return False  # another job recorded the same run id between our check and insert
                raise self._failed(exc, write=True) from None
            self._ready = True
            return added

    def _insert(self, conn: Any, run: Run, *, replace: bool) -> bool:
        """``run`` written in ``conn``'s transaction; False when it is recorded and not ``replace``."""
        import sqlalchemy as sa

        r = self._runs
        old = conn.execute(sa.select(r.c.id).where(r.c.suite == run.suite, r.c.run_id == run.run_id)).scalar()
        if old is not None:
            if not replace:
                return False
            conn.execute(sa.delete(self._samples).where(self._samples.c.run_pk == old))
            conn.execute(sa.delete(r).where(r.c.id == old))
        inserted = conn.execute(
            sa.insert(r).values(
                suite=run.suite,
                run_id=run.run_id,
                created_at=run.created_at,
                recorded_at=utc_now(),
                status=run.status.value,
                commit_sha=run.commit,
                branch=run.branch,
                provenance=json.dumps(run.provenance, default=str),
                source=json.dumps(run.source, default=str),
            )
        ).inserted_primary_key
        assert inserted is not None
        pk = inserted[0]
        rows = [
            {"run_pk": pk, "metric": s.metric, "unit": s.unit, "metric_order": i, "seq": j, "value": v}
            for i, s in enumerate(run.samples)
            for j, v in enumerate(s.values)
        ]
        if rows:
            conn.execute(sa.insert(self._samples), rows)
        return True

    def has_run(self, suite: str, run_id: str) -> bool:
        """Whether ``suite`` already holds ``run_id``."""
        import sqlalchemy as sa

        if not self._ready:
            return False
        r = self._runs
        with self._reported(), self.engine.connect() as conn:
            return (
                conn.execute(sa.select(r.c.id).where(r.c.suite == suite, r.c.run_id == run_id)).first()
                is not None
            )

    def created_at(self, suite: str, run_id: str) -> str | None:
        """When the recorded run happened, or None."""
        import sqlalchemy as sa
        from sqlalchemy.exc import SQLAlchemyError

        if not self._ready:
            return None
        r = self._runs
        try:
            with self.engine.connect() as conn:
                found = conn.execute(
                    sa.select(r.c.created_at).where(r.c.suite == suite, r.c.run_id == run_id)
                ).scalar()
        except SQLAlchemyError as exc:
            raise self._failed(exc, write=False) from None
        return None if found is None else stored_time(str(found))

    def runs(
        self,
        suite: str,
        *,
        branch: str | None = None,
        statuses: Sequence[RunStatus] | None = None,
        last: int | None = None,
        metrics: Sequence[str] | None = None,
    ) -> list[Run]:
        """The suite's runs, oldest first (by creation time in UTC, then recording order).

        The order is decided here, not by the database: a history recorded by an older sleuth may
        hold times with a zone offset (``10:00:00+05:00``), which sort wrong as text.  Samples come
        in one ordered query per 500 runs, as plain rows (no per-row mapping); with ``metrics``
        only theirs (``changepoints`` reads one metric of every run, not every metric).
        """
        import sqlalchemy as sa
        from sqlalchemy.exc import SQLAlchemyError

        if not self._ready:
            return []
        r, s = self._runs, self._samples
        names = None if metrics is None else stored_names(metrics)
        q = sa.select(r.c.id, r.c.created_at).where(r.c.suite == suite)
        if branch is not None:
            q = q.where(r.c.branch == branch)
        if statuses is not None:
            q = q.where(r.c.status.in_([st.value for st in statuses]))
        try:
            with self.engine.connect() as conn:
                order = sorted(conn.execute(q), key=lambda row: (stored_time(row[1]), row[0]))
                if last is not None:
                    order = order[-last:] if last > 0 else []
                pks = [pk for pk, _ in order]
                meta: dict[int, Any] = {}
                by_run: dict[int, list[Sample]] = {pk: [] for pk in pks}
                cols = (s.c.run_pk, s.c.metric, s.c.unit, s.c.value)
                for i in range(0, len(pks), 500):  # bounded IN lists
                    chunk = pks[i : i + 500]
                    for row in conn.execute(sa.select(r).where(r.c.id.in_(chunk))).mappings():
                        meta[row["id"]] = row
                    sq = sa.select(*cols).where(s.c.run_pk.in_(chunk))
                    if names is not None:
                        sq = sq.where(s.c.metric.in_(names))
                    _collect(conn.execute(sq.order_by(s.c.run_pk, s.c.metric_order, s.c.seq)), by_run)
        except SQLAlchemyError as exc:
            raise self._failed(exc, write=False) from None
        out = []
        for pk, created in order:
            row = meta[pk]
            out.append(
                Run(
                    suite=row["suite"],
                    run_id=row["run_id"],
                    created_at=stored_time(created),
                    status=RunStatus(row["status"]),
                    commit=row["commit_sha"],
                    branch=row["branch"],
                    samples=_merged(by_run[pk]),
                    provenance=json.loads(row["provenance"]),
                    source=json.loads(row["source"]),
                ).public()
            )
        return out

    def suites(self) -> list[str]:
        """Every suite with at least one run, sorted."""
        import sqlalchemy as sa

        if not self._ready:
            return []
        with self._reported(), self.engine.connect() as conn:
            return sorted(str(v) for v in conn.execute(sa.select(self._runs.c.suite).distinct()).scalars())

    def get_state(self, suite: str, key: str) -> dict[str, Any] | None:
        """A state document, or None (an unreadable one reads as absent, as in the directory store)."""
        import sqlalchemy as sa

        if not self._ready:
            return None
        t = self._state
        key = fit(key, _KEY_MAX)
        with self._reported(), self.engine.connect() as conn:
            text = conn.execute(sa.select(t.c.value).where(t.c.suite == suite, t.c.key == key)).scalar()
        if text is None:
            return None
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):  # edited by hand, or by another tool: state can be rebuilt
            return None
        return value if isinstance(value, dict) else None

    def put_state(self, suite: str, key: str, value: dict[str, Any]) -> None:
        """Replace a state document (delete + insert in one transaction: portable across backends)."""
        import sqlalchemy as sa

        t = self._state
        key = fit(key, _KEY_MAX)  # "changepoints:<metric>:<branch>": a long metric name would not fit
        with self._reported(write=True), self.engine.begin() as conn:
            if not self._ready:
                self._prepare(conn)
            conn.execute(sa.delete(t).where(t.c.suite == suite, t.c.key == key))
            conn.execute(sa.insert(t).values(suite=suite, key=key, value=json.dumps(value)))
        self._ready = True

    @contextmanager
    def _reported(self, *, write: bool = False) -> Iterator[None]:
        """A database error as one line (:meth:`_failed`: a file locked past the busy timeout, a server
        gone, exit 4; a path that keeps SQLite from writing, exit 2)."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            yield
        except SQLAlchemyError as exc:
            raise self._failed(exc, write=write) from None

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()


def _collect(rows: Iterable[Any], by_run: dict[int, list[Sample]]) -> None:
    """``(run_pk, metric, unit, value)`` rows, ordered by run and metric, as each run's samples (a
    plain loop: a row is one sample of ten million in a large history).  Non-finite values are
    skipped, as ``record`` refuses them (a store edited by hand)."""
    isfinite = math.isfinite
    key: tuple[Any, str, str] | None = None
    values: list[float] = []
    for pk, metric, unit, value in rows:
        if key is None or pk != key[0] or metric != key[1] or unit != key[2]:
            if key is not None:
                by_run[key[0]].append(Sample(key[1], tuple(values), key[2]))
            key, values = (pk, metric, unit), []
        if isfinite(value):
            values.append(value)
    if key is not None:
        by_run[key[0]].append(Sample(key[1], tuple(values), key[2]))


def _merged(samples: list[Sample]) -> tuple[Sample, ...]:
    """A run's samples, one per metric: a metric whose rows are not adjacent in recording order
    (a store written by hand) is one sample, as it was before rows came grouped."""
    if len({x.metric for x in samples}) == len(samples):
        return tuple(samples)
    merged: dict[str, Sample] = {}
    for x in samples:
        old = merged.get(x.metric)
        merged[x.metric] = x if old is None else Sample(x.metric, old.values + x.values, old.unit)
    return tuple(merged.values())
