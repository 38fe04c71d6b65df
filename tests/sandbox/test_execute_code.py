"""ExecuteCode and DescribeData through gRPC against a real server on a free port."""
import grpc
import pytest
from google.rpc import error_details_pb2

from services.common.errors import status_from_rpc_error
from stratexec.backtest.v1 import backtest_pb2
from stratexec.sandbox.v1 import sandbox_pb2

from .scripts import CRASH, EXAMPLE, FAKE_STDOUT_RESULT, INFINITE_LOOP, OUTPUT_FLOOD

PARAMS = backtest_pb2.BacktestParams(
    symbols=["BTC"], benchmark="BTC-USD", timeframe="1d", start_date="2024-01-01", end_date="2024-12-31",
    initial_capital=10000.0, fees=0.001, slippage=0.0005, exposure=1.0,
)


def execute(stub, code, params=PARAMS, timeout_seconds=0):
    return stub.ExecuteCode(
        sandbox_pb2.ExecuteCodeRequest(code=code, params=params, execution_id="test", timeout_seconds=timeout_seconds),
        timeout=120,
    )


def bad_request(error: grpc.RpcError) -> list[tuple[str, str]]:
    status = status_from_rpc_error(error)
    out = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out += [(v.field, v.description) for v in bad.field_violations]
    return out


def test_example_strategy_returns_checked_metrics_and_trades(stub, sandbox_server):
    reply = execute(stub, EXAMPLE)
    assert reply.outcome == sandbox_pb2.RUN_OUTCOME_SUCCEEDED, (reply.error, list(reply.logs))
    result = reply.result
    assert result.metrics.trades > 0
    assert len(result.trades) == result.metrics.trades + result.metrics.open_trades
    assert result.metrics.initial_value == 10000.0
    assert result.metrics.periods_per_year == 365
    assert result.metrics.HasField("vs_benchmark")
    assert len(result.equity) == 366 and result.equity[0].time == "2024-01-01"
    assert len(result.benchmark_equity) == 366
    [source] = result.data
    assert (source.provider, source.symbol, source.first_time, source.last_time, source.bars) == (
        "bundled", "BTC-USD", "2024-01-01", "2024-12-31", 366)
    assert len(source.sha256) == 64
    for layer in ("process-group", "rlimits", "clean-env", "closed-fds", "private-workdir", "timeout-kill", "output-cap"):
        assert layer in reply.isolation
    assert reply.duration_ms > 0
    # The run directory is gone.
    assert not any(sandbox_server.scratch.rglob("run-*"))


def test_result_printed_on_stdout_is_not_believed(stub):
    reply = execute(stub, FAKE_STDOUT_RESULT)
    assert reply.outcome == sandbox_pb2.RUN_OUTCOME_FAILED
    assert not reply.HasField("result")
    assert any("999.0" in line for line in reply.logs)  # it printed, and was not believed
    assert reply.error.message and "result" in reply.error.message


def test_crash_is_a_failure_with_the_error_line(stub):
    reply = execute(stub, CRASH)
    assert reply.outcome == sandbox_pb2.RUN_OUTCOME_FAILED
    assert "strategy exploded on purpose" in reply.error.message
    assert any("Traceback" in line for line in reply.logs)


def test_timeout_is_reported_and_killed(stub):
    reply = execute(stub, INFINITE_LOOP, timeout_seconds=2)
    assert reply.outcome == sandbox_pb2.RUN_OUTCOME_TIMED_OUT
    assert grpc.StatusCode.DEADLINE_EXCEEDED.value[0] == reply.error.code
    assert not reply.HasField("result")


def test_output_is_capped_with_a_marker(stub):
    reply = execute(stub, OUTPUT_FLOOD)
    assert reply.logs_truncated
    assert reply.logs[-1].startswith("[output truncated")
    assert len("\n".join(reply.logs[:-1])) <= 20000


def test_forbidden_import_is_rejected_by_the_policy(stub):
    with pytest.raises(grpc.RpcError) as info:
        execute(stub, "import os\nos.system('id')\n")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = dict(bad_request(info.value))
    assert "code:1:0" in fields and fields["code:1:0"].startswith("import-not-allowed")


def test_unknown_symbol_is_not_found(stub):
    params = backtest_pb2.BacktestParams()
    params.CopyFrom(PARAMS)
    del params.symbols[:]
    params.symbols.append("NOPE")
    params.benchmark = "NOPE"
    with pytest.raises(grpc.RpcError) as info:
        execute(stub, EXAMPLE, params)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "NOPE" in info.value.details()


def test_out_of_range_dates_name_the_available_range(stub):
    params = backtest_pb2.BacktestParams()
    params.CopyFrom(PARAMS)
    params.start_date, params.end_date = "2010-01-01", "2011-12-31"
    with pytest.raises(grpc.RpcError) as info:
        execute(stub, EXAMPLE, params)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "2014-09-17" in info.value.details() and "2026-06-29" in info.value.details()
    assert any(field == "params.start_date" for field, _ in bad_request(info.value))


def test_bad_parameters_are_invalid_argument(stub):
    params = backtest_pb2.BacktestParams()
    params.CopyFrom(PARAMS)
    params.fees = 1.5
    with pytest.raises(grpc.RpcError) as info:
        execute(stub, EXAMPLE, params)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(bad_request(info.value))["params.fees"].startswith("must be in [0, 1)")


def test_describe_data_resolves_symbols_and_names_the_available_range(stub):
    reply = stub.DescribeData(sandbox_pb2.DescribeDataRequest(params=PARAMS))
    assert [d.symbol for d in reply.data][0] == "BTC-USD"
    assert all(d.provider == "bundled" and d.bars > 0 and len(d.sha256) == 64 for d in reply.data)

    with pytest.raises(grpc.RpcError) as unknown:
        stub.DescribeData(sandbox_pb2.DescribeDataRequest(params=backtest_pb2.BacktestParams(symbols=["NOSUCH"])))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_isolation_report_lists_active_layers_and_why_others_are_off(stub):
    reply = stub.GetIsolation(sandbox_pb2.GetIsolationRequest())
    assert {"process-group", "timeout-kill", "rlimits", "clean-env"} <= set(reply.active)
    assert not set(reply.active) & set(reply.inactive)
    assert all(reason for reason in reply.inactive.values())
    assert reply.mode in ("pool", "fresh")


def test_describe_data_takes_the_shared_timeframe_aliases(stub):
    """'weekly' means 1w here as in the orchestrator and codegen (services.common.backtest_params)."""
    weekly = backtest_pb2.BacktestParams(symbols=["btc"], timeframe="weekly", start_date="2024-01-01", end_date="2024-03-31")
    reply = stub.DescribeData(sandbox_pb2.DescribeDataRequest(params=weekly))
    assert reply.data[0].symbol == "BTC-USD" and reply.data[0].bars == 13  # the weeks of Q1 2024 (91 days)
    with pytest.raises(grpc.RpcError) as bad:
        stub.DescribeData(sandbox_pb2.DescribeDataRequest(params=backtest_pb2.BacktestParams(timeframe="5m")))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(bad_request(bad.value)) == {"params.timeframe": "'5m' is not supported; use one of 1d, 1w"}
