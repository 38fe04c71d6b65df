"""Bad input is refused up front with field violations, and nothing is
half-stored: every case below leaves the caller's execution list as it was."""
from __future__ import annotations

import copy

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from stratexec.backtest.v1 import backtest_pb2
from stratexec.orchestrator.v1 import execution_pb2
from stratexec_cli.client import Client, ClientError
from tests.e2e.conftest import EXAMPLE

USER = "bad-input-tester"


def params(**fields) -> backtest_pb2.BacktestParams:
    base = dict(symbols=["BTC"], start_date="2024-01-01", end_date="2024-12-31")
    base.update(fields)
    return backtest_pb2.BacktestParams(**base)


def example_with(node_changes: dict) -> dict:
    schema = copy.deepcopy(EXAMPLE)
    schema["nodes"][0].update(node_changes)
    return schema


def nested(levels: int) -> dict:
    """An object ``levels`` objects deep (this one included)."""
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


def with_meta(**extra) -> dict:
    schema = copy.deepcopy(EXAMPLE)
    schema["nodes"][0]["meta"].update(extra)
    return schema


CASES = {
    "malformed schema": ({"edges": "not a graph"}, params(), "nodes"),
    "unknown node type": (example_with({"type": "teleport"}), params(), "entry"),
    "unsupported rule": (example_with({"meta": {"rules": ["Buy when Mercury is in retrograde"]}}), params(), "entry"),
    "end before start": (EXAMPLE, params(start_date="2024-06-01", end_date="2024-01-01"), "params.end_date"),
    "capital not positive": (EXAMPLE, params(initial_capital=0), "params.initial_capital"),
    "negative fees": (EXAMPLE, params(fees=-0.01), "params.fees"),
    "fees of 100%": (EXAMPLE, params(fees=1.0), "params.fees"),
    "slippage of 100%": (EXAMPLE, params(slippage=1.5), "params.slippage"),
    "zero exposure": (EXAMPLE, params(exposure=0), "params.exposure"),
    "exposure over 1": (EXAMPLE, params(exposure=1.5), "params.exposure"),
    "unsupported timeframe": (EXAMPLE, params(timeframe="7m"), "params.timeframe"),
    "not a date": (EXAMPLE, params(start_date="yesterday"), "params.start_date"),
    "unknown fill_at": (EXAMPLE, params(fill_at="vwap"), "params.fill_at 'vwap' is not supported; use one of close, next_open"),
    "unknown stop_target_order": (EXAMPLE, params(stop_target_order="random"),
                                  "params.stop_target_order 'random' is not supported; use one of stop_first, target_first"),
    "unknown reentry": (EXAMPLE, params(reentry="always"), "params.reentry 'always' is not supported; use one of skip, next_bar"),
    "unknown prices": (EXAMPLE, params(prices="dividends"),
                       "params.prices 'dividends' is not supported; use one of raw, total_return"),
    "unknown direction": (EXAMPLE, params(direction="sideways"),
                          "params.direction 'sideways' is not supported; use one of long, short, both"),
    "a short rule in a long-only backtest": (
        {"nodes": [{"id": "in", "type": "entry_condition", "meta": {"rules": ["Sell short when RSI(14) is above 70"]}}]},
        params(), "params.direction node 'in' is for short positions but params.direction is long"),
    "a short take profit of 100%": (
        {"nodes": [{"id": "in", "type": "entry_condition", "meta": {"rules": ["Sell short when RSI(14) is above 70"]}},
                   {"id": "tp", "type": "take_profit", "meta": {"target_pct": 150}}]},
        params(direction="short"), "nodes[1].meta.target_pct node 'tp': a take profit of 150% on a short"),
    "risk sizing without a stop": (
        {"nodes": [{"id": "in", "type": "entry_condition", "meta": {"rules": ["Buy when RSI(14) is below 30"]}}]},
        params(position_sizing="risk"), "params.position_sizing position_sizing risk needs a stop_loss or trailing_stop node"),
    "unknown position_sizing": (EXAMPLE, params(position_sizing="kelly"), "params.position_sizing 'kelly' is not supported"),
    "risk_per_trade over 1": (EXAMPLE, params(position_sizing="risk", risk_per_trade=1.5), "params.risk_per_trade"),
    "the same symbol twice": (EXAMPLE, params(symbols=["BTC", "ETH", "BTC-USD"]),
                              "params.symbols[2] BTC-USD is listed twice ('BTC' and 'BTC-USD')"),
    "infinite capital": (EXAMPLE, params(initial_capital=float("inf")), "params.initial_capital"),
    "capital of 1e308": (EXAMPLE, params(initial_capital=1e308), "params.initial_capital"),
    "infinite number in the schema": (with_meta(weight=float("inf")), params(), "schema.nodes[0].meta.weight"),
    "NaN in a list in the schema": (with_meta(weights=[1, float("nan")]), params(), "schema.nodes[0].meta.weights[1]"),
    "schema nested 26 deep": (with_meta(notes=nested(22)), params(), "nested deeper than 20 levels"),
    "oversized request": ({"nodes": [{"id": f"n{i}", "type": "entry_condition",
                                      "meta": {"rules": ["x" * 1000]}} for i in range(300)]}, params(), "schema"),
}


