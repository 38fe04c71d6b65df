"""The event log: append (stored first), then wake the watchers.

Watchers never receive events from the producer directly: a notification
only tells them to read the log after the last sequence they sent. So a
slow subscriber never slows an execution or another subscriber, and a
reconnecting client that passes its last sequence misses nothing and sees
nothing twice.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import AsyncIterator

from google.protobuf import timestamp_pb2
from google.rpc import status_pb2

from services.common.logs import log
from services.orchestrator import statuses
from services.orchestrator.db.repository import LeaseLost, Repository
from stratexec.orchestrator.v1 import execution_pb2

logger = logging.getLogger("orchestrator.events")
POLL_SECONDS = 2.0  # fallback re-read, for events written by another replica


class Notifier:
    """Per-execution wake-ups, safe to trigger from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._events: dict[str, asyncio.Event] = {}

    def notify_threadsafe(self, execution_id: str) -> None:
        self.loop.call_soon_threadsafe(self.notify, execution_id)

    def notify(self, execution_id: str) -> None:
        waiter = self._events.pop(execution_id, None)
        if waiter is not None:
            waiter.set()

    def waiter(self, execution_id: str) -> asyncio.Event:
        return self._events.setdefault(execution_id, asyncio.Event())


def _now_ts() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt.datetime.now(dt.timezone.utc))
    return ts


class EventLog:
    def __init__(self, repo: Repository, notifier: Notifier, lease: str | None = None, on_lost=None):
        self.repo = repo
        self.notifier = notifier
        self.lease = lease  # when set, every append is fenced by it (raises LeaseLost once it no longer holds)
        self.on_lost = on_lost  # called before a refused append raises LeaseLost: the attempt stops at once

    def for_lease(self, lease: str, on_lost=None) -> "EventLog":
        """The event log as one attempt of an execution writes it."""
        return EventLog(self.repo, self.notifier, lease, on_lost)

    def append(
        self,
        execution_id: str,
        etype: int,
        status: str,
        message: str,
        *,
        agent_step: execution_pb2.AgentStep | None = None,
        log_line: execution_pb2.LogLine | None = None,
        error: status_pb2.Status | None = None,
        row_changes: dict | None = None,
        expect_status=None,
        in_tx=None,
        guard=None,
    ):
        """Store one event (with its row changes) and wake watchers. Blocking."""
        build = self._builder(etype, status, message, agent_step, log_line, error)
        try:
            result = self.repo.append_event(execution_id, build, row_changes, expect_status, in_tx, guard, self.lease)
        except LeaseLost:
            if self.on_lost is not None:
                self.on_lost()
            raise
        if result is not None:
            self.notifier.notify_threadsafe(execution_id)
        return result

    @staticmethod
    def _builder(etype, status, message, agent_step=None, log_line=None, error=None):
        def build(execution_id: str, seq: int):
            event = execution_pb2.ExecutionEvent(
                execution_id=execution_id, sequence=seq, time=_now_ts(), type=etype,
                status=statuses.to_proto(status), message=message,
            )
            if agent_step is not None:
                event.agent_step.CopyFrom(agent_step)
            if log_line is not None:
                event.log.CopyFrom(log_line)
            if error is not None:
                event.error.CopyFrom(error)
            return execution_pb2.EventType.Name(etype), status, message, event.SerializeToString()

        return build

    def claim_next(self, status: str, message: str, row_changes: dict, in_tx=None, user_limit: int = 0):
        """Claim the next queued execution (round robin across users), moving it to ``status`` with its event."""
        build = self._builder(execution_pb2.EVENT_TYPE_STATUS_CHANGED, status, message)
        result = self.repo.claim_next(build, {"status": status, **row_changes}, in_tx, user_limit)
        if result is not None:
            self.notifier.notify_threadsafe(result[1].id)
            log(logger, logging.INFO, "status", execution_id=result[1].id, status=status, detail=message)
        return result

    def status_change(self, execution_id: str, new_status: str, message: str, *, error=None, row_changes=None,
                      expect_status=None, in_tx=None, guard=None):
        changes = {"status": new_status, **(row_changes or {})}
        result = self.append(execution_id, execution_pb2.EVENT_TYPE_STATUS_CHANGED, new_status, message,
                             error=error, row_changes=changes, expect_status=expect_status, in_tx=in_tx, guard=guard)
        if result is not None:
            log(logger, logging.INFO, "status", execution_id=execution_id, status=new_status, detail=message)
        return result

    def log_line(self, execution_id: str, status: str, level: str, source: str, message: str) -> None:
        """``level``: "info", "warning" or "error" (LOG_LEVEL_INFO, ...)."""
        line = execution_pb2.LogLine(level=execution_pb2.LogLevel.Value(f"LOG_LEVEL_{level.upper()}"),
                                     source=source, message=message)
        self.append(execution_id, execution_pb2.EVENT_TYPE_LOG, status, f"[{source}] {message}", log_line=line)

    async def follow(self, execution_id: str, after_sequence: int) -> AsyncIterator[execution_pb2.ExecutionEvent]:
        """Every event after ``after_sequence``: stored ones, then live ones,
        ending after the terminal status change."""
        last = after_sequence
        while True:
            waiter = self.notifier.waiter(execution_id)  # taken before reading: no lost wake-up
            rows = await asyncio.to_thread(self.repo.events_after, execution_id, last)
            for row in rows:
                event = execution_pb2.ExecutionEvent.FromString(row.event_pb)
                last = row.sequence
                yield event
                if row.type == "EVENT_TYPE_STATUS_CHANGED" and statuses.is_terminal(row.status):
                    return
            if rows:
                continue
            execution = await asyncio.to_thread(self.repo.get_execution, execution_id)
            if execution is None or statuses.is_terminal(execution.status):
                # Nothing after `last` and the execution is over: the terminal event was before it.
                more = await asyncio.to_thread(self.repo.events_after, execution_id, last, 1)
                if not more:
                    return
                continue
            try:
                await asyncio.wait_for(waiter.wait(), POLL_SECONDS)
            except asyncio.TimeoutError:
                pass
