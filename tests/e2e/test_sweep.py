"""Sweeps through gRPC on the real stack: codegen GenerateSweepCode -> sandbox RunSweep (jail, pool),
checked against single backtests through the orchestrator's ExecuteStrategy."""
from __future__ import annotations

import random

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2

from services.codegen import parameters
from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2, codegen_pb2_grpc
from stratexec.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from tests.e2e.conftest import EXAMPLE
from tests.sandbox.test_execute_code import bad_request

PARAMS = backtest_pb2.BacktestParams(symbols=["BTC"], start_date="2019-01-01", end_date="2024-12-31")
R = codegen_pb2.ParameterRange
RANGES = [R(name="entry.window", start=10, stop=60, step=5), R(name="entry.drop_pct", start=2, stop=8, step=1),
          R(name="tp.target_pct", values=[4, 7, 10])]


def _struct(doc: dict) -> struct_pb2.Struct:
    body = struct_pb2.Struct()
    body.update(doc)
    return body


@pytest.fixture(scope="module")
def codegen(stack):
    with grpc.insecure_channel(stack["codegen"].address) as channel:
        yield codegen_pb2_grpc.CodegenServiceStub(channel)


@pytest.fixture(scope="module")
def sweep(stack, codegen):
    generated = codegen.GenerateSweepCode(codegen_pb2.GenerateSweepCodeRequest(
        schema=_struct(EXAMPLE), params=PARAMS, ranges=RANGES, walk_forward=codegen_pb2.WalkForwardSpec(segments=5)))
    with grpc.insecure_channel(stack["sandbox"].address) as channel:
        reply = sandbox_pb2_grpc.SandboxServiceStub(channel).RunSweep(sandbox_pb2.RunSweepRequest(
            code=generated.code, params=PARAMS, execution_id="sweep-test", combinations=generated.combinations,
            timeout_seconds=300), timeout=320)
    assert reply.outcome == sandbox_pb2.RUN_OUTCOME_SUCCEEDED, (reply.error, list(reply.logs)[-20:])
    return generated, reply.result


def _values(generated, index: int) -> dict[str, float]:
    shape = [len(p.values) for p in generated.parameters]
    return {p.name: p.values[i] for p, i in zip(generated.parameters, np.unravel_index(index, shape))}


def test_analyze_lists_the_named_parameters(codegen):
    reply = codegen.AnalyzeStrategy(codegen_pb2.AnalyzeStrategyRequest(schema=_struct(EXAMPLE), params=PARAMS))
    listed = {p.name: (p.value, p.range) for p in reply.analysis.parameters}
    assert listed == {"entry.drop_pct": (5.0, "numbers in (0, 100)"), "entry.window": (20.0, "integers in [1, 5000]"),
                      "tp.target_pct": (7.0, "numbers in (0, 1000]"), "sl.stop_pct": (5.0, "numbers in (0, 100)")}


def test_three_random_combinations_run_alone_give_the_sweeps_metrics(sweep, client):
    generated, result = sweep
    assert generated.combinations == result.combinations == 11 * 7 * 3
    doc_parameters = parameters.extract(EXAMPLE)
    for index in random.Random(20261202).sample(range(generated.combinations), 3):
        schema = parameters.substitute(EXAMPLE, doc_parameters, _values(generated, index))
        execution = client.execute(schema, PARAMS)
        events = list(client.watch(execution.id))
        assert events[-1].message.startswith("completed"), events[-1]
        m = client.results(execution.id).result.metrics
        sm = result.metrics
        assert m.trades == sm.trades[index] and m.open_trades == sm.open_trades[index], index
        for name in ("total_return", "cagr", "sharpe_ratio", "max_drawdown", "win_rate"):
            assert getattr(m, name) == pytest.approx(getattr(sm, name)[index], rel=1e-12, abs=1e-12), (index, name)


def test_walk_forward_segments_are_disjoint_and_out_of_sample_uses_only_its_bars(sweep, client):
    generated, result = sweep
    assert len(result.segments) == 5
    previous = ""
    for s in result.segments:
        assert previous < s.in_sample_start <= s.in_sample_end < s.out_of_sample_start <= s.out_of_sample_end
        previous = s.out_of_sample_end
        assert s.out_of_sample_equity[0].time >= s.out_of_sample_start
        assert s.out_of_sample_equity[-1].time <= s.out_of_sample_end
    # The out-of-sample metrics of a segment are those of a standalone backtest on the out-of-sample dates only.
    s = result.segments[1]
    schema = parameters.substitute(EXAMPLE, parameters.extract(EXAMPLE), _values(generated, s.chosen_combination))
    oos = backtest_pb2.BacktestParams(symbols=["BTC"], start_date=s.out_of_sample_start, end_date=s.out_of_sample_end)
    execution = client.execute(schema, oos)
    list(client.watch(execution.id))
    m = client.results(execution.id).result.metrics
    assert m.total_return == pytest.approx(s.out_of_sample.total_return, rel=1e-12)
    assert m.trades == s.out_of_sample.trades


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