NOT_FOUND_CASES = {
    "unknown symbol": (params(symbols=["BTC", "NOSUCHCOIN"]), "params.symbols[1]"),
    "unknown benchmark": (params(benchmark="NOSUCHINDEX"), "params.benchmark"),
    # a valid futures symbol and timeframe alias pass the shared parameter checks; the bundled data lacks GC=F
    "symbol not in the data": (params(symbols=["GC=F"], timeframe="daily"), "params.symbols[0]"),
}
OUT_OF_RANGE = params(start_date="2030-01-01", end_date="2030-12-31")


@pytest.mark.parametrize("case", NOT_FOUND_CASES, ids=list(NOT_FOUND_CASES))
def test_an_unknown_symbol_is_not_found_naming_the_field_and_nothing_is_stored(orchestrator_addr, case):
    bad_params, field = NOT_FOUND_CASES[case]
    client = Client(orchestrator_addr, user=USER)
    before = [e.id for e in client.list(page_size=500).executions]

    with pytest.raises(ClientError) as failure:
        client.execute(EXAMPLE, bad_params)

    status = failure.value.status
    assert status.code == grpc.StatusCode.NOT_FOUND.value[0], status.message
    bad = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    assert [v.field for v in bad.field_violations] == [field]
    assert [e.id for e in client.list(page_size=500).executions] == before


def test_dates_outside_the_data_are_invalid_naming_the_available_range(orchestrator_addr):
    with pytest.raises(ClientError) as failure:
        Client(orchestrator_addr, user=USER).execute(EXAMPLE, OUT_OF_RANGE)
    assert failure.value.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "BTC-USD has data from 2014-09-17 to 2026-06-29" in failure.value.status.message


@pytest.mark.parametrize("name,words", [("x" * 201, "at most 200 characters (it has 201)"),
                                        ("two\nlines", "no control characters")])
def test_a_bad_execution_name_is_invalid_argument_on_name_and_nothing_is_stored(orchestrator_addr, name, words):
    client = Client(orchestrator_addr, user=USER)
    before = [e.id for e in client.list(page_size=500).executions]
    with pytest.raises(ClientError) as failure:
        client.execute(EXAMPLE, params(), name=name)
    status = failure.value.status
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], status.message
    bad = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    [violation] = bad.field_violations
    assert violation.field == "name" and words in violation.description, violation
    assert [e.id for e in client.list(page_size=500).executions] == before


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_is_invalid_argument_with_a_field_violation_and_nothing_is_stored(orchestrator_addr, case):
    schema, bad_params, mentioned = CASES[case]
    client = Client(orchestrator_addr, user=USER)
    before = [e.id for e in client.list(page_size=500).executions]

    with pytest.raises(ClientError) as failure:
        client.execute(schema, bad_params)

    status = failure.value.status
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], status.message
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in status.details if d.Is(bad.DESCRIPTOR)), "no BadRequest detail"
    described = " ".join(f"{v.field} {v.description}" for v in bad.field_violations)
    assert mentioned in described, described
    assert [e.id for e in client.list(page_size=500).executions] == before


def test_a_hundred_unsupported_rules_stay_invalid_argument_with_capped_violations(orchestrator_addr):
    """20 nodes x 5 unsupported rules: once a 21 KB trailer that gRPC refused, reported as UNAVAILABLE."""
    rules = [f"Buy when planet {k} aligns with the {'moon ' * 4}phase number {k}" for k in range(5)]
    schema = copy.deepcopy(EXAMPLE)
    entry = schema["nodes"][0]
    schema["nodes"] = [{**copy.deepcopy(entry), "id": f"entry{i}", "meta": {"rules": rules}} for i in range(20)] + schema["nodes"][1:]
    client = Client(orchestrator_addr, user=USER)
    before = [e.id for e in client.list(page_size=500).executions]
    with pytest.raises(ClientError) as failure:
        client.execute(schema, params())
    status = failure.value.status
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], status.message
    bad = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    assert 1 <= len(bad.field_violations) <= 20
    info = error_details_pb2.ErrorInfo()
    next(d for d in status.details if d.Is(info.DESCRIPTOR)).Unpack(info)
    shown, hidden = len(bad.field_violations), int(info.metadata["violations_not_shown"])
    assert shown + hidden >= 100 and f"{hidden} more not shown" in status.message
    assert len(status.SerializeToString()) < 8192
    assert [e.id for e in client.list(page_size=500).executions] == before


