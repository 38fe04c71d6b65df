"""Alembic migrations on SQLite and PostgreSQL: a database made by the previous
schema (create_all at commit 529f933) upgrades to head with its rows kept, the
migrated schema equals the models, and replicas starting at once migrate once."""
from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys
import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.orm import Session

from services.orchestrator.db import migrate
from services.orchestrator.db.models import Base
from services.orchestrator.db.repository import Repository

ROOT = pathlib.Path(__file__).resolve().parents[2]
PREVIOUS = "529f933"  # the main before migrations


def previous_models(tmp_path):
    """services/orchestrator/db/models.py as it was at the previous main."""
    source = subprocess.run(["git", "show", f"{PREVIOUS}:services/orchestrator/db/models.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    path = tmp_path / "models_529f933.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("models_529f933", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def schema_drift(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)


def test_a_database_of_the_previous_schema_upgrades_to_head_keeping_its_rows(database_url, tmp_path):
    old = previous_models(tmp_path)
    engine = create_engine(database_url)
    old.Base.metadata.create_all(engine)  # what the orchestrator of 529f933 did on start
    with Session(engine) as s, s.begin():
        s.add(old.Strategy(id="s1", user_id="alice", name="old", schema_json={"nodes": []}))
        s.flush()
        s.add(old.StrategyExecution(id="e1", strategy_id="s1", user_id="alice", request_id="r1", status="SUCCEEDED",
                                    params_pb=b"p", execution_logs=[], agent_insights={}, attempts=1, cancel_requested=0))
        s.flush()
        s.add(old.ExecutionEvent(execution_id="e1", sequence=1, type="EVENT_TYPE_STATUS_CHANGED", status="QUEUED",
                                 message="queued", event_pb=b"ev"))
    assert "alembic_version" not in inspect(engine).get_table_names()

    repo = Repository(database_url)  # the new orchestrator starting on the old database

    assert migrate.current(repo.engine) == migrate.head()
    assert schema_drift(repo.engine) == []
    row = repo.get_execution("e1", "alice")
    assert row is not None and row.status == "SUCCEEDED" and row.request_id == "r1"
    assert [e.message for e in repo.events_after("e1", 0)] == ["queued"]
    new, created = repo.create_execution("alice", b"params", "r2", None, ("new", {"nodes": []}),
                                         lambda r, seq: ("EVENT_TYPE_STATUS_CHANGED", "QUEUED", "queued", b"x"))
    assert created and new.id != "e1"
    engine.dispose()
    repo.engine.dispose()


def test_a_fresh_database_matches_the_models_and_downgrades_to_empty(database_url):
    engine = create_engine(database_url)
    assert migrate.upgrade(engine) == migrate.head() == migrate.current(engine)
    assert schema_drift(engine) == [], "a models change needs a migration (migrations/README.md)"
    with engine.connect() as conn:
        config = migrate.alembic_config(conn)
        command.downgrade(config, "base")
        conn.commit()
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(engine)
    assert schema_drift(engine) == []
    engine.dispose()


def test_replicas_starting_at_once_migrate_once(database_url):
    engines = [create_engine(database_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    results, failures = [], []

    def start(engine):
        barrier.wait()
        try:
            results.append(migrate.upgrade(engine))
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            failures.append(repr(exc))

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failures == [] and results == [migrate.head()] * len(engines)
    with engines[0].connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
    assert schema_drift(engines[0]) == []
    for e in engines:
        e.dispose()
