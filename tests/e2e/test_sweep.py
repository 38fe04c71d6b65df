"""codegen's side of sweeps through gRPC: the parameters AnalyzeStrategy names and GenerateSweepCode's
bad-input checks. Sweeps themselves run through the public API (OptimizeStrategy: sandbox jobs, checked
against single backtests) in tests/e2e/test_optimize.py."""
from __future__ import annotations


import grpc
import pytest
from google.protobuf import struct_pb2

from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2, codegen_pb2_grpc
from tests.e2e.conftest import EXAMPLE
from tests.sandbox.test_execute_code import bad_request

PARAMS = backtest_pb2.BacktestParams(symbols=["BTC"], start_date="2019-01-01", end_date="2024-12-31")
R = codegen_pb2.ParameterRange

def _struct(doc: dict) -> struct_pb2.Struct:
    body = struct_pb2.Struct()
    body.update(doc)
    return body


@pytest.fixture(scope="module")
def codegen(stack):
    with grpc.insecure_channel(stack["codegen"].address) as channel:
        yield codegen_pb2_grpc.CodegenServiceStub(channel)


def test_analyze_lists_the_named_parameters(codegen):
    reply = codegen.AnalyzeStrategy(codegen_pb2.AnalyzeStrategyRequest(schema=_struct(EXAMPLE), params=PARAMS))
    listed = {p.name: (p.value, p.range) for p in reply.analysis.parameters}
    assert listed == {"entry.drop_pct": (5.0, "numbers in (0, 100)"), "entry.window": (20.0, "integers in [1, 5000]"),
                      "tp.target_pct": (7.0, "numbers in (0, 1000]"), "sl.stop_pct": (5.0, "numbers in (0, 100)")}


@pytest.mark.parametrize("ranges, walk_forward, field, words", [
    ([R(name="entry.windw", values=[10])], None, "ranges[0].name", "valid parameters: entry.drop_pct, entry.window"),
    ([R(name="entry.window", start=60, stop=10, step=5)], None, "ranges[0].stop", "reversed"),
    ([R(name="entry.window", start=10, stop=60, step=0)], None, "ranges[0].step", "positive"),
    ([R(name="entry.drop_pct", values=[5, 120])], None, "ranges[0].values", "outside its valid range"),
    ([R(name="entry.window", start=1, stop=5000, step=1), R(name="tp.target_pct", start=1, stop=100, step=1)], None,
     "ranges", "500,000 combinations is more than the cap of 200,000"),
    ([R(name="entry.window", values=[200])], codegen_pb2.WalkForwardSpec(segments=20), "walk_forward.segments", "warm up"),
    ([R(name="entry.window", values=[20])], codegen_pb2.WalkForwardSpec(segments=3, objective="profit"),
     "walk_forward.objective", "unknown objective 'profit'"),
])
def test_bad_sweep_requests_are_invalid_argument_with_field_violations(codegen, ranges, walk_forward, field, words):
    request = codegen_pb2.GenerateSweepCodeRequest(schema=_struct(EXAMPLE), params=PARAMS, ranges=ranges)
    if walk_forward is not None:
        request.walk_forward.CopyFrom(walk_forward)
    with pytest.raises(grpc.RpcError) as err:
        codegen.GenerateSweepCode(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = dict(bad_request(err.value))
    assert field in violations and words in violations[field], violations
