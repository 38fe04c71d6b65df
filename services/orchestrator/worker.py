"""The job runner: a queue of execution ids and a pool of workers that
claim an execution, run its crew in a thread, and record the outcome.

The database is the source of truth: a job is claimed by an atomic status
change from QUEUED, so two workers (or replicas) never run it twice, and
on start the executions a previous process left unfinished are queued
again (at most ``max_attempts`` starts, then FAILED).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid

import grpc
from google.protobuf import json_format

from services.common import errors
from services.common.logs import execution_id_var, log
from services.orchestrator import statuses
from services.orchestrator.clients import ServiceClients
from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.crew.context import ExecutionContext
from services.orchestrator.crew.crew import StopCrew, build_crew
from services.orchestrator.crew.llm import llm_name, make_llm
from services.orchestrator.db.models import BacktestRun, utcnow
from services.orchestrator.db.repository import Repository
from services.orchestrator.events import EventLog
from stratexec.backtest.v1 import backtest_pb2

logger = logging.getLogger("orchestrator.worker")


class Runner:
    def __init__(self, config: OrchestratorConfig, repo: Repository, events: EventLog, clients: ServiceClients):
        self.config = config
        self.repo = repo
        self.events = events
        self.clients = clients
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.running: dict[str, ExecutionContext] = {}
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    # -- life cycle ---------------------------------------------------------
    async def start(self) -> None:
        for row in await asyncio.to_thread(self.repo.executions_to_resume):
            await asyncio.to_thread(self._resume, row)
        self._tasks = [asyncio.create_task(self._work(i)) for i in range(self.config.workers)]

    def _resume(self, row) -> None:
        if row.status == "QUEUED":
            self.queue.put_nowait(row.id)
            return
        if row.cancel_requested:
            self.events.status_change(row.id, "CANCELLED", "cancelled (the run was interrupted by a restart)",
                                      row_changes={"completed_at": utcnow()}, expect_status=statuses.RUNNING)
        elif row.attempts >= self.config.max_attempts:
            status = errors.make_status(grpc.StatusCode.ABORTED,
                                        f"gave up after {row.attempts} attempts interrupted by restarts",
                                        reason="TOO_MANY_ATTEMPTS", metadata={"attempts": str(row.attempts)})
            self.events.status_change(row.id, "FAILED", status.message, error=status, expect_status=statuses.RUNNING,
                                      row_changes=self._error_changes(status))
        else:
            self.events.status_change(row.id, "QUEUED", f"re-queued after a restart (attempt {row.attempts + 1} next)",
                                      expect_status=statuses.RUNNING)
            self.queue.put_nowait(row.id)

    async def stop(self, grace: float) -> None:
        """Interrupt running crews; their executions stay non-terminal and resume on the next start."""
        self._stopping = True
        for ctx in self.running.values():
            ctx.cancel.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace)
        for task in self._tasks:
            task.cancel()

    def submit(self, execution_id: str) -> None:
        self.queue.put_nowait(execution_id)

    def cancel_running(self, execution_id: str) -> bool:
        ctx = self.running.get(execution_id)
        if ctx is None:
            return False
        ctx.cancel.set()
        return True

    # -- one execution ------------------------------------------------------
    async def _work(self, index: int) -> None:
        while not self._stopping:
            execution_id = await self.queue.get()
            token = execution_id_var.set(execution_id)
            try:
                await self._run(execution_id)
            except Exception:
                logger.exception("execution %s crashed the worker", execution_id)
            finally:
                execution_id_var.reset(token)

    async def _run(self, execution_id: str) -> None:
        claimed = await asyncio.to_thread(
            self.events.status_change, execution_id, "ANALYZING", "analyzing the strategy",
            expect_status=["QUEUED"],
            in_tx=lambda _s, row: {"attempts": (row.attempts or 0) + 1, "started_at": row.started_at or utcnow()},
        )
        if claimed is None:
            return  # cancelled while queued, or taken by another worker
        row = claimed[1]
        strategy = await asyncio.to_thread(self.repo.get_strategy, row.user_id, row.strategy_id)
        ctx = ExecutionContext(
            execution_id=execution_id, user_id=row.user_id, schema=strategy.schema_json,
            params=backtest_pb2.BacktestParams.FromString(row.params_pb), clients=self.clients,
            events=self.events, save_code=self.repo.save_code,
        )
        self.running[execution_id] = ctx
        try:
            llm_used = await asyncio.to_thread(self._run_crew, ctx)
        finally:
            self.running.pop(execution_id, None)
        await asyncio.to_thread(self._finish, ctx, llm_used)

    def _run_crew(self, ctx: ExecutionContext) -> str:
        llm = make_llm(self.config)
        try:
            build_crew(ctx, llm).kickoff()
        except StopCrew:
            pass
        except Exception as exc:  # CrewAI may wrap the callback's StopCrew
            if not isinstance(exc.__cause__ or exc.__context__, StopCrew) and "StopCrew" not in repr(exc):
                logger.exception("crew failed")
                ctx.fail(errors.make_status(grpc.StatusCode.INTERNAL, f"the crew failed: {exc!r}", reason="CREW_FAILED"))
        return llm_name(llm)

    @staticmethod
    def _error_changes(status) -> dict:
        return {"error_message": status.message, "error_pb": status.SerializeToString(), "completed_at": utcnow()}

    def _insights(self, ctx: ExecutionContext, llm: str) -> dict:
        insights = {"llm": llm, "stage_seconds": ctx.stage_seconds, "memory_findings": ctx.memory_findings,
                    "memory_stored": ctx.memory_stored, "warnings": ctx.warnings}
        if ctx.analysis is not None:
            insights["summary"] = ctx.analysis.summary
            insights["interpretation"] = [json_format.MessageToDict(r, preserving_proto_field_name=True)
                                          for r in ctx.analysis.rules]
            insights["indicators"] = list(ctx.analysis.indicators)
            insights["warnings"] = list(ctx.analysis.warnings) + ctx.warnings
        if ctx.code_sha256:
            insights["code_sha256"] = ctx.code_sha256
        if ctx.run_ms:
            insights["sandbox_run_ms"] = round(ctx.run_ms, 1)
        return insights

    def _finish(self, ctx: ExecutionContext, llm: str) -> None:
        ctx.close_stage()
        self.repo.set_insights(ctx.execution_id, self._insights(ctx, llm))
        eid = ctx.execution_id
        if self._stopping and ctx.cancel.is_set():
            self.events.log_line(eid, ctx.status, "warning", "orchestrator", "interrupted by shutdown; resumes on restart")
            return
        if ctx.cancel.is_set():
            self.events.status_change(eid, "CANCELLED", "cancelled", expect_status=statuses.RUNNING,
                                      row_changes={"completed_at": utcnow()})
        elif ctx.error is not None or ctx.result is None:
            status = ctx.error or errors.make_status(grpc.StatusCode.INTERNAL, "the crew ended without a backtest result",
                                                     reason="NO_RESULT")
            self.events.status_change(eid, "FAILED", f"failed: {errors.describe(status)}", error=status,
                                      expect_status=statuses.RUNNING,
                                      row_changes=self._error_changes(status))
        else:
            run_id = str(uuid.uuid4())
            result = ctx.result

            def store_run(session, _row):
                session.add(BacktestRun(id=run_id, execution_id=eid, created_at=utcnow(),
                                        metrics=json_format.MessageToDict(result.metrics, preserving_proto_field_name=True),
                                        result_pb=result.SerializeToString()))

            m = result.metrics
            self.events.status_change(
                eid, "COMPLETED",
                f"completed: total return {m.total_return:.2f}%, {m.trades} closed trades",
                expect_status=statuses.RUNNING, in_tx=store_run,
                row_changes={"backtest_run_id": run_id, "completed_at": utcnow()},
            )
        self.repo.snapshot_logs(eid)
        log(logger, logging.INFO, "finished", execution_id=eid, seconds=ctx.stage_seconds)
