"""Schema migrations on start: ``alembic upgrade head`` under a lock, so several
replicas starting at once run each migration exactly once.

- PostgreSQL: a session-level advisory lock (pg_advisory_lock) held on the
  migrating connection; the others wait, then find the schema at head.
- SQLite: an exclusive flock on ``<database>.migrate.lock`` beside the file.

A database made before migrations existed (tables from create_all at commit
529f933, no alembic_version) is stamped at the baseline revision 0001 and
then upgraded. How to add a migration: migrations/README.md.
"""
from __future__ import annotations

import contextlib
import fcntl
import pathlib

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

MIGRATIONS = pathlib.Path(__file__).with_name("migrations")
BASELINE = "0001"  # the schema of commit 529f933
ADVISORY_LOCK_KEY = 0x5354524D4947  # "STRMIG": one key for every replica of this database


def alembic_config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _sqlite_lock(engine: Engine):
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine) -> str:
    """Bring the database to the head revision; returns it."""
    lock = _sqlite_lock(engine) if engine.dialect.name == "sqlite" else contextlib.nullcontext()
    with lock, engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            conn.commit()
        try:
            config = alembic_config(conn)
            names = set(inspect(conn).get_table_names())
            if "strategy_executions" in names and "alembic_version" not in names:
                command.stamp(config, BASELINE)  # made by create_all before migrations
            command.upgrade(config, "head")
            conn.commit()
        finally:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
                conn.commit()
    return head()
