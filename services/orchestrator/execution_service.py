"""stratexec.orchestrator.v1.ExecutionService: submit, read, follow and
cancel executions."""
from __future__ import annotations

import asyncio
import hashlib

import grpc

from services.common import backtest_params, errors, request_limits, struct_limits
from services.orchestrator import convert, statuses
from services.orchestrator.clients import ServiceClients
from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.db.models import Optimization, utcnow
from services.orchestrator.db.repository import Repository
from services.orchestrator.identity import Identity
from services.orchestrator.events import EventLog
from services.orchestrator.checks import check_data, compile_strategy
from services.orchestrator.crew import interpretations
from services.orchestrator.dataset_service import param_symbols, uploads_for
from services.orchestrator.indicator_service import expanded
from services.orchestrator.strategy_service import page_size
from services.orchestrator.research import pages as research_pages, submit as research_submit
from services.orchestrator.worker import Runner
from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2
from stratexec.orchestrator.v1 import execution_pb2, execution_pb2_grpc

CANCEL_WAIT_S = 10.0
QUEUE_FULL_RETRY_S = 10.0  # the RetryInfo of a RESOURCE_EXHAUSTED for a full per-user queue
MAX_NAME = 200  # characters in an execution's name (the column's width)


def request_digest(request) -> str:
    """sha256 of the request (and its kind) without its request_id (deterministic: Struct keys sorted)."""
    body = type(request)()
    body.CopyFrom(request)
    body.request_id = ""
    kind = b"" if isinstance(request, execution_pb2.ExecuteStrategyRequest) else type(request).__name__.encode()
    return hashlib.sha256(kind + body.SerializeToString(deterministic=True)).hexdigest()


