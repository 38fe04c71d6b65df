"""Walking skeleton: a strategy goes in over gRPC, statuses stream out,
and a backtest of real BTC prices comes back, reproducible by hand."""
from __future__ import annotations

import subprocess
import sys

import grpc
import pytest
from grpc_status import rpc_status
from google.rpc import error_details_pb2

from services.common.config import project_root
from stratexec.orchestrator.v1 import execution_pb2, insights_pb2
from stratexec_cli.client import ClientError
from stratexec_runtime.metrics import metrics_agree
from tests.e2e.conftest import EXAMPLE, btc_2024, run_by_hand, served_metrics

S = execution_pb2
STATUS_ORDER = [S.EXECUTION_STATUS_QUEUED, S.EXECUTION_STATUS_ANALYZING, S.EXECUTION_STATUS_GENERATING_CODE,
                S.EXECUTION_STATUS_EXECUTING, S.EXECUTION_STATUS_COMPLETED]


def status_changes(events):
    return [e.status for e in events if e.type == S.EVENT_TYPE_STATUS_CHANGED]


def test_example_strategy_streams_every_status_in_order_and_completes_with_trades(client, finished_example):
    execution_id, events = finished_example

    assert status_changes(events) == STATUS_ORDER
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    agents = {e.agent_step.agent for e in events if e.type == S.EVENT_TYPE_AGENT_STEP}
    assert agents == {"Strategy Analyzer", "Code Generator", "Code Executor"}
    steps = [e for e in events if e.type == S.EVENT_TYPE_AGENT_STEP]
    assert not [e.message for e in steps if "You ONLY have access" in e.agent_step.result + e.message]  # no prompt text
    tools = [e.agent_step.tool for e in events if e.type == S.EVENT_TYPE_AGENT_STEP and e.agent_step.tool]
    assert tools == ["analyze_strategy", "search_strategy_memory", "get_user_preferences",
                  "search_code_templates", "generate_vectorbt_code",
                     "validate_python_code", "execute_python_code", "store_strategy_memory"]

    result = client.results(execution_id).result
    assert result.metrics.trades >= 1
    assert {t.symbol for t in result.trades} == {"BTC-USD"}
    assert result.metrics.initial_value == 10_000
    assert len(result.equity) == 366  # every day of 2024, a leap year: crypto trades daily
    assert result.data[0].symbol == "BTC-USD" and result.data[0].provider == "bundled"

    execution = client.get(execution_id)
    assert execution.status == S.EXECUTION_STATUS_COMPLETED
    assert execution.backtest_run_id and execution.completed_at.seconds >= execution.started_at.seconds
    insights = execution.insights  # typed; agent_insights holds the same as JSON for older clients
    assert "SMA" in insights.interpretation[0].formula
    assert insights.interpretation[0].formula == execution.agent_insights["interpretation"][0]["formula"]
    assert set(insights.stage_seconds) >= {"analyzing", "generating_code", "executing"}
    assert insights.code_source == insights_pb2.CODE_SOURCE_COMPILED and insights.code_sha256 == client.code(execution_id).sha256
    assert insights.memory_stored and insights.llm and insights.sandbox_run_ms > 0
    assert len(execution.execution_logs) == len(events)


def test_a_subscriber_arriving_after_the_end_still_gets_every_event_then_the_stream_ends(client, finished_example):
    execution_id, live_events = finished_example

    replayed = list(client.watch(execution_id))  # opened after the execution finished

    assert [e.SerializeToString() for e in replayed] == [e.SerializeToString() for e in live_events]
    assert replayed[0].sequence == 1 and replayed[-1].status == S.EXECUTION_STATUS_COMPLETED


def test_a_reconnecting_subscriber_resumes_after_its_last_sequence(client, finished_example):
    execution_id, live_events = finished_example

    resumed = list(client.watch(execution_id, after_sequence=3))

    assert [e.sequence for e in resumed] == [e.sequence for e in live_events[3:]]


def test_generated_code_run_by_hand_gives_the_same_metrics(client, finished_example, tmp_path):
    execution_id, _ = finished_example
    code = client.code(execution_id)
    data = project_root() / "data" / "ohlcv" / "BTC-USD.csv"

    # Outside the services: plain python, the bundled data file, the result written where we ask.
    by_hand = run_by_hand(code.code, data, tmp_path)["metrics"]

    served = client.results(execution_id).result.metrics
    assert metrics_agree(by_hand, served_metrics(client.results(execution_id).result)) == []
    assert by_hand["trades"] == served.trades >= 1

    # And the plain run prints the same table a person would read.
    printed = subprocess.run([sys.executable, str(tmp_path / "strategy.py"), "--data", str(data)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert f"{served.total_return:,.2f}%" in printed.stdout


def test_an_unsupported_rule_is_rejected_up_front_naming_the_node_and_nothing_is_stored(client):
    schema = {"nodes": [{"id": "mystery", "type": "entry_condition",
                         "meta": {"rules": ["Enter when the moon is full"]}}]}
    before = len(client.list(page_size=500).executions)

    with pytest.raises(ClientError) as failure:
        client.execute(schema, btc_2024())

    status = failure.value.status
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in status.details if d.Is(bad.DESCRIPTOR))
    assert any("mystery" in v.description for v in bad.field_violations)
    assert len(client.list(page_size=500).executions) == before


def test_bad_parameters_are_field_violations(stubs):
    executions, _ = stubs
    from google.protobuf import struct_pb2

    schema = struct_pb2.Struct()
    schema.update(EXAMPLE)
    params = btc_2024()
    params.end_date = "2023-01-01"
    params.initial_capital = -5
    with pytest.raises(grpc.RpcError) as failure:
        executions.ExecuteStrategy(execution_pb2.ExecuteStrategyRequest(schema=schema, params=params))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(failure.value)
    bad = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    assert {v.field for v in bad.field_violations} == {"params.end_date", "params.initial_capital"}


def test_a_retry_with_the_same_request_id_returns_the_same_execution(client):
    first = client.execute(EXAMPLE, btc_2024(), request_id="skeleton-retry-1")
    again = client.execute(EXAMPLE, btc_2024(), request_id="skeleton-retry-1")

    assert again.id == first.id
    other = btc_2024()
    other.fees = 0.002
    with pytest.raises(ClientError) as reused:  # the same request_id with another body (AIP-155)
        client.execute(EXAMPLE, other, request_id="skeleton-retry-1")
    status = reused.value.status
    assert status.code == grpc.StatusCode.ALREADY_EXISTS.value[0], status.message
    info = error_details_pb2.ErrorInfo()
    next(d for d in status.details if d.Is(info.DESCRIPTOR)).Unpack(info)
    assert info.reason == "REQUEST_ID_REUSED" and info.metadata["execution_id"] == first.id
    list(client.watch(first.id))  # let it finish so it does not outlive the session's checks


def test_results_before_completion_and_unknown_ids_are_clear_errors(client, finished_example):
    with pytest.raises(ClientError) as unknown:
        client.results("no-such-execution")
    assert unknown.value.status.code == grpc.StatusCode.NOT_FOUND.value[0]

    execution = client.execute(EXAMPLE, btc_2024())
    with pytest.raises(ClientError) as early:  # asked at once: queued, far from done
        client.results(execution.id)
    assert early.value.status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    events = list(client.watch(execution.id))
    assert events[-1].status == S.EXECUTION_STATUS_COMPLETED
    with pytest.raises(ClientError) as finished:
        client.cancel(execution.id)
    assert finished.value.status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
