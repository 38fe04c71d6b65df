"""The sandbox gRPC service: ExecuteCode, DescribeData and GetIsolation.

    python -m services.sandbox        (SANDBOX_PORT, default 50053)

ExecuteCode: policy check (check_code) -> parameters -> market data prepared
into a private run directory -> the runner (fresh interpreter or warm pool)
runs the script in the jail -> the result from the channel is checked and
its metrics recomputed -> response with outcome, result, logs, isolation.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os

import grpc

from services.common import backtest_params, errors, logs
from services.common.code_policy import Violation, check_code
from services.common.env import quiet_libraries
from services.common.server import ServerSpec, serve
from services.sandbox import isolation, sweep_result
from services.sandbox.config import SandboxConfig
from services.sandbox.market_data import DataRequest, PriceProvider, make_provider, prepare
from services.sandbox.market_data.providers import WithUploads
from services.sandbox.market_data.prepared_cache import PreparedCache
from services.sandbox.result import ResultRejected, data_source_proto, to_proto, verify
from services.sandbox.runner import Outcome, QueueFull, Runner, RunJob
from services.sandbox.runners import make_runner
from stratexec.backtest.v1 import backtest_pb2
from stratexec.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from stratexec_runtime.sweep import MAX_THREADS as SWEEP_THREADS

SERVICE_NAME = "stratexec.sandbox.v1.SandboxService"

OUTCOMES = {
    Outcome.SUCCEEDED: sandbox_pb2.RUN_OUTCOME_SUCCEEDED,
    Outcome.FAILED: sandbox_pb2.RUN_OUTCOME_FAILED,
    Outcome.TIMED_OUT: sandbox_pb2.RUN_OUTCOME_TIMED_OUT,
    Outcome.KILLED: sandbox_pb2.RUN_OUTCOME_KILLED,
}
ERROR_CODES = {
    Outcome.FAILED: grpc.StatusCode.ABORTED,
    Outcome.TIMED_OUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    Outcome.KILLED: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


@dataclasses.dataclass(frozen=True)
class RunParams:
    data: DataRequest
    initial_capital: float


def resolve_params(params: backtest_pb2.BacktestParams) -> RunParams:
    """The shared defaults and checks (services.common.backtest_params), as a data request."""
    p = backtest_params.resolve(params)
    symbols = (*p.symbols, *backtest_params.benchmark_symbols(p.symbols, p.benchmark))  # prepare() drops repeats
    request = DataRequest(symbols=symbols, start_date=p.start_date, end_date=p.end_date, timeframe=p.timeframe,
                          prices=p.prices)
    return RunParams(request, p.initial_capital)


def violations_error(violations: list[Violation]) -> errors.ApiError:
    return errors.invalid_argument(
        f"the code breaks the policy ({len(violations)} violation{'s' if len(violations) != 1 else ''}): "
        + "; ".join(f"line {v.line}: {v.message}" for v in violations[:5]),
        [(f"code:{v.line}:{v.column}", f"{v.rule}: {v.message}") for v in violations],
        reason="CODE_POLICY_VIOLATION",
    )


def _last_error_line(lines: list[str]) -> str:
    for line in reversed(lines):
        if line.strip() and not line.startswith("[output truncated"):
            return line.strip()[:500]
    return ""


class SandboxServicer(sandbox_pb2_grpc.SandboxServiceServicer):
    def __init__(self, config: SandboxConfig, provider: PriceProvider, runner: Runner, logger: logging.Logger,
                 plan: isolation.IsolationPlan):
        self.config = config
        self.plan = plan
        self.provider = provider
        # DescribeData (the orchestrator's check at submit) and the run after it prepare the same window once
        self.prepared = PreparedCache(provider, ttl_s=min(300.0, config.cache_ttl_seconds or 300.0))
        self.runner = runner
        self.logger = logger

    def _timeout(self, requested: int) -> float:
        if requested < 0:
            raise errors.invalid_argument("timeout_seconds must not be negative", [("timeout_seconds", "must be >= 0")])
        if requested > self.config.max_timeout_seconds:
            raise errors.invalid_argument(
                f"timeout_seconds {requested} is over the limit of {self.config.max_timeout_seconds:g}",
                [("timeout_seconds", f"at most {self.config.max_timeout_seconds:g}")],
            )
        return float(requested) if requested else self.config.default_timeout_seconds

    async def _prepare(self, params: RunParams, uploads=()):
        """Slices of cached local files are quick and run inline; a remote provider runs in a thread.
        ``uploads``: the bars of a user's datasets (small, prepared uncached)."""
        if uploads:
            provider = WithUploads.of(self.provider, uploads)
            return await asyncio.to_thread(prepare, provider, params.data)
        if self.provider.remote:
            return await asyncio.to_thread(self.prepared.get, params.data)
        return self.prepared.get(params.data)

    def _sweep_cpu_seconds(self, timeout: float) -> int:
        """RLIMIT_CPU of a sweep: its chunks run on up to SWEEP_THREADS threads (stratexec_runtime.sweep), so
        CPU time runs up to that many times faster than the clock; the wall timeout stays the bound."""
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
        return max(self.config.limits.cpu_seconds, math.ceil(timeout * max(1, min(cpus, SWEEP_THREADS))))

    async def _run(self, request, context, sweep: bool = False):
        """Policy check, data, one jailed run: (params, prepared data, job, output)."""
        logs.execution_id_var.set(request.execution_id)
        violations = check_code(request.code)
        if violations:
            raise violations_error(violations)
        params = resolve_params(request.params)
        timeout = self._timeout(request.timeout_seconds)
        prepared = await self._prepare(params, request.uploads)
        job = RunJob(code=request.code, data=prepared, timeout_seconds=timeout, execution_id=request.execution_id,
                     caller=context.peer() or "",  # one caller per connection: the orchestrator's channel is one
                     cpu_seconds=self._sweep_cpu_seconds(timeout) if sweep else None)
        logs.log(self.logger, logging.INFO, "run started", run_id=job.run_id, mode=self.config.mode, timeout_s=timeout)
        try:
            out = await self.runner.run(job)
        except asyncio.CancelledError:  # the caller went away or cancelled: the runner has killed the run
            logs.log(self.logger, logging.INFO, "run cancelled by the caller", run_id=job.run_id)
            raise
        except QueueFull as exc:
            raise errors.ApiError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"the sandbox is busy: {exc}", reason="QUEUE_FULL")
        return params, prepared, job, out

    def _settle(self, response, out, job, check, what: str):
        """Fill ``response`` from a run's output; ``check()`` verifies a succeeded run's result (ResultRejected).

        Returns the final (outcome, reason): a rejected result turns a succeeded run into a failed one."""
        outcome, reason, message = out.outcome, out.reason, out.message
        if outcome is Outcome.SUCCEEDED:
            try:
                response.result.CopyFrom(check())
            except ResultRejected as exc:
                outcome, reason, message = Outcome.FAILED, "RESULT_REJECTED", f"the {what} was rejected: {exc}"
                response.outcome = OUTCOMES[outcome]
        elif reason == "EXIT_NONZERO" and _last_error_line(out.logs):
            message = f"{message}: {_last_error_line(out.logs)}"
        if outcome is not Outcome.SUCCEEDED:
            response.error.CopyFrom(errors.make_status(ERROR_CODES[outcome], message, reason=reason,
                                                       metadata={"run_id": job.run_id}))
        return outcome, reason

    async def RunSweep(self, request: sandbox_pb2.RunSweepRequest, context) -> sandbox_pb2.RunSweepResponse:
        _params, _prepared, job, out = await self._run(request, context, sweep=True)
        response = sandbox_pb2.RunSweepResponse(outcome=OUTCOMES[out.outcome], logs=out.logs, duration_ms=out.duration_ms)
        outcome, reason = self._settle(response, out, job, lambda: sweep_result.verify(out.result, request.combinations),
                                       "sweep result")
        logs.log(self.logger, logging.INFO, "sweep finished", run_id=job.run_id, outcome=outcome.value, reason=reason,
                 duration_ms=round(out.duration_ms, 1), combinations=request.combinations)
        return response

    async def ExecuteCode(self, request: sandbox_pb2.ExecuteCodeRequest, context) -> sandbox_pb2.ExecuteCodeResponse:
        params, prepared, job, out = await self._run(request, context)
        response = sandbox_pb2.ExecuteCodeResponse(
            outcome=OUTCOMES[out.outcome], logs=out.logs, logs_truncated=out.logs_truncated,
            duration_ms=out.duration_ms, isolation=out.isolation,
        )

        def check():  # a few ms of CPU: inline
            window = (params.data.start_date, params.data.end_date)
            return to_proto(verify(out.result, params.initial_capital, window), prepared.sources)

        outcome, reason = self._settle(response, out, job, check, "result")
        logs.log(self.logger, logging.INFO, "run finished", run_id=job.run_id, outcome=outcome.value, reason=reason,
                 duration_ms=round(out.duration_ms, 1), log_lines=len(out.logs))
        return response

    async def DescribeData(self, request: sandbox_pb2.DescribeDataRequest, context) -> sandbox_pb2.DescribeDataResponse:
        params = resolve_params(request.params)
        prepared = await self._prepare(params, request.uploads)
        return sandbox_pb2.DescribeDataResponse(data=[data_source_proto(s) for s in prepared.sources])

    async def GetIsolation(self, request: sandbox_pb2.GetIsolationRequest, context) -> sandbox_pb2.GetIsolationResponse:
        return sandbox_pb2.GetIsolationResponse(active=list(self.plan.active), inactive=dict(self.plan.missing),
                                                mode=self.config.mode)


async def main() -> None:
    quiet_libraries()
    config = SandboxConfig.from_env()
    logger = logs.setup("sandbox", config.log_level)
    provider = make_provider(config.data_provider, bundled_dir=config.bundled_dir, csv_dir=config.csv_dir,
                             cache_dir=config.cache_dir, cache_ttl_seconds=config.cache_ttl_seconds)
    plan = await asyncio.to_thread(isolation.probe, config)
    plan.log(logger)
    isolation.require(plan, config.require_layers)
    runner = make_runner(config, plan)
    logs.log(logger, logging.INFO, "sandbox configured", mode=config.mode, pool_size=config.pool_size,
             queue_size=config.queue_size, provider=provider.describe(), scratch=config.scratch_dir)
    servicer = SandboxServicer(config, provider, runner, logger, plan)

    await serve(
        ServerSpec(name="sandbox", host=config.host, port=config.port, service_names=[SERVICE_NAME]),
        register=lambda server: sandbox_pb2_grpc.add_SandboxServiceServicer_to_server(servicer, server),
        logger=logger,
        on_start=runner.start,
        on_stop=runner.close,
    )