class ExecutionServicer(execution_pb2_grpc.ExecutionServiceServicer):
    def __init__(self, config: OrchestratorConfig, identity: Identity, repo: Repository, events: EventLog,
                 runner: Runner, clients: ServiceClients):
        self.config = config
        self.identity = identity
        self.repo = repo
        self.events = events
        self.runner = runner
        self.clients = clients

    async def _execution_pb(self, row) -> execution_pb2.Execution:
        logs = await asyncio.to_thread(self.repo.event_messages, row.id)
        return convert.execution(row, logs)

    async def _owned(self, context, execution_id: str):
        user = self.identity.user(context)
        if not execution_id:
            raise errors.invalid_argument("execution_id is required", [("execution_id", "must not be empty")])
        row = await asyncio.to_thread(self.repo.get_execution, execution_id, user)
        if row is None:
            raise errors.not_found("execution", execution_id)
        return row

    async def _retried(self, existing, digest: str) -> execution_pb2.Execution:
        """The execution a request_id names, if the retry carries the same request (AIP-155)."""
        if existing.request_sha256 is not None and existing.request_sha256 != digest:
            raise errors.ApiError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"request_id {existing.request_id!r} was already used for execution {existing.id} with a different "
                "request; use a new request_id for a new request",
                reason="REQUEST_ID_REUSED", metadata={"request_id": existing.request_id, "execution_id": existing.id},
            )
        return await self._execution_pb(existing)

    async def ExecuteStrategy(self, request, context):
        execution = await self._submit(request, context)
        return execution_pb2.ExecuteStrategyResponse(execution=execution)

    async def OptimizeStrategy(self, request, context):
        execution = await self._submit(request, context, optimize=True)
        return execution_pb2.OptimizeStrategyResponse(execution=execution)

    async def _submit(self, request, context, optimize: bool = False) -> execution_pb2.Execution:
        """Check, compile and store an execution (ExecuteStrategyRequest, or OptimizeStrategyRequest with
        ``optimize``) with its QUEUED event; bad input fails here and nothing is stored."""
        user = self.identity.user(context)
        request_limits.check_request_size(request)
        resolved, bad = backtest_params.check(request.params)
        params = resolved.to_proto()
        has_schema = request.HasField("schema") and bool(request.schema.fields)
        if request.strategy_id and has_schema:
            bad.append(("schema", "give strategy_id or schema, not both"))
        if not request.strategy_id and not has_schema:
            bad.append(("strategy_id", "give a stored strategy_id or an inline schema"))
        if len(request.request_id) > 128:
            bad.append(("request_id", "at most 128 characters"))
        if len(request.name) > MAX_NAME:
            bad.append(("name", f"at most {MAX_NAME} characters (it has {len(request.name)})"))
        elif any(not ch.isprintable() for ch in request.name):
            bad.append(("name", "no control characters (such as a newline or a tab)"))
        if has_schema:
            bad.extend(struct_limits.problems(request.schema, "schema"))
        if optimize:
            bad.extend(research_submit.request_problems(request))
        if bad:
            raise errors.invalid_argument(f"invalid {type(request).__name__.removesuffix('Request')} request", bad)

        digest = request_digest(request)
        if request.request_id:
            existing = await asyncio.to_thread(self.repo.find_by_request, user, request.request_id)
            if existing is not None:
                return await self._retried(existing, digest)

        queued = await asyncio.to_thread(self.repo.queued_count, user)
        if queued >= self.config.user_queue_cap:
            raise errors.ApiError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"you have {queued} executions queued; the limit is {self.config.user_queue_cap}: retry when some "
                "have started", reason="USER_QUEUE_FULL", metadata={"queued": queued, "limit": self.config.user_queue_cap},
                retry_delay_s=QUEUE_FULL_RETRY_S)
        new_strategy = None
        if request.strategy_id:
            strategy = await asyncio.to_thread(self.repo.get_strategy, user, request.strategy_id)
            if strategy is None:
                raise errors.not_found("strategy", request.strategy_id)
            schema = convert.struct(strategy.schema_json)
        else:
            schema = request.schema
        schema = await expanded(self.repo, user, schema)  # the saved indicators its rules name, as nodes
        compiled, interpretation = await self._compile(schema, params, request, optimize)
        analysis = compiled.analysis if compiled is not None else codegen_pb2.StrategyAnalysis()
        uploads = await asyncio.to_thread(uploads_for, self.repo, user, param_symbols(params))  # the user's datasets
        await check_data(self.clients, params, uploads)  # and unknown symbols or dates outside the data
        in_tx = None
        if optimize:  # and the grid: bad ranges, objective or walk-forward fail here too
            sweep = await research_submit.check_grid(self.clients, schema, params, request,
                                                     self.config.sweep_max_combinations)

            def in_tx(session, row):
                session.add(Optimization(execution_id=row.id, request_pb=research_submit.stored_request(request),
                                         sweep_pb=sweep.SerializeToString(), family=research_submit.family(sweep, params),
                                         created_at=utcnow()))
        if new_strategy is None and not request.strategy_id:
            new_strategy = (analysis.summary[:256] or "strategy", convert.struct_to_dict(schema))

        def first_event(row, seq):
            event = execution_pb2.ExecutionEvent(
                execution_id=row.id, sequence=seq, type=execution_pb2.EVENT_TYPE_STATUS_CHANGED,
                status=execution_pb2.EXECUTION_STATUS_QUEUED, message="queued", time=convert.timestamp(utcnow()),
            )
            return "EVENT_TYPE_STATUS_CHANGED", "QUEUED", "queued", event.SerializeToString()

        row, created = await asyncio.to_thread(
            self.repo.create_execution, user, params.SerializeToString(), request.request_id,
            request.strategy_id or None, new_strategy, first_event, compiled and compiled.SerializeToString(),
            request_sha256=digest, name=request.name.strip(), kind="optimization" if optimize else "backtest",
            in_tx=in_tx, rule_interpretation=interpretation,
        )
        if not created:  # a concurrent request with the same request_id stored first
            return await self._retried(row, digest)
        self.events.notifier.notify_threadsafe(row.id)
        self.runner.wake()
        return await self._execution_pb(row)

    async def _compile(self, schema, params, request, optimize: bool):
        """The execution's one compilation; bad rules fail here, before anything is stored. With a language
        model, a rule the grammar does not understand is left to the Strategy Analyzer instead (not for an
        optimization, whose grid needs every rule): (None, "propose" or "accept")."""
        try:
            return await compile_strategy(self.clients, schema, params), None
        except errors.ApiError as exc:
            if optimize or not interpretations.interpretable(exc.to_status()):
                raise
            if not self.config.anthropic_api_key:
                if request.accept_interpreted_rules:
                    exc.to_status().message += (" (accept_interpreted_rules has no effect: no language model is "
                                                "configured to interpret the rule)")
                raise
            return None, "accept" if request.accept_interpreted_rules else "propose"

    async def GetOptimizationResults(self, request, context):
        row = await self._owned(context, request.execution_id)
        if row.kind != "optimization":
            raise errors.failed_precondition(f"execution {row.id} is a backtest, not an optimization: use "
                                             "GetBacktestResults", "NOT_AN_OPTIMIZATION")
        stored = await asyncio.to_thread(self.repo.get_optimization, row.id)
        if row.status != "COMPLETED" or stored is None or stored.summary_pb is None:
            raise errors.failed_precondition(
                f"execution {row.id} has no optimization results: its status is {row.status}", "EXECUTION_NOT_COMPLETED",
                status=row.status)
        return await asyncio.to_thread(research_pages.response, stored, request, self.identity.user(context))

    async def GetExecution(self, request, context):
        row = await self._owned(context, request.execution_id)
        return execution_pb2.GetExecutionResponse(execution=await self._execution_pb(row))

    async def GetGeneratedCode(self, request, context):
        row = await self._owned(context, request.execution_id)
        if not row.generated_code:
            raise errors.failed_precondition(
                f"execution {row.id} has no generated code yet (status {row.status})", "CODE_NOT_GENERATED",
                status=row.status)
        return execution_pb2.GetGeneratedCodeResponse(code=row.generated_code, sha256=row.code_sha256 or "")

    async def GetBacktestResults(self, request, context):
        row = await self._owned(context, request.execution_id)
        if row.status != "COMPLETED" or not row.backtest_run_id:
            raise errors.failed_precondition(
                f"execution {row.id} has no results: its status is {row.status}", "EXECUTION_NOT_COMPLETED",
                status=row.status)
        run = await asyncio.to_thread(self.repo.get_run, row.backtest_run_id)
        return execution_pb2.GetBacktestResultsResponse(
            backtest_run_id=run.id, result=backtest_pb2.BacktestResult.FromString(run.result_pb))

    async def ListStrategyExecutions(self, request, context):
        user = self.identity.user(context)
        rows, token = await asyncio.to_thread(self.repo.list_executions, user, request.strategy_id,
                                              page_size(request.page_size), request.page_token)
        return execution_pb2.ListStrategyExecutionsResponse(
            executions=[convert.execution(r) for r in rows], next_page_token=token)

    async def WatchExecution(self, request, context):
        if request.after_sequence < 0:
            raise errors.invalid_argument("after_sequence must not be negative", [("after_sequence", "must be >= 0")])
        await self._owned(context, request.execution_id)
        async for event in self.events.follow(request.execution_id, request.after_sequence):
            yield execution_pb2.WatchExecutionResponse(event=event)

    async def CancelExecution(self, request, context):
        row = await self._owned(context, request.execution_id)
        if statuses.is_terminal(row.status):
            raise errors.failed_precondition(
                f"execution {row.id} already finished with status {row.status}", "EXECUTION_FINISHED", status=row.status)
        cancelled = await asyncio.to_thread(
            self.events.status_change, row.id, "CANCELLED", "cancelled while queued", expect_status=["QUEUED"],
            row_changes={"completed_at": utcnow(), "cancel_requested": 1})
        if cancelled is None:  # running: stop its crew and sandbox call, then wait a little for the outcome
            await asyncio.to_thread(self.repo.request_cancel, row.id)
            self.runner.cancel_running(row.id)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + CANCEL_WAIT_S
            while loop.time() < deadline:
                row = await asyncio.to_thread(self.repo.get_execution, row.id)
                if statuses.is_terminal(row.status):
                    break
                await asyncio.sleep(0.1)
        row = await asyncio.to_thread(self.repo.get_execution, row.id)
        return execution_pb2.CancelExecutionResponse(execution=await self._execution_pb(row))
