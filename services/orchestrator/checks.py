"""Checks made on submit, before anything is stored: the strategy compiles
(codegen) and market data exists for the parameters (sandbox)."""
from __future__ import annotations

import asyncio
import hashlib

import grpc

from services.common import errors
from services.orchestrator.clients import ServiceClients
from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2
from stratexec.sandbox.v1 import sandbox_pb2


# What the gRPC transport says when an answer's trailer (its error details) was too large
# to deliver: the service answered, so this is not an outage and retrying cannot help.
UNDELIVERABLE_ANSWER = ("metadata size exceeds", "received trailing metadata size", "Stream removed")


def _unavailable(service: str, exc: grpc.RpcError) -> errors.ApiError:
    """UNAVAILABLE (retryable) only for a dependency that did not answer; an answer the
    transport could not deliver (an oversized trailer) or any other code is INTERNAL."""
    status = errors.status_from_rpc_error(exc)
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and not any(
            marker in status.message for marker in UNDELIVERABLE_ANSWER):
        return errors.ApiError(grpc.StatusCode.UNAVAILABLE, f"{service}: {status.message}",
                               reason=f"{service.upper()}_UNAVAILABLE")
    return errors.ApiError(grpc.StatusCode.INTERNAL, f"{service} refused the request but its answer could not be "
                           f"delivered ({code.name}: {status.message}); retrying will not help",
                           reason=f"{service.upper()}_ANSWER_UNDELIVERABLE")


async def call_codegen(clients: ServiceClients, method, request):
    """A codegen call; its INVALID_ARGUMENT and UNIMPLEMENTED passed on as they are, anything else UNAVAILABLE."""
    try:
        return await asyncio.to_thread(clients.call, method, request)
    except grpc.RpcError as exc:
        status = errors.status_from_rpc_error(exc)
        if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED):
            raise errors.ApiError.from_status(status) from None
        raise _unavailable("codegen", exc) from None


async def analyze(clients: ServiceClients, schema, params: backtest_pb2.BacktestParams) -> codegen_pb2.StrategyAnalysis:
    """Check that a schema compiles (a strategy stored without running it)."""
    request = codegen_pb2.AnalyzeStrategyRequest(schema=schema, params=params)
    return (await call_codegen(clients, clients.codegen.AnalyzeStrategy, request)).analysis


async def compile_strategy(clients: ServiceClients, schema,
                           params: backtest_pb2.BacktestParams) -> codegen_pb2.GenerateCodeResponse:
    """The one compilation of an execution: its analysis and its code, with the code's sha256.

    Stored on the execution at submit; the crew's analyze and generate tools read it
    instead of compiling again."""
    request = codegen_pb2.GenerateCodeRequest(schema=schema, params=params)
    reply = await call_codegen(clients, clients.codegen.GenerateCode, request)
    if hashlib.sha256(reply.code.encode()).hexdigest() != reply.sha256:
        raise errors.ApiError(grpc.StatusCode.INTERNAL, "codegen returned code whose sha256 does not match",
                              reason="CODE_DIGEST_MISMATCH")
    return reply


async def check_data(clients: ServiceClients, params: backtest_pb2.BacktestParams, uploads=()) -> None:
    """NOT_FOUND (with the symbol's field) for an unknown symbol; codegen-style
    INVALID_ARGUMENT, naming the available range, for dates outside the data.
    ``uploads``: the bars of the user's datasets among the symbols."""
    request = sandbox_pb2.DescribeDataRequest(params=params, uploads=uploads)
    try:
        await asyncio.to_thread(clients.call, clients.sandbox.DescribeData, request)
    except grpc.RpcError as exc:
        status = errors.status_from_rpc_error(exc)
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise errors.ApiError.from_status(status) from None
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            info = errors.error_info(status)
            symbol = info.metadata.get("symbol", "") if info else ""
            symbols = list(params.symbols)
            field = f"params.symbols[{symbols.index(symbol)}]" if symbol in symbols else "params.benchmark"
            raise errors.ApiError(grpc.StatusCode.NOT_FOUND, status.message, reason="SYMBOL_NOT_FOUND",
                                  violations=[(field, status.message)]) from None
        raise _unavailable("sandbox", exc) from None
