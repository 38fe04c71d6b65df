"""The job runner: workers that claim queued executions, run their crews
in threads, and record the outcome.

The database is the queue and the source of truth. A worker claims the
oldest queued execution with an atomic status change (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), so no execution runs twice, on this replica or
another. A running execution holds a lease that its replica renews; when
a replica dies (SIGKILL, a lost machine), any replica takes its
executions over once the lease expires and queues them again, at most
``max_attempts`` starts, then FAILED with the reason.

Every claim is fenced: it gets a new lease token, and every write of that
attempt (events, code, insights, the outcome) must present it. Leases are
renewed by a thread with its own database connection (services/
orchestrator/leases.py), never queued behind request handlers; a replica
whose lease was taken over anyway stops that crew and writes nothing more.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import datetime as dt
import functools
import logging
import os
import random
import socket
import uuid

import grpc
from google.protobuf import json_format
from google.rpc import code_pb2

from services.common import errors
from services.common.logs import execution_id_var, log
from services.orchestrator import dataset_service, insights, preferences, statuses
from services.orchestrator.dataset_service import param_symbols
from services.orchestrator.clients import ServiceClients
from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.crew.context import ExecutionContext
from services.orchestrator.crew.crew import build_crew
from services.orchestrator.crew.llm import llm_name, make_llm
from services.orchestrator.db.models import BacktestRun, Optimization, utcnow
from services.orchestrator.db.repository import LeaseLost, Repository
from services.orchestrator.events import EventLog
from services.orchestrator.leases import LeaseKeeper
from services.orchestrator.research.state import Research
from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2
from stratexec.orchestrator.v1 import execution_pb2

logger = logging.getLogger("orchestrator.worker")
POLL_SECONDS = 2.0  # idle workers look for queued work at least this often
OUTAGE_CODES = (code_pb2.UNAVAILABLE, code_pb2.RESOURCE_EXHAUSTED)  # worth another try later


def outage_backoff(n: int) -> float:
    """Seconds before the (n+1)-th try after an outage, before jitter."""
    return float(min(2 ** n, 16))


class Runner:
    def __init__(self, config: OrchestratorConfig, repo: Repository, events: EventLog, clients: ServiceClients):
        self.config = config
        self.repo = repo
        self.events = events
        self.clients = clients
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.running: dict[str, ExecutionContext] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self.leases = LeaseKeeper(repo, self.running, period=max(config.lease_seconds / 3, 0.2))
        # Crews run on threads of their own: they never take the default pool's threads from request handlers.
        self._crew_pool = concurrent.futures.ThreadPoolExecutor(config.workers, thread_name_prefix="crew")

    # -- life cycle ---------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self._sweep)
        self.leases.start()
        self._tasks = [asyncio.create_task(self._work(i)) for i in range(self.config.workers)]
        self._tasks.append(asyncio.create_task(self._keep_sweeping()))

    async def stop(self, grace: float) -> None:
        """Interrupt running crews; their executions stay non-terminal and resume once their lease expires."""
        self._stopping = True
        self._wake.set()
        for ctx in self.running.values():
            ctx.cancel.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace)
        for task in self._tasks:
            task.cancel()
        self.leases.stop()
        self._crew_pool.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        """Work may be waiting (a new execution here, or a NOTIFY from another replica)."""
        self._wake.set()

    def cancel_running(self, execution_id: str) -> bool:
        ctx = self.running.get(execution_id)
        if ctx is None:
            return False
        ctx.cancel.set()
        return True

    # -- leases: a replica that dies stops renewing; its executions are taken over ----
    async def _keep_sweeping(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.leases.period)
            try:
                await asyncio.to_thread(self._sweep)
            except Exception:
                logger.exception("lease sweep failed")

    def _sweep(self) -> None:
        """Take over executions whose replica stopped renewing its lease."""
        for row in self.repo.abandoned(self.config.lease_seconds):
            if row.id not in self.running:
                self._recover(row)

    def _recover(self, row) -> None:
        cutoff = utcnow() - dt.timedelta(seconds=self.config.lease_seconds)

        def still_abandoned(current) -> bool:
            beat = current.heartbeat_at
            if beat is not None and beat.tzinfo is None:
                beat = beat.replace(tzinfo=dt.timezone.utc)
            return beat is None or beat < cutoff

        common = {"expect_status": statuses.RUNNING, "guard": still_abandoned}
        ended = {"completed_at": utcnow(), "lease_token": None}
        if row.cancel_requested:
            self.events.status_change(row.id, "CANCELLED", "cancelled (its run was interrupted)",
                                      row_changes=ended, **common)
        elif row.attempts >= self.config.max_attempts:
            status = errors.make_status(grpc.StatusCode.ABORTED,
                                        f"gave up after {row.attempts} attempts, each interrupted before it finished",
                                        reason="TOO_MANY_ATTEMPTS", metadata={"attempts": str(row.attempts)})
            self.events.status_change(row.id, "FAILED", status.message, error=status,
                                      row_changes={**self._error_changes(status), **ended}, **common)
        elif self.events.status_change(row.id, "QUEUED", f"re-queued: its worker stopped (attempt {row.attempts + 1} next)",
                                       row_changes={"worker_id": None, "heartbeat_at": None, "lease_token": None},
                                       **common):
            self.wake()

    # -- one execution ------------------------------------------------------
    async def _work(self, index: int) -> None:
        while not self._stopping:
            self._wake.clear()
            if self.repo.damaged:  # a corrupt database: claim nothing more (readiness says NOT_SERVING)
                await asyncio.sleep(POLL_SECONDS)
                continue
            claimed = await asyncio.to_thread(
                self.events.claim_next, "ANALYZING", "analyzing the strategy",
                {"worker_id": self.worker_id, "heartbeat_at": utcnow(), "lease_token": str(uuid.uuid4())},
                lambda _s, row: {"attempts": (row.attempts or 0) + 1, "started_at": row.started_at or utcnow()},
                self.config.user_concurrency,
            )
            if claimed is None:
                try:
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
                except asyncio.TimeoutError:
                    pass
                continue
            row = claimed[1]
            self._wake.set()  # there may be more: let an idle worker look
            token = execution_id_var.set(row.id)
            try:
                await self._run(row)
            except Exception as exc:
                await asyncio.to_thread(self._fail_crashed, row, exc)
            finally:
                execution_id_var.reset(token)

    async def _run(self, row) -> None:
        params = backtest_pb2.BacktestParams.FromString(row.params_pb)
        ctx = ExecutionContext(
            execution_id=row.id, user_id=row.user_id, schema={},
            params=params, clients=self.clients,
            events=self.events.for_lease(row.lease_token),
            save_code=functools.partial(self.repo.save_code, lease=row.lease_token), lease=row.lease_token,
            load_preferences=functools.partial(preferences.load, self.repo, self.clients, row.user_id),
            load_uploads=functools.partial(dataset_service.uploads_for, self.repo, row.user_id, param_symbols(params)),
            compiled=codegen_pb2.GenerateCodeResponse.FromString(row.compiled_pb) if row.compiled_pb else None,
            outage_requeues=row.outage_requeues or 0, rule_interpretation=row.rule_interpretation,
        )
        if row.kind == "optimization":
            ctx.research = self._research(row)
        if row.cancel_requested:
            ctx.cancel.set()
        self.running[row.id] = ctx  # the lease keeper renews it from the claim on, whatever the thread pools do
        loop = asyncio.get_running_loop()
        try:
            strategy = await loop.run_in_executor(self._crew_pool, self.repo.get_strategy, row.user_id, row.strategy_id)
            ctx.schema = strategy.schema_json
            # run_in_executor does not carry contextvars (asyncio.to_thread does): the crew's calls need the
            # execution id, which the tracing interceptor sends to every service
            llm_used = await loop.run_in_executor(self._crew_pool, contextvars.copy_context().run, self._run_crew, ctx)
            await loop.run_in_executor(self._crew_pool, self._finish, ctx, llm_used)
        except LeaseLost:
            ctx.lose_lease()
        finally:
            self.running.pop(row.id, None)
        if ctx.lease_lost:
            log(logger, logging.WARNING, "lease lost: another replica took this execution over; its writes are refused",
                execution_id=row.id)

    def _research(self, row) -> Research:
        """An optimization's request and grid (stored at submit), bound to the trial ledger of its family."""
        stored = self.repo.get_optimization(row.id)
        return Research(
            request=execution_pb2.OptimizeStrategyRequest.FromString(stored.request_pb),
            sweep=codegen_pb2.GenerateSweepCodeResponse.FromString(stored.sweep_pb), family=stored.family,
            record_trials=lambda trials, source: self.repo.record_trials(row.user_id, stored.family, row.id, source, trials),
            ledger=functools.partial(self.repo.trials, row.user_id, stored.family),
            chunk_combinations=self.config.sweep_chunk_combinations, timeout_s=self.config.sweep_timeout_s)

    def _fail_crashed(self, row, exc: Exception) -> None:
        """An error the crew could not record (a corrupt database page, a bug): FAILED once, with
        DATA_LOSS or INTERNAL and an error id in the logs, instead of re-runs that end "interrupted"."""
        error, error_id = errors.boundary_error(exc)
        logger.error("execution %s crashed the worker", row.id, exc_info=exc, extra={"fields": {"error_id": error_id}})
        status = error.to_status()
        try:
            self.events.for_lease(row.lease_token).status_change(
                row.id, "FAILED", f"failed: {errors.describe(status)}", error=status, expect_status=statuses.RUNNING,
                row_changes=self._error_changes(status))
        except Exception:
            logger.exception("could not record the failure of %s", row.id)

    def _run_crew(self, ctx: ExecutionContext) -> str:
        llm = make_llm(self.config)
        try:
            build_crew(ctx, llm).kickoff()
        except LeaseLost:
            ctx.lose_lease()
        except Exception as exc:  # CrewAI may wrap a LeaseLost, or the StopCrew of a task callback
            if isinstance(exc.__cause__ or exc.__context__, LeaseLost) or "LeaseLost" in repr(exc):
                ctx.lose_lease()
            # StopCrew is raised only once the execution has failed or is cancelled: the context says so,
            # whatever the exception looks like.
            elif ctx.error is None and not ctx.cancel.is_set():
                logger.exception("crew failed")
                ctx.fail(errors.make_status(grpc.StatusCode.INTERNAL, f"the crew failed: {exc!r}", reason="CREW_FAILED"))
        return llm_name(llm)

    def _requeue_after_outage(self, ctx: ExecutionContext) -> bool:
        """Queue an execution whose dependency was UNAVAILABLE or RESOURCE_EXHAUSTED again, after a back-off
        (1, 2, 4, 8, 16, 16 ... s, jittered) while their total stays within outage_budget_s; False past it."""
        if ctx.error is None or ctx.error.code not in OUTAGE_CODES:
            return False
        n = ctx.outage_requeues
        if sum(outage_backoff(i) for i in range(n + 1)) > self.config.outage_budget_s:
            ctx.error.message += f" (still so after {n} re-queues, {self.config.outage_budget_s:g} s of back-off)"
            return False
        delay = outage_backoff(n) * random.uniform(0.5, 1.0)
        ctx.events.status_change(
            ctx.execution_id, "QUEUED", f"re-queued after {errors.describe(ctx.error)}; next try in {delay:.1f}s",
            expect_status=statuses.RUNNING,
            row_changes={"retry_at": utcnow() + dt.timedelta(seconds=delay), "outage_requeues": n + 1,
                         "worker_id": None, "heartbeat_at": None, "lease_token": None})
        return True

    @staticmethod
    def _error_changes(status) -> dict:
        return {"error_message": status.message, "error_pb": status.SerializeToString(), "completed_at": utcnow()}

    def _finish(self, ctx: ExecutionContext, llm: str) -> None:
        """Record the outcome, fenced by the attempt's lease (LeaseLost when another replica took over)."""
        if ctx.lease_lost:
            return
        ctx.close_stage()
        for conflict in ctx.preference_conflicts():
            ctx.warn("orchestrator", f"preference conflict: {conflict}")
        self.repo.set_insights(ctx.execution_id, insights.collect(ctx, llm), lease=ctx.lease)
        eid = ctx.execution_id
        if self._stopping and ctx.cancel.is_set():
            ctx.events.log_line(eid, ctx.status, "warning", "orchestrator",
                                 "interrupted by a shutdown; another worker takes it over when the lease expires")
            return
        if ctx.cancel.is_set():
            ctx.events.status_change(eid, "CANCELLED", "cancelled", expect_status=statuses.RUNNING,
                                      row_changes={"completed_at": utcnow()})
        elif self._requeue_after_outage(ctx):
            return
        elif ctx.error is not None or ctx.result is None:
            status = ctx.error or errors.make_status(grpc.StatusCode.INTERNAL, "the crew ended without a backtest result",
                                                     reason="NO_RESULT")
            ctx.events.status_change(eid, "FAILED", f"failed: {errors.describe(status)}", error=status,
                                      expect_status=statuses.RUNNING,
                                      row_changes=self._error_changes(status))
        else:
            run_id = str(uuid.uuid4())
            result = ctx.result

            def store_run(session, _row):
                session.add(BacktestRun(id=run_id, execution_id=eid, created_at=utcnow(),
                                        metrics=json_format.MessageToDict(result.metrics, preserving_proto_field_name=True),
                                        result_pb=result.SerializeToString()))
                if ctx.research is not None:  # the optimization's results, in the same fenced transaction
                    stored = session.get(Optimization, eid)
                    stored.summary_pb = ctx.research.summary.SerializeToString()
                    stored.result_pb = ctx.research.result.SerializeToString()

            m = result.metrics
            ctx.events.status_change(
                eid, "COMPLETED",
                f"completed: total return {m.total_return:.2f}%, {m.trades} closed trades",
                expect_status=statuses.RUNNING, in_tx=store_run,
                row_changes={"backtest_run_id": run_id, "completed_at": utcnow()},
            )
        self.repo.snapshot_logs(eid, lease=ctx.lease)
        log(logger, logging.INFO, "finished", execution_id=eid, seconds=ctx.stage_seconds)
