"""Fixtures of the gate tests: the three stores (SQLite, a directory, a real PostgreSQL server).

PostgreSQL runs when ``SLEUTH_TEST_POSTGRES_URL`` names a server (``.ci/run`` starts one on
loopback); each test gets a database of its own, dropped afterwards.  Without the variable the
PostgreSQL cases skip with a reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
PG_ENV = "SLEUTH_TEST_POSTGRES_URL"


def _pg_admin(url: str) -> object:
    import sqlalchemy as sa

    from sleuth.gate.store import parse_url

    return sa.create_engine(parse_url(url).url, isolation_level="AUTOCOMMIT")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the test server, as a ``postgresql://`` URL."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set (.ci/run starts a PostgreSQL server and sets it)")
    import sqlalchemy as sa

    name = f"sleuth_gate_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin(base)
    with admin.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    head, _, _ = base.rpartition("/")
    try:
        yield f"{head}/{name}"
    finally:
        with admin.connect() as conn:  # type: ignore[attr-defined]
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "dir", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests against each store kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hist' / 'history.db'}"
    if request.param == "dir":
        return f"dir://{tmp_path / 'hist-dir'}"
    url: str = request.getfixturevalue("pg_url")
    return url
