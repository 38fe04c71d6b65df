"""A fresh PostgreSQL database on the machine's server, dropped afterwards."""
from __future__ import annotations

import contextlib
import os
import uuid

import pytest
import sqlalchemy
import sqlalchemy.orm

PG_ADMIN_URL = os.environ.get("STRATEXEC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def fresh_database():
    """Yields the SQLAlchemy URL of a new, empty database."""
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"stratexec_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sqlalchemy.exc.OperationalError as exc:
        if os.environ.get("CI"):
            raise  # CI starts PostgreSQL (.ci/run): there it must be reachable
        pytest.skip(f"PostgreSQL not reachable: {exc.orig}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        sqlalchemy.orm.close_all_sessions()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
