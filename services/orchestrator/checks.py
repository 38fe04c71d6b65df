"""Checks made on submit, before anything is stored: the strategy compiles
(codegen) and market data exists for the parameters (sandbox)."""
from __future__ import annotations

import asyncio

import grpc

from services.common import errors
from services.orchestrator.clients import ServiceClients
from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2
from stratexec.sandbox.v1 import sandbox_pb2


def _unavailable(service: str, exc: grpc.RpcError) -> errors.ApiError:
    status = errors.status_from_rpc_error(exc)
    return errors.ApiError(grpc.StatusCode.UNAVAILABLE, f"{service}: {status.message}",
                           reason=f"{service.upper()}_UNAVAILABLE")


async def analyze(clients: ServiceClients, schema, params: backtest_pb2.BacktestParams) -> codegen_pb2.StrategyAnalysis:
    """Check that a schema compiles; pass codegen's INVALID_ARGUMENT on as it is."""
    request = codegen_pb2.AnalyzeStrategyRequest(schema=schema, params=params)
    try:
        reply = await asyncio.to_thread(clients.call, clients.codegen.AnalyzeStrategy, request)
    except grpc.RpcError as exc:
        status = errors.status_from_rpc_error(exc)
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise errors.ApiError.from_status(status) from None
        raise _unavailable("codegen", exc) from None
    return reply.analysis


async def check_data(clients: ServiceClients, params: backtest_pb2.BacktestParams) -> None:
    """NOT_FOUND (with the symbol's field) for an unknown symbol; codegen-style
    INVALID_ARGUMENT, naming the available range, for dates outside the data."""
    request = sandbox_pb2.DescribeDataRequest(params=params)
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
