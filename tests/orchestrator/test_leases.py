"""Fencing on SQLite and PostgreSQL: every write of an attempt presents its
lease token and is refused once another attempt holds the execution; the
database itself refuses an event after a terminal status and a change of a
terminal status, whatever code (or SQL) tries."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from services.orchestrator.crew.context import ExecutionContext
from services.orchestrator.crew.crew import _tool_step_event
from services.orchestrator.crew.tools import ContextTool
from services.orchestrator.db.repository import LeaseLost, Repository
from services.orchestrator.events import EventLog, Notifier
from stratexec.backtest.v1 import backtest_pb2
from tests.orchestrator.test_repository import event, new_execution


def claim(repo: Repository, lease: str):
    return repo.claim_next(lambda eid, seq: ("EVENT_TYPE_STATUS_CHANGED", "ANALYZING", "claimed", b"claim"),
                           {"status": "ANALYZING", "lease_token": lease, "worker_id": lease})


def requeue(repo: Repository, execution_id: str):
    return repo.append_event(execution_id, lambda eid, seq: ("EVENT_TYPE_STATUS_CHANGED", "QUEUED", "re-queued", b"q"),
                             {"status": "QUEUED", "lease_token": None})


def test_a_taken_over_attempt_can_write_nothing_more(database_url):
    repo = Repository(database_url)
    row, _ = new_execution(repo)
    claim(repo, "lease-1")
    requeue(repo, row.id)  # its replica looked dead: another one re-queued it
    claim(repo, "lease-2")

    with pytest.raises(LeaseLost):
        repo.append_event(row.id, event("late"), lease="lease-1")
    with pytest.raises(LeaseLost):
        repo.save_code(row.id, "print('late')", "0" * 64, lease="lease-1")
    with pytest.raises(LeaseLost):
        repo.set_insights(row.id, {"llm": "late"}, lease="lease-1")
    with pytest.raises(LeaseLost):
        repo.append_event(row.id, lambda eid, seq: ("EVENT_TYPE_STATUS_CHANGED", "COMPLETED", "late", b"c"),
                          {"status": "COMPLETED"}, lease="lease-1")

    repo.save_code(row.id, "print('current')", "1" * 64, lease="lease-2")
    seq, current = repo.append_event(row.id, event("current"), lease="lease-2")
    assert current.status == "ANALYZING" and repo.get_execution(row.id).generated_code == "print('current')"
    assert [e.message for e in repo.events_after(row.id, 0)] == ["queued", "claimed", "re-queued", "claimed", "line current"]


def test_the_lease_keeper_learns_which_leases_it_lost_and_which_were_cancelled(database_url):
    repo = Repository(database_url)
    first, _ = new_execution(repo)
    second, _ = new_execution(repo)
    claim(repo, "lease-a")
    claim(repo, "lease-b")
    requeue(repo, first.id)
    repo.request_cancel(second.id)

    lost, cancelled = repo.heartbeat({first.id: "lease-a", second.id: "lease-b"})

    assert lost == {first.id} and cancelled == {second.id}


def test_the_database_refuses_an_event_after_the_terminal_status(database_url):
    repo = Repository(database_url)
    row, _ = new_execution(repo)
    claim(repo, "lease-1")
    repo.append_event(row.id, lambda eid, seq: ("EVENT_TYPE_STATUS_CHANGED", "COMPLETED", "done", b"c"),
                      {"status": "COMPLETED"}, lease="lease-1")

    assert repo.append_event(row.id, event("after")) is None  # the repository does not try
    with pytest.raises(IntegrityError, match="no event after"), repo.engine.begin() as conn:  # nor does raw SQL get in
        conn.execute(text("INSERT INTO execution_events (execution_id, sequence, type, status, message, event_pb, "
                          "created_at) VALUES (:id, 4, 'EVENT_TYPE_LOG', 'EXECUTING', 'late', :pb, CURRENT_TIMESTAMP)"),
                     {"id": row.id, "pb": b"late"})
    with pytest.raises(IntegrityError, match="terminal status is final"), repo.engine.begin() as conn:
        conn.execute(text("UPDATE strategy_executions SET status = 'EXECUTING' WHERE id = :id"), {"id": row.id})
    assert [e.message for e in repo.events_after(row.id, 0)] == ["queued", "claimed", "done"]


def test_a_refused_write_stops_the_attempt_so_a_task_crewai_runs_again_runs_no_tool(database_url):
    """CrewAI answers an exception in an agent's step (the step callback writes the tool's event) by
    running the whole task again: once a write finds the lease gone, no tool of that attempt runs again
    (before, the retried Code Executor ran the sandbox a second time: 4 runs in 3 attempts)."""
    repo = Repository(database_url)
    row, _ = new_execution(repo)
    claim(repo, "lease-1")
    requeue(repo, row.id)
    claim(repo, "lease-2")
    ctx = ExecutionContext(execution_id=row.id, user_id="u", schema={}, params=backtest_pb2.BacktestParams(),
                           clients=None, events=EventLog(repo, Notifier(asyncio.new_event_loop())).for_lease("lease-1"),
                           save_code=None, lease="lease-1")
    runs = []

    class SandboxRun(ContextTool):
        name: str = "execute_python_code"
        description: str = "counts its runs"

        def _run(self) -> str:
            return self.run_step(lambda: runs.append(1) or {"outcome": "RUN_OUTCOME_SUCCEEDED"})

    tool = SandboxRun(ctx=ctx)
    assert "SUCCEEDED" in tool._run()
    with pytest.raises(LeaseLost):  # the step callback's event: refused
        _tool_step_event(ctx, "Code Executor", "", tool.name, {}, "{}")

    assert ctx.lease_lost and tool._run().startswith("ERROR")  # the retried task
    assert runs == [1]