def test_create_strategy_has_the_same_size_limit(stubs):
    from google.protobuf import json_format, struct_pb2

    from services.common import errors
    from stratexec.orchestrator.v1 import strategy_pb2

    _, strategies = stubs
    big = {"nodes": [{"id": f"n{i}", "type": "entry_condition", "meta": {"rules": ["x" * 1000]}} for i in range(300)]}
    with pytest.raises(grpc.RpcError) as failure:
        strategies.CreateStrategy(strategy_pb2.CreateStrategyRequest(schema=json_format.ParseDict(big, struct_pb2.Struct())),
                                  metadata=(("x-user-id", USER),), timeout=30)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert errors.error_info(errors.status_from_rpc_error(failure.value)).reason == "REQUEST_TOO_LARGE"


def test_a_page_token_is_bound_to_its_caller_and_filter(orchestrator_addr):
    """A next_page_token works only for the caller and the strategy_id filter it was issued for."""
    from stratexec.orchestrator.v1 import execution_pb2

    owner = Client(orchestrator_addr, user="pager")
    for i in range(2):
        owner.execute(EXAMPLE, params(), request_id=f"pager-{i}")
    token = owner.list(page_size=1).next_page_token
    assert token and len(owner.list(page_size=1, page_token=token).executions) == 1

    def refused(client, request) -> tuple[int, str]:
        with pytest.raises(ClientError) as failure:
            client._call(client.executions.ListStrategyExecutions, request)
        bad = error_details_pb2.BadRequest()
        next(d for d in failure.value.status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
        return failure.value.status.code, [v.field for v in bad.field_violations]

    invalid = (grpc.StatusCode.INVALID_ARGUMENT.value[0], ["page_token"])
    other_user = Client(orchestrator_addr, user="someone-else")
    assert refused(other_user, execution_pb2.ListStrategyExecutionsRequest(page_size=1, page_token=token)) == invalid
    filtered = execution_pb2.ListStrategyExecutionsRequest(strategy_id="another-strategy", page_size=1, page_token=token)
    assert refused(owner, filtered) == invalid
    assert refused(owner, execution_pb2.ListStrategyExecutionsRequest(page_token="not-a-token")) == invalid
    for execution in owner.list(page_size=10).executions:
        list(owner.watch(execution.id))  # let them finish inside this test


def test_a_struct_too_deep_to_decode_is_invalid_argument_not_unknown(orchestrator_addr):
    with pytest.raises(ClientError) as failure:  # 33 levels: beyond protobuf's limit of 100 nested messages
        Client(orchestrator_addr, user=USER).execute(with_meta(notes=nested(30)), params())
    assert failure.value.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], failure.value.status.message


def test_a_stored_strategy_is_held_to_the_same_limits(stubs):
    from google.protobuf import struct_pb2
    from stratexec.orchestrator.v1 import strategy_pb2

    schema = struct_pb2.Struct()
    schema.update(with_meta(notes=nested(22), weight=float("-inf")))
    with pytest.raises(grpc.RpcError) as failure:
        stubs[1].CreateStrategy(strategy_pb2.CreateStrategyRequest(schema=schema), metadata=[("x-user-id", USER)])
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(failure.value)
    bad = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    assert sorted(v.field for v in bad.field_violations) == [
        "schema.nodes[0].meta.notes" + ".k" * 16, "schema.nodes[0].meta.weight"]


def test_a_request_at_the_limits_that_passes_submit_completes(orchestrator_addr):
    """Nothing submit could have seen fails it later (a 32-deep key once failed at store_strategy_memory)."""
    client = Client(orchestrator_addr, user=USER)
    schema = {**EXAMPLE, "notes": nested(19)}  # 20 levels in all (the graph allows keys of its own at the top)
    execution = client.execute(schema, params(initial_capital=1e12))
    events = list(client.watch(execution.id))
    assert events[-1].status == execution_pb2.EXECUTION_STATUS_COMPLETED, events[-1].message
    assert client.get(execution.id).agent_insights["memory_stored"] is True
