"""Alembic environment: runs on the connection services.orchestrator.db.migrate hands in
(under its lock), or on DATABASE_URL from the command line (`alembic -c .../alembic.ini`)."""
from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from services.orchestrator.db.models import Base

config = context.config


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER on SQLite: copy-and-move tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(os.environ.get("DATABASE_URL") or config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
