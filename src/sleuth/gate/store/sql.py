"""The history in a SQL database through SQLAlchemy Core: SQLite (embedded default) or PostgreSQL (a team).

The engine and the tables are :mod:`sleuth.gate.store.sqlschema`'s.  One transaction per recorded
run, so a killed ``record`` leaves the run whole or absent; two jobs recording the same run id race
on the unique key and the loser reports "already recorded".  A history's first run makes the tables
in its transaction: a first write that fails leaves the database as it was (on SQLite, an existing
empty file stays empty).  A SQLite path that cannot hold a history, or a file that is no database,
is the user's ``--db`` (exit 2); a database locked past the busy timeout or a full disk is the
machine's (exit 4): :mod:`sleuth.gate.store.sqlerrors`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sleuth.errors import SleuthError, UsageError
from sleuth.gate.model import Run, RunStatus, Sample, fit, stored_names, stored_time, utc_now
from sleuth.gate.store.base import StoreURL
from sleuth.gate.store.sqlerrors import failure
from sleuth.gate.store.sqlschema import KEY_MAX, SCHEMA_VERSION, WRITE, connect, prepare, tables

__all__ = ["SCHEMA_VERSION", "SqlStore"]


class SqlStore:
    """History in SQLite or PostgreSQL (see the module doc)."""

    def __init__(self, url: StoreURL, *, create: bool) -> None:
        import sqlalchemy as sa
        from sqlalchemy.exc import SQLAlchemyError

        self.display = url.display
        self._url = url
        self.engine = connect(url, create=create)
        #: the engine for a write's transaction (on SQLite, one that takes the write lock at once)
        self._writer = self.engine.execution_options(**{WRITE: True})
        self._t = tables()
        t = self._t
        self._runs, self._samples, self._state, self._meta = t.runs, t.samples, t.state, t.meta
        try:
            self._ready = sa.inspect(self.engine).has_table("gate_runs")
            if create and self._ready:  # a history to write into: its version checked (and its index)
                with self._writer.begin() as conn:
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
        """The tables, the schema version and the samples index, in ``conn``'s transaction
        (:func:`~sleuth.gate.store.sqlschema.prepare`)."""
        prepare(conn, self._t, self.display)

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
                with self._writer.begin() as conn:
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
        key = fit(key, KEY_MAX)
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
        key = fit(key, KEY_MAX)  # "changepoints:<metric>:<branch>": a long metric name would not fit
        with self._reported(write=True), self._writer.begin() as conn:
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
