"""A real SQL database for each repository test: a SQLite file, and a
fresh PostgreSQL database on the machine's server (dropped afterwards)."""
from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy

PG_ADMIN_URL = os.environ.get("STRATEXEC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'orchestrator.db'}"
        return
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"stratexec_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sqlalchemy.exc.OperationalError as exc:
        if os.environ.get("CI"):
            raise  # CI starts PostgreSQL (.ci/run): there it must be reachable
        pytest.skip(f"PostgreSQL not reachable: {exc.orig}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    sqlalchemy.orm.close_all_sessions()
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()
