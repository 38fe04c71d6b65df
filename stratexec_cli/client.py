"""A thin client of the orchestrator's public API."""
from __future__ import annotations

import json
import os
import uuid
from typing import Iterator

import grpc
from google.protobuf import struct_pb2

from services.common import errors
from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import (dataset_pb2, dataset_pb2_grpc, execution_pb2, execution_pb2_grpc, indicator_pb2,
                                       indicator_pb2_grpc, strategy_pb2, strategy_pb2_grpc)

DEFAULT_ADDR = os.environ.get("STRATEXEC_ADDR", f"localhost:{os.environ.get('ORCHESTRATOR_PORT', '50051')}")


class ClientError(Exception):
    """A failed call, described in one line with its field violations."""

    def __init__(self, exc: grpc.RpcError, address: str = ""):
        self.exc, self.code = exc, exc.code()
        self.status = errors.status_from_rpc_error(exc)
        text = errors.describe(self.status)
        if address and exc.code() == grpc.StatusCode.UNAVAILABLE and "connect" in (exc.details() or ""):
            text = (f"UNAVAILABLE: cannot reach the orchestrator at {address} ({exc.details()}); start the services with "
                    f"`make up`, or point the client at another address with --addr or STRATEXEC_ADDR")
        super().__init__(text)


class StrategyFileError(ValueError):
    """A strategy file that cannot be used, said in one line."""


class Client:
    def __init__(self, address: str = DEFAULT_ADDR, user: str | None = None):
        self.address = address
        self.channel = grpc.insecure_channel(address)
        self.executions = execution_pb2_grpc.ExecutionServiceStub(self.channel)
        self.strategies = strategy_pb2_grpc.StrategyServiceStub(self.channel)
        self.datasets = dataset_pb2_grpc.DatasetServiceStub(self.channel)
        self.indicators = indicator_pb2_grpc.IndicatorServiceStub(self.channel)
        self.metadata = (("x-user-id", user),) if user else ()

    def _call(self, method, request, timeout: float = 60):
        try:
            return method(request, timeout=timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise ClientError(exc, self.address) from None

    def execute(self, schema: dict, params: backtest_pb2.BacktestParams, request_id: str | None = None, name: str = "",
                accept_interpreted_rules: bool = False):
        body = struct_pb2.Struct()
        body.update(schema)
        request = execution_pb2.ExecuteStrategyRequest(schema=body, params=params, request_id=request_id or str(uuid.uuid4()),
                                                       name=name, accept_interpreted_rules=accept_interpreted_rules)
        return self._call(self.executions.ExecuteStrategy, request).execution

    def optimize(self, schema: dict, params: backtest_pb2.BacktestParams, ranges, request_id: str | None = None,
                 name: str = "", **options):
        """OptimizeStrategy: ``ranges`` are codegen ParameterRange messages; ``options`` the request's other
        fields (objective, min_trades, max_drawdown, walk_forward_segments, in_sample_fraction)."""
        body = struct_pb2.Struct()
        body.update(schema)
        request = execution_pb2.OptimizeStrategyRequest(schema=body, params=params, ranges=ranges, name=name,
                                                        request_id=request_id or str(uuid.uuid4()), **options)
        return self._call(self.executions.OptimizeStrategy, request).execution

    def optimization(self, execution_id: str, page_size: int = 0, page_token: str = "", heatmap_x: str = "",
                     heatmap_y: str = ""):
        return self._call(self.executions.GetOptimizationResults, execution_pb2.GetOptimizationResultsRequest(
            execution_id=execution_id, page_size=page_size, page_token=page_token, heatmap_x=heatmap_x,
            heatmap_y=heatmap_y))

    def upload_dataset(self, content: bytes, name: str, replace: bool = False, chunk: int = 1 << 20):
        """Stream a CSV or Parquet file (its format read from its bytes) in 1 MiB chunks."""
        def requests():
            yield dataset_pb2.UploadDatasetRequest(name=name, replace=replace, chunk=content[:chunk])
            for start in range(chunk, len(content), chunk):
                yield dataset_pb2.UploadDatasetRequest(chunk=content[start:start + chunk])
        return self._call(self.datasets.UploadDataset, requests()).dataset

    def list_datasets(self):
        return self._call(self.datasets.ListDatasets, dataset_pb2.ListDatasetsRequest()).datasets

    def delete_dataset(self, name: str) -> None:
        self._call(self.datasets.DeleteDataset, dataset_pb2.DeleteDatasetRequest(name=name))

    def create_strategy(self, schema: dict, name: str = ""):
        body = struct_pb2.Struct()
        body.update(schema)
        return self._call(self.strategies.CreateStrategy, strategy_pb2.CreateStrategyRequest(schema=body, name=name)).strategy

    def save_indicator(self, name: str, expression: str, replace: bool = False):
        request = indicator_pb2.SaveIndicatorRequest(name=name, expression=expression, replace=replace)
        return self._call(self.indicators.SaveIndicator, request).indicator

    def list_indicators(self):
        return self._call(self.indicators.ListIndicators, indicator_pb2.ListIndicatorsRequest()).indicators

    def delete_indicator(self, name: str) -> None:
        self._call(self.indicators.DeleteIndicator, indicator_pb2.DeleteIndicatorRequest(name=name))

    def get(self, execution_id: str):
        return self._call(self.executions.GetExecution, execution_pb2.GetExecutionRequest(execution_id=execution_id)).execution

    def code(self, execution_id: str):
        return self._call(self.executions.GetGeneratedCode, execution_pb2.GetGeneratedCodeRequest(execution_id=execution_id))

    def results(self, execution_id: str):
        return self._call(self.executions.GetBacktestResults, execution_pb2.GetBacktestResultsRequest(execution_id=execution_id))

    def list(self, page_size: int = 20, page_token: str = ""):
        return self._call(self.executions.ListStrategyExecutions,
                          execution_pb2.ListStrategyExecutionsRequest(page_size=page_size, page_token=page_token))

    def cancel(self, execution_id: str):
        return self._call(self.executions.CancelExecution, execution_pb2.CancelExecutionRequest(execution_id=execution_id)).execution

    def watch(self, execution_id: str, after_sequence: int = 0) -> Iterator[execution_pb2.ExecutionEvent]:
        """Every event after ``after_sequence``; reconnects where it left off if the stream breaks."""
        last = after_sequence
        for attempt in range(5):
            try:
                stream = self.executions.WatchExecution(
                    execution_pb2.WatchExecutionRequest(execution_id=execution_id, after_sequence=last),
                    metadata=self.metadata)
                for reply in stream:
                    last = reply.event.sequence
                    yield reply.event
                return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == 4:
                    raise ClientError(exc, self.address) from None


def load_schema(path: str) -> dict:
    """The strategy graph of a JSON file; StrategyFileError names what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as fh:
            schema = json.load(fh)
    except OSError as exc:
        raise StrategyFileError(f"cannot read strategy file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise StrategyFileError(f"strategy file {path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise StrategyFileError(f"strategy file {path} is not valid JSON: {exc.msg} at line {exc.lineno} "
                                f"column {exc.colno}") from None
    if not isinstance(schema, dict):
        raise StrategyFileError(f"strategy file {path} holds a JSON {type(schema).__name__}, not an object: "
                                f'expected {{"nodes": [...]}}')
    return schema  # the server checks the graph itself, naming the node
