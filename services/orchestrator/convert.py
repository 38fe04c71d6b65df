"""Database rows to protobuf messages."""
from __future__ import annotations

import datetime as dt

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.rpc import status_pb2

from services.orchestrator import insights, statuses
from services.orchestrator.db.models import Strategy, StrategyExecution
from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2, strategy_pb2


def timestamp(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def struct(value: dict) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value or {})
    return out


def struct_to_dict(value: struct_pb2.Struct) -> dict:
    return json_format.MessageToDict(value)


def strategy(row: Strategy) -> strategy_pb2.Strategy:
    return strategy_pb2.Strategy(
        id=row.id, user_id=row.user_id, name=row.name, schema=struct(row.schema_json), created_at=timestamp(row.created_at)
    )


def execution(row: StrategyExecution, logs: list[str] | None = None) -> execution_pb2.Execution:
    msg = execution_pb2.Execution(
        id=row.id,
        strategy_id=row.strategy_id,
        user_id=row.user_id,
        status=statuses.to_proto(row.status),
        execution_logs=logs if logs is not None else (row.execution_logs or []),
        backtest_run_id=row.backtest_run_id or "",
        error_message=row.error_message or "",
        agent_insights=struct(row.agent_insights or {}),
        insights=insights.to_proto(row.agent_insights),
        params=backtest_pb2.BacktestParams.FromString(row.params_pb),
        request_id=row.request_id or "",
        name=row.name or "",
        kind=execution_pb2.ExecutionKind.Value(f"EXECUTION_KIND_{(row.kind or 'backtest').upper()}"),
    )
    if row.error_pb:
        msg.error.CopyFrom(status_pb2.Status.FromString(row.error_pb))
    for field in ("created_at", "started_at", "completed_at"):
        ts = timestamp(getattr(row, field))
        if ts is not None:
            getattr(msg, field).CopyFrom(ts)
    return msg
